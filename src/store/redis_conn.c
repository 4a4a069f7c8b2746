/*
 * The Redis store's link (redis_conn.h): connections made and remade.
 *
 * I/O: blocking hiredis calls bounded by the URL's timeouts (connect,
 * resolution included, and each command), made by whichever thread asks
 * (the engine thread, or an opener) under the link's mutex.  After any
 * failure the connections are dropped and nothing is tried for a backoff
 * period (1 s, doubling to 8 s): while Redis hangs every call fails at
 * once, so ten thousand certificates cost one timeout per period, not one
 * each.  The subscription is a second connection whose socket the engine
 * polls with its own; it is PINGed so that a frozen or half-open peer
 * ends it (redis_sock.c).
 *
 * With Sentinel the master's address comes from the Sentinels, is checked
 * with ROLE on every connect, is forgotten on every failure, and is
 * replaced as soon as a Sentinel announces a failover.
 *
 * After fork() the child drops the parent's sockets (without a word on
 * them) and connects afresh.
 */
#include "store/redis_conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#define BACKOFF_FIRST_MS 1000
#define BACKOFF_MAX_MS 8000

static void drop_locked(srvocsp__redis_link *l)
{
    if (l->cmd)
        redisFree(l->cmd);
    if (l->sub)
        redisFree(l->sub);
    l->cmd = l->sub = NULL;
    memset(&l->hb, 0, sizeof(l->hb));
}

/* A forked child must not speak on its parent's sockets. */
static void check_fork_locked(srvocsp__redis_link *l)
{
    if (l->pid == getpid())
        return;
    drop_locked(l);
    srvocsp__sentinel_watch_close(&l->watch);
    l->pid = getpid();
    l->down_until_ms = 0;
    l->failures = 0;
}

void srvocsp__link_fail_locked(srvocsp__redis_link *l, const char *what, const char *detail)
{
    int64_t wait = BACKOFF_FIRST_MS;
    unsigned i;

    for (i = 0; i < l->failures && wait < BACKOFF_MAX_MS; i++)
        wait *= 2;
    if (wait > BACKOFF_MAX_MS)
        wait = BACKOFF_MAX_MS;
    if (l->failures == 0 && l->ever_connected && l->lost_at_ms == 0)
        l->lost_at_ms = srvocsp__system_monotonic_ms(NULL);
    l->failures++;
    l->down_until_ms = srvocsp__system_monotonic_ms(NULL) + wait;
    snprintf(l->last_err, sizeof(l->last_err), "%s: %s: %s (not tried again for %lld ms)",
             l->display, what, detail, (long long)wait);
    drop_locked(l);
    l->have_master = false; /* Sentinel: ask again which node is the master */
}

typedef enum { CONN_OK, CONN_DOWN, CONN_REFUSED } conn_result;

/* Opens one authenticated connection.  CONN_REFUSED when Redis answered
 * but refused AUTH or SELECT (a configuration fault, not an outage).
 * With Sentinel the master is looked up first when not known, and a node
 * that is not (or no longer) the master is no connection. */
