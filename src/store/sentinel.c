/*
 * Redis Sentinel, the client side that Redis documents ("Guidelines for
 * Redis clients with support for Redis Sentinel"): ask the Sentinels in
 * turn for the master's address, check with ROLE that the node there
 * really is a master (a Sentinel may still name a demoted one), and
 * listen on one Sentinel for +switch-master so a failover is noticed when
 * it happens rather than at the next failed command.
 *
 * A Sentinel is trusted with addresses only.  The data it leads us to is
 * read like any other Redis's: verified, never believed.
 */
#include "store/sentinel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The most bytes of one pending Sentinel message: +switch-master carries
 * a name and two addresses. */
#define WATCH_PENDING_MAX 4096
#define WATCH_RETRY_MS 1000 /* doubling to WATCH_RETRY_MAX_MS while it fails */
#define WATCH_RETRY_MAX_MS 8000

static redisContext *sentinel_connect(const srvocsp__redis_url *u, unsigned i, char *why,
                                      size_t whylen)
{
    const srvocsp__redis_addr *s = &u->sentinels[i % u->n_sentinels];
    redisContext *ctx;
    char err[256];

    ctx = srvocsp__redis_connect_tcp(s->host, s->port, u->connect_timeout_ms, u->timeout_ms, err,
                                     sizeof(err));
    if (ctx != NULL &&
        srvocsp__redis_auth(ctx, u->sentinel_user, u->sentinel_password, err, sizeof(err)) != 0) {
        redisFree(ctx);
        ctx = NULL;
    }
    if (ctx == NULL)
        srvocsp__fmt(why, whylen, "Sentinel %s:%d: %s", s->host, s->port, err);
    return ctx;
}

bool srvocsp__sentinel_master(const srvocsp__redis_url *u, unsigned *next, srvocsp__redis_addr *out,
                              char *why, size_t whylen)
{
    unsigned k;

    for (k = 0; k < u->n_sentinels; k++) {
        unsigned i = (*next + k) % u->n_sentinels;
        const srvocsp__redis_addr *s = &u->sentinels[i];
        redisContext *ctx = sentinel_connect(u, i, why, whylen);
        redisReply *r;
        long port;
        char *end;

        if (ctx == NULL)
            continue;
        r = redisCommand(ctx, "SENTINEL get-master-addr-by-name %s", u->master);
        if (r == NULL) {
            srvocsp__fmt(why, whylen, "Sentinel %s:%d: %s", s->host, s->port, ctx->errstr);
        } else if (r->type == REDIS_REPLY_NIL) {
            srvocsp__fmt(why, whylen, "Sentinel %s:%d does not know a master named \"%s\"", s->host,
                         s->port, u->master);
        } else if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
                   r->element[0]->type != REDIS_REPLY_STRING ||
                   r->element[1]->type != REDIS_REPLY_STRING ||
                   r->element[0]->len >= sizeof(out->host) || r->element[0]->len == 0 ||
                   (port = strtol(r->element[1]->str, &end, 10)) < 1 || port > 65535 || *end) {
            srvocsp__fmt(why, whylen, "Sentinel %s:%d: unexpected answer for \"%s\"%s%.*s", s->host,
                         s->port, u->master, r->type == REDIS_REPLY_ERROR ? ": " : "",
                         r->type == REDIS_REPLY_ERROR ? (int)r->len : 0,
                         r->type == REDIS_REPLY_ERROR ? r->str : "");
        } else {
            memcpy(out->host, r->element[0]->str, r->element[0]->len);
            out->host[r->element[0]->len] = '\0';
            out->port = (int)port;
            *next = i;
            freeReplyObject(r);
            redisFree(ctx);
            return true;
        }
        if (r)
            freeReplyObject(r);
        redisFree(ctx);
    }
    *next = (*next + 1) % (u->n_sentinels ? u->n_sentinels : 1);
    return false;
}

