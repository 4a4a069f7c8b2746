/*
 * The fleet: one fetch per certificate for all the processes sharing a
 * coordinating store (Redis, for machines).
 *
 * Before a scheduled fetch the engine asks srvocsp__fleet_before_fetch:
 *  - the shared store holds a verified response the verdict takes over
 *    ours and that is not itself due: adopt it (no request);
 *  - else take the certificate's lease: held (or the store cannot say):
 *    fetch; held by another: wait for its result, unless what we serve is
 *    about to fall below MinValidity, in which case we fetch regardless
 *    (a stuck holder must never cause an outage).
 * After a fetch the response is saved (srvocsp__fleet_save: the verdict
 * decides on this side, the store only compares and sets), which
 * announces it, and the lease is given back.  Announcements are read from
 * the engine's loop (srvocsp__fleet_service_locked, the subscription's
 * socket polled in the engine's wait), so an announced response is
 * adopted within a second.
 *
 * Nothing read from the store is trusted: it is verified here, where its
 * bytes enter, and judged by the verdict like a network answer.  A value
 * that fails verification is reported (the entry's last failure and a
 * FAILED callback) and discarded from the store if it is still those
 * bytes, so the next good save replaces it; one the verdict refuses is
 * reported, and ours is saved over it when the verdict says ours wins.
 *
 * When the store says it may have lost data (a reconnect: restarted empty,
 * failed over), every response held is saved again.
 *
 * All store calls run on the engine thread without the engine lock; the
 * Redis store bounds each by a short timeout and backs off after failures.
 */
#include "engine/fleet.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LEASE_MARGIN_MS 2000    /* beyond the fetch's own time bound */
#define LEASE_MAX_MS 120000
#define FORCE_MARGIN_MIN_S 60   /* fetch regardless this close to MinValidity */
#define COLD_RECHECK_S 2        /* nothing served: look again this often */
#define SAVE_TRIES 3            /* compare-and-set rounds before giving way */

/* The store that coordinates |en| across machines (a directory's own
 * lease, for the processes of one machine, is the engine's). */
static srvocsp__store *coordinator(const srvocsp__entry *en)
{
    if (en->fleet != NULL && en->fleet->ops->lease_acquire != NULL)
        return en->fleet;
    return NULL;
}

/* ---------------------------------------------------------------------
 * Saving: the verdict decides here, the store compares and sets
 * ------------------------------------------------------------------- */

static bool sha1_hex(const unsigned char *der, size_t len, char out[41])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0, i;

    if (!EVP_Digest(der, len, md, &n, EVP_sha1(), NULL) || n != 20)
        return false;
    for (i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    return true;
}

