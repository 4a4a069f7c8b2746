/*
 * Responders as they are deployed, through the real libcurl transport:
 * fronts that take only one HTTP method (tests/support/evil.c), CloudFlare's
 * `cfssl ocspserve` serving pre-signed responses (it decodes a GET's path
 * twice and refuses it with 400), and the npm `ocsp` package's server (it
 * takes only POST and never finishes its answer to a GET).  Each proves
 * that a staple is ready anyway, and that the fallback shows in the stats
 * and in srvocsp_method_fallbacks; srvocsp watch logs each such responder
 * once.
 *
 * cfssl and the npm package are skipped, saying why (the program then
 * exits 77, so CTest shows it skipped rather than passed), where they are not
 * installed (scripts/deps.sh --test installs golang-cfssl, nodejs, npm; the
 * package is installed into the build directory by name).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "evil.h"
#include "peers.h"
#include "srvocsp.h"
#include "testpki.h"

#ifndef SRVOCSP_BUILD_DIR
#define SRVOCSP_BUILD_DIR "."
#endif
#ifndef SRVOCSP_SOURCE_DIR
#define SRVOCSP_SOURCE_DIR "."
#endif

static char *dir;
/* Cases that could not run their peer: the program then exits 77 (CTest
 * shows it skipped) rather than 0. */
static int skipped;
/* Peers started by the current test: a failed assertion leaves the test
 * function early, so the teardown stops them. */
static pid_t peers[2];

static pid_t spawn_peer(const char *log, const char *ready, int wait_ms, const char *env,
                        char *const argv[])
{
    pid_t pid = tr_spawn(log, ready, wait_ms, env, argv);

    for (size_t i = 0; i < sizeof(peers) / sizeof(peers[0]); i++)
        if (peers[i] == 0) {
            peers[i] = pid;
            break;
        }
    return pid;
}

static int stop_peers(void **s)
{
    (void)s;
    for (size_t i = 0; i < sizeof(peers) / sizeof(peers[0]); i++) {
        tr_pid_stop(peers[i]);
        peers[i] = 0;
    }
    return 0;
}

static srvocsp_handle *open_with(srvocsp_engine *eng, const char *pem, const char *url,
                                 uint32_t timeout_ms)
{
    srvocsp_params p;

    srvocsp_params_init(&p);
    p.engine = eng;
    p.responder_url = url;
    p.url_timeout_ms = timeout_ms;
    return srvocsp_open_pem(pem, NULL, &p);
}

static srvocsp_engine_stats stats_of(srvocsp_engine *eng)
{
    srvocsp_engine_stats st;

    srvocsp_engine_get_stats(eng, &st);
    return st;
}

/* The remembered responder whose key contains |needle|, or false. */
static bool remembered(const char *needle, srvocsp_method_fallback *out)
{
    srvocsp_method_fallback f[64];
    size_t i, n = srvocsp_method_fallbacks(f, 64);

    for (i = 0; i < n && i < 64; i++)
        if (strstr(f[i].responder, needle) != NULL) {
            if (out != NULL)
                *out = f[i];
            return true;
        }
    return false;
}

/* Waits (real time, generous) until |h| serves a response. */
static srvocsp_response *wait_served(srvocsp_handle *h, int ms)
{
    double until = tr_now_ms() + ms;
    srvocsp_response *r;

    while ((r = srvocsp_get1_response(h)) == NULL && tr_now_ms() < until)
        tr_sleep_ms(50);
    return r;
}

static void write_pem(const char *name, X509 *a, X509 *b, char *path, size_t len)
{
    snprintf(path, len, "%s/%s", dir, name);
    assert_true(tp_write_cert(path, a, b));
}

/* ---- fronts that take one method only (evil.c), real libcurl ---- */

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

/* ---- cfssl ocspserve: pre-signed responses from a file ---- */

static bool have(const char *tool)
{
    char cmd[256];

    snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", tool);
    return system(cmd) == 0;
}

/* `cfssl ocspsign` for |leaf| (a PEM with that certificate only), the
 * base64 response appended as one line to |out|. */
