/* Per-thread proxies of published snapshots (see proxy.h). */
#include "core/proxy.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

_Thread_local srvocsp__proxy_cache *srvocsp__tl_proxies
    __attribute__((tls_model("initial-exec")));

static pthread_once_t g_key_once = PTHREAD_ONCE_INIT;
static pthread_key_t g_key;
static bool g_key_ok;

static void release_cache(srvocsp__proxy_cache *pc)
{
    int i;

    for (i = 0; i < SRVOCSP__PROXY_WAYS; i++)
        srvocsp_response_free(pc->way[i]);
    free(pc);
}

static void on_thread_exit(void *arg)
{
    srvocsp__tl_proxies = NULL;
    release_cache(arg);
}

static void make_key(void)
{
    g_key_ok = pthread_key_create(&g_key, on_thread_exit) == 0;
}

static srvocsp__proxy_cache *thread_cache(void)
{
    srvocsp__proxy_cache *pc = srvocsp__tl_proxies;

    if (pc != NULL)
        return pc;
    /* Without the key the cache could not be freed at thread exit: serve
     * plain references instead. */
    pthread_once(&g_key_once, make_key);
    if (!g_key_ok)
        return NULL;
    pc = srvocsp__calloc(1, sizeof(*pc));
    if (pc == NULL)
        return NULL;
    if (pthread_setspecific(g_key, pc) != 0) {
        free(pc);
        return NULL;
    }
    srvocsp__tl_proxies = pc;
    return pc;
}

/* Makes |p| stand for |s|, taking over the caller's reference to |s|. */
static void point_at(srvocsp_response *p, srvocsp_response *s)
{
    p->base = s;
    p->view.cb_size = (uint32_t)sizeof(p->view);
    p->view.pb = s->der;
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

static srvocsp_response *new_proxy(srvocsp_response *s)
{
    /* Whole cache lines of its own: its count is the one word this thread
     * writes per get, and no other thread's data may share the line. */
    size_t size = (sizeof(srvocsp_response) + 63) & ~(size_t)63;
    srvocsp_response *p;

    if (srvocsp__alloc_should_fail())
        return NULL;
    p = aligned_alloc(64, size);
    if (p == NULL)
        return NULL;
    memset(p, 0, size);
    point_at(p, s);
    atomic_init(&p->refs, 2); /* the cache's and the caller's */
    return p;
}

srvocsp_response *srvocsp__proxy_acquire_slow(srvocsp__cell *c)
{
    srvocsp_response *s = srvocsp__cell_acquire(c), *p, *np, *old;
    srvocsp__proxy_cache *pc;
    unsigned w;

    if (s == NULL || (pc = thread_cache()) == NULL)
        return s;
    w = srvocsp__proxy_way(c);
    p = pc->way[w];
    if (p != NULL && p->base == s) {
        /* Only if the cell published this proxy's snapshot again between
         * the two loads; cheap to handle, so handled. */
        atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
        srvocsp_response_free(s);
        return p;
    }
    /* acquire: pairs with the last other holder's free, whose reads of the
     * proxy then happen before the rewrite below. */
    if (p != NULL && atomic_load_explicit(&p->refs, memory_order_acquire) == 1) {
        old = p->base;
        point_at(p, s);
        atomic_store_explicit(&p->refs, 2, memory_order_relaxed);
        srvocsp_response_free(old);
        return p;
    }
    np = new_proxy(s);
    if (np == NULL)
        return s; /* a plain reference works as well, just shared */
    pc->way[w] = np;
    srvocsp_response_free(p);
    return np;
}

void srvocsp__proxy_thread_release(void)
{
    srvocsp__proxy_cache *pc = srvocsp__tl_proxies;

    if (pc == NULL)
        return;
    srvocsp__tl_proxies = NULL;
    if (g_key_ok)
        pthread_setspecific(g_key, NULL);
    release_cache(pc);
}
