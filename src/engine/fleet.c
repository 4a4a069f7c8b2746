/*
 * The fleet: one fetch per certificate for all the processes sharing a
 * coordinating store (Redis for machines; a directory's lock files for the
 * processes of one machine).
 *
 * Before a scheduled fetch the engine asks srvocsp__fleet_before_fetch:
 *  - the shared store holds a verified response newer than ours that is
 *    not itself due: adopt it (no request);
 *  - else take the certificate's lease: held (or the store cannot say):
 *    fetch; held by another: wait for its result, unless what we serve is
 *    about to fall below MinValidity, in which case we fetch regardless
 *    (a stuck holder must never cause an outage).
 * After a fetch the response is saved with the store's compare on
 * thisUpdate (never over a newer one), which announces it, and the lease
 * is given back.  Announcements are read from the engine's loop
 * (srvocsp__fleet_service_locked, the subscription's socket polled in the
 * engine's wait), so an announced response is adopted within a second.
 *
 * Nothing read from the store is trusted: it is verified here before it
 * is offered and again by the engine, like a network answer, and then it
 * must be newer than what we hold.  A value that fails is reported (the
 * entry's last failure and a FAILED callback) and discarded from the store
 * if it is still those bytes, so the next good save replaces it.
 *
 * When the store says it may have lost data (a reconnect: restarted empty,
 * failed over), every response held is saved again.
 *
 * All store calls run on the engine thread without the engine lock; the
 * Redis store bounds each by a short timeout and backs off after failures.
 */
#include "engine/fleet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FLEET_STORES 8
#define LEASE_MARGIN_MS 2000    /* beyond the fetch's own time bound */
#define LEASE_MAX_MS 120000
#define FORCE_MARGIN_MIN_S 60   /* fetch regardless this close to MinValidity */
#define COLD_RECHECK_S 2        /* nothing served: look again this often */

typedef struct fleet_store {
    srvocsp__store *st;         /* the fleet's reference */
    uint64_t epoch;
    int fd;
} fleet_store;

struct srvocsp__fleet {
    srvocsp__entry **buckets;   /* by store name, chained through fleet_next */
    size_t n_buckets, n;
    fleet_store stores[FLEET_STORES];
    unsigned n_stores;
    bool servicing;             /* the engine thread is in service (lock dropped) */
};

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;

    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
    return h;
}

static int64_t now_s(srvocsp_engine *e)
{
    return e->clock.now(e->clock.ctx);
}

/* The store that coordinates |en| across machines (a directory's own
 * lease, for the processes of one machine, is the engine's). */
static srvocsp__store *coordinator(const srvocsp__entry *en)
{
    if (en->fleet != NULL && en->fleet->ops->lease_acquire != NULL)
        return en->fleet;
    return NULL;
}

/* ---------------------------------------------------------------------
 * Attaching entries
 * ------------------------------------------------------------------- */

bool srvocsp__fleet_open_store(const srvocsp_params *p, srvocsp__store **out)
{
    *out = NULL;
    if (p->store_url == NULL)
        return true;
    *out = srvocsp__store_open_shared(p->store_url, p->store_prefix);
    return *out != NULL;
}

static bool grow(struct srvocsp__fleet *f)
{
    size_t n = f->n_buckets ? f->n_buckets * 2 : 64, i;
    srvocsp__entry **b = srvocsp__calloc(n, sizeof(*b));

    if (b == NULL)
        return false;
    for (i = 0; i < f->n_buckets; i++) {
        srvocsp__entry *en = f->buckets[i], *next;

        for (; en != NULL; en = next) {
            size_t k = name_hash(en->store_name) % n;

            next = en->fleet_next;
            en->fleet_next = b[k];
            b[k] = en;
        }
    }
    free(f->buckets);
    f->buckets = b;
    f->n_buckets = n;
    return true;
}

static void fleet_free(struct srvocsp__fleet *f)
{
    unsigned i;

    for (i = 0; i < f->n_stores; i++)
        f->stores[i].st->ops->free(f->stores[i].st);
    free(f->buckets);
    free(f);
}

