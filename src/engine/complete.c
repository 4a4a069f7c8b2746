/*
 * The engine thread's handling of one completion: the transfer slot goes
 * back (once, here), bytes that arrived from the network or an offer are
 * verified (a store's response was verified where it was read), the
 * verdict is applied as the source's policy says (outcome.c), and what a
 * sharing source brought (the network's answer) goes to the fleet.
 */
#include "engine/engine.h"
#include "engine/fleet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An offering thread waits for the engine thread's verdict here. */
struct offer_wait {
    bool done;
    srvocsp_error err;
    char why[SRVOCSP__REASON_LEN];
};

/* The entry's work is over for now; openers waiting for a first attempt
 * are woken (|counted|: this was one). */
static void work_over(srvocsp_engine *e, srvocsp__entry *en, bool counted)
{
    if (counted)
        en->attempts_done++;
    en->in_flight = false;
    pthread_cond_broadcast(&e->progress);
}

static void reply_offer(srvocsp_engine *e, srvocsp__completion *c, srvocsp_error err,
                        const char *why)
{
    if (c->offer == NULL)
        return;
    c->offer->err = err;
    snprintf(c->offer->why, sizeof(c->offer->why), "%s", err != SRVOCSP_OK ? why : "");
    c->offer->done = true;
    pthread_cond_broadcast(&e->progress);
}

void srvocsp__complete_locked(srvocsp_engine *e, srvocsp__completion *c, srvocsp__event **events)
{
    srvocsp__entry *en = c->en;
    const srvocsp__source_policy *pol = &srvocsp__sources[c->src];
    srvocsp_response *snap = NULL;
    char why[SRVOCSP__REASON_LEN];
    srvocsp_error err = SRVOCSP_OK;
    srvocsp__verdict v = SRVOCSP__V_REFUSE;

    why[0] = '\0';
    if (c->slot) {
        srvocsp__slot_release_locked(e, en);
        c->slot = false; /* once, even if the pool sends it back here */
    }
    if (c->has_version)
        en->store_version = c->store_version; /* an unusable version is not read again */

    if (!pol->events && en->dead)
        goto out; /* the opener's, closed before its stored response was read */
    if (c->wait) {
        if (!en->dead)
            srvocsp__outcome_nothing_locked(e, en, c->wait_at, c->fail_err,
                                            c->fail ? c->detail : NULL, events);
        /* A look at a store that found nothing new was the attempt; a
         * network attempt that waits (another holds the lease, the fleet
         * is fetching) is only put off. */
        work_over(e, en, pol->pickup);
        goto out;
    }
    if (c->snap != NULL) {
        snap = c->snap;
        c->snap = NULL;
        err = c->evaluated ? c->eval_err : SRVOCSP_OK;
    } else if (c->evaluated) {
        err = c->eval_err;
        srvocsp__fmt(why, sizeof(why), "%s", c->eval_why);
    } else if (c->src != SRVOCSP__SRC_OFFER && !en->dead && srvocsp__pool_take_locked(e, c)) {
        /* Verified on a pool thread, then back here with the result; the
         * completion keeps its reference.  Offers stay here: their thread
         * waits for the verdict. */
        return;
    } else {
        pthread_mutex_unlock(&e->mu);
        err = srvocsp__completion_evaluate(e, c, &snap, why, sizeof(why));
        pthread_mutex_lock(&e->mu);
    }

    if (!pol->events) {
        /* The directory's response of a deferred open, read and verified
         * here instead of in srvocsp_open (handle.c): served at once unless
         * refused, then a note says why (|why| is its text); the entry is
         * planned below, only now, so nothing is fetched before the stored
         * response was judged. */
        if (err != SRVOCSP_OK)
            srvocsp__entry_add_note_locked(en, err, why);
        else if (snap != NULL)
            (void)srvocsp__outcome_take_locked(e, en, c->src, snap, NULL, NULL, &err, why,
                                               sizeof(why));
        goto out;
    }

    if (c->src == SRVOCSP__SRC_OFFER) {
        if (en->dead) {
            err = SRVOCSP_E_SHUTDOWN;
            srvocsp__fmt(why, sizeof(why), "the certificate is no longer served");
        } else if (err == SRVOCSP_OK) {
            (void)srvocsp__outcome_take_locked(e, en, c->src, snap, c->url, events, &err, why,
                                               sizeof(why));
        }
        reply_offer(e, c, err, why);
        goto out;
    }
    if (en->dead) {
        en->in_flight = false;
        goto out;
    }
    if (err != SRVOCSP_OK) {
        srvocsp__outcome_url_failed_locked(e, en, err, why, c->url, events);
        if (!en->queued)
            work_over(e, en, pol->attempt);
        goto out;
    }
    v = srvocsp__outcome_take_locked(e, en, c->src, snap, c->url, events, &err, why, sizeof(why));
    if (!en->queued)
        work_over(e, en, pol->attempt);
    if (pol->share && (en->fleet != NULL || en->fleet_lease != NULL)) {
        /* The fleet gets a new response, and this fetch's lease goes back
         * (after the save, so the others find it). */
        pthread_mutex_unlock(&e->mu);
        srvocsp__fleet_after_fetch(e, en, v == SRVOCSP__V_REPLACE ? snap : NULL);
        pthread_mutex_lock(&e->mu);
    }
    /* An announcement that crossed this work is judged now. */
    if (en->fleet_pending && !en->in_flight && !en->queued)
        srvocsp__fleet_pending_locked(e, en);
out:
    /* Whatever happened, a certificate in service stays scheduled. */
    if (!en->dead && !en->in_flight && !en->queued && en->heap_idx == SIZE_MAX)
        srvocsp__heap_set(e, en, srvocsp__entry_plan_locked(en, srvocsp__engine_now(e)));
    srvocsp_response_free(snap);
    srvocsp__completion_free(c);
    srvocsp__entry_unref_locked(en); /* the completion's reference */
}

