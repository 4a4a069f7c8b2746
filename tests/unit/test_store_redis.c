/* The Redis store against a real redis-server (TCP on 127.0.0.1 and a unix
 * socket, with a password and an ACL user), its scripts, its faults.  Its
 * URL and connections: test_redis_conn.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fake.h"
#include "peers.h"
#include "redisd.h"
#include "engine/fleet.h"
#include "store/store.h"
#include "testpki.h"
#include "verdict_cases.h"

static tp_pki pki;
static int64_t T;
static char NAME[SRVOCSP__STORE_NAME_LEN + 1];

static int setup(void **s)
{
    T = (int64_t)time(NULL);
    if (!tp_pki_make(&pki, "http://127.0.0.1:1/", "http://127.0.0.1:1/", T))
        return -1;
    return srvocsp__store_name(pki.good.cert, pki.ca.cert, NAME) ? 0 : -1;
}

static int teardown(void **s)
{
    tp_pki_free(&pki);
    return 0;
}

static void need_redis(void)
{
    if (!tr_redis_available()) {
        fprintf(stderr, "SKIP: redis-server is not installed (scripts/deps.sh --test)\n");
        exit(77);
    }
}

/* A good response for pki.good dated |tu|, valid |validity| s. */
static unsigned char *resp_at(int64_t tu, int64_t validity, int status, size_t *len)
{
    tp_resp_opts o;

    tp_resp_opts_init(&o, &pki.good, &pki.ca, tu);
    o.this_update = tu;
    o.next_update = tu + validity;
    o.status = status;
    if (status == V_OCSP_CERTSTATUS_REVOKED) {
        o.revoked_at = tu - 10;
        o.reason = 1;
    }
    return tp_response(&o, len);
}

/* ---------------------------------------------------------------------
 * Save, load, compare, expiry, list, notifications
 * ------------------------------------------------------------------- */

/* The fleet's save of a response (verified first, as the engine holds
 * only verified ones): the store compares and sets, the verdict decides. */
static srvocsp_error save_quiet(srvocsp__store *st, int64_t tu, int64_t validity, int status,
                                bool *stored)
{
    size_t len;
    unsigned char *der = resp_at(tu, validity, status, &len);
    srvocsp__policy pol = {.now = (int64_t)time(NULL), .skew_s = 300, .max_age_s = 3600,
                           .max_lifetime_s = SRVOCSP__DEFAULT_MAX_LIFETIME};
    srvocsp__sched sch = {.min_validity_s = 600, .max_before_s = 14400, .min_before_s = 120,
                          .min_after_s = 60, .skew_s = 300};
    srvocsp_response *r = NULL;
    srvocsp_error err;
    char why[300];

    *stored = false;
    if (der == NULL)
        return SRVOCSP_E_NOMEM;
    err = srvocsp__verify(der, len, pki.good.cert, pki.ca.cert, &pol, &r, why, sizeof(why));
    free(der);
    if (err != SRVOCSP_OK)
        return err;
    err = srvocsp__fleet_save(st, NAME, r, NULL, pki.good.cert, pki.ca.cert, &pol, &sch, 1 << 20,
                              stored, why, sizeof(why));
    srvocsp_response_free(r);
    return err;
}

static bool save(srvocsp__store *st, int64_t tu, int64_t validity, int status)
{
    bool stored = false;

    assert_int_equal(save_quiet(st, tu, validity, status, &stored), SRVOCSP_OK);
    return stored;
}

static int64_t loaded_tu(srvocsp__store *st)
{
    unsigned char *der = NULL;
    size_t len = 0;
    uint64_t version = 0;
    char why[300];
    srvocsp_response *r;
    int64_t tu;

    assert_int_equal(st->ops->load(st, NAME, 1 << 20, &der, &len, &version, why, sizeof(why)),
                     SRVOCSP_OK);
    if (der == NULL)
        return 0;
    r = srvocsp_verify_der(der, len, pki.good.cert, pki.ca.cert, NULL);
    assert_non_null(r);
    tu = srvocsp_response_this_update(r);
    assert_int_equal((int64_t)version, tu);
    srvocsp_response_free(r);
    free(der);
    return tu;
}

