/* Directory modes of srvocsp_params (crypt32's open para READ and WRITE
 * flags): read-only serves what another process stores and re-reads it on
 * the sync schedule without ever asking the network; write-only saves and
 * never loads.  Time is the injected clock: the test steps it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/dirsync.h"
#include "fake.h"
#include "internal.h"
#include "peers.h"
#include "store/store.h"
#include "testpki.h"

#define DAY 86400

static tp_pki pki;
static int64_t T;

typedef struct events {
    pthread_mutex_t mu;
    int updated, failed;
    char reason[600];
} events;

static void on_event(srvocsp_handle *h, const srvocsp_event *ev, void *arg)
{
    events *n = arg;

    (void)h;
    pthread_mutex_lock(&n->mu);
    if (ev->type == SRVOCSP_EVENT_UPDATED)
        n->updated++;
    if (ev->type == SRVOCSP_EVENT_FAILED) {
        n->failed++;
        snprintf(n->reason, sizeof(n->reason), "%s", ev->reason);
    }
    pthread_mutex_unlock(&n->mu);
}

/* Two processes' worth of engine on one clock: each with its own fake
 * responder, which signs a fresh good response valid a week. */
typedef struct side {
    fake_transport fake;
    fake_signer signer;
    srvocsp_engine *eng;
} side;

static void side_init(side *s, manual_clock *clock)
{
    s->signer.pki = &pki;
    s->signer.leaf = &pki.good;
    s->signer.clock = clock;
    s->signer.validity = 7 * DAY;
    fake_init(&s->fake, clock, fake_sign_good, &s->signer);
    s->eng = fake_engine_new(clock, &s->fake, 0, 1);
}

static void side_free(side *s)
{
    srvocsp_engine_free(s->eng);
    fake_destroy(&s->fake);
}

static srvocsp_handle *open_mode(side *s, const char *dir, unsigned mode, unsigned flags,
                                 events *ev)
{
    srvocsp_params p;

    srvocsp_params_init(&p);
    p.engine = s->eng;
    p.flags = flags;
    p.directory = dir;
    p.directory_mode = mode;
    if (ev != NULL) {
        p.update_cb = on_event;
        p.update_arg = ev;
    }
    return fake_open(pki.good.cert, pki.ca.cert, &p);
}

static int64_t served_this_update(srvocsp_handle *h)
{
    srvocsp_response *r = srvocsp_get1_response(h);
    int64_t t = r ? srvocsp_response_this_update(r) : 0;

    srvocsp_response_free(r);
    return t;
}

static void step(manual_clock *c, srvocsp_engine *e, int64_t t)
{
    manual_clock_set(c, t);
    srvocsp_engine_kick(e);
    assert_int_equal(srvocsp_engine_settle(e, 5000), SRVOCSP_OK);
}

static void stored_path(const char *dir, char *buf, size_t len)
{
    char name[SRVOCSP__STORE_NAME_LEN + 1];

    assert_true(srvocsp__store_name(pki.good.cert, pki.ca.cert, name));
    snprintf(buf, len, "%s/%s.der", dir, name);
}