static conn_result open_one(srvocsp__redis_link *l, redisContext **out, char *why, size_t whylen)
{
    const srvocsp__redis_url *u = &l->url;
    redisContext *ctx = NULL;
    redisReply *r = NULL;
    conn_result res = CONN_DOWN;
    char err[300];
    int rc;

    *out = NULL;
    if (u->kind == SRVOCSP__REDIS_UNIX) {
        ctx =
            srvocsp__redis_connect_unix(u->path, u->connect_timeout_ms, u->timeout_ms, why, whylen);
    } else if (u->kind == SRVOCSP__REDIS_TCP) {
        ctx = srvocsp__redis_connect_tcp(u->host, u->port, u->connect_timeout_ms, u->timeout_ms,
                                         why, whylen);
    } else {
        if (!l->have_master && !(l->have_master = srvocsp__sentinel_master(
                                     u, &l->sentinel_next, &l->master, err, sizeof(err)))) {
            srvocsp__fmt(why, whylen, "no master from the Sentinels: %s", err);
            return CONN_DOWN;
        }
        ctx = srvocsp__redis_connect_tcp(l->master.host, l->master.port, u->connect_timeout_ms,
                                         u->timeout_ms, err, sizeof(err));
        if (ctx == NULL)
            srvocsp__fmt(why, whylen, "master %s:%d: %s", l->master.host, l->master.port, err);
    }
    if (ctx == NULL)
        return CONN_DOWN;
    rc = srvocsp__redis_auth(ctx, u->user, u->password, why, whylen);
    if (rc != 0) {
        res = rc > 0 ? CONN_REFUSED : CONN_DOWN;
        goto out;
    }
    /* Says whether this is a Redis at all, and whether it wants a
     * password we were not given. */
    r = redisCommand(ctx, "PING");
    if (r == NULL) {
        srvocsp__fmt(why, whylen, "PING: %s", ctx->errstr);
        goto out;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        srvocsp__fmt(why, whylen, "%s: %.*s",
                     strncmp(r->str, "NOAUTH", 6) == 0 ? "Redis needs a password (none in the URL)"
                                                       : "PING refused",
                     (int)r->len, r->str);
        res = CONN_REFUSED;
        goto out;
    }
    freeReplyObject(r);
    r = NULL;
    if (u->kind == SRVOCSP__REDIS_SENTINEL) {
        rc = srvocsp__sentinel_is_master(ctx, err, sizeof(err));
        if (rc != 1) {
            srvocsp__fmt(why, whylen, "master %s:%d: %s", l->master.host, l->master.port, err);
            l->have_master = false;
            goto out;
        }
    }
    if (u->db != 0) {
        r = redisCommand(ctx, "SELECT %d", u->db);
        if (r == NULL) {
            srvocsp__fmt(why, whylen, "SELECT: %s", ctx->errstr);
            goto out;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            srvocsp__fmt(why, whylen, "SELECT %d refused: %.*s", u->db, (int)r->len, r->str);
            res = CONN_REFUSED;
            goto out;
        }
        freeReplyObject(r);
        r = NULL;
    }
    *out = ctx;
    ctx = NULL;
    res = CONN_OK;
out:
    if (r)
        freeReplyObject(r);
    if (ctx)
        redisFree(ctx);
    return res;
}

/* The command connection, connecting if needed and allowed; NULL (with
 * |why|) while Redis is down or backing off. */
static redisContext *cmd_locked(srvocsp__redis_link *l, char *why, size_t whylen)
{
    char err[256];
    conn_result r;

    check_fork_locked(l);
    if (l->cmd != NULL)
        return l->cmd;
    if (srvocsp__system_monotonic_ms(NULL) < l->down_until_ms) {
        srvocsp__fmt(why, whylen, "%s", l->last_err);
        return NULL;
    }
    r = open_one(l, &l->cmd, err, sizeof(err));
    if (r != CONN_OK) {
        srvocsp__link_fail_locked(l, "unavailable", err);
        srvocsp__fmt(why, whylen, "%s", l->last_err);
        return NULL;
    }
    if (l->failures > 0 || !l->ever_connected)
        l->epoch++;
    l->ever_connected = true;
    l->failures = 0;
    l->lost_at_ms = 0;
    return l->cmd;
}

redisReply *srvocsp__link_command_locked(srvocsp__redis_link *l, int argc, const char **argv,
                                         const size_t *lens, char *why, size_t whylen)
{
    redisContext *ctx = cmd_locked(l, why, whylen);
    redisReply *r;

    if (ctx == NULL)
        return NULL;
    r = redisCommandArgv(ctx, argc, argv, lens);
    if (r == NULL) {
        srvocsp__link_fail_locked(l, argv[0], ctx->errstr[0] ? ctx->errstr : "no reply");
        srvocsp__fmt(why, whylen, "%s", l->last_err);
    } else if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "READONLY", 8) == 0) {
        /* A master demoted under us (it came back after a failover):
         * its data is a replica's now; find the master again. */
        srvocsp__link_fail_locked(l, argv[0], "the node is a replica now (READONLY)");
        srvocsp__fmt(why, whylen, "%s", l->last_err);
        freeReplyObject(r);
        r = NULL;
    }
    return r;
}

bool srvocsp__link_subscribe_locked(srvocsp__redis_link *l, const char *channel)
{
    char err[256];
    redisReply *r = NULL;
    conn_result cr;

    check_fork_locked(l);
    if (l->sub != NULL)
        return true;
    if (srvocsp__system_monotonic_ms(NULL) < l->down_until_ms)
        return false;
    cr = open_one(l, &l->sub, err, sizeof(err));
    if (cr != CONN_OK) {
        srvocsp__link_fail_locked(l, "subscription", err);
        return false;
    }
    r = redisCommand(l->sub, "SUBSCRIBE %s", channel);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        srvocsp__link_fail_locked(l, "SUBSCRIBE", r == NULL ? l->sub->errstr : "unexpected reply");
        if (r)
            freeReplyObject(r);
        return false;
    }
    freeReplyObject(r);
    /* Messages published while we were away are lost: a reconnect moves
     * the epoch so the engine looks again at everything. */
    l->epoch++;
    return true;
}

