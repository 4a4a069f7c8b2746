/* Creating, observing and stopping engines; the process-wide default. */
#include "engine/engine.h"
#include "engine/lifecycle.h"
#include "core/proxy.h"

#include <openssl/crypto.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static srvocsp_engine *g_default;
static pthread_mutex_t g_reg_mu = PTHREAD_MUTEX_INITIALIZER; /* after g_mu */
static srvocsp_engine *g_engines; /* every live engine, under g_reg_mu */
static pthread_once_t g_atfork_once = PTHREAD_ONCE_INIT;
static pthread_once_t g_atexit_once = PTHREAD_ONCE_INIT;

/* How long a fork waits for an engine thread to reach its parking place.
 * The thread gets there between two steps of its loop: after the transfer
 * step, verification, store write or callback it is in.  A thread stuck
 * longer (a callback that blocks) is not waited for: the fork goes on as
 * it would without this. */
#define FORK_PARK_WAIT_MS 2000

/* Called with e->mu held.  The engine thread may be inside libcurl,
 * OpenSSL or the allocator, holding their locks (OpenSSL's method store,
 * a sanitizer's allocator, which have no fork handlers of their own); a
 * child forked at that moment inherits those locks taken and blocks on
 * its first handshake.  So the thread is woken and parked at the top of
 * its loop, where it holds only e->mu, until the fork is over. */
static void park_for_fork_locked(srvocsp_engine *e)
{
    struct timespec ts;

    if (srvocsp__engine_thread_is_self(e))
        return; /* a callback of this engine forks */
    e->fork_hold = true;
    srvocsp__deadline_ms(&ts, FORK_PARK_WAIT_MS);
    /* The verification threads (pool.c) finish the response they are on
     * and wait; they are in OpenSSL otherwise. */
    srvocsp__pool_park_locked(e, &ts);
    if (!e->running)
        return;
    srvocsp__engine_wake_locked(e);
    while (e->running && !e->parked)
        if (pthread_cond_timedwait(&e->progress, &e->mu, &ts) != 0)
            break;
}

/* fork(): park every engine's thread and hold every engine's lock across
 * the fork so the child's copy of the engine is consistent; the child
 * then forgets the parent's threads and restarts on its next call
 * (libuv's pattern). */
static void atfork_prepare(void)
{
    srvocsp_engine *e;

    pthread_mutex_lock(&g_mu);
    pthread_mutex_lock(&g_reg_mu);
    for (e = g_engines; e != NULL; e = e->reg_next) {
        pthread_mutex_lock(&e->mu);
        park_for_fork_locked(e);
        srvocsp__signer_cache_fork_prepare(e->signers);
    }
    srvocsp__cells_atfork_prepare();
}

static void atfork_parent(void)
{
    srvocsp_engine *e;

    srvocsp__cells_atfork_parent();
    for (e = g_engines; e != NULL; e = e->reg_next) {
        if (e->fork_hold) {
            e->fork_hold = false;
            pthread_cond_broadcast(&e->wake);
            pthread_cond_broadcast(&e->pool_cv);
        }
        srvocsp__signer_cache_fork_parent(e->signers);
        pthread_mutex_unlock(&e->mu);
    }
    pthread_mutex_unlock(&g_reg_mu);
    pthread_mutex_unlock(&g_mu);
}

static srvocsp_error curl_start_adapter(void *ctx, const srvocsp_http_request *req,
                                        srvocsp_http_done_fn done, void *arg);

/* Processes forked together (a server's workers) inherit one schedule and
 * one jitter sequence: left alone they all ask the responder in the same
 * second, before any of them could pick up another's saved response.  Each
 * child takes a jitter sequence of its own and moves every future refresh
 * of a certificate kept in a store earlier by its own share of up to half
 * the jitter of the wait (the rule after a success), so the first process
 * to become due fetches and the others adopt what it saved. */
static void spread_after_fork_locked(srvocsp_engine *e, uint64_t salt)
{
    int64_t now = e->clock.now(e->clock.ctx);

    e->rng ^= salt * 0x9E3779B97F4A7C15ULL;
    if (e->rng == 0)
        e->rng = 0x9E3779B97F4A7C15ULL;
    for (size_t i = 0; i < e->n_buckets; i++)
        for (srvocsp__entry *en = e->buckets[i]; en != NULL; en = en->hash_next)
            if (en->store != NULL && en->heap_idx != SIZE_MAX && en->next_at > now)
                srvocsp__heap_set(e, en, srvocsp__jitter_earlier_locked(e, en->next_at, now));
}

