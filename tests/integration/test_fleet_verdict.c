/*
 * Two processes share a real redis-server and agree on what to serve:
 * after one of them learns from its responder of a lagging replica's
 * revocation (an older thisUpdate, a newer producedAt), of a revocation
 * in a tie, or of a newer good response that cannot be served, the other
 * serves the same thing within one announcement.  Before the one verdict
 * the store's own rule refused the lagging replica's revocation and the
 * fleet kept serving good.
 *
 * The second process never reaches a responder (every request it makes
 * gets HTTP 500): what it serves can only come from the fleet.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fake.h"
#include "peers.h"
#include "redisd.h"
#include "srvocsp.h"
#include "testpki.h"

static tp_pki pki;
static tr_redis rd;

/* What the first process's responder answers: swapped by the test. */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned char *g_der;
static size_t g_len;

static void answer(void *arg, const char *url, fake_reply *out)
{
    (void)arg;
    (void)url;
    pthread_mutex_lock(&g_mu);
    out->status = 200;
    out->content_type = "application/ocsp-response";
    out->body = malloc(g_len);
    memcpy(out->body, g_der, g_len);
    out->len = g_len;
    pthread_mutex_unlock(&g_mu);
}

static void refuse(void *arg, const char *url, fake_reply *out)
{
    (void)arg;
    (void)url;
    out->status = 500;
}

static void set_answer(unsigned char *der, size_t len)
{
    pthread_mutex_lock(&g_mu);
    free(g_der);
    g_der = der;
    g_len = len;
    pthread_mutex_unlock(&g_mu);
}

/* The second process's persistence directory (g_dir), when set; a flag
 * of this test's own beside the SRVOCSP_OPEN_* ones. */
#define SECOND_DIR 0x80000000u
static const char *g_dir;

static srvocsp_handle *open_on(srvocsp_engine **e, fake_transport *t, manual_clock *mc,
                               fake_handler h, const char *prefix, unsigned flags,
                               const srvocsp_clock *clock)
{
    srvocsp_engine_config cfg;
    srvocsp_params p;
    STACK_OF(X509) *chain = sk_X509_new_null();
    srvocsp_handle *hd;

    fake_init(t, mc, h, NULL);
    srvocsp_engine_config_init(&cfg);
    cfg.transport = &t->transport; /* the system clock (both processes share it) unless: */
    cfg.clock = clock;
    *e = srvocsp_engine_new(&cfg);
    srvocsp_params_init(&p);
    p.engine = *e;
    p.flags = flags;
    p.url_timeout_ms = 3000;
    p.store_url = rd.url;
    p.store_prefix = prefix;
    if (flags & SECOND_DIR) {
        p.directory = g_dir;
        p.flags &= ~SECOND_DIR;
    }
    sk_X509_push(chain, pki.ca.cert);
    hd = srvocsp_open(pki.good.cert, chain, &p);
    sk_X509_free(chain);
    return hd;
}

/* "<status> <thisUpdate>" of what |h| serves, or "none". */
static void describe(srvocsp_handle *h, char *buf, size_t len)
{
    srvocsp_response *r = srvocsp_get1_response(h);

    if (r == NULL) {
        snprintf(buf, len, "none");
        return;
    }
    snprintf(buf, len, "%d %lld", (int)srvocsp_response_status(r),
             (long long)srvocsp_response_this_update(r));
    srvocsp_response_free(r);
}

/* A host's wall clock |g_behind| seconds behind, and its monotonic clock,
 * so the engine sees the step when the clock is set right. */
static _Atomic int64_t g_behind;

static int64_t behind_now(void *ctx)
{
    (void)ctx;
    return (int64_t)time(NULL) - atomic_load(&g_behind);
}