/* Called from the engine's loop, at least once a second.  The backoff is
 * forgotten and the data connections go: the old master may be alive but
 * demoted, or frozen. */
void srvocsp__link_follow_sentinel_locked(srvocsp__redis_link *l)
{
    srvocsp__redis_addr to;

    check_fork_locked(l);
    if (l->url.kind != SRVOCSP__REDIS_SENTINEL ||
        !srvocsp__sentinel_watch_poll(&l->watch, &l->url, srvocsp__system_monotonic_ms(NULL), &to))
        return;
    if (l->have_master && l->cmd != NULL && l->master.port == to.port &&
        strcmp(l->master.host, to.host) == 0)
        return; /* found there already, after the connection to the old one failed */
    drop_locked(l);
    l->master = to;
    l->have_master = true;
    l->down_until_ms = 0;
    l->failures = 0;
    l->epoch++; /* the promoted replica may lack the last saves */
}

bool srvocsp__link_failing_over_locked(const srvocsp__redis_link *l, int64_t *left_ms)
{
    int64_t now = srvocsp__system_monotonic_ms(NULL), end = l->lost_at_ms + l->url.failover_wait_ms;

    if (l->url.kind != SRVOCSP__REDIS_SENTINEL || l->lost_at_ms == 0 || now >= end)
        return false;
    *left_ms = end - now < 1000 ? end - now : 1000;
    return true;
}

/* The URL as shown in messages: the password replaced. */
static void display_of(const srvocsp__redis_url *u, char *out, size_t len)
{
    char auth[300], full[2048];
    bool v6 = strchr(u->host, ':') != NULL;
    size_t k;

    if (u->password[0])
        snprintf(auth, sizeof(auth), "%.200s:***@", u->user);
    else if (u->user[0])
        snprintf(auth, sizeof(auth), "%.200s@", u->user);
    else
        auth[0] = '\0';
    if (u->kind == SRVOCSP__REDIS_UNIX) {
        snprintf(full, sizeof(full), "unix://%s%s?db=%d", auth, u->path, u->db);
    } else if (u->kind == SRVOCSP__REDIS_SENTINEL) {
        size_t n = (size_t)snprintf(full, sizeof(full), "redis-sentinel://%s", auth);
        unsigned i;

        for (i = 0; i < u->n_sentinels && n < 1700; i++) {
            v6 = strchr(u->sentinels[i].host, ':') != NULL;
            n += (size_t)snprintf(full + n, sizeof(full) - n, "%s%s%.200s%s:%d", i ? "," : "",
                                  v6 ? "[" : "", u->sentinels[i].host, v6 ? "]" : "",
                                  u->sentinels[i].port);
        }
        snprintf(full + n, sizeof(full) - n, "/%d#%.200s", u->db, u->master);
    } else
        snprintf(full, sizeof(full), "redis://%s%s%.255s%s:%d/%d", auth, v6 ? "[" : "", u->host,
                 v6 ? "]" : "", u->port, u->db);
    /* Cut to the caller's buffer: this is a message, never used to connect. */
    k = strlen(full);
    if (len == 0)
        return;
    if (k >= len)
        k = len - 1;
    memcpy(out, full, k);
    out[k] = '\0';
}

bool srvocsp__link_init(srvocsp__redis_link *l, const char *url, char *why, size_t whylen)
{
    memset(l, 0, sizeof(*l));
    if (!srvocsp__redis_url_parse(url, &l->url, why, whylen))
        return false;
    display_of(&l->url, l->display, sizeof(l->display));
    l->pid = getpid();
    pthread_mutex_init(&l->mu, NULL);
    return true;
}

int srvocsp__link_connect_first(srvocsp__redis_link *l, char *why, size_t whylen)
{
    char err[256];
    conn_result cr;

    pthread_mutex_lock(&l->mu);
    cr = open_one(l, &l->cmd, err, sizeof(err));
    if (cr == CONN_OK) {
        l->ever_connected = true;
        l->epoch = 1;
    } else if (cr == CONN_DOWN) {
        srvocsp__link_fail_locked(l, "unavailable", err);
    } else {
        srvocsp__fmt(why, whylen, "%s", err);
    }
    pthread_mutex_unlock(&l->mu);
    return cr == CONN_OK ? 1 : cr == CONN_DOWN ? 0 : -1;
}

void srvocsp__link_destroy(srvocsp__redis_link *l)
{
    drop_locked(l);
    srvocsp__sentinel_watch_close(&l->watch);
    pthread_mutex_destroy(&l->mu);
    OPENSSL_cleanse(&l->url, sizeof(l->url));
}
