/* The Redis store's URL (every form, every refusal) and its connections:
 * a resolver that hangs costs the engine the connect timeout only, and a
 * frozen Redis (SIGSTOP: connections stay open, nothing is said) ends the
 * subscription within the PING bound, which then comes back; Sentinel
 * discovery asks the Sentinels in turn and says what went wrong; a frozen
 * master under Sentinel is noticed, and announcements resume on the
 * promoted replica. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <openssl/evp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fake.h"
#include "peers.h"
#include "redisd.h"
#include "store/redis_url.h"
#include "store/store.h"
#include "testpki.h"

static tp_pki pki;
static int64_t T;
static char NAME[SRVOCSP__STORE_NAME_LEN + 1];

/* ---------------------------------------------------------------------
 * A resolver that hangs: names under hang.invalid are never answered
 * (until the test lets them go), every other call goes to the C library.
 * Defined here, it stands in for the C library's for the whole program.
 * ------------------------------------------------------------------- */

static pthread_mutex_t hang_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hang_cv = PTHREAD_COND_INITIALIZER;
static int hang_waiting, hang_calls;
static bool hang_release;

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    static int (*real)(const char *, const char *, const struct addrinfo *, struct addrinfo **);
    size_t n = node ? strlen(node) : 0;

    if (n > 12 && strcmp(node + n - 12, "hang.invalid") == 0 &&
        !(hints != NULL && (hints->ai_flags & AI_NUMERICHOST))) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 30; /* a dead DNS server's retries, and then some */
        pthread_mutex_lock(&hang_mu);
        hang_calls++;
        hang_waiting++;
        while (!hang_release && pthread_cond_timedwait(&hang_cv, &hang_mu, &ts) == 0)
            ;
        hang_waiting--;
        pthread_mutex_unlock(&hang_mu);
        return EAI_AGAIN;
    }
    if (real == NULL)
        *(void **)&real = dlsym(RTLD_NEXT, "getaddrinfo");
    return real(node, service, hints, res);
}

/* Lets every hung resolution end, and waits until they have. */
static void hang_finish(void)
{
    int i;

    pthread_mutex_lock(&hang_mu);
    hang_release = true;
    pthread_cond_broadcast(&hang_cv);
    pthread_mutex_unlock(&hang_mu);
    for (i = 0; i < 500; i++) {
        int left;

        pthread_mutex_lock(&hang_mu);
        left = hang_waiting;
        pthread_mutex_unlock(&hang_mu);
        if (left == 0)
            break;
        tr_sleep_ms(10);
    }
    tr_sleep_ms(50); /* the helper threads' last steps after the call */
}

static int setup(void **s)
{
    T = (int64_t)time(NULL);
    if (!tp_pki_make(&pki, "http://127.0.0.1:1/", "http://127.0.0.1:1/", T))
        return -1;
    return srvocsp__store_name(pki.good.cert, pki.ca.cert, NAME) ? 0 : -1;
}