int srvocsp__sentinel_is_master(redisContext *ctx, char *why, size_t whylen)
{
    redisReply *r = redisCommand(ctx, "ROLE");
    int res = 0;

    if (r == NULL) {
        srvocsp__fmt(why, whylen, "ROLE: %s", ctx->errstr);
        return -1;
    }
    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
        r->element[0]->type == REDIS_REPLY_STRING && r->element[0]->len == 6 &&
        memcmp(r->element[0]->str, "master", 6) == 0)
        res = 1;
    else if (r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
             r->element[0]->type == REDIS_REPLY_STRING)
        srvocsp__fmt(why, whylen, "the node is a %.*s, not the master (a failover under way)",
                     (int)(r->element[0]->len > 16 ? 16 : r->element[0]->len), r->element[0]->str);
    else
        srvocsp__fmt(why, whylen, "unexpected answer to ROLE");
    freeReplyObject(r);
    return res;
}

void srvocsp__sentinel_watch_close(srvocsp__sentinel_watch *w)
{
    if (w->ctx != NULL)
        redisFree(w->ctx);
    w->ctx = NULL;
    memset(&w->hb, 0, sizeof(w->hb));
}

/* The next Sentinel is tried after a backoff: Sentinels that swallow
 * connections would otherwise cost the engine's loop a connect timeout
 * every second. */
static void watch_fail(srvocsp__sentinel_watch *w, int64_t now_ms, const char *what)
{
    int64_t wait = WATCH_RETRY_MS;
    unsigned i;

    for (i = 0; i < w->failures && wait < WATCH_RETRY_MAX_MS; i++)
        wait *= 2;
    snprintf(w->last_err, sizeof(w->last_err), "%s", what);
    srvocsp__sentinel_watch_close(w);
    w->next++; /* the next Sentinel, in case this one is the fault */
    w->failures++;
    w->retry_at_ms = now_ms + (wait < WATCH_RETRY_MAX_MS ? wait : WATCH_RETRY_MAX_MS);
}

/* "+switch-master" "<name> <old ip> <old port> <new ip> <new port>" for
 * our master: its new address. */
static bool switch_of(const redisReply *r, const char *master, srvocsp__redis_addr *to)
{
    char name[256], host[SRVOCSP__REDIS_HOST_MAX], fmt[64], text[1024];
    const redisReply *m;
    int port;

    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[0]->len != 7 ||
        memcmp(r->element[0]->str, "message", 7) != 0 || r->element[2]->type != REDIS_REPLY_STRING)
        return false;
    m = r->element[2];
    if (m->len >= sizeof(text))
        return false;
    memcpy(text, m->str, m->len);
    text[m->len] = '\0';
    snprintf(fmt, sizeof(fmt), "%%%zus %%*s %%*d %%%zus %%d", sizeof(name) - 1, sizeof(host) - 1);
    if (sscanf(text, fmt, name, host, &port) != 3 || strcmp(name, master) != 0 || port < 1 ||
        port > 65535)
        return false;
    snprintf(to->host, sizeof(to->host), "%s", host);
    to->port = port;
    return true;
}

bool srvocsp__sentinel_watch_poll(srvocsp__sentinel_watch *w, const srvocsp__redis_url *u,
                                  int64_t now_ms, srvocsp__redis_addr *to)
{
    char why[256];
    redisReply *r;
    bool switched = false;
    int rc;

    if (u->kind != SRVOCSP__REDIS_SENTINEL || u->n_sentinels == 0)
        return false;
    if (w->ctx == NULL) {
        if (now_ms < w->retry_at_ms)
            return false;
        w->ctx = sentinel_connect(u, w->next, why, sizeof(why));
        if (w->ctx == NULL) {
            watch_fail(w, now_ms, why);
            return false;
        }
        r = redisCommand(w->ctx, "SUBSCRIBE +switch-master");
        if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
            watch_fail(w, now_ms, "SUBSCRIBE +switch-master refused or unanswered");
            if (r)
                freeReplyObject(r);
            return false;
        }
        freeReplyObject(r);
        w->hb.last_ms = now_ms;
        w->failures = 0;
    }
    while ((rc = srvocsp__redis_sub_next(w->ctx, WATCH_PENDING_MAX, &w->hb, &r, why,
                                         sizeof(why))) == 1) {
        switched |= switch_of(r, u->master, to);
        freeReplyObject(r);
    }
    if (rc < 0 ||
        !srvocsp__redis_sub_ping(w->ctx, &w->hb, u->ping_interval_ms, now_ms, why, sizeof(why)))
        watch_fail(w, now_ms, why);
    return switched;
}
