/*
 * The engine thread: one per engine.  Each turn of its loop reports the
 * notes, handles the completions (complete.c), reads the fleet's
 * announcements, looks at the clock, picks the due entries that may start
 * within the concurrency limits and hands them to the sources (sources.c),
 * runs the callbacks, and waits, moving the built-in transport's transfers
 * along while it does.
 *
 * Locking: e->mu protects every field of the engine and of its entries
 * except an entry's cell (lock-free readers) and a handle's refs.  The
 * thread never holds e->mu while verifying, calling the transport or a
 * store, or calling a user callback.
 */
#include "engine/engine.h"
#include "engine/fleet.h"

#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#define START_BATCH 64
/* A wall clock that moved this much against the monotonic clock was
 * stepped (NTP, suspend/resume, a restored VM). */
#define CLOCK_JUMP_MS 5000

/* Moves due entries to the ready queue and picks those that may start
 * now within the concurrency limits, each with a transfer slot. */
static size_t pick_starts(srvocsp_engine *e, int64_t now, srvocsp__start_item *items, size_t max)
{
    srvocsp__entry *en;
    srvocsp__host *h;
    size_t n = 0;

    while ((en = srvocsp__heap_top(e)) != NULL && en->next_at <= now) {
        srvocsp__heap_remove(e, en);
        if (en->in_flight)
            continue; /* rescheduled when it completes */
        en->url_idx = en->url_pref < en->req.n_urls ? en->url_pref : 0;
        en->url_tries = 0;
        srvocsp__entry_set_text(en, SRVOCSP__TEXT_ATTEMPT, "");
        srvocsp__ready_push(e, en);
    }
    for (h = e->hosts; h != NULL && n < max; h = h->next) {
        while ((en = h->ready_head) != NULL && n < max && h->in_flight < e->cfg.max_per_host &&
               e->in_flight < e->cfg.max_concurrent) {
            srvocsp__start_item *it = &items[n];
            srvocsp__completion *c;
            const char *url = en->req.urls[en->url_idx];

            c = srvocsp__completion_new_locked(en, SRVOCSP__SRC_NETWORK);
            if (c == NULL) {
                /* Out of memory: it stays queued and is picked next turn. */
                return n;
            }
            srvocsp__ready_remove(e, en);
            c->url = url;
            c->slot = true;
            en->in_flight = true;
            en->host = h;
            h->in_flight++;
            e->in_flight++;
            it->c = c;
            memset(&it->req, 0, sizeof(it->req));
            it->check_store =
                en->store != NULL && en->url_tries == 0 && srvocsp__dirsync_loads(&en->dirsync);
            it->known_version = en->store_version;
            it->fleet_look_only = en->fleet_look;
            en->fleet_look = false;
            it->held = srvocsp_response_up_ref(srvocsp__cell_peek(&en->cell));
            if (en->req.get_urls[en->url_idx] != NULL) {
                it->req.url = en->req.get_urls[en->url_idx];
                it->req.post_url = url; /* the POST form too, for the fallback */
                it->req.der = en->req.der;
                it->req.der_len = en->req.der_len;
            } else {
                it->req.url = url;
                it->req.body = en->req.der;
                it->req.body_len = en->req.der_len;
            }
            it->req.timeout_ms = en->url_timeout_ms;
            it->req.max_response_size = en->max_response_size;
            it->req.proxy = en->proxy;
            n++;
        }
    }
    return n;
}

/* Recomputes every waiting entry's next attempt from its response's own
 * times: a schedule computed before a jump may lie days away from what
 * the held response needs now. */
static void replan_all(srvocsp_engine *e, int64_t now)
{
    size_t i;

    for (i = 0; i < e->n_buckets; i++) {
        srvocsp__entry *en;

        for (en = e->buckets[i]; en != NULL; en = en->hash_next) {
            if (en->in_flight || en->queued)
                continue;
            /* Failures counted against a wrong clock ("thisUpdate in the
             * future", "expired") say nothing about the responder. */
            en->failures = 0;
            /* A response refused as from the future may be fine now. */
            srvocsp__heap_set(e, en, en->clock_refused ? now : srvocsp__entry_plan_locked(en, now));
        }
    }
}

/* Notices a wall clock that was stepped either way since the last look. */
static void check_clock(srvocsp_engine *e, int64_t now)
{
    int64_t off, d;

    if (e->clock.monotonic_ms == NULL)
        return; /* an injected wall clock alone: every step is time passing */
    off = now * 1000 - e->clock.monotonic_ms(e->clock.ctx);
    d = off - e->clock_offset_ms;
    if (e->clock_offset_valid && (d > CLOCK_JUMP_MS || d < -CLOCK_JUMP_MS) &&
        !SRVOCSP__PLANTED(SRVOCSP__PLANT_CLOCK_REPLAN)) {
        e->stats.clock_jumps++;
        replan_all(e, now);
    }
    e->clock_offset_ms = off;
    e->clock_offset_valid = true;
}

