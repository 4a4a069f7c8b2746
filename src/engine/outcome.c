/*
 * What happens to a verified response once it is judged.  The verdict
 * (core/verdict.c) is the same for every source; what differs is written
 * in one table, srvocsp__sources: whether the response is saved to the
 * directory or shared with the fleet, whether it ends a scheduled attempt,
 * whether a refusal moves on to the next URL, and whether the callbacks
 * hear of it.  Everything here runs under e->mu on the engine thread (or,
 * for SRC_OPEN, the opener's).
 */
#include "engine/engine.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

const srvocsp__source_policy srvocsp__sources[SRVOCSP__SRC_N] = {
    /* {label, save, share, attempt, next_url, report, fetch, events, pickup} */
    [SRVOCSP__SRC_NETWORK] = {NULL, true, true, true, true, true, false, true, false},
    /* Judged newer when read before a fetch: refused by the time it is
     * taken (overtaken since), the fetch goes on at once. */
    [SRVOCSP__SRC_DIRECTORY] = {"store", false, false, true, false, false, true, true, true},
    /* The look replaces the fetch: a refusal is the attempt's failure. */
    [SRVOCSP__SRC_READ_ONLY] = {"store", false, false, true, false, true, false, true, true},
    /* The directory keeps a copy of what the fleet brought. */
    [SRVOCSP__SRC_FLEET] = {"shared store", true, false, true, false, false, true, true, true},
    /* An announcement stands in for the entry's next attempt: it takes the
     * entry off its schedule and out of its ready queue (fleet.c
     * adopt_locked) and holds it in flight, so it counts as an attempt,
     * and an opener waiting for a first attempt is answered by it.  A
     * refused one is dropped without a report: it is another process's
     * word, and the entry is planned again from what it holds. */
    [SRVOCSP__SRC_ANNOUNCE] = {"shared store", true, false, true, false, false, false, true, true},
    /* Beside the schedule; the offerer hears of a refusal. */
    [SRVOCSP__SRC_OFFER] = {"offered", true, false, false, false, false, false, true, false},
    /* Loaded from the directory by the opener: nothing to save, no
     * callback (a note instead), planned by the opener. */
    [SRVOCSP__SRC_OPEN] = {"store", false, false, false, false, true, false, false, false},
};

/* The attempt is over without a new response to serve: back off. */
static void attempt_refused(srvocsp_engine *e, srvocsp__entry *en, srvocsp_error err,
                            const char *why, const char *url, srvocsp__event **events)
{
    en->last_err = err;
    en->failures++;
    en->unchanged = 0;
    e->stats.failures++;
    srvocsp__entry_set_text(en, SRVOCSP__TEXT_LAST, why);
    srvocsp__heap_set(e, en,
                      srvocsp__sched_after_failure(&en->sched, srvocsp__cell_peek(&en->cell),
                                                   srvocsp__engine_now(e), en->failures,
                                                   srvocsp__rand_unit_locked(e),
                                                   e->cfg.jitter_percent));
    srvocsp__events_queue(en, SRVOCSP_EVENT_FAILED, NULL, err,
                          srvocsp__entry_text(en, SRVOCSP__TEXT_LAST), url, 0, events);
}

void srvocsp__outcome_url_failed_locked(srvocsp_engine *e, srvocsp__entry *en, srvocsp_error err,
                                        const char *why, const char *url, srvocsp__event **events)
{
    char *all = srvocsp__entry_text_buf(en, SRVOCSP__TEXT_ATTEMPT);

    /* Keep every URL's reason: "url: reason; url: reason". */
    if (all != NULL) {
        size_t used = strlen(all);

        snprintf(all + used, SRVOCSP__REASON_LEN - used, "%s%s: %s", used ? "; " : "", url, why);
    }
    en->last_err = err;
    if (srvocsp__clock_bound(err))
        en->clock_refused = true; /* the failure backoff looks again */
    if (++en->url_tries < en->req.n_urls) {
        en->url_idx = (en->url_idx + 1) % en->req.n_urls;
        srvocsp__ready_push(e, en); /* same attempt, next URL, at once */
        return;
    }
    attempt_refused(e, en, err, all != NULL ? all : why, url, events);
}