static void test_read_only_follows_the_writer(void **st)
{
    char *dir = tr_tmpdir("dirmode-ro"), path[1200];
    manual_clock clock;
    side w, r;
    events ev;
    srvocsp_handle *hw, *hr;

    memset(&ev, 0, sizeof(ev));
    pthread_mutex_init(&ev.mu, NULL);
    manual_clock_init(&clock, T);
    side_init(&w, &clock);
    side_init(&r, &clock);

    /* The reader starts first, on an empty directory: nothing to serve,
     * and it does not ask its responder. */
    hr = open_mode(&r, dir, SRVOCSP_DIR_READ_ONLY, 0, &ev);
    assert_non_null(hr);
    assert_null(srvocsp_get1_response(hr));
    assert_int_equal(srvocsp_handle_next_attempt(hr), T + SRVOCSP__MIN_SYNC_DEFAULT_S);

    /* The writer fetches and stores. */
    hw = open_mode(&w, dir, SRVOCSP_DIR_READ_WRITE, 0, NULL);
    assert_non_null(hw);
    assert_int_equal(fake_requests(&w.fake), 1);
    assert_int_equal(served_this_update(hw), T);

    /* Not looked at again before SrvOcspRespMinSyncCertFileSeconds. */
    step(&clock, r.eng, T + 4);
    assert_null(srvocsp_get1_response(hr));
    step(&clock, r.eng, T + 5);
    assert_int_equal(served_this_update(hr), T);
    /* A week's response is due at half-time: the next look is at most
     * SrvOcspRespMaxSyncCertFileSeconds away. */
    assert_int_equal(srvocsp_handle_next_attempt(hr), T + 5 + SRVOCSP__MAX_SYNC_DEFAULT_S);

    /* The writer refreshes; the reader sees it at its next look, not before. */
    manual_clock_set(&clock, T + 100);
    assert_int_equal(srvocsp_handle_refresh_now(hw), SRVOCSP_OK);
    srvocsp_engine_kick(w.eng);
    assert_int_equal(srvocsp_engine_settle(w.eng, 5000), SRVOCSP_OK);
    assert_int_equal(served_this_update(hw), T + 100);
    step(&clock, r.eng, T + 5 + SRVOCSP__MAX_SYNC_DEFAULT_S - 1);
    assert_int_equal(served_this_update(hr), T);
    step(&clock, r.eng, T + 5 + SRVOCSP__MAX_SYNC_DEFAULT_S);
    assert_int_equal(served_this_update(hr), T + 100);

    /* A spoiled file: the held response keeps being served, the reason is
     * reported once for that version, not at every look. */
    stored_path(dir, path, sizeof(path));
    assert_true(tp_write_file(path, "not DER", 7));
    step(&clock, r.eng, T + 5 + 2 * SRVOCSP__MAX_SYNC_DEFAULT_S);
    step(&clock, r.eng, T + 5 + 3 * SRVOCSP__MAX_SYNC_DEFAULT_S);
    assert_int_equal(served_this_update(hr), T + 100);
    pthread_mutex_lock(&ev.mu);
    assert_int_equal(ev.failed, 1);
    assert_non_null(strstr(ev.reason, "stored response ignored"));
    assert_int_equal(ev.updated, 2);
    pthread_mutex_unlock(&ev.mu);

    /* A response offered to the reader is served, but the directory is
     * the writer's: nothing is written there. */
    {
        tp_resp_opts o;
        unsigned char *der, *before, *after;
        size_t len, before_len, after_len;
        int64_t now = T + 5 + 3 * SRVOCSP__MAX_SYNC_DEFAULT_S;

        before = tp_read_file(path, &before_len);
        assert_non_null(before);
        tp_resp_opts_init(&o, &pki.good, &pki.ca, now);
        o.next_update = now + 7 * DAY;
        der = tp_response(&o, &len);
        assert_non_null(der);
        assert_int_equal(srvocsp_handle_offer_der(hr, der, len), SRVOCSP_OK);
        assert_int_equal(served_this_update(hr), now);
        after = tp_read_file(path, &after_len);
        assert_non_null(after);
        assert_int_equal(after_len, before_len);
        assert_memory_equal(after, before, before_len); /* still the spoiled file */
        free(der);
        free(before);
        free(after);
    }

    /* Never the network, whatever the clock did. */
    assert_int_equal(fake_requests(&r.fake), 0);
    srvocsp_close(hr);
    srvocsp_close(hw);
    side_free(&r);
    side_free(&w);
    pthread_mutex_destroy(&ev.mu);
    tr_rmrf(dir);
    free(dir);
}

/* A revoked response stored with the thisUpdate of the held good one is
 * news (revoked wins a tie): the reader takes it at its next look, by the
 * same verdict rules as a fetched response. */
