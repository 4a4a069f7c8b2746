/*
 * Per-thread proxies: the hot path's answer to a shared reference count.
 *
 * A snapshot's reference count is one cache line that every thread taking a
 * reference writes, so two threads serving the same certificate would take
 * turns owning that line on every handshake.  Instead a reading thread owns
 * a set of proxies: small srvocsp_responses on its own cache lines, each
 * copying a snapshot's fields, pointing at its DER bytes and holding one
 * reference to it.  get hands out the proxy with its count raised; while
 * the cell still publishes the proxy's snapshot that is the only write, and
 * it stays on the thread's own line.
 *
 * Sets live in static storage (touched pages only) and a thread claims one
 * on its first get and gives it back when it exits, so get never
 * allocates.  Per cache way the set has two proxies; the way's current one
 * carries one reference held by the set itself (keeping it and its
 * snapshot alive for the comparison on the next get).  When the cell has
 * moved on, the thread takes a reference to the new snapshot the usual way
 * (cell.h) and either re-points the current proxy in place (nobody but the
 * set holds it, and nobody can take a reference without one), or fills the
 * way's other proxy if nobody holds that one, retiring the current one,
 * which keeps its snapshot while anybody holds it.  If both are held, get
 * returns the plain shared reference.  A proxy is an ordinary
 * srvocsp_response to everyone else: any thread may up-ref or free it.
 *
 * Counting is biased towards the owner (as in "biased reference counting",
 * Choi et al. 2018): the owning thread's gets and frees of its own proxies
 * change |local|, a plain field only it touches, so the hot path writes no
 * shared memory and runs no locked instruction at all; every other thread
 * (and every up-ref) changes the atomic |refs|, which carries
 * SRVOCSP__PROXY_BIAS while the owner counts, so it never reaches 0 from
 * their side.  Only the owner can see that a biased proxy is unheld
 * (local + refs - BIAS == 0, refs read with acquire): it drops a retired
 * proxy's snapshot when its own free brings the count there, or later when
 * it reuses the proxy (a proxy last freed by another thread keeps its
 * snapshot until then: at most two per way per thread).  When a set is
 * given back, each proxy's local count is folded into |refs| (refs +=
 * local - BIAS) and the proxy becomes an ordinary counted response: whoever
 * brings it to 0 drops its snapshot, and a thread claiming the set later
 * reuses it only once it is 0.
 *
 * A set comes back through a pthread key destructor at thread exit, so
 * the library must not be dlclose()d while threads that read through it
 * still run (OpenSSL asks the same for its thread-local state).
 *
 * Limits: SRVOCSP__PROXY_SETS threads hold a set at once (others read
 * through shared references, correct and slower, and try again for a set
 * every few thousand gets); a thread keeps the last
 * snapshot it read per way until it reads again there or exits.
 */
#ifndef SRVOCSP_PROXY_H
#define SRVOCSP_PROXY_H

#include "core/cell.h"

#define SRVOCSP__PROXY_SETS 64
#define SRVOCSP__PROXY_WAYS 32
/* In a biased proxy's |refs| (see above): far above any count of holders. */
#define SRVOCSP__PROXY_BIAS ((size_t)1 << 62)

typedef struct srvocsp__proxy_set {
    /* Written only by the owning thread. */
    srvocsp_response *current[SRVOCSP__PROXY_WAYS];
    srvocsp_response pool[SRVOCSP__PROXY_WAYS][2];
    atomic_int owned;
} __attribute__((aligned(64))) srvocsp__proxy_set;

SRVOCSP__HIDDEN extern srvocsp__proxy_set srvocsp__proxy_sets[SRVOCSP__PROXY_SETS];
/* The calling thread's set: -1 none yet, -2 none to be had. */
SRVOCSP__HIDDEN extern _Thread_local int srvocsp__tl_proxy_set
    __attribute__((tls_model("initial-exec")));

/* The miss path: new reference from the cell, proxy re-pointed or filled. */
SRVOCSP__HIDDEN srvocsp_response *srvocsp__proxy_acquire_slow(srvocsp__cell *c);
/* The owner's free found a biased proxy's local count at 0: if nobody
 * else holds it either, its snapshot is dropped now. */
SRVOCSP__HIDDEN void srvocsp__proxy_owner_zero(srvocsp_response *p);
/* Gives back the calling thread's set (and the references it holds). */
SRVOCSP__HIDDEN void srvocsp__proxy_thread_release(void);
/* fork() child handler (registered with the first set claimed): gives back
 * the sets of threads the child does not have.  A thread caught inside get
 * at the fork may leave one reference behind: a bounded leak. */
SRVOCSP__HIDDEN void srvocsp__proxy_atfork_child(void);

static inline unsigned srvocsp__proxy_way(const srvocsp__cell *c)
{
    uintptr_t a = (uintptr_t)c;

    return (unsigned)((a >> 6) ^ (a >> 12)) & (SRVOCSP__PROXY_WAYS - 1);
}

/* Returns a new reference to the published snapshot (usually the calling
 * thread's proxy of it), or NULL when the cell publishes none. */
static inline srvocsp_response *srvocsp__proxy_acquire(srvocsp__cell *c)
{
    int set = srvocsp__tl_proxy_set;
    srvocsp_response *cur = atomic_load_explicit(&c->current, memory_order_acquire), *p;

    if (cur == NULL)
        return NULL;
    if (__builtin_expect(set >= 0, 1)) {
        /* The set's reference keeps p and p->base alive, and only this
         * thread writes p->base, so comparing is safe; equal pointers mean
         * p stands for the snapshot that was current at the load. */
        p = srvocsp__proxy_sets[set].current[srvocsp__proxy_way(c)];
        if (p != NULL && p->base == cur) {
            p->local++; /* current proxies are biased: the count is ours */
            return p;
        }
    }
    return srvocsp__proxy_acquire_slow(c);
}

/* The free of |r| when |r| is one of the calling thread's biased proxies
 * (true: done, without a locked instruction); false for any other
 * response, which the caller frees the shared way. */
static inline bool srvocsp__proxy_owner_free(srvocsp_response *r)
{
    int set = srvocsp__tl_proxy_set;
    uintptr_t off;

    if (set < 0)
        return false;
    off = (uintptr_t)r - (uintptr_t)srvocsp__proxy_sets[set].pool;
    if (off >= sizeof(srvocsp__proxy_sets[set].pool) || !r->biased)
        return false;
    if (--r->local == 0)
        srvocsp__proxy_owner_zero(r);
    return true;
}

#endif
