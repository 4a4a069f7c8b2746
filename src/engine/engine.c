/*
 * The engine: one thread per engine that decides which certificate to
 * fetch when, hands requests to the transport, verifies what comes back and
 * publishes it.  With the built-in libcurl transport the same thread moves
 * the transfers along while it waits (net/curl_transport.c); an injected
 * transport does its I/O wherever it likes and reports through done.
 *
 * Locking: e->mu protects every field of the engine and of its entries
 * except an entry's cell (lock-free readers) and a handle's refs.  The
 * scheduler never holds e->mu while verifying, calling the transport or
 * calling a user callback.
 */
#include "engine/engine.h"
#include "engine/fleet.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct srvocsp__completion {
    srvocsp__completion *next;
    srvocsp__entry *en;
    const char *url;             /* entry-owned */
    srvocsp_error error;
    long http_status;
    char *content_type;
    char *content_encoding;
    unsigned char *body;
    size_t body_len;
    char detail[256];
    bool from_store;             /* another process's save, not the network */
    bool from_fleet;             /* ... in the shared store: the directory keeps a copy */
    uint64_t store_version;
    bool offered;                /* srvocsp_handle_offer_der: no retrieval */
    struct offer_wait *offer;    /* the offering thread's, while it waits */
    bool leased;                 /* holds the store's lease (|lease|) */
    int lease;
    bool deferred;               /* another process held the lease: no request */
};

/* An offering thread waits for the engine thread's verdict here. */
typedef struct offer_wait {
    bool done;
    srvocsp_error err;
    char why[SRVOCSP__REASON_LEN];
} offer_wait;

/* A callback to run once the lock is released. */
typedef struct pending_event {
    struct pending_event *next;
    srvocsp_handle *h;           /* holds a reference */
    srvocsp_event ev;            /* ev.response holds a reference */
    char reason[SRVOCSP__REASON_LEN];
    char url[SRVOCSP__MAX_URL_LEN];
} pending_event;

/* ---------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------- */

static int64_t now_s(srvocsp_engine *e)
{
    return e->clock.now(e->clock.ctx);
}

/* xorshift64*: jitter only, not security. */
static double rand_unit(srvocsp_engine *e)
{
    uint64_t x = e->rng;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    e->rng = x;
    return (double)((x * 0x2545F4914F6CDD1DULL) >> 11) / (double)(1ULL << 53) * 2.0 - 1.0;
}

int64_t srvocsp__jitter_earlier_locked(srvocsp_engine *e, int64_t at, int64_t now)
{
    if (at <= now || e->cfg.jitter_percent == 0)
        return at;
    return at - (int64_t)((double)(at - now) * (rand_unit(e) + 1.0) / 2.0 *
                          (double)e->cfg.jitter_percent / 200.0);
}

static uint64_t hash_key(const unsigned char *k, size_t n)
{
    uint64_t h = 1469598103934665603ULL;

    while (n--)
        h = (h ^ *k++) * 1099511628211ULL;
    return h;
}

/* scheme://host:port of |url|, the unit of per-host concurrency. */
static void host_key(const char *url, char *out, size_t len)
{
    const char *p = strstr(url, "://");
    size_t n;

    p = p ? p + 3 : url;
    n = strcspn(p, "/?#");
    snprintf(out, len, "%.*s%.*s", (int)(p - url), url, (int)n, p);
}

static srvocsp__host *host_get(srvocsp_engine *e, const char *url)
{
    char key[300];
    srvocsp__host *h;

    host_key(url, key, sizeof(key));
    for (h = e->hosts; h != NULL; h = h->next)
        if (strcmp(h->name, key) == 0)
            return h;
    h = srvocsp__calloc(1, sizeof(*h) + strlen(key) + 1);
    if (h == NULL)
        return NULL;
    strcpy(h->name, key);
    h->next = e->hosts;
    e->hosts = h;
    return h;
}

/* ---------------------------------------------------------------------
 * Entries
 * ------------------------------------------------------------------- */

srvocsp__entry *srvocsp__entry_find(srvocsp_engine *e, const unsigned char *key, size_t len)
{
    srvocsp__entry *en;

    if (e->n_buckets == 0)
        return NULL;
    en = e->buckets[hash_key(key, len) % e->n_buckets];
    for (; en != NULL; en = en->hash_next)
        if (en->req.key_len == len && memcmp(en->req.key, key, len) == 0)
            return en;
    return NULL;
}

static bool rehash(srvocsp_engine *e, size_t n)
{
    srvocsp__entry **b = srvocsp__calloc(n, sizeof(*b));
    size_t i;

    if (b == NULL)
        return false;
    for (i = 0; i < e->n_buckets; i++) {
        srvocsp__entry *en = e->buckets[i], *next;

        for (; en != NULL; en = next) {
            size_t k = hash_key(en->req.key, en->req.key_len) % n;

            next = en->hash_next;
            en->hash_next = b[k];
            b[k] = en;
        }
    }
    free(e->buckets);
    e->buckets = b;
    e->n_buckets = n;
    return true;
}

bool srvocsp__entry_insert(srvocsp_engine *e, srvocsp__entry *en)
{
    size_t k;

    if (e->n_entries + 1 > e->n_buckets && !rehash(e, e->n_buckets ? e->n_buckets * 2 : 64))
        return false;
    k = hash_key(en->req.key, en->req.key_len) % e->n_buckets;
    en->hash_next = e->buckets[k];
    e->buckets[k] = en;
    e->n_entries++;
    e->stats.entries = e->n_entries;
    return true;
}

static void entry_unlink(srvocsp_engine *e, srvocsp__entry *en)
{
    srvocsp__entry **pp;

    if (e->n_buckets == 0)
        return;
    pp = &e->buckets[hash_key(en->req.key, en->req.key_len) % e->n_buckets];
    for (; *pp != NULL; pp = &(*pp)->hash_next) {
        if (*pp == en) {
            *pp = en->hash_next;
            e->n_entries--;
            e->stats.entries = e->n_entries;
            return;
        }
    }
}

/* Entries ready to start wait in their responder host's queue, so picking
 * work costs what is started, not what is waiting (a host at its limit
 * would otherwise be walked past on every pass). */
