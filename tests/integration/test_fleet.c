/*
 * The fleet on a real redis-server: engines in separate processes sharing
 * one Redis and one responder (requests counted at the responder), a lease
 * holder SIGKILLed, Redis SIGSTOPped while gets run, Redis restarted
 * empty, AUTH with a password and with an ACL user, poisoned entries of
 * every kind, Redis down at start, processes sharing a directory, and a
 * Sentinel failover (master SIGKILLed, replica promoted).
 *
 * Children are this program run again ("child" mode) with the test PKI
 * written as PEM files; they take commands on stdin and answer on stdout.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "evil.h"
#include "peers.h"
#include "redisd.h"
#include "srvocsp.h"
#include "srvocsp/openssl.h"
#include "testpki.h"
#include "tlspair.h"

#define NCERTS 3
#if defined(__SANITIZE_THREAD__)
#define EXPECTED_THREADS 3
#else
#define EXPECTED_THREADS 2
#endif
/* The engine's verification threads (src/engine/pool.c), started in a
 * process once it verifies answers in bulk: one per core, at most 4. */
static int pool_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    return n < 1 ? 1 : n > 4 ? 4 : (int)n;
}

static tp_pki pki;
static evil *ev;
static char *pemdir;
static char self_exe[4096];

static const tp_cert *cert_of(int i)
{
    const tp_cert *all[NCERTS] = {&pki.good, &pki.good_rsa, &pki.muststaple};

    return all[i];
}

static void cert_path(int i, char *buf, size_t len)
{
    snprintf(buf, len, "%s/leaf%d.pem", pemdir, i);
}

/* ---------------------------------------------------------------------
 * Child: opens the certificates, then obeys "get i", "refresh i",
 * "getloop i n", "reason i", "quit".
 * ------------------------------------------------------------------- */

static const char *status_of(srvocsp_handle *h, int64_t *tu)
{
    srvocsp_response *r = srvocsp_get1_response(h);
    const char *s;

    *tu = 0;
    if (r == NULL)
        return "none";
    *tu = srvocsp_response_this_update(r);
    s = srvocsp_response_status(r) == SRVOCSP_STATUS_REVOKED ? "revoked" : "good";
    srvocsp_response_free(r);
    return s;
}

static int child_main(int argc, char **argv)
{
    /* child <store_url|-> <responder_url> <dir|-> <flags> <url_timeout_ms> */
    srvocsp_handle *h[NCERTS];
    srvocsp_params p;
    char line[256], path[1200], issuer[1200];
    int i, served = 0, k;
    int64_t tu;

    if (argc < 7)
        return 2;
    setvbuf(stdout, NULL, _IOLBF, 0);
    srvocsp_params_init(&p);
    p.store_url = strcmp(argv[2], "-") ? argv[2] : NULL;
    p.responder_url = argv[3];
    p.directory = strcmp(argv[4], "-") ? argv[4] : NULL;
    p.flags = (unsigned)atoi(argv[5]);
    p.url_timeout_ms = (uint32_t)atoi(argv[6]);
    snprintf(issuer, sizeof(issuer), "%s/ca.pem", pemdir);
    /* Started together: open only when the parent says go, when every
     * process of the group is up. */
    if (argc > 8 && strcmp(argv[8], "together") == 0 &&
        (fgets(line, sizeof(line), stdin) == NULL || strncmp(line, "go", 2) != 0))
        return 3;
    for (i = 0; i < NCERTS; i++) {
        cert_path(i, path, sizeof(path));
        h[i] = srvocsp_open_pem(path, issuer, &p);
        if (h[i] == NULL) {
            printf("open-failed %s\n", srvocsp_last_error_text());
            return 1;
        }
    }
    /* Up to 30 s for every certificate to be served. */
    for (k = 0; k < 3000; k++) {
        for (i = 0, served = 0; i < NCERTS; i++)
            served += strcmp(status_of(h[i], &tu), "none") != 0;
        if (served == NCERTS)
            break;
        tr_sleep_ms(10);
    }
    printf("served %d\n", served);
    while (fgets(line, sizeof(line), stdin) != NULL) {
        long n = 0;

        if (sscanf(line, "get %d", &i) == 1 && i >= 0 && i < NCERTS) {
            const char *s = status_of(h[i], &tu);

            printf("%s %lld\n", s, (long long)tu);
        } else if (sscanf(line, "refresh %d", &i) == 1 && i >= 0 && i < NCERTS) {
            srvocsp_handle_refresh_now(h[i]);
            printf("ok\n");
        } else if (sscanf(line, "getloop %d %ld", &i, &n) == 2 && i >= 0 && i < NCERTS) {
            long ok = 0, j;

            for (j = 0; j < n; j++) {
                srvocsp_response *r = srvocsp_get1_response(h[i]);

                ok += r != NULL;
                srvocsp_response_free(r);
            }
            printf("served %ld\n", ok);
        } else if (sscanf(line, "reason %d", &i) == 1 && i >= 0 && i < NCERTS) {
            char why[600];
            srvocsp_error err = srvocsp_handle_last_failure(h[i], why, sizeof(why));

            printf("%s %s\n", srvocsp_error_name(err), why);
        } else if (strncmp(line, "threads", 7) == 0) {
            DIR *d = opendir("/proc/self/task");
            struct dirent *de;
            int tasks = 0;

            while (d != NULL && (de = readdir(d)) != NULL)
                tasks += de->d_name[0] != '.';
            if (d != NULL)
                closedir(d);
            printf("%d\n", tasks);
        } else if (strncmp(line, "quit", 4) == 0) {
            break;
        }
    }
    for (i = 0; i < NCERTS; i++)
        srvocsp_close(h[i]);
    srvocsp_cleanup();
    return 0;
}