srvocsp_error srvocsp__entry_offer(srvocsp__entry *en, const unsigned char *der, size_t len)
{
    srvocsp_engine *e = en->eng;
    srvocsp__completion *c = NULL, *q;
    struct offer_wait w;
    bool on_engine_thread;

    if (len > en->max_response_size) {
        srvocsp__set_error(SRVOCSP_E_TOO_LARGE, "offered response of %zu bytes exceeds the "
                           "maximum response size of %zu", len, en->max_response_size);
        return SRVOCSP_E_TOO_LARGE;
    }
    memset(&w, 0, sizeof(w));
    w.err = SRVOCSP_E_SHUTDOWN;
    snprintf(w.why, sizeof(w.why), "the engine stopped before the offer was judged");

    pthread_mutex_lock(&e->mu);
    if (en->dead || e->stop) {
        pthread_mutex_unlock(&e->mu);
        srvocsp__set_error(SRVOCSP_E_SHUTDOWN, "the certificate is no longer served");
        return SRVOCSP_E_SHUTDOWN;
    }
    c = srvocsp__completion_new_locked(en, SRVOCSP__SRC_OFFER);
    if (c == NULL || (c->body = srvocsp__malloc(len)) == NULL ||
        (c->content_type = srvocsp__strdup("application/ocsp-response")) == NULL) {
        if (c != NULL) {
            srvocsp__completion_free(c);
            srvocsp__entry_unref_locked(en);
        }
        pthread_mutex_unlock(&e->mu);
        srvocsp__set_error(SRVOCSP_E_NOMEM, NULL);
        return SRVOCSP_E_NOMEM;
    }
    memcpy(c->body, der, len);
    c->body_len = len;
    c->http_status = 200;
    c->url = "offered";
    /* From an update callback (the engine thread) the verdict comes after
     * the callback returns: it cannot be waited for. */
    on_engine_thread = srvocsp__engine_thread_is_self(e);
    c->offer = on_engine_thread ? NULL : &w;
    srvocsp__done_push_locked(e, c);
    if (on_engine_thread) {
        pthread_mutex_unlock(&e->mu);
        return SRVOCSP_OK;
    }
    while (!w.done && e->running && !e->stop)
        pthread_cond_wait(&e->progress, &e->mu);
    if (!w.done) /* still queued: it must not point at this stack */
        for (q = e->done_head; q != NULL; q = q->next)
            if (q == c)
                q->offer = NULL;
    pthread_mutex_unlock(&e->mu);
    if (w.err != SRVOCSP_OK)
        srvocsp__set_error(w.err, "offered response refused: %s", w.why);
    return w.err;
}