/* What the child of fork() does to one engine, whose lock it holds. */
static void forked_locked(srvocsp_engine *e, uint64_t salt)
{
    srvocsp__engine_after_fork_locked(e);
    spread_after_fork_locked(e, salt);
    if (e->curl != NULL) {
        /* The parent's engine thread may have been inside curl, its
         * state mid-update: leave it untouched (a bounded leak in the
         * child) and start a fresh transport. */
        e->curl = srvocsp__curl_new(&e->cfg);
    }
    /* After the new transport: requeued work wakes the engine through it. */
    srvocsp__pool_after_fork_locked(e);
    atomic_store(&e->restart_pending, true);
}

void srvocsp__engine_forked(srvocsp_engine *e, uint64_t salt)
{
    pthread_mutex_lock(&e->mu);
    forked_locked(e, salt);
    pthread_mutex_unlock(&e->mu);
}

static void atfork_child(void)
{
    srvocsp_engine *e;
    pthread_condattr_t ca;

    srvocsp__note_fork_child();
    srvocsp__cells_atfork_child();
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    for (e = g_engines; e != NULL; e = e->reg_next) {
        e->fork_hold = false;
        e->parked = false;
        /* Waiters of the parent do not exist here. */
        pthread_cond_init(&e->wake, &ca);
        pthread_cond_init(&e->progress, &ca);
        pthread_cond_init(&e->settled, &ca);
        srvocsp__signer_cache_fork_child(e->signers);
        forked_locked(e, (uint64_t)getpid());
        pthread_mutex_unlock(&e->mu);
    }
    pthread_condattr_destroy(&ca);
    pthread_mutex_unlock(&g_reg_mu);
    pthread_mutex_unlock(&g_mu);
}