static void test_read_only_takes_a_revoked_tie(void **st)
{
    char *dir = tr_tmpdir("dirmode-tie"), path[1200], tmp[1300];
    manual_clock clock;
    side w, r;
    srvocsp_handle *hw, *hr;
    srvocsp_response *resp;
    tp_resp_opts o;
    unsigned char *der;
    size_t len;

    manual_clock_init(&clock, T);
    side_init(&w, &clock);
    side_init(&r, &clock);
    hw = open_mode(&w, dir, SRVOCSP_DIR_READ_WRITE, 0, NULL);
    assert_non_null(hw);
    hr = open_mode(&r, dir, SRVOCSP_DIR_READ_ONLY, 0, NULL);
    assert_non_null(hr);
    assert_int_equal(served_this_update(hr), T);

    tp_resp_opts_init(&o, &pki.good, &pki.ca, T);
    o.status = V_OCSP_CERTSTATUS_REVOKED;
    o.revoked_at = T - 3600;
    o.next_update = T + 7 * DAY;
    der = tp_response(&o, &len);
    assert_non_null(der);
    stored_path(dir, path, sizeof(path));
    snprintf(tmp, sizeof(tmp), "%s.new", path);
    assert_true(tp_write_file(tmp, der, len));
    assert_int_equal(rename(tmp, path), 0); /* as writers store */
    free(der);

    step(&clock, r.eng, T + SRVOCSP__MAX_SYNC_DEFAULT_S + 10);
    resp = srvocsp_get1_response(hr);
    assert_non_null(resp);
    assert_int_equal(srvocsp_response_status(resp), SRVOCSP_STATUS_REVOKED);
    assert_int_equal(srvocsp_response_this_update(resp), T);
    srvocsp_response_free(resp);
    assert_int_equal(fake_requests(&r.fake), 0);

    srvocsp_close(hr);
    srvocsp_close(hw);
    side_free(&r);
    side_free(&w);
    tr_rmrf(dir);
    free(dir);
}

static void test_read_only_due_response_looks_often(void **st)
{
    char *dir = tr_tmpdir("dirmode-due");
    manual_clock clock;
    side w, r;
    srvocsp_handle *hw, *hr;
    int64_t t;

    manual_clock_init(&clock, T);
    side_init(&w, &clock);
    side_init(&r, &clock);
    hw = open_mode(&w, dir, SRVOCSP_DIR_READ_WRITE, 0, NULL);
    assert_non_null(hw);
    srvocsp_close(hw); /* the writer stops: the stored response ages */
    hr = open_mode(&r, dir, SRVOCSP_DIR_READ_ONLY, 0, NULL);
    assert_int_equal(served_this_update(hr), T);
    /* Past its refresh point (half of the week) the reader looks every
     * SrvOcspRespMinSyncCertFileSeconds, and still serves what it has. */
    t = T + 4 * DAY;
    step(&clock, r.eng, t);
    assert_int_equal(srvocsp_handle_next_attempt(hr), t + SRVOCSP__MIN_SYNC_DEFAULT_S);
    step(&clock, r.eng, t + SRVOCSP__MIN_SYNC_DEFAULT_S);
    assert_int_equal(srvocsp_handle_next_attempt(hr), t + 2 * SRVOCSP__MIN_SYNC_DEFAULT_S);
    assert_int_equal(served_this_update(hr), T);
    assert_int_equal(fake_requests(&r.fake), 0);
    srvocsp_close(hr);
    side_free(&r);
    side_free(&w);
    tr_rmrf(dir);
    free(dir);
}