srvocsp_error srvocsp__fleet_save(srvocsp__store *st, const char *name,
                                  const srvocsp_response *ours, const srvocsp_response *seen,
                                  X509 *leaf, X509 *issuer,
                                  const srvocsp__policy *pol, const srvocsp__sched *sched,
                                  size_t cap, bool *stored, char *why, size_t whylen)
{
    srvocsp_error err = SRVOCSP_OK;
    int tries;

    *stored = false;
    if (st->ops->save_if == NULL)
        return SRVOCSP_OK;
    for (tries = 0; tries < SAVE_TRIES; tries++) {
        unsigned char *der = NULL;
        size_t len = 0;
        uint64_t version = 0;
        char expect[41], vwhy[SRVOCSP__REASON_LEN];
        srvocsp_response *held = NULL;
        srvocsp_error verr;
        bool set = false, skip = false;

        expect[0] = '\0';
        if (st->ops->load(st, name, cap, &der, &len, &version, why, whylen) != SRVOCSP_OK) {
            /* Unreadable (a wrong type, oversized) or unreachable: what no
             * reader can use goes, then the save says which it was. */
            if (st->ops->discard != NULL)
                st->ops->discard(st, name, NULL, cap);
        } else if (der != NULL) {
            if (len == ours->len && memcmp(der, ours->view.pb, len) == 0) {
                skip = true; /* already there */
            } else if (!sha1_hex(der, len, expect)) {
                skip = true;
                err = SRVOCSP_E_INTERNAL;
                srvocsp__fmt(why, whylen, "cannot hash the stored response");
            } else {
                if (seen != NULL && len == seen->len && memcmp(der, seen->view.pb, len) == 0) {
                    /* The bytes the caller read and verified a moment ago:
                     * each arrival is verified once. */
                    held = srvocsp_response_up_ref((srvocsp_response *)seen);
                    verr = SRVOCSP_OK;
                } else {
                    verr = srvocsp__verify(der, len, leaf, issuer, pol, &held, vwhy,
                                           sizeof(vwhy));
                }
                if (verr == SRVOCSP_E_NOT_YET_VALID) {
                    /* From the future on this host's clock: newer than
                     * anything it could judge it against, so left as it is. */
                    skip = true;
                    held = NULL;
                } else if (verr != SRVOCSP_OK) {
                    held = NULL; /* a stored value that does not verify counts as nothing */
                } else if (SRVOCSP__PLANTED(SRVOCSP__PLANT_FLEET) &&
                           held->this_update >= ours->this_update &&
                           !(held->this_update == ours->this_update &&
                             ours->status == SRVOCSP_STATUS_REVOKED)) {
                    skip = true; /* the store's old rule of its own: thisUpdate alone */
                }
            }
        }
        /* The verdict, against what is stored (or nothing): what it keeps
         * stays, and what could never be served is not shared. */
        if (!skip &&
            srvocsp__verdict_judge(sched, held, ours, pol->now, &verr, vwhy, sizeof(vwhy)) !=
                SRVOCSP__V_REPLACE)
            skip = true;
        srvocsp_response_free(held);
        free(der);
        if (skip)
            return err;
        err = st->ops->save_if(st, name, ours->view.pb, ours->len, ours->this_update,
                               ours->expires, ours->status == SRVOCSP_STATUS_REVOKED,
                               expect[0] ? expect : NULL, &set, why, whylen);
        if (err != SRVOCSP_OK || set) {
            *stored = set;
            return err;
        }
        /* Another process saved in between: read and judge again. */
    }
    return SRVOCSP_OK;
}

/* Saves |snap| to the fleet as srvocsp__fleet_save; |seen|: what was just
 * read from the store and verified (or NULL). */
static void share(srvocsp_engine *e, srvocsp__entry *en, const srvocsp_response *snap,
                  const srvocsp_response *seen)
{
    srvocsp__policy pol = en->pol;
    char why[SRVOCSP__REASON_LEN];
    bool stored;

    if (en->fleet == NULL || snap == NULL)
        return;
    pol.now = srvocsp__engine_now(e);
    (void)srvocsp__fleet_save(en->fleet, en->store_name, snap, seen, en->leaf, en->issuer, &pol,
                              &en->sched, en->max_response_size, &stored, why, sizeof(why));
}

/* ---------------------------------------------------------------------
 * Reading the shared copy
 * ------------------------------------------------------------------- */

typedef enum {
    SHARED_NONE,       /* nothing, or what we hold */
    SHARED_TAKE,       /* the verdict takes it: |snap| */
    SHARED_REFUSED,    /* verified (|snap|), but the verdict keeps ours */
    SHARED_REJECTED,   /* does not verify: |der| to discard */
    SHARED_UNREADABLE  /* the store could not hand it over */
} shared_kind;

typedef struct shared {
    shared_kind kind;
    srvocsp_response *snap;      /* SHARED_TAKE: the caller's; SHARED_REFUSED: what was refused */
    unsigned char *der;          /* SHARED_REJECTED: the bytes, to discard */
    size_t len;
    srvocsp_error err;
    char why[SRVOCSP__REASON_LEN];
} shared;