static void ready_remove(srvocsp_engine *e, srvocsp__entry *en)
{
    srvocsp__host *h = en->ready_host;

    if (!en->queued)
        return;
    if (en->ready_prev)
        en->ready_prev->ready_next = en->ready_next;
    else
        h->ready_head = en->ready_next;
    if (en->ready_next)
        en->ready_next->ready_prev = en->ready_prev;
    else
        h->ready_tail = en->ready_prev;
    en->ready_next = en->ready_prev = NULL;
    en->ready_host = NULL;
    en->queued = false;
    e->n_ready--;
}

static void ready_push(srvocsp_engine *e, srvocsp__entry *en)
{
    srvocsp__host *h;

    if (en->queued)
        return;
    h = host_get(e, en->req.urls[en->url_idx]);
    if (h == NULL) { /* out of memory: try again in a second */
        srvocsp__heap_set(e, en, now_s(e) + 1);
        return;
    }
    en->queued = true;
    en->ready_host = h;
    en->ready_next = NULL;
    en->ready_prev = h->ready_tail;
    if (h->ready_tail)
        h->ready_tail->ready_next = en;
    else
        h->ready_head = en;
    h->ready_tail = en;
    e->n_ready++;
}

static void entry_free(srvocsp__entry *en)
{
    srvocsp__fleet_detach_locked(en);
    srvocsp__cell_publish(&en->cell, NULL);
    X509_free(en->leaf);
    X509_free(en->issuer);
    srvocsp__request_clear(&en->req);
    free(en->proxy);
    if (en->store)
        en->store->ops->free(en->store);
    free(en);
}

void srvocsp__entry_unref_locked(srvocsp__entry *en)
{
    srvocsp_engine *e = en->eng;

    if (--en->refs > 0)
        return;
    if (!en->dead) {
        en->dead = true;
        entry_unlink(e, en);
    }
    srvocsp__heap_remove(e, en);
    ready_remove(e, en);
    entry_free(en);
    srvocsp__engine_wake_locked(e); /* may be the last: let the thread exit */
}

/* ---------------------------------------------------------------------
 * Events
 * ------------------------------------------------------------------- */

static void queue_events(srvocsp__entry *en, srvocsp_event_type type, srvocsp_response *resp,
                         srvocsp_error err, const char *reason, const char *url, int store_errno,
                         pending_event **list)
{
    srvocsp_handle *h;

    for (h = en->handles; h != NULL; h = h->next) {
        pending_event *pe;

        if (h->cb == NULL)
            continue;
        pe = srvocsp__calloc(1, sizeof(*pe));
        if (pe == NULL)
            continue; /* a lost notification, never a lost response */
        atomic_fetch_add(&h->refs, 1);
        pe->h = h;
        pe->ev.type = type;
        pe->ev.response = srvocsp_response_up_ref(resp);
        pe->ev.error = err;
        snprintf(pe->reason, sizeof(pe->reason), "%s", reason ? reason : "");
        snprintf(pe->url, sizeof(pe->url), "%s", url ? url : "");
        pe->ev.reason = pe->reason;
        pe->ev.url = url ? pe->url : NULL;
        pe->ev.next_attempt = en->next_at;
        pe->ev.store_errno = store_errno;
        pe->next = *list;
        *list = pe;
    }
}

/* Events are queued by prepending; they run in the order they happened
 * (an UPDATED before the STORE_FAILED that refers to it). */
static void run_events(pending_event *list)
{
    pending_event *rev = NULL;

    while (list != NULL) {
        pending_event *pe = list;

        list = pe->next;
        pe->next = rev;
        rev = pe;
    }
    list = rev;
    while (list != NULL) {
        pending_event *pe = list;

        list = pe->next;
        pe->h->cb(pe->h, &pe->ev, pe->h->cb_arg);
        srvocsp_response_free(pe->ev.response);
        srvocsp_close(pe->h);
        free(pe);
    }
}

/* ---------------------------------------------------------------------
 * Transport completions
 * ------------------------------------------------------------------- */

/* Hands a finished retrieval (or an offer) to the engine thread. */
static void done_push_locked(srvocsp_engine *e, srvocsp__completion *c)
{
    c->next = NULL;
    if (e->done_tail)
        e->done_tail->next = c;
    else
        e->done_head = c;
    e->done_tail = c;
    srvocsp__engine_wake_locked(e);
}

static void transport_done(void *arg, const srvocsp_http_result *res)
{
    srvocsp__completion *c = arg;
    srvocsp_engine *e = c->en->eng;

    c->error = res->error;
    c->http_status = res->http_status;
    if (res->content_type)
        c->content_type = srvocsp__strdup(res->content_type);
    if (res->content_encoding &&
        (c->content_encoding = srvocsp__strdup(res->content_encoding)) == NULL)
        c->error = SRVOCSP_E_NOMEM;
    if (res->detail)
        snprintf(c->detail, sizeof(c->detail), "%s", res->detail);
    if (res->error == SRVOCSP_OK && res->body_len > 0) {
        c->body = srvocsp__malloc(res->body_len);
        if (c->body == NULL) {
            c->error = SRVOCSP_E_NOMEM;
        } else {
            memcpy(c->body, res->body, res->body_len);
            c->body_len = res->body_len;
        }
    }
    pthread_mutex_lock(&e->mu);
    done_push_locked(e, c);
    pthread_mutex_unlock(&e->mu);
}

static void completion_free(srvocsp__completion *c)
{
    if (c->leased) /* after the save: the others now find it */
        c->en->store->ops->unlease(c->en->store, c->lease);
    free(c->content_type);
    free(c->content_encoding);
    free(c->body);
    free(c);
}

/* Turns an HTTP outcome into a verified snapshot or a reason.  Runs
 * without the lock: reads only the entry's immutable fields. */
static srvocsp_error evaluate(srvocsp_engine *e, srvocsp__completion *c, srvocsp_response **out,
                              char *why, size_t whylen)
{
    srvocsp__entry *en = c->en;
    srvocsp__policy pol = en->pol;
    srvocsp_http_result res;

    memset(&res, 0, sizeof(res));
    res.error = c->error;
    res.http_status = c->http_status;
    res.content_type = c->content_type;
    res.content_encoding = c->content_encoding;
    res.body = c->body;
    res.body_len = c->body_len;
    res.detail = c->detail[0] ? c->detail : NULL;
    pol.now = now_s(e);
    return srvocsp__accept_http(&res, en->leaf, en->issuer, &pol, out, why, whylen);
}