static int teardown(void **s)
{
    hang_finish();
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

/* ---------------------------------------------------------------------
 * URLs
 * ------------------------------------------------------------------- */

static void good_url(const char *url, srvocsp__redis_url *u)
{
    char why[300];

    if (!srvocsp__redis_url_parse(url, u, why, sizeof(why)))
        fail_msg("%s refused: %s", url, why);
    if (srvocsp_store_url_check(url) != SRVOCSP_OK)
        fail_msg("%s refused by srvocsp_store_url_check: %s", url, srvocsp_last_error_text());
}

static void test_url_forms(void **s)
{
    srvocsp__redis_url u;

    good_url("redis://127.0.0.1:6380", &u);
    assert_int_equal(u.kind, SRVOCSP__REDIS_TCP);
    assert_false(u.unix_socket);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 0);
    assert_string_equal(u.password, "");
    assert_int_equal(u.connect_timeout_ms, 300);
    assert_int_equal(u.timeout_ms, 300);
    assert_int_equal(u.ping_interval_ms, 5000);

    good_url("redis://fleet:s%40cret@cache.example:7000/3", &u);
    assert_string_equal(u.user, "fleet");
    assert_string_equal(u.password, "s@cret");
    assert_string_equal(u.host, "cache.example");
    assert_int_equal(u.port, 7000);
    assert_int_equal(u.db, 3);

    /* An unescaped '@' in a password: the last one ends the user part. */
    good_url("redis://fleet:p@ss@cache.example:7000/3", &u);
    assert_string_equal(u.password, "p@ss");
    assert_string_equal(u.host, "cache.example");
    assert_int_equal(u.port, 7000);
    good_url("unix://app:p@ss@/tmp/r.sock", &u);
    assert_string_equal(u.password, "p@ss");
    assert_string_equal(u.path, "/tmp/r.sock");
    good_url("redis-sentinel://ocsp:p@ss@10.0.0.1,10.0.0.2#m", &u);
    assert_string_equal(u.password, "p@ss");
    assert_int_equal(u.n_sentinels, 2);
    assert_string_equal(u.sentinels[0].host, "10.0.0.1");

    good_url("redis://:pw@[::1]:6379/", &u);
    assert_string_equal(u.user, "");
    assert_string_equal(u.password, "pw");
    assert_string_equal(u.host, "::1");

    good_url("redis://localhost", &u);
    assert_int_equal(u.port, 6379);

    good_url("redis://edge@cache/1?connect_timeout=2s&timeout=150ms&ping_interval=1500", &u);
    assert_string_equal(u.user, "edge");
    assert_string_equal(u.password, "");
    assert_int_equal(u.db, 1);
    assert_int_equal(u.connect_timeout_ms, 2000);
    assert_int_equal(u.timeout_ms, 150);
    assert_int_equal(u.ping_interval_ms, 1500);

    good_url("unix:///run/redis/redis.sock?db=2", &u);
    assert_int_equal(u.kind, SRVOCSP__REDIS_UNIX);
    assert_true(u.unix_socket);
    assert_string_equal(u.path, "/run/redis/redis.sock");
    assert_int_equal(u.db, 2);

    good_url("unix://app:pw@/tmp/r.sock", &u);
    assert_string_equal(u.user, "app");
    assert_string_equal(u.password, "pw");
    assert_string_equal(u.path, "/tmp/r.sock");

    good_url("unix:///tmp/r.sock?user=app&password=p%26w&db=1&timeout=1s", &u);
    assert_string_equal(u.user, "app");
    assert_string_equal(u.password, "p&w");
    assert_int_equal(u.db, 1);
    assert_int_equal(u.timeout_ms, 1000);

    /* Sentinel, as Lettuce and Spring write it. */
    good_url("redis-sentinel://10.0.0.1,10.0.0.2:26380,[::1]:26381/2#mymaster", &u);
    assert_int_equal(u.kind, SRVOCSP__REDIS_SENTINEL);
    assert_int_equal(u.n_sentinels, 3);
    assert_string_equal(u.sentinels[0].host, "10.0.0.1");
    assert_int_equal(u.sentinels[0].port, 26379);
    assert_string_equal(u.sentinels[1].host, "10.0.0.2");
    assert_int_equal(u.sentinels[1].port, 26380);
    assert_string_equal(u.sentinels[2].host, "::1");
    assert_int_equal(u.sentinels[2].port, 26381);
    assert_int_equal(u.db, 2);
    assert_string_equal(u.master, "mymaster");
    assert_string_equal(u.password, "");

    assert_int_equal(u.failover_wait_ms, 15000);
    good_url("redis-sentinel://ocsp:s%3Acret@sentinel.example"
             "?sentinel_password=other&sentinel_user=mon&timeout=1s&failover_wait=0#fleet%20a",
             &u);
    assert_int_equal(u.failover_wait_ms, 0);
    assert_int_equal(u.n_sentinels, 1);
    assert_string_equal(u.sentinels[0].host, "sentinel.example");
    assert_string_equal(u.user, "ocsp");
    assert_string_equal(u.password, "s:cret");
    assert_string_equal(u.sentinel_user, "mon");
    assert_string_equal(u.sentinel_password, "other");
    assert_string_equal(u.master, "fleet a");
    assert_int_equal(u.timeout_ms, 1000);
}