/* ---------------------------------------------------------------------
 * Parent side
 * ------------------------------------------------------------------- */

typedef struct kid {
    pid_t pid;
    FILE *in;  /* commands */
    FILE *out; /* answers */
} kid;

static void kid_start_as(kid *k, const char *store_url, const char *responder_url,
                         const char *dir, unsigned flags, int timeout_ms, bool together)
{
    int to[2], from[2];
    char fl[16], tm[16];

    assert_int_equal(pipe(to), 0);
    assert_int_equal(pipe(from), 0);
    snprintf(fl, sizeof(fl), "%u", flags);
    snprintf(tm, sizeof(tm), "%d", timeout_ms);
    k->pid = fork();
    assert_true(k->pid >= 0);
    if (k->pid == 0) {
        dup2(to[0], 0);
        dup2(from[1], 1);
        close(to[0]);
        close(to[1]);
        close(from[0]);
        close(from[1]);
        execl(self_exe, self_exe, "child", store_url ? store_url : "-", responder_url,
              dir ? dir : "-", fl, tm, pemdir, together ? "together" : "alone", (char *)NULL);
        _exit(127);
    }
    close(to[0]);
    close(from[1]);
    k->in = fdopen(to[1], "w");
    k->out = fdopen(from[0], "r");
    setvbuf(k->in, NULL, _IOLBF, 0);
}

static void kid_start(kid *k, const char *store_url, const char *responder_url, const char *dir,
                      unsigned flags, int timeout_ms)
{
    kid_start_as(k, store_url, responder_url, dir, flags, timeout_ms, false);
}

/* Sends a command and returns the first line of the answer (static). */
static const char *kid_ask(kid *k, const char *fmt, ...)
{
    static char line[1024];
    va_list ap;

    if (fmt != NULL) {
        va_start(ap, fmt);
        vfprintf(k->in, fmt, ap);
        va_end(ap);
        fflush(k->in);
    }
    if (fgets(line, sizeof(line), k->out) == NULL)
        return "";
    line[strcspn(line, "\n")] = '\0';
    return line;
}

static int kid_served(kid *k)
{
    int n = -1;
    const char *l = kid_ask(k, NULL);

    if (sscanf(l, "served %d", &n) != 1)
        fail_msg("child said \"%s\"", l);
    return n;
}

static void kid_stop(kid *k)
{
    int status;

    if (k->pid <= 0)
        return;
    fprintf(k->in, "quit\n");
    fclose(k->in);
    fclose(k->out);
    waitpid(k->pid, &status, 0);
    k->pid = 0;
}

static void kid_kill(kid *k)
{
    if (k->pid <= 0) /* never kill(0, ...): the test's own process group */
        return;
    kill(k->pid, SIGKILL);
    waitpid(k->pid, NULL, 0);
    fclose(k->in);
    fclose(k->out);
    k->pid = 0;
}

static void responder_url(int slot, char *buf, size_t len)
{
    snprintf(buf, len, "http://127.0.0.1:%d/k%d/", evil_port(ev), slot);
}

/* |n| processes that open their handles at the same moment, against a
 * responder that takes 300 ms, so their first fetches overlap: sharing one
 * request then takes the lease, not luck.  Returns the requests the
 * responder saw until every process served every certificate. */
static long start_together(kid *k, int n, const char *store_url, const char *dir)
{
    char rurl[200];
    long before = evil_requests(ev);
    int i;

    responder_url(0, rurl, sizeof(rurl));
    evil_set_slot(ev, 0, EVIL_GOOD_SLOW);
    for (i = 0; i < n; i++)
        kid_start_as(&k[i], store_url, rurl, dir, SRVOCSP_OPEN_ASYNC, 5000, true);
    for (i = 0; i < n; i++) {
        fputs("go\n", k[i].in);
        fflush(k[i].in);
    }
    for (i = 0; i < n; i++)
        assert_int_equal(kid_served(&k[i]), NCERTS);
    evil_set_slot(ev, 0, EVIL_GOOD);
    return evil_requests(ev) - before;
}

static void need_redis(void)
{
    if (!tr_redis_available()) {
        fprintf(stderr, "SKIP: redis-server is not installed (scripts/deps.sh --test)\n");
        exit(77);
    }
}

static long long redis_keys(tr_redis *rd, const char *pattern)
{
    const char *argv[3] = {"EVAL", "return #redis.call('KEYS', ARGV[1])", NULL};
    const char *a5[4];
    size_t l5[4];

    (void)argv;
    a5[0] = "EVAL";
    a5[1] = "return #redis.call('KEYS', ARGV[1])";
    a5[2] = "0";
    a5[3] = pattern;
    for (int i = 0; i < 4; i++)
        l5[i] = strlen(a5[i]);
    return tr_redis_cmd(rd, NULL, 0, 4, a5, l5);
}

static int count_der(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;

    if (d == NULL)
        return 0;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);

        n += l > 4 && de->d_name[0] != '.' && strcmp(de->d_name + l - 4, ".der") == 0;
    }
    closedir(d);
    return n;
}

/* ---------------------------------------------------------------------
 * Tests
 * ------------------------------------------------------------------- */

/* P processes started together, same Redis, same responder: one request
 * per certificate, every process serves every certificate. */