static bool cfssl_sign(const char *leaf, const char *extra, const char *out)
{
    char cmd[4096];

    snprintf(cmd, sizeof(cmd),
             "cfssl ocspsign -ca %s/cf-ca.pem -responder %s/cf-ca.pem -responder-key %s/cf-ca.key "
             "-cert %s %s 2>>%s/cfssl-sign.log "
             "| sed -n 's/.*\"ocspResponse\":\"\\([^\"]*\\)\".*/\\1/p' >>%s",
             dir, dir, dir, leaf, extra, dir, out);
    return system(cmd) == 0;
}

static void test_cfssl_ocspserve(void **s)
{
    tp_pki pki;
    srvocsp_engine *eng = NULL;
    srvocsp_handle *hg = NULL, *hr = NULL, *hu = NULL;
    srvocsp_response *rg = NULL, *rr = NULL, *again = NULL;
    srvocsp_engine_stats st;
    char url[64], path[1100], good[1100], revoked[1100], unknown[1100], file[1100], log[1100];
    char why[512], port_s[16];
    char *argv[] = {"cfssl", "ocspserve", "-address", "127.0.0.1", "-port", port_s,
                    "-responses", file, NULL};
    size_t la, lb;
    int port = tr_free_port();
    pid_t pid;
    struct stat sb;

    (void)s;
    if (!have("cfssl")) {
        printf("SKIP: cfssl is not installed (Debian package golang-cfssl)\n");
        skipped++;
        skip();
    }
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
    assert_true(tp_pki_make(&pki, url, NULL, (int64_t)time(NULL)));
    write_pem("cf-ca.pem", pki.ca.cert, NULL, path, sizeof(path));
    snprintf(path, sizeof(path), "%s/cf-ca.key", dir);
    assert_true(tp_write_key(path, pki.ca.key));
    /* cfssl reads one certificate per file; srvocsp the chain. */
    write_pem("cf-good-leaf.pem", pki.good.cert, NULL, path, sizeof(path));
    write_pem("cf-revoked-leaf.pem", pki.revoked.cert, NULL, path, sizeof(path));
    write_pem("cf-good.pem", pki.good.cert, pki.ca.cert, good, sizeof(good));
    write_pem("cf-revoked.pem", pki.revoked.cert, pki.ca.cert, revoked, sizeof(revoked));
    write_pem("cf-unknown.pem", pki.unknown.cert, pki.ca.cert, unknown, sizeof(unknown));
    /* Signed ahead (96 h, thisUpdate on the hour) as CAs do; the unknown
     * certificate is left out of the file. */
    snprintf(file, sizeof(file), "%s/cf-responses.txt", dir);
    snprintf(path, sizeof(path), "%s/cf-good-leaf.pem", dir);
    assert_true(cfssl_sign(path, "", file));
    snprintf(path, sizeof(path), "%s/cf-revoked-leaf.pem", dir);
    assert_true(cfssl_sign(path, "-status revoked -reason 1", file));
    assert_int_equal(stat(file, &sb), 0);
    assert_true(sb.st_size > 200);

    snprintf(port_s, sizeof(port_s), "%d", port);
    snprintf(log, sizeof(log), "%s/cfssl-serve.log", dir);
    pid = spawn_peer(log, "Now listening", 10000, NULL, argv);
    if (pid == 0)
        fail_msg("cfssl ocspserve did not start (log %s)", log);

    eng = srvocsp_engine_new(NULL);
    hg = open_with(eng, good, NULL, 5000);
    hr = open_with(eng, revoked, NULL, 5000);
    hu = open_with(eng, unknown, NULL, 5000);
    assert_non_null(hg);
    assert_non_null(hr);
    assert_non_null(hu);
    rg = srvocsp_get1_response(hg);
    rr = srvocsp_get1_response(hr);
    assert_non_null(rg);
    assert_non_null(rr);
    assert_int_equal(srvocsp_response_status(rg), SRVOCSP_STATUS_GOOD);
    assert_int_equal(srvocsp_response_status(rr), SRVOCSP_STATUS_REVOKED);
    assert_int_equal(srvocsp_response_revocation_reason(rr), 1); /* keyCompromise */
    assert_int_equal(srvocsp_response_this_update(rg) % 3600, 0);
    /* Not known to it: unauthorized, named as such. */
    assert_null(srvocsp_get1_response(hu));
    assert_int_equal(srvocsp_handle_last_failure(hu, why, sizeof(why)),
                     SRVOCSP_E_RESPONSE_STATUS);
    assert_non_null(strstr(why, "unauthorized"));
    st = stats_of(eng);
    assert_true(st.fallbacks_get_to_post >= 1);
    assert_int_equal(st.failures, 1);
    assert_true(remembered(url + 7, NULL)); /* "127.0.0.1:PORT/" */

    /* A refresh is handed the same pre-signed bytes: unchanged, not a failure. */
    assert_int_equal(srvocsp_handle_refresh_now(hg), SRVOCSP_OK);
    assert_int_equal(srvocsp_engine_settle(eng, 10000), SRVOCSP_OK);
    st = stats_of(eng);
    assert_int_equal(st.unchanged, 1);
    assert_int_equal(st.failures, 1);
    again = srvocsp_get1_response(hg);
    assert_non_null(again);
    {
        const unsigned char *a = srvocsp_response_der(again, &la);
        const unsigned char *b = srvocsp_response_der(rg, &lb);

        assert_int_equal(la, lb);
        assert_memory_equal(a, b, lb); /* the very bytes pre-signed by cfssl */
    }
    printf("cfssl ocspserve: good, revoked (keyCompromise), unauthorized; %llu requests as POST, "
           "%llu unchanged\n",
           (unsigned long long)st.fallbacks_get_to_post, (unsigned long long)st.unchanged);

    srvocsp_response_free(rg);
    srvocsp_response_free(rr);
    srvocsp_response_free(again);
    srvocsp_close(hg);
    srvocsp_close(hr);
    srvocsp_close(hu);
    srvocsp_engine_free(eng);
    stop_peers(NULL);
    tp_pki_free(&pki);
}