static void bad_url(const char *url, const char *expect)
{
    srvocsp__redis_url u;
    srvocsp__store *st;
    char why[300];

    assert_false(srvocsp__redis_url_parse(url, &u, why, sizeof(why)));
    if (strstr(why, expect) == NULL)
        fail_msg("%s: reason \"%s\" does not name \"%s\"", url, why, expect);
    assert_int_equal(srvocsp_store_url_check(url), SRVOCSP_E_INVALID_ARG);
    if (strstr(srvocsp_last_error_text(), expect) == NULL)
        fail_msg("%s: check \"%s\" does not name \"%s\"", url, srvocsp_last_error_text(), expect);
    assert_null(strstr(srvocsp_last_error_text(), "hunter2"));
    st = srvocsp__store_redis_new(url, NULL);
    assert_null(st);
    assert_int_equal(srvocsp_last_error(), SRVOCSP_E_INVALID_ARG);
    if (strstr(srvocsp_last_error_text(), expect) == NULL)
        fail_msg("%s: error \"%s\" does not name \"%s\"", url, srvocsp_last_error_text(), expect);
    assert_null(strstr(srvocsp_last_error_text(), "hunter2")); /* never the password */
}

static void test_url_errors(void **s)
{
    bad_url("http://127.0.0.1:6379", "unknown scheme \"http\"");
    bad_url("memcached://x", "unknown scheme");
    bad_url("rediss://u:hunter2@127.0.0.1:6379", "no TLS");
    bad_url("rediss://127.0.0.1:6379", "unix://");
    bad_url("redis://:6379", "no host");
    bad_url("redis://", "no host");
    bad_url("redis://127.0.0.1:0", "port");
    bad_url("redis://127.0.0.1:99999", "port");
    bad_url("redis://127.0.0.1:63x9", "port");
    bad_url("redis://u:hunter2@127.0.0.1:6379/db7", "database");
    bad_url("redis://u:hunter2@127.0.0.1:6379/1/2", "database");
    /* An unescaped '/' in a password: the rest of it is no database, and
     * is not echoed as one. */
    bad_url("redis://u:12/hunter2@127.0.0.1", "database is not a number");
    bad_url("redis://:ab/hunter2@127.0.0.1:6379", "port");
    bad_url("redis-sentinel://u:1/hunter2@a,b#m", "");
    bad_url("unix://u:a/hunter2@/tmp/x.sock", "");
    bad_url("redis://u:hunter2%zz@127.0.0.1", "password");
    bad_url("redis://u:hunter2%00@127.0.0.1", "password");
    bad_url("redis://127.0.0.1?dbx=1", "unknown query item");
    bad_url("redis://127.0.0.1?timeout", "has no value");
    bad_url("redis://127.0.0.1?timeout=soon", "timeout is not a duration");
    bad_url("redis://127.0.0.1?timeout=0", "timeout is not a duration");
    bad_url("redis://127.0.0.1?connect_timeout=601s", "connect_timeout is not a duration");
    bad_url("redis://127.0.0.1?ping_interval=10ms", "ping_interval is not a duration");
    bad_url("redis://127.0.0.1?sentinel_password=hunter2", "redis-sentinel:// URLs only");
    bad_url("redis://127.0.0.1#mymaster", "master name is for redis-sentinel://");
    bad_url("redis://127.0.0.1?failover_wait=5s", "redis-sentinel:// URLs only");
    bad_url("redis-sentinel://h?failover_wait=5m#m", "failover_wait is not a duration");
    bad_url("unix://", "no socket path");
    bad_url("unix://host/tmp/x.sock", "absolute");
    bad_url("unix:///tmp/x.sock?dbx=1", "unknown query item");
    bad_url("unix:///tmp/x.sock?db=-1", "db is not a number");
    bad_url("", "empty");
    bad_url("redis://[::1", "IPv6");
    bad_url("redis-sentinel://10.0.0.1,10.0.0.2", "no master name");
    bad_url("redis-sentinel://10.0.0.1,10.0.0.2/#", "no master name");
    bad_url("redis-sentinel://10.0.0.1,:26379#m", "Sentinel 2: no host");
    bad_url("redis-sentinel://10.0.0.1:0#m", "Sentinel 1: port");
    bad_url("redis-sentinel://10.0.0.1,[::1#m", "Sentinel 2: bad [IPv6 address]");
    bad_url("redis-sentinel://a,b,c,d,e,f,g,h,i#m", "more than 8 Sentinels");
    bad_url("redis-sentinel://u:hunter2@a/x#m", "database");
    assert_null(srvocsp__store_redis_new("redis://127.0.0.1:1", "bad{prefix}"));
    assert_int_equal(srvocsp_last_error(), SRVOCSP_E_INVALID_ARG);
    assert_non_null(strstr(srvocsp_last_error_text(), "prefix"));
}