static void one_fetch_for_all(const char *url, tr_redis *rd)
{
    kid k[4];
    char rurl[200];
    long before;
    int i;

    responder_url(0, rurl, sizeof(rurl));
    assert_int_equal(start_together(k, 4, url, NULL), NCERTS);
    assert_int_equal(redis_keys(rd, "srvocsp:{*}:r"), NCERTS);
    /* Redis is driven by the engine's one thread: no thread of its own
     * (main + engine; ThreadSanitizer adds one of its own; a process that
     * fetched several at once has the verification threads too). */
    for (i = 0; i < 4; i++) {
        int t = atoi(kid_ask(&k[i], "threads\n"));

        if (t != EXPECTED_THREADS && t != EXPECTED_THREADS + pool_threads())
            fail_msg("process %d runs %d threads", i, t);
    }

    /* A machine joining with the fleet's store warm and the responder
     * failing serves at once, without asking it. */
    evil_set_slot(ev, 0, EVIL_HTTP500);
    before = evil_requests(ev);
    {
        kid late;
        char *dir = tr_tmpdir("fleet-local");
        int tries;

        /* ... and keeps its own copy in its directory. */
        kid_start(&late, url, rurl, dir, 0, 2000);
        assert_int_equal(kid_served(&late), NCERTS);
        for (tries = 0; tries < 500 && count_der(dir) < NCERTS; tries++)
            tr_sleep_ms(10);
        assert_int_equal(count_der(dir), NCERTS);
        kid_stop(&late);
        tr_rmrf(dir);
        free(dir);
    }
    assert_int_equal(evil_requests(ev) - before, 0);
    evil_set_slot(ev, 0, EVIL_GOOD);

    /* A revocation fetched by one reaches every other at once, with one
     * request. */
    tr_sleep_ms(1100); /* a later thisUpdate than the good ones */
    evil_set_slot(ev, 0, EVIL_REVOKED);
    before = evil_requests(ev);
    assert_string_equal(kid_ask(&k[0], "refresh 0\n"), "ok");
    for (i = 0; i < 4; i++) {
        int tries;

        for (tries = 0; tries < 500; tries++) {
            if (strncmp(kid_ask(&k[i], "get 0\n"), "revoked", 7) == 0)
                break;
            tr_sleep_ms(10);
        }
        if (tries == 500)
            fail_msg("process %d never saw the revocation", i);
    }
    assert_int_equal(evil_requests(ev) - before, 1);
    evil_set_slot(ev, 0, EVIL_GOOD);
    for (i = 0; i < 4; i++)
        kid_stop(&k[i]);
}

static void test_processes_share_one_fetch_tcp(void **s)
{
    tr_redis rd;
    tr_redis_opts o = {.tcp = true};

    need_redis();
    assert_true(tr_redis_start(&rd, &o));
    one_fetch_for_all(rd.url, &rd);
    tr_redis_stop(&rd);
}

static void test_unix_socket_acl_user(void **s)
{
    tr_redis rd;
    tr_redis_opts o = {.unix_socket = true, .password = "pw-default", .acl_user = "edge",
                       .acl_password = "pw-edge"};
    char url[1200], rurl[200];
    srvocsp_params p;

    need_redis();
    assert_true(tr_redis_start(&rd, &o));
    snprintf(url, sizeof(url), "unix://edge:pw-edge@%s", rd.sock);
    one_fetch_for_all(url, &rd);

    /* A refused password is an error at open that names it. */
    responder_url(0, rurl, sizeof(rurl));
    srvocsp_params_init(&p);
    p.responder_url = rurl;
    snprintf(url, sizeof(url), "unix://edge:not-it@%s", rd.sock);
    p.store_url = url;
    {
        STACK_OF(X509) *chain = sk_X509_new_null();

        sk_X509_push(chain, pki.ca.cert);
        assert_null(srvocsp_open(pki.good.cert, chain, &p));
        assert_int_equal(srvocsp_last_error(), SRVOCSP_E_STORE);
        assert_non_null(strstr(srvocsp_last_error_text(), "AUTH refused for user edge"));
        p.store_url = "redis//127.0.0.1:6379";
        assert_null(srvocsp_open(pki.good.cert, chain, &p));
        assert_int_equal(srvocsp_last_error(), SRVOCSP_E_INVALID_ARG);
        assert_non_null(strstr(srvocsp_last_error_text(), "unknown scheme"));
        sk_X509_free(chain);
    }
    tr_redis_stop(&rd);
}

/* The fleet through Sentinel: a master, a replica and three Sentinels.
 * The master is SIGKILLed as every process asks for every certificate;
 * every process keeps serving, the Sentinels promote the replica, that
 * round costs at most two requests per certificate, a process joining
 * while the responder fails is served from the promoted replica, and the
 * next round is again one request per certificate, announced to every
 * process. */