bool srvocsp__fleet_attach_locked(srvocsp__entry *en, srvocsp__store **st)
{
    srvocsp_engine *e = en->eng;
    struct srvocsp__fleet *f = e->fleet;
    unsigned i;
    size_t k;

    if (*st == NULL)
        return true;
    if (en->store_name[0] == '\0' && !srvocsp__store_name(en->leaf, en->issuer, en->store_name))
        return false;
    if (f == NULL) {
        f = srvocsp__calloc(1, sizeof(*f));
        if (f == NULL)
            return false;
        e->fleet = f;
    }
    if (f->n + 1 > f->n_buckets && !grow(f))
        return false;
    /* One reference per distinct store, the fleet's: entries borrow it. */
    for (i = 0; i < f->n_stores; i++)
        if (f->stores[i].st == *st)
            break;
    if (i == f->n_stores) {
        if (f->n_stores == FLEET_STORES)
            return false;
        f->stores[i].st = *st;
        f->stores[i].epoch = (*st)->ops->epoch ? (*st)->ops->epoch(*st) : 0;
        f->stores[i].fd = -1;
        f->n_stores++;
    } else {
        (*st)->ops->free(*st);
    }
    *st = NULL;
    en->fleet = f->stores[i].st;
    k = name_hash(en->store_name) % f->n_buckets;
    en->fleet_next = f->buckets[k];
    f->buckets[k] = en;
    f->n++;
    return true;
}

void srvocsp__fleet_detach_locked(srvocsp__entry *en)
{
    srvocsp_engine *e = en->eng;
    struct srvocsp__fleet *f = e->fleet;
    srvocsp__entry **pp;

    if (en->fleet == NULL || f == NULL)
        return;
    pp = &f->buckets[name_hash(en->store_name) % f->n_buckets];
    for (; *pp != NULL; pp = &(*pp)->fleet_next)
        if (*pp == en) {
            *pp = en->fleet_next;
            f->n--;
            break;
        }
    en->fleet = NULL;
    if (f->n == 0 && !f->servicing) {
        e->fleet = NULL;
        fleet_free(f);
    }
}

static srvocsp__entry *find_locked(struct srvocsp__fleet *f, srvocsp__store *st, const char *name)
{
    srvocsp__entry *en;

    if (f->n_buckets == 0)
        return NULL;
    for (en = f->buckets[name_hash(name) % f->n_buckets]; en != NULL; en = en->fleet_next)
        if (en->fleet == st && !en->dead && strcmp(en->store_name, name) == 0)
            return en;
    return NULL;
}

/* ---------------------------------------------------------------------
 * Reading the shared copy
 * ------------------------------------------------------------------- */

typedef enum { SHARED_NONE, SHARED_NEWER, SHARED_REJECTED, SHARED_UNREADABLE } shared_kind;

typedef struct shared {
    shared_kind kind;
    unsigned char *der;          /* SHARED_NEWER: the caller's */
    size_t len;
    bool due;                    /* SHARED_NEWER: itself due for refresh */
    bool older;                  /* not newer than ours: ours is worth saving */
    srvocsp_error err;           /* SHARED_REJECTED / SHARED_UNREADABLE */
    char why[SRVOCSP__REASON_LEN];
} shared;

/* Judges |der| (untrusted, from the store) for |en| against what it serves
 * (|held_tu|, 0 for nothing).  Runs without the lock on the engine thread:
 * only the entry's immutable fields are read. */
static void judge(srvocsp_engine *e, srvocsp__entry *en, int64_t held_tu, bool held_revoked,
                  const unsigned char *der, size_t len, shared *out)
{
    srvocsp__policy pol = en->pol;
    srvocsp_response *snap = NULL;
    char why[SRVOCSP__REASON_LEN];
    srvocsp_error err;

    pol.now = now_s(e);
    err = srvocsp__verify(der, len, en->leaf, en->issuer, &pol, &snap, why, sizeof(why));
    if (err != SRVOCSP_OK) {
        out->kind = SHARED_REJECTED;
        out->err = err;
        srvocsp__fmt(out->why, sizeof(out->why), "shared store response ignored (%s): %s",
                     srvocsp_error_name(err), why);
    } else if (snap->this_update > held_tu ||
               (snap->this_update == held_tu && held_tu != 0 &&
                snap->status == SRVOCSP_STATUS_REVOKED && !held_revoked)) {
        /* Newer; or as new and revoked where ours is not: revoked wins a
         * tie, as in the engine and in the save script. */
        out->kind = SHARED_NEWER;
        out->due = srvocsp__sched_after_success(&en->sched, snap, pol.now, false) <= pol.now;
    } else if (snap->this_update < held_tu) {
        char a[32], b[32];

        srvocsp__fmt_time(snap->this_update, a, sizeof(a));
        srvocsp__fmt_time(held_tu, b, sizeof(b));
        out->kind = SHARED_REJECTED;
        out->err = SRVOCSP_E_ROLLBACK;
        out->older = true;
        srvocsp__fmt(out->why, sizeof(out->why),
                     "shared store response ignored (E_ROLLBACK): thisUpdate %s is older than the "
                     "held response's %s",
                     a, b);
    }
    srvocsp_response_free(snap);
    /* The bytes go with a candidate, and with a rejection (to discard). */
    if ((out->kind == SHARED_NEWER || (out->kind == SHARED_REJECTED && !out->older)) &&
        (out->der = srvocsp__malloc(len)) != NULL) {
        memcpy(out->der, der, len);
        out->len = len;
    } else if (out->kind == SHARED_NEWER) {
        out->kind = SHARED_NONE; /* out of memory: the schedule will look again */
    }
}

