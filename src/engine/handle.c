/* The handle API: open, share, get, close. */
#include "engine/engine.h"
#include "engine/lifecycle.h"
#include "engine/fleet_table.h"
#include "core/proxy.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void srvocsp_params_init(srvocsp_params *p)
{
    memset(p, 0, sizeof(*p));
    p->struct_size = sizeof(*p);
    p->min_validity_s = 600;
    p->url_timeout_ms = 15000;
    p->max_before_next_update_s = 14400;
    p->min_before_next_update_s = 120;
    p->min_after_next_update_s = 60;
    p->certid_hash = SRVOCSP_HASH_SHA1;
    p->max_response_size = SRVOCSP__DEFAULT_MAX_RESPONSE;
    p->clock_skew_s = 300;
    p->max_age_no_next_update_s = 3600;
    p->max_lifetime_s = SRVOCSP__DEFAULT_MAX_LIFETIME;
    p->min_sync_s = SRVOCSP__MIN_SYNC_DEFAULT_S;
    p->max_sync_s = SRVOCSP__MAX_SYNC_DEFAULT_S;
}

static const char *params_problem(const srvocsp_params *p)
{
    if (p->struct_size < sizeof(*p))
        return "params struct_size is smaller than this library's srvocsp_params";
    if (p->flags & ~(SRVOCSP_OPEN_ASYNC | SRVOCSP_OPEN_DEFER_STORED))
        return "unknown flag bits";
    if (p->url_timeout_ms == 0)
        return "url_timeout_ms must be > 0";
    if (p->max_response_size == 0 || p->max_response_size > SRVOCSP__MAX_RESPONSE_CAP)
        return "max_response_size must be between 1 byte and 16 MiB";
    if (p->max_age_no_next_update_s == 0)
        return "max_age_no_next_update_s must be > 0";
    if (p->max_lifetime_s != 0 && p->max_lifetime_s <= p->min_validity_s)
        return "max_lifetime_s must be larger than min_validity_s (or 0 for no horizon)";
    if (p->adaptive_min_validity != 0 && p->adaptive_min_validity != 1)
        return "adaptive_min_validity must be 0 or 1";
    return srvocsp__dirsync_problem(p);
}

static srvocsp__entry *entry_new(srvocsp_engine *e, X509 *leaf, X509 *issuer,
                                 srvocsp__request *req, const srvocsp_params *p)
{
    srvocsp__entry *en = srvocsp__calloc(1, sizeof(*en));

    if (en == NULL)
        return NULL;
    srvocsp__cell_init(&en->cell);
    en->eng = e;
    en->heap_idx = SIZE_MAX;
    if (p->proxy && (en->proxy = srvocsp__strdup(p->proxy)) == NULL) {
        free(en);
        return NULL;
    }
    X509_up_ref(leaf);
    X509_up_ref(issuer);
    en->leaf = leaf;
    en->issuer = issuer;
    en->req = *req;
    memset(req, 0, sizeof(*req));
    en->sched.min_validity_s = p->min_validity_s;
    en->sched.max_before_s = p->max_before_next_update_s;
    en->sched.min_before_s = p->min_before_next_update_s;
    en->sched.min_after_s = p->min_after_next_update_s;
    en->sched.skew_s = p->clock_skew_s;
    en->sched.adaptive = p->adaptive_min_validity != 0;
    en->pol.skew_s = p->clock_skew_s;
    en->pol.max_age_s = p->max_age_no_next_update_s;
    en->pol.max_lifetime_s = p->max_lifetime_s;
    en->pol.certid = &en->req.id; /* both live as long as the entry */
    en->pol.delegate = &en->delegate;
    en->pol.signers = e->signers;
    en->url_timeout_ms = p->url_timeout_ms;
    en->max_response_size = p->max_response_size;
    srvocsp__dirsync_init(&en->dirsync, p);
    return en;
}

/* What the persistence directory held for a certificate, read and
 * verified before the engine lock is taken. */
typedef struct loaded {
    srvocsp__store *store;
    char name[SRVOCSP__STORE_NAME_LEN + 1];
    srvocsp_response *snap;      /* verified, or NULL */
    bool deferred;               /* to be read and verified on the pool */
    uint64_t version;
    srvocsp_error err;           /* why nothing usable was loaded */
    char why[SRVOCSP__REASON_LEN];
} loaded;