static void test_sentinel_failover(void **s)
{
    tr_redis m, rep, sen[3];
    tr_redis_opts om = {.tcp = true}, orep = {.tcp = true}, osen = {.tcp = true};
    kid k[3], late;
    char url[1200], rurl[200];
    long before;
    long long round_at;
    int i, c, tries;
    double t0;

    need_redis();
    responder_url(0, rurl, sizeof(rurl));
    assert_true(tr_redis_start(&m, &om));
    orep.replica_of = m.port;
    assert_true(tr_redis_start(&rep, &orep));
    osen.sentinel_of = m.port;
    osen.master_name = "ocsp-fleet";
    for (i = 0; i < 3; i++)
        assert_true(tr_redis_start(&sen[i], &osen));
    for (i = 0; i < 3; i++)
        assert_true(tr_redis_sentinel_ready(&sen[i], "ocsp-fleet", 1, 2, 30000));
    snprintf(url, sizeof(url),
             "redis-sentinel://127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d#ocsp-fleet",
             sen[0].port, sen[1].port, sen[2].port);

    assert_int_equal(start_together(k, 3, url, NULL), NCERTS);
    assert_int_equal(redis_keys(&m, "srvocsp:{*}:r"), NCERTS);
    for (tries = 0; tries < 500 && redis_keys(&rep, "srvocsp:{*}:r") < NCERTS; tries++)
        tr_sleep_ms(10);
    assert_int_equal(redis_keys(&rep, "srvocsp:{*}:r"), NCERTS);

    /* The master dies in the middle of a round: every process asks for
     * every certificate while there is no master.  Handshakes are
     * unaffected meanwhile. */
    tr_sleep_ms(1100); /* the round's responses are newer than the first */
    /* A responder that takes 300 ms: the processes' fetches would overlap,
     * so one request per certificate is the lease's doing, not the order
     * in which they read their commands. */
    evil_set_slot(ev, 0, EVIL_GOOD_SLOW);
    tr_redis_kill(&m);
    t0 = tr_now_ms();
    round_at = (long long)time(NULL);
    before = evil_requests(ev);
    for (i = 0; i < 3; i++)
        for (c = 0; c < NCERTS; c++)
            fprintf(k[i].in, "refresh %d\n", c);
    for (i = 0; i < 3; i++) {
        fflush(k[i].in);
        for (c = 0; c < NCERTS; c++)
            assert_string_equal(kid_ask(&k[i], NULL), "ok");
    }
    for (tries = 0; tries < 600 && tr_redis_sentinel_master_port(&sen[0], "ocsp-fleet") != rep.port;
         tries++) {
        for (i = 0; i < 3; i++)
            for (c = 0; c < NCERTS; c++)
                assert_string_equal(kid_ask(&k[i], "getloop %d 1000\n", c), "served 1000");
        tr_sleep_ms(50);
    }
    assert_int_equal(tr_redis_sentinel_master_port(&sen[0], "ocsp-fleet"), rep.port);
    assert_string_equal(tr_redis_role(&rep), "master");
    print_message("  master SIGKILLed: the Sentinels named the replica after %.1f s\n",
                  (tr_now_ms() - t0) / 1000.0);
    /* The round ends with every process serving its newer responses; a
     * lease taken on the old master may be lost (two requests), but no
     * process fetches on its own while the master is away (three). */
    for (i = 0; i < 3; i++)
        for (c = 0; c < NCERTS; c++) {
            for (tries = 0; tries < 3000; tries++) {
                const char *l = kid_ask(&k[i], "get %d\n", c);

                if (strncmp(l, "good ", 5) == 0 && atoll(l + 5) >= round_at)
                    break;
                tr_sleep_ms(10);
            }
            if (tries == 3000)
                fail_msg("process %d never served the failover round's response %d", i, c);
        }
    print_message("  round with the master killed: %ld requests for %d certificates, "
                  "all served after %.1f s\n", evil_requests(ev) - before, NCERTS,
                  (tr_now_ms() - t0) / 1000.0);
    assert_true(evil_requests(ev) - before >= NCERTS);
    assert_true(evil_requests(ev) - before <= 2 * NCERTS);
    evil_set_slot(ev, 0, EVIL_GOOD);

    /* A process joining while the responder fails is served from the
     * promoted replica, asking the responder nothing it could not get. */
    evil_set_slot(ev, 0, EVIL_HTTP500);
    kid_start(&late, url, rurl, NULL, 0, 2000);
    assert_int_equal(kid_served(&late), NCERTS);
    evil_set_slot(ev, 0, EVIL_GOOD);

    /* The next round: every process asks for every certificate at once;
     * one request per certificate, and every process (the newcomer too)
     * adopts what was fetched, through announcements on the new master. */
    tr_sleep_ms(1100); /* a later thisUpdate than the last round's */
    evil_set_slot(ev, 0, EVIL_GOOD_SLOW);
    before = evil_requests(ev);
    round_at = (long long)time(NULL);
    for (c = 0; c < NCERTS; c++) {
        char want[64];

        for (i = 0; i < 3; i++)
            fprintf(k[i].in, "refresh %d\n", c);
        for (i = 0; i < 3; i++) {
            fflush(k[i].in);
            assert_string_equal(kid_ask(&k[i], NULL), "ok");
        }
        for (tries = 0; tries < 500; tries++) {
            snprintf(want, sizeof(want), "%s", kid_ask(&k[0], "get %d\n", c));
            if (strncmp(want, "good ", 5) == 0 && atoll(want + 5) >= round_at)
                break;
            tr_sleep_ms(10);
        }
        if (tries == 500)
            fail_msg("process 0 never served the new response %d", c);
        for (i = 1; i < 4; i++) {
            kid *w = i < 3 ? &k[i] : &late;

            /* An announcement missed is made up for when the lease
             * runs out (7 s here): the process looks at the store. */
            for (tries = 0; tries < 1500; tries++) {
                if (strcmp(kid_ask(w, "get %d\n", c), want) == 0)
                    break;
                tr_sleep_ms(10);
            }
            if (tries == 1500)
                fail_msg("process %d never adopted \"%s\" for certificate %d", i, want, c);
        }
    }
    print_message("  round after the failover: %ld requests for %d certificates\n",
                  evil_requests(ev) - before, NCERTS);
    assert_int_equal(evil_requests(ev) - before, NCERTS);
    assert_int_equal(redis_keys(&rep, "srvocsp:{*}:r"), NCERTS);
    evil_set_slot(ev, 0, EVIL_GOOD);

    kid_stop(&late);
    for (i = 0; i < 3; i++)
        kid_stop(&k[i]);
    for (i = 0; i < 3; i++)
        tr_redis_stop(&sen[i]);
    tr_redis_stop(&rep);
    tr_redis_stop(&m);
}