/* Reads and judges the copy of |en| in |st|. */
static void read_shared(srvocsp_engine *e, srvocsp__entry *en, srvocsp__store *st, int64_t held_tu,
                        bool held_revoked, shared *out)
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
        judge(e, en, held_tu, held_revoked, der, len, out);
    free(der);
}

/* Reports a rejected shared value (lock not held) and removes it from the
 * store if it is still those bytes. */
static void report(srvocsp_engine *e, srvocsp__entry *en, srvocsp__store *st, shared *sh)
{
    pthread_mutex_lock(&e->mu);
    if (!en->dead)
        srvocsp__entry_add_note_locked(en, sh->err, sh->why);
    pthread_mutex_unlock(&e->mu);
    if (!sh->older && st->ops->discard != NULL)
        st->ops->discard(st, en->store_name, sh->der,
                         sh->der != NULL ? sh->len : en->max_response_size);
}

static void share(srvocsp__entry *en, const srvocsp_response *snap)
{
    char why[SRVOCSP__REASON_LEN];
    bool stored;

    if (en->fleet == NULL || en->fleet->ops->save_newer == NULL || snap == NULL)
        return;
    (void)en->fleet->ops->save_newer(en->fleet, en->store_name, snap->view.pb, snap->len,
                                     snap->this_update, snap->expires,
                                     snap->status == SRVOCSP_STATUS_REVOKED, &stored, why,
                                     sizeof(why));
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
                                               unsigned char **der, size_t *len, int64_t *at)
{
    srvocsp__store *st = coordinator(en);
    srvocsp_response *cur;
    int64_t held_tu = 0, held_expires = 0, now, left_ms = -1, force_margin, deadline;
    bool held_revoked = false;
    char why[SRVOCSP__REASON_LEN];
    uint32_t ttl;
    shared sh;
    srvocsp__lease lease;

    *der = NULL;
    *len = 0;
    if (st == NULL)
        return SRVOCSP__FLEET_FETCH;
    /* The engine thread is the only one that replaces the cell's
     * snapshot, and this is the engine thread. */
    cur = srvocsp__cell_peek(&en->cell);
    if (cur != NULL) {
        held_tu = cur->this_update;
        held_expires = cur->expires;
        held_revoked = cur->status == SRVOCSP_STATUS_REVOKED;
    }
    memset(&sh, 0, sizeof(sh));
    if (st == en->fleet) {
        read_shared(e, en, st, held_tu, held_revoked, &sh);
        if (sh.kind == SHARED_NEWER && !sh.due) {
            *der = sh.der;
            *len = sh.len;
            return SRVOCSP__FLEET_ADOPT;
        }
    }
    /* A lease still held from our own failed attempt: ours to retry. */
    if (en->fleet_lease != NULL && en->fleet_token[0] != '\0')
        en->fleet_lease->ops->lease_release(en->fleet_lease, en->store_name, en->fleet_token);
    en->fleet_lease = NULL;
    ttl = lease_ttl_ms(en);
    lease = st->ops->lease_acquire(st, en->store_name, ttl, en->fleet_token, &left_ms, why,
                                   sizeof(why));
    if (lease != SRVOCSP__LEASE_ERROR) {
        /* The store answers: what it held was really bad, not unreachable. */
        if (sh.kind == SHARED_REJECTED || sh.kind == SHARED_UNREADABLE)
            report(e, en, st, &sh);
        if (sh.older)
            share(en, cur); /* ours is newer: the fleet's copy was left behind */
    }
    free(sh.der);
    if (lease == SRVOCSP__LEASE_HELD) {
        /* The previous holder may have saved and released between our
         * look and our lease: look once more, so it is one fetch, not two. */
        read_shared(e, en, st, held_tu, held_revoked, &sh);
        if (sh.kind == SHARED_NEWER && !sh.due) {
            st->ops->lease_release(st, en->store_name, en->fleet_token);
            en->fleet_token[0] = '\0';
            *der = sh.der;
            *len = sh.len;
            return SRVOCSP__FLEET_ADOPT;
        }
        free(sh.der);
        en->fleet_lease = st;
        return SRVOCSP__FLEET_FETCH;
    }
    en->fleet_token[0] = '\0';
    if (lease == SRVOCSP__LEASE_ERROR)
        return SRVOCSP__FLEET_FETCH; /* as if alone */

    /* Another process is fetching.  Wait for its result, but never past
     * the point where ours would stop being served. */
    now = now_s(e);
    force_margin = (int64_t)ttl / 1000 * 2;
    if (force_margin < FORCE_MARGIN_MIN_S)
        force_margin = FORCE_MARGIN_MIN_S;
    deadline = held_expires - force_margin -
               (cur != NULL ? srvocsp__margin(cur, en->sched.min_validity_s, en->sched.adaptive)
                            : (int64_t)en->sched.min_validity_s);
    if (cur != NULL && now >= deadline)
        return SRVOCSP__FLEET_FETCH;
    *at = now + (left_ms > 0 ? (left_ms + 999) / 1000 : 1);
    if (cur == NULL || !srvocsp__sched_servable(&en->sched, cur, now)) {
        if (*at > now + COLD_RECHECK_S)
            *at = now + COLD_RECHECK_S;
    } else if (*at > deadline) {
        *at = deadline;
    }
    return SRVOCSP__FLEET_WAIT;
}