static void shared_clear(shared *sh)
{
    srvocsp_response_free(sh->snap);
    free(sh->der);
    memset(sh, 0, sizeof(*sh));
}

/* Verifies and judges |der| (untrusted, from the store) for |en| against
 * |held|.  Without the lock: only the entry's immutable fields are read. */
static void judge_shared(srvocsp_engine *e, srvocsp__entry *en, const srvocsp_response *held,
                         const unsigned char *der, size_t len, shared *out)
{
    srvocsp__policy pol = en->pol;
    srvocsp_response *snap = NULL;
    char why[SRVOCSP__REASON_LEN];
    srvocsp_error err = SRVOCSP_OK;

    pol.now = srvocsp__engine_now(e);
    err = srvocsp__verify(der, len, en->leaf, en->issuer, &pol, &snap, why, sizeof(why));
    if (err != SRVOCSP_OK) {
        out->kind = SHARED_REJECTED;
        if ((out->der = srvocsp__malloc(len)) != NULL) {
            memcpy(out->der, der, len);
            out->len = len;
        }
    } else {
        switch (srvocsp__verdict_judge(&en->sched, held, snap, pol.now, &err, why, sizeof(why))) {
        case SRVOCSP__V_REPLACE:
            out->kind = SHARED_TAKE;
            out->snap = snap;
            snap = NULL;
            break;
        case SRVOCSP__V_UNCHANGED: out->kind = SHARED_NONE; break;
        case SRVOCSP__V_REFUSE: /* kept: the save over it need not verify it again */
            out->kind = SHARED_REFUSED;
            out->snap = snap;
            snap = NULL;
            break;
        }
    }
    srvocsp_response_free(snap);
    if (out->kind == SHARED_REJECTED || out->kind == SHARED_REFUSED) {
        out->err = err;
        srvocsp__fmt(out->why, sizeof(out->why), "shared store response ignored (%s): %s",
                     srvocsp_error_name(err), why);
    }
}

/* Reads and judges the copy of |en| in |st|. */
static void read_shared(srvocsp_engine *e, srvocsp__entry *en, srvocsp__store *st,
                        const srvocsp_response *held, shared *out)
{
    unsigned char *der = NULL;
    size_t len = 0;
    uint64_t version = 0;
    char why[SRVOCSP__REASON_LEN];
    srvocsp_error err;

    memset(out, 0, sizeof(*out));
    err = st->ops->load(st, en->store_name, en->max_response_size, &der, &len, &version, why,
                        sizeof(why));
    if (err != SRVOCSP_OK) {
        out->kind = SHARED_UNREADABLE;
        out->err = err;
        srvocsp__fmt(out->why, sizeof(out->why), "%s", why);
        return;
    }
    if (der != NULL)
        judge_shared(e, en, held, der, len, out);
    free(der);
}

/* Acts on a shared value that was not taken (lock not held): reported;
 * one that does not verify is removed if it is still those bytes; over
 * one the verdict refused, ours is saved when the verdict says so. */
static void settle(srvocsp_engine *e, srvocsp__entry *en, srvocsp__store *st,
                   const srvocsp_response *held, shared *sh)
{
    if (sh->kind != SHARED_REJECTED && sh->kind != SHARED_UNREADABLE &&
        sh->kind != SHARED_REFUSED)
        return;
    pthread_mutex_lock(&e->mu);
    if (!en->dead) {
        srvocsp__entry_add_note_locked(en, sh->err, sh->why);
        if (srvocsp__clock_bound(sh->err))
            srvocsp__entry_clock_refused_locked(e, en, srvocsp__engine_now(e));
    }
    pthread_mutex_unlock(&e->mu);
    if (sh->kind == SHARED_REFUSED)
        share(e, en, held, sh->snap); /* ours is newer: the fleet's copy was left behind */
    else if (srvocsp__clock_bound(sh->err))
        ; /* right for a host whose clock is right: it stays for them */
    else if (st->ops->discard != NULL)
        st->ops->discard(st, en->store_name, sh->der,
                         sh->der != NULL ? sh->len : en->max_response_size);
}

