/* The verification threads (src/engine/pool.c): a stored response verified
 * on them (SRVOCSP_OPEN_DEFER_STORED) gets exactly the decision it gets in
 * srvocsp_open, on every hostile input; many certificates opened that way
 * all serve, with nothing fetched; an engine freed while they work, and a
 * close while a response waits for them, leave nothing behind; refreshes
 * of entries still serving stay on the engine thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <openssl/ocsp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/engine.h"
#include "evil.h"
#include "fake.h"
#include "peers.h"
#include "store/store.h"
#include "testpki.h"

#define N_MANY 300

static tp_pki pki;
static tp_cert forged_ca;
static int64_t now;

/* The responder is down: whatever serves came from the directory. */
static void down(void *arg, const char *url, fake_reply *out)
{
    (void)arg;
    (void)url;
    out->error = SRVOCSP_E_TRANSPORT;
}

typedef struct outcome {
    bool served;
    int64_t this_update;
    srvocsp_cert_status status;
    char first_reason[400];  /* the note about the stored response, if any */
} outcome;

typedef struct events {
    pthread_mutex_t mu;
    char first[400];
} events;

static void on_event(srvocsp_handle *h, const srvocsp_event *ev, void *arg)
{
    events *w = arg;

    (void)h;
    pthread_mutex_lock(&w->mu);
    if (ev->type == SRVOCSP_EVENT_FAILED && w->first[0] == '\0' && ev->reason != NULL)
        snprintf(w->first, sizeof(w->first), "%s", ev->reason);
    pthread_mutex_unlock(&w->mu);
}

static void store_path(X509 *leaf, char *buf, size_t len, const char *dir)
{
    char name[SRVOCSP__STORE_NAME_LEN + 1];

    assert_true(srvocsp__store_name(leaf, pki.ca.cert, name));
    snprintf(buf, len, "%s/%s.der", dir, name);
}

/* Opens pki.good with |der| stored, the responder down, and reports what
 * is served once the engine settled. */
static void open_with_stored(const unsigned char *der, size_t len, unsigned flags, outcome *out)
{
    manual_clock clock;
    fake_transport fake;
    srvocsp_engine *eng;
    srvocsp_params p;
    srvocsp_handle *h;
    srvocsp_response *r;
    events w;
    char *dir = tr_tmpdir("pool"), path[1200];

    memset(out, 0, sizeof(*out));
    memset(&w, 0, sizeof(w));
    pthread_mutex_init(&w.mu, NULL);
    store_path(pki.good.cert, path, sizeof(path), dir);
    assert_true(tp_write_file(path, der, len));
    manual_clock_init(&clock, now);
    fake_init(&fake, &clock, down, NULL);
    eng = fake_engine_new(&clock, &fake, -1, 1);
    srvocsp_params_init(&p);
    p.engine = eng;
    p.flags = flags;
    p.directory = dir;
    p.update_cb = on_event;
    p.update_arg = &w;
    p.url_timeout_ms = 2000;
    h = fake_open(pki.good.cert, pki.ca.cert, &p);
    assert_non_null(h);
    assert_int_equal(srvocsp_engine_settle(eng, 10000), SRVOCSP_OK);
    r = srvocsp_get1_response(h);
    if (r != NULL) {
        out->served = true;
        out->this_update = srvocsp_response_this_update(r);
        out->status = srvocsp_response_status(r);
        srvocsp_response_free(r);
    }
    srvocsp_close(h);
    srvocsp_engine_free(eng);
    fake_destroy(&fake);
    pthread_mutex_lock(&w.mu);
    snprintf(out->first_reason, sizeof(out->first_reason), "%s", w.first);
    pthread_mutex_unlock(&w.mu);
    pthread_mutex_destroy(&w.mu);
    tr_rmrf(dir);
    free(dir);
}