static void on_name(void *arg, const char *name, const unsigned char *der, size_t len)
{
    int *n = arg;
    srvocsp_response *r;

    if (strcmp(name, NAME) != 0)
        return;
    /* The announcement carries the response it announces. */
    r = srvocsp_verify_der(der, len, pki.good.cert, pki.ca.cert, NULL);
    assert_non_null(r);
    srvocsp_response_free(r);
    (*n)++;
}

static void exercise(tr_redis *rd, const char *url)
{
    srvocsp__store *st = srvocsp__store_redis_new(url, "t1:");
    srvocsp__store *other;
    char key[200], val[64], url2[1200];
    const char *argv[2] = {"PTTL", key};
    size_t lens[2];
    int seen = 0, i;
    long long pttl;

    assert_non_null(st);
    assert_int_equal(loaded_tu(st), 0);

    /* A second connection (another URL spelling: not shared) listens. */
    snprintf(url2, sizeof(url2), "%s%s", url, strncmp(url, "unix", 4) == 0 ? "?db=0" : "/0");
    other = srvocsp__store_redis_new(url2, "t1:");
    assert_non_null(other);
    assert_true(other != st);
    assert_true(other->ops->notify_fd(other) >= 0);
    assert_int_equal(other->ops->notify_drain(other, on_name, &seen), 0);

    assert_true(save(st, T - 100, 3600, V_OCSP_CERTSTATUS_GOOD));
    assert_int_equal(loaded_tu(st), T - 100);
    assert_int_equal(loaded_tu(other), T - 100);
    {
        /* The store's messages name it by its URL, the password masked. */
        unsigned char *der = NULL;
        size_t len = 0;
        uint64_t v = 0;
        char why[400];

        assert_int_equal(st->ops->load(st, NAME, 10, &der, &len, &v, why, sizeof(why)),
                         SRVOCSP_E_STORE);
        assert_null(der);
        if (strstr(why, strncmp(url, "unix", 4) == 0 ? "unix://" : "redis://127.0.0.1:") == NULL ||
            (rd->opts.password != NULL && (strstr(why, ":***@") == NULL ||
                                           strstr(why, rd->opts.password) != NULL)))
            fail_msg("reason: %s", why);
    }
    /* Older and equal are refused; newer replaces. */
    assert_false(save(st, T - 200, 3600, V_OCSP_CERTSTATUS_GOOD));
    assert_false(save(st, T - 100, 3600, V_OCSP_CERTSTATUS_GOOD));
    assert_int_equal(loaded_tu(st), T - 100);
    assert_true(save(st, T - 50, 3600, V_OCSP_CERTSTATUS_GOOD));
    /* Revoked wins a tie, and a good one does not win it back. */
    assert_true(save(st, T - 50, 3600, V_OCSP_CERTSTATUS_REVOKED));
    assert_false(save(st, T - 50, 3600, V_OCSP_CERTSTATUS_GOOD));
    assert_int_equal(loaded_tu(st), T - 50);

    /* The entry lives as long as the response: PTTL close to the rest of
     * its validity (3550 s). */
    snprintf(key, sizeof(key), "t1:{%s}:r", NAME);
    lens[0] = 4;
    lens[1] = strlen(key);
    pttl = tr_redis_cmd(rd, NULL, 0, 2, argv, lens);
    assert_true(pttl > 3400 * 1000LL && pttl <= 3550 * 1000LL);

    /* Every save was announced; the listener hears the other writer's. */
    for (i = 0; i < 100 && seen < 3; i++) {
        other->ops->notify_drain(other, on_name, &seen);
        if (seen < 3)
            tr_sleep_ms(10);
    }
    assert_int_equal(seen, 3);
    /* A writer does not hear its own saves. */
    seen = 0;
    assert_true(other->ops->notify_fd(other) >= 0);
    assert_true(st->ops->notify_fd(st) >= 0);
    assert_true(save(st, T - 10, 3600, V_OCSP_CERTSTATUS_REVOKED));
    tr_sleep_ms(50);
    st->ops->notify_drain(st, on_name, &seen);
    assert_int_equal(seen, 0);

    assert_int_equal(loaded_tu(st), T - 10);
    /* An already expired response is not shared. */
    {
        bool stored = true;
        char why[200];
        size_t len;
        unsigned char *der = resp_at(T - 7200, 3600, V_OCSP_CERTSTATUS_GOOD, &len);

        assert_int_equal(st->ops->save_if(st, "00", der, len, T - 7200, T - 3600, false, NULL,
                                          &stored, why, sizeof(why)),
                         SRVOCSP_OK);
        assert_false(stored);
        free(der);
    }
    (void)val;
    other->ops->free(other);
    st->ops->free(st);
}