/* Reads what the directory holds for the certificate and verifies it, or,
 * with |defer| (SRVOCSP_OPEN_DEFER_STORED), leaves both to the pool once
 * the entry exists (verify_stored): opening 100,000 certificates then
 * costs the caller neither, and they run on every core. */
static void load_stored(loaded *l, const srvocsp_params *p, X509 *leaf, X509 *issuer,
                        const srvocsp__issuer_ids *ids, const srvocsp__certid *certid,
                        srvocsp__signer_cache *signers, int64_t now, bool defer)
{
    unsigned char *der = NULL;
    size_t len = 0;
    srvocsp__policy pol = {0};
    char why[SRVOCSP__REASON_LEN];

    memset(l, 0, sizeof(*l));
    if (p->directory == NULL)
        return;
    l->store = srvocsp__store_dir_new(p->directory);
    if (l->store == NULL || !srvocsp__store_name_from(ids->key_sha256, leaf, l->name)) {
        l->err = SRVOCSP_E_STORE;
        srvocsp__fmt(l->why, sizeof(l->why), "persistence directory unusable: %s",
                     srvocsp_last_error_text());
        return;
    }
    if (p->directory_mode == SRVOCSP_DIR_WRITE_ONLY)
        return; /* write-only: the store is for saving */
    if (defer) {
        l->deferred = true;
        return;
    }
    if (l->store->ops->load(l->store, l->name, p->max_response_size, &der, &len, &l->version, why,
                            sizeof(why)) != SRVOCSP_OK) {
        l->err = SRVOCSP_E_STORE;
        srvocsp__fmt(l->why, sizeof(l->why), "stored response ignored: %s", why);
        return;
    }
    if (der == NULL)
        return; /* nothing stored yet */
    pol.now = now;
    pol.skew_s = p->clock_skew_s;
    pol.max_age_s = p->max_age_no_next_update_s;
    pol.max_lifetime_s = p->max_lifetime_s;
    pol.certid = certid;
    pol.signers = signers;
    l->err = srvocsp__verify(der, len, leaf, issuer, &pol, &l->snap, why, sizeof(why));
    if (l->err != SRVOCSP_OK)
        srvocsp__fmt(l->why, sizeof(l->why), "stored response ignored (%s): %s",
                     srvocsp_error_name(l->err), why);
    free(der);
}

static void loaded_clear(loaded *ld)
{
    srvocsp_response_free(ld->snap);
    if (ld->store)
        ld->store->ops->free(ld->store);
    memset(ld, 0, sizeof(*ld));
}

/* A new entry takes over the store and the stored response, which goes
 * to the verdict like any other source's (served at once unless refused,
 * then a note says why); the entry is then planned from what it holds. */
static void adopt_stored(srvocsp_engine *e, srvocsp__entry *en, loaded *ld)
{
    char why[SRVOCSP__REASON_LEN];
    srvocsp_error err = SRVOCSP_OK;

    en->store = ld->store;
    ld->store = NULL;
    memcpy(en->store_name, ld->name, sizeof(en->store_name));
    en->store_version = ld->version;
    if (ld->deferred)
        return; /* planned once the stored response is judged: see verify_stored */
    if (ld->snap != NULL)
        (void)srvocsp__outcome_take_locked(e, en, SRVOCSP__SRC_OPEN, ld->snap, NULL, NULL, &err,
                                           why, sizeof(why));
    else if (ld->err != SRVOCSP_OK)
        srvocsp__entry_add_note_locked(en, ld->err, ld->why);
    srvocsp__heap_set(e, en, srvocsp__entry_plan_locked(en, srvocsp__engine_now(e)));
}

/* The stored response of a new entry, deferred by load_stored, is read
 * and verified (by the pool, or by the engine thread when the pool cannot
 * take it: srvocsp__completion_evaluate) and judged as the source
 * SRVOCSP__SRC_OPEN in complete.c, which then plans the entry.  Until then
 * the entry is not in the heap: nothing is fetched before the stored
 * response was judged. */
static void verify_stored(srvocsp_engine *e, srvocsp__entry *en)
{
    srvocsp__completion *c = srvocsp__completion_new_locked(en, SRVOCSP__SRC_OPEN);

    if (c == NULL || (c->content_type = srvocsp__strdup("application/ocsp-response")) == NULL) {
        if (c != NULL) {
            srvocsp__completion_free(c);
            srvocsp__entry_unref_locked(en);
        }
        srvocsp__entry_add_note_locked(en, SRVOCSP_E_NOMEM, "stored response ignored: out of memory");
        srvocsp__heap_set(e, en, srvocsp__entry_plan_locked(en, srvocsp__engine_now(e)));
        return;
    }
    c->read_stored = true;
    c->http_status = 200;
    c->url = "stored";
    if (!srvocsp__pool_take_locked(e, c))
        srvocsp__done_push_locked(e, c);
}

