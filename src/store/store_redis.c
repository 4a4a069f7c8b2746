/*
 * The Redis store: the fleet's shared copy of every certificate's response,
 * a per-certificate lease so one process fetches, and a channel that tells
 * every process when a response was stored.
 *
 * Keys (|prefix| defaults to "srvocsp:"), the certificate's store name in a
 * hash tag so its value and its lease live in one Cluster slot:
 *   <prefix>{<name>}:r   hash: d = DER, t = thisUpdate (Unix s), s = g|r|u
 *                         expires (PEXPIREAT) when the response does
 *   <prefix>{<name>}:l   lease: a random token, SET NX PX
 *   channel <prefix>updates   "<name> <writer id> <DER>" after each save
 *
 * Nothing read back is trusted: the engine verifies it like a network
 * answer.  The scripts only keep honest writers from rolling back each
 * other (compare on thisUpdate) and from releasing each other's leases.
 *
 * I/O: blocking hiredis calls with a connect and a command timeout of a few
 * hundred milliseconds, made by whichever thread asks (the engine thread,
 * or an opener) under the connection's mutex.  After any failure the
 * connection is dropped and nothing is tried for a backoff period (1 s,
 * doubling to 8 s): while Redis hangs every call fails at once, so ten
 * thousand certificates cost one timeout per period, not one each.  The
 * subscription is a second connection whose socket the engine polls with
 * its own; notify_drain reads it without blocking.
 *
 * One connection pair per URL and prefix per process, shared by every
 * certificate (reference counted).  After fork() the child drops the
 * parent's sockets (without a word on them) and connects afresh.
 */
#include "store/store.h"
#include "store/redis_sock.h"
#include "store/redis_url.h"
#include "store/sentinel.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define BACKOFF_FIRST_MS 1000
#define BACKOFF_MAX_MS 8000
#define PREFIX_MAX 128

/* Never replace a newer stored response; an equal thisUpdate only by a
 * revoked one over one that is not (revoked wins a tie).  A value of the
 * wrong type, or with no usable thisUpdate, is garbage and replaced.
 * KEYS[1] value; ARGV: der, thisUpdate, status, expiry (Unix ms), channel,
 * message. */
static const char SAVE_LUA[] =
    "local ty = redis.call('TYPE', KEYS[1]).ok\n"
    "if ty ~= 'none' and ty ~= 'hash' then redis.call('DEL', KEYS[1]) end\n"
    "local nt = tonumber(ARGV[2])\n"
    "local ot = tonumber(redis.call('HGET', KEYS[1], 't'))\n"
    "if ot then\n"
    "  if ot > nt then return 0 end\n"
    "  if ot == nt and not (ARGV[3] == 'r' and redis.call('HGET', KEYS[1], 's') ~= 'r') then\n"
    "    return 0\n"
    "  end\n"
    "end\n"
    "redis.call('DEL', KEYS[1])\n"
    "redis.call('HSET', KEYS[1], 'd', ARGV[1], 't', ARGV[2], 's', ARGV[3])\n"
    "redis.call('PEXPIREAT', KEYS[1], ARGV[4])\n"
    "redis.call('PUBLISH', ARGV[5], ARGV[6] .. ' ' .. ARGV[1])\n"
    "return 1\n";

/* Takes the lease, or says how long its holder has left: one round trip.
 * KEYS[1] lease; ARGV: token, ttl ms.  -2 when taken. */
static const char LEASE_LUA[] =
    "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return -2 end\n"
    "return redis.call('PTTL', KEYS[1])\n";