static void test_tcp_save_load_notify(void **s)
{
    tr_redis rd;
    tr_redis_opts o = {.tcp = true};

    need_redis();
    assert_true(tr_redis_start(&rd, &o));
    exercise(&rd, rd.url);
    tr_redis_stop(&rd);
}

static void test_unix_password_and_acl_user(void **s)
{
    tr_redis rd;
    tr_redis_opts o = {.unix_socket = true, .password = "pw-default", .acl_user = "fleet",
                       .acl_password = "pw-fleet"};
    char url[1200];
    srvocsp__store *st;

    need_redis();
    assert_true(tr_redis_start(&rd, &o));
    exercise(&rd, rd.url); /* unix://:pw-default@/path */

    snprintf(url, sizeof(url), "unix://fleet:pw-fleet@%s", rd.sock);
    st = srvocsp__store_redis_new(url, "t2:");
    assert_non_null(st);
    assert_int_equal(loaded_tu(st), 0);
    assert_true(save(st, T - 5, 3600, V_OCSP_CERTSTATUS_GOOD));
    st->ops->free(st);

    /* Refused AUTH is an error at open that says so, without the password. */
    snprintf(url, sizeof(url), "unix://fleet:wrong-secret@%s", rd.sock);
    assert_null(srvocsp__store_redis_new(url, NULL));
    assert_int_equal(srvocsp_last_error(), SRVOCSP_E_STORE);
    assert_non_null(strstr(srvocsp_last_error_text(), "AUTH refused for user fleet"));
    assert_null(strstr(srvocsp_last_error_text(), "wrong-secret"));
    snprintf(url, sizeof(url), "unix://:nope@%s", rd.sock);
    assert_null(srvocsp__store_redis_new(url, NULL));
    assert_non_null(strstr(srvocsp_last_error_text(), "AUTH refused"));
    /* No password where one is needed: said at open too. */
    snprintf(url, sizeof(url), "unix://%s", rd.sock);
    assert_null(srvocsp__store_redis_new(url, NULL));
    assert_int_equal(srvocsp_last_error(), SRVOCSP_E_STORE);
    assert_non_null(strstr(srvocsp_last_error_text(), "needs a password"));
    snprintf(url, sizeof(url), "unix://:pw-default@%s?db=99999", rd.sock);
    assert_null(srvocsp__store_redis_new(url, NULL));
    assert_int_equal(srvocsp_last_error(), SRVOCSP_E_STORE);
    assert_non_null(strstr(srvocsp_last_error_text(), "SELECT 99999 refused"));
    tr_redis_stop(&rd);
}

/* ---------------------------------------------------------------------
 * Leases
 * ------------------------------------------------------------------- */