/* ---------------------------------------------------------------------
 * Before and after a fetch
 * ------------------------------------------------------------------- */

static uint32_t lease_ttl_ms(const srvocsp__entry *en)
{
    uint64_t ms = (uint64_t)en->url_timeout_ms * (en->req.n_urls ? en->req.n_urls : 1) +
                  LEASE_MARGIN_MS;

    return ms > LEASE_MAX_MS ? LEASE_MAX_MS : (uint32_t)ms;
}

srvocsp__fleet_step srvocsp__fleet_before_fetch(srvocsp_engine *e, srvocsp__entry *en,
                                               const srvocsp_response *held, bool look_only,
                                               srvocsp_response **snap, int64_t *at)
{
    srvocsp__store *st = coordinator(en);
    int64_t held_expires = held ? held->expires : 0, now, left_ms = -1, force_margin, deadline;
    char why[SRVOCSP__REASON_LEN];
    uint32_t ttl;
    shared sh;
    srvocsp__lease lease;

    *snap = NULL;
    if (st == NULL)
        return SRVOCSP__FLEET_FETCH;
    memset(&sh, 0, sizeof(sh));
    if (st == en->fleet) {
        read_shared(e, en, st, held, &sh);
        /* Taken even when it is itself due for refresh: it is served
         * while this process asks the responder (after adopting, the plan
         * of a response past its refresh point is a minute away), so a
         * restart during an outage serves what the fleet has. */
        if (sh.kind == SHARED_TAKE) {
            *snap = sh.snap;
            return SRVOCSP__FLEET_ADOPT;
        }
    }
    if (look_only) {
        if (sh.kind != SHARED_UNREADABLE)
            settle(e, en, st, held, &sh); /* ours newer: shared; a bad copy: reported */
        shared_clear(&sh);
        return SRVOCSP__FLEET_NOTHING;
    }
    /* A lease still held from our own failed attempt: ours to retry. */
    if (en->fleet_lease != NULL && en->fleet_token[0] != '\0')
        en->fleet_lease->ops->lease_release(en->fleet_lease, en->store_name, en->fleet_token);
    en->fleet_lease = NULL;
    ttl = lease_ttl_ms(en);
    lease = st->ops->lease_acquire(st, en->store_name, ttl, en->fleet_token, &left_ms, why,
                                   sizeof(why));
    /* When the store answers, what it held was really bad, not unreachable. */
    if (lease != SRVOCSP__LEASE_ERROR)
        settle(e, en, st, held, &sh);
    shared_clear(&sh);
    if (lease == SRVOCSP__LEASE_HELD) {
        /* The previous holder may have saved and released between our
         * look and our lease: look once more, so it is one fetch, not two. */
        read_shared(e, en, st, held, &sh);
        if (sh.kind == SHARED_TAKE) {
            st->ops->lease_release(st, en->store_name, en->fleet_token);
            en->fleet_token[0] = '\0';
            *snap = sh.snap;
            return SRVOCSP__FLEET_ADOPT;
        }
        shared_clear(&sh);
        en->fleet_lease = st;
        return SRVOCSP__FLEET_FETCH;
    }
    en->fleet_token[0] = '\0';
    if (lease == SRVOCSP__LEASE_ERROR)
        return SRVOCSP__FLEET_FETCH; /* as if alone */

    /* Another process is fetching.  Wait for its result, but never past
     * the point where ours would stop being served. */
    now = srvocsp__engine_now(e);
    force_margin = (int64_t)ttl / 1000 * 2;
    if (force_margin < FORCE_MARGIN_MIN_S)
        force_margin = FORCE_MARGIN_MIN_S;
    deadline = held_expires - force_margin -
               (held != NULL ? srvocsp__margin(held, en->sched.min_validity_s, en->sched.adaptive)
                             : (int64_t)en->sched.min_validity_s);
    if (held != NULL && now >= deadline)
        return SRVOCSP__FLEET_FETCH;
    *at = now + (left_ms > 0 ? (left_ms + 999) / 1000 : 1);
    if (held == NULL || !srvocsp__sched_servable(&en->sched, held, now)) {
        if (*at > now + COLD_RECHECK_S)
            *at = now + COLD_RECHECK_S;
    } else if (*at > deadline) {
        *at = deadline;
    }
    return SRVOCSP__FLEET_WAIT;
}