static void t_none(tp_resp_opts *o) { (void)o; }
static void t_revoked(tp_resp_opts *o) { o->status = V_OCSP_CERTSTATUS_REVOKED; o->reason = 1; }
static void t_unknown(tp_resp_opts *o) { o->status = V_OCSP_CERTSTATUS_UNKNOWN; }
static void t_delegate(tp_resp_opts *o) { o->signer = &pki.delegate; o->include_signer = true; }
static void t_delegate_missing(tp_resp_opts *o) { o->signer = &pki.delegate; }
static void t_noeku(tp_resp_opts *o) { o->signer = &pki.delegate_noeku; o->include_signer = true; }
static void t_other(tp_resp_opts *o) { o->signer = &pki.delegate_other; o->include_signer = true; }
static void t_expired_signer(tp_resp_opts *o) { o->signer = &pki.delegate_expired; o->include_signer = true; }
static void t_wrong_key(tp_resp_opts *o) { o->signer = &forged_ca; }
static void t_wrong_key_included(tp_resp_opts *o) { o->signer = &forged_ca; o->include_signer = true; }
static void t_other_cert(tp_resp_opts *o) { o->leaf = &pki.revoked; }
static void t_serial(tp_resp_opts *o) { o->mangle = TP_MANGLE_SERIAL; }
static void t_keyhash(tp_resp_opts *o) { o->mangle = TP_MANGLE_KEY_HASH; }
static void t_future(tp_resp_opts *o) { o->this_update = now + 3600; o->next_update = now + 90000; }
static void t_stale(tp_resp_opts *o) { o->this_update = now - 7200; o->next_update = now - 10; }
static void t_crit_single(tp_resp_opts *o) { o->critical_ext_single = true; }
static void t_crit_data(tp_resp_opts *o) { o->critical_ext_data = true; }
static void t_trylater(tp_resp_opts *o) { o->response_status = OCSP_RESPONSE_STATUS_TRYLATER; }
static void t_produced_early(tp_resp_opts *o) { o->produced_at = now - 10 * 86400; }

typedef struct pcase {
    const char *name;
    void (*tweak)(tp_resp_opts *o);
    bool served;
} pcase;

static const pcase cases[] = {
    {"good", t_none, true},
    {"revoked", t_revoked, true},
    {"unknown (held, never served)", t_unknown, false},
    {"delegated signer", t_delegate, true},
    {"delegated signer not included", t_delegate_missing, false},
    {"delegated signer without EKU", t_noeku, false},
    {"delegated signer of another CA", t_other, false},
    {"expired delegated signer", t_expired_signer, false},
    {"signed by a wrong key", t_wrong_key, false},
    {"forged issuer included", t_wrong_key_included, false},
    {"another certificate's", t_other_cert, false},
    {"wrong serial", t_serial, false},
    {"wrong issuer key hash", t_keyhash, false},
    {"thisUpdate in the future", t_future, false},
    {"expired", t_stale, false},
    {"critical extension in SingleResponse", t_crit_single, false},
    {"critical extension in ResponseData", t_crit_data, false},
    {"tryLater", t_trylater, false},
    {"producedAt before the certificate", t_produced_early, false},
};

static void compare(const char *name, const unsigned char *der, size_t len, bool want_served)
{
    outcome inl, pool;

    open_with_stored(der, len, SRVOCSP_OPEN_ASYNC, &inl);
    open_with_stored(der, len, SRVOCSP_OPEN_ASYNC | SRVOCSP_OPEN_DEFER_STORED, &pool);
    if (inl.served != want_served || pool.served != inl.served ||
        pool.this_update != inl.this_update || pool.status != inl.status ||
        strcmp(pool.first_reason, inl.first_reason) != 0)
        fail_msg("%s: in srvocsp_open served=%d (%s), on the pool served=%d (%s)", name,
                 inl.served, inl.first_reason, pool.served, pool.first_reason);
}

/* Every hostile stored response is refused on the pool for the reason it
 * is refused in srvocsp_open, and every good one served the same. */
static void test_same_decisions(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tp_resp_opts o;
        unsigned char *der;
        size_t len;

        tp_resp_opts_init(&o, &pki.good, &pki.ca, now);
        cases[i].tweak(&o);
        der = tp_response(&o, &len);
        assert_non_null(der);
        compare(cases[i].name, der, len, cases[i].served);
        if (i == 0) {
            /* Bytes that are no response at all, and a truncated one. */
            compare("garbage", (const unsigned char *)"not an OCSP response", 20, false);
            compare("truncated", der, len / 2, false);
        }
        free(der);
    }
}

/* Many certificates opened with their responses deferred to the pool all
 * serve, and nothing was asked of the responder. */
