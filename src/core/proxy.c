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

static void release_set(int i)
{
    srvocsp__proxy_set *set = &srvocsp__proxy_sets[i];
    int w;

    for (w = 0; w < SRVOCSP__PROXY_WAYS; w++) {
        srvocsp_response *p = set->current[w];

        set->current[w] = NULL;
        srvocsp_response_free(p); /* the set's reference */
    }
    atomic_store_explicit(&set->owned, 0, memory_order_release);
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

/* Makes |p| stand for |s|, taking over the caller's reference to |s|. */
static void point_at(srvocsp_response *p, srvocsp_response *s)
{
    p->base = s;
    p->pooled = true;
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
}

srvocsp_response *srvocsp__proxy_acquire_slow(srvocsp__cell *c)
{
    srvocsp_response *s = srvocsp__cell_acquire(c), *p, *q, *old;
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
    /* acquire (here and below): pairs with the last other holder's free,
     * whose reads of the proxy then happen before the rewrite. */
    if (p != NULL && atomic_load_explicit(&p->refs, memory_order_acquire) == 1) {
        old = p->base;
        point_at(p, s);
        atomic_store_explicit(&p->refs, 2, memory_order_relaxed); /* the set's, the caller's */
        srvocsp_response_free(old);
        return p;
    }
    for (k = 0; k < 2; k++) {
        q = &set->pool[w][k];
        if (q == p || atomic_load_explicit(&q->refs, memory_order_acquire) != 0)
            continue;
        point_at(q, s);
        atomic_store_explicit(&q->refs, 2, memory_order_relaxed);
        set->current[w] = q;
        srvocsp_response_free(p); /* the set's reference to the held one */
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
