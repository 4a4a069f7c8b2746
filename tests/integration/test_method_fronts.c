/*
 * Fronts that take one HTTP method only (tests/support/evil.c), through the
 * real libcurl transport: every way a front refuses GET or POST that the
 * transport steps around, in the same attempt or at the next, each serving
 * a staple with the fallback in the stats and in srvocsp_method_fallbacks;
 * and srvocsp watch logging each such responder once.  The real responders
 * (cfssl, the npm ocsp package) are in test_methods.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "evil.h"
#include "methods_common.h"
#include "peers.h"
#include "srvocsp.h"
#include "testpki.h"

static void test_front_refuses_get(void **s)
{
    tp_pki pki;
    evil *ev;
    srvocsp_engine *eng = srvocsp_engine_new(NULL);
    srvocsp_handle *h = NULL, *h2 = NULL;
    srvocsp_response *r = NULL;
    srvocsp_engine_stats st;
    srvocsp_method_fallback f;
    char url[96], good[1100], other[1100], key[64];
    long before;

    (void)s;
    assert_true(tp_pki_make(&pki, "http://127.0.0.1:9/", NULL, (int64_t)time(NULL)));
    write_pem("front-good.pem", pki.good.cert, pki.ca.cert, good, sizeof(good));
    write_pem("front-other.pem", pki.good_rsa.cert, pki.ca.cert, other, sizeof(other));
    ev = evil_start(&pki, tr_wall_now, NULL, 4 * 3600);
    assert_non_null(ev);
    evil_set_slot(ev, 0, EVIL_NO_GET);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/k0/", evil_port(ev));
    snprintf(key, sizeof(key), ":%d/k0/", evil_port(ev));

    h = open_with(eng, good, url, 5000);
    assert_non_null(h);
    r = srvocsp_get1_response(h);
    assert_non_null(r); /* GET refused with 400: POST in the same attempt */
    assert_int_equal(srvocsp_response_status(r), SRVOCSP_STATUS_GOOD);
    srvocsp_response_free(r);
    st = stats_of(eng);
    assert_int_equal(st.fallbacks_get_to_post, 1);
    assert_int_equal(st.fallbacks_post_to_get, 0);
    assert_int_equal(st.failures, 0);
    assert_true(remembered(key, &f));
    assert_string_equal(f.method, "POST");
    assert_non_null(strstr(f.why, "GET answered HTTP 400"));
    assert_true(f.forget_in_s > 23 * 3600 && f.forget_in_s <= 24 * 3600);

    /* Remembered: the next certificate at that responder costs one POST. */
    before = evil_requests(ev);
    h2 = open_with(eng, other, url, 5000);
    r = srvocsp_get1_response(h2);
    assert_non_null(r);
    assert_int_equal(srvocsp_response_status(r), SRVOCSP_STATUS_GOOD);
    srvocsp_response_free(r);
    assert_int_equal(evil_requests(ev) - before, 1);
    assert_int_equal(stats_of(eng).fallbacks_get_to_post, 2);
    printf("front refusing GET with 400: both certificates served; %llu requests sent as POST\n",
           (unsigned long long)stats_of(eng).fallbacks_get_to_post);

    srvocsp_close(h);
    srvocsp_close(h2);
    srvocsp_engine_free(eng);
    evil_stop(ev);
    tp_pki_free(&pki);
}

/* Every way a front turns a GET away that the transport steps around:
 * each costs a POST in the same attempt, counted, and is remembered. */