/* The attempt is over without a new response to serve: back off. */
static void attempt_refused(srvocsp_engine *e, srvocsp__entry *en, srvocsp_error err,
                            const char *why, const char *url, pending_event **events)
{
    en->last_err = err;
    en->failures++;
    en->unchanged = 0;
    e->stats.failures++;
    snprintf(en->last_reason, sizeof(en->last_reason), "%s", why);
    srvocsp__heap_set(e, en,
                      srvocsp__sched_after_failure(&en->sched, srvocsp__cell_peek(&en->cell),
                                                   now_s(e), en->failures, rand_unit(e),
                                                   e->cfg.jitter_percent));
    queue_events(en, SRVOCSP_EVENT_FAILED, NULL, err, en->last_reason, url, 0, events);
}

/* One URL did not give a usable answer: the next URL of the same attempt
 * at once, or the attempt has failed. */
static void attempt_failed(srvocsp_engine *e, srvocsp__entry *en, srvocsp_error err,
                           const char *why, const char *url, pending_event **events)
{
    size_t used = strlen(en->attempt_reasons);

    /* Keep every URL's reason: "url: reason; url: reason". */
    snprintf(en->attempt_reasons + used, sizeof(en->attempt_reasons) - used, "%s%s: %s",
             used ? "; " : "", url, why);
    en->last_err = err;
    if (++en->url_tries < en->req.n_urls) {
        en->url_idx = (en->url_idx + 1) % en->req.n_urls;
        ready_push(e, en); /* same attempt, next URL, at once */
        return;
    }
    attempt_refused(e, en, err, en->attempt_reasons, url, events);
}

static void attempt_over(srvocsp_engine *e, srvocsp__entry *en)
{
    en->attempts_done++;
    en->in_flight = false;
    pthread_cond_broadcast(&e->progress);
}

/* Called with the new snapshot already published. */
static void accepted(srvocsp_engine *e, srvocsp__entry *en, srvocsp_response *snap,
                     const char *url, bool offered, int store_errno, const char *store_why,
                     pending_event **events)
{
    srvocsp_event_type type = snap->status == SRVOCSP_STATUS_GOOD      ? SRVOCSP_EVENT_UPDATED
                              : snap->status == SRVOCSP_STATUS_REVOKED ? SRVOCSP_EVENT_REVOKED
                                                                       : SRVOCSP_EVENT_UNKNOWN;
    int64_t now = now_s(e), at;

    e->stats.responses_accepted++;
    en->unchanged = 0;
    if (snap->status == SRVOCSP_STATUS_UNKNOWN) {
        /* A new certificate is often unknown to its responder for a few
         * minutes after issuance: ask again at the failure backoff, not at
         * the response's refresh point days away. */
        en->failures++;
        en->last_err = SRVOCSP_E_STATUS_UNKNOWN;
        snprintf(en->last_reason, sizeof(en->last_reason),
                 "%s: the responder does not know the certificate (unknown)", url);
        at = srvocsp__sched_after_failure(&en->sched, snap, now, en->failures, rand_unit(e),
                                          e->cfg.jitter_percent);
    } else {
        en->failures = 0;
        en->last_err = SRVOCSP_OK;
        en->last_reason[0] = '\0';
        at = srvocsp__sched_after_success(&en->sched, snap, now, true);
        /* Processes sharing a store must not all ask at the same second:
         * move the refresh earlier by up to half the jitter share of the
         * wait. */
        at = srvocsp__jitter_earlier_locked(e, at, now);
    }
    if (srvocsp__dirsync_read_only(&en->dirsync)) /* the writer refreshes; we re-read */
        at = srvocsp__dirsync_next(&en->dirsync, &en->sched, snap, now);
    /* An offer arrives beside the schedule: it never puts off an attempt
     * already due sooner (a refresh_now, a retry). */
    if (offered && en->heap_idx != SIZE_MAX && en->next_at < at)
        at = en->next_at;
    srvocsp__heap_set(e, en, at);
    queue_events(en, type, snap, SRVOCSP_OK, "", url, store_errno, events);
    if (store_errno != 0) {
        e->stats.store_failures++;
        queue_events(en, SRVOCSP_EVENT_STORE_FAILED, snap, SRVOCSP_E_STORE, store_why, url,
                     store_errno, events);
    }
}

/* The responder handed back what we hold (a CDN cache): not a failure.
 * Ask again after a fraction of the time it can still be served. */
static void unchanged(srvocsp_engine *e, srvocsp__entry *en, srvocsp_response *cur)
{
    e->stats.unchanged++;
    en->unchanged++;
    en->failures = 0;
    en->last_err = SRVOCSP_OK;
    en->last_reason[0] = '\0';
    srvocsp__heap_set(e, en, srvocsp__sched_after_unchanged(&en->sched, cur, now_s(e)));
}

typedef enum verdict { V_PUBLISH, V_UNCHANGED, V_REFUSE } verdict;

/* Judges a verified response |snap| against the held one |cur| at |now|.
 * The rules, in order:
 *  - revoked is news when its thisUpdate is not older than the held
 *    response's, or when it was produced after the held one (a lagging
 *    replica that signs its older view afresh: it knows something the
 *    held answer did not): it always displaces a good one then, servable
 *    or not.  An older revoked response also produced before the held one
 *    is a replay, refused (a replay cannot carry a newer producedAt: it is
 *    signed).
 *  - the same thisUpdate again is "unchanged", not a failure; revoked wins
 *    a tie.
 *  - a strictly older thisUpdate is a rollback, unless what we hold can no
 *    longer be served (the wall clock went back, the responder's clock ran
 *    ahead): then we do not stay locked onto it — but a held revoked one is
 *    only ever given up for another revoked one.
 *  - a good response that cannot be served (less validity than the
 *    minimum) never displaces anything, and is not kept when nothing is
 *    held: it could never be handed out. */