static void lease_rules(srvocsp__store *a, srvocsp__store *b)
{
    char ta[SRVOCSP__LEASE_TOKEN_LEN + 1], tb[SRVOCSP__LEASE_TOKEN_LEN + 1], why[300];
    int64_t left = 0;

    assert_int_equal(a->ops->lease_acquire(a, NAME, 5000, ta, &left, why, sizeof(why)),
                     SRVOCSP__LEASE_HELD);
    assert_int_equal(strlen(ta), SRVOCSP__LEASE_TOKEN_LEN);
    assert_int_equal(b->ops->lease_acquire(b, NAME, 5000, tb, &left, why, sizeof(why)),
                     SRVOCSP__LEASE_BUSY);
    assert_true(left > 3000 && left <= 5000);
    /* Another's token does not release it. */
    b->ops->lease_release(b, NAME, tb);
    assert_int_equal(b->ops->lease_acquire(b, NAME, 5000, tb, &left, why, sizeof(why)),
                     SRVOCSP__LEASE_BUSY);
    a->ops->lease_release(a, NAME, ta);
    assert_int_equal(b->ops->lease_acquire(b, NAME, 200, tb, &left, why, sizeof(why)),
                     SRVOCSP__LEASE_HELD);
    /* A holder that dies: its lease runs out by itself. */
    assert_int_equal(a->ops->lease_acquire(a, NAME, 5000, ta, &left, why, sizeof(why)),
                     SRVOCSP__LEASE_BUSY);
    tr_sleep_ms(300);
    assert_int_equal(a->ops->lease_acquire(a, NAME, 5000, ta, &left, why, sizeof(why)),
                     SRVOCSP__LEASE_HELD);
    /* The one whose lease expired cannot release the new holder's. */
    b->ops->lease_release(b, NAME, tb);
    assert_int_equal(b->ops->lease_acquire(b, NAME, 5000, tb, &left, why, sizeof(why)),
                     SRVOCSP__LEASE_BUSY);
    a->ops->lease_release(a, NAME, ta);
}

static void test_redis_lease(void **s)
{
    tr_redis rd;
    tr_redis_opts o = {.tcp = true};
    char url2[1200];
    srvocsp__store *a, *b;

    need_redis();
    assert_true(tr_redis_start(&rd, &o));
    a = srvocsp__store_redis_new(rd.url, NULL);
    snprintf(url2, sizeof(url2), "%s/0", rd.url);
    b = srvocsp__store_redis_new(url2, NULL);
    assert_non_null(a);
    assert_non_null(b);
    lease_rules(a, b);
    a->ops->free(a);
    b->ops->free(b);
    tr_redis_stop(&rd);
}

/* Issue 14: a machine whose held response nears its last servable moment
 * fetches itself, whatever the lease says.  Another machine took the
 * lease and never came back (its lease outlives the test): this one waits
 * for it while it can, then asks the responder before its staple lapses.
 * Injected clock, real Redis. */
static void test_stuck_lease_holder_costs_no_staple(void **s)
{
    tr_redis rd;
    tr_redis_opts o = {.tcp = true};
    manual_clock clk;
    fake_transport fake;
    fake_signer sg;
    srvocsp_engine *eng;
    srvocsp_params p;
    srvocsp_handle *h;
    srvocsp__store *other;
    srvocsp_response *r;
    char tok[SRVOCSP__LEASE_TOKEN_LEN + 1], why[300];
    int64_t left = 0, t, fetched_at = 0;
    int before;

    need_redis();
    assert_true(tr_redis_start(&rd, &o));
    manual_clock_init(&clk, T);
    sg.pki = &pki;
    sg.leaf = &pki.good;
    sg.clock = &clk;
    sg.validity = 86400;
    fake_init(&fake, &clk, fake_sign_good, &sg);
    eng = fake_engine_new(&clk, &fake, 0, 1);
    srvocsp_params_init(&p);
    p.engine = eng;
    p.store_url = rd.url;
    p.url_timeout_ms = 2000;
    h = fake_open(pki.good.cert, pki.ca.cert, &p);
    assert_non_null(h);
    assert_int_equal(fake_requests(&fake), 1);
    /* The first fetch's lease goes back once its save is done. */
    assert_int_equal(srvocsp_engine_settle(eng, 5000), SRVOCSP_OK);

    other = srvocsp__store_redis_new(rd.url, NULL);
    assert_non_null(other);
    assert_int_equal(other->ops->lease_acquire(other, NAME, 600000, tok, &left, why, sizeof(why)),
                     SRVOCSP__LEASE_HELD);
    before = fake_requests(&fake);
    /* From the refresh point (half the day) in 70 s steps: served at every
     * step, one request at the end. */
    for (t = T + 43200; t < T + 86400 && fake_requests(&fake) == before; t += 70) {
        manual_clock_set(&clk, t);
        srvocsp_engine_kick(eng);
        assert_int_equal(srvocsp_engine_settle(eng, 5000), SRVOCSP_OK);
        r = srvocsp_get1_response(h);
        assert_non_null(r); /* never without a staple */
        srvocsp_response_free(r);
        fetched_at = t;
    }
    print_message("  lease held by a stuck machine: waited %lld s past the refresh point, fetched "
                  "%lld s before the last servable moment\n",
                  (long long)(fetched_at - (T + 43200)), (long long)(T + 86400 - 600 - fetched_at));
    assert_int_equal(fake_requests(&fake), before + 1);
    assert_true(fetched_at > T + 43200);      /* it waited for the holder first */
    assert_true(fetched_at < T + 86400 - 600); /* and asked while still served */
    r = srvocsp_get1_response(h);
    assert_non_null(r);
    assert_int_equal(srvocsp_response_this_update(r), fetched_at);
    srvocsp_response_free(r);

    other->ops->lease_release(other, NAME, tok);
    other->ops->free(other);
    srvocsp_close(h);
    srvocsp_engine_free(eng);
    fake_destroy(&fake);
    tr_redis_stop(&rd);
}

