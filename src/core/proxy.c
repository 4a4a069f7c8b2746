/* Per-thread proxies of published snapshots (see proxy.h). */
#include "core/proxy.h"

#include <pthread.h>
#include <stdint.h>

srvocsp__proxy_set srvocsp__proxy_sets[SRVOCSP__PROXY_SETS];
_Thread_local int srvocsp__tl_proxy_set __attribute__((tls_model("initial-exec"))) = -1;

/* A thread that found every set taken tries again every RETRY_EVERY gets. */
#define RETRY_EVERY 4096
static _Thread_local unsigned tl_retry;

static pthread_once_t g_key_once = PTHREAD_ONCE_INIT;
static pthread_key_t g_key;
static bool g_key_ok;

/* Holders of proxy |p| besides nobody: 0 when it may be rewritten.  Only
 * the owner calls it; acquire pairs with the last other holder's free, whose
 * reads of the proxy then happen before the rewrite. */
static size_t holders(const srvocsp_response *p)
{
    size_t shared = atomic_load_explicit(&p->refs, memory_order_acquire);

    return p->biased ? p->local + shared - SRVOCSP__PROXY_BIAS : shared;
}

/* The set's reference to the way's current proxy goes; then every biased
 * proxy becomes an ordinary counted response (see proxy.h), and the one
 * whose count that makes 0 drops its snapshot here. */
static void release_set(int i)
{
    srvocsp__proxy_set *set = &srvocsp__proxy_sets[i];
    int w, k;

    for (w = 0; w < SRVOCSP__PROXY_WAYS; w++) {
        if (set->current[w] != NULL)
            set->current[w]->local--;
        set->current[w] = NULL;
        for (k = 0; k < 2; k++) {
            srvocsp_response *q = &set->pool[w][k], *base = q->base;
            size_t delta = q->local - SRVOCSP__PROXY_BIAS;

            if (!q->biased)
                continue;
            q->biased = false;
            q->local = 0;
            if (atomic_fetch_add_explicit(&q->refs, delta, memory_order_acq_rel) + delta == 0) {
                q->base = NULL;
                srvocsp_response_free(base);
            }
        }
    }
    atomic_store_explicit(&set->owned, 0, memory_order_release);
}

void srvocsp__proxy_owner_zero(srvocsp_response *p)
{
    srvocsp_response *base = p->base;

    /* A current proxy carries the set's reference, so this one is retired. */
    if (base == NULL || atomic_load_explicit(&p->refs, memory_order_acquire) != SRVOCSP__PROXY_BIAS)
        return;
    p->base = NULL;
    srvocsp_response_free(base);
}

static void on_thread_exit(void *arg)
{
    srvocsp__tl_proxy_set = -1;
    release_set((int)((intptr_t)arg - 1));
}

static void make_key(void)
{
    g_key_ok = pthread_key_create(&g_key, on_thread_exit) == 0 &&
               pthread_atfork(NULL, NULL, srvocsp__proxy_atfork_child) == 0;
}

/* Claims a free set for the calling thread (once per thread). */
static int claim_set(void)
{
    int i, zero;

    /* Without the key the set could not be given back at thread exit. */
    pthread_once(&g_key_once, make_key);
    srvocsp__tl_proxy_set = -2;
    if (!g_key_ok)
        return -2;
    for (i = 0; i < SRVOCSP__PROXY_SETS; i++) {
        zero = 0;
        if (atomic_load_explicit(&srvocsp__proxy_sets[i].owned, memory_order_relaxed) != 0 ||
            !atomic_compare_exchange_strong_explicit(&srvocsp__proxy_sets[i].owned, &zero, 1,
                                                     memory_order_acquire, memory_order_relaxed))
            continue;
        if (pthread_setspecific(g_key, (void *)(intptr_t)(i + 1)) != 0) {
            atomic_store_explicit(&srvocsp__proxy_sets[i].owned, 0, memory_order_release);
            return -2;
        }
        srvocsp__tl_proxy_set = i;
        return i;
    }
    return -2;
}

/* Makes |p| stand for |s|, taking over the caller's reference to |s|, and
 * counts the set's and the caller's references on the owner's side.
 * Nobody holds |p|: the owner's fields and |refs| are ours to write. */
static void point_at(srvocsp_response *p, srvocsp_response *s)
{
    srvocsp_response *old = p->biased ? p->base : NULL; /* an unbiased one's went with its count */

    p->base = s;
    p->pooled = true;
    p->biased = true;
    p->local = 2;
    atomic_store_explicit(&p->refs, SRVOCSP__PROXY_BIAS, memory_order_relaxed);
    p->view.cb_size = (uint32_t)sizeof(p->view);
    p->view.pb = s->view.pb;
    p->view.cb = (uint32_t)s->len;
    p->status = s->status;
    p->this_update = s->this_update;
    p->next_update = s->next_update;
    p->produced_at = s->produced_at;
    p->expires = s->expires;
    p->rev_time = s->rev_time;
    p->rev_reason = s->rev_reason;
    p->len = s->len;
    srvocsp_response_free(old);
}

srvocsp_response *srvocsp__proxy_acquire_slow(srvocsp__cell *c)
{
    srvocsp_response *s = srvocsp__cell_acquire(c), *p, *q;
    srvocsp__proxy_set *set;
    int i = srvocsp__tl_proxy_set, k;
    unsigned w;

    if (s == NULL)
        return NULL;
    if (i == -1 || (i == -2 && ++tl_retry % RETRY_EVERY == 0))
        i = claim_set();
    if (i < 0)
        return s; /* no set: a plain reference works as well, just shared */
    set = &srvocsp__proxy_sets[i];
    w = srvocsp__proxy_way(c);
    p = set->current[w];
    if (p != NULL && holders(p) == 1) { /* the set's own reference */
        point_at(p, s);
        return p;
    }
    for (k = 0; k < 2; k++) {
        q = &set->pool[w][k];
        if (q == p || holders(q) != 0)
            continue;
        point_at(q, s);
        set->current[w] = q;
        if (p != NULL && --p->local == 0) /* the set's reference to the held one */
            srvocsp__proxy_owner_zero(p);
        return q;
    }
    return s; /* both proxies of the way are held: the shared reference */
}

void srvocsp__proxy_thread_release(void)
{
    int i = srvocsp__tl_proxy_set;

    if (i < 0)
        return;
    srvocsp__tl_proxy_set = -1;
    if (g_key_ok)
        pthread_setspecific(g_key, NULL);
    release_set(i);
}

void srvocsp__proxy_atfork_child(void)
{
    int i;

    /* The threads owning the other sets do not exist here. */
    for (i = 0; i < SRVOCSP__PROXY_SETS; i++)
        if (i != srvocsp__tl_proxy_set &&
            atomic_load_explicit(&srvocsp__proxy_sets[i].owned, memory_order_acquire) != 0)
            release_set(i);
}
