/* The Redis store under Sentinel, the two checks no outage would stand in
 * for: a +switch-master announced while the old master still answers
 * moves the subscription at once (nothing fails, and the PING is a
 * minute away, so only the announcement can move it), and a node a
 * Sentinel names that is not a master (ROLE) is never used, while the
 * real master is once the Sentinel names it. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "peers.h"
#include "redisd.h"
#include "store/store.h"

/* A store name: any 64 hex digits (the store does not look inside). */
static const char NAME[] = "5e1f0c0ffee5e1f0c0ffee5e1f0c0ffee5e1f0c0ffee5e1f0c0ffee5e1f0c0ff";
#define CHANNEL "srvocsp:updates"

static void need_redis(void)
{
    if (!tr_redis_available()) {
        fprintf(stderr, "SKIP: redis-server is not installed (scripts/deps.sh --test)\n");
        exit(77);
    }
}

/* ---------------------------------------------------------------------
 * +switch-master followed
 * ------------------------------------------------------------------- */

static void on_note(void *arg, const char *name, const unsigned char *der, size_t len)
{
    (void)name;
    (void)der;
    (void)len;
    (*(int *)arg)++;
}

static void test_switch_master_followed(void **s)
{
    tr_redis m, rep, sen;
    tr_redis_opts om = {.tcp = true}, orep = {.tcp = true}, os = {.tcp = true};
    srvocsp__store *st;
    char url[600], out[64];
    const char *fo[3] = {"SENTINEL", "FAILOVER", "sw"};
    double t0, named = -1, moved = -1, demoted = -1;
    int seen = 0, i;

    need_redis();
    assert_true(tr_redis_start(&m, &om));
    orep.replica_of = m.port;
    assert_true(tr_redis_start(&rep, &orep));
    os.sentinel_of = m.port;
    os.master_name = "sw";
    assert_true(tr_redis_start(&sen, &os));
    assert_true(tr_redis_sentinel_ready(&sen, "sw", 1, 0, 30000));

    /* A PING a minute apart: liveness cannot be what moves it. */
    snprintf(url, sizeof(url), "redis-sentinel://127.0.0.1:%d?ping_interval=60s#sw", sen.port);
    st = srvocsp__store_redis_new(url, NULL);
    assert_non_null(st);
    assert_true(st->ops->notify_fd(st) >= 0);
    for (i = 0; i < 3; i++) { /* as the engine's loop: the watch subscribes */
        st->ops->notify_drain(st, on_note, &seen);
        tr_sleep_ms(100);
    }
    assert_int_equal(tr_redis_numsub(&m, CHANNEL), 1);
    assert_int_equal(tr_redis_numsub(&rep, CHANNEL), 0);

    /* A failover the old master lives through, answering all along. */
    assert_true(tr_redis_cmd(&sen, out, sizeof(out), 3, fo, NULL) > 0);
    assert_string_equal(out, "OK");
    t0 = tr_now_ms();
    while (tr_now_ms() - t0 < 30000 && (moved < 0 || named < 0)) {
        st->ops->notify_drain(st, on_note, &seen);
        if (named < 0 && tr_redis_sentinel_master_port(&sen, "sw") == rep.port)
            named = tr_now_ms() - t0;
        if (demoted < 0 && strcmp(tr_redis_role(&m), "slave") == 0)
            demoted = tr_now_ms() - t0;
        if (moved < 0 && tr_redis_numsub(&rep, CHANNEL) == 1 && tr_redis_numsub(&m, CHANNEL) == 0)
            moved = tr_now_ms() - t0;
        tr_sleep_ms(100);
    }
    print_message("  failover: Sentinel named the replica after %.0f ms, the subscription "
                  "moved after %.0f ms, the old master was demoted after %.0f ms\n",
                  named, moved, demoted);
    assert_true(named >= 0);
    assert_true(moved >= 0);
    /* Without the watch the subscription would stay on the old master
     * until Sentinel demotes it and kills its clients (about 10 s after
     * the switch here) or the next PING (a minute): the announcement
     * moves it within a few of the engine's ticks. */
    if (moved > named + 3000)
        fail_msg("the subscription moved %.0f ms after the Sentinel named the new master",
                 moved - named);
    assert_true(demoted < 0 || moved < demoted);

    st->ops->free(st);
    tr_redis_stop(&sen);
    tr_redis_stop(&rep);
    tr_redis_stop(&m);
}

/* ---------------------------------------------------------------------
 * A Sentinel that names a replica
 * ------------------------------------------------------------------- */