void srvocsp__outcome_nothing_locked(srvocsp_engine *e, srvocsp__entry *en, int64_t at,
                                     srvocsp_error err, const char *why, srvocsp__event **events)
{
    if (why != NULL) {
        e->stats.failures++;
        en->last_err = err;
        srvocsp__entry_set_text(en, SRVOCSP__TEXT_LAST, why);
    }
    srvocsp__heap_set(e, en, at != 0 ? at : srvocsp__entry_plan_locked(en, srvocsp__engine_now(e)));
    if (why != NULL)
        srvocsp__events_queue(en, SRVOCSP_EVENT_FAILED, NULL, err,
                              srvocsp__entry_text(en, SRVOCSP__TEXT_LAST), NULL, 0, events);
}

/* Schedules after a published response and queues its events. */
static void accepted(srvocsp_engine *e, srvocsp__entry *en, srvocsp_response *snap,
                     const char *url, const srvocsp__source_policy *pol, int store_errno,
                     const char *store_why, srvocsp__event **events)
{
    srvocsp_event_type type = snap->status == SRVOCSP_STATUS_GOOD      ? SRVOCSP_EVENT_UPDATED
                              : snap->status == SRVOCSP_STATUS_REVOKED ? SRVOCSP_EVENT_REVOKED
                                                                       : SRVOCSP_EVENT_UNKNOWN;
    int64_t now = srvocsp__engine_now(e), at;

    e->stats.responses_accepted++;
    en->unchanged = 0;
    if (snap->status == SRVOCSP_STATUS_UNKNOWN) {
        /* A new certificate is often unknown to its responder for a few
         * minutes after issuance: ask again at the failure backoff, not at
         * the response's refresh point days away. */
        en->failures++;
        en->last_err = SRVOCSP_E_STATUS_UNKNOWN;
        {
            char *b = srvocsp__entry_text_buf(en, SRVOCSP__TEXT_LAST);

            if (b != NULL)
                snprintf(b, SRVOCSP__REASON_LEN,
                         "%s: the responder does not know the certificate (unknown)", url);
        }
        at = srvocsp__sched_after_failure(&en->sched, snap, now, en->failures,
                                          srvocsp__rand_unit_locked(e), e->cfg.jitter_percent);
    } else {
        en->failures = 0;
        srvocsp__entry_clock_clear_locked(en);
        en->last_err = SRVOCSP_OK;
        srvocsp__entry_set_text(en, SRVOCSP__TEXT_LAST, "");
        at = srvocsp__sched_after_success(&en->sched, snap, now, true);
        /* Processes sharing a store must not all ask at the same second:
         * move the refresh earlier by up to half the jitter share of the
         * wait. */
        at = srvocsp__jitter_earlier_locked(e, at, now);
    }
    if (srvocsp__dirsync_read_only(&en->dirsync)) /* the writer refreshes; we re-read */
        at = srvocsp__dirsync_next(&en->dirsync, &en->sched, snap, now);
    /* A source that is not an attempt (an offer) arrives beside the
     * schedule: it never puts off an attempt already due sooner (a
     * refresh_now, a retry). */
    if (!pol->attempt && en->heap_idx != SIZE_MAX && en->next_at < at)
        at = en->next_at;
    srvocsp__heap_set(e, en, at);
    srvocsp__events_queue(en, type, snap, SRVOCSP_OK, "", url, store_errno, events);
    if (store_errno != 0) {
        e->stats.store_failures++;
        srvocsp__events_queue(en, SRVOCSP_EVENT_STORE_FAILED, snap, SRVOCSP_E_STORE, store_why,
                              url, store_errno, events);
    }
}

/* Persists an accepted response; runs without the lock.  Returns the
 * errno of a failed write, 0 on success. */
static int persist(srvocsp__entry *en, srvocsp_response *snap, char *why, size_t whylen,
                   uint64_t *version)
{
    int err_no = 0;

    if (en->store->ops->save(en->store, en->store_name, snap->view.pb, snap->len, &err_no, why,
                             whylen) == SRVOCSP_OK) {
        *version = en->store->ops->version(en->store, en->store_name);
        return 0;
    }
    return err_no ? err_no : EIO;
}

/* Serves |snap|, saves it as the source's policy says (the disk follows
 * what is already served), schedules and queues the events. */