/* ---------------------------------------------------------------------
 * The store never decides: the verdict's table through a real Redis
 * ------------------------------------------------------------------- */

static void test_verdict_table_through_redis(void **s)
{
    tr_redis rd;
    tr_redis_opts o = {.tcp = true};
    srvocsp__store *st;
    const srvocsp__sched sch = {.min_validity_s = 600, .max_before_s = 14400,
                                .min_before_s = 120, .min_after_s = 60, .skew_s = 300};
    size_t i, driven = 0;

    need_redis();
    assert_true(tr_redis_start(&rd, &o));
    st = srvocsp__store_redis_new(rd.url, "vc:");
    assert_non_null(st);
    for (i = 0; i < VERDICT_N_CASES; i++) {
        const verdict_case *vc = &VERDICT_CASES[i];
        int64_t n = (int64_t)time(NULL);
        srvocsp__policy pol = {.now = n, .skew_s = 300, .max_age_s = 3600,
                               .max_lifetime_s = SRVOCSP__DEFAULT_MAX_LIFETIME};
        unsigned char *dh = NULL, *dc = NULL, *got = NULL;
        size_t lh = 0, lc = 0, lg = 0;
        srvocsp_response *h = NULL, *c = NULL;
        srvocsp__verdict v;
        srvocsp_error err = SRVOCSP_OK;
        char name[16], why[SRVOCSP__REASON_LEN];
        uint64_t version;
        bool stored = false;

        if (!vc->redis)
            continue;
        driven++;
        snprintf(name, sizeof(name), "%02zx", i);
        if (vc->held) {
            dh = tp_response_at(&pki.good, &pki.ca,
                                 vc->h_status, n + vc->h_tu, n + vc->h_prod, n + vc->h_exp, &lh);
            assert_non_null(dh);
            assert_int_equal(srvocsp__verify(dh, lh, pki.good.cert, pki.ca.cert, &pol, &h, why,
                                             sizeof(why)),
                             SRVOCSP_OK);
            /* Put there as another process would have (no judging). */
            assert_int_equal(st->ops->save_if(st, name, dh, lh, h->this_update, h->expires,
                                              h->status == SRVOCSP_STATUS_REVOKED, NULL, &stored,
                                              why, sizeof(why)),
                             SRVOCSP_OK);
            assert_true(stored);
        }
        dc = tp_response_at(&pki.good, &pki.ca,
                             vc->c_status, n + vc->c_tu, n + vc->c_prod, n + vc->c_exp, &lc);
        assert_non_null(dc);
        assert_int_equal(
            srvocsp__verify(dc, lc, pki.good.cert, pki.ca.cert, &pol, &c, why, sizeof(why)),
            SRVOCSP_OK);
        v = srvocsp__verdict_judge(&sch, h, c, n, &err, why, sizeof(why));
        if ((int)v != vc->verdict)
            fail_msg("%s: the verdict on signed responses says %d, the table %d", vc->name,
                     (int)v, vc->verdict);
        assert_int_equal(srvocsp__fleet_save(st, name, c, NULL, pki.good.cert, pki.ca.cert, &pol,
                                             &sch, 1 << 20, &stored, why, sizeof(why)),
                         SRVOCSP_OK);
        if (stored != (v == SRVOCSP__V_REPLACE))
            fail_msg("%s: the verdict says %d, the store %s it", vc->name, (int)v,
                     stored ? "took" : "refused");
        /* What the fleet now reads is what the verdict chose. */
        assert_int_equal(st->ops->load(st, name, 1 << 20, &got, &lg, &version, why, sizeof(why)),
                         SRVOCSP_OK);
        if (v == SRVOCSP__V_REPLACE) {
            assert_int_equal(lg, lc);
            assert_memory_equal(got, dc, lc);
        } else if (vc->held) {
            assert_int_equal(lg, lh);
            assert_memory_equal(got, dh, lh);
        } else {
            assert_null(got);
        }
        free(got);
        free(dh);
        free(dc);
        srvocsp_response_free(h);
        srvocsp_response_free(c);
    }
    print_message("  %zu of %zu rows through redis-server\n", driven, (size_t)VERDICT_N_CASES);
    assert_true(driven >= 24); /* the trust horizon's and the producedAt tie's among them */
    st->ops->free(st);
    tr_redis_stop(&rd);
}