/* A Sentinel that says what the test tells it: enough RESP for a client
 * (AUTH, PING, SENTINEL get-master-addr-by-name, SUBSCRIBE), on one thread
 * polling every connection. */
#define FAKE_CONNS 16
typedef struct fake_sentinel {
    int lfd, port;
    atomic_int master_port; /* what get-master-addr-by-name answers */
    atomic_int asked;       /* get-master-addr-by-name requests */
    atomic_bool stop;
    pthread_t thread;
    int fds[FAKE_CONNS];
    char buf[FAKE_CONNS][1024];
    size_t used[FAKE_CONNS];
} fake_sentinel;

/* One whole command at the start of |b| (a RESP array of bulk strings):
 * its length, with up to 4 arguments in |argv|; 0 when incomplete, -1
 * when not RESP. */
static long parse_cmd(const char *b, size_t n, char argv[4][128], int *argc)
{
    const char *p = b, *end = b + n, *nl;
    long k, i, len;

    if (n == 0)
        return 0;
    if (*p != '*')
        return -1;
    if ((nl = memmem(p, (size_t)(end - p), "\r\n", 2)) == NULL)
        return 0;
    k = strtol(p + 1, NULL, 10);
    p = nl + 2;
    *argc = 0;
    for (i = 0; i < k; i++) {
        if (p >= end)
            return 0;
        if (*p != '$')
            return -1;
        if ((nl = memmem(p, (size_t)(end - p), "\r\n", 2)) == NULL)
            return 0;
        len = strtol(p + 1, NULL, 10);
        p = nl + 2;
        if (len < 0 || end - p < len + 2)
            return len < 0 ? -1 : 0;
        if (i < 4) {
            snprintf(argv[i], 128, "%.*s", (int)len, p);
            (*argc)++;
        }
        p += len + 2;
    }
    return (long)(p - b);
}

static void fake_answer(fake_sentinel *f, int fd, char argv[4][128], int argc)
{
    char out[256];
    int n;

    if (argc >= 2 && strcasecmp(argv[0], "SENTINEL") == 0 &&
        strcasecmp(argv[1], "get-master-addr-by-name") == 0) {
        char port[16];

        atomic_fetch_add(&f->asked, 1);
        snprintf(port, sizeof(port), "%d", atomic_load(&f->master_port));
        n = snprintf(out, sizeof(out), "*2\r\n$9\r\n127.0.0.1\r\n$%zu\r\n%s\r\n", strlen(port),
                     port);
    } else if (argc >= 2 && strcasecmp(argv[0], "SUBSCRIBE") == 0) {
        n = snprintf(out, sizeof(out), "*3\r\n$9\r\nsubscribe\r\n$%zu\r\n%s\r\n:1\r\n",
                     strlen(argv[1]), argv[1]);
    } else if (argc >= 1 && strcasecmp(argv[0], "PING") == 0) {
        n = snprintf(out, sizeof(out), "+PONG\r\n");
    } else if (argc >= 1 && strcasecmp(argv[0], "AUTH") == 0) {
        n = snprintf(out, sizeof(out), "+OK\r\n");
    } else {
        n = snprintf(out, sizeof(out), "-ERR unknown command\r\n");
    }
    if (send(fd, out, (size_t)n, MSG_NOSIGNAL) != n)
        shutdown(fd, SHUT_RDWR);
}

static void fake_close(fake_sentinel *f, int i)
{
    close(f->fds[i]);
    f->fds[i] = -1;
    f->used[i] = 0;
}

