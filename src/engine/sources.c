/*
 * Before a transfer starts, the stores may hold the answer already: a
 * read-only directory is looked at instead of the network; another
 * process sharing the directory may be fetching (its lease) or may have
 * saved a newer response; the fleet's store may hold one or another
 * machine may be fetching.  Whatever a store brings is verified here,
 * where its bytes enter, judged by the verdict, and handed to the engine
 * thread as a completion from its source (complete.c), which applies the
 * verdict once more against what is held by then.  Everything here runs
 * on the engine thread without the lock and reads only the entries'
 * immutable fields (and the engine thread's own).
 */
#include "engine/engine.h"
#include "engine/fleet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How much longer than its retrieval timeout another process may hold a
 * certificate's lease before this one stops waiting for it. */
#define LEASE_GRACE_S 2

/* Reads and verifies |en|'s stored response when its version moved past
 * |known|.  SRVOCSP_OK with |*snap| NULL when there is nothing new. */
static srvocsp_error read_stored(srvocsp_engine *e, srvocsp__entry *en, uint64_t known,
                                 uint64_t *version, srvocsp_response **snap, char *why,
                                 size_t whylen)
{
    srvocsp__policy pol = en->pol;
    unsigned char *der = NULL;
    size_t len = 0;
    srvocsp_error err;

    *snap = NULL;
    *version = en->store->ops->version(en->store, en->store_name);
    if (*version == 0 || *version == known)
        return SRVOCSP_OK;
    err = en->store->ops->load(en->store, en->store_name, en->max_response_size, &der, &len,
                               version, why, whylen);
    if (err == SRVOCSP_OK && der != NULL) {
        pol.now = srvocsp__engine_now(e);
        err = srvocsp__verify(der, len, en->leaf, en->issuer, &pol, snap, why, whylen);
    }
    free(der);
    return err;
}

/* Has another process sharing the directory saved a response that the
 * verdict would take and that is not itself due?  Then it is the answer. */
static bool take_from_store(srvocsp_engine *e, srvocsp__start_item *it)
{
    srvocsp__entry *en = it->c->en;
    srvocsp_response *snap = NULL;
    uint64_t version = 0;
    char why[SRVOCSP__REASON_LEN];
    srvocsp_error err;
    int64_t now = srvocsp__engine_now(e);

    if (read_stored(e, en, it->known_version, &version, &snap, why, sizeof(why)) != SRVOCSP_OK ||
        snap == NULL)
        return false;
    if (srvocsp__verdict_judge(&en->sched, it->held, snap, now, &err, why, sizeof(why)) !=
            SRVOCSP__V_REPLACE ||
        srvocsp__sched_after_success(&en->sched, snap, now, false) <= now) {
        srvocsp_response_free(snap);
        return false;
    }
    it->c->src = SRVOCSP__SRC_DIRECTORY;
    it->c->store_version = version;
    it->c->has_version = true;
    srvocsp__deliver(e, it->c, snap, 0);
    return true;
}

/* Read-only directory (srvocsp_params.directory_mode): the due entry looks
 * at its stored file instead of asking the network.  A new version that
 * verifies goes to the verdict; one that does not is reported once (a
 * FAILED event) and not read again. */
static void sync_read_only(srvocsp_engine *e, srvocsp__start_item *it)
{
    srvocsp__completion *c = it->c;
    srvocsp__entry *en = c->en;
    srvocsp_response *snap = NULL;
    uint64_t version = 0;
    char why[SRVOCSP__REASON_LEN];
    srvocsp_error err;

    c->src = SRVOCSP__SRC_READ_ONLY;
    err = read_stored(e, en, it->known_version, &version, &snap, why, sizeof(why));
    if (version != 0) {
        c->store_version = version;
        c->has_version = true;
    }
    if (err != SRVOCSP_OK) {
        c->fail = true;
        c->fail_err = err;
        srvocsp__fmt(c->detail, sizeof(c->detail), "stored response ignored (%s): %s",
                     srvocsp_error_name(err), why);
    }
    srvocsp__deliver(e, c, snap, 0);
}

/* One process at a time asks the responder for a certificate kept in a
 * shared directory: false when another one holds the lease. */
static bool take_lease(srvocsp_engine *e, srvocsp__start_item *it)
{
    srvocsp__entry *en = it->c->en;
    int64_t now;

    if (en->store->ops->lease == NULL)
        return true;
    switch (en->store->ops->lease(en->store, en->store_name, &it->c->lease)) {
    case 1:
        it->c->leased = true;
        en->lease_busy_since = 0;
        return true;
    case 0: break;
    default: return true;
    }
    /* A holder has one retrieval's time.  One that keeps the lease longer
     * is stopped or hung (its flock stays until it dies): a stuck holder
     * must never cost this process its staple, so ask without the lease. */
    now = srvocsp__engine_now(e);
    if (en->lease_busy_since == 0 || en->lease_busy_since > now)
        en->lease_busy_since = now;
    if (now - en->lease_busy_since <= (int64_t)(en->url_timeout_ms / 1000) + LEASE_GRACE_S)
        return false;
    en->lease_busy_since = 0;
    return true;
}

/* The fleet may hold the answer already, or another machine may be
 * fetching it.  True when the transfer is not to start. */
static bool fleet_step(srvocsp_engine *e, srvocsp__start_item *it)
{
    srvocsp__completion *c = it->c;
    srvocsp_response *snap = NULL;
    int64_t at = 0;

    switch (srvocsp__fleet_before_fetch(e, c->en, it->held, it->fleet_look_only, &snap, &at)) {
    case SRVOCSP__FLEET_ADOPT:
        c->src = SRVOCSP__SRC_FLEET;
        srvocsp__deliver(e, c, snap, 0);
        return true;
    case SRVOCSP__FLEET_WAIT:
        srvocsp__deliver(e, c, NULL, at);
        return true;
    case SRVOCSP__FLEET_NOTHING:
        srvocsp__deliver(e, c, NULL, 0); /* planned from what is held */
        return true;
    default:
        return false;
    }
}

void srvocsp__sources_start(srvocsp_engine *e, srvocsp__start_item *items, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        srvocsp__start_item *it = &items[i];
        srvocsp_error err;

        if (srvocsp__dirsync_read_only(&it->c->en->dirsync)) {
            sync_read_only(e, it);
            continue;
        }
        /* The lease first, then the look at the store: a holder saves
         * before it gives the lease back, so whoever takes it next sees
         * that save and adopts it instead of asking again. */
        if (it->check_store && !take_lease(e, it)) {
            /* Another process is asking the responder for this
             * certificate: look for its save in a moment. */
            srvocsp__deliver(e, it->c, NULL, srvocsp__engine_now(e) + SRVOCSP__LEASE_RETRY_S);
            continue;
        }
        if (it->check_store && take_from_store(e, it))
            continue;
        if (fleet_step(e, it))
            continue;
        pthread_mutex_lock(&e->mu);
        e->stats.requests_started++;
        pthread_mutex_unlock(&e->mu);
        err = e->transport.start(e->transport.ctx, &it->req, srvocsp__transport_done, it->c);
        if (err != SRVOCSP_OK) {
            srvocsp_http_result res;

            memset(&res, 0, sizeof(res));
            res.error = err;
            res.detail = "transport refused to start the request";
            srvocsp__transport_done(it->c, &res);
        }
    }
    for (i = 0; i < n; i++)
        srvocsp_response_free(items[i].held);
}