/* Frees an entry that no handle ever used. */
static void discard_entry(srvocsp__entry *en)
{
    srvocsp__entry_retire_locked(en);
    en->refs = 1;
    srvocsp__entry_unref_locked(en);
}

/* Waits (real time, bounded) for the first retrieval of |en| to finish,
 * unless it already has a response worth serving. */
static void wait_first(srvocsp_engine *e, srvocsp__entry *en, srvocsp_handle *h,
                       uint32_t timeout_ms)
{
    struct timespec ts;
    uint64_t target;
    srvocsp_response *cur = srvocsp__cell_peek(&en->cell);

    if (cur != NULL && srvocsp__servable(cur, h->clock.now(h->clock.ctx), h->min_validity_s,
                                         h->adaptive))
        return;
    /* From an update callback the engine thread is the caller: it cannot
     * wait for itself, so the open is asynchronous (srvocsp.h). */
    if (srvocsp__engine_thread_is_self(e))
        return;
    target = en->attempts_done + 1;
    if (!en->in_flight && !en->queued) {
        /* Backing off after an earlier failure: this open asks now. */
        srvocsp__heap_set(e, en, e->clock.now(e->clock.ctx));
        e->kicked = true;
        srvocsp__engine_wake_locked(e);
    }
    srvocsp__deadline_ms(&ts, timeout_ms);
    while (en->attempts_done < target && !en->dead && e->running)
        if (pthread_cond_timedwait(&e->progress, &e->mu, &ts) != 0)
            break;
}