/* ---- the npm `ocsp` package's server: POST only, a GET hangs ---- */

/* Installs the package into the build directory (never the repository)
 * unless it is there; the path of its node_modules, or NULL. */
static const char *npm_ocsp(void)
{
    static char mods[1200];
    char probe[1300], cmd[3000];

    snprintf(mods, sizeof(mods), "%s/npm/node_modules", SRVOCSP_BUILD_DIR);
    snprintf(probe, sizeof(probe), "%s/ocsp/lib/ocsp/server.js", mods);
    if (access(probe, R_OK) == 0)
        return mods;
    if (!have("npm"))
        return NULL;
    snprintf(cmd, sizeof(cmd),
             "timeout 180 npm install --no-audit --no-fund --prefix '%s/npm' ocsp@1.2.0 "
             ">'%s/npm-install.log' 2>&1",
             SRVOCSP_BUILD_DIR, dir);
    if (system(cmd) != 0 || access(probe, R_OK) != 0)
        return NULL;
    return mods;
}

static void test_npm_ocsp_server(void **s)
{
    tp_cert ca, leaf;
    tp_cert_opts o;
    srvocsp_engine *eng = NULL;
    srvocsp_handle *h = NULL;
    srvocsp_response *r = NULL;
    srvocsp_method_fallback f;
    const char *mods;
    int64_t now = (int64_t)time(NULL);
    int port = tr_free_port();
    char url[64], key[32], ca_pem[1100], ca_key[1100], chain[1100], log[1100], script[1200];
    char env[1300], port_s[16], why[512];
    char *argv[] = {"node", script, ca_pem, ca_key, port_s, "2a01:good", NULL};
    pid_t pid;
    double t0, first;

    (void)s;
    if (!have("node")) {
        printf("SKIP: node is not installed (Debian package nodejs)\n");
        skipped++;
        skip();
    }
    if ((mods = npm_ocsp()) == NULL) {
        printf("SKIP: the npm package ocsp could not be installed (see %s/npm-install.log)\n", dir);
        skipped++;
        skip();
    }
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
    snprintf(key, sizeof(key), ":%d/", port);
    /* It signs with the issuing CA's own RSA key. */
    memset(&o, 0, sizeof(o));
    o.cn = "npm ocsp test CA";
    o.serial = 0x50;
    o.not_before = now - 86400;
    o.not_after = now + 30 * 86400;
    o.ca = true;
    o.key_type = TP_KEY_RSA;
    assert_true(tp_cert_make(&ca, &o));
    memset(&o, 0, sizeof(o));
    o.cn = "localhost";
    o.issuer = &ca;
    o.serial = 0x2a01;
    o.not_before = now - 86400;
    o.not_after = now + 10 * 86400;
    o.server_auth = true;
    o.ocsp_urls[0] = url;
    o.key_type = TP_KEY_RSA;
    assert_true(tp_cert_make(&leaf, &o));
    write_pem("npm-ca.pem", ca.cert, NULL, ca_pem, sizeof(ca_pem));
    write_pem("npm-chain.pem", leaf.cert, ca.cert, chain, sizeof(chain));
    snprintf(ca_key, sizeof(ca_key), "%s/npm-ca.key", dir);
    assert_true(tp_write_key(ca_key, ca.key));

    snprintf(script, sizeof(script), "%s/tests/support/npm_ocsp_server.js", SRVOCSP_SOURCE_DIR);
    snprintf(env, sizeof(env), "NODE_PATH=%s", mods);
    snprintf(port_s, sizeof(port_s), "%d", port);
    snprintf(log, sizeof(log), "%s/npm-ocsp.log", dir);
    pid = spawn_peer(log, "listening on", 15000, env, argv);
    if (pid == 0)
        fail_msg("the npm ocsp server did not start (log %s)", log);

    /* The GET is never answered: the first attempt ends at its timeout. */
    eng = srvocsp_engine_new(NULL);
    t0 = tr_now_ms();
    h = open_with(eng, chain, NULL, 2000);
    first = tr_now_ms() - t0;
    assert_non_null(h);
    assert_int_equal(srvocsp_engine_settle(eng, 10000), SRVOCSP_OK);
    assert_null(srvocsp_get1_response(h));
    assert_int_equal(srvocsp_handle_last_failure(h, why, sizeof(why)), SRVOCSP_E_TIMEOUT);
    /* The next attempt is a POST: a staple arrives. */
    t0 = tr_now_ms();
    assert_int_equal(srvocsp_handle_refresh_now(h), SRVOCSP_OK);
    r = wait_served(h, 10000);
    assert_non_null(r);
    assert_int_equal(srvocsp_response_status(r), SRVOCSP_STATUS_GOOD);
    assert_int_equal(stats_of(eng).fallbacks_get_to_post, 1);
    assert_int_equal(stats_of(eng).get_unanswered, 1);
    assert_true(remembered(key, &f));
    assert_string_equal(f.method, "POST");
    printf("npm ocsp server: first attempt timed out after %.0f ms (GET never answered); "
           "the next one, as POST, served good %.0f ms after it was asked for\n",
           first, tr_now_ms() - t0);

    /* srvocsp fetch makes the second attempt itself. */
    {
        char cmd[2600], out[4096];
        size_t n;
        FILE *pf;
        int rc;

        snprintf(cmd, sizeof(cmd), "'%s' fetch --cert '%s' --timeout 2000 2>&1", SRVOCSP_CLI,
                 chain);
        pf = popen(cmd, "r");
        assert_non_null(pf);
        n = fread(out, 1, sizeof(out) - 1, pf);
        out[n] = '\0';
        rc = pclose(pf);
        printf("srvocsp fetch against it: %s", out);
        assert_int_equal(WEXITSTATUS(rc), 0);
        assert_non_null(strstr(out, "never answered the GET; asking again with POST"));
        assert_non_null(strstr(out, "good thisUpdate="));
    }

    srvocsp_response_free(r);
    srvocsp_close(h);
    srvocsp_engine_free(eng);
    stop_peers(NULL);
    tp_cert_free(&leaf);
    tp_cert_free(&ca);
}

static int setup(void **s)
{
    (void)s;
    dir = tr_tmpdir("methods");
    return 0;
}

static int teardown(void **s)
{
    (void)s;
    srvocsp_cleanup();
    tr_rmrf(dir);
    free(dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_front_refuses_get),
        cmocka_unit_test(test_front_refusals),
        cmocka_unit_test(test_front_refuses_post_501),
        cmocka_unit_test(test_get_hangs_then_post_refused),
        cmocka_unit_test_teardown(test_watch_logs_each_fallback, stop_peers),
        cmocka_unit_test_teardown(test_cfssl_ocspserve, stop_peers),
        cmocka_unit_test_teardown(test_npm_ocsp_server, stop_peers),
    };

    int rc;

    setvbuf(stdout, NULL, _IOLBF, 0);
    rc = cmocka_run_group_tests(tests, setup, teardown);
    if (rc == 0 && skipped > 0) {
        printf("SKIP: %d case(s) could not run their responder (see above)\n", skipped);
        return 77;
    }
    return rc;
}