/* ---------------------------------------------------------------------
 * A resolver that hangs
 * ------------------------------------------------------------------- */

static void test_resolver_hangs(void **s)
{
    static const char url[] = "redis://redis.hang.invalid:6379?connect_timeout=200ms";
    manual_clock clk;
    fake_transport fake;
    fake_signer sg;
    srvocsp_engine *eng;
    srvocsp_params p;
    srvocsp_handle *h;
    srvocsp__store *st;
    srvocsp_response *r;
    char tok[SRVOCSP__LEASE_TOKEN_LEN + 1], why[300];
    int64_t left;
    double t0, took;
    int calls;

    /* The store alone: opening it tries to connect, and gives up on the
     * name at the connect timeout; so does the next try after the
     * backoff, with the reason. */
    t0 = tr_now_ms();
    st = srvocsp__store_redis_new(url, NULL);
    took = tr_now_ms() - t0;
    assert_non_null(st); /* unreachable is not an error */
    print_message("  open with a resolver that hangs 30 s: %.0f ms (connect_timeout 200 ms)\n",
                  took);
    assert_true(took < 3000);
    tr_sleep_ms(1100); /* the first backoff */
    t0 = tr_now_ms();
    assert_int_equal(st->ops->lease_acquire(st, NAME, 1000, tok, &left, why, sizeof(why)),
                     SRVOCSP__LEASE_ERROR);
    took = tr_now_ms() - t0;
    assert_true(took < 3000);
    if (strstr(why, "resolving redis.hang.invalid: no answer within the connect timeout") == NULL)
        fail_msg("reason: %s", why);
    st->ops->free(st);

    /* The engine: a handle opened with the store serves from the
     * responder at once, and a refresh is not held up either. */
    manual_clock_init(&clk, T);
    sg.pki = &pki;
    sg.leaf = &pki.good;
    sg.clock = &clk;
    sg.validity = 86400;
    fake_init(&fake, &clk, fake_sign_good, &sg);
    eng = fake_engine_new(&clk, &fake, 0, 1);
    srvocsp_params_init(&p);
    p.engine = eng;
    p.store_url = url;
    t0 = tr_now_ms();
    h = fake_open(pki.good.cert, pki.ca.cert, &p);
    took = tr_now_ms() - t0;
    assert_non_null(h);
    print_message("  open and first fetch through the engine: %.0f ms\n", took);
    assert_true(took < 3000);
    r = srvocsp_get1_response(h);
    assert_non_null(r);
    srvocsp_response_free(r);
    assert_int_equal(fake_requests(&fake), 1);
    tr_sleep_ms(1100);
    manual_clock_set(&clk, T + 60);
    t0 = tr_now_ms();
    srvocsp_handle_refresh_now(h);
    assert_int_equal(srvocsp_engine_settle(eng, 5000), SRVOCSP_OK);
    took = tr_now_ms() - t0;
    print_message("  refresh with the store's name unresolvable: %.0f ms\n", took);
    assert_true(took < 3000);
    assert_int_equal(fake_requests(&fake), 2);
    pthread_mutex_lock(&hang_mu);
    calls = hang_calls;
    pthread_mutex_unlock(&hang_mu);
    assert_true(calls >= 2); /* the name really was asked for, and hung */
    srvocsp_close(h);
    srvocsp_engine_free(eng);
    fake_destroy(&fake);
}

