/* The Redis store's URL: redis://[user:password@]host[:port][/db] and
 * unix://[user:password@]/path/to/redis.sock[?db=N&user=U&password=P]. */
#ifndef SRVOCSP_REDIS_URL_H
#define SRVOCSP_REDIS_URL_H

#include "internal.h"

typedef struct srvocsp__redis_url {
    bool unix_socket;
    char host[256];       /* TCP: host name or address, without brackets */
    int port;             /* TCP: 1..65535, default 6379 */
    char path[1024];      /* unix: socket path */
    char user[256];       /* "" = none (AUTH with the password alone) */
    char password[512];   /* "" = no AUTH */
    int db;               /* SELECT, 0 = default */
} srvocsp__redis_url;

/* Parses |url| into |out|.  Returns false with |why| naming the fault
 * (unknown scheme, missing host, bad port, bad database number...); the
 * password never appears in |why|. */
SRVOCSP__HIDDEN bool srvocsp__redis_url_parse(const char *url, srvocsp__redis_url *out, char *why,
                                             size_t whylen);

#endif
