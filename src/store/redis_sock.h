/* Connections to Redis and Sentinel that never wait longer than asked:
 * name resolution, connect and every command are bounded, and a TCP peer
 * that vanishes is noticed by keepalive. */
#ifndef SRVOCSP_REDIS_SOCK_H
#define SRVOCSP_REDIS_SOCK_H

#include "internal.h"

#include <hiredis/hiredis.h>

/* TCP keepalive on every TCP connection: the first probe after this much
 * silence, then one every KEEPALIVE_INTVL seconds, dead after KEEPALIVE_CNT
 * unanswered; data left unacknowledged as long also ends the connection.
 * A peer that vanished (host down, state dropped by a firewall or a NAT)
 * is noticed within 10 + 5 * 3 = 25 s at most even on an idle connection. */
#define SRVOCSP__KEEPALIVE_IDLE_S 10
#define SRVOCSP__KEEPALIVE_INTVL_S 5
#define SRVOCSP__KEEPALIVE_CNT 3

/* Connects to |host|:|port| within |connect_timeout_ms| all told:
 * resolution runs on a helper thread the caller stops waiting for at the
 * deadline (a hung resolver costs the caller the bound, not the
 * resolver's own time), then each address is tried with what is left.
 * The context is blocking, with |timeout_ms| on every read and write,
 * TCP_NODELAY and the keepalive above.  NULL with |why| on failure; the
 * caller frees the context with redisFree.  Thread-safe. */
SRVOCSP__HIDDEN redisContext *srvocsp__redis_connect_tcp(const char *host, int port,
                                                        int connect_timeout_ms, int timeout_ms,
                                                        char *why, size_t whylen);
/* The same on a unix socket (no resolution; keepalive does not apply). */
SRVOCSP__HIDDEN redisContext *srvocsp__redis_connect_unix(const char *path, int connect_timeout_ms,
                                                         int timeout_ms, char *why, size_t whylen);

/* AUTH (when |password| is not empty; with |user| when that is not
 * empty) on a fresh connection.  0 when done, 1 when the server answered
 * with a refusal (|why| has it: a configuration fault, not an outage), -1
 * when the connection failed. */
SRVOCSP__HIDDEN int srvocsp__redis_auth(redisContext *ctx, const char *user, const char *password,
                                       char *why, size_t whylen);

/* Liveness of a subscribed connection, which otherwise only ever reads:
 * a PING every interval, and the connection is dead when one is still
 * unanswered an interval later.  Zeroed with the connection. */
typedef struct srvocsp__redis_heartbeat {
    int64_t last_ms;   /* monotonic: the last PING sent, or the connect */
    int64_t sent_ms;   /* monotonic: the PING awaiting an answer, 0 none */
} srvocsp__redis_heartbeat;

/* The next reply already received on subscribed |ctx|, without waiting:
 * 1 with |*out| (the caller frees it), 0 when nothing more has arrived,
 * -1 with |why| when the connection is unusable (closed, a protocol
 * error, or more than |cap| bytes pending for one reply: hiredis would
 * otherwise hold a bulk string of any size).  Any reply counts as an
 * answer to an outstanding PING. */
SRVOCSP__HIDDEN int srvocsp__redis_sub_next(redisContext *ctx, size_t cap,
                                           srvocsp__redis_heartbeat *hb, redisReply **out,
                                           char *why, size_t whylen);
/* Sends the PING of |hb| when one is due at |now_ms|; false with |why|
 * when the previous one went unanswered for |interval_ms| or the write
 * failed (drop the connection). */
SRVOCSP__HIDDEN bool srvocsp__redis_sub_ping(redisContext *ctx, srvocsp__redis_heartbeat *hb,
                                            int interval_ms, int64_t now_ms, char *why,
                                            size_t whylen);

#endif
