/* Redis Sentinel: which node is the master now, and word when it changes
 * (docs/fleet.md, "Sentinel").  Used by the Redis store's connection
 * layer; everything here is bounded by the URL's timeouts. */
#ifndef SRVOCSP_SENTINEL_H
#define SRVOCSP_SENTINEL_H

#include "store/redis_sock.h"
#include "store/redis_url.h"

/* Asks the Sentinels of |u| in turn, starting with |*next|, for the
 * address of u->master (SENTINEL get-master-addr-by-name).  true with
 * |*out|, and |*next| the Sentinel that answered (asked first next time);
 * false with |why| (what the last Sentinel asked said) when none knows
 * the master.  Each Sentinel costs at most the connect timeout plus two
 * command timeouts. */
SRVOCSP__HIDDEN bool srvocsp__sentinel_master(const srvocsp__redis_url *u, unsigned *next,
                                             srvocsp__redis_addr *out, char *why, size_t whylen);

/* Whether the node on |ctx| is a master (ROLE): 1 yes, 0 no (|why| says
 * what it is), -1 the connection failed. */
SRVOCSP__HIDDEN int srvocsp__sentinel_is_master(redisContext *ctx, char *why, size_t whylen);

/* A subscription to one Sentinel's +switch-master announcements. */
typedef struct srvocsp__sentinel_watch {
    redisContext *ctx;
    unsigned next;                 /* the Sentinel to try next */
    int64_t retry_at_ms;           /* monotonic: no connect before */
    unsigned failures;             /* in a row, for the backoff */
    srvocsp__redis_heartbeat hb;
    char last_err[256];
} srvocsp__sentinel_watch;

/* Keeps |w| subscribed (connecting when due, at most one Sentinel per
 * call), PINGs it, and reads what arrived, without waiting beyond the
 * URL's timeouts.  true when a failover of u->master was announced, with
 * |*to| the new master.  Not thread-safe: the caller serialises. */
SRVOCSP__HIDDEN bool srvocsp__sentinel_watch_poll(srvocsp__sentinel_watch *w,
                                                 const srvocsp__redis_url *u, int64_t now_ms,
                                                 srvocsp__redis_addr *to);
/* Drops the subscription (after fork: without a word on the socket). */
SRVOCSP__HIDDEN void srvocsp__sentinel_watch_close(srvocsp__sentinel_watch *w);

#endif