srvocsp_handle *srvocsp_open(X509 *leaf, STACK_OF(X509) *chain, const srvocsp_params *params)
{
    srvocsp_params def;
    srvocsp__request req;
    srvocsp__issuer_ids ids;
    srvocsp_engine *e;
    srvocsp__entry *en;
    srvocsp_handle *h = NULL;
    X509 *issuer;
    const char *problem;
    srvocsp_error err;
    loaded ld;
    srvocsp__store *fleet = NULL;
    bool created = false, defer;

    memset(&req, 0, sizeof(req));
    memset(&ld, 0, sizeof(ld));
    if (params == NULL) {
        srvocsp_params_init(&def);
        params = &def;
    }
    if (leaf == NULL || chain == NULL) {
        srvocsp__set_error(SRVOCSP_E_INVALID_ARG, "srvocsp_open: %s",
                           leaf == NULL ? "no certificate" : "no chain (the issuer is required)");
        return NULL;
    }
    if ((problem = params_problem(params)) != NULL) {
        srvocsp__set_error(SRVOCSP_E_INVALID_ARG, "srvocsp_open: %s", problem);
        return NULL;
    }
    issuer = srvocsp__find_issuer(leaf, chain);
    if (issuer == NULL) {
        srvocsp__set_error(SRVOCSP_E_NO_ISSUER,
                           "srvocsp_open: no certificate in the chain issued the leaf");
        return NULL;
    }
    e = params->engine ? params->engine : srvocsp__default_engine();
    if (e == NULL)
        return NULL;
    srvocsp__engine_check_fork(e);
    /* The issuer's hashes, kept by the engine: every CertID and store name
     * of its certificates is made of them. */
    if (!srvocsp__signer_cache_issuer_ids(e->signers, issuer, &ids)) {
        char msg[SRVOCSP__REASON_LEN] = "srvocsp_open: cannot hash the issuer's name and key";

        srvocsp__drain_ossl(msg, sizeof(msg));
        srvocsp__set_error(SRVOCSP_E_INTERNAL, "%s", msg);
        return NULL;
    }
    err = srvocsp__request_build_with(leaf, issuer, &ids, params->certid_hash,
                                      params->responder_url, params->use_nonce, &req);
    if (err != SRVOCSP_OK)
        return NULL; /* error already set */

    defer = (params->flags & SRVOCSP_OPEN_ASYNC) && (params->flags & SRVOCSP_OPEN_DEFER_STORED);
    load_stored(&ld, params, leaf, issuer, &ids, &req.id, e->signers, e->clock.now(e->clock.ctx),
                defer);
    if (!srvocsp__fleet_open_store(params, &fleet))
        goto fail; /* bad URL, refused AUTH: the error says which */
    h = srvocsp__calloc(1, sizeof(*h));
    if (h == NULL)
        goto nomem;
    atomic_init(&h->refs, 1);
    atomic_init(&h->holds, 1);
    h->min_validity_s = params->min_validity_s;
    h->skew_s = params->clock_skew_s;
    h->adaptive = params->adaptive_min_validity != 0;
    h->clock = e->clock;
    h->cb = params->update_cb;
    h->cb_arg = params->update_arg;
    h->cb_arg_free = params->update_arg_free;

    pthread_mutex_lock(&e->mu);
    if (e->stop) {
        pthread_mutex_unlock(&e->mu);
        srvocsp__set_error(SRVOCSP_E_SHUTDOWN, NULL);
        goto fail;
    }
    en = srvocsp__entry_find(e, req.key, req.key_len);
    if (en == NULL) {
        en = entry_new(e, leaf, issuer, &req, params);
        if (en == NULL) {
            pthread_mutex_unlock(&e->mu);
            goto nomem;
        }
        if (!srvocsp__entry_insert(e, en)) {
            srvocsp__entry_free(en);
            pthread_mutex_unlock(&e->mu);
            goto nomem;
        }
        adopt_stored(e, en, &ld);
        created = true;
        if (!srvocsp__fleet_attach_locked(en, &fleet)) {
            discard_entry(en);
            pthread_mutex_unlock(&e->mu);
            goto nomem;
        }
        if (en->fleet != NULL && srvocsp__cell_peek(&en->cell) != NULL &&
            en->heap_idx != SIZE_MAX) {
            /* Served from the directory: the fleet may know better (a
             * revocation announced while this process was down).  One
             * look at its copy now, without a fetch. */
            en->fleet_look = true;
            srvocsp__heap_set(e, en, srvocsp__engine_now(e));
        }
    }
    if (srvocsp__engine_start_locked(e) != SRVOCSP_OK) {
        if (en->refs == 0)
            discard_entry(en);
        pthread_mutex_unlock(&e->mu);
        goto fail;
    }
    en->refs++;
    h->entry = en;
    h->eng = e;
    h->next = en->handles;
    if (en->handles)
        en->handles->prev = h;
    en->handles = h;
    e->stats.handles_open++;
    if (created && ld.deferred) {
        /* The pool's answer wakes the engine: nothing to plan before. */
        verify_stored(e, en);
    } else {
        e->kicked = true;
        srvocsp__engine_wake_locked(e);
    }
    if (!(params->flags & SRVOCSP_OPEN_ASYNC))
        wait_first(e, en, h, params->url_timeout_ms);
    pthread_mutex_unlock(&e->mu);
    srvocsp__request_clear(&req);
    loaded_clear(&ld);
    if (fleet)
        fleet->ops->free(fleet); /* the entry already had one */
    return h;

nomem:
    srvocsp__set_error(SRVOCSP_E_NOMEM, NULL);
fail:
    srvocsp__request_clear(&req);
    loaded_clear(&ld);
    if (fleet)
        fleet->ops->free(fleet);
    free(h);
    return NULL;
}

srvocsp_handle *srvocsp_open_pem(const char *cert_path, const char *issuer_path,
                                 const srvocsp_params *params)
{
    STACK_OF(X509) *chain = NULL;
    srvocsp_handle *h = NULL;

    if (cert_path == NULL) {
        srvocsp__set_error(SRVOCSP_E_INVALID_ARG, "srvocsp_open_pem: no certificate file");
        return NULL;
    }
    chain = sk_X509_new_null();
    if (chain == NULL) {
        srvocsp__set_error(SRVOCSP_E_NOMEM, NULL);
        return NULL;
    }
    if (srvocsp__read_pem_certs(cert_path, chain) != SRVOCSP_OK ||
        (issuer_path != NULL && srvocsp__read_pem_certs(issuer_path, chain) != SRVOCSP_OK))
        goto out; /* the error names the file */
    h = srvocsp_open(sk_X509_value(chain, 0), chain, params);
out:
    sk_X509_pop_free(chain, X509_free);
    return h;
}

srvocsp_handle *srvocsp_handle_up_ref(srvocsp_handle *h)
{
    if (h != NULL)
        atomic_fetch_add_explicit(&h->refs, 1, memory_order_relaxed);
    return h;
}

