/*
 * Bounded connections to Redis (see redis_sock.h).
 *
 * hiredis resolves the host itself with getaddrinfo, which no timeout of
 * its own bounds: a slow or dead DNS server holds the calling thread for
 * the resolver's own retries (tens of seconds), and that thread is the
 * engine's.  So the name is resolved here on a short-lived helper thread;
 * the caller waits for it until the connect deadline and then leaves it.
 * The request is shared by the two threads and freed by whichever lets go
 * of it last, so an abandoned resolution frees itself when it ends.  A
 * numeric address needs no helper.  The socket is then connected without
 * blocking, each address with what is left of the deadline, and handed to
 * hiredis (redisConnectFd).
 */
#include "store/redis_sock.h"
#include "store/redis_url.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct resolve_job {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned refs;                 /* the caller and the helper */
    bool done;
    int rc;                        /* getaddrinfo's */
    struct addrinfo *res;
    char host[SRVOCSP__REDIS_HOST_MAX];
    char port[8];
} resolve_job;

static const struct addrinfo g_hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};

static void job_unref(resolve_job *j)
{
    unsigned left;

    pthread_mutex_lock(&j->mu);
    left = --j->refs;
    pthread_mutex_unlock(&j->mu);
    if (left > 0)
        return;
    if (j->res)
        freeaddrinfo(j->res);
    pthread_cond_destroy(&j->cv);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

static void *resolve_main(void *arg)
{
    resolve_job *j = arg;
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(j->host, j->port, &g_hints, &res);

    pthread_mutex_lock(&j->mu);
    j->rc = rc;
    j->res = res;
    j->done = true;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
    job_unref(j);
    return NULL;
}

/* The addresses of |host|, within |deadline_ms| (monotonic); NULL with
 * |why| when there are none or the resolver did not answer in time. */
static struct addrinfo *resolve(const char *host, int port, int64_t deadline_ms, char *why,
                                size_t whylen)
{
    struct addrinfo hints = g_hints, *res = NULL;
    resolve_job *j = NULL;
    pthread_condattr_t ca;
    pthread_attr_t attr;
    pthread_t t;
    char ports[8];
    int rc;

    snprintf(ports, sizeof(ports), "%d", port);
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    if (getaddrinfo(host, ports, &hints, &res) == 0)
        return res; /* an address already: nothing to wait for */
    if (strlen(host) >= sizeof(j->host)) {
        srvocsp__fmt(why, whylen, "host name too long");
        return NULL;
    }
    if ((j = srvocsp__calloc(1, sizeof(*j))) == NULL) {
        srvocsp__fmt(why, whylen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&j->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* srvocsp__deadline_ms's clock */
    pthread_cond_init(&j->cv, &ca);
    pthread_condattr_destroy(&ca);
    j->refs = 2;
    snprintf(j->host, sizeof(j->host), "%s", host);
    snprintf(j->port, sizeof(j->port), "%s", ports);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    rc = pthread_create(&t, &attr, resolve_main, j);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        j->refs = 1;
        job_unref(j);
        srvocsp__fmt(why, whylen, "resolving %s: cannot start a resolver thread", host);
        return NULL;
    }
    pthread_mutex_lock(&j->mu);
    while (!j->done) {
        struct timespec ts;
        int64_t left = deadline_ms - srvocsp__system_monotonic_ms(NULL);

        if (left <= 0)
            break;
        srvocsp__deadline_ms(&ts, (uint64_t)left);
        pthread_cond_timedwait(&j->cv, &j->mu, &ts);
    }
    if (!j->done)
        srvocsp__fmt(why, whylen, "resolving %s: no answer within the connect timeout", host);
    else if (j->rc != 0)
        srvocsp__fmt(why, whylen, "resolving %s: %s", host, gai_strerror(j->rc));
    else {
        res = j->res; /* ours now */
        j->res = NULL;
    }
    pthread_mutex_unlock(&j->mu);
    job_unref(j);
    return res;
}

/* Connects one address before |deadline_ms|; the descriptor or -1. */
static int connect_one(const struct addrinfo *ai, int64_t deadline_ms, char *why, size_t whylen)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    int err = 0, fl;
    socklen_t el = sizeof(err);

    if (fd < 0) {
        srvocsp__fmt(why, whylen, "socket: %s", strerror(errno));
        return -1;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int64_t left;
        int rc;

        if (errno != EINPROGRESS) {
            err = errno;
            goto fail;
        }
        do {
            left = deadline_ms - srvocsp__system_monotonic_ms(NULL);
            rc = left > 0 ? poll(&p, 1, (int)left) : 0;
        } while (rc < 0 && errno == EINTR);
        if (rc == 0) {
            srvocsp__fmt(why, whylen, "connect: no answer within the connect timeout");
            close(fd);
            return -1;
        }
        if (rc < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0)
            err = errno;
        if (err != 0)
            goto fail;
    }
    fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
        err = errno;
        goto fail;
    }
    return fd;
fail:
    srvocsp__fmt(why, whylen, "connect: %s", strerror(err));
    close(fd);
    return -1;
}