/* The process holding a lease dies mid-fetch: the others wait for the
 * lease to run out, then one of them fetches. */
static void test_lease_holder_killed(void **s)
{
    tr_redis rd;
    tr_redis_opts o = {.tcp = true};
    char hang[200], good[200];
    kid a, b;
    int tries;

    need_redis();
    assert_true(tr_redis_start(&rd, &o));
    responder_url(1, hang, sizeof(hang));
    responder_url(0, good, sizeof(good));
    evil_set_slot(ev, 1, EVIL_HANG);
    evil_set_slot(ev, 0, EVIL_GOOD);
    /* a: every fetch hangs (lease 3 s + 2 s); it holds all three leases. */
    kid_start(&a, rd.url, hang, NULL, SRVOCSP_OPEN_ASYNC, 3000);
    for (tries = 0; tries < 500 && redis_keys(&rd, "srvocsp:{*}:l") < NCERTS; tries++)
        tr_sleep_ms(10);
    assert_int_equal(redis_keys(&rd, "srvocsp:{*}:l"), NCERTS);
    kid_kill(&a);
    /* b starts while the dead holder's leases still run: it serves once
     * they have run out (well within its 30 s). */
    kid_start(&b, rd.url, good, NULL, SRVOCSP_OPEN_ASYNC, 3000);
    assert_int_equal(kid_served(&b), NCERTS);
    assert_int_equal(redis_keys(&rd, "srvocsp:{*}:r"), NCERTS);
    assert_int_equal(redis_keys(&rd, "srvocsp:{*}:l"), 0); /* given back */
    kid_stop(&b);
    tr_redis_stop(&rd);
}

/* In this process: Redis hung while gets and TLS handshakes run, then
 * killed and restarted empty: serving never stops, a refresh still reaches the responder, and
 * the store is filled again when Redis returns. */
typedef struct counts {
    pthread_mutex_t mu;
    int updated, failed;
    char reasons[4096];
    atomic_int freed;            /* the handle's last callback has returned */
} counts;

static void on_free(void *arg)
{
    counts *c = arg;

    atomic_store(&c->freed, 1);
}

/* Closes |h| and waits until its callbacks are over: |c| lives on the
 * test's stack. */
static void close_and_wait(srvocsp_handle *h, counts *c)
{
    int tries;

    srvocsp_close(h);
    for (tries = 0; tries < 1000 && !atomic_load(&c->freed); tries++)
        tr_sleep_ms(10);
    assert_true(atomic_load(&c->freed));
}

static void on_event(srvocsp_handle *h, const srvocsp_event *e, void *arg)
{
    counts *c = arg;

    pthread_mutex_lock(&c->mu);
    if (e->type == SRVOCSP_EVENT_UPDATED || e->type == SRVOCSP_EVENT_REVOKED)
        c->updated++;
    if (e->type == SRVOCSP_EVENT_FAILED) {
        c->failed++;
        strncat(c->reasons, e->reason, sizeof(c->reasons) - strlen(c->reasons) - 2);
        strcat(c->reasons, "\n");
    }
    pthread_mutex_unlock(&c->mu);
}

static int updated_count(counts *c)
{
    int n;

    pthread_mutex_lock(&c->mu);
    n = c->updated;
    pthread_mutex_unlock(&c->mu);
    return n;
}

static srvocsp_handle *open_here(const char *store_url, int slot, counts *c)
{
    srvocsp_params p;
    char rurl[200];
    STACK_OF(X509) *chain = sk_X509_new_null();
    srvocsp_handle *h;

    sk_X509_push(chain, pki.ca.cert);
    responder_url(slot, rurl, sizeof(rurl));
    srvocsp_params_init(&p);
    p.store_url = store_url;
    p.responder_url = rurl;
    p.url_timeout_ms = 3000;
    p.update_cb = on_event;
    p.update_arg = c;
    p.update_arg_free = on_free;
    h = srvocsp_open(pki.good.cert, chain, &p);
    sk_X509_free(chain);
    return h;
}