/* Waits until the next due time, and at least once a second so a clock
 * that jumps is noticed. */
static void wait_locked(srvocsp_engine *e, srvocsp__entry *top, int64_t now)
{
    uint64_t ms = 1000;
    struct timespec ts;

    if (top != NULL && top->next_at > now && (uint64_t)(top->next_at - now) * 1000 < ms)
        ms = (uint64_t)(top->next_at - now) * 1000;
    if (e->curl != NULL) {
        /* The built-in transport waits here too: this thread moves the
         * transfers along while it waits, and a wakeup of the engine ends
         * the wait (srvocsp__engine_wake_locked). */
        int fds[8];
        unsigned nfds = srvocsp__fleet_fds_locked(e, fds, 8);

        pthread_mutex_unlock(&e->mu);
        srvocsp__curl_drive_fds(e->curl, (int)ms, fds, nfds);
        pthread_mutex_lock(&e->mu);
    } else {
        srvocsp__deadline_ms(&ts, ms);
        pthread_cond_timedwait(&e->wake, &e->mu, &ts);
    }
}

/* One turn of the loop at the clock's current time: notes, completions,
 * announcements, the clock, and the due entries started.  True when it
 * did something (then another turn may find more to do).  Called and
 * returns with e->mu held; drops it to start transfers and run callbacks. */
static bool turn_locked(srvocsp_engine *e, srvocsp__start_item *items)
{
    srvocsp__event *events = NULL;
    bool did = e->done_head != NULL || e->notes != NULL;
    int64_t now;
    size_t n;

    e->kicked = false;
    e->wake_sent = false; /* from here on a change needs a new wakeup */
    srvocsp__events_from_notes_locked(e, &events);
    while (e->done_head != NULL) {
        srvocsp__completion *c = e->done_head;

        e->done_head = c->next;
        if (e->done_head == NULL)
            e->done_tail = NULL;
        srvocsp__complete_locked(e, c, &events);
    }
    srvocsp__fleet_service_locked(e); /* other processes' announcements */
    now = srvocsp__engine_now(e);
    check_clock(e, now);
    n = pick_starts(e, now, items, START_BATCH);
    if (n > 0 || events != NULL) {
        pthread_mutex_unlock(&e->mu);
        srvocsp__sources_start(e, items, n);
        srvocsp__events_run(events);
        pthread_mutex_lock(&e->mu);
        did = true;
    }
    return did || e->done_head != NULL || e->kicked;
}

_Thread_local const srvocsp_engine *srvocsp__tl_engine;

static void *engine_main(void *arg)
{
    srvocsp_engine *e = arg;
    srvocsp__start_item items[START_BATCH];

    srvocsp__tl_engine = e;
    pthread_mutex_lock(&e->mu);
    while (!e->stop) {
        srvocsp__entry *top;
        int64_t now;

        if (e->fork_hold) {
            /* Another thread is about to fork: wait here, holding nothing
             * but this lock, which the wait gives back (lifecycle.c). */
            e->parked = true;
            pthread_cond_broadcast(&e->progress);
            while (e->fork_hold)
                pthread_cond_wait(&e->wake, &e->mu);
            e->parked = false;
        }
        if (turn_locked(e, items))
            continue;

        now = srvocsp__engine_now(e);
        if (e->n_entries == 0 && e->in_flight == 0 && e->n_ready == 0) {
            /* Nothing left to serve: the thread ends; the next open starts
             * a new one. */
            e->idle = true;
            pthread_cond_broadcast(&e->settled);
            break;
        }
        top = srvocsp__heap_top(e);
        e->idle = e->in_flight == 0 && e->n_ready == 0 && !srvocsp__pool_busy_locked(e) &&
                  (top == NULL || top->next_at > now);
        if (e->idle)
            pthread_cond_broadcast(&e->settled);
        wait_locked(e, top, now);
    }
    e->running = false;
    pthread_cond_broadcast(&e->progress); /* a fork may wait for the thread to park */
    pthread_cond_broadcast(&e->settled);
    pthread_mutex_unlock(&e->mu);
    srvocsp__tl_engine = NULL;
    return NULL;
}

int64_t srvocsp__engine_step(srvocsp_engine *e)
{
    srvocsp__start_item items[START_BATCH];
    srvocsp__entry *top;
    int64_t next;

    pthread_mutex_lock(&e->mu);
    while (turn_locked(e, items))
        ;
    top = srvocsp__heap_top(e);
    next = top != NULL ? top->next_at : INT64_MAX;
    pthread_mutex_unlock(&e->mu);
    return next;
}

