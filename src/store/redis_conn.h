/*
 * The Redis store's link to Redis: a command connection and a
 * subscription, reconnected after a backoff, found through Sentinel when
 * the URL says so, and dropped by a forked child.  store_redis.c speaks
 * the store's protocol over it; this file and redis_conn.c only keep it
 * up.  Everything is under |mu|, which the caller holds around each call
 * named _locked and around its own use of |cmd| and |sub|.
 */
#ifndef SRVOCSP_REDIS_CONN_H
#define SRVOCSP_REDIS_CONN_H

#include "store/redis_sock.h"
#include "store/redis_url.h"
#include "store/sentinel.h"

#include <pthread.h>
#include <sys/types.h>

typedef struct srvocsp__redis_link {
    srvocsp__redis_url url;
    char display[300];             /* the URL without its password, for messages */
    pthread_mutex_t mu;            /* everything below */
    pid_t pid;                     /* the process the sockets belong to */
    redisContext *cmd;
    redisContext *sub;
    srvocsp__redis_heartbeat hb;   /* the subscription's PING */
    srvocsp__redis_addr master;    /* Sentinel: where the master was found */
    bool have_master;              /* ... until the next failure */
    unsigned sentinel_next;        /* the Sentinel asked first */
    srvocsp__sentinel_watch watch; /* +switch-master, on the engine's loop */
    int64_t down_until_ms;         /* monotonic: no attempt before this */
    int64_t lost_at_ms;            /* monotonic: a working connection was lost, 0 none */
    unsigned failures;             /* in a row, for the backoff */
    uint64_t epoch;                /* moves on each reconnect after a loss */
    bool ever_connected;
    char last_err[512];
} srvocsp__redis_link;

/* Parses |url| into |l| and readies it, without connecting.  false with
 * |why| naming the URL's fault (the password never in it). */
SRVOCSP__HIDDEN bool srvocsp__link_init(srvocsp__redis_link *l, const char *url, char *why,
                                       size_t whylen);
/* Connects the command connection now, so a refused password shows at
 * open: 1 connected, 0 not reachable (no error: tried again after the
 * backoff), -1 refused (AUTH, SELECT: |why| says it). */
SRVOCSP__HIDDEN int srvocsp__link_connect_first(srvocsp__redis_link *l, char *why, size_t whylen);
/* Closes every connection and forgets the URL's secrets. */
SRVOCSP__HIDDEN void srvocsp__link_destroy(srvocsp__redis_link *l);

/* One command on the command connection, connecting when allowed.  NULL
 * with |why| when Redis is down, backing off, or the command failed (then
 * the link backs off); an error reply is returned as a reply, except
 * READONLY (a master demoted under us), which counts as a failure. */
SRVOCSP__HIDDEN redisReply *srvocsp__link_command_locked(srvocsp__redis_link *l, int argc,
                                                        const char **argv, const size_t *lens,
                                                        char *why, size_t whylen);
/* The subscription to |channel|, connecting when allowed: false while
 * Redis is down or backing off. */
SRVOCSP__HIDDEN bool srvocsp__link_subscribe_locked(srvocsp__redis_link *l, const char *channel);
/* Records a failure: both connections go, nothing is tried for the
 * backoff (1 s doubling to 8 s); with Sentinel the master is asked for
 * again. */
SRVOCSP__HIDDEN void srvocsp__link_fail_locked(srvocsp__redis_link *l, const char *what,
                                              const char *detail);
/* With Sentinel: reads the +switch-master watch and, when a failover was
 * announced, points the link at the new master at once. */
SRVOCSP__HIDDEN void srvocsp__link_follow_sentinel_locked(srvocsp__redis_link *l);
/* With Sentinel, within failover_wait of losing a master that worked:
 * true, with |*left_ms| when to look again. */
SRVOCSP__HIDDEN bool srvocsp__link_failing_over_locked(const srvocsp__redis_link *l,
                                                      int64_t *left_ms);

#endif