static void register_atfork(void)
{
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

/* How long process exit waits for a running engine thread to leave its
 * loop (it is between two steps: a transfer step, a verification, a store
 * write or a callback).  A thread stuck longer is left running, as it
 * would be without this. */
#define EXIT_STOP_WAIT_MS 2000

/* A program may return from main with handles open, or just after closing
 * its last one, while the engine thread ends by itself.  OpenSSL frees
 * its global and per-thread state at exit: a thread still inside OpenSSL
 * then uses freed memory, and one that ends after that cleanup leaks its
 * error state.  So every engine's thread is stopped and joined first;
 * this runs before OpenSSL's own handler because it was registered after
 * it (exit handlers run last registered first).  The engines themselves
 * are left as they are: another exit handler may still close handles or
 * free them, and no thread starts again. */
static void stop_at_exit(void)
{
    srvocsp_engine *e;

    pthread_mutex_lock(&g_reg_mu);
    for (e = g_engines; e != NULL; e = e->reg_next) {
        struct timespec ts;
        pthread_t t;
        bool join = false;

        /* The verification threads first: they are in OpenSSL between two
         * responses at most. */
        srvocsp__pool_stop(e);
        pthread_mutex_lock(&e->mu);
        e->exited = true;
        if (e->thread_valid && !e->joining && !srvocsp__engine_thread_is_self(e)) {
            if (e->running) {
                e->stop = true;
                pthread_cond_broadcast(&e->wake);
                if (e->curl != NULL)
                    srvocsp__curl_wakeup(e->curl);
                srvocsp__deadline_ms(&ts, EXIT_STOP_WAIT_MS);
                while (e->running)
                    if (pthread_cond_timedwait(&e->progress, &e->mu, &ts) != 0)
                        break;
            }
            if (!e->running) {
                join = true;
                t = e->thread;
                e->thread_valid = false;
            }
        }
        pthread_mutex_unlock(&e->mu);
        if (join)
            pthread_join(t, NULL); /* its thread-local destructors have run */
    }
    pthread_mutex_unlock(&g_reg_mu);
}

static void register_atexit(void)
{
    /* OpenSSL registers its exit handler when it first initialises. */
    OPENSSL_init_crypto(0, NULL);
    atexit(stop_at_exit);
}

void srvocsp__engine_restart(srvocsp_engine *e)
{
    pthread_mutex_lock(&e->mu);
    if (atomic_load(&e->restart_pending)) {
        atomic_store(&e->restart_pending, false);
        if (e->n_entries > 0 || e->notes != NULL || e->done_head != NULL)
            srvocsp__engine_start_locked(e);
    }
    pthread_mutex_unlock(&e->mu);
}

void srvocsp_engine_config_init(srvocsp_engine_config *c)
{
    memset(c, 0, sizeof(*c));
    c->struct_size = sizeof(*c);
    c->max_concurrent = 32;
    c->max_per_host = 4;
    c->jitter_percent = 20;
}

/* The built-in transport is driven by the engine thread (loop.c): a
 * transfer that thread starts needs no wakeup. */
static srvocsp_error curl_start_adapter(void *ctx, const srvocsp_http_request *req,
                                        srvocsp_http_done_fn done, void *arg)
{
    srvocsp_engine *e = ctx;

    if (e->curl == NULL) /* a forked child that could not make its own */
        return SRVOCSP_E_NOMEM;
    return srvocsp__curl_start(e->curl, req, done, arg, srvocsp__engine_thread_is_self(e));
}

srvocsp_engine *srvocsp_engine_new(const srvocsp_engine_config *cfg)
{
    srvocsp_engine_config def;
    srvocsp_engine *e = NULL;
    pthread_condattr_t ca;

    if (cfg == NULL) {
        srvocsp_engine_config_init(&def);
        cfg = &def;
    }
    if (cfg->struct_size < sizeof(*cfg) || cfg->max_concurrent == 0 || cfg->max_per_host == 0 ||
        cfg->jitter_percent > 100) {
        srvocsp__set_error(SRVOCSP_E_INVALID_ARG, "engine config: %s",
                           cfg->struct_size < sizeof(*cfg) ? "struct_size too small"
                           : cfg->jitter_percent > 100     ? "jitter_percent above 100"
                                                           : "concurrency limits must be >= 1");
        return NULL;
    }
    e = srvocsp__calloc(1, sizeof(*e));
    if (e == NULL)
        goto nomem;
    e->cfg = *cfg;
    if ((e->signers = srvocsp__signer_cache_new()) == NULL)
        goto nomem;
    e->clock.now = srvocsp__system_now;
    e->clock.monotonic_ms = srvocsp__system_monotonic_ms;
    if (cfg->clock != NULL)
        e->clock = *cfg->clock;
    if (cfg->transport != NULL) {
        e->transport = *cfg->transport;
    } else {
        e->curl = srvocsp__curl_new(cfg);
        if (e->curl == NULL)
            goto nomem;
        e->transport.start = curl_start_adapter;
        e->transport.ctx = e;
    }
    e->rng = cfg->seed ? cfg->seed : (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)e;
    if (e->rng == 0)
        e->rng = 0x9E3779B97F4A7C15ULL;
    pthread_mutex_init(&e->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&e->wake, &ca);
    pthread_cond_init(&e->progress, &ca);
    pthread_cond_init(&e->settled, &ca);
    pthread_cond_init(&e->pool_cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_once(&g_atfork_once, register_atfork);
    pthread_once(&g_atexit_once, register_atexit);
    pthread_mutex_lock(&g_reg_mu);
    e->reg_next = g_engines;
    g_engines = e;
    pthread_mutex_unlock(&g_reg_mu);
    return e;
nomem:
    if (e != NULL)
        srvocsp__signer_cache_free(e->signers);
    free(e);
    srvocsp__set_error(SRVOCSP_E_NOMEM, "cannot allocate the engine");
    return NULL;
}

srvocsp_engine *srvocsp__engine_new_manual(const srvocsp_engine_config *cfg)
{
    srvocsp_engine *e;

    if (cfg == NULL || cfg->transport == NULL || cfg->clock == NULL) {
        srvocsp__set_error(SRVOCSP_E_INVALID_ARG, "a manual engine needs an injected clock and "
                           "transport");
        return NULL;
    }
    e = srvocsp_engine_new(cfg);
    if (e != NULL)
        e->manual = true;
    return e;
}

void srvocsp_engine_free(srvocsp_engine *e)
{
    bool join;

    if (e == NULL)
        return;
    srvocsp__engine_check_fork(e);
    pthread_mutex_lock(&e->mu);
    if (srvocsp__engine_thread_is_self(e)) {
        /* The thread would join itself: refused, the engine goes on. */
        pthread_mutex_unlock(&e->mu);
        srvocsp__set_error(SRVOCSP_E_INVALID_ARG, "srvocsp_engine_free called from an update "
                           "callback of the same engine: the engine was not freed");
        return;
    }
    pthread_mutex_unlock(&e->mu);
    pthread_mutex_lock(&g_reg_mu);
    for (srvocsp_engine **pp = &g_engines; *pp != NULL; pp = &(*pp)->reg_next)
        if (*pp == e) {
            *pp = e->reg_next;
            break;
        }
    pthread_mutex_unlock(&g_reg_mu);
    /* The verification threads first: what they had goes back to the done
     * queue, which the teardown below empties. */
    srvocsp__pool_stop(e);
    pthread_mutex_lock(&e->mu);
    while (e->joining)
        pthread_cond_wait(&e->progress, &e->mu);
    e->stop = true;
    pthread_cond_broadcast(&e->wake);
    if (e->curl != NULL)
        srvocsp__curl_wakeup(e->curl);
    join = e->thread_valid;
    e->thread_valid = false;
    pthread_mutex_unlock(&e->mu);
    if (join)
        pthread_join(e->thread, NULL);
    /* Transfers still running end with E_SHUTDOWN into the done queue
     * (their callbacks still wake the engine through e->curl). */
    if (e->curl != NULL)
        srvocsp__curl_free(e->curl);
    pthread_mutex_lock(&e->mu);
    e->curl = NULL; /* teardown wakes nobody through a freed transport */
    srvocsp__engine_teardown_locked(e);
    pthread_mutex_unlock(&e->mu);
    pthread_cond_destroy(&e->wake);
    pthread_cond_destroy(&e->progress);
    pthread_cond_destroy(&e->settled);
    pthread_cond_destroy(&e->pool_cv);
    pthread_mutex_destroy(&e->mu);
    srvocsp__signer_cache_free(e->signers); /* the entries that used it are gone */
    free(e);
}

void srvocsp_engine_kick(srvocsp_engine *e)
{
    if (e == NULL)
        return;
    srvocsp__engine_check_fork(e);
    pthread_mutex_lock(&e->mu);
    e->kicked = true;
    e->idle = false;
    srvocsp__engine_wake_locked(e);
    pthread_mutex_unlock(&e->mu);
}

srvocsp_error srvocsp_engine_settle(srvocsp_engine *e, uint32_t timeout_ms)
{
    struct timespec ts;
    srvocsp_error err = SRVOCSP_OK;

    if (e == NULL)
        return SRVOCSP_E_INVALID_ARG;
    srvocsp__engine_check_fork(e);
    srvocsp__deadline_ms(&ts, timeout_ms);
    pthread_mutex_lock(&e->mu);
    if (srvocsp__engine_thread_is_self(e)) {
        pthread_mutex_unlock(&e->mu);
        srvocsp__set_error(SRVOCSP_E_INVALID_ARG, "srvocsp_engine_settle called from an update "
                           "callback: the engine thread cannot wait for itself");
        return SRVOCSP_E_INVALID_ARG;
    }
    e->kicked = true;
    e->idle = false;
    srvocsp__engine_wake_locked(e);
    /* Its own condition variable: woken at every completion, a settle of
     * 10,000 refreshes cost its thread 4,000 wakeups for nothing. */
    while (e->running && !(e->idle && !e->kicked)) {
        if (pthread_cond_timedwait(&e->settled, &e->mu, &ts) != 0) {
            err = SRVOCSP_E_TIMEOUT;
            break;
        }
    }
    pthread_mutex_unlock(&e->mu);
    return err;
}

void srvocsp_engine_get_stats(srvocsp_engine *e, srvocsp_engine_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (e == NULL) {
        /* The default engine as it is: not made by asking (a call after
         * srvocsp_cleanup would start one nobody frees), and not freed by
         * a cleanup while it is read (g_mu before e->mu, as at fork). */
        pthread_mutex_lock(&g_mu);
        if (g_default != NULL) {
            pthread_mutex_lock(&g_default->mu);
            *out = g_default->stats;
            srvocsp__curl_stats(g_default->curl, out);
            pthread_mutex_unlock(&g_default->mu);
        }
        pthread_mutex_unlock(&g_mu);
        return;
    }
    pthread_mutex_lock(&e->mu);
    *out = e->stats;
    srvocsp__curl_stats(e->curl, out);
    pthread_mutex_unlock(&e->mu);
}

srvocsp_engine *srvocsp__default_engine(void)
{
    srvocsp_engine *e;

    pthread_mutex_lock(&g_mu);
    if (g_default == NULL)
        g_default = srvocsp_engine_new(NULL);
    e = g_default;
    pthread_mutex_unlock(&g_mu);
    return e;
}

void srvocsp_cleanup(void)
{
    srvocsp_engine *e;

    pthread_mutex_lock(&g_mu);
    e = g_default;
    if (e != NULL) {
        bool own;

        pthread_mutex_lock(&e->mu);
        own = srvocsp__engine_thread_is_self(e);
        pthread_mutex_unlock(&e->mu);
        if (own) {
            pthread_mutex_unlock(&g_mu);
            srvocsp__set_error(SRVOCSP_E_INVALID_ARG, "srvocsp_cleanup called from an update "
                               "callback: nothing was freed");
            return;
        }
    }
    g_default = NULL;
    pthread_mutex_unlock(&g_mu);
    srvocsp_engine_free(e);
    srvocsp__proxy_thread_release();
    srvocsp__store_dir_forget_sweeps();
}