static void *fake_main(void *arg)
{
    fake_sentinel *f = arg;

    while (!atomic_load(&f->stop)) {
        struct pollfd pfd[FAKE_CONNS + 1];
        int i;

        pfd[0] = (struct pollfd){f->lfd, POLLIN, 0};
        for (i = 0; i < FAKE_CONNS; i++)
            pfd[i + 1] = (struct pollfd){f->fds[i], POLLIN, 0};
        if (poll(pfd, FAKE_CONNS + 1, 50) <= 0)
            continue;
        if (pfd[0].revents & POLLIN) {
            int fd = accept(f->lfd, NULL, NULL);

            for (i = 0; fd >= 0 && i < FAKE_CONNS && f->fds[i] >= 0; i++)
                ;
            if (fd >= 0 && i == FAKE_CONNS)
                close(fd);
            else if (fd >= 0)
                f->fds[i] = fd;
        }
        for (i = 0; i < FAKE_CONNS; i++) {
            char argv[4][128];
            ssize_t got;
            long used;
            int argc;

            if (f->fds[i] < 0 || !(pfd[i + 1].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            got = recv(f->fds[i], f->buf[i] + f->used[i], sizeof(f->buf[i]) - f->used[i], 0);
            if (got <= 0) {
                fake_close(f, i);
                continue;
            }
            f->used[i] += (size_t)got;
            while ((used = parse_cmd(f->buf[i], f->used[i], argv, &argc)) > 0) {
                fake_answer(f, f->fds[i], argv, argc);
                memmove(f->buf[i], f->buf[i] + used, f->used[i] - (size_t)used);
                f->used[i] -= (size_t)used;
            }
            if (used < 0 || f->used[i] == sizeof(f->buf[i]))
                fake_close(f, i);
        }
    }
    return NULL;
}

static bool fake_start(fake_sentinel *f, int master_port)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t alen = sizeof(a);
    int i;

    memset(f, 0, sizeof(*f));
    for (i = 0; i < FAKE_CONNS; i++)
        f->fds[i] = -1;
    atomic_store(&f->master_port, master_port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (f->lfd < 0 || bind(f->lfd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        listen(f->lfd, 16) != 0 || getsockname(f->lfd, (struct sockaddr *)&a, &alen) != 0)
        return false;
    f->port = ntohs(a.sin_port);
    return pthread_create(&f->thread, NULL, fake_main, f) == 0;
}

static void fake_stop(fake_sentinel *f)
{
    int i;

    atomic_store(&f->stop, true);
    pthread_join(f->thread, NULL);
    for (i = 0; i < FAKE_CONNS; i++)
        if (f->fds[i] >= 0)
            close(f->fds[i]);
    close(f->lfd);
}

static void test_role_checked(void **s)
{
    tr_redis m, rep;
    tr_redis_opts om = {.tcp = true}, orep = {.tcp = true};
    fake_sentinel f;
    srvocsp__store *st;
    char url[600], why[400], tok[SRVOCSP__LEASE_TOKEN_LEN + 1], key[200];
    const char *exists[2] = {"EXISTS", key};
    unsigned char *der = NULL;
    size_t len = 0;
    uint64_t version = 0;
    int64_t left;
    srvocsp__lease got = SRVOCSP__LEASE_ERROR;
    double t0;

    need_redis();
    assert_true(tr_redis_start(&m, &om));
    orep.replica_of = m.port;
    assert_true(tr_redis_start(&rep, &orep));
    assert_string_equal(tr_redis_role(&rep), "slave");
    assert_true(fake_start(&f, rep.port));

    /* The Sentinel names the replica: it answers, and is refused. */
    snprintf(url, sizeof(url), "redis-sentinel://127.0.0.1:%d?failover_wait=0#fake", f.port);
    st = srvocsp__store_redis_new(url, NULL);
    assert_non_null(st); /* no master yet is an outage, not a fault */
    assert_true(atomic_load(&f.asked) >= 1);
    assert_int_equal(st->ops->lease_acquire(st, NAME, 5000, tok, &left, why, sizeof(why)),
                     SRVOCSP__LEASE_ERROR);
    if (strstr(why, "is a slave, not the master") == NULL)
        fail_msg("lease refused for another reason: %s", why);
    assert_int_equal(st->ops->load(st, NAME, 4096, &der, &len, &version, why, sizeof(why)),
                     SRVOCSP_E_STORE);
    assert_null(der);
    if (strstr(why, "not the master") == NULL)
        fail_msg("load refused for another reason: %s", why);

    /* The Sentinel names the master: after the backoff the store uses it. */
    atomic_store(&f.master_port, m.port);
    t0 = tr_now_ms();
    while (tr_now_ms() - t0 < 15000 &&
           (got = st->ops->lease_acquire(st, NAME, 5000, tok, &left, why, sizeof(why))) !=
               SRVOCSP__LEASE_HELD)
        tr_sleep_ms(200);
    if (got != SRVOCSP__LEASE_HELD)
        fail_msg("no lease from the master the Sentinel named: %s", why);
    snprintf(key, sizeof(key), "srvocsp:{%s}:l", NAME);
    assert_int_equal(tr_redis_cmd(&m, NULL, 0, 2, exists, NULL), 1);
    st->ops->lease_release(st, NAME, tok);
    assert_int_equal(tr_redis_cmd(&m, NULL, 0, 2, exists, NULL), 0);

    st->ops->free(st);
    fake_stop(&f);
    tr_redis_stop(&rep);
    tr_redis_stop(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_role_checked),
        cmocka_unit_test(test_switch_master_followed),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