void srvocsp_close(srvocsp_handle *h)
{
    if (h == NULL)
        return;
    srvocsp__engine_check_fork(h->eng);
    srvocsp__handle_release(h);
}

srvocsp_response *srvocsp_get1_response(srvocsp_handle *h)
{
    srvocsp_response *r;
    int64_t now;

    if (h == NULL) {
        srvocsp__set_error_code(SRVOCSP_E_INVALID_ARG);
        return NULL;
    }
    /* After fork() the child's engine restarts on its first call: one
     * relaxed load, not taken otherwise. */
    srvocsp__engine_check_fork(h->eng);
    /* Time first: the snapshot taken after it is never older than the
     * instant it is judged at. */
    now = h->clock.now(h->clock.ctx);
    r = srvocsp__proxy_acquire(&h->entry->cell);
    if (r == NULL) {
        srvocsp__set_error_code(SRVOCSP_E_OFFLINE);
        return NULL;
    }
    if (r->status == SRVOCSP_STATUS_UNKNOWN) {
        srvocsp_response_free(r);
        srvocsp__set_error_code(SRVOCSP_E_STATUS_UNKNOWN);
        return NULL;
    }
    if (r->expires - now < srvocsp__margin(r, h->min_validity_s, h->adaptive)) {
        srvocsp_response_free(r);
        srvocsp__set_error_code(SRVOCSP_E_STALE);
        return NULL;
    }
    /* The wall clock went back (or the responder's runs ahead): strict
     * clients refuse a staple from the future; the engine refetches.  The
     * clock was read before the snapshot, so a thread that stalled in
     * between reads it again before it withholds anything (rare path). */
    if (srvocsp__from_future(r, now, h->skew_s) &&
        srvocsp__from_future(r, h->clock.now(h->clock.ctx), h->skew_s)) {
        srvocsp_response_free(r);
        srvocsp__set_error_code(SRVOCSP_E_NOT_YET_VALID);
        return NULL;
    }
    return r;
}

X509 *srvocsp_handle_get0_leaf(const srvocsp_handle *h)
{
    return h ? h->entry->leaf : NULL;
}

X509 *srvocsp_handle_get0_issuer(const srvocsp_handle *h)
{
    return h ? h->entry->issuer : NULL;
}

srvocsp_error srvocsp_handle_last_failure(srvocsp_handle *h, char *buf, size_t len)
{
    srvocsp_engine *e;
    srvocsp_error err;

    if (h == NULL)
        return SRVOCSP_E_INVALID_ARG;
    e = h->entry->eng;
    pthread_mutex_lock(&e->mu);
    err = h->entry->last_err;
    if (buf != NULL && len > 0)
        snprintf(buf, len, "%s", srvocsp__entry_text(h->entry, SRVOCSP__TEXT_LAST));
    pthread_mutex_unlock(&e->mu);
    return err;
}

int64_t srvocsp_handle_next_attempt(srvocsp_handle *h)
{
    srvocsp_engine *e;
    int64_t t;

    if (h == NULL)
        return 0;
    e = h->entry->eng;
    pthread_mutex_lock(&e->mu);
    t = (h->entry->in_flight || h->entry->queued) ? 0 : h->entry->next_at;
    pthread_mutex_unlock(&e->mu);
    return t;
}

srvocsp_error srvocsp_handle_refresh_now(srvocsp_handle *h)
{
    srvocsp_engine *e;
    srvocsp__entry *en;

    if (h == NULL)
        return SRVOCSP_E_INVALID_ARG;
    en = h->entry;
    e = en->eng;
    srvocsp__engine_check_fork(e);
    pthread_mutex_lock(&e->mu);
    if (!en->dead && !en->in_flight && !en->queued) {
        srvocsp__heap_set(e, en, e->clock.now(e->clock.ctx));
        e->kicked = true;
        srvocsp__engine_wake_locked(e);
    }
    pthread_mutex_unlock(&e->mu);
    return SRVOCSP_OK;
}

srvocsp_error srvocsp_handle_offer_der(srvocsp_handle *h, const unsigned char *der, size_t len)
{
    if (h == NULL || der == NULL || len == 0) {
        srvocsp__set_error(SRVOCSP_E_INVALID_ARG, "srvocsp_handle_offer_der: %s",
                           h == NULL ? "no handle" : "no response bytes");
        return SRVOCSP_E_INVALID_ARG;
    }
    srvocsp__engine_check_fork(h->eng);
    return srvocsp__entry_offer(h->entry, der, len);
}