void srvocsp__fleet_after_fetch(srvocsp_engine *e, srvocsp__entry *en, const srvocsp_response *snap)
{
    share(en, snap);
    if (en->fleet_lease != NULL && en->fleet_token[0] != '\0')
        en->fleet_lease->ops->lease_release(en->fleet_lease, en->store_name, en->fleet_token);
    en->fleet_lease = NULL;
    en->fleet_token[0] = '\0';
}

/* ---------------------------------------------------------------------
 * Announcements and resaving, from the engine's loop
 * ------------------------------------------------------------------- */

/* One announcement for |en|: judge the bytes it carried (or read them),
 * adopt or report.  Lock held on entry and exit. */
static void adopt_one(srvocsp_engine *e, srvocsp__entry *en, const unsigned char *der, size_t len)
{
    srvocsp_response *cur = srvocsp__cell_peek(&en->cell);
    int64_t held_tu = cur ? cur->this_update : 0;
    bool held_revoked = cur != NULL && cur->status == SRVOCSP_STATUS_REVOKED;
    shared sh;

    en->refs++;
    pthread_mutex_unlock(&e->mu);
    memset(&sh, 0, sizeof(sh));
    if (der != NULL && len > 0 && len <= en->max_response_size)
        judge(e, en, held_tu, held_revoked, der, len, &sh);
    else
        read_shared(e, en, en->fleet, held_tu, held_revoked, &sh);
    if (sh.kind == SHARED_REJECTED || sh.kind == SHARED_UNREADABLE)
        report(e, en, en->fleet, &sh);
    if (sh.older)
        share(en, cur); /* ours is newer: the fleet's copy was left behind */
    pthread_mutex_lock(&e->mu);
    if (sh.kind == SHARED_NEWER && !en->dead)
        (void)srvocsp__engine_adopt_locked(en, sh.der, sh.len);
    free(sh.der);
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
    en = find_locked(d->f, d->st, name);
    /* An entry in flight is fetching or looking at the store already: its
     * own result settles it.  One waiting for a transfer slot is spared
     * the transfer. */
    if (en != NULL && !en->in_flight)
        adopt_one(d->e, en, der, len);
    pthread_mutex_unlock(&d->e->mu);
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
        share(list[i], srvocsp__cell_peek(&list[i]->cell));
    pthread_mutex_lock(&e->mu);
    for (i = 0; i < n; i++)
        srvocsp__entry_unref_locked(list[i]);
    free(list);
}

void srvocsp__fleet_service_locked(srvocsp_engine *e)
{
    struct srvocsp__fleet *f = e->fleet;
    fleet_store stores[FLEET_STORES];
    bool lost[FLEET_STORES];
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
        fleet_free(f);
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