static int64_t behind_monotonic_ms(void *ctx)
{
    struct timespec ts;

    (void)ctx;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The second process: serves from the fleet only; answers each byte on
 * |cmd| with a line describing what it serves ('R' first sets its clock
 * right).  Its clock is |behind| seconds behind, if not 0. */
static void second(int cmd, int ans, const char *prefix, int64_t behind)
{
    srvocsp_clock clock = {behind_now, NULL, behind_monotonic_ms};
    srvocsp_engine *e = NULL;
    fake_transport t;
    manual_clock mc;
    srvocsp_handle *h;
    char c, line[64];

    atomic_store(&g_behind, behind);
    manual_clock_init(&mc, (int64_t)time(NULL));
    h = open_on(&e, &t, &mc, refuse, prefix, SRVOCSP_OPEN_ASYNC | SECOND_DIR,
                behind ? &clock : NULL);
    if (h == NULL)
        _exit(3);
    while (read(cmd, &c, 1) == 1) {
        if (c == 'R')
            atomic_store(&g_behind, 0);
        describe(h, line, sizeof(line));
        strcat(line, "\n");
        if (write(ans, line, strlen(line)) < 0)
            break;
    }
    srvocsp_close(h);
    srvocsp_engine_free(e);
    fake_destroy(&t);
    _exit(0);
}

typedef struct peer {
    pid_t pid;
    int cmd, ans;
} peer;

static void tell(peer *p, char what, char *buf, size_t len)
{
    size_t n = 0;
    char c;

    assert_int_equal(write(p->cmd, &what, 1), 1);
    while (n + 1 < len && read(p->ans, &c, 1) == 1 && c != '\n')
        buf[n++] = c;
    buf[n] = '\0';
}

static void ask(peer *p, char *buf, size_t len)
{
    tell(p, '?', buf, len);
}

/* Waits (up to |ms|) until the second process serves |want|. */
static bool peer_serves(peer *p, const char *want, int ms, char *last, size_t len)
{
    double end = tr_now_ms() + ms;

    do {
        ask(p, last, len);
        if (strcmp(last, want) == 0)
            return true;
        tr_sleep_ms(50);
    } while (tr_now_ms() < end);
    return false;
}

static void start_second(peer *p, const char *prefix, int64_t behind)
{
    int to[2], from[2];

    assert_int_equal(pipe(to), 0);
    assert_int_equal(pipe(from), 0);
    p->pid = fork();
    assert_true(p->pid >= 0);
    if (p->pid == 0) {
        close(to[1]);
        close(from[0]);
        second(to[0], from[1], prefix, behind);
    }
    close(to[0]);
    close(from[1]);
    p->cmd = to[1];
    p->ans = from[0];
}

static void stop_second(peer *p)
{
    int status = 0;

    close(p->cmd);
    close(p->ans);
    assert_int_equal(waitpid(p->pid, &status, 0), p->pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void run_case(const char *prefix, unsigned char *news, size_t news_len, int want_status,
                     int64_t want_tu, bool announced)
{
    int64_t n = (int64_t)time(NULL);
    srvocsp_engine *e = NULL;
    fake_transport t;
    manual_clock mc;
    srvocsp_handle *h;
    size_t len;
    unsigned char *held = tp_response_at(&pki.good, &pki.ca,
                         V_OCSP_CERTSTATUS_GOOD, n - 100, n - 100, n + 3600, &len);
    peer p;
    char want[64], got[64], mine[64];

    assert_non_null(held);
    set_answer(held, len);
    manual_clock_init(&mc, n);
    /* The first process fetches and shares the held response. */
    h = open_on(&e, &t, &mc, answer, prefix, 0, NULL);
    assert_non_null(h);
    snprintf(want, sizeof(want), "%d %lld", SRVOCSP_STATUS_GOOD, (long long)(n - 100));
    describe(h, mine, sizeof(mine));
    assert_string_equal(mine, want);

    start_second(&p, prefix, 0);
    /* The second process starts from the fleet's copy. */
    if (!peer_serves(&p, want, 10000, got, sizeof(got)))
        fail_msg("%s: the second process serves '%s', not the shared '%s'", prefix, got, want);

    /* The first process's responder now says something new. */
    set_answer(news, news_len);
    srvocsp_handle_refresh_now(h);
    assert_int_equal(srvocsp_engine_settle(e, 10000), SRVOCSP_OK);
    snprintf(want, sizeof(want), "%d %lld", want_status, (long long)want_tu);
    describe(h, mine, sizeof(mine));
    if (strcmp(mine, want) != 0)
        fail_msg("%s: the first process serves '%s', expected '%s'", prefix, mine, want);
    if (announced) {
        /* One announcement: the second process follows within seconds. */
        if (!peer_serves(&p, want, 5000, got, sizeof(got)))
            fail_msg("%s: the first process serves '%s', the second '%s'", prefix, mine, got);
    } else {
        /* Nothing to announce: the second process keeps serving the same. */
        tr_sleep_ms(1500);
        ask(&p, got, sizeof(got));
        if (strcmp(got, want) != 0)
            fail_msg("%s: the first process serves '%s', the second '%s'", prefix, mine, got);
    }
    stop_second(&p);
    srvocsp_close(h);
    srvocsp_engine_free(e);
    fake_destroy(&t);
}

static void need_redis(void)
{
    if (!tr_redis_available())
        skip();
}

static void test_lagging_replica_revocation(void **s)
{
    int64_t n = (int64_t)time(NULL);
    size_t len;
    /* One second older than the held good, produced since. */
    unsigned char *der = tp_response_at(&pki.good, &pki.ca,
                         V_OCSP_CERTSTATUS_REVOKED, n - 101, n - 5, n + 3600, &len);

    (void)s;
    need_redis();
    run_case("lag:", der, len, SRVOCSP_STATUS_REVOKED, n - 101, true);
}

static void test_revocation_tie(void **s)
{
    int64_t n = (int64_t)time(NULL);
    size_t len;
    unsigned char *der = tp_response_at(&pki.good, &pki.ca,
                         V_OCSP_CERTSTATUS_REVOKED, n - 100, n - 50, n + 3600, &len);

    (void)s;
    need_redis();
    run_case("tie:", der, len, SRVOCSP_STATUS_REVOKED, n - 100, true);
}

static void test_newer_but_unservable(void **s)
{
    int64_t n = (int64_t)time(NULL);
    size_t len;
    /* Newer, good, but 300 s of validity: below MinValidity, never served. */
    unsigned char *der = tp_response_at(&pki.good, &pki.ca,
                         V_OCSP_CERTSTATUS_GOOD, n - 50, n - 50, n + 300, &len);

    (void)s;
    need_redis();
    run_case("short:", der, len, SRVOCSP_STATUS_GOOD, n - 100, false);
}

/* A process whose wall clock is 400 s behind is told of a revocation
 * signed now: on its clock the response is from the future (past the
 * 300 s skew) and is refused.  It must not remove it from the store (a
 * process that starts now gets it from there), and once its clock is set
 * right it serves it within seconds, not at its next refresh.  Before,
 * it deleted the fleet's copy and kept stapling good (found by the
 * simulator, seed 1 over 3 days). */
static void test_clock_behind(void **s)
{
    const char *prefix = "behind:";
    int64_t n = (int64_t)time(NULL);
    srvocsp_engine *e = NULL, *e3 = NULL;
    fake_transport t, t3;
    manual_clock mc, mc3;
    srvocsp_handle *h, *h3;
    size_t len, rlen;
    unsigned char *held = tp_response_at(&pki.good, &pki.ca, V_OCSP_CERTSTATUS_GOOD, n - 1000,
                                         n - 1000, n + 3600, &len);
    unsigned char *rev = tp_response_at(&pki.good, &pki.ca, V_OCSP_CERTSTATUS_REVOKED, n, n,
                                        n + 3600, &rlen);
    char good_line[64], rev_line[64], got[64];
    peer p;

    (void)s;
    need_redis();
    assert_non_null(held);
    assert_non_null(rev);
    snprintf(good_line, sizeof(good_line), "%d %lld", SRVOCSP_STATUS_GOOD, (long long)(n - 1000));
    snprintf(rev_line, sizeof(rev_line), "%d %lld", SRVOCSP_STATUS_REVOKED, (long long)n);
    set_answer(held, len);
    manual_clock_init(&mc, n);
    h = open_on(&e, &t, &mc, answer, prefix, 0, NULL);
    assert_non_null(h);
    start_second(&p, prefix, 400);
    if (!peer_serves(&p, good_line, 10000, got, sizeof(got)))
        fail_msg("the process with its clock behind serves '%s', not '%s'", got, good_line);

    set_answer(rev, rlen);
    srvocsp_handle_refresh_now(h);
    assert_int_equal(srvocsp_engine_settle(e, 10000), SRVOCSP_OK);
    describe(h, got, sizeof(got));
    assert_string_equal(got, rev_line);
    /* On its clock the revocation is 400 s ahead: refused, still good. */
    tr_sleep_ms(1500);
    ask(&p, got, sizeof(got));
    if (strcmp(got, good_line) != 0)
        fail_msg("the process with its clock behind serves '%s' (expected '%s' until its clock "
                 "is right)", got, good_line);
    /* ... and the fleet's copy is still there for everyone else. */
    manual_clock_init(&mc3, n);
    h3 = open_on(&e3, &t3, &mc3, refuse, prefix, SRVOCSP_OPEN_ASYNC, NULL);
    assert_non_null(h3);
    {
        double end = tr_now_ms() + 5000;

        do {
            describe(h3, got, sizeof(got));
            if (strcmp(got, rev_line) == 0)
                break;
            tr_sleep_ms(50);
        } while (tr_now_ms() < end);
        if (strcmp(got, rev_line) != 0)
            fail_msg("a process starting from the fleet serves '%s': the store lost '%s'", got,
                     rev_line);
    }
    /* The clock is set right: the revocation is taken within seconds. */
    tell(&p, 'R', got, sizeof(got));
    if (!peer_serves(&p, rev_line, 5000, got, sizeof(got)))
        fail_msg("5 s after its clock was set right the process still serves '%s', not '%s'",
                 got, rev_line);
    stop_second(&p);
    srvocsp_close(h3);
    srvocsp_engine_free(e3);
    fake_destroy(&t3);
    srvocsp_close(h);
    srvocsp_engine_free(e);
    fake_destroy(&t);
}

/* A process that starts while the responder is down serves what the
 * fleet holds, even a response past its own refresh point (it asks the
 * responder meanwhile).  Before, such a response was passed over for a
 * fetch, and the fetch failed: no staple while the fleet had one (found
 * by the simulator: restarts during a tryLater outage). */
static void test_start_during_outage(void **s)
{
    const char *prefix = "outage:";
    int64_t n = (int64_t)time(NULL);
    srvocsp_engine *e = NULL;
    fake_transport t;
    manual_clock mc;
    srvocsp_handle *h;
    size_t len;
    /* 3,000 s into a 4,000 s window: past its halfway refresh point,
     * still 1,000 s of validity (MinValidity 600). */
    unsigned char *held = tp_response_at(&pki.good, &pki.ca, V_OCSP_CERTSTATUS_GOOD, n - 3000,
                                         n - 3000, n + 1000, &len);
    char want[64], got[64];
    peer p;

    (void)s;
    need_redis();
    assert_non_null(held);
    snprintf(want, sizeof(want), "%d %lld", SRVOCSP_STATUS_GOOD, (long long)(n - 3000));
    set_answer(held, len);
    manual_clock_init(&mc, n);
    h = open_on(&e, &t, &mc, answer, prefix, 0, NULL);
    assert_non_null(h);
    describe(h, got, sizeof(got));
    assert_string_equal(got, want);
    /* The second process's responder answers HTTP 500 only. */
    start_second(&p, prefix, 0);
    if (!peer_serves(&p, want, 5000, got, sizeof(got)))
        fail_msg("a process started during the outage serves '%s', not the fleet's '%s'", got,
                 want);
    stop_second(&p);
    srvocsp_close(h);
    srvocsp_engine_free(e);
    fake_destroy(&t);
}

/* A process restarted with its directory loads the good response it saved
 * there, while the fleet learned of a revocation in between: it looks at
 * the fleet's copy at once and serves revoked within seconds, not at its
 * next refresh (found by the simulator, seed 43 over 15 days). */
static void test_restart_with_stale_directory(void **s)
{
    const char *prefix = "stale:";
    int64_t n = (int64_t)time(NULL);
    srvocsp_engine *e = NULL;
    fake_transport t;
    manual_clock mc;
    srvocsp_handle *h;
    size_t len, rlen;
    unsigned char *held = tp_response_at(&pki.good, &pki.ca, V_OCSP_CERTSTATUS_GOOD, n - 100,
                                         n - 100, n + 7200, &len);
    unsigned char *rev = tp_response_at(&pki.good, &pki.ca, V_OCSP_CERTSTATUS_REVOKED, n - 50,
                                        n - 50, n + 7200, &rlen);
    char good_line[64], rev_line[64], got[64];
    char *dir = tr_tmpdir("fleet-dir");
    peer p;

    (void)s;
    need_redis();
    assert_non_null(held);
    assert_non_null(rev);
    snprintf(good_line, sizeof(good_line), "%d %lld", SRVOCSP_STATUS_GOOD, (long long)(n - 100));
    snprintf(rev_line, sizeof(rev_line), "%d %lld", SRVOCSP_STATUS_REVOKED, (long long)(n - 50));
    g_dir = dir;
    set_answer(held, len);
    manual_clock_init(&mc, n);
    h = open_on(&e, &t, &mc, answer, prefix, 0, NULL);
    assert_non_null(h);
    /* The second process takes the good one from the fleet and keeps it
     * in its directory; then it stops. */
    start_second(&p, prefix, 0);
    if (!peer_serves(&p, good_line, 5000, got, sizeof(got)))
        fail_msg("the second process serves '%s', not '%s'", got, good_line);
    tr_sleep_ms(200); /* its directory write */
    stop_second(&p);
    /* Meanwhile the fleet learns of the revocation. */
    set_answer(rev, rlen);
    srvocsp_handle_refresh_now(h);
    assert_int_equal(srvocsp_engine_settle(e, 10000), SRVOCSP_OK);
    describe(h, got, sizeof(got));
    assert_string_equal(got, rev_line);
    /* It starts again with its directory: good from the file, then revoked
     * from the fleet within seconds. */
    start_second(&p, prefix, 0);
    if (!peer_serves(&p, rev_line, 5000, got, sizeof(got)))
        fail_msg("restarted with its directory, the second process serves '%s', not the fleet's "
                 "'%s'", got, rev_line);
    stop_second(&p);
    g_dir = NULL;
    tr_rmrf(dir);
    free(dir);
    srvocsp_close(h);
    srvocsp_engine_free(e);
    fake_destroy(&t);
}

static int setup(void **s)
{
    tr_redis_opts o = {.tcp = true};

    (void)s;
    if (!tp_pki_make(&pki, "http://127.0.0.1:1/", "http://127.0.0.1:1/", (int64_t)time(NULL)))
        return -1;
    if (tr_redis_available() && !tr_redis_start(&rd, &o))
        return -1;
    return 0;
}

static int teardown(void **s)
{
    (void)s;
    if (tr_redis_available())
        tr_redis_stop(&rd);
    set_answer(NULL, 0);
    tp_pki_free(&pki);
    srvocsp_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lagging_replica_revocation),
        cmocka_unit_test(test_revocation_tie),
        cmocka_unit_test(test_newer_but_unservable),
        cmocka_unit_test(test_clock_behind),
        cmocka_unit_test(test_start_during_outage),
        cmocka_unit_test(test_restart_with_stale_directory),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, setup, teardown);
}