static void keepalive(int fd)
{
    int on = 1, idle = SRVOCSP__KEEPALIVE_IDLE_S, intvl = SRVOCSP__KEEPALIVE_INTVL_S,
        cnt = SRVOCSP__KEEPALIVE_CNT;
    unsigned user_ms =
        (SRVOCSP__KEEPALIVE_IDLE_S + SRVOCSP__KEEPALIVE_INTVL_S * SRVOCSP__KEEPALIVE_CNT) * 1000u;

    /* Best effort: a socket without them still has the command timeout
     * and, for subscriptions, the PING. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_ms, sizeof(user_ms));
}

static struct timeval tv_ms(int ms)
{
    struct timeval tv;

    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    return tv;
}

/* Hands a connected blocking socket to hiredis with the command timeout. */
static redisContext *adopt(int fd, int timeout_ms, char *why, size_t whylen)
{
    redisContext *ctx = redisConnectFd(fd);

    if (ctx == NULL) {
        close(fd);
        srvocsp__fmt(why, whylen, "cannot allocate a connection");
        return NULL;
    }
    if (ctx->err || redisSetTimeout(ctx, tv_ms(timeout_ms)) != REDIS_OK) {
        srvocsp__fmt(why, whylen, "connect: %s", ctx->err ? ctx->errstr : "cannot set the timeout");
        redisFree(ctx);
        return NULL;
    }
    return ctx;
}

redisContext *srvocsp__redis_connect_tcp(const char *host, int port, int connect_timeout_ms,
                                         int timeout_ms, char *why, size_t whylen)
{
    int64_t deadline = srvocsp__system_monotonic_ms(NULL) + connect_timeout_ms;
    struct addrinfo *res = resolve(host, port, deadline, why, whylen), *ai;
    int fd = -1;

    if (res == NULL)
        return NULL;
    for (ai = res; ai != NULL && fd < 0; ai = ai->ai_next)
        fd = connect_one(ai, deadline, why, whylen);
    freeaddrinfo(res);
    if (fd < 0)
        return NULL;
    keepalive(fd);
    return adopt(fd, timeout_ms, why, whylen);
}

redisContext *srvocsp__redis_connect_unix(const char *path, int connect_timeout_ms, int timeout_ms,
                                          char *why, size_t whylen)
{
    redisContext *ctx = redisConnectUnixWithTimeout(path, tv_ms(connect_timeout_ms));

    if (ctx == NULL) {
        srvocsp__fmt(why, whylen, "cannot allocate a connection");
        return NULL;
    }
    if (ctx->err || redisSetTimeout(ctx, tv_ms(timeout_ms)) != REDIS_OK) {
        srvocsp__fmt(why, whylen, "connect: %s", ctx->err ? ctx->errstr : "cannot set the timeout");
        redisFree(ctx);
        return NULL;
    }
    return ctx;
}

int srvocsp__redis_auth(redisContext *ctx, const char *user, const char *password, char *why,
                        size_t whylen)
{
    redisReply *r;
    int res = 0;

    if (password == NULL || password[0] == '\0')
        return 0;
    if (user != NULL && user[0] != '\0')
        r = redisCommand(ctx, "AUTH %s %s", user, password);
    else
        r = redisCommand(ctx, "AUTH %s", password);
    if (r == NULL) {
        srvocsp__fmt(why, whylen, "AUTH: %s", ctx->errstr);
        return -1;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        srvocsp__fmt(why, whylen, "AUTH refused%s%s: %.*s", user && user[0] ? " for user " : "",
                     user ? user : "", (int)r->len, r->str);
        res = 1;
    }
    freeReplyObject(r);
    return res;
}

int srvocsp__redis_sub_next(redisContext *ctx, size_t cap, srvocsp__redis_heartbeat *hb,
                            redisReply **out, char *why, size_t whylen)
{
    *out = NULL;
    for (;;) {
        struct pollfd pfd = {.fd = ctx->fd, .events = POLLIN};
        void *r = NULL;

        if (redisGetReplyFromReader(ctx, &r) != REDIS_OK) {
            srvocsp__fmt(why, whylen, "protocol error");
            return -1;
        }
        if (r != NULL) {
            hb->sent_ms = 0;
            *out = r;
            return 1;
        }
        if (poll(&pfd, 1, 0) <= 0)
            return 0;
        if (redisBufferRead(ctx) != REDIS_OK) {
            srvocsp__fmt(why, whylen, "connection lost");
            return -1;
        }
        if (ctx->reader->len - ctx->reader->pos > cap) {
            srvocsp__fmt(why, whylen, "an announcement exceeds the maximum size");
            return -1;
        }
    }
}

bool srvocsp__redis_sub_ping(redisContext *ctx, srvocsp__redis_heartbeat *hb, int interval_ms,
                             int64_t now_ms, char *why, size_t whylen)
{
    int done = 0;

    if (hb->last_ms == 0)
        hb->last_ms = now_ms;
    if (hb->sent_ms != 0) {
        if (now_ms - hb->sent_ms < interval_ms)
            return true;
        srvocsp__fmt(why, whylen, "no answer to PING within %d ms", interval_ms);
        return false;
    }
    if (now_ms - hb->last_ms < interval_ms)
        return true;
    /* A few bytes on a socket with a send timeout: written at once unless
     * the peer stopped reading long ago, and then bounded. */
    if (redisAppendCommand(ctx, "PING") != REDIS_OK) {
        srvocsp__fmt(why, whylen, "PING: %s", ctx->errstr);
        return false;
    }
    while (!done)
        if (redisBufferWrite(ctx, &done) != REDIS_OK) {
            srvocsp__fmt(why, whylen, "PING: %s", ctx->errstr[0] ? ctx->errstr : "write failed");
            return false;
        }
    hb->sent_ms = hb->last_ms = now_ms;
    return true;
}
