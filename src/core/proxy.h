/*
 * Per-thread proxies: the hot path's answer to a shared reference count.
 *
 * A snapshot's reference count is one cache line that every thread taking a
 * reference writes, so two threads serving the same certificate would take
 * turns owning that line on every handshake.  Instead each thread keeps, per
 * certificate it reads, a proxy: a small srvocsp_response of its own (on its
 * own cache lines) that copies the snapshot's fields, points at its DER
 * bytes and holds one reference to it.  get hands out the proxy with its
 * count raised; while the cell still publishes the proxy's snapshot that is
 * the only write, and it stays on the thread's own line.
 *
 * The thread's cache holds one reference to each proxy.  When the cell has
 * moved on, the thread takes a reference to the new snapshot the usual way
 * (cell.h) and either re-points the proxy in place (nobody else holds it:
 * its count is 1, and nobody can raise it without a reference) or, when a
 * caller still holds the old proxy, gives the slot a new one and leaves the
 * old one to its last holder.  A proxy is an ordinary srvocsp_response to
 * everyone else: any thread may up-ref or free it, and its last free drops
 * the snapshot it stands for.
 *
 * The price: a thread's cache keeps the snapshot it last saw for a
 * certificate alive until that thread reads the certificate again, its
 * cache slot goes to another certificate, or the thread exits (64 slots per
 * thread, a few KiB at most).  srvocsp_cleanup frees the calling thread's.
 */
#ifndef SRVOCSP_PROXY_H
#define SRVOCSP_PROXY_H

#include "core/cell.h"

#define SRVOCSP__PROXY_WAYS 64

typedef struct srvocsp__proxy_cache {
    srvocsp_response *way[SRVOCSP__PROXY_WAYS];
} srvocsp__proxy_cache;

SRVOCSP__HIDDEN extern _Thread_local srvocsp__proxy_cache *srvocsp__tl_proxies
    __attribute__((tls_model("initial-exec")));

/* The miss path: new reference from the cell, proxy re-pointed or made. */
SRVOCSP__HIDDEN srvocsp_response *srvocsp__proxy_acquire_slow(srvocsp__cell *c);
/* Frees the calling thread's cache (and with it the references it holds). */
SRVOCSP__HIDDEN void srvocsp__proxy_thread_release(void);

static inline unsigned srvocsp__proxy_way(const srvocsp__cell *c)
{
    uintptr_t a = (uintptr_t)c;

    return (unsigned)((a >> 6) ^ (a >> 12)) & (SRVOCSP__PROXY_WAYS - 1);
}

/* Returns a new reference to the published snapshot (usually the calling
 * thread's proxy of it), or NULL when the cell publishes none. */
static inline srvocsp_response *srvocsp__proxy_acquire(srvocsp__cell *c)
{
    srvocsp__proxy_cache *pc = srvocsp__tl_proxies;
    srvocsp_response *cur = atomic_load_explicit(&c->current, memory_order_acquire), *p;

    if (cur == NULL)
        return NULL;
    if (__builtin_expect(pc != NULL, 1)) {
        /* The cache's reference keeps p and p->base alive, and only this
         * thread writes p->base, so comparing is safe; equal pointers mean
         * p stands for the snapshot that was current at the load. */
        p = pc->way[srvocsp__proxy_way(c)];
        if (p != NULL && p->base == cur) {
            atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
            return p;
        }
    }
    return srvocsp__proxy_acquire_slow(c);
}

#endif