static void test_write_only_never_loads(void **st)
{
    char *dir = tr_tmpdir("dirmode-wo"), path[1200];
    manual_clock clock;
    side a, b;
    srvocsp_handle *ha, *hb;
    unsigned char *der;
    size_t len;
    srvocsp_response *r;

    manual_clock_init(&clock, T);
    side_init(&a, &clock);
    side_init(&b, &clock);
    ha = open_mode(&a, dir, SRVOCSP_DIR_READ_WRITE, 0, NULL);
    assert_int_equal(served_this_update(ha), T);
    srvocsp_close(ha);

    /* A stored, valid response is there; write-only asks the network all
     * the same and replaces the file with what it got. */
    manual_clock_set(&clock, T + 30);
    hb = open_mode(&b, dir, SRVOCSP_DIR_WRITE_ONLY, 0, NULL);
    assert_non_null(hb);
    assert_int_equal(fake_requests(&b.fake), 1);
    assert_int_equal(served_this_update(hb), T + 30);
    stored_path(dir, path, sizeof(path));
    der = tp_read_file(path, &len);
    assert_non_null(der);
    r = srvocsp_verify_der(der, len, pki.good.cert, pki.ca.cert, NULL);
    assert_non_null(r);
    assert_int_equal(srvocsp_response_this_update(r), T + 30);
    srvocsp_response_free(r);
    free(der);
    srvocsp_close(hb);
    side_free(&a);
    side_free(&b);
    tr_rmrf(dir);
    free(dir);
}

static void test_bad_params(void **st)
{
    srvocsp_params p;

    srvocsp_params_init(&p);
    assert_int_equal(p.directory_mode, SRVOCSP_DIR_READ_WRITE);
    assert_int_equal(p.min_sync_s, 5);
    assert_int_equal(p.max_sync_s, 3600);
    p.directory_mode = SRVOCSP_DIR_READ_ONLY;
    assert_null(fake_open(pki.good.cert, pki.ca.cert, &p));
    assert_int_equal(srvocsp_last_error(), SRVOCSP_E_INVALID_ARG);
    assert_non_null(strstr(srvocsp_last_error_text(), "needs a directory"));
    p.directory = "/tmp";
    p.directory_mode = 3;
    assert_null(fake_open(pki.good.cert, pki.ca.cert, &p));
    assert_non_null(strstr(srvocsp_last_error_text(), "directory_mode"));
    p.directory_mode = SRVOCSP_DIR_READ_ONLY;
    p.min_sync_s = 0;
    assert_null(fake_open(pki.good.cert, pki.ca.cert, &p));
    assert_non_null(strstr(srvocsp_last_error_text(), "min_sync_s"));
    p.min_sync_s = 10;
    p.max_sync_s = 9;
    assert_null(fake_open(pki.good.cert, pki.ca.cert, &p));
    assert_non_null(strstr(srvocsp_last_error_text(), "max_sync_s"));
}

/* A stored response's file name: SHA-256 over the SHA-256 of the issuer's
 * key bits and the serial's bytes, in lower-case hex, as every earlier
 * version named it (a directory written by one is read by the next), the
 * same from the issuer's kept hashes, for a long serial too. */
static void test_store_name_stable(void **st)
{
    static const char *const serials[] = {"1", "80", "FEDCBA9876543210FEDCBA98",
                                          "0102030405060708090A0B0C0D0E0F101112131415161718191A"
                                          "1B1C1D1E1F202122232425262728292A2B2C2D2E2F303132333435"
                                          "363738393A3B3C3D3E3F4041424344454647"};
    unsigned char kh[32], md[32];
    unsigned int n = 0, mlen = 0;
    srvocsp__issuer_ids ids;

    (void)st;
    assert_true(srvocsp__issuer_ids_compute(pki.ca.cert, &ids));
    assert_int_equal(X509_pubkey_digest(pki.ca.cert, EVP_sha256(), kh, &n), 1);
    assert_memory_equal(kh, ids.key_sha256, 32);
    for (size_t i = 0; i < sizeof(serials) / sizeof(serials[0]); i++) {
        X509 *leaf = X509_dup(pki.good.cert);
        BIGNUM *bn = NULL;
        ASN1_INTEGER *ai;
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        char a[SRVOCSP__STORE_NAME_LEN + 1], b[SRVOCSP__STORE_NAME_LEN + 1];
        char want[SRVOCSP__STORE_NAME_LEN + 1];

        assert_true(BN_hex2bn(&bn, serials[i]) > 0);
        ai = BN_to_ASN1_INTEGER(bn, NULL);
        assert_int_equal(X509_set_serialNumber(leaf, ai), 1);
        assert_int_equal(EVP_DigestInit_ex(ctx, EVP_sha256(), NULL), 1);
        assert_int_equal(EVP_DigestUpdate(ctx, kh, 32), 1);
        assert_int_equal(EVP_DigestUpdate(ctx, ASN1_STRING_get0_data(ai),
                                          (size_t)ASN1_STRING_length(ai)),
                         1);
        assert_int_equal(EVP_DigestFinal_ex(ctx, md, &mlen), 1);
        for (unsigned j = 0; j < 32; j++)
            snprintf(want + 2 * j, 3, "%02x", md[j]);
        assert_true(srvocsp__store_name(leaf, pki.ca.cert, a));
        assert_true(srvocsp__store_name_from(ids.key_sha256, leaf, b));
        assert_string_equal(a, want);
        assert_string_equal(b, want);
        EVP_MD_CTX_free(ctx);
        ASN1_INTEGER_free(ai);
        BN_free(bn);
        X509_free(leaf);
    }
}