/* Deletes the lease only if it still holds our token. */
static const char RELEASE_LUA[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
                                  "  return redis.call('DEL', KEYS[1])\n"
                                  "end\n"
                                  "return 0\n";

/* Deletes a stored value a reader rejected, only if it is still those
 * bytes (ARGV[1] = their SHA-1 in hex), or is not a hash at all. */
static const char DISCARD_LUA[] =
    "local ty = redis.call('TYPE', KEYS[1]).ok\n"
    "if ty == 'none' then return 0 end\n"
    "if ty ~= 'hash' then return redis.call('DEL', KEYS[1]) end\n"
    "local d = redis.call('HGET', KEYS[1], 'd')\n"
    "if d == false then d = '' end\n"
    "if redis.sha1hex(d) == ARGV[1] then return redis.call('DEL', KEYS[1]) end\n"
    "return 0\n";

/* Reads a stored response, but not more than ARGV[1] bytes of it: an
 * oversized value comes back as its size alone (the reader's cap holds
 * before any byte crosses).  Replies: nil, {d, t}, or the size. */
static const char LOAD_LUA[] =
    "local ty = redis.call('TYPE', KEYS[1]).ok\n"
    "if ty == 'none' then return false end\n"
    "if ty ~= 'hash' then return redis.error_reply('WRONGTYPE stored value is a ' .. ty) end\n"
    "local n = redis.call('HSTRLEN', KEYS[1], 'd')\n"
    "if n > tonumber(ARGV[1]) then return n end\n"
    "return redis.call('HMGET', KEYS[1], 'd', 't')\n";

/* Deletes a value no reader can use: not a hash, no bytes, or more bytes
 * than ARGV[1].  KEYS[1] value. */
static const char DISCARD_UNREADABLE_LUA[] =
    "local ty = redis.call('TYPE', KEYS[1]).ok\n"
    "if ty == 'none' then return 0 end\n"
    "if ty ~= 'hash' then return redis.call('DEL', KEYS[1]) end\n"
    "local n = redis.call('HSTRLEN', KEYS[1], 'd')\n"
    "if n == 0 or n > tonumber(ARGV[1]) then return redis.call('DEL', KEYS[1]) end\n"
    "return 0\n";

enum {
    SCRIPT_SAVE,
    SCRIPT_RELEASE,
    SCRIPT_DISCARD,
    SCRIPT_LOAD,
    SCRIPT_DISCARD_UNREADABLE,
    SCRIPT_LEASE,
    SCRIPT_N
};
static const char *const g_scripts[SCRIPT_N] = {SAVE_LUA,  RELEASE_LUA,           DISCARD_LUA,
                                                LOAD_LUA,  DISCARD_UNREADABLE_LUA, LEASE_LUA};

typedef struct rconn {
    srvocsp__store base;
    struct rconn *next;          /* g_conns, under g_mu */
    unsigned refs;               /* under g_mu */
    char *url_text;
    char prefix[PREFIX_MAX + 1];
    char display[300];           /* the URL without its password, for messages */
    srvocsp__redis_url url;
    char sha[SCRIPT_N][41];
    char writer[SRVOCSP__LEASE_TOKEN_LEN + 1]; /* who published, to skip our own */

    pthread_mutex_t mu;          /* everything below */
    pid_t pid;                   /* the process the sockets belong to */
    redisContext *cmd;
    redisContext *sub;
    srvocsp__redis_heartbeat hb; /* the subscription's PING */
    srvocsp__redis_addr master;  /* Sentinel: where the master was found */
    bool have_master;            /* ... until the next failure */
    unsigned sentinel_next;      /* the Sentinel asked first */
    srvocsp__sentinel_watch watch; /* +switch-master, on the engine's loop */
    int64_t down_until_ms;       /* monotonic: no attempt before this */
    int64_t lost_at_ms;          /* monotonic: a working connection was lost, 0 none */
    unsigned failures;           /* in a row, for the backoff */
    uint64_t epoch;              /* +1 on each connect after a loss */
    bool ever_connected;
    char last_err[512];
} rconn;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static rconn *g_conns;

static void sha1_hex(const void *data, size_t len, char out[41])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0, i;

    if (EVP_Digest(data, len, md, &n, EVP_sha1(), NULL) != 1)
        n = 0;
    for (i = 0; i < n && i < 20; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    out[2 * i] = '\0';
}

static bool random_hex(char out[SRVOCSP__LEASE_TOKEN_LEN + 1])
{
    unsigned char b[SRVOCSP__LEASE_TOKEN_LEN / 2];
    size_t i;

    if (RAND_bytes(b, (int)sizeof(b)) != 1)
        return false;
    for (i = 0; i < sizeof(b); i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
    return true;
}

/* ---------------------------------------------------------------------
 * Connections (all under c->mu)
 * ------------------------------------------------------------------- */

static void drop_locked(rconn *c)
{
    if (c->cmd)
        redisFree(c->cmd);
    if (c->sub)
        redisFree(c->sub);
    c->cmd = c->sub = NULL;
    memset(&c->hb, 0, sizeof(c->hb));
}

/* A forked child must not speak on its parent's sockets. */
static void check_fork_locked(rconn *c)
{
    if (c->pid == getpid())
        return;
    drop_locked(c);
    srvocsp__sentinel_watch_close(&c->watch);
    c->pid = getpid();
    c->down_until_ms = 0;
    c->failures = 0;
}

/* Records a failure: both connections go, nothing is tried for a while. */
static void fail_locked(rconn *c, const char *what, const char *detail)
{
    int64_t wait = BACKOFF_FIRST_MS;
    unsigned i;

    for (i = 0; i < c->failures && wait < BACKOFF_MAX_MS; i++)
        wait *= 2;
    if (wait > BACKOFF_MAX_MS)
        wait = BACKOFF_MAX_MS;
    if (c->failures == 0 && c->ever_connected && c->lost_at_ms == 0)
        c->lost_at_ms = srvocsp__system_monotonic_ms(NULL);
    c->failures++;
    c->down_until_ms = srvocsp__system_monotonic_ms(NULL) + wait;
    snprintf(c->last_err, sizeof(c->last_err), "%s: %s: %s (not tried again for %lld ms)",
             c->display, what, detail, (long long)wait);
    drop_locked(c);
    c->have_master = false; /* Sentinel: ask again which node is the master */
}

typedef enum { CONN_OK, CONN_DOWN, CONN_REFUSED } conn_result;

/* Opens one authenticated connection.  CONN_REFUSED when Redis answered
 * but refused AUTH or SELECT (a configuration fault, not an outage).
 * With Sentinel the master is looked up first when not known, and a node
 * that is not (or no longer) the master is no connection. */
static conn_result open_one(rconn *c, redisContext **out, char *why, size_t whylen)
{
    const srvocsp__redis_url *u = &c->url;
    redisContext *ctx = NULL;
    redisReply *r = NULL;
    conn_result res = CONN_DOWN;
    char err[300];
    int rc;

    *out = NULL;
    if (u->kind == SRVOCSP__REDIS_UNIX) {
        ctx = srvocsp__redis_connect_unix(u->path, u->connect_timeout_ms, u->timeout_ms, why,
                                          whylen);
    } else if (u->kind == SRVOCSP__REDIS_TCP) {
        ctx = srvocsp__redis_connect_tcp(u->host, u->port, u->connect_timeout_ms, u->timeout_ms,
                                         why, whylen);
    } else {
        if (!c->have_master &&
            !(c->have_master = srvocsp__sentinel_master(u, &c->sentinel_next, &c->master, err,
                                                        sizeof(err)))) {
            srvocsp__fmt(why, whylen, "no master from the Sentinels: %s", err);
            return CONN_DOWN;
        }
        ctx = srvocsp__redis_connect_tcp(c->master.host, c->master.port, u->connect_timeout_ms,
                                         u->timeout_ms, err, sizeof(err));
        if (ctx == NULL)
            srvocsp__fmt(why, whylen, "master %s:%d: %s", c->master.host, c->master.port, err);
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
            srvocsp__fmt(why, whylen, "master %s:%d: %s", c->master.host, c->master.port, err);
            c->have_master = false;
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
static redisContext *cmd_locked(rconn *c, char *why, size_t whylen)
{
    char err[256];
    conn_result r;

    check_fork_locked(c);
    if (c->cmd != NULL)
        return c->cmd;
    if (srvocsp__system_monotonic_ms(NULL) < c->down_until_ms) {
        srvocsp__fmt(why, whylen, "%s", c->last_err);
        return NULL;
    }
    r = open_one(c, &c->cmd, err, sizeof(err));
    if (r != CONN_OK) {
        fail_locked(c, "unavailable", err);
        srvocsp__fmt(why, whylen, "%s", c->last_err);
        return NULL;
    }
    if (c->failures > 0 || !c->ever_connected)
        c->epoch++;
    c->ever_connected = true;
    c->failures = 0;
    c->lost_at_ms = 0;
    return c->cmd;
}

/* A reply that is NULL means the connection failed (timeout, reset). */
static redisReply *command_locked(rconn *c, int argc, const char **argv, const size_t *lens,
                                  char *why, size_t whylen)
{
    redisContext *ctx = cmd_locked(c, why, whylen);
    redisReply *r;

    if (ctx == NULL)
        return NULL;
    r = redisCommandArgv(ctx, argc, argv, lens);
    if (r == NULL) {
        fail_locked(c, argv[0], ctx->errstr[0] ? ctx->errstr : "no reply");
        srvocsp__fmt(why, whylen, "%s", c->last_err);
    } else if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "READONLY", 8) == 0) {
        /* A master demoted under us (it came back after a failover):
         * its data is a replica's now; find the master again. */
        fail_locked(c, argv[0], "the node is a replica now (READONLY)");
        srvocsp__fmt(why, whylen, "%s", c->last_err);
        freeReplyObject(r);
        r = NULL;
    }
    return r;
}

/* EVALSHA, or EVAL once when the server does not have the script (a
 * restarted or failed-over Redis forgets them). */
static redisReply *script_locked(rconn *c, int which, int nargs, const char **args,
                                 const size_t *lens, char *why, size_t whylen)
{
    const char *argv[12];
    size_t lv[12];
    redisReply *r;
    int i;

    argv[0] = "EVALSHA";
    lv[0] = 7;
    argv[1] = c->sha[which];
    lv[1] = 40;
    argv[2] = "1";
    lv[2] = 1;
    for (i = 0; i < nargs && i < 9; i++) {
        argv[3 + i] = args[i];
        lv[3 + i] = lens[i];
    }
    r = command_locked(c, 3 + i, argv, lv, why, whylen);
    if (r != NULL && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
        freeReplyObject(r);
        argv[0] = "EVAL";
        lv[0] = 4;
        argv[1] = g_scripts[which];
        lv[1] = strlen(g_scripts[which]);
        r = command_locked(c, 3 + i, argv, lv, why, whylen);
    }
    if (r != NULL && r->type == REDIS_REPLY_ERROR) {
        srvocsp__fmt(why, whylen, "%s: script refused: %.*s", c->display, (int)r->len, r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

static void key_of(const rconn *c, const char *name, char kind, char *out, size_t len)
{
    snprintf(out, len, "%s{%s}:%c", c->prefix, name, kind);
}

/* ---------------------------------------------------------------------
 * Store operations
 * ------------------------------------------------------------------- */

static srvocsp_error r_load(srvocsp__store *s, const char *name, size_t cap, unsigned char **der,
                            size_t *len, uint64_t *version, char *why, size_t whylen)
{
    rconn *c = (rconn *)s;
    char key[PREFIX_MAX + SRVOCSP__STORE_NAME_LEN + 8], capstr[24];
    const char *args[2] = {key, capstr};
    size_t lens[2];
    redisReply *r;
    srvocsp_error err = SRVOCSP_E_STORE;

    *der = NULL;
    *len = 0;
    *version = 0;
    key_of(c, name, 'r', key, sizeof(key));
    snprintf(capstr, sizeof(capstr), "%zu", cap);
    lens[0] = strlen(key);
    lens[1] = strlen(capstr);
    pthread_mutex_lock(&c->mu);
    r = script_locked(c, SCRIPT_LOAD, 2, args, lens, why, whylen);
    pthread_mutex_unlock(&c->mu);
    if (r == NULL)
        return SRVOCSP_E_STORE; /* |why| says it (down, or the value's type) */
    if (r->type == REDIS_REPLY_NIL) {
        err = SRVOCSP_OK; /* nothing stored */
    } else if (r->type == REDIS_REPLY_INTEGER) {
        srvocsp__fmt(why, whylen, "%s: %s holds %lld bytes, over the cap of %zu", c->display, key,
                     r->integer, cap);
    } else if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        srvocsp__fmt(why, whylen, "%s: unexpected reply to a load", c->display);
    } else if (r->element[0]->type == REDIS_REPLY_NIL) {
        err = SRVOCSP_OK; /* a hash without a response: nothing usable stored */
    } else if (r->element[0]->type != REDIS_REPLY_STRING || r->element[0]->len == 0 ||
               r->element[0]->len > cap) {
        srvocsp__fmt(why, whylen, "%s: %s holds an empty or oversized response", c->display, key);
    } else if ((*der = srvocsp__malloc(r->element[0]->len)) == NULL) {
        err = SRVOCSP_E_NOMEM;
        srvocsp__fmt(why, whylen, "out of memory");
    } else {
        memcpy(*der, r->element[0]->str, r->element[0]->len);
        *len = r->element[0]->len;
        *version = r->element[1]->type == REDIS_REPLY_STRING
                       ? strtoull(r->element[1]->str, NULL, 10)
                       : 1;
        if (*version == 0)
            *version = 1;
        err = SRVOCSP_OK;
    }
    freeReplyObject(r);
    return err;
}

static srvocsp_error r_save_newer(srvocsp__store *s, const char *name, const unsigned char *der,
                                  size_t len, int64_t this_update, int64_t expires, bool revoked,
                                  bool *stored, char *why, size_t whylen)
{
    rconn *c = (rconn *)s;
    char key[PREFIX_MAX + SRVOCSP__STORE_NAME_LEN + 8], tu[24], exp_ms[24],
        channel[PREFIX_MAX + 16], msg[SRVOCSP__STORE_NAME_LEN + SRVOCSP__LEASE_TOKEN_LEN + 4];
    const char *args[7];
    size_t lens[7];
    redisReply *r;
    srvocsp_error err = SRVOCSP_E_STORE;

    *stored = false;
    if (len == 0 || len > SRVOCSP__MAX_RESPONSE_CAP) {
        srvocsp__fmt(why, whylen, "response of %zu bytes not stored", len);
        return SRVOCSP_E_INVALID_ARG;
    }
    if (expires <= (int64_t)time(NULL))
        return SRVOCSP_OK; /* already over: nothing worth sharing */
    key_of(c, name, 'r', key, sizeof(key));
    snprintf(tu, sizeof(tu), "%lld", (long long)this_update);
    snprintf(exp_ms, sizeof(exp_ms), "%lld", (long long)expires * 1000);
    snprintf(channel, sizeof(channel), "%supdates", c->prefix);
    snprintf(msg, sizeof(msg), "%s %s", name, c->writer);
    args[0] = key;
    args[1] = (const char *)der;
    args[2] = tu;
    args[3] = revoked ? "r" : "g";
    args[4] = exp_ms;
    args[5] = channel;
    args[6] = msg;
    for (int i = 0; i < 7; i++)
        lens[i] = i == 1 ? len : strlen(args[i]);
    pthread_mutex_lock(&c->mu);
    r = script_locked(c, SCRIPT_SAVE, 7, args, lens, why, whylen);
    pthread_mutex_unlock(&c->mu);
    if (r != NULL) {
        if (r->type == REDIS_REPLY_INTEGER) {
            *stored = r->integer == 1;
            err = SRVOCSP_OK;
        } else {
            srvocsp__fmt(why, whylen, "%s: unexpected reply to the save script", c->display);
        }
        freeReplyObject(r);
    }
    return err;
}

/* Sentinel, after losing a master that worked: for failover_wait the
 * lease is "busy, look again in a second" rather than "unreachable".  A
 * failover takes the Sentinels a few seconds; saying unreachable would
 * make every machine fetch every certificate that falls due meanwhile (P
 * requests each), while waiting costs nothing: the engine keeps serving
 * what it holds, and one that must fetch (near MinValidity) fetches
 * whatever the lease says.  |*left_ms| when to look again. */
static bool failing_over_locked(const rconn *c, int64_t *left_ms)
{
    int64_t now = srvocsp__system_monotonic_ms(NULL), end = c->lost_at_ms + c->url.failover_wait_ms;

    if (c->url.kind != SRVOCSP__REDIS_SENTINEL || c->lost_at_ms == 0 || now >= end)
        return false;
    *left_ms = end - now < 1000 ? end - now : 1000;
    return true;
}

static srvocsp__lease r_lease_acquire(srvocsp__store *s, const char *name, uint32_t ttl_ms,
                                      char token[SRVOCSP__LEASE_TOKEN_LEN + 1],
                                      int64_t *ttl_left_ms, char *why, size_t whylen)
{
    rconn *c = (rconn *)s;
    char key[PREFIX_MAX + SRVOCSP__STORE_NAME_LEN + 8], ttl[16];
    const char *args[3] = {key, token, ttl};
    size_t lens[3], i;
    redisReply *r;
    srvocsp__lease res = SRVOCSP__LEASE_ERROR;

    *ttl_left_ms = -1;
    if (!random_hex(token)) {
        srvocsp__fmt(why, whylen, "no randomness for a lease token");
        return SRVOCSP__LEASE_ERROR;
    }
    key_of(c, name, 'l', key, sizeof(key));
    snprintf(ttl, sizeof(ttl), "%u", ttl_ms ? ttl_ms : 1);
    for (i = 0; i < 3; i++)
        lens[i] = strlen(args[i]);
    pthread_mutex_lock(&c->mu);
    r = script_locked(c, SCRIPT_LEASE, 3, args, lens, why, whylen);
    if (r == NULL && failing_over_locked(c, ttl_left_ms)) {
        res = SRVOCSP__LEASE_BUSY;
        srvocsp__fmt(why, whylen, "%s: waiting for the Sentinels' next master", c->display);
    }
    pthread_mutex_unlock(&c->mu);
    if (r != NULL && r->type == REDIS_REPLY_INTEGER) {
        if (r->integer == -2) {
            res = SRVOCSP__LEASE_HELD;
        } else {
            res = SRVOCSP__LEASE_BUSY;
            *ttl_left_ms = r->integer >= 0 ? r->integer : 0;
        }
    } else if (r != NULL) {
        srvocsp__fmt(why, whylen, "%s: unexpected reply to the lease script", c->display);
    }
    if (r)
        freeReplyObject(r);
    return res;
}

static void r_lease_release(srvocsp__store *s, const char *name, const char *token)
{
    rconn *c = (rconn *)s;
    char key[PREFIX_MAX + SRVOCSP__STORE_NAME_LEN + 8], why[256];
    const char *args[2] = {key, token};
    size_t lens[2];
    redisReply *r;

    key_of(c, name, 'l', key, sizeof(key));
    lens[0] = strlen(key);
    lens[1] = strlen(token);
    pthread_mutex_lock(&c->mu);
    r = script_locked(c, SCRIPT_RELEASE, 2, args, lens, why, sizeof(why));
    pthread_mutex_unlock(&c->mu);
    if (r)
        freeReplyObject(r);
}

static void r_discard(srvocsp__store *s, const char *name, const unsigned char *der, size_t len)
{
    rconn *c = (rconn *)s;
    char key[PREFIX_MAX + SRVOCSP__STORE_NAME_LEN + 8], sha[41], why[256];
    const char *args[2] = {key, sha};
    size_t lens[2];
    redisReply *r;

    key_of(c, name, 'r', key, sizeof(key));
    if (der != NULL)
        sha1_hex(der, len, sha);
    else
        snprintf(sha, sizeof(sha), "%zu", len); /* unreadable: |len| is the reader's cap */
    lens[0] = strlen(key);
    lens[1] = strlen(sha);
    pthread_mutex_lock(&c->mu);
    r = script_locked(c, der != NULL ? SCRIPT_DISCARD : SCRIPT_DISCARD_UNREADABLE, 2, args, lens,
                      why, sizeof(why));
    pthread_mutex_unlock(&c->mu);
    if (r)
        freeReplyObject(r);
}

/* Subscribes the second connection to the channel (under c->mu). */
static bool subscribe_locked(rconn *c)
{
    char channel[PREFIX_MAX + 16], err[256];
    redisReply *r = NULL;
    conn_result cr;

    check_fork_locked(c);
    if (c->sub != NULL)
        return true;
    if (srvocsp__system_monotonic_ms(NULL) < c->down_until_ms)
        return false;
    cr = open_one(c, &c->sub, err, sizeof(err));
    if (cr != CONN_OK) {
        fail_locked(c, "subscription", err);
        return false;
    }
    snprintf(channel, sizeof(channel), "%supdates", c->prefix);
    r = redisCommand(c->sub, "SUBSCRIBE %s", channel);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        fail_locked(c, "SUBSCRIBE", r == NULL ? c->sub->errstr : "unexpected reply");
        if (r)
            freeReplyObject(r);
        return false;
    }
    freeReplyObject(r);
    /* Messages published while we were away are lost: a reconnect moves
     * the epoch so the engine looks again at everything. */
    c->epoch++;
    return true;
}

static int r_notify_fd(srvocsp__store *s)
{
    rconn *c = (rconn *)s;
    int fd;

    pthread_mutex_lock(&c->mu);
    fd = subscribe_locked(c) ? c->sub->fd : -1;
    pthread_mutex_unlock(&c->mu);
    return fd;
}

/* ["message", channel, "<name> <writer> <DER>"] from another writer:
 * where the name and the bytes are (the bytes may be absent). */
static bool parse_message(const rconn *c, const redisReply *r, const char **der, size_t *len)
{
    const redisReply *m;
    size_t head = SRVOCSP__STORE_NAME_LEN + 1 + SRVOCSP__LEASE_TOKEN_LEN;

    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 || r->element[2]->type != REDIS_REPLY_STRING)
        return false;
    m = r->element[2];
    if (m->len < head || m->str[SRVOCSP__STORE_NAME_LEN] != ' ' ||
        strspn(m->str, "0123456789abcdef") < SRVOCSP__STORE_NAME_LEN ||
        memcmp(m->str + SRVOCSP__STORE_NAME_LEN + 1, c->writer, SRVOCSP__LEASE_TOKEN_LEN) == 0)
        return false;
    *der = NULL;
    *len = 0;
    if (m->len > head + 1 && m->str[head] == ' ') {
        *der = m->str + head + 1;
        *len = m->len - head - 1;
    }
    return true;
}

/* With Sentinel: reads the watch (called from the engine's loop, at
 * least once a second).  An announced failover points the store at the
 * new master at once: the backoff is forgotten, and the data connections
 * go (the old master may be alive but demoted, or frozen). */
static void follow_sentinel_locked(rconn *c)
{
    srvocsp__redis_addr to;

    check_fork_locked(c);
    if (c->url.kind != SRVOCSP__REDIS_SENTINEL ||
        !srvocsp__sentinel_watch_poll(&c->watch, &c->url, srvocsp__system_monotonic_ms(NULL), &to))
        return;
    drop_locked(c);
    c->master = to;
    c->have_master = true;
    c->down_until_ms = 0;
    c->failures = 0;
    c->epoch++; /* the promoted replica may lack the last saves */
}

#define DRAIN_BATCH 64

/* The most bytes of one incomplete announcement kept (name, writer, DER). */
#define SUB_PENDING_MAX (SRVOCSP__MAX_RESPONSE_CAP + 4096u)

static size_t r_notify_drain(srvocsp__store *s, srvocsp__notify_fn fn, void *arg)
{
    rconn *c = (rconn *)s;
    redisReply *batch[DRAIN_BATCH];
    size_t n, total = 0, i;
    bool more = true;

    pthread_mutex_lock(&c->mu);
    follow_sentinel_locked(c);
    pthread_mutex_unlock(&c->mu);
    /* A batch at a time, reported without the lock held (|fn| may call
     * back into the store).  hiredis buffers a bulk string of any length
     * until it is whole: anyone who may PUBLISH could make every machine
     * hold hundreds of MB, so one announcement is cut at the largest
     * response we ever accept. */
    while (more) {
        n = 0;
        pthread_mutex_lock(&c->mu);
        if (!subscribe_locked(c)) {
            pthread_mutex_unlock(&c->mu);
            break;
        }
        while (n < DRAIN_BATCH) {
            char why[256];
            int rc = srvocsp__redis_sub_next(c->sub, SUB_PENDING_MAX, &c->hb, &batch[n], why,
                                             sizeof(why));

            if (rc == 1) {
                n++;
                continue;
            }
            if (rc < 0)
                fail_locked(c, "subscription", why);
            else if (!srvocsp__redis_sub_ping(c->sub, &c->hb, c->url.ping_interval_ms,
                                              srvocsp__system_monotonic_ms(NULL), why,
                                              sizeof(why)))
                fail_locked(c, "subscription", why); /* half-open, or the server froze */
            more = false;
            break;
        }
        pthread_mutex_unlock(&c->mu);
        for (i = 0; i < n; i++) {
            const char *der;
            size_t len;

            if (parse_message(c, batch[i], &der, &len)) {
                char name[SRVOCSP__STORE_NAME_LEN + 1];

                memcpy(name, batch[i]->element[2]->str, SRVOCSP__STORE_NAME_LEN);
                name[SRVOCSP__STORE_NAME_LEN] = '\0';
                if (fn)
                    fn(arg, name, (const unsigned char *)der, len);
                total++;
            }
            freeReplyObject(batch[i]);
        }
        if (n < DRAIN_BATCH)
            more = false;
    }
    return total;
}

static uint64_t r_epoch(srvocsp__store *s)
{
    rconn *c = (rconn *)s;
    uint64_t e;

    pthread_mutex_lock(&c->mu);
    e = c->epoch;
    pthread_mutex_unlock(&c->mu);
    return e;
}

static void conn_free(rconn *c)
{
    drop_locked(c);
    srvocsp__sentinel_watch_close(&c->watch);
    pthread_mutex_destroy(&c->mu);
    OPENSSL_cleanse(&c->url, sizeof(c->url));
    free(c->url_text);
    free(c);
}

static void r_free(srvocsp__store *s)
{
    rconn *c = (rconn *)s, **pp;

    if (c == NULL)
        return;
    pthread_mutex_lock(&g_mu);
    if (--c->refs > 0) {
        pthread_mutex_unlock(&g_mu);
        return;
    }
    for (pp = &g_conns; *pp != NULL; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    pthread_mutex_unlock(&g_mu);
    conn_free(c);
}

static const srvocsp__store_ops redis_ops = {
    .load = r_load,
    .free = r_free,
    .lease_acquire = r_lease_acquire,
    .lease_release = r_lease_release,
    .save_newer = r_save_newer,
    .notify_fd = r_notify_fd,
    .notify_drain = r_notify_drain,
    .discard = r_discard,
    .epoch = r_epoch,
};

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
        snprintf(full, sizeof(full), "redis://%s%s%.255s%s:%d/%d", auth, v6 ? "[" : "",
                 u->host, v6 ? "]" : "", u->port, u->db);
    /* Cut to the caller's buffer: this is a message, never used to connect. */
    k = strlen(full);
    if (len == 0)
        return;
    if (k >= len)
        k = len - 1;
    memcpy(out, full, k);
    out[k] = '\0';
}

srvocsp__store *srvocsp__store_redis_new(const char *url, const char *prefix)
{
    rconn *c = NULL, *it;
    char why[300], err[256];
    conn_result cr;
    int i;

    if (prefix == NULL)
        prefix = "srvocsp:";
    if (strlen(prefix) > PREFIX_MAX || strpbrk(prefix, "{} \r\n") != NULL) {
        srvocsp__set_error(SRVOCSP_E_INVALID_ARG,
                           "store key prefix longer than %d bytes or holding {, }, space or a newline",
                           PREFIX_MAX);
        return NULL;
    }
    c = srvocsp__calloc(1, sizeof(*c));
    if (c == NULL) {
        srvocsp__set_error(SRVOCSP_E_NOMEM, NULL);
        return NULL;
    }
    if (!srvocsp__redis_url_parse(url, &c->url, why, sizeof(why))) {
        srvocsp__set_error(SRVOCSP_E_INVALID_ARG, "store URL: %s", why);
        free(c);
        return NULL;
    }
    pthread_mutex_lock(&g_mu);
    for (it = g_conns; it != NULL; it = it->next)
        if (strcmp(it->url_text, url) == 0 && strcmp(it->prefix, prefix) == 0)
            break;
    if (it != NULL) {
        it->refs++;
        pthread_mutex_unlock(&g_mu);
        OPENSSL_cleanse(&c->url, sizeof(c->url));
        free(c);
        return &it->base;
    }
    pthread_mutex_unlock(&g_mu);

    c->base.ops = &redis_ops;
    c->refs = 1;
    c->pid = getpid();
    snprintf(c->prefix, sizeof(c->prefix), "%s", prefix);
    display_of(&c->url, c->display, sizeof(c->display));
    for (i = 0; i < SCRIPT_N; i++)
        sha1_hex(g_scripts[i], strlen(g_scripts[i]), c->sha[i]);
    pthread_mutex_init(&c->mu, NULL);
    if ((c->url_text = srvocsp__strdup(url)) == NULL || !random_hex(c->writer)) {
        conn_free(c);
        srvocsp__set_error(SRVOCSP_E_NOMEM, NULL);
        return NULL;
    }
    /* Connect now, so that a refused password shows at open.  Redis not
     * answering is no error: the engine serves from the responders. */
    cr = open_one(c, &c->cmd, err, sizeof(err));
    if (cr == CONN_REFUSED) {
        srvocsp__set_error(SRVOCSP_E_STORE, "store %s: %s", c->display, err);
        conn_free(c);
        return NULL;
    }
    if (cr == CONN_OK) {
        c->ever_connected = true;
        c->epoch = 1;
    } else {
        fail_locked(c, "unavailable", err);
    }

    pthread_mutex_lock(&g_mu);
    for (it = g_conns; it != NULL; it = it->next) /* another thread was quicker */
        if (strcmp(it->url_text, url) == 0 && strcmp(it->prefix, prefix) == 0)
            break;
    if (it != NULL) {
        it->refs++;
        pthread_mutex_unlock(&g_mu);
        conn_free(c);
        return &it->base;
    }
    c->next = g_conns;
    g_conns = c;
    pthread_mutex_unlock(&g_mu);
    return &c->base;
}

const char *srvocsp__store_redis_display(srvocsp__store *s)
{
    return s != NULL && s->ops == &redis_ops ? ((rconn *)s)->display : NULL;
}
