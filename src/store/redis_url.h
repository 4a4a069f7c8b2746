/* The Redis store's URL (docs/fleet.md):
 *   redis://[user:password@]host[:port][/db][?options]
 *   unix://[user:password@]/path/to/redis.sock[?db=N&user=U&password=P&options]
 *   redis-sentinel://[user:password@]host[:port][,host[:port]...][/db][?options]#MASTER
 * options: connect_timeout, timeout, ping_interval (milliseconds, or with
 * an "ms" or "s" suffix); for Sentinel also failover_wait, sentinel_user
 * and sentinel_password (the Sentinels' own credentials; the ones before the
 * '@' are the data nodes'). */
#ifndef SRVOCSP_REDIS_URL_H
#define SRVOCSP_REDIS_URL_H

#include "internal.h"

#define SRVOCSP__SENTINELS_MAX 8
#define SRVOCSP__REDIS_HOST_MAX 256

typedef enum srvocsp__redis_kind {
    SRVOCSP__REDIS_TCP = 0,
    SRVOCSP__REDIS_UNIX = 1,
    SRVOCSP__REDIS_SENTINEL = 2
} srvocsp__redis_kind;

typedef struct srvocsp__redis_addr {
    char host[SRVOCSP__REDIS_HOST_MAX]; /* name or address, without brackets */
    int port;                           /* 1..65535 */
} srvocsp__redis_addr;

typedef struct srvocsp__redis_url {
    srvocsp__redis_kind kind;
    bool unix_socket;          /* kind == UNIX, kept for the messages' code */
    char host[SRVOCSP__REDIS_HOST_MAX]; /* TCP: host name or address, without brackets */
    int port;                  /* TCP: 1..65535, default 6379 */
    char path[1024];           /* unix: socket path */
    char user[256];            /* "" = none (AUTH with the password alone) */
    char password[512];        /* "" = no AUTH */
    int db;                    /* SELECT, 0 = default */
    /* Sentinel: where to ask, for which master, with which credentials. */
    srvocsp__redis_addr sentinels[SRVOCSP__SENTINELS_MAX];
    unsigned n_sentinels;
    char master[256];
    char sentinel_user[256];
    char sentinel_password[512];
    /* Bounds (milliseconds): resolution plus connect; one command; the
     * subscriptions' PING period (a PING unanswered for a period drops
     * the connection). */
    int connect_timeout_ms;
    int timeout_ms;
    int ping_interval_ms;
    /* Sentinel: how long after losing the master the fleet waits for the
     * next one before each machine fetches alone (0: at once). */
    int failover_wait_ms;
} srvocsp__redis_url;

#define SRVOCSP__REDIS_CONNECT_TIMEOUT_MS 300
#define SRVOCSP__REDIS_TIMEOUT_MS 300
#define SRVOCSP__REDIS_PING_INTERVAL_MS 5000
#define SRVOCSP__REDIS_FAILOVER_WAIT_MS 15000

/* Parses |url| into |out|.  Returns false with |why| naming the fault
 * (unknown scheme, missing host, bad port, bad database number, unknown
 * option...); the password never appears in |why|. */
SRVOCSP__HIDDEN bool srvocsp__redis_url_parse(const char *url, srvocsp__redis_url *out, char *why,
                                             size_t whylen);

#endif