static verdict judge(const srvocsp__entry *en, const srvocsp_response *cur,
                     const srvocsp_response *snap, int64_t now, srvocsp_error *err, char *why,
                     size_t whylen)
{
    const srvocsp__sched *p = &en->sched;
    bool cur_ok = cur != NULL && srvocsp__sched_servable(p, cur, now) &&
                  !srvocsp__from_future(cur, now, p->skew_s);
    bool snap_ok = srvocsp__sched_servable(p, snap, now);
    char a[32], b[32], c[32];

    if (cur != NULL && snap->status == SRVOCSP_STATUS_REVOKED &&
        cur->status != SRVOCSP_STATUS_REVOKED) {
        if (snap->this_update >= cur->this_update || snap->produced_at > cur->produced_at ||
            !cur_ok)
            return V_PUBLISH;
        srvocsp__fmt_time(snap->this_update, a, sizeof(a));
        srvocsp__fmt_time(snap->produced_at, b, sizeof(b));
        srvocsp__fmt_time(cur->produced_at, c, sizeof(c));
        srvocsp__fmt(why, whylen,
                     "revoked response with an older thisUpdate (%s) was also produced (%s) "
                     "before the held good response (%s): a replay, not news",
                     a, b, c);
        *err = SRVOCSP_E_ROLLBACK;
        return V_REFUSE;
    }
    if (cur != NULL && snap->this_update <= cur->this_update) {
        bool tie = snap->this_update == cur->this_update;

        srvocsp__fmt_time(snap->this_update, a, sizeof(a));
        srvocsp__fmt_time(cur->this_update, b, sizeof(b));
        if (tie && snap->status == cur->status) {
            if (cur_ok)
                return V_UNCHANGED;
            if (cur->status == SRVOCSP_STATUS_UNKNOWN) {
                srvocsp__fmt(why, whylen,
                             "the responder still does not know the certificate (unknown)");
                *err = SRVOCSP_E_STATUS_UNKNOWN;
                return V_REFUSE;
            }
            srvocsp__fmt_time(cur->expires, c, sizeof(c));
            srvocsp__fmt(why, whylen,
                         "the responder handed back the held response (thisUpdate %s), which "
                         "can no longer be served (it expires %s)",
                         a, c);
            *err = SRVOCSP_E_STALE;
            return V_REFUSE;
        }
        if (cur->status == SRVOCSP_STATUS_REVOKED && snap->status != SRVOCSP_STATUS_REVOKED) {
            srvocsp__fmt(why, whylen,
                         "response thisUpdate %s is %s the held revoked response's %s (revoked "
                         "wins)",
                         a, tie ? "the same as" : "older than", b);
            *err = SRVOCSP_E_ROLLBACK;
            return V_REFUSE;
        }
        if (cur_ok || !snap_ok) {
            srvocsp__fmt(why, whylen,
                         "response thisUpdate %s is %s the held response's %s", a,
                         tie ? "not newer than" : "older than", b);
            *err = SRVOCSP_E_ROLLBACK;
            return V_REFUSE;
        }
        /* The held response cannot be served: the older one can. */
    }
    if (snap->status == SRVOCSP_STATUS_GOOD && !snap_ok) {
        srvocsp__fmt_time(snap->expires, a, sizeof(a));
        srvocsp__fmt(why, whylen,
                     "response is valid until %s, %lld s from now, less than the minimum "
                     "validity of %lld s: it could never be served",
                     a, (long long)(snap->expires - now),
                     (long long)srvocsp__margin(snap, p->min_validity_s, p->adaptive));
        *err = SRVOCSP_E_SHORT_VALIDITY;
        return V_REFUSE;
    }
    return V_PUBLISH;
}

void srvocsp__entry_adopt_stored_locked(srvocsp__entry *en, srvocsp_response *snap)
{
    char why[SRVOCSP__REASON_LEN], note[SRVOCSP__REASON_LEN];
    srvocsp_error err = SRVOCSP_OK;

    if (judge(en, NULL, snap, now_s(en->eng), &err, why, sizeof(why)) == V_REFUSE) {
        srvocsp__fmt(note, sizeof(note), "stored response ignored (%s): %s",
                     srvocsp_error_name(err), why);
        srvocsp__entry_add_note_locked(en, err, note);
        srvocsp_response_free(snap);
        return;
    }
    if (snap->status == SRVOCSP_STATUS_UNKNOWN) { /* asked again at the failure backoff */
        en->failures = 1;
        en->last_err = SRVOCSP_E_STATUS_UNKNOWN;
        srvocsp__fmt(en->last_reason, sizeof(en->last_reason),
                     "stored response: the responder did not know the certificate (unknown)");
    }
    srvocsp__cell_publish(&en->cell, snap);
}