/* ---------------------------------------------------------------------
 * A frozen Redis
 * ------------------------------------------------------------------- */

/* Saves |der| over whatever is stored under |name| (the store compares and
 * sets on the bytes it was given: these tests only need an announcement). */
static srvocsp_error publish(srvocsp__store *st, const char *name, const unsigned char *der,
                             size_t len, int64_t tu, int64_t expires, bool *stored, char *why,
                             size_t whylen)
{
    unsigned char *cur = NULL, md[EVP_MAX_MD_SIZE];
    size_t cur_len = 0;
    uint64_t version = 0;
    unsigned int n = 0, i;
    char expect[41] = "";

    if (st->ops->load(st, name, 1 << 20, &cur, &cur_len, &version, why, whylen) == SRVOCSP_OK &&
        cur != NULL && EVP_Digest(cur, cur_len, md, &n, EVP_sha1(), NULL))
        for (i = 0; i < n; i++)
            snprintf(expect + 2 * i, 3, "%02x", md[i]);
    free(cur);
    return st->ops->save_if(st, name, der, len, tu, expires, false, expect[0] ? expect : NULL,
                            stored, why, whylen);
}

static void on_note(void *arg, const char *name, const unsigned char *der, size_t len)
{
    (*(int *)arg)++;
}

static void test_frozen_redis_noticed(void **s)
{
    tr_redis rd;
    tr_redis_opts o = {.tcp = true};
    srvocsp__store *st, *writer;
    char url[1200], why[300];
    int fd, on = 0, idle = 0, seen = 0, i;
    socklen_t ol = sizeof(on);
    double t0, took;
    const int interval = 1000;

    need_redis();
    assert_true(tr_redis_start(&rd, &o));
    snprintf(url, sizeof(url), "%s?ping_interval=%dms", rd.url, interval);
    st = srvocsp__store_redis_new(url, NULL);
    assert_non_null(st);
    fd = st->ops->notify_fd(st);
    assert_true(fd >= 0);
    /* Keepalive on the connection, for a peer that vanishes altogether. */
    assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, &ol), 0);
    assert_int_equal(on, 1);
    ol = sizeof(idle);
    assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, &ol), 0);
    assert_int_equal(idle, 10);

    /* Idle but alive: the PINGs are answered, the subscription stays. */
    for (i = 0; i < 30; i++) {
        st->ops->notify_drain(st, on_note, &seen);
        tr_sleep_ms(100);
    }
    assert_int_equal(st->ops->notify_fd(st), fd);

    /* Frozen: the connection stays open, nothing answers.  The engine
     * reads the store at least once a second; here every 100 ms. */
    tr_redis_pause(&rd);
    t0 = tr_now_ms();
    while (st->ops->notify_fd(st) >= 0 && tr_now_ms() - t0 < 30000) {
        st->ops->notify_drain(st, on_note, &seen);
        tr_sleep_ms(100);
    }
    took = tr_now_ms() - t0;
    print_message("  frozen Redis noticed after %.0f ms (ping_interval %d ms, bound %d ms)\n",
                  took, interval, 2 * interval + 2000);
    assert_true(st->ops->notify_fd(st) < 0);
    /* The bound with the engine's loop ticking once a second (a PING sent
     * and its silence seen each up to a tick late); driven every 100 ms
     * here, that leaves a loaded machine 1.8 s of slack. */
    assert_true(took <= 2 * interval + 2000);
    assert_int_equal(st->ops->lease_acquire(st, NAME, 1000, (char[SRVOCSP__LEASE_TOKEN_LEN + 1]){0},
                                            &(int64_t){0}, why, sizeof(why)),
                     SRVOCSP__LEASE_ERROR);
    if (strstr(why, "no answer to PING") == NULL)
        fail_msg("reason: %s", why);

    /* Thawed: the subscription comes back after the backoff and hears
     * another writer again. */
    tr_redis_resume(&rd);
    writer = srvocsp__store_redis_new(rd.url, "srvocsp:");
    assert_non_null(writer);
    for (i = 0; i < 100 && st->ops->notify_fd(st) < 0; i++)
        tr_sleep_ms(100);
    assert_true(st->ops->notify_fd(st) >= 0);
    {
        size_t len;
        tp_resp_opts ro;
        unsigned char *der;
        bool stored = false;

        tp_resp_opts_init(&ro, &pki.good, &pki.ca, T);
        der = tp_response(&ro, &len);
        assert_non_null(der);
        assert_int_equal(publish(writer, NAME, der, len, T, T + 3600, &stored, why, sizeof(why)),
                         SRVOCSP_OK);
        assert_true(stored);
        free(der);
    }
    seen = 0;
    for (i = 0; i < 100 && seen == 0; i++) {
        st->ops->notify_drain(st, on_note, &seen);
        tr_sleep_ms(20);
    }
    assert_int_equal(seen, 1);
    writer->ops->free(writer);
    st->ops->free(st);
    tr_redis_stop(&rd);
}