static void test_redis_hung_then_restarted_empty(void **s)
{
    tr_redis rd;
    tr_redis_opts o = {.tcp = true};
    counts c;
    srvocsp_handle *h;
    srvocsp_response *r;
    long i, ok = 0, before;
    int tries, n0;

    need_redis();
    memset(&c, 0, sizeof(c));
    pthread_mutex_init(&c.mu, NULL);
    evil_set_slot(ev, 0, EVIL_GOOD);
    assert_true(tr_redis_start(&rd, &o));
    h = open_here(rd.url, 0, &c);
    assert_non_null(h);
    r = srvocsp_get1_response(h);
    assert_non_null(r);
    srvocsp_response_free(r);
    for (tries = 0; tries < 300 && redis_keys(&rd, "srvocsp:{*}:r") < 1; tries++)
        tr_sleep_ms(10);
    assert_int_equal(redis_keys(&rd, "srvocsp:{*}:r"), 1);

    /* Hung: gets do not notice; a refresh goes to the responder after one
     * bounded wait on Redis. */
    tr_redis_pause(&rd);
    for (i = 0; i < 200000; i++) {
        r = srvocsp_get1_response(h);
        ok += r != NULL;
        srvocsp_response_free(r);
    }
    assert_int_equal(ok, 200000);
    {
        /* Handshakes staple as before. */
        SSL_CTX *server = tls_server_ctx(&pki.good, &pki.ca);
        SSL_CTX *client = tls_client_ctx(&pki.root, true);

        assert_int_equal(srvocsp_ssl_ctx_attach(server, h), 1);
        for (i = 0; i < 200; i++) {
            tls_result t = tls_handshake(server, client, NULL, true);

            assert_true(t.ok);
            assert_int_equal(t.staple_serial, TP_SERIAL_GOOD);
        }
        SSL_CTX_free(server);
        SSL_CTX_free(client);
    }
    tr_sleep_ms(1100);
    n0 = updated_count(&c);
    before = evil_requests(ev);
    srvocsp_handle_refresh_now(h);
    for (tries = 0; tries < 1000 && updated_count(&c) == n0; tries++)
        tr_sleep_ms(10);
    assert_int_equal(updated_count(&c), n0 + 1);
    assert_int_equal(evil_requests(ev) - before, 1);

    /* Killed and restarted empty: filled again by the engine on its own. */
    tr_redis_resume(&rd);
    assert_true(tr_redis_restart(&rd));
    assert_int_equal(redis_keys(&rd, "srvocsp:{*}:r"), 0);
    for (tries = 0; tries < 3000 && redis_keys(&rd, "srvocsp:{*}:r") < 1; tries++)
        tr_sleep_ms(10);
    assert_int_equal(redis_keys(&rd, "srvocsp:{*}:r"), 1);
    r = srvocsp_get1_response(h);
    assert_non_null(r);
    srvocsp_response_free(r);
    close_and_wait(h, &c);
    tr_redis_stop(&rd);
    pthread_mutex_destroy(&c.mu);
}

static void test_redis_down_at_start(void **s)
{
    counts c;
    char url[100];
    srvocsp_handle *h;
    srvocsp_response *r;

    memset(&c, 0, sizeof(c));
    pthread_mutex_init(&c.mu, NULL);
    evil_set_slot(ev, 0, EVIL_GOOD);
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", tr_free_port()); /* nothing listens */
    h = open_here(url, 0, &c);
    assert_non_null(h);
    r = srvocsp_get1_response(h);
    assert_non_null(r);
    srvocsp_response_free(r);
    close_and_wait(h, &c);
    pthread_mutex_destroy(&c.mu);
}

/* Poisoned values announced on the channel: each is ignored with its
 * reason, the response served stays, and the next good fetch overwrites
 * the value. */
/* Puts |der| where the fleet reads from: into the certificate's Redis
 * hash with an announcement without the bytes, or (|in_message|) into the
 * announcement itself, as honest writers send it, the hash untouched. */
static void poison(tr_redis *rd, const char *name, const unsigned char *der, size_t len,
                   const char *tu, bool in_message)
{
    char key[200], *msg = malloc(len + 200);
    const char *hset[8] = {"HSET", key, "d", (const char *)der, "t", tu, "s", "g"};
    size_t hl[8];
    const char *pub[3] = {"PUBLISH", "srvocsp:updates", msg};
    size_t pl[3];
    int i;

    assert_non_null(msg);
    snprintf(key, sizeof(key), "srvocsp:{%s}:r", name);
    if (in_message) {
        int n = snprintf(msg, 200, "%s intruder-with-the-bytes-00000000 ", name); /* 32-byte id */

        memcpy(msg + n, der, len);
        pl[2] = (size_t)n + len;
    } else {
        snprintf(msg, 200, "%s intruder-without-the-bytes-00000", name);
        pl[2] = strlen(msg);
        for (i = 0; i < 8; i++)
            hl[i] = i == 3 ? len : strlen(hset[i]);
        assert_true(tr_redis_cmd(rd, NULL, 0, 8, hset, hl) >= 0);
    }
    pl[0] = strlen(pub[0]);
    pl[1] = strlen(pub[1]);
    assert_true(tr_redis_cmd(rd, NULL, 0, 3, pub, pl) >= 0);
    free(msg);
}

static bool wait_reason(counts *c, const char *what)
{
    int tries;
    bool found = false;

    for (tries = 0; tries < 500 && !found; tries++) {
        pthread_mutex_lock(&c->mu);
        found = strstr(c->reasons, what) != NULL;
        pthread_mutex_unlock(&c->mu);
        if (!found)
            tr_sleep_ms(10);
    }
    return found;
}