void srvocsp__fleet_after_fetch(srvocsp_engine *e, srvocsp__entry *en, const srvocsp_response *snap)
{
    share(e, en, snap, NULL);
    if (en->fleet_lease != NULL && en->fleet_token[0] != '\0')
        en->fleet_lease->ops->lease_release(en->fleet_lease, en->store_name, en->fleet_token);
    en->fleet_lease = NULL;
    en->fleet_token[0] = '\0';
}

/* ---------------------------------------------------------------------
 * Announcements and resaving, from the engine's loop
 * ------------------------------------------------------------------- */

/* Hands a verified response the verdict took to the engine thread as an
 * announcement (consumes |snap|); an entry waiting for a transfer slot
 * leaves the queue.  Under e->mu. */
static void adopt_locked(srvocsp_engine *e, srvocsp__entry *en, srvocsp_response *snap)
{
    srvocsp__completion *c;

    if (en->dead || en->in_flight || (c = srvocsp__completion_new_locked(
                                          en, SRVOCSP__SRC_ANNOUNCE)) == NULL) {
        srvocsp_response_free(snap);
        return;
    }
    c->url = "shared store";
    c->snap = snap;
    en->in_flight = true;
    srvocsp__ready_remove(e, en); /* no transfer needed now */
    srvocsp__heap_remove(e, en);
    srvocsp__done_push_locked(e, c);
}

/* One announcement for |en|: judge the bytes it carried (or read them),
 * adopt or settle.  Lock held on entry and exit. */
static void adopt_one(srvocsp_engine *e, srvocsp__entry *en, const unsigned char *der, size_t len)
{
    /* The engine thread alone replaces the cell's snapshot, and this is
     * the engine thread: |cur| stays while the lock is down. */
    srvocsp_response *cur = srvocsp__cell_peek(&en->cell);
    shared sh;

    en->refs++;
    pthread_mutex_unlock(&e->mu);
    memset(&sh, 0, sizeof(sh));
    if (der != NULL && len > 0 && len <= en->max_response_size)
        judge_shared(e, en, cur, der, len, &sh);
    else
        read_shared(e, en, en->fleet, cur, &sh);
    settle(e, en, en->fleet, cur, &sh);
    pthread_mutex_lock(&e->mu);
    if (sh.kind == SHARED_TAKE) {
        adopt_locked(e, en, sh.snap);
        sh.snap = NULL;
    }
    shared_clear(&sh);
    srvocsp__entry_unref_locked(en);
}

typedef struct drain_ctx {
    srvocsp_engine *e;
    struct srvocsp__fleet *f;
    srvocsp__store *st;
} drain_ctx;

/* The store's drain calls this without any lock held. */
static void on_announce(void *arg, const char *name, const unsigned char *der, size_t len)
{
    drain_ctx *d = arg;
    srvocsp__entry *en;

    pthread_mutex_lock(&d->e->mu);
    en = srvocsp__fleet_find_locked(d->f, d->st, name);
    if (en != NULL && en->in_flight) {
        /* Fetching or looking at the store: the announcement waits for
         * that result (it may know more, as a lagging replica's
         * revocation does), then it is judged (srvocsp__fleet_pending_locked). */
        unsigned char *copy = NULL;

        if (der != NULL && len > 0 && len <= en->max_response_size &&
            (copy = srvocsp__malloc(len)) != NULL)
            memcpy(copy, der, len);
        free(en->fleet_pending_der);
        en->fleet_pending_der = copy;
        en->fleet_pending_len = copy != NULL ? len : 0;
        en->fleet_pending = true;
    } else if (en != NULL) {
        /* One waiting for a transfer slot is spared the transfer. */
        adopt_one(d->e, en, der, len);
    }
    pthread_mutex_unlock(&d->e->mu);
}

