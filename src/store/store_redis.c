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
 * answer.  The scripts decide nothing: the save sets the value only if it
 * still holds the bytes (their SHA-1) the writer judged with the verdict
 * (engine/fleet.c), and a lease is released only by its holder.
 *
 * The connections, their timeouts, backoff, liveness and Sentinel are
 * redis_conn.c's; every call here is one bounded command on them, made by
 * whichever thread asks (the engine thread, or an opener) under the
 * link's mutex.  The subscription's socket is polled by the engine with
 * its own; notify_drain reads it without blocking.
 *
 * One connection pair per URL and prefix per process, shared by every
 * certificate (reference counted).
 */
#include "store/store.h"
#include "store/redis_conn.h"

#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#define PREFIX_MAX 128

/* Compare and set: the value is replaced only if its bytes are still
 * those the caller judged (ARGV[7], their SHA-1 in hex; '' for nothing or
 * a value of another type, which is garbage).  The rule that decides
 * whether a response may replace another is not here: it is the C side's
 * one verdict, so the fleet can never decide otherwise than a process.
 * KEYS[1] value; ARGV: der, thisUpdate, status, expiry (Unix ms), channel,
 * message, expected SHA-1. */
static const char SAVE_LUA[] =
    "local ty = redis.call('TYPE', KEYS[1]).ok\n"
    "local cur = ''\n"
    "if ty == 'hash' then\n"
    "  local d = redis.call('HGET', KEYS[1], 'd')\n"
    "  if d then cur = redis.sha1hex(d) end\n"
    "end\n"
    "if cur ~= ARGV[7] then return 0 end\n"
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
    char sha[SCRIPT_N][41];
    char writer[SRVOCSP__LEASE_TOKEN_LEN + 1]; /* who published, to skip our own */
    pid_t writer_pid;            /* the process |writer| is for, under link.mu */
    srvocsp__redis_link link;    /* the connections, under link.mu */
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
    r = srvocsp__link_command_locked(&c->link, 3 + i, argv, lv, why, whylen);
    if (r != NULL && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
        freeReplyObject(r);
        argv[0] = "EVAL";
        lv[0] = 4;
        argv[1] = g_scripts[which];
        lv[1] = strlen(g_scripts[which]);
        r = srvocsp__link_command_locked(&c->link, 3 + i, argv, lv, why, whylen);
    }
    if (r != NULL && r->type == REDIS_REPLY_ERROR) {
        srvocsp__fmt(why, whylen, "%s: script refused: %.*s", c->link.display, (int)r->len, r->str);
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
    pthread_mutex_lock(&c->link.mu);
    r = script_locked(c, SCRIPT_LOAD, 2, args, lens, why, whylen);
    pthread_mutex_unlock(&c->link.mu);
    if (r == NULL)
        return SRVOCSP_E_STORE; /* |why| says it (down, or the value's type) */
    if (r->type == REDIS_REPLY_NIL) {
        err = SRVOCSP_OK; /* nothing stored */
    } else if (r->type == REDIS_REPLY_INTEGER) {
        srvocsp__fmt(why, whylen, "%s: %s holds %lld bytes, over the cap of %zu", c->link.display,
                     key, r->integer, cap);
    } else if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        srvocsp__fmt(why, whylen, "%s: unexpected reply to a load", c->link.display);
    } else if (r->element[0]->type == REDIS_REPLY_NIL) {
        err = SRVOCSP_OK; /* a hash without a response: nothing usable stored */
    } else if (r->element[0]->type != REDIS_REPLY_STRING || r->element[0]->len == 0 ||
               r->element[0]->len > cap) {
        srvocsp__fmt(why, whylen, "%s: %s holds an empty or oversized response", c->link.display,
                     key);
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

/* A forked child speaks as a writer of its own: with its parent's id it
 * would skip its parent's and its siblings' announcements as its own
 * (forked workers sharing a store).  Under c->link.mu. */
static void own_writer_locked(rconn *c)
{
    if (c->writer_pid == getpid())
        return;
    c->writer_pid = getpid();
    if (!random_hex(c->writer)) /* keep its length: the pid makes it ours */
        snprintf(c->writer + SRVOCSP__LEASE_TOKEN_LEN - 8, 9, "%08x", (unsigned)getpid());
}

static srvocsp_error r_save_if(srvocsp__store *s, const char *name, const unsigned char *der,
                               size_t len, int64_t this_update, int64_t expires, bool revoked,
                               const char *expect, bool *stored, char *why, size_t whylen)
{
    rconn *c = (rconn *)s;
    char key[PREFIX_MAX + SRVOCSP__STORE_NAME_LEN + 8], tu[24], exp_ms[24],
        channel[PREFIX_MAX + 16], msg[SRVOCSP__STORE_NAME_LEN + SRVOCSP__LEASE_TOKEN_LEN + 4];
    const char *args[8];
    size_t lens[8];
    redisReply *r;
    srvocsp_error err = SRVOCSP_E_STORE;

    *stored = false;
    if (len == 0 || len > SRVOCSP__MAX_RESPONSE_CAP) {
        srvocsp__fmt(why, whylen, "response of %zu bytes not stored", len);
        return SRVOCSP_E_INVALID_ARG;
    }
    if (expect != NULL && strlen(expect) != 40) {
        srvocsp__fmt(why, whylen, "expected value is not a SHA-1 in hex");
        return SRVOCSP_E_INVALID_ARG;
    }
    if (expires <= (int64_t)time(NULL))
        return SRVOCSP_OK; /* already over: nothing worth sharing */
    key_of(c, name, 'r', key, sizeof(key));
    snprintf(tu, sizeof(tu), "%lld", (long long)this_update);
    snprintf(exp_ms, sizeof(exp_ms), "%lld", (long long)expires * 1000);
    snprintf(channel, sizeof(channel), "%supdates", c->prefix);
    args[0] = key;
    args[1] = (const char *)der;
    args[2] = tu;
    args[3] = revoked ? "r" : "g";
    args[4] = exp_ms;
    args[5] = channel;
    msg[0] = '\0'; /* written under the lock, as this process's writer */
    args[6] = msg;
    args[7] = expect != NULL ? expect : "";
    for (int i = 0; i < 8; i++)
        lens[i] = i == 1 ? len : strlen(args[i]);
    pthread_mutex_lock(&c->link.mu);
    own_writer_locked(c);
    snprintf(msg, sizeof(msg), "%s %s", name, c->writer);
    lens[6] = strlen(msg);
    r = script_locked(c, SCRIPT_SAVE, 8, args, lens, why, whylen);
    pthread_mutex_unlock(&c->link.mu);
    if (r != NULL) {
        if (r->type == REDIS_REPLY_INTEGER) {
            *stored = r->integer == 1;
            err = SRVOCSP_OK;
        } else {
            srvocsp__fmt(why, whylen, "%s: unexpected reply to the save script", c->link.display);
        }
        freeReplyObject(r);
    }
    return err;
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
    pthread_mutex_lock(&c->link.mu);
    r = script_locked(c, SCRIPT_LEASE, 3, args, lens, why, whylen);
    if (r == NULL && srvocsp__link_failing_over_locked(&c->link, ttl_left_ms)) {
        res = SRVOCSP__LEASE_BUSY;
        srvocsp__fmt(why, whylen, "%s: waiting for the Sentinels' next master", c->link.display);
    }
    pthread_mutex_unlock(&c->link.mu);
    if (r != NULL && r->type == REDIS_REPLY_INTEGER) {
        if (r->integer == -2) {
            res = SRVOCSP__LEASE_HELD;
        } else {
            res = SRVOCSP__LEASE_BUSY;
            *ttl_left_ms = r->integer >= 0 ? r->integer : 0;
        }
    } else if (r != NULL) {
        srvocsp__fmt(why, whylen, "%s: unexpected reply to the lease script", c->link.display);
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
    pthread_mutex_lock(&c->link.mu);
    r = script_locked(c, SCRIPT_RELEASE, 2, args, lens, why, sizeof(why));
    pthread_mutex_unlock(&c->link.mu);
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
    pthread_mutex_lock(&c->link.mu);
    r = script_locked(c, der != NULL ? SCRIPT_DISCARD : SCRIPT_DISCARD_UNREADABLE, 2, args, lens,
                      why, sizeof(why));
    pthread_mutex_unlock(&c->link.mu);
    if (r)
        freeReplyObject(r);
}

static int r_notify_fd(srvocsp__store *s)
{
    rconn *c = (rconn *)s;
    char channel[PREFIX_MAX + 16];
    int fd;

    snprintf(channel, sizeof(channel), "%supdates", c->prefix);
    pthread_mutex_lock(&c->link.mu);
    fd = srvocsp__link_subscribe_locked(&c->link, channel) ? c->link.sub->fd : -1;
    pthread_mutex_unlock(&c->link.mu);
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

#define DRAIN_BATCH 64

/* The most bytes of one incomplete announcement kept (name, writer, DER). */
#define SUB_PENDING_MAX (SRVOCSP__MAX_RESPONSE_CAP + 4096u)

static size_t r_notify_drain(srvocsp__store *s, srvocsp__notify_fn fn, void *arg)
{
    rconn *c = (rconn *)s;
    redisReply *batch[DRAIN_BATCH];
    char channel[PREFIX_MAX + 16];
    size_t n, total = 0, i;
    bool more = true;

    snprintf(channel, sizeof(channel), "%supdates", c->prefix);
    pthread_mutex_lock(&c->link.mu);
    own_writer_locked(c);
    srvocsp__link_follow_sentinel_locked(&c->link);
    pthread_mutex_unlock(&c->link.mu);
    /* A batch at a time, reported without the lock held (|fn| may call
     * back into the store).  hiredis buffers a bulk string of any length
     * until it is whole: anyone who may PUBLISH could make every machine
     * hold hundreds of MB, so one announcement is cut at the largest
     * response we ever accept. */
    while (more) {
        n = 0;
        pthread_mutex_lock(&c->link.mu);
        if (!srvocsp__link_subscribe_locked(&c->link, channel)) {
            pthread_mutex_unlock(&c->link.mu);
            break;
        }
        while (n < DRAIN_BATCH) {
            char why[256];
            int rc = srvocsp__redis_sub_next(c->link.sub, SUB_PENDING_MAX, &c->link.hb, &batch[n],
                                             why, sizeof(why));

            if (rc == 1) {
                n++;
                continue;
            }
            if (rc < 0)
                srvocsp__link_fail_locked(&c->link, "subscription", why);
            else if (!srvocsp__redis_sub_ping(c->link.sub, &c->link.hb,
                                              c->link.url.ping_interval_ms,
                                              srvocsp__system_monotonic_ms(NULL), why, sizeof(why)))
                srvocsp__link_fail_locked(&c->link, "subscription", why); /* half-open, or frozen */
            more = false;
            break;
        }
        pthread_mutex_unlock(&c->link.mu);
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

    pthread_mutex_lock(&c->link.mu);
    e = c->link.epoch;
    pthread_mutex_unlock(&c->link.mu);
    return e;
}

static void conn_free(rconn *c)
{
    srvocsp__link_destroy(&c->link);
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
    .save_if = r_save_if,
    .notify_fd = r_notify_fd,
    .notify_drain = r_notify_drain,
    .discard = r_discard,
    .epoch = r_epoch,
};

srvocsp__store *srvocsp__store_redis_new(const char *url, const char *prefix)
{
    rconn *c = NULL, *it;
    char why[300];
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
    if (!srvocsp__link_init(&c->link, url, why, sizeof(why))) {
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
        srvocsp__link_destroy(&c->link);
        free(c);
        return &it->base;
    }
    pthread_mutex_unlock(&g_mu);

    c->base.ops = &redis_ops;
    c->refs = 1;
    snprintf(c->prefix, sizeof(c->prefix), "%s", prefix);
    for (i = 0; i < SCRIPT_N; i++)
        sha1_hex(g_scripts[i], strlen(g_scripts[i]), c->sha[i]);
    c->writer_pid = getpid();
    if ((c->url_text = srvocsp__strdup(url)) == NULL || !random_hex(c->writer)) {
        conn_free(c);
        srvocsp__set_error(SRVOCSP_E_NOMEM, NULL);
        return NULL;
    }
    /* Connect now, so that a refused password shows at open.  Redis not
     * answering is no error: the engine serves from the responders. */
    if (srvocsp__link_connect_first(&c->link, why, sizeof(why)) < 0) {
        srvocsp__set_error(SRVOCSP_E_STORE, "store %s: %s", c->link.display, why);
        conn_free(c);
        return NULL;
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