static void test_front_refusals(void **s)
{
    static const struct {
        int how;
        const char *why;
    } cases[] = {
        {404, "GET answered HTTP 404"},
        {405, "GET answered HTTP 405"},
        {414, "GET answered HTTP 414"},
        {301, "GET answered HTTP 301 (a redirect, not followed)"},
        {308, "GET answered HTTP 308 (a redirect, not followed)"},
        {EVIL_REFUSE_HTML, "GET answered HTTP 200 with a body that is not an OCSP response"},
        {EVIL_REFUSE_MALFORMED, "GET answered malformedRequest (1)"},
    };
    tp_pki pki;
    evil *ev;
    char good[1100];
    size_t i;

    (void)s;
    assert_true(tp_pki_make(&pki, "http://127.0.0.1:9/", NULL, (int64_t)time(NULL)));
    write_pem("refusals-good.pem", pki.good.cert, pki.ca.cert, good, sizeof(good));
    ev = evil_start(&pki, tr_wall_now, NULL, 4 * 3600);
    assert_non_null(ev);
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        srvocsp_engine *eng = srvocsp_engine_new(NULL);
        srvocsp_handle *h;
        srvocsp_response *r;
        srvocsp_engine_stats st;
        srvocsp_method_fallback f;
        char url[96], key[64];
        long before = evil_requests(ev);
        int slot = 2 + (int)i; /* a path, so a responder, of its own */

        evil_set_refusal(ev, cases[i].how);
        evil_set_slot(ev, slot, EVIL_NO_GET);
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/k%d/", evil_port(ev), slot);
        snprintf(key, sizeof(key), ":%d/k%d/", evil_port(ev), slot);
        h = open_with(eng, good, url, 5000);
        assert_non_null(h);
        r = srvocsp_get1_response(h);
        if (r == NULL)
            fail_msg("%s: nothing served", cases[i].why);
        assert_int_equal(srvocsp_response_status(r), SRVOCSP_STATUS_GOOD);
        srvocsp_response_free(r);
        st = stats_of(eng);
        assert_int_equal(st.fallbacks_get_to_post, 1);
        assert_int_equal(st.fallbacks_post_to_get, 0);
        assert_int_equal(st.failures, 0);
        assert_int_equal(evil_requests(ev) - before, 2); /* the GET, then the POST */
        assert_true(remembered(key, &f));
        assert_string_equal(f.method, "POST");
        assert_string_equal(f.why, cases[i].why);
        printf("front refusing GET (%s): served after one POST\n", f.why);
        srvocsp_close(h);
        srvocsp_engine_free(eng);
    }
    evil_stop(ev);
    tp_pki_free(&pki);
}

/* A responder remembered to need POST moves behind a front that refuses
 * POST with 501: GET in the same attempt, and the memory is dropped. */
static void test_front_refuses_post_501(void **s)
{
    tp_pki pki;
    evil *ev;
    srvocsp_engine *eng = srvocsp_engine_new(NULL);
    srvocsp_handle *h;
    srvocsp_response *r, *r2;
    srvocsp_engine_stats st;
    char url[96], good[1100], key[64];

    (void)s;
    assert_true(tp_pki_make(&pki, "http://127.0.0.1:9/", NULL, (int64_t)time(NULL)));
    write_pem("post501-good.pem", pki.good.cert, pki.ca.cert, good, sizeof(good));
    ev = evil_start(&pki, tr_wall_now, NULL, 4 * 3600);
    assert_non_null(ev);
    evil_set_slot(ev, 8, EVIL_NO_GET);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/k8/", evil_port(ev));
    snprintf(key, sizeof(key), ":%d/k8/", evil_port(ev));
    h = open_with(eng, good, url, 5000);
    assert_non_null(h);
    r = srvocsp_get1_response(h);
    assert_non_null(r);
    assert_true(remembered(key, NULL)); /* POST from now on */

    evil_set_refusal(ev, 501);
    evil_set_slot(ev, 8, EVIL_NO_POST);
    tr_sleep_ms(1100); /* a new second: a new thisUpdate */
    assert_int_equal(srvocsp_handle_refresh_now(h), SRVOCSP_OK);
    assert_int_equal(srvocsp_engine_settle(eng, 10000), SRVOCSP_OK);
    st = stats_of(eng);
    assert_int_equal(st.fallbacks_post_to_get, 1);
    assert_int_equal(st.failures, 0);
    r2 = srvocsp_get1_response(h);
    assert_non_null(r2);
    assert_int_equal(srvocsp_response_status(r2), SRVOCSP_STATUS_GOOD);
    assert_true(srvocsp_response_this_update(r2) > srvocsp_response_this_update(r));
    assert_false(remembered(key, NULL));
    printf("front refusing POST with 501: served after one GET\n");
    srvocsp_response_free(r);
    srvocsp_response_free(r2);

    srvocsp_close(h);
    srvocsp_engine_free(eng);
    evil_stop(ev);
    tp_pki_free(&pki);
}

