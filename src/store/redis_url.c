/*
 * Parsing the Redis store's URL.  Only the two forms documented in
 * docs/fleet.md; anything else is refused with the reason, so a typo shows
 * at open instead of as a fleet that silently never shares.
 */
#include "store/redis_url.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Copies |n| bytes of |s| percent-decoded into |out|; false when they do
 * not fit or an escape is malformed. */
static bool pct_decode(const char *s, size_t n, char *out, size_t outlen)
{
    size_t i, o = 0;

    for (i = 0; i < n; i++) {
        int c = (unsigned char)s[i];

        if (c == '%') {
            char hex[3];

            if (i + 2 >= n || !isxdigit((unsigned char)s[i + 1]) ||
                !isxdigit((unsigned char)s[i + 2]))
                return false;
            hex[0] = s[i + 1];
            hex[1] = s[i + 2];
            hex[2] = '\0';
            c = (int)strtol(hex, NULL, 16);
            if (c == 0)
                return false;
            i += 2;
        }
        if (o + 1 >= outlen)
            return false;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return true;
}

static bool parse_int(const char *s, size_t n, long lo, long hi, long *out)
{
    long v = 0;
    size_t i;

    if (n == 0 || n > 9)
        return false;
    for (i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

/* "user:password" or "password"-less "user" (then no AUTH)... Redis URLs
 * put the password after the colon; a lone ":password" is the password
 * alone (AUTH password, the default user). */
static bool parse_userinfo(const char *s, size_t n, srvocsp__redis_url *u, char *why,
                           size_t whylen)
{
    const char *colon = memchr(s, ':', n);

    if (colon == NULL) {
        if (!pct_decode(s, n, u->user, sizeof(u->user))) {
            srvocsp__fmt(why, whylen, "user name too long or badly escaped");
            return false;
        }
        return true;
    }
    if (!pct_decode(s, (size_t)(colon - s), u->user, sizeof(u->user))) {
        srvocsp__fmt(why, whylen, "user name too long or badly escaped");
        return false;
    }
    if (!pct_decode(colon + 1, n - (size_t)(colon - s) - 1, u->password, sizeof(u->password))) {
        srvocsp__fmt(why, whylen, "password too long or badly escaped");
        return false;
    }
    return true;
}

static bool parse_tcp(const char *p, srvocsp__redis_url *u, char *why, size_t whylen)
{
    const char *end = p + strcspn(p, "/?#"), *at = NULL, *q, *host, *hend, *port = NULL;
    long v;

    for (q = p; q < end; q++)
        if (*q == '@')
            at = q; /* the last '@': a password may hold one escaped or not */
    if (at != NULL) {
        if (!parse_userinfo(p, (size_t)(at - p), u, why, whylen))
            return false;
        host = at + 1;
    } else {
        host = p;
    }
    if (*host == '[') { /* [IPv6]:port */
        hend = memchr(host, ']', (size_t)(end - host));
        if (hend == NULL) {
            srvocsp__fmt(why, whylen, "unterminated [IPv6 address]");
            return false;
        }
        host++;
        port = hend + 1 < end && hend[1] == ':' ? hend + 2 : NULL;
        if (hend + 1 < end && hend[1] != ':') {
            srvocsp__fmt(why, whylen, "unexpected text after ]");
            return false;
        }
    } else {
        hend = memchr(host, ':', (size_t)(end - host));
        if (hend == NULL)
            hend = end;
        else
            port = hend + 1;
    }
    if (hend == host) {
        srvocsp__fmt(why, whylen, "no host");
        return false;
    }
    if ((size_t)(hend - host) >= sizeof(u->host)) {
        srvocsp__fmt(why, whylen, "host name too long");
        return false;
    }
    memcpy(u->host, host, (size_t)(hend - host));
    u->host[hend - host] = '\0';
    u->port = 6379;
    if (port != NULL) {
        if (!parse_int(port, (size_t)(end - port), 1, 65535, &v)) {
            srvocsp__fmt(why, whylen, "port \"%.*s\" is not a number from 1 to 65535",
                         (int)(end - port > 16 ? 16 : end - port), port);
            return false;
        }
        u->port = (int)v;
    }
    if (*end == '/' && end[1] != '\0') {
        const char *db = end + 1;
        size_t n = strcspn(db, "?#");

        if (!parse_int(db, n, 0, 1000000, &v)) {
            srvocsp__fmt(why, whylen, "database \"%.*s\" is not a number", (int)(n > 16 ? 16 : n),
                         db);
            return false;
        }
        u->db = (int)v;
        end = db + n;
    } else if (*end == '/') {
        end++;
    }
    if (*end != '\0') {
        srvocsp__fmt(why, whylen, "unexpected \"%.16s\" after the address (redis://[user:password@]host:port[/db])",
                     end);
        return false;
    }
    return true;
}

static bool parse_query(const char *q, srvocsp__redis_url *u, char *why, size_t whylen)
{
    while (*q != '\0') {
        size_t n = strcspn(q, "&"), kl = strcspn(q, "=");
        const char *val = q + kl + 1;
        long v;

        if (kl >= n) {
            srvocsp__fmt(why, whylen, "query item \"%.*s\" has no value", (int)(n > 16 ? 16 : n), q);
            return false;
        }
        if (kl == 2 && memcmp(q, "db", 2) == 0) {
            if (!parse_int(val, n - kl - 1, 0, 1000000, &v)) {
                srvocsp__fmt(why, whylen, "db is not a number");
                return false;
            }
            u->db = (int)v;
        } else if (kl == 8 && memcmp(q, "password", 8) == 0) {
            if (!pct_decode(val, n - kl - 1, u->password, sizeof(u->password))) {
                srvocsp__fmt(why, whylen, "password too long or badly escaped");
                return false;
            }
        } else if (kl == 4 && memcmp(q, "user", 4) == 0) {
            if (!pct_decode(val, n - kl - 1, u->user, sizeof(u->user))) {
                srvocsp__fmt(why, whylen, "user name too long or badly escaped");
                return false;
            }
        } else {
            srvocsp__fmt(why, whylen, "unknown query item \"%.*s\" (db, user, password)",
                         (int)(kl > 16 ? 16 : kl), q);
            return false;
        }
        q += n;
        if (*q == '&')
            q++;
    }
    return true;
}

static bool parse_unix(const char *p, srvocsp__redis_url *u, char *why, size_t whylen)
{
    const char *slash = strchr(p, '/'), *q;
    size_t n;

    if (slash == NULL) {
        srvocsp__fmt(why, whylen, "no socket path (unix:///path/to/redis.sock)");
        return false;
    }
    if (slash != p) { /* userinfo before the path: unix://user:pass@/path */
        if (slash[-1] != '@') {
            srvocsp__fmt(why, whylen,
                         "unix URL with a host part; the path must be absolute (unix:///path)");
            return false;
        }
        if (!parse_userinfo(p, (size_t)(slash - 1 - p), u, why, whylen))
            return false;
    }
    q = strchr(slash, '?');
    n = q ? (size_t)(q - slash) : strlen(slash);
    if (n <= 1 || n >= sizeof(u->path)) {
        srvocsp__fmt(why, whylen, "socket path empty or too long");
        return false;
    }
    memcpy(u->path, slash, n);
    u->path[n] = '\0';
    u->unix_socket = true;
    return q == NULL || parse_query(q + 1, u, why, whylen);
}

bool srvocsp__redis_url_parse(const char *url, srvocsp__redis_url *out, char *why, size_t whylen)
{
    memset(out, 0, sizeof(*out));
    if (url == NULL || *url == '\0') {
        srvocsp__fmt(why, whylen, "empty store URL");
        return false;
    }
    if (strlen(url) > 2048) {
        srvocsp__fmt(why, whylen, "store URL longer than 2048 bytes");
        return false;
    }
    if (strncmp(url, "redis://", 8) == 0)
        return parse_tcp(url + 8, out, why, whylen);
    if (strncmp(url, "unix://", 7) == 0)
        return parse_unix(url + 7, out, why, whylen);
    if (strncmp(url, "rediss://", 9) == 0) {
        srvocsp__fmt(why, whylen, "rediss:// (TLS) is not supported; use redis:// or unix://");
        return false;
    }
    {
        size_t n = strcspn(url, ":");

        srvocsp__fmt(why, whylen, "unknown scheme \"%.*s\" (redis:// or unix://)",
                     (int)(n > 16 ? 16 : n), url);
    }
    return false;
}