int64_t srvocsp__entry_plan_locked(srvocsp__entry *en, int64_t now)
{
    const srvocsp__sched *p = &en->sched;
    srvocsp_response *cur = srvocsp__cell_peek(&en->cell);

    if (srvocsp__dirsync_read_only(&en->dirsync)) /* the next look at the file */
        return srvocsp__dirsync_next(&en->dirsync, p, cur, now);

    if (cur == NULL || !srvocsp__sched_servable(p, cur, now))
        return en->failures ? now + srvocsp__backoff_s(en->failures) : now;
    if (srvocsp__from_future(cur, now, p->skew_s))
        return now; /* withheld by get: ask for one we can serve */
    if (en->failures)
        return srvocsp__sched_after_failure(p, cur, now, en->failures, 0.0, 0);
    if (en->unchanged)
        return srvocsp__sched_after_unchanged(p, cur, now);
    return srvocsp__sched_after_success(p, cur, now, false);
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

/* Publishes |snap| (verified and judged) as |en|'s response, persists it
 * unless it came from the store, schedules and queues the events.  Called
 * and returns with e->mu held; drops it while writing the store. */
static void publish(srvocsp_engine *e, srvocsp__entry *en, srvocsp_response *snap,
                    const char *url, bool save, bool offered, pending_event **events)
{
    char why[SRVOCSP__REASON_LEN];
    int store_errno = 0;

    srvocsp__cell_publish(&en->cell, srvocsp_response_up_ref(snap));
    /* A read-only directory belongs to another process: an offer or a
     * fleet pickup is served, never written there. */
    if (en->store != NULL && save && !srvocsp__dirsync_read_only(&en->dirsync)) {
        uint64_t version = 0;

        /* Serving already uses the new response; the disk follows. */
        pthread_mutex_unlock(&e->mu);
        store_errno = persist(en, snap, why, sizeof(why), &version);
        pthread_mutex_lock(&e->mu);
        if (store_errno == 0)
            en->store_version = version;
    }
    accepted(e, en, snap, url, offered, store_errno, store_errno ? why : NULL, events);
}

/* An offered response (srvocsp_handle_offer_der) is judged and published
 * here, on the engine thread like every other outcome, so that writes to
 * the store and events stay in order.  It is no retrieval: no slot, no
 * attempt, no failure count.  Called and returns with e->mu held. */
static void complete_offer(srvocsp_engine *e, srvocsp__completion *c, pending_event **events)
{
    srvocsp__entry *en = c->en;
    srvocsp_response *snap = NULL;
    char why[SRVOCSP__REASON_LEN];
    srvocsp_error err;

    pthread_mutex_unlock(&e->mu);
    err = evaluate(e, c, &snap, why, sizeof(why));
    pthread_mutex_lock(&e->mu);
    if (en->dead) {
        err = SRVOCSP_E_SHUTDOWN;
        srvocsp__fmt(why, sizeof(why), "the certificate is no longer served");
    } else if (err == SRVOCSP_OK &&
               judge(en, srvocsp__cell_peek(&en->cell), snap, now_s(e), &err, why,
                     sizeof(why)) == V_PUBLISH) {
        publish(e, en, snap, "offered", true, true, events);
    }
    if (c->offer != NULL) {
        c->offer->err = err;
        snprintf(c->offer->why, sizeof(c->offer->why), "%s", err != SRVOCSP_OK ? why : "");
        c->offer->done = true;
        pthread_cond_broadcast(&e->progress);
    }
    srvocsp_response_free(snap);
    completion_free(c);
    srvocsp__entry_unref_locked(en); /* the offer's reference */
}

/* Handles one completion.  Called and returns with e->mu held. */
static void complete(srvocsp_engine *e, srvocsp__completion *c, pending_event **events)
{
    srvocsp__entry *en = c->en;
    srvocsp_response *snap = NULL;
    char why[SRVOCSP__REASON_LEN];
    srvocsp_error err;

    if (c->offered) {
        complete_offer(e, c, events);
        return;
    }
    if (en->host && en->host->in_flight > 0)
        en->host->in_flight--;
    en->host = NULL;
    if (!c->from_store)
        e->in_flight--; /* a store pickup gave its slot back in start_all */
    if (c->deferred) {
        /* Another process is asking the responder for this certificate:
         * look for its save in a moment (before any request of our own). */
        e->stats.requests_started--;
        en->in_flight = false;
        if (!en->dead)
            srvocsp__heap_set(e, en, now_s(e) + SRVOCSP__LEASE_RETRY_S);
        completion_free(c);
        srvocsp__entry_unref_locked(en);
        pthread_cond_broadcast(&e->progress);
        return;
    }

    pthread_mutex_unlock(&e->mu);
    err = evaluate(e, c, &snap, why, sizeof(why));
    pthread_mutex_lock(&e->mu);

    if (c->from_store)
        en->store_version = c->store_version;
    if (en->dead) {
        en->in_flight = false;
    } else if (err != SRVOCSP_OK) {
        attempt_failed(e, en, err, why, c->url, events);
        if (!en->queued)
            attempt_over(e, en);
    } else {
        srvocsp_response *cur = srvocsp__cell_peek(&en->cell);
        const char *label = c->from_store ? "store" : c->url;
        verdict v = judge(en, cur, snap, now_s(e), &err, why, sizeof(why));

        if (v == V_REFUSE && !c->from_store) {
            /* A stale mirror, a replay: another URL may do better. */
            attempt_failed(e, en, err, why, c->url, events);
        } else {
            if (!c->from_store)
                en->url_pref = en->url_idx; /* this URL answers well: ask it first */
            switch (v) {
            case V_PUBLISH:
                publish(e, en, snap, label, !c->from_store || c->from_fleet, false, events);
                break;
            case V_UNCHANGED:
                unchanged(e, en, cur);
                break;
            case V_REFUSE:
                attempt_refused(e, en, err, why, label, events);
                break;
            }
        }
        if (!en->queued)
            attempt_over(e, en);
        if (!c->from_store && (en->fleet != NULL || en->fleet_lease != NULL)) {
            /* The fleet gets a new response, and this fetch's lease goes
             * back (after the save, so the others find it). */
            pthread_mutex_unlock(&e->mu);
            srvocsp__fleet_after_fetch(e, en, v == V_PUBLISH ? snap : NULL);
            pthread_mutex_lock(&e->mu);
        }
    }
    srvocsp_response_free(snap);
    completion_free(c);
    srvocsp__entry_unref_locked(en); /* the in-flight reference */
}

srvocsp_error srvocsp__entry_offer(srvocsp__entry *en, const unsigned char *der, size_t len)
{
    srvocsp_engine *e = en->eng;
    srvocsp__completion *c = NULL, *q;
    offer_wait w;
    bool on_engine_thread;

    if (len > en->max_response_size) {
        srvocsp__set_error(SRVOCSP_E_TOO_LARGE, "offered response of %zu bytes exceeds the "
                           "maximum response size of %zu", len, en->max_response_size);
        return SRVOCSP_E_TOO_LARGE;
    }
    memset(&w, 0, sizeof(w));
    w.err = SRVOCSP_E_SHUTDOWN;
    snprintf(w.why, sizeof(w.why), "the engine stopped before the offer was judged");
    c = srvocsp__calloc(1, sizeof(*c));
    if (c == NULL || (c->body = srvocsp__malloc(len)) == NULL ||
        (c->content_type = srvocsp__strdup("application/ocsp-response")) == NULL) {
        if (c != NULL)
            completion_free(c);
        srvocsp__set_error(SRVOCSP_E_NOMEM, NULL);
        return SRVOCSP_E_NOMEM;
    }
    memcpy(c->body, der, len);
    c->body_len = len;
    c->http_status = 200;
    c->url = "offered";
    c->en = en;
    c->offered = true;

    pthread_mutex_lock(&e->mu);
    if (en->dead || e->stop) {
        pthread_mutex_unlock(&e->mu);
        completion_free(c);
        srvocsp__set_error(SRVOCSP_E_SHUTDOWN, "the certificate is no longer served");
        return SRVOCSP_E_SHUTDOWN;
    }
    /* From an update callback (the engine thread) the verdict comes after
     * the callback returns: it cannot be waited for. */
    on_engine_thread = e->running && pthread_equal(pthread_self(), e->thread);
    c->offer = on_engine_thread ? NULL : &w;
    en->refs++;
    done_push_locked(e, c);
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

/* ---------------------------------------------------------------------
 * Dispatch
 * ------------------------------------------------------------------- */

typedef struct start_item {
    srvocsp__completion *c;
    srvocsp_http_request req;
    bool check_store;            /* look for another process's newer save first */
    uint64_t known_version;
    srvocsp_response *held;      /* the response held when picked (a reference), or NULL */
} start_item;

/* Moves due entries to the ready queue and picks those that may start
 * now within the concurrency limits. */
static size_t pick_starts(srvocsp_engine *e, int64_t now, start_item *items, size_t max)
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
        en->attempt_reasons[0] = '\0';
        ready_push(e, en);
    }
    for (h = e->hosts; h != NULL && n < max; h = h->next) {
      while ((en = h->ready_head) != NULL && n < max && h->in_flight < e->cfg.max_per_host &&
             e->in_flight < e->cfg.max_concurrent) {
        srvocsp__completion *c;
        const char *url = en->req.urls[en->url_idx];

        c = srvocsp__calloc(1, sizeof(*c));
        if (c == NULL)
            return n;
        ready_remove(e, en);
        c->en = en;
        c->url = url;
        en->refs++;
        en->in_flight = true;
        en->host = h;
        h->in_flight++;
        e->in_flight++;
        e->stats.requests_started++;
        items[n].c = c;
        memset(&items[n].req, 0, sizeof(items[n].req));
        items[n].check_store =
            en->store != NULL && en->url_tries == 0 && srvocsp__dirsync_loads(&en->dirsync);
        items[n].known_version = en->store_version;
        items[n].held = srvocsp__cell_peek(&en->cell);
        if (items[n].held != NULL)
            srvocsp_response_up_ref(items[n].held);
        if (en->req.get_urls[en->url_idx] != NULL) {
            items[n].req.url = en->req.get_urls[en->url_idx];
        } else {
            items[n].req.url = url;
            items[n].req.body = en->req.der;
            items[n].req.body_len = en->req.der_len;
        }
        items[n].req.timeout_ms = en->url_timeout_ms;
        items[n].req.max_response_size = en->max_response_size;
        items[n].req.proxy = en->proxy;
        n++;
      }
    }
    return n;
}