static void test_get_hangs_then_post_refused(void **s)
{
    tp_pki pki;
    evil *ev;
    srvocsp_engine *eng = srvocsp_engine_new(NULL);
    srvocsp_handle *h;
    srvocsp_response *r, *r2;
    srvocsp_method_fallback f;
    char url[96], good[1100], key[64], why[512];
    double t0;

    (void)s;
    assert_true(tp_pki_make(&pki, "http://127.0.0.1:9/", NULL, (int64_t)time(NULL)));
    write_pem("hang-good.pem", pki.good.cert, pki.ca.cert, good, sizeof(good));
    ev = evil_start(&pki, tr_wall_now, NULL, 4 * 3600);
    assert_non_null(ev);
    evil_set_slot(ev, 1, EVIL_GET_HANGS);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/k1/", evil_port(ev));
    snprintf(key, sizeof(key), ":%d/k1/", evil_port(ev));

    /* The GET hangs: the first attempt times out, nothing is served yet. */
    t0 = tr_now_ms();
    h = open_with(eng, good, url, 1500);
    assert_non_null(h);
    assert_int_equal(srvocsp_engine_settle(eng, 10000), SRVOCSP_OK);
    assert_null(srvocsp_get1_response(h));
    assert_int_equal(srvocsp_handle_last_failure(h, why, sizeof(why)), SRVOCSP_E_TIMEOUT);
    assert_true(tr_now_ms() - t0 < 10000);
    assert_false(remembered(key, NULL)); /* on trial only: not listed */
    assert_int_equal(stats_of(eng).get_unanswered, 1);

    /* The next attempt asks with POST, and it works: remembered. */
    assert_int_equal(srvocsp_handle_refresh_now(h), SRVOCSP_OK);
    r = wait_served(h, 10000);
    assert_non_null(r);
    assert_int_equal(stats_of(eng).fallbacks_get_to_post, 1);
    assert_true(remembered(key, &f));
    assert_string_equal(f.method, "POST");
    assert_non_null(strstr(f.why, "GET got no answer"));

    /* The responder moves behind a front that refuses POST with 405: GET
     * in the same attempt, and the memory of POST is dropped. */
    evil_set_slot(ev, 1, EVIL_NO_POST);
    tr_sleep_ms(1100); /* a new second: a new thisUpdate */
    assert_int_equal(srvocsp_handle_refresh_now(h), SRVOCSP_OK);
    assert_int_equal(srvocsp_engine_settle(eng, 10000), SRVOCSP_OK);
    assert_int_equal(stats_of(eng).fallbacks_post_to_get, 1);
    assert_int_equal(stats_of(eng).failures, 1); /* the hung GET only */
    r2 = srvocsp_get1_response(h);
    assert_non_null(r2);
    assert_true(srvocsp_response_this_update(r2) > srvocsp_response_this_update(r));
    assert_false(remembered(key, NULL));
    srvocsp_response_free(r);
    srvocsp_response_free(r2);

    srvocsp_close(h);
    srvocsp_engine_free(eng);
    evil_stop(ev);
    tp_pki_free(&pki);
}

/* ---- srvocsp watch logs each responder that needed a fallback once ---- */

/* Lines of |path| that contain |a| and |b|. */
static int lines_with(const char *path, const char *a, const char *b)
{
    FILE *f = fopen(path, "r");
    char line[2048];
    int n = 0;

    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        n += strstr(line, a) != NULL && strstr(line, b) != NULL;
    if (f != NULL)
        fclose(f);
    return n;
}

static bool wait_lines(const char *path, const char *a, const char *b, int ms)
{
    double until = tr_now_ms() + ms;

    while (lines_with(path, a, b) == 0 && tr_now_ms() < until)
        tr_sleep_ms(50);
    return lines_with(path, a, b) > 0;
}

/* A leaf of |pki|'s CA naming |url|, with the serial of one of its leaves
 * (the responder answers by serial, and the CertID is the same). */
static void leaf_at(tp_cert *out, const tp_pki *pki, long serial, const char *url)
{
    tp_cert_opts o;
    int64_t now = (int64_t)time(NULL);

    memset(&o, 0, sizeof(o));
    o.cn = "localhost";
    o.issuer = &pki->ca;
    o.serial = serial;
    o.not_before = now - 86400;
    o.not_after = now + 10 * 86400;
    o.server_auth = true;
    o.ocsp_urls[0] = url;
    assert_true(tp_cert_make(out, &o));
}

