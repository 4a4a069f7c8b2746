/*
 * Entries (one per certificate, shared by its handles): the table that
 * finds them, the responder hosts' ready queues that hold the ones about
 * to start, and the lifetimes of entries and handles.  All under e->mu.
 */
#include "engine/engine.h"
#include "engine/fleet_table.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* xorshift64*: jitter only, not security. */
double srvocsp__rand_unit_locked(srvocsp_engine *e)
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
    return at - (int64_t)((double)(at - now) * (srvocsp__rand_unit_locked(e) + 1.0) / 2.0 *
                          (double)e->cfg.jitter_percent / 200.0);
}

static uint64_t hash_key(const unsigned char *k, size_t n)
{
    uint64_t h = 1469598103934665603ULL;

    while (n--)
        h = (h ^ *k++) * 1099511628211ULL;
    return h;
}

/* ---------------------------------------------------------------------
 * The table
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
    /* Room in the heap now, where a failure reaches the opener, so that
     * scheduling can never fail later and leave the entry unscheduled. */
    if (!srvocsp__heap_reserve(e, e->n_entries + 1))
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

/* ---------------------------------------------------------------------
 * Responder hosts and their ready queues
 * ------------------------------------------------------------------- */

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

/* Entries ready to start wait in their responder host's queue, so picking
 * work costs what is started, not what is waiting (a host at its limit
 * would otherwise be walked past on every pass). */
void srvocsp__ready_remove(srvocsp_engine *e, srvocsp__entry *en)
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

void srvocsp__ready_push(srvocsp_engine *e, srvocsp__entry *en)
{
    srvocsp__host *h;

    if (en->queued || en->dead)
        return;
    h = host_get(e, en->req.urls[en->url_idx]);
    if (h == NULL) { /* out of memory: try again in a second */
        srvocsp__heap_set(e, en, srvocsp__engine_now(e) + 1);
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

void srvocsp__slot_release_locked(srvocsp_engine *e, srvocsp__entry *en)
{
    if (en->host != NULL && en->host->in_flight > 0)
        en->host->in_flight--;
    en->host = NULL;
    if (e->in_flight > 0)
        e->in_flight--;
}

/* ---------------------------------------------------------------------
 * Lifetimes
 * ------------------------------------------------------------------- */

void srvocsp__entry_free(srvocsp__entry *en)
{
    srvocsp__fleet_detach_locked(en);
    srvocsp__cell_publish(&en->cell, NULL);
    X509_free(en->leaf);
    X509_free(en->issuer);
    srvocsp__request_clear(&en->req);
    free(en->proxy);
    free(en->fleet_pending_der);
    free(en->texts);
    if (en->store)
        en->store->ops->free(en->store);
    free(en);
}

void srvocsp__entry_retire_locked(srvocsp__entry *en)
{
    srvocsp_engine *e = en->eng;

    if (en->dead)
        return;
    srvocsp__heap_remove(e, en);
    srvocsp__ready_remove(e, en);
    en->dead = true;
    entry_unlink(e, en);
}

void srvocsp__entry_unref_locked(srvocsp__entry *en)
{
    srvocsp_engine *e = en->eng;

    if (--en->refs > 0)
        return;
    srvocsp__entry_retire_locked(en);
    srvocsp__entry_free(en);
    srvocsp__engine_wake_locked(e); /* may be the last: let the thread exit */
}

void srvocsp__handle_release(srvocsp_handle *h)
{
    srvocsp__entry *en;
    srvocsp_engine *e;

    if (h == NULL || atomic_fetch_sub(&h->refs, 1) != 1)
        return;
    en = h->entry;
    e = en->eng;
    /* Out of the entry now, though a callback queued for it may still
     * run: an open right after this close must not join an entry that
     * only a pending callback keeps alive (it would get the old handle's
     * settings, directory mode included). */
    pthread_mutex_lock(&e->mu);
    if (h->prev)
        h->prev->next = h->next;
    else
        en->handles = h->next;
    if (h->next)
        h->next->prev = h->prev;
    h->prev = h->next = NULL;
    e->stats.handles_open--;
    if (en->handles == NULL)
        srvocsp__entry_retire_locked(en);
    pthread_mutex_unlock(&e->mu);
    srvocsp__handle_unhold(h);
}

void srvocsp__handle_unhold(srvocsp_handle *h)
{
    srvocsp__entry *en = h->entry;
    srvocsp_engine *e = en->eng;

    if (atomic_fetch_sub(&h->holds, 1) != 1)
        return;
    pthread_mutex_lock(&e->mu);
    srvocsp__entry_unref_locked(en); /* the handle's: kept while a callback could use it */
    pthread_mutex_unlock(&e->mu);
    if (h->cb_arg_free != NULL)
        h->cb_arg_free(h->cb_arg);
    free(h);
}

void srvocsp__entry_clock_refused_locked(srvocsp_engine *e, srvocsp__entry *en, int64_t now)
{
    int64_t at;

    en->clock_refused = true;
    if (en->clock_looks < 16)
        en->clock_looks++;
    /* While an attempt runs or waits for a slot, it looks by itself. */
    if (en->dead || en->in_flight || en->queued || en->heap_idx == SIZE_MAX)
        return;
    at = now + srvocsp__backoff_s(en->clock_looks);
    if (at < en->next_at)
        srvocsp__heap_set(e, en, at);
}

void srvocsp__entry_clock_clear_locked(srvocsp__entry *en)
{
    en->clock_refused = false;
    en->clock_looks = 0;
}

int64_t srvocsp__entry_plan_locked(srvocsp__entry *en, int64_t now)
{
    const srvocsp__sched *p = &en->sched;
    srvocsp_response *cur = srvocsp__cell_peek(&en->cell);

    if (srvocsp__dirsync_read_only(&en->dirsync)) /* the next look at the file */
        return srvocsp__dirsync_next(&en->dirsync, p, cur, now);

    if (cur == NULL || !srvocsp__sched_servable(p, cur, now))
        return en->failures ? srvocsp__sched_after_failure(p, cur, now, en->failures, 0.0, 0) : now;
    if (srvocsp__from_future(cur, now, p->skew_s))
        return now; /* withheld by get: ask for one we can serve */
    if (en->failures)
        return srvocsp__sched_after_failure(p, cur, now, en->failures, 0.0, 0);
    if (en->unchanged)
        return srvocsp__sched_after_unchanged(p, cur, now);
    return srvocsp__sched_after_success(p, cur, now, false);
}