/* ---------------------------------------------------------------------
 * Poisoned values
 * ------------------------------------------------------------------- */

static void test_poisoned_values(void **s)
{
    tr_redis rd;
    tr_redis_opts o = {.tcp = true};
    srvocsp__store *st;
    char key[200], why[300];
    unsigned char *der = NULL;
    size_t len = 0;
    uint64_t version;

    need_redis();
    assert_true(tr_redis_start(&rd, &o));
    st = srvocsp__store_redis_new(rd.url, NULL);
    assert_non_null(st);
    snprintf(key, sizeof(key), "srvocsp:{%s}:r", NAME);

    /* A value of the wrong type: load says so; a save replaces it. */
    {
        const char *argv[3] = {"SET", key, "not a hash"};
        size_t l[3] = {3, strlen(key), 10};

        assert_true(tr_redis_cmd(&rd, NULL, 0, 3, argv, l) >= 0);
    }
    assert_int_equal(st->ops->load(st, NAME, 1 << 20, &der, &len, &version, why, sizeof(why)),
                     SRVOCSP_E_STORE);
    assert_non_null(strstr(why, "WRONGTYPE"));
    assert_true(save(st, T - 100, 3600, V_OCSP_CERTSTATUS_GOOD));
    assert_int_equal(loaded_tu(st), T - 100);

    /* Garbage bytes claiming a thisUpdate far in the future: a reader
     * that rejects them discards them (only those bytes), and a save does
     * not trust them either: what does not verify is replaced at once
     * (the store never compares thisUpdates; the verdict does). */
    {
        const char *argv[8] = {"HSET", key, "d", "garbage", "t", "99999999999", "s", "g"};
        size_t l[8];
        int i;

        for (i = 0; i < 8; i++)
            l[i] = strlen(argv[i]);
        assert_true(tr_redis_cmd(&rd, NULL, 0, 8, argv, l) >= 0);
        st->ops->discard(st, NAME, (const unsigned char *)"garbagf", 7); /* other bytes: kept */
        assert_int_equal(st->ops->load(st, NAME, 1 << 20, &der, &len, &version, why,
                                       sizeof(why)),
                         SRVOCSP_OK);
        assert_int_equal(len, 7);
        assert_memory_equal(der, "garbage", 7);
        st->ops->discard(st, NAME, der, len); /* those bytes: gone */
        free(der);
        der = NULL;
        assert_int_equal(loaded_tu(st), 0);
        assert_true(tr_redis_cmd(&rd, NULL, 0, 8, argv, l) >= 0);
    }
    assert_true(save(st, T - 20, 3600, V_OCSP_CERTSTATUS_GOOD));
    assert_int_equal(loaded_tu(st), T - 20);

    /* Oversized: refused by the reader's cap, not copied. */
    assert_int_equal(st->ops->load(st, NAME, 10, &der, &len, &version, why, sizeof(why)),
                     SRVOCSP_E_STORE);
    assert_null(der);
    assert_non_null(strstr(why, "over the cap of 10"));
    st->ops->discard(st, NAME, NULL, 100000); /* unreadable? no: kept */
    assert_int_equal(loaded_tu(st), T - 20);
    st->ops->discard(st, NAME, NULL, 10); /* over a reader's cap: gone */
    assert_int_equal(loaded_tu(st), 0);
    st->ops->free(st);
    tr_redis_stop(&rd);
}