/* Responder A's GET hangs (on trial), then B's fallback is learnt and
 * logged, then A's POST works: A is logged too, though it was put on trial
 * before B was learnt.  Neither is logged again when asked again. */
static void test_watch_logs_each_fallback(void **s)
{
    tp_pki pki;
    tp_cert la, lb;
    evil *ev;
    char url_a[96], url_b[96], wdir[1100], path[1200], log[1100];
    char *argv[] = {SRVOCSP_CLI, "watch", "--dir", wdir, "--url-timeout", "1", NULL};
    pid_t pid;

    (void)s;
    assert_true(tp_pki_make(&pki, "http://127.0.0.1:9/", NULL, (int64_t)time(NULL)));
    ev = evil_start(&pki, tr_wall_now, NULL, 4 * 3600);
    assert_non_null(ev);
    evil_set_slot(ev, 9, EVIL_GET_HANGS);
    evil_set_slot(ev, 10, EVIL_NO_GET);
    snprintf(url_a, sizeof(url_a), "http://127.0.0.1:%d/k9/", evil_port(ev));
    snprintf(url_b, sizeof(url_b), "http://127.0.0.1:%d/k10/", evil_port(ev));
    leaf_at(&la, &pki, TP_SERIAL_GOOD, url_a);
    leaf_at(&lb, &pki, TP_SERIAL_GOOD_RSA, url_b);
    snprintf(wdir, sizeof(wdir), "%s/watched", dir);
    assert_int_equal(mkdir(wdir, 0755), 0);
    write_pem("watched/a.pem", la.cert, pki.ca.cert, path, sizeof(path));
    snprintf(log, sizeof(log), "%s/watch.log", dir);

    pid = spawn_peer(log, "watching", 10000, NULL, argv);
    if (pid == 0)
        fail_msg("srvocsp watch did not start (log %s)", log);
    if (!wait_lines(log, "failed cert=", "E_TIMEOUT", 15000))
        fail_msg("A's hung GET was not logged as a timeout (log %s)", log);
    /* B arrives: GET refused, POST learnt and logged. */
    write_pem("watched/b.pem", lb.cert, pki.ca.cert, path, sizeof(path));
    assert_int_equal(kill(pid, SIGHUP), 0);
    if (!wait_lines(log, "responder-fallback", url_b, 15000))
        fail_msg("B's fallback was not logged (log %s)", log);
    /* A is asked again, with POST, which works. */
    assert_int_equal(kill(pid, SIGUSR1), 0);
    if (!wait_lines(log, "responder-fallback", url_a, 15000))
        fail_msg("A's POST after its hung GET was never logged (log %s)", log);
    assert_int_equal(lines_with(log, url_a, "GET got no answer"), 1);
    assert_true(wait_lines(log, "updated cert=", "a.pem", 15000));
    snprintf(path, sizeof(path), "%s/a.pem.ocsp", wdir);
    assert_int_equal(access(path, R_OK), 0);
    /* Asked again from memory: nothing new to log. */
    assert_int_equal(kill(pid, SIGUSR1), 0);
    assert_true(wait_lines(log, "refresh-all", "", 5000));
    tr_sleep_ms(1500);
    assert_int_equal(lines_with(log, "responder-fallback", url_a), 1);
    assert_int_equal(lines_with(log, "responder-fallback", url_b), 1);
    printf("srvocsp watch: one responder-fallback line each for a GET that hung (logged "
           "after another responder's) and a GET refused with 400\n");

    stop_peers(NULL);
    evil_stop(ev);
    tp_cert_free(&la);
    tp_cert_free(&lb);
    tp_pki_free(&pki);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_front_refuses_get),
        cmocka_unit_test(test_front_refusals),
        cmocka_unit_test(test_front_refuses_post_501),
        cmocka_unit_test(test_get_hangs_then_post_refused),
        cmocka_unit_test_teardown(test_watch_logs_each_fallback, stop_peers),
    };

    setvbuf(stdout, NULL, _IOLBF, 0);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