static void test_many_serve(void **state)
{
    manual_clock clock;
    fake_transport fake;
    srvocsp_engine *eng;
    srvocsp_params p;
    srvocsp_handle **h = calloc(N_MANY, sizeof(*h));
    tp_cert *leaves = calloc(N_MANY, sizeof(*leaves));
    char *dir = tr_tmpdir("pool-many"), path[1200];
    int i;

    (void)state;
    for (i = 0; i < N_MANY; i++) {
        tp_resp_opts o;
        unsigned char *der;
        size_t len;

        assert_true(tp_leaf_make(&leaves[i], &pki.ca, &pki.good, "pool", i, 0x500000 + i, now));
        tp_resp_opts_init(&o, &leaves[i], &pki.ca, now);
        der = tp_response(&o, &len);
        store_path(leaves[i].cert, path, sizeof(path), dir);
        assert_true(tp_write_file(path, der, len));
        free(der);
    }
    manual_clock_init(&clock, now);
    fake_init(&fake, &clock, down, NULL);
    eng = fake_engine_new(&clock, &fake, -1, 1);
    srvocsp_params_init(&p);
    p.engine = eng;
    p.flags = SRVOCSP_OPEN_ASYNC | SRVOCSP_OPEN_DEFER_STORED;
    p.directory = dir;
    p.responder_url = "http://127.0.0.1:1/"; /* these leaves name none */
    for (i = 0; i < N_MANY; i++) {
        h[i] = fake_open(leaves[i].cert, pki.ca.cert, &p);
        assert_non_null(h[i]);
    }
    assert_int_equal(srvocsp_engine_settle(eng, 30000), SRVOCSP_OK);
    for (i = 0; i < N_MANY; i++) {
        srvocsp_response *r = srvocsp_get1_response(h[i]);

        if (r == NULL)
            fail_msg("certificate %d does not serve: %s", i, srvocsp_last_error_text());
        assert_int_equal(srvocsp_response_this_update(r), now);
        srvocsp_response_free(r);
    }
    assert_int_equal(fake_requests(&fake), 0);
    /* Half closed, the engine freed with the rest open (it frees them):
     * nothing leaks, nothing runs afterwards (ASan, TSan). */
    for (i = 0; i < N_MANY; i += 2)
        srvocsp_close(h[i]);
    srvocsp_engine_free(eng);

    /* And freed while the pool still has work: opened, then freed at once. */
    eng = fake_engine_new(&clock, &fake, -1, 1);
    p.engine = eng;
    for (i = 0; i < N_MANY; i++)
        h[i] = fake_open(leaves[i].cert, pki.ca.cert, &p);
    for (i = 0; i < N_MANY; i += 3)
        srvocsp_close(h[i]);
    srvocsp_engine_free(eng);

    fake_destroy(&fake);
    for (i = 0; i < N_MANY; i++)
        tp_cert_free(&leaves[i]);
    free(leaves);
    free(h);
    tr_rmrf(dir);
    free(dir);
}

/* The flag alone (without SRVOCSP_OPEN_ASYNC) changes nothing: the stored
 * response serves from the first get. */
static void test_sync_open_unchanged(void **state)
{
    manual_clock clock;
    fake_transport fake;
    srvocsp_engine *eng;
    srvocsp_params p;
    srvocsp_handle *h;
    srvocsp_response *r;
    tp_resp_opts o;
    unsigned char *der;
    size_t len;
    char *dir = tr_tmpdir("pool-sync"), path[1200];

    (void)state;
    tp_resp_opts_init(&o, &pki.good, &pki.ca, now);
    der = tp_response(&o, &len);
    store_path(pki.good.cert, path, sizeof(path), dir);
    assert_true(tp_write_file(path, der, len));
    free(der);
    manual_clock_init(&clock, now);
    fake_init(&fake, &clock, down, NULL);
    eng = fake_engine_new(&clock, &fake, -1, 1);
    srvocsp_params_init(&p);
    p.engine = eng;
    p.flags = SRVOCSP_OPEN_DEFER_STORED;
    p.directory = dir;
    p.url_timeout_ms = 2000;
    h = fake_open(pki.good.cert, pki.ca.cert, &p);
    r = srvocsp_get1_response(h);
    assert_non_null(r);
    srvocsp_response_free(r);
    srvocsp_close(h);
    srvocsp_engine_free(eng);
    fake_destroy(&fake);
    tr_rmrf(dir);
    free(dir);
}

/* Who verifies a refresh.  Entries that still serve a time-valid response
 * refresh with their answers verified on the engine thread (the pool would
 * cost CPU and save nobody any wait); once the served responses have
 * expired, the answers are awaited again and go to the pool.  Every handle
 * serves the newest response either way.  Real HTTP (the fast responder),
 * so several answers are in flight at once, as in a refresh round. */
#define N_ROUND 24
#define ROUND_VALIDITY (7 * 86400)

static void presign_round(evil *ev, tp_cert *leaves, int64_t at)
{
    for (int i = 0; i < N_ROUND; i++) {
        tp_resp_opts o;
        unsigned char *der;
        size_t len;

        tp_resp_opts_init(&o, &leaves[i], &pki.ca, at - 3600);
        o.next_update = at + ROUND_VALIDITY;
        der = tp_response(&o, &len);
        assert_non_null(der);
        evil_add_presigned(ev, 0x600000 + i, der, len);
        free(der);
    }
}