/* ---------------------------------------------------------------------
 * Sentinel discovery
 * ------------------------------------------------------------------- */

static void test_sentinel_discovery(void **s)
{
    tr_redis m, sen;
    tr_redis_opts om = {.tcp = true}, os = {.tcp = true};
    srvocsp__store *st;
    char url[1200], tok[SRVOCSP__LEASE_TOKEN_LEN + 1], why[300];
    int64_t left;
    int dead = tr_free_port();

    need_redis();
    assert_true(tr_redis_start(&m, &om));
    os.sentinel_of = m.port;
    os.master_name = "edge";
    assert_true(tr_redis_start(&sen, &os));

    /* The Sentinels are asked in turn: the first one listed is down. */
    snprintf(url, sizeof(url), "redis-sentinel://127.0.0.1:%d,127.0.0.1:%d#edge", dead, sen.port);
    st = srvocsp__store_redis_new(url, NULL);
    assert_non_null(st);
    assert_int_equal(st->ops->lease_acquire(st, NAME, 1000, tok, &left, why, sizeof(why)),
                     SRVOCSP__LEASE_HELD);
    assert_true(st->ops->notify_fd(st) >= 0);
    st->ops->lease_release(st, NAME, tok);
    st->ops->free(st);

    /* A master the Sentinels do not know: the store opens (as with a
     * Redis that is down), every call says why it cannot work. */
    snprintf(url, sizeof(url), "redis-sentinel://127.0.0.1:%d#nope", sen.port);
    st = srvocsp__store_redis_new(url, NULL);
    assert_non_null(st);
    assert_int_equal(st->ops->lease_acquire(st, NAME, 1000, tok, &left, why, sizeof(why)),
                     SRVOCSP__LEASE_ERROR);
    if (strstr(why, "does not know a master named \"nope\"") == NULL)
        fail_msg("reason: %s", why);
    st->ops->free(st);

    /* The data node's password is the URL's; a wrong one is refused at
     * open like any AUTH, naming the Sentinel URL without the password. */
    snprintf(url, sizeof(url), "redis-sentinel://:hunter2@127.0.0.1:%d#edge", sen.port);
    st = srvocsp__store_redis_new(url, NULL);
    assert_null(st);
    assert_int_equal(srvocsp_last_error(), SRVOCSP_E_STORE);
    if (strstr(srvocsp_last_error_text(), "AUTH refused") == NULL ||
        strstr(srvocsp_last_error_text(), "hunter2") != NULL)
        fail_msg("error: %s", srvocsp_last_error_text());
    tr_redis_stop(&sen);
    tr_redis_stop(&m);
}