/* A stored response stands in for the transfer: complete() takes it as a
 * pickup (verdict rules as for a fetch, no save back), and the transfer
 * slot and the request count are given back.  Runs without the lock. */
static void deliver_pickup(srvocsp_engine *e, srvocsp__completion *c, const unsigned char *der,
                           size_t len, uint64_t version, bool from_fleet)
{
    srvocsp_http_result res;

    memset(&res, 0, sizeof(res));
    res.http_status = 200;
    res.content_type = "application/ocsp-response";
    res.body = der;
    res.body_len = len;
    c->from_store = true;
    c->from_fleet = from_fleet;
    c->store_version = version;
    transport_done(c, &res);
    pthread_mutex_lock(&e->mu);
    e->in_flight--; /* complete() gives no slot back for a pickup */
    e->stats.requests_started--;
    e->stats.store_pickups++;
    pthread_mutex_unlock(&e->mu);
}

/* Before asking the network: has another process sharing the store saved
 * a newer response that is not itself due for refresh?  Then that one is
 * the answer.  Runs without the lock; reads only immutable entry fields. */
static bool take_from_store(srvocsp_engine *e, start_item *it)
{
    srvocsp__entry *en = it->c->en;
    srvocsp_response *snap = NULL;
    srvocsp__policy pol = en->pol;
    unsigned char *der = NULL;
    size_t len = 0;
    uint64_t version = en->store->ops->version(en->store, en->store_name);
    char why[SRVOCSP__REASON_LEN];
    srvocsp_error err;
    bool taken = false;

    if (version == 0 || version == it->known_version)
        return false;
    if (en->store->ops->load(en->store, en->store_name, en->max_response_size, &der, &len,
                             &version, why, sizeof(why)) != SRVOCSP_OK ||
        der == NULL)
        return false;
    pol.now = now_s(e);
    /* Taken only when the verdict rules would publish it (the same judge
     * as for a fetched response) and it is not itself due: anything else,
     * and the network is asked as usual. */
    if (srvocsp__verify(der, len, en->leaf, en->issuer, &pol, &snap, why, sizeof(why)) ==
            SRVOCSP_OK &&
        judge(en, it->held, snap, pol.now, &err, why, sizeof(why)) == V_PUBLISH &&
        srvocsp__sched_after_success(&en->sched, snap, pol.now, false) > pol.now) {
        deliver_pickup(e, it->c, der, len, version, false);
        taken = true;
    }
    srvocsp_response_free(snap);
    free(der);
    return taken;
}

/* Read-only directory (srvocsp_params.directory_mode): the due entry looks
 * at its stored file instead of asking the network.  A newer response that
 * verifies goes the usual way (complete(), as a store pickup); anything
 * else ends the look quietly until the next sync, with a FAILED event once
 * per stored version that could not be used.  Runs without the lock. */