/* ---------------------------------------------------------------------
 * Faults: hung, killed, restarted empty; fork
 * ------------------------------------------------------------------- */

static srvocsp__lease try_lease(srvocsp__store *st, char *why, size_t whylen)
{
    char tok[SRVOCSP__LEASE_TOKEN_LEN + 1];
    int64_t left;

    return st->ops->lease_acquire(st, NAME, 1000, tok, &left, why, whylen);
}

static srvocsp__lease wait_back(srvocsp__store *st)
{
    char why[600];
    srvocsp__lease l = SRVOCSP__LEASE_ERROR;
    int i;

    /* The backoff is at most 8 s. */
    for (i = 0; i < 200 && (l = try_lease(st, why, sizeof(why))) == SRVOCSP__LEASE_ERROR; i++)
        tr_sleep_ms(100);
    return l;
}

/* Redis's count of connections it accepted (INFO stats), each tr_redis_cmd
 * adding one. */
static long long connections_received(tr_redis *rd)
{
    static char info[16384];
    const char *argv[2] = {"INFO", "stats"};
    size_t lens[2] = {4, 5};
    const char *p;

    if (tr_redis_cmd(rd, info, sizeof(info), 2, argv, lens) < 0 ||
        (p = strstr(info, "total_connections_received:")) == NULL)
        return -1;
    return strtoll(p + strlen("total_connections_received:"), NULL, 10);
}