static void test_poisoned_entries(void **s)
{
    tr_redis rd;
    tr_redis_opts o = {.tcp = true};
    counts c;
    srvocsp_handle *h;
    srvocsp_response *r;
    int64_t tu, now = (int64_t)time(NULL);
    char name[65], tus[32], why[600];
    tp_resp_opts ro;
    unsigned char *der;
    size_t len;
    struct {
        const char *what;
        int kind;
    } cases[] = {{"E_PARSE", 0},   {"E_NO_MATCH", 1}, {"E_ROLLBACK", 2},
                 {"E_EXPIRED", 3}, {"E_SIGNER", 4},   {"E_SIGNATURE", 5}};
    size_t k;

    need_redis();
    memset(&c, 0, sizeof(c));
    pthread_mutex_init(&c.mu, NULL);
    evil_set_slot(ev, 0, EVIL_GOOD);
    assert_true(tr_redis_start(&rd, &o));
    h = open_here(rd.url, 0, &c);
    assert_non_null(h);
    r = srvocsp_get1_response(h);
    assert_non_null(r);
    tu = srvocsp_response_this_update(r);
    srvocsp_response_free(r);
    {
        /* The store name, as docs/fleet.md says: hex SHA-256 of the
         * issuer key's SHA-256 and the serial's bytes. */
        unsigned char kh[32], md[32];
        unsigned int kl = 0, ml = 0, i;
        const ASN1_INTEGER *serial = X509_get0_serialNumber(pki.good.cert);
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();

        X509_pubkey_digest(pki.ca.cert, EVP_sha256(), kh, &kl);
        EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
        EVP_DigestUpdate(ctx, kh, kl);
        EVP_DigestUpdate(ctx, ASN1_STRING_get0_data(serial), (size_t)ASN1_STRING_length(serial));
        EVP_DigestFinal_ex(ctx, md, &ml);
        EVP_MD_CTX_free(ctx);
        for (i = 0; i < 32; i++)
            snprintf(name + 2 * i, 3, "%02x", md[i]);
    }
    {
        /* The open returns once the response is served; its save to the
         * fleet follows.  A save that finds a value it cannot verify
         * replaces it, so poisoning during that save would be healed
         * before any reader saw it: wait until our response is stored. */
        const char *argv[3] = {"HGET", NULL, "t"};
        char key[200], got[64];
        size_t l[3];
        int tries;

        snprintf(key, sizeof(key), "srvocsp:{%s}:r", name);
        argv[1] = key;
        l[0] = 4;
        l[1] = strlen(key);
        l[2] = 1;
        for (tries = 0; tries < 500; tries++) {
            got[0] = '\0';
            tr_redis_cmd(&rd, got, sizeof(got), 3, argv, l);
            if (strtoll(got, NULL, 10) == tu)
                break;
            tr_sleep_ms(10);
        }
        assert_int_equal(strtoll(got, NULL, 10), tu);
    }
    for (k = 0; k < 2 * sizeof(cases) / sizeof(cases[0]); k++) {
        bool in_message = k >= sizeof(cases) / sizeof(cases[0]);
        size_t kc = k % (sizeof(cases) / sizeof(cases[0]));

        der = NULL;
        len = 0;
        snprintf(tus, sizeof(tus), "%lld", (long long)now + 5);
        switch (cases[kc].kind) {
        case 0:
            der = (unsigned char *)strdup("<html>not OCSP</html>");
            len = strlen((char *)der);
            break;
        case 1: /* another certificate's response */
            tp_resp_opts_init(&ro, &pki.good_rsa, &pki.ca, now);
            der = tp_response(&ro, &len);
            break;
        case 2: /* an older one of ours */
            tp_resp_opts_init(&ro, &pki.good, &pki.ca, now - 3600);
            ro.this_update = tu - 3600;
            ro.next_update = now + 3600;
            der = tp_response(&ro, &len);
            snprintf(tus, sizeof(tus), "%lld", (long long)tu - 3600);
            break;
        case 3: /* expired */
            tp_resp_opts_init(&ro, &pki.good, &pki.ca, now - 7200);
            ro.this_update = now - 7200;
            ro.next_update = now - 3600;
            der = tp_response(&ro, &len);
            break;
        case 4: /* signed by a key that is not the issuer's */
            tp_resp_opts_init(&ro, &pki.good, &pki.ca, now);
            ro.this_update = tu + 1;
            ro.signer = &pki.other_ca;
            der = tp_response(&ro, &len);
            break;
        case 5: /* ours, newer, with its signature altered */
            tp_resp_opts_init(&ro, &pki.good, &pki.ca, now);
            ro.this_update = tu + 1;
            der = tp_response(&ro, &len);
            der[len - 1] ^= 0x01;
            break;
        }
        assert_non_null(der);
        pthread_mutex_lock(&c.mu); /* each case proves its own reason */
        c.reasons[0] = '\0';
        pthread_mutex_unlock(&c.mu);
        poison(&rd, name, der, len, tus, in_message);
        free(der);
        if (!wait_reason(&c, cases[kc].what))
            fail_msg("no %s reported (%s); reasons so far:\n%s", cases[kc].what,
                     in_message ? "in the announcement" : "in the hash", c.reasons);
        assert_int_equal(srvocsp_handle_last_failure(h, why, sizeof(why)) != SRVOCSP_OK, 1);
        assert_non_null(strstr(why, "shared store response ignored"));
        /* Still serving what it had. */
        r = srvocsp_get1_response(h);
        assert_non_null(r);
        assert_int_equal(srvocsp_response_this_update(r), tu);
        srvocsp_response_free(r);
    }
    /* The next good fetch overwrites what is there. */
    tr_sleep_ms(1100);
    srvocsp_handle_refresh_now(h);
    {
        int tries;
        char got[64];
        const char *argv[3] = {"HGET", NULL, "t"};
        char key[200];
        size_t l[3];

        snprintf(key, sizeof(key), "srvocsp:{%s}:r", name);
        argv[1] = key;
        l[0] = 4;
        l[1] = strlen(key);
        l[2] = 1;
        for (tries = 0; tries < 500; tries++) {
            r = srvocsp_get1_response(h);
            if (r != NULL && srvocsp_response_this_update(r) > tu) {
                srvocsp_response_free(r);
                break;
            }
            srvocsp_response_free(r);
            tr_sleep_ms(10);
        }
        r = srvocsp_get1_response(h);
        assert_non_null(r);
        assert_true(srvocsp_response_this_update(r) > tu);
        tr_redis_cmd(&rd, got, sizeof(got), 3, argv, l);
        assert_int_equal(strtoll(got, NULL, 10), srvocsp_response_this_update(r));
        srvocsp_response_free(r);
    }
    close_and_wait(h, &c);
    tr_redis_stop(&rd);
    pthread_mutex_destroy(&c.mu);
}