static void sync_read_only(srvocsp_engine *e, start_item *it)
{
    srvocsp__completion *c = it->c;
    srvocsp__entry *en = c->en;
    srvocsp__policy pol = en->pol;
    srvocsp_response *snap = NULL;
    pending_event *events = NULL;
    unsigned char *der = NULL;
    size_t len = 0;
    uint64_t version = en->store->ops->version(en->store, en->store_name);
    srvocsp_error err = SRVOCSP_OK;
    char why[SRVOCSP__REASON_LEN], msg[SRVOCSP__REASON_LEN];
    int64_t now;

    msg[0] = '\0';
    if (version != 0 && version != it->known_version) {
        err = en->store->ops->load(en->store, en->store_name, en->max_response_size, &der, &len,
                                   &version, why, sizeof(why));
        if (err == SRVOCSP_OK && der != NULL) {
            pol.now = now_s(e);
            err = srvocsp__verify(der, len, en->leaf, en->issuer, &pol, &snap, why, sizeof(why));
        }
        /* The verdict rules decide, as for a fetched response: a newer
         * one, a revoked one in a tie, an older one when the held one can
         * no longer be served. */
        if (err != SRVOCSP_OK) {
            srvocsp__fmt(msg, sizeof(msg), "stored response ignored (%s): %s",
                         srvocsp_error_name(err), why);
        } else if (snap != NULL) {
            switch (judge(en, it->held, snap, pol.now, &err, why, sizeof(why))) {
            case V_PUBLISH: break;
            case V_UNCHANGED:
                srvocsp_response_free(snap);
                snap = NULL;
                break;
            case V_REFUSE:
                srvocsp_response_free(snap);
                snap = NULL;
                srvocsp__fmt(msg, sizeof(msg), "stored response not used (%s): %s",
                             srvocsp_error_name(err), why);
                break;
            }
        }
    }
    if (snap != NULL) {
        deliver_pickup(e, c, der, len, version, false);
        c = NULL;
    }
    srvocsp_response_free(snap);
    free(der);
    if (c == NULL)
        return;

    pthread_mutex_lock(&e->mu);
    if (en->host != NULL && en->host->in_flight > 0)
        en->host->in_flight--;
    en->host = NULL;
    e->in_flight--;
    e->stats.requests_started--;
    if (version != 0)
        en->store_version = version; /* an unusable version is not read again */
    en->in_flight = false;
    en->attempts_done++;
    if (!en->dead) {
        now = now_s(e);
        srvocsp__heap_set(e, en, srvocsp__dirsync_next(&en->dirsync, &en->sched,
                                                       srvocsp__cell_peek(&en->cell), now));
        if (msg[0] != '\0') {
            e->stats.failures++;
            en->last_err = err;
            snprintf(en->last_reason, sizeof(en->last_reason), "%s", msg);
            queue_events(en, SRVOCSP_EVENT_FAILED, NULL, err, msg, NULL, 0, &events);
        }
    }
    pthread_cond_broadcast(&e->progress);
    srvocsp__entry_unref_locked(en); /* the in-flight reference */
    pthread_mutex_unlock(&e->mu);
    completion_free(c);
    run_events(events);
}

/* How much longer than its retrieval timeout another process may hold a
 * certificate's lease before this one stops waiting for it. */
#define LEASE_GRACE_S 2

/* One process at a time asks the responder for a certificate kept in a
 * shared store: false when another one holds the lease.  Runs without the
 * lock, on the engine thread. */
static bool take_lease(srvocsp_engine *e, start_item *it)
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
    now = now_s(e);
    if (en->lease_busy_since == 0 || en->lease_busy_since > now)
        en->lease_busy_since = now;
    if (now - en->lease_busy_since <= (int64_t)(en->url_timeout_ms / 1000) + LEASE_GRACE_S)
        return false;
    en->lease_busy_since = 0;
    return true;
}

/* ---------------------------------------------------------------------
 * Fleet hooks (the logic is in fleet.c)
 * ------------------------------------------------------------------- */

/* Before a transfer starts: the fleet may hold the answer already, or
 * another process may be fetching it.  True when the transfer is not to
 * start.  Runs without the lock. */
static bool fleet_step(srvocsp_engine *e, srvocsp__completion *c)
{
    srvocsp__entry *en = c->en;
    unsigned char *der = NULL;
    size_t len = 0;
    int64_t at = 0;

    switch (srvocsp__fleet_before_fetch(e, en, &der, &len, &at)) {
    case SRVOCSP__FLEET_ADOPT:
        deliver_pickup(e, c, der, len, en->store_version, true);
        free(der);
        return true;
    case SRVOCSP__FLEET_WAIT:
        pthread_mutex_lock(&e->mu);
        if (en->host && en->host->in_flight > 0)
            en->host->in_flight--;
        en->host = NULL;
        e->in_flight--;
        e->stats.requests_started--;
        en->in_flight = false;
        if (!en->dead)
            srvocsp__heap_set(e, en, at);
        completion_free(c);
        srvocsp__entry_unref_locked(en);
        pthread_cond_broadcast(&e->progress);
        pthread_mutex_unlock(&e->mu);
        return true;
    default:
        return false;
    }
}

bool srvocsp__engine_adopt_locked(srvocsp__entry *en, const unsigned char *der, size_t len)
{
    srvocsp_engine *e = en->eng;
    srvocsp__completion *c;

    if (en->dead || en->in_flight || len == 0)
        return false;
    c = srvocsp__calloc(1, sizeof(*c));
    if (c == NULL || (c->body = srvocsp__malloc(len)) == NULL ||
        (c->content_type = srvocsp__strdup("application/ocsp-response")) == NULL) {
        if (c)
            completion_free(c);
        return false;
    }
    memcpy(c->body, der, len);
    c->body_len = len;
    c->http_status = 200;
    c->en = en;
    c->url = "shared store";
    c->from_store = true;
    c->from_fleet = true;
    c->store_version = en->store_version;
    en->refs++;
    en->in_flight = true;
    ready_remove(e, en); /* waiting for a transfer slot: no transfer needed now */
    srvocsp__heap_remove(e, en);
    e->stats.store_pickups++;
    done_push_locked(e, c);
    return true;
}

static void start_all(srvocsp_engine *e, start_item *items, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        srvocsp_error err;

        if (srvocsp__dirsync_read_only(&items[i].c->en->dirsync)) {
            sync_read_only(e, &items[i]);
            continue;
        }
        /* The lease first, then the look at the store: a holder saves
         * before it gives the lease back, so whoever takes it next sees
         * that save and adopts it instead of asking again. */
        if (items[i].check_store && !take_lease(e, &items[i])) {
            srvocsp_http_result res;

            memset(&res, 0, sizeof(res));
            items[i].c->deferred = true;
            transport_done(items[i].c, &res);
            continue;
        }
        if (items[i].check_store && take_from_store(e, &items[i]))
            continue;
        if (fleet_step(e, items[i].c))
            continue; /* adopted from the fleet, or another process fetches */
        err = e->transport.start(e->transport.ctx, &items[i].req, transport_done, items[i].c);
        if (err != SRVOCSP_OK) {
            srvocsp_http_result res;

            memset(&res, 0, sizeof(res));
            res.error = err;
            res.detail = "transport refused to start the request";
            transport_done(items[i].c, &res);
        }
    }
    for (i = 0; i < n; i++)
        srvocsp_response_free(items[i].held);
}