void srvocsp__fleet_pending_locked(srvocsp_engine *e, srvocsp__entry *en)
{
    unsigned char *der = en->fleet_pending_der;
    size_t len = en->fleet_pending_len;

    if (!en->fleet_pending || en->in_flight || en->dead || en->fleet == NULL)
        return;
    en->fleet_pending = false;
    en->fleet_pending_der = NULL;
    en->fleet_pending_len = 0;
    adopt_one(e, en, der, len); /* NULL bytes: read the store */
    free(der);
}

/* Saves again every response held for entries on |st| (lock held on entry
 * and exit), after the store may have lost them. */
static void resave_all(srvocsp_engine *e, struct srvocsp__fleet *f, srvocsp__store *st)
{
    srvocsp__entry **list = NULL;
    size_t n = 0, i;
    srvocsp__entry *en;

    list = srvocsp__calloc(f->n ? f->n : 1, sizeof(*list));
    if (list == NULL)
        return;
    for (i = 0; i < f->n_buckets; i++)
        for (en = f->buckets[i]; en != NULL; en = en->fleet_next)
            if (en->fleet == st && !en->dead && srvocsp__cell_peek(&en->cell) != NULL &&
                n < f->n) {
                en->refs++;
                list[n++] = en;
            }
    pthread_mutex_unlock(&e->mu);
    for (i = 0; i < n; i++)
        share(e, list[i], srvocsp__cell_peek(&list[i]->cell), NULL);
    pthread_mutex_lock(&e->mu);
    for (i = 0; i < n; i++)
        srvocsp__entry_unref_locked(list[i]);
    free(list);
}

void srvocsp__fleet_service_locked(srvocsp_engine *e)
{
    struct srvocsp__fleet *f = e->fleet;
    srvocsp__fleet_store stores[SRVOCSP__FLEET_STORES];
    bool lost[SRVOCSP__FLEET_STORES];
    unsigned n_stores, i;

    if (f == NULL || f->n_stores == 0 || f->servicing)
        return;
    f->servicing = true; /* keeps |f| and its stores while the lock is down */
    n_stores = f->n_stores;
    memcpy(stores, f->stores, sizeof(stores[0]) * n_stores);
    pthread_mutex_unlock(&e->mu);
    for (i = 0; i < n_stores; i++) {
        srvocsp__store *st = stores[i].st;
        drain_ctx d = {e, f, st};

        lost[i] = false;
        if (st->ops->notify_drain == NULL)
            continue;
        stores[i].fd = st->ops->notify_fd(st);
        st->ops->notify_drain(st, on_announce, &d);
        if (st->ops->epoch != NULL) {
            uint64_t ep = st->ops->epoch(st);

            lost[i] = ep != stores[i].epoch;
            stores[i].epoch = ep;
        }
    }
    pthread_mutex_lock(&e->mu);
    for (i = 0; i < n_stores; i++) {
        f->stores[i].fd = stores[i].fd;
        f->stores[i].epoch = stores[i].epoch;
        if (lost[i])
            resave_all(e, f, stores[i].st);
    }
    f->servicing = false;
    if (f->n == 0) {
        e->fleet = NULL;
        srvocsp__fleet_free(f);
    }
}

unsigned srvocsp__fleet_fds_locked(srvocsp_engine *e, int *fds, unsigned max)
{
    struct srvocsp__fleet *f = e->fleet;
    unsigned i, n = 0;

    if (f == NULL)
        return 0;
    for (i = 0; i < f->n_stores && n < max; i++)
        if (f->stores[i].fd >= 0)
            fds[n++] = f->stores[i].fd;
    return n;
}