/* Processes of one machine sharing a directory (no Redis) started
 * together: the directory's lease makes it one request per certificate. */
static void test_directory_lease_one_fetch(void **s)
{
    char *dir = tr_tmpdir("fleet-dir");
    kid k[4];
    int i;

    assert_int_equal(start_together(k, 4, NULL, dir), NCERTS);
    for (i = 0; i < 4; i++)
        kid_stop(&k[i]);
    tr_rmrf(dir);
    free(dir);
}

/* `srvocsp watch --store URL`: the .ocsp file is written and the fleet's
 * store gets the response; a bad URL is reported with what is wrong. */
static pid_t run_watch(const char *dir, const char *store, const char *log)
{
    pid_t pid = fork();

    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);

        dup2(fd, 1);
        dup2(fd, 2);
        execl(SRVOCSP_CLI, SRVOCSP_CLI, "watch", "--dir", dir, "--store", store, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static bool file_has(const char *path, const char *what)
{
    size_t len;
    unsigned char *b = tp_read_file(path, &len);
    bool found;
    char *t;

    if (b == NULL)
        return false;
    t = calloc(1, len + 1);
    memcpy(t, b, len);
    found = strstr(t, what) != NULL;
    free(t);
    free(b);
    return found;
}

static void test_watch_store(void **s)
{
    tr_redis rd;
    tr_redis_opts o = {.tcp = true};
    char *dir = tr_tmpdir("fleet-watch"), url[200], path[1200], ocsp[1300], log[1300];
    const char *urls[1] = {url};
    tp_cert leaf;
    tp_cert_opts co;
    tp_resp_opts ro;
    unsigned char *der;
    size_t len;
    int64_t now = (int64_t)time(NULL);
    pid_t pid;
    int tries;

    need_redis();
    assert_true(tr_redis_start(&rd, &o));
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/fast/", evil_port(ev));
    memset(&co, 0, sizeof(co));
    co.cn = "watched.test";
    co.serial = 0x7777;
    co.issuer = &pki.ca;
    co.not_before = now - 86400;
    co.not_after = now + 86400 * 30;
    co.server_auth = true;
    co.ocsp_urls[0] = urls[0];
    co.same_key_as = &pki.good;
    assert_true(tp_cert_make(&leaf, &co));
    tp_resp_opts_init(&ro, &leaf, &pki.ca, now);
    der = tp_response(&ro, &len);
    evil_add_presigned(ev, 0x7777, der, len);
    free(der);
    snprintf(path, sizeof(path), "%s/site.pem", dir);
    snprintf(ocsp, sizeof(ocsp), "%s/site.pem.ocsp", dir);
    snprintf(log, sizeof(log), "%s.log", dir);
    assert_int_equal(tp_write_cert(path, leaf.cert, pki.ca.cert), 1);

    pid = run_watch(dir, rd.url, log);
    for (tries = 0; tries < 1000 && (access(ocsp, F_OK) != 0 ||
                                     redis_keys(&rd, "srvocsp:{*}:r") < 1);
         tries++)
        tr_sleep_ms(10);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    assert_int_equal(access(ocsp, F_OK), 0);
    assert_int_equal(redis_keys(&rd, "srvocsp:{*}:r"), 1);

    pid = run_watch(dir, "memcached://127.0.0.1:11211", log);
    for (tries = 0; tries < 500 && !file_has(log, "unknown scheme"); tries++)
        tr_sleep_ms(10);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    assert_true(file_has(log, "unknown scheme \"memcached\""));

    unlink(log);
    tp_cert_free(&leaf);
    tr_rmrf(dir);
    free(dir);
    tr_redis_stop(&rd);
}

static int setup(void **s)
{
    int64_t t = (int64_t)time(NULL);
    char path[1200];
    int i;

    if (!tp_pki_make(&pki, "http://127.0.0.1:1/", "http://127.0.0.1:1/", t))
        return -1;
    ev = evil_start(&pki, tr_wall_now, NULL, 86400);
    if (ev == NULL)
        return -1;
    pemdir = tr_tmpdir("fleet-pki");
    snprintf(path, sizeof(path), "%s/ca.pem", pemdir);
    tp_write_cert(path, pki.ca.cert, NULL);
    for (i = 0; i < NCERTS; i++) {
        cert_path(i, path, sizeof(path));
        tp_write_cert(path, cert_of(i)->cert, NULL);
    }
    return 0;
}

static int teardown(void **s)
{
    evil_stop(ev);
    tp_pki_free(&pki);
    tr_rmrf(pemdir);
    free(pemdir);
    srvocsp_cleanup();
    return 0;
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_processes_share_one_fetch_tcp),
        cmocka_unit_test(test_unix_socket_acl_user),
        cmocka_unit_test(test_sentinel_failover),
        cmocka_unit_test(test_lease_holder_killed),
        cmocka_unit_test(test_redis_hung_then_restarted_empty),
        cmocka_unit_test(test_redis_down_at_start),
        cmocka_unit_test(test_poisoned_entries),
        cmocka_unit_test(test_directory_lease_one_fetch),
        cmocka_unit_test(test_watch_store),
    };
    ssize_t n;

    if (argc >= 8 && strcmp(argv[1], "child") == 0) {
        pemdir = argv[7];
        return child_main(argc, argv);
    }
    n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
    if (n <= 0)
        return 1;
    self_exe[n] = '\0';
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, setup, teardown);
}