/* Starts the scheduler thread if it is not running.  A thread that ended
 * by itself (no entries left) is joined first; it no longer touches the
 * engine once |running| is false except for its final unlock, so joining
 * without the lock is safe. */
srvocsp_error srvocsp__engine_start_locked(srvocsp_engine *e)
{
    int rc;

    while (e->joining)
        pthread_cond_wait(&e->progress, &e->mu);
    if (e->running || e->manual || e->exited)
        return SRVOCSP_OK; /* a manual engine is stepped by its owner; at exit
                            * nothing fetches (the handles serve what they hold) */
    if (e->thread_valid) {
        pthread_t t = e->thread;

        e->joining = true;
        pthread_mutex_unlock(&e->mu);
        pthread_join(t, NULL);
        pthread_mutex_lock(&e->mu);
        e->joining = false;
        e->thread_valid = false;
        pthread_cond_broadcast(&e->progress);
        if (e->running)
            return SRVOCSP_OK;
    }
    e->stop = false;
    rc = srvocsp__thread_create(&e->thread, engine_main, e);
    if (rc != 0) {
        srvocsp__set_error(SRVOCSP_E_INTERNAL, "cannot start the engine thread: %s", strerror(rc));
        return SRVOCSP_E_INTERNAL;
    }
    e->running = true;
    e->thread_valid = true;
    e->idle = false;
    return SRVOCSP_OK;
}

/* Frees everything still attached to a stopped engine. */
void srvocsp__engine_teardown_locked(srvocsp_engine *e)
{
    size_t i;

    srvocsp__notes_drop_locked(e);
    while (e->done_head != NULL) {
        srvocsp__completion *c = e->done_head;
        srvocsp__entry *en = c->en;

        e->done_head = c->next;
        if (srvocsp__sources[c->src].attempt) /* it held the entry in flight */
            en->in_flight = false;
        srvocsp__completion_free(c);
        srvocsp__entry_unref_locked(en);
    }
    e->done_tail = NULL;
    for (i = 0; i < e->n_buckets; i++) {
        while (e->buckets[i] != NULL) {
            srvocsp__entry *en = e->buckets[i];

            while (en->handles != NULL) {
                srvocsp_handle *h = en->handles;

                en->handles = h->next;
                if (h->cb_arg_free != NULL)
                    h->cb_arg_free(h->cb_arg);
                free(h);
            }
            srvocsp__entry_retire_locked(en);
            srvocsp__entry_free(en); /* whatever its count: the engine is going away */
        }
    }
    while (e->hosts != NULL) {
        srvocsp__host *h = e->hosts;

        e->hosts = h->next;
        free(h);
    }
    free(e->buckets);
    free(e->heap);
    e->buckets = NULL;
    e->heap = NULL;
    e->n_buckets = e->heap_len = e->heap_cap = 0;
}

void srvocsp__engine_after_fork_locked(srvocsp_engine *e)
{
    srvocsp__host *h;
    size_t i;

    /* Results that arrived before the fork are still good: keep them.
     * Transfers the parent's threads were running will never complete
     * here: release their slots and ask again. */
    for (i = 0; i < e->n_buckets; i++) {
        srvocsp__entry *en;

        for (en = e->buckets[i]; en != NULL; en = en->hash_next) {
            bool done_queued = false;
            srvocsp__completion *c;

            for (c = e->done_head; c != NULL; c = c->next)
                done_queued |= c->en == en && srvocsp__sources[c->src].attempt;
            if (en->in_flight && !done_queued) {
                en->in_flight = false;
                en->host = NULL;
                en->refs--; /* the lost transfer's reference; handles keep it alive */
                srvocsp__heap_set(e, en, srvocsp__engine_now(e));
            }
            if (en->queued) {
                srvocsp__ready_remove(e, en);
                srvocsp__heap_set(e, en, srvocsp__engine_now(e));
            }
            /* A fleet lease is the parent's: releasing it from here would
             * free it while the parent fetches under it. */
            en->fleet_lease = NULL;
            en->fleet_token[0] = '\0';
        }
    }
    e->in_flight = 0;
    for (h = e->hosts; h != NULL; h = h->next)
        h->in_flight = 0;
    for (srvocsp__completion *c = e->done_head; c != NULL; c = c->next) {
        if (c->slot) { /* complete() gives these back */
            e->in_flight++;
            if (c->en->host != NULL)
                c->en->host->in_flight++;
        }
        c->offer = NULL;    /* its thread is not in this process */
    }
    e->running = false;
    e->thread_valid = false;
    e->joining = false;
    e->stop = false;
    e->wake_sent = false; /* the parent's pending wakeup proves nothing here */
}