static void publish(srvocsp_engine *e, srvocsp__entry *en, srvocsp_response *snap,
                    const char *label, const srvocsp__source_policy *pol,
                    srvocsp__event **events)
{
    char why[SRVOCSP__REASON_LEN];
    int store_errno = 0;

    srvocsp__cell_publish(&en->cell, srvocsp_response_up_ref(snap));
    /* A read-only directory belongs to another process: nothing is ever
     * written there. */
    if (en->store != NULL && pol->save &&
        !srvocsp__dirsync_read_only(&en->dirsync)) {
        uint64_t version = 0;

        en->refs++; /* the lock goes down: keep the entry */
        pthread_mutex_unlock(&e->mu);
        store_errno = persist(en, snap, why, sizeof(why), &version);
        pthread_mutex_lock(&e->mu);
        en->refs--; /* the caller holds another reference */
        if (store_errno == 0)
            en->store_version = version;
    }
    accepted(e, en, snap, label, pol, store_errno, store_errno ? why : NULL, events);
}

/* The stored response loaded at open: served at once, or a note says why
 * not; the opener plans the entry. */
static void publish_open(srvocsp__entry *en, srvocsp_response *snap)
{
    if (snap->status == SRVOCSP_STATUS_UNKNOWN) { /* asked again at the failure backoff */
        en->failures = 1;
        en->last_err = SRVOCSP_E_STATUS_UNKNOWN;
        srvocsp__entry_set_text(en, SRVOCSP__TEXT_LAST, "stored response: the responder did not "
                                                        "know the certificate (unknown)");
    }
    srvocsp__cell_publish(&en->cell, srvocsp_response_up_ref(snap));
}

static void refused(srvocsp_engine *e, srvocsp__entry *en, const srvocsp__source_policy *pol,
                    srvocsp_error err, const char *why, const char *label,
                    srvocsp__event **events)
{
    char msg[SRVOCSP__REASON_LEN];

    if (pol->next_url) {
        /* A stale mirror, a replay: another URL may do better. */
        srvocsp__outcome_url_failed_locked(e, en, err, why, label, events);
    } else if (pol->report && pol->events) {
        srvocsp__fmt(msg, sizeof(msg), "stored response not used (%s): %s",
                     srvocsp_error_name(err), why);
        srvocsp__outcome_nothing_locked(e, en, 0, err, msg, events);
    } else if (pol->report) {
        srvocsp__fmt(msg, sizeof(msg), "stored response ignored (%s): %s",
                     srvocsp_error_name(err), why);
        srvocsp__entry_add_note_locked(en, err, msg);
    } else if (pol->fetch) {
        /* The attempt goes on as if the store had held nothing. */
        srvocsp__heap_set(e, en, srvocsp__engine_now(e));
    }
    /* Otherwise nothing here: the completion plans the entry again, the
     * offerer is told. */
}

srvocsp__verdict srvocsp__outcome_take_locked(srvocsp_engine *e, srvocsp__entry *en,
                                              srvocsp__source src, srvocsp_response *snap,
                                              const char *url, srvocsp__event **events,
                                              srvocsp_error *err, char *why, size_t whylen)
{
    const srvocsp__source_policy *pol = &srvocsp__sources[src];
    srvocsp_response *cur = srvocsp__cell_peek(&en->cell);
    const char *label = pol->label ? pol->label : url;
    int64_t now = srvocsp__engine_now(e);
    srvocsp__verdict v = srvocsp__verdict_judge(&en->sched, cur, snap, now, err, why, whylen);

    if (pol->next_url && v != SRVOCSP__V_REFUSE)
        en->url_pref = en->url_idx; /* this URL answers well: ask it first */
    switch (v) {
    case SRVOCSP__V_REPLACE:
        if (pol->pickup)
            e->stats.store_pickups++;
        if (pol->events)
            publish(e, en, snap, label, pol, events);
        else /* the opener's: no callback to tell, the opener plans */
            publish_open(en, snap);
        break;
    case SRVOCSP__V_UNCHANGED:
        if (pol->next_url) {
            /* The responder (a source with URLs) handed back what we hold
             * (a CDN cache): not a failure; ask again after a fraction of
             * the time it can still be served. */
            e->stats.unchanged++;
            en->unchanged++;
            en->failures = 0;
            srvocsp__entry_clock_clear_locked(en);
            en->last_err = SRVOCSP_OK;
            srvocsp__entry_set_text(en, SRVOCSP__TEXT_LAST, "");
            srvocsp__heap_set(e, en, srvocsp__sched_after_unchanged(&en->sched, cur, now));
        } else if (pol->attempt) {
            srvocsp__heap_set(e, en, srvocsp__entry_plan_locked(en, now));
        }
        break;
    case SRVOCSP__V_REFUSE:
        refused(e, en, pol, *err, why, label, events);
        break;
    }
    return v;
}