/* ---------------------------------------------------------------------
 * The engine thread
 * ------------------------------------------------------------------- */

#define START_BATCH 64
/* A wall clock that moved this much against the monotonic clock was
 * stepped (NTP, suspend/resume, a restored VM). */
#define CLOCK_JUMP_MS 5000

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
            srvocsp__heap_set(e, en, srvocsp__entry_plan_locked(en, now));
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
    if (e->clock_offset_valid && (d > CLOCK_JUMP_MS || d < -CLOCK_JUMP_MS)) {
        e->stats.clock_jumps++;
        replan_all(e, now);
    }
    e->clock_offset_ms = off;
    e->clock_offset_valid = true;
}

static void *engine_main(void *arg)
{
    srvocsp_engine *e = arg;
    start_item items[START_BATCH];

    pthread_mutex_lock(&e->mu);
    while (!e->stop) {
        pending_event *events = NULL;
        srvocsp__entry *top;
        int64_t now;
        size_t n;

        if (e->fork_hold) {
            /* Another thread is about to fork: wait here, holding nothing
             * but this lock, which the wait gives back (lifecycle.c). */
            e->parked = true;
            pthread_cond_broadcast(&e->progress);
            while (e->fork_hold)
                pthread_cond_wait(&e->wake, &e->mu);
            e->parked = false;
        }
        e->kicked = false;
        while (e->notes != NULL) {
            srvocsp__entry *en = e->notes;

            e->notes = en->note_next;
            en->note_pending = false;
            if (!en->dead)
                queue_events(en, SRVOCSP_EVENT_FAILED, NULL, en->note_err, en->note, NULL, 0,
                             &events);
            srvocsp__entry_unref_locked(en);
        }
        while (e->done_head != NULL) {
            srvocsp__completion *c = e->done_head;

            e->done_head = c->next;
            if (e->done_head == NULL)
                e->done_tail = NULL;
            complete(e, c, &events);
        }
        srvocsp__fleet_service_locked(e); /* other processes' announcements */
        now = now_s(e);
        check_clock(e, now);
        n = pick_starts(e, now, items, START_BATCH);
        if (n > 0 || events != NULL) {
            pthread_mutex_unlock(&e->mu);
            start_all(e, items, n);
            run_events(events);
            pthread_mutex_lock(&e->mu);
            continue;
        }
        if (e->done_head != NULL || e->kicked)
            continue;

        if (e->n_entries == 0 && e->in_flight == 0 && e->n_ready == 0) {
            /* Nothing left to serve: the thread ends; the next open starts
             * a new one. */
            e->idle = true;
            pthread_cond_broadcast(&e->progress);
            break;
        }
        top = srvocsp__heap_top(e);
        e->idle = e->in_flight == 0 && e->n_ready == 0 && (top == NULL || top->next_at > now);
        if (e->idle)
            pthread_cond_broadcast(&e->progress);
        {
            /* Wake at the next due time, and at least once a second so a
             * clock that jumps is noticed. */
            uint64_t ms = 1000;
            struct timespec ts;

            if (top != NULL && top->next_at > now && (uint64_t)(top->next_at - now) * 1000 < ms)
                ms = (uint64_t)(top->next_at - now) * 1000;
            if (e->curl != NULL) {
                /* The built-in transport waits here too: this thread moves
                 * the transfers along while it waits, and a wakeup of the
                 * engine ends the wait (srvocsp__engine_wake_locked). */
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
    }
    e->running = false;
    pthread_cond_broadcast(&e->progress); /* a fork may wait for the thread to park */
    pthread_mutex_unlock(&e->mu);
    return NULL;
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
    if (e->running)
        return SRVOCSP_OK;
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

/* Queues the reason a stored response was not used, for the engine thread
 * to report through the callbacks (openers do not call callbacks). */
void srvocsp__entry_add_note_locked(srvocsp__entry *en, srvocsp_error err, const char *note)
{
    srvocsp_engine *e = en->eng;

    snprintf(en->note, sizeof(en->note), "%s", note);
    en->note_err = err;
    en->last_err = err;
    snprintf(en->last_reason, sizeof(en->last_reason), "%s", note);
    if (en->note_pending)
        return;
    en->note_pending = true;
    en->refs++;
    en->note_next = e->notes;
    e->notes = en;
    srvocsp__engine_wake_locked(e);
}

/* Takes a certificate out of service once its last handle has closed; a
 * retrieval in flight finishes and is discarded. */
void srvocsp__entry_retire_locked(srvocsp__entry *en)
{
    srvocsp_engine *e = en->eng;

    if (en->dead)
        return;
    en->dead = true;
    entry_unlink(e, en);
    srvocsp__heap_remove(e, en);
    ready_remove(e, en);
}

/* Frees everything still attached to a stopped engine. */
void srvocsp__engine_teardown_locked(srvocsp_engine *e)
{
    size_t i;


    while (e->notes != NULL) {
        srvocsp__entry *en = e->notes;

        e->notes = en->note_next;
        en->note_pending = false;
        if (en->dead)
            srvocsp__entry_unref_locked(en);
        else
            en->refs--; /* freed with its bucket below */
    }
    while (e->done_head != NULL) {
        srvocsp__completion *c = e->done_head;
        srvocsp__entry *en = c->en;

        e->done_head = c->next;
        en->in_flight = false;
        completion_free(c); /* gives back its lease through the entry: first */
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
            entry_free(en); /* whatever its count: the engine is going away */
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
                done_queued |= c->en == en && !c->offered;
            if (en->in_flight && !done_queued) {
                en->in_flight = false;
                en->host = NULL;
                en->refs--; /* the lost transfer's reference; handles keep it alive */
                srvocsp__heap_set(e, en, now_s(e));
            }
            if (en->queued) {
                ready_remove(e, en);
                srvocsp__heap_set(e, en, now_s(e));
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
        if (!c->from_store && !c->offered)
            e->in_flight++; /* complete() gives these back */
        c->offer = NULL;    /* its thread is not in this process */
    }
    e->running = false;
    e->thread_valid = false;
    e->joining = false;
    e->stop = false;
}