static void all_serve(srvocsp_handle **h, int64_t this_update, const char *round)
{
    for (int i = 0; i < N_ROUND; i++) {
        srvocsp_response *r = srvocsp_get1_response(h[i]);

        if (r == NULL || srvocsp_response_this_update(r) != this_update)
            fail_msg("%s: certificate %d does not serve the new response", round, i);
        srvocsp_response_free(r);
    }
}

static void test_refresh_inline(void **state)
{
    manual_clock clock;
    srvocsp_engine_config ec;
    srvocsp_engine *eng;
    srvocsp_params p;
    srvocsp_handle *h[N_ROUND];
    tp_cert leaves[N_ROUND];
    STACK_OF(X509) *chain = sk_X509_new_null();
    evil *ev = evil_start(&pki, tr_wall_now, NULL, 86400);
    uint64_t after_open, after_refresh;
    int64_t at;
    char url[64];
    int i;

    (void)state;
    assert_non_null(ev);
    sk_X509_push(chain, pki.ca.cert);
    for (i = 0; i < N_ROUND; i++)
        assert_true(tp_leaf_make(&leaves[i], &pki.ca, &pki.good, "round", i, 0x600000 + i, now));
    presign_round(ev, leaves, now);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/fast/", evil_port(ev));
    manual_clock_init(&clock, now);
    srvocsp_engine_config_init(&ec);
    ec.clock = &clock.clock;
    eng = srvocsp_engine_new(&ec);
    assert_non_null(eng);
    srvocsp_params_init(&p);
    p.engine = eng;
    p.flags = SRVOCSP_OPEN_ASYNC;
    p.responder_url = url;
    for (i = 0; i < N_ROUND; i++)
        assert_non_null(h[i] = srvocsp_open(leaves[i].cert, chain, &p));
    assert_int_equal(srvocsp_engine_settle(eng, 60000), SRVOCSP_OK);
    all_serve(h, now - 3600, "first fetch");
    after_open = srvocsp__pool_taken(eng);

    /* Past every refresh point, the served responses still valid. */
    at = now + ROUND_VALIDITY - 86400;
    presign_round(ev, leaves, at);
    manual_clock_set(&clock, at);
    srvocsp_engine_kick(eng);
    assert_int_equal(srvocsp_engine_settle(eng, 60000), SRVOCSP_OK);
    all_serve(h, at - 3600, "refresh while serving");
    after_refresh = srvocsp__pool_taken(eng);
    if (after_refresh != after_open)
        fail_msg("%llu refreshes of entries still serving went to the pool",
                 (unsigned long long)(after_refresh - after_open));

    /* Past the served responses' nextUpdate: awaited, so the pool helps.
     * Four answers are in flight at once (per host), so the first of each
     * four finds others pending and is handed over. */
    at += ROUND_VALIDITY + 86400;
    presign_round(ev, leaves, at);
    manual_clock_set(&clock, at);
    srvocsp_engine_kick(eng);
    assert_int_equal(srvocsp_engine_settle(eng, 60000), SRVOCSP_OK);
    all_serve(h, at - 3600, "refresh after expiry");
    if (srvocsp__pool_taken(eng) == after_refresh)
        fail_msg("no answer for an expired entry went to the pool");

    for (i = 0; i < N_ROUND; i++)
        srvocsp_close(h[i]);
    srvocsp_engine_free(eng);
    evil_stop(ev);
    for (i = 0; i < N_ROUND; i++)
        tp_cert_free(&leaves[i]);
    sk_X509_free(chain);
}

static int setup(void **state)
{
    tp_cert_opts co;

    (void)state;
    now = (int64_t)time(NULL);
    if (!tp_pki_make(&pki, "http://127.0.0.1:8080/", "http://127.0.0.1:1/", now))
        return -1;
    /* A CA with the issuer's name and another key. */
    memset(&co, 0, sizeof(co));
    co.cn = "srvocsp test issuing CA";
    co.serial = 2;
    co.ca = true;
    co.not_before = now - 86400;
    co.not_after = now + 365 * 86400;
    return tp_cert_make(&forged_ca, &co) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    tp_cert_free(&forged_ca);
    tp_pki_free(&pki);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_decisions),
        cmocka_unit_test(test_many_serve),
        cmocka_unit_test(test_sync_open_unchanged),
        cmocka_unit_test(test_refresh_inline),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