static void test_faults(void **s)
{
    tr_redis rd;
    tr_redis_opts o = {.tcp = true};
    srvocsp__store *st;
    char why[600];
    uint64_t epoch;
    int i, errors = 0;
    long long conns;
    double t0, first_ms;

    need_redis();
    assert_true(tr_redis_start(&rd, &o));
    st = srvocsp__store_redis_new(rd.url, NULL);
    assert_non_null(st);
    assert_true(save(st, T - 100, 3600, V_OCSP_CERTSTATUS_GOOD));
    epoch = st->ops->epoch(st);

    /* Hung: the first call times out (a few hundred ms), then every call
     * fails at once for the backoff: ten thousand of them do not each try
     * Redis, as the connections it received meanwhile show. */
    conns = connections_received(&rd);
    assert_true(conns > 0);
    tr_redis_pause(&rd);
    t0 = tr_now_ms();
    assert_int_equal(try_lease(st, why, sizeof(why)), SRVOCSP__LEASE_ERROR);
    first_ms = tr_now_ms() - t0;
    assert_non_null(strstr(why, "not tried again"));
    t0 = tr_now_ms();
    for (i = 0; i < 10000; i++)
        errors += try_lease(st, why, sizeof(why)) == SRVOCSP__LEASE_ERROR;
    print_message("  Redis hung: the first call gave up after %.0f ms, the next 10,000 took "
                  "%.0f ms in all\n", first_ms, tr_now_ms() - t0);
    assert_true(first_ms < 3000); /* bounded by the command timeout, not by Redis */
    assert_int_equal(errors, 10000);
    assert_int_equal(st->ops->notify_drain(st, NULL, NULL), 0);
    tr_redis_resume(&rd);
    assert_int_not_equal(wait_back(st), SRVOCSP__LEASE_ERROR);
    /* The hung calls' connection (if it reconnected), the one coming back
     * and the probe's: not one per call. */
    print_message("  connections Redis received meanwhile: %lld\n", connections_received(&rd) - conns);
    assert_true(connections_received(&rd) - conns <= 5);
    assert_int_equal(loaded_tu(st), T - 100);
    assert_true(st->ops->epoch(st) != epoch);

    /* Killed: errors; restarted empty: back, with nothing stored and a new
     * epoch that tells holders to save again. */
    tr_redis_kill(&rd);
    assert_int_equal(try_lease(st, why, sizeof(why)), SRVOCSP__LEASE_ERROR);
    assert_non_null(strstr(why, "not tried again"));
    epoch = st->ops->epoch(st);
    assert_true(tr_redis_restart(&rd));
    assert_int_equal(wait_back(st), SRVOCSP__LEASE_HELD);
    assert_true(st->ops->epoch(st) != epoch);
    assert_int_equal(loaded_tu(st), 0);
    assert_true(save(st, T - 100, 3600, V_OCSP_CERTSTATUS_GOOD));

    /* A forked child gets its own connection. */
    {
        pid_t pid = fork();
        int status;

        if (pid == 0) {
            bool stored = false;

            _exit(save_quiet(st, T - 1, 3600, V_OCSP_CERTSTATUS_GOOD, &stored) == SRVOCSP_OK &&
                          stored
                      ? 0
                      : 1);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_int_equal(WEXITSTATUS(status), 0);
        assert_int_equal(loaded_tu(st), T - 1);
    }
    st->ops->free(st);

    /* Down at the start: the store opens (the responders will be asked)
     * and every call says why it failed. */
    tr_redis_stop(&rd);
    st = srvocsp__store_redis_new(rd.url, NULL);
    assert_non_null(st);
    assert_int_equal(try_lease(st, why, sizeof(why)), SRVOCSP__LEASE_ERROR);
    assert_non_null(strstr(why, "connect"));
    st->ops->free(st);
}

/* An announcement larger than any response we accept (a PUBLISH by
 * anyone who may) is not buffered whole: the subscription is dropped with
 * the reason, and the store is used again after its backoff. */
static void test_oversized_announcement(void **s)
{
    tr_redis rd;
    tr_redis_opts o = {.tcp = true};
    srvocsp__store *st;
    size_t big = SRVOCSP__MAX_RESPONSE_CAP + 1024 * 1024;
    char *msg = malloc(big), why[600];
    const char *argv[3] = {"PUBLISH", "srvocsp:updates", msg};
    size_t lens[3] = {7, 15, big};
    int seen = 0;

    need_redis();
    assert_non_null(msg);
    memset(msg, 'A', big);
    memcpy(msg, NAME, SRVOCSP__STORE_NAME_LEN);
    msg[SRVOCSP__STORE_NAME_LEN] = ' ';
    assert_true(tr_redis_start(&rd, &o));
    st = srvocsp__store_redis_new(rd.url, NULL);
    assert_non_null(st);
    assert_true(st->ops->notify_fd(st) >= 0); /* subscribed */
    assert_int_equal(tr_redis_cmd(&rd, NULL, 0, 3, argv, lens), 1); /* one subscriber */
    for (int i = 0; i < 400 && try_lease(st, why, sizeof(why)) != SRVOCSP__LEASE_ERROR; i++) {
        st->ops->notify_drain(st, on_name, &seen);
        tr_sleep_ms(5);
    }
    assert_int_equal(seen, 0);
    assert_int_equal(try_lease(st, why, sizeof(why)), SRVOCSP__LEASE_ERROR);
    assert_non_null(strstr(why, "announcement exceeds the maximum size"));
    assert_true(wait_back(st) != SRVOCSP__LEASE_ERROR); /* usable again after the backoff */
    st->ops->free(st);
    free(msg);
    tr_redis_stop(&rd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tcp_save_load_notify),
        cmocka_unit_test(test_unix_password_and_acl_user),
        cmocka_unit_test(test_redis_lease),
        cmocka_unit_test(test_stuck_lease_holder_costs_no_staple),
        cmocka_unit_test(test_poisoned_values),
        cmocka_unit_test(test_verdict_table_through_redis),
        cmocka_unit_test(test_faults),
        cmocka_unit_test(test_oversized_announcement),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