static void test_sync_schedule(void **st)
{
    srvocsp__dirsync d = {SRVOCSP_DIR_READ_ONLY, 5, 3600};
    srvocsp__sched s = {600, 14400, 120, 60, 300, false};
    unsigned char *der;
    size_t len;
    tp_resp_opts o;
    srvocsp_response *r;
    srvocsp_verify_opts vo;

    assert_int_equal(srvocsp__dirsync_next(&d, &s, NULL, T), T + 5);
    /* A response valid two hours: its refresh point is a quarter in (the
     * Windows prefetch point, nextUpdate - 4 h, lies before thisUpdate). */
    tp_resp_opts_init(&o, &pki.good, &pki.ca, T);
    o.next_update = T + 7200;
    der = tp_response(&o, &len);
    srvocsp_verify_opts_init(&vo);
    vo.now = T;
    r = srvocsp_verify_der(der, len, pki.good.cert, pki.ca.cert, &vo);
    assert_non_null(r);
    assert_int_equal(srvocsp__sched_after_success(&s, r, T, false), T + 1800);
    assert_int_equal(srvocsp__dirsync_next(&d, &s, r, T), T + 1800);
    assert_int_equal(srvocsp__dirsync_next(&d, &s, r, T + 1000), T + 1800);
    assert_int_equal(srvocsp__dirsync_next(&d, &s, r, T + 1798), T + 1798 + 5);
    assert_int_equal(srvocsp__dirsync_next(&d, &s, r, T + 5000), T + 5005);
    d.max_s = 60;
    assert_int_equal(srvocsp__dirsync_next(&d, &s, r, T), T + 60);
    srvocsp_response_free(r);
    free(der);
}

static int setup(void **s)
{
    T = (int64_t)time(NULL);
    return tp_pki_make(&pki, "http://127.0.0.1:8080/", "http://127.0.0.1:1/", T) ? 0 : -1;
}

static int teardown(void **s)
{
    srvocsp_engine_stats st;
    unsigned long allocs;

    tp_pki_free(&pki);
    srvocsp_cleanup();
    /* Reading the default engine's counters after cleanup makes none: no
     * allocation at all (an engine made here would be one nobody frees). */
    memset(&st, 0xff, sizeof(st));
    allocs = srvocsp__alloc_count();
    srvocsp_engine_get_stats(NULL, &st);
    if (srvocsp__alloc_count() != allocs || st.requests_started != 0 || st.handles_open != 0) {
        fprintf(stderr, "get_stats(NULL) after srvocsp_cleanup made an engine\n");
        return -1;
    }
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_only_follows_the_writer),
        cmocka_unit_test(test_read_only_takes_a_revoked_tie),
        cmocka_unit_test(test_read_only_due_response_looks_often),
        cmocka_unit_test(test_write_only_never_loads),
        cmocka_unit_test(test_bad_params),
        cmocka_unit_test(test_sync_schedule),
        cmocka_unit_test(test_store_name_stable),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