/* A frozen master under Sentinel: the store notices within the PING
 * bound, the Sentinels promote the replica, and announcements resume on
 * it without anyone touching the store. */
static void test_frozen_master_sentinel(void **s)
{
    tr_redis m, rep, sen[3];
    tr_redis_opts om = {.tcp = true}, orep = {.tcp = true}, os = {.tcp = true};
    srvocsp__store *st, *writer;
    char url[1200], url2[1300], why[300];
    double t0, noticed, resumed;
    int i, seen = 0;
    int64_t k;

    need_redis();
    assert_true(tr_redis_start(&m, &om));
    orep.replica_of = m.port;
    assert_true(tr_redis_start(&rep, &orep));
    os.sentinel_of = m.port;
    os.master_name = "frozen";
    for (i = 0; i < 3; i++)
        assert_true(tr_redis_start(&sen[i], &os));
    for (i = 0; i < 3; i++)
        assert_true(tr_redis_sentinel_ready(&sen[i], "frozen", 1, 2, 30000));
    snprintf(url, sizeof(url),
             "redis-sentinel://127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d?ping_interval=1s#frozen",
             sen[0].port, sen[1].port, sen[2].port);
    snprintf(url2, sizeof(url2), "%s", url);
    memcpy(strstr(url2, "ping_interval=1s"), "ping_interval=2s", 16); /* its own link */
    st = srvocsp__store_redis_new(url, NULL);
    writer = srvocsp__store_redis_new(url2, NULL);
    assert_non_null(st);
    assert_non_null(writer);
    assert_true(st->ops->notify_fd(st) >= 0);

    tr_redis_pause(&m);
    t0 = tr_now_ms();
    while (st->ops->notify_fd(st) >= 0 && tr_now_ms() - t0 < 30000) {
        st->ops->notify_drain(st, on_note, &seen);
        tr_sleep_ms(100);
    }
    noticed = tr_now_ms() - t0;
    assert_true(noticed <= 2 * 1000 + 2000); /* the bound, as above */

    /* Until the replica is promoted and both links found it, saves fail
     * or go unheard; then one is heard. */
    for (k = 1; seen == 0 && tr_now_ms() - t0 < 60000; k++) {
        size_t len;
        tp_resp_opts ro;
        unsigned char *der;
        bool stored = false;

        tp_resp_opts_init(&ro, &pki.good, &pki.ca, T + k);
        ro.this_update = T + k;
        der = tp_response(&ro, &len);
        assert_non_null(der);
        (void)publish(writer, NAME, der, len, T + k, T + k + 3600, &stored, why, sizeof(why));
        writer->ops->notify_drain(writer, NULL, NULL); /* as its engine: the watch */
        free(der);
        for (i = 0; i < 5 && seen == 0; i++) {
            st->ops->notify_fd(st);
            st->ops->notify_drain(st, on_note, &seen);
            tr_sleep_ms(40);
        }
    }
    resumed = tr_now_ms() - t0;
    print_message("  master frozen: noticed after %.0f ms (bound 4000 ms), announcements heard "
                  "again after %.1f s\n",
                  noticed, resumed / 1000.0);
    assert_true(seen >= 1);
    assert_int_equal(tr_redis_sentinel_master_port(&sen[0], "frozen"), rep.port);

    writer->ops->free(writer);
    st->ops->free(st);
    tr_redis_resume(&m);
    for (i = 0; i < 3; i++)
        tr_redis_stop(&sen[i]);
    tr_redis_stop(&rep);
    tr_redis_stop(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_forms),
        cmocka_unit_test(test_url_errors),
        cmocka_unit_test(test_resolver_hangs),
        cmocka_unit_test(test_frozen_redis_noticed),
        cmocka_unit_test(test_sentinel_discovery),
        cmocka_unit_test(test_frozen_master_sentinel),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
