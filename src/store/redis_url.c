/*
 * Parsing the Redis store's URL with libcurl's URL parser (curl_url).
 * Only the forms documented in docs/fleet.md; anything else is refused
 * with the reason, so a typo shows at open instead of as a fleet that
 * silently never shares.
 *
 * curl_url parses one authority of a known shape; two of our forms are
 * not: a unix URL has an empty host before its path, and a Sentinel URL
 * lists several hosts.  Both are handed to curl with a placeholder host
 * (the hosts of a Sentinel list are each parsed by curl on their own).
 */
#include "store/redis_url.h"

#include <ctype.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define URL_MAX 2048
#define SENTINEL_PORT 26379
#define DURATION_MAX_MS 600000

/* Copies the percent-decoded |n| bytes of |s| into |out|; false when they
 * do not fit, an escape is malformed or decodes to a NUL. */
static bool unescape(const char *s, size_t n, char *out, size_t outlen)
{
    int dn = 0;
    char *d;
    bool ok;

    size_t i;

    for (i = 0; i < n; i++) /* curl would pass a malformed escape through as is */
        if (s[i] == '%' && (i + 2 >= n || !isxdigit((unsigned char)s[i + 1]) ||
                            !isxdigit((unsigned char)s[i + 2])))
            return false;
    d = curl_easy_unescape(NULL, s, (int)n, &dn);
    if (d == NULL)
        return false;
    ok = dn >= 0 && (size_t)dn < outlen && memchr(d, '\0', (size_t)dn) == NULL;
    if (ok) {
        memcpy(out, d, (size_t)dn);
        out[dn] = '\0';
    }
    curl_free(d);
    return ok;
}

static bool parse_int(const char *s, size_t n, long lo, long hi, long *out)
{
    long v = 0;
    size_t i;

    if (n == 0 || n > 9)
        return false;
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

/* "500", "500ms" or "2s", within [lo, DURATION_MAX_MS] milliseconds. */
static bool parse_duration(const char *s, size_t n, long lo, int *out_ms)
{
    long v, mult = 1;

    if (n > 2 && memcmp(s + n - 2, "ms", 2) == 0) {
        n -= 2;
    } else if (n > 1 && s[n - 1] == 's') {
        n -= 1;
        mult = 1000;
    }
    if (!parse_int(s, n, 0, DURATION_MAX_MS, &v) || v * mult < lo || v * mult > DURATION_MAX_MS)
        return false;
    *out_ms = (int)(v * mult);
    return true;
}

/* |n| bytes of the userinfo |s| into |out| with every '@' escaped, and
 * the '@' that ends the userinfo after them (none when |n| is 0).  Redis
 * URLs have long allowed an unescaped '@' in a password (the last one
 * ends the userinfo), which curl_url does not.  false when it does not
 * fit. */
static bool put_userinfo(const char *s, size_t n, char *out, size_t outlen)
{
    size_t i, o = strlen(out);

    for (i = 0; i < n; i++) {
        const char *piece = s[i] == '@' ? "%40" : NULL;
        size_t k = piece ? 3 : 1;

        if (o + k + 2 > outlen)
            return false;
        if (piece)
            memcpy(out + o, piece, 3);
        else
            out[o] = s[i];
        o += k;
    }
    if (n > 0)
        out[o++] = '@';
    out[o] = '\0';
    return true;
}

/* Where the userinfo of the authority at |auth| ends: its last '@' before
 * the path, query or fragment, NULL when there is none. */
static const char *userinfo_end(const char *auth)
{
    const char *end = auth + strcspn(auth, "/?#"), *at = NULL, *p;

    for (p = auth; p < end; p++)
        if (*p == '@')
            at = p;
    return at;
}

/* A curl_url failure in words a reader of the URL recognises. */
static void curl_fault(CURLUcode rc, char *why, size_t whylen)
{
    switch (rc) {
    case CURLUE_NO_HOST:
        srvocsp__fmt(why, whylen, "no host");
        break;
    case CURLUE_BAD_PORT_NUMBER:
        srvocsp__fmt(why, whylen, "port is not a number from 1 to 65535");
        break;
    case CURLUE_BAD_IPV6:
        srvocsp__fmt(why, whylen, "bad [IPv6 address]");
        break;
    case CURLUE_BAD_LOGIN:
    case CURLUE_BAD_USER:
    case CURLUE_BAD_PASSWORD:
        srvocsp__fmt(why, whylen,
                     "user name or password badly written (escape @ : / as %%40 %%3A %%2F)");
        break;
    default:
        srvocsp__fmt(why, whylen, "malformed URL (%s)", curl_url_strerror(rc));
        break;
    }
}

/* One part of |h| percent-decoded into |out|; "" when the URL has none. */
static bool get_part(CURLU *h, CURLUPart part, bool decode, char *out, size_t outlen,
                     const char *what, char *why, size_t whylen)
{
    char *v = NULL;
    CURLUcode rc = curl_url_get(h, part, &v, 0);
    bool ok;

    out[0] = '\0';
    if (rc == CURLUE_NO_USER || rc == CURLUE_NO_PASSWORD || rc == CURLUE_NO_QUERY ||
        rc == CURLUE_NO_FRAGMENT || rc == CURLUE_NO_PORT || rc == CURLUE_NO_HOST)
        return true;
    if (rc != CURLUE_OK) {
        curl_fault(rc, why, whylen);
        return false;
    }
    if (decode)
        ok = unescape(v, strlen(v), out, outlen);
    else if ((ok = strlen(v) < outlen))
        memcpy(out, v, strlen(v) + 1);
    curl_free(v);
    if (!ok)
        srvocsp__fmt(why, whylen, "%s too long or badly escaped", what);
    return ok;
}

/* host[:port] alone, through curl: |a| filled, |dflt| when no port. */
static bool parse_host(const char *text, size_t n, int dflt, srvocsp__redis_addr *a, char *why,
                       size_t whylen)
{
    char buf[SRVOCSP__REDIS_HOST_MAX + 32], port[16];
    CURLU *h = NULL;
    CURLUcode rc;
    size_t hl;
    long v;
    bool ok = false;

    if (n == 0 || text[0] == ':') {
        srvocsp__fmt(why, whylen, "no host");
        return false;
    }
    if (n >= SRVOCSP__REDIS_HOST_MAX) {
        srvocsp__fmt(why, whylen, "host name too long");
        return false;
    }
    snprintf(buf, sizeof(buf), "redis://%.*s/", (int)n, text);
    if ((h = curl_url()) == NULL) {
        srvocsp__fmt(why, whylen, "out of memory");
        return false;
    }
    rc = curl_url_set(h, CURLUPART_URL, buf, CURLU_NON_SUPPORT_SCHEME);
    if (rc != CURLUE_OK) {
        curl_fault(rc, why, whylen);
        goto out;
    }
    if (!get_part(h, CURLUPART_HOST, false, a->host, sizeof(a->host), "host name", why, whylen) ||
        !get_part(h, CURLUPART_PORT, false, port, sizeof(port), "port", why, whylen))
        goto out;
    hl = strlen(a->host);
    if (hl >= 2 && a->host[0] == '[') { /* [IPv6] */
        memmove(a->host, a->host + 1, hl - 2);
        a->host[hl - 2] = '\0';
    }
    if (a->host[0] == '\0') {
        srvocsp__fmt(why, whylen, "no host");
        goto out;
    }
    a->port = dflt;
    if (port[0] != '\0') {
        if (!parse_int(port, strlen(port), 1, 65535, &v)) {
            srvocsp__fmt(why, whylen, "port \"%.16s\" is not a number from 1 to 65535", port);
            goto out;
        }
        a->port = (int)v;
    }
    ok = true;
out:
    curl_url_cleanup(h);
    return ok;
}

static bool parse_query(const char *q, srvocsp__redis_url *u, char *why, size_t whylen)
{
    static const char items[] = "db, user, password, connect_timeout, timeout, ping_interval"
                                ", failover_wait, sentinel_user, sentinel_password";

    while (*q != '\0') {
        size_t n = strcspn(q, "&"), kl = strcspn(q, "=");
        const char *val = q + kl + 1;
        size_t vl = n - kl - 1;
        long v;
        bool ok = true, sentinel_only = false;
        const char *what = NULL;

        if (kl >= n) {
            srvocsp__fmt(why, whylen, "query item \"%.*s\" has no value", (int)(n > 16 ? 16 : n),
                         q);
            return false;
        }
#define KEY(s) (kl == sizeof(s) - 1 && memcmp(q, s, kl) == 0)
        if (KEY("db")) {
            ok = parse_int(val, vl, 0, 1000000, &v);
            what = "db is not a number";
            if (ok)
                u->db = (int)v;
        } else if (KEY("password")) {
            ok = unescape(val, vl, u->password, sizeof(u->password));
            what = "password too long or badly escaped";
        } else if (KEY("user")) {
            ok = unescape(val, vl, u->user, sizeof(u->user));
            what = "user name too long or badly escaped";
        } else if (KEY("sentinel_password")) {
            sentinel_only = true;
            ok = unescape(val, vl, u->sentinel_password, sizeof(u->sentinel_password));
            what = "sentinel_password too long or badly escaped";
        } else if (KEY("sentinel_user")) {
            sentinel_only = true;
            ok = unescape(val, vl, u->sentinel_user, sizeof(u->sentinel_user));
            what = "sentinel_user too long or badly escaped";
        } else if (KEY("connect_timeout")) {
            ok = parse_duration(val, vl, 1, &u->connect_timeout_ms);
            what = "connect_timeout is not a duration from 1 ms to 600 s (500, 500ms, 2s)";
        } else if (KEY("timeout")) {
            ok = parse_duration(val, vl, 1, &u->timeout_ms);
            what = "timeout is not a duration from 1 ms to 600 s (500, 500ms, 2s)";
        } else if (KEY("failover_wait")) {
            sentinel_only = true;
            ok = parse_duration(val, vl, 0, &u->failover_wait_ms);
            what = "failover_wait is not a duration from 0 to 600 s (500, 500ms, 2s)";
        } else if (KEY("ping_interval")) {
            ok = parse_duration(val, vl, 100, &u->ping_interval_ms);
            what = "ping_interval is not a duration from 100 ms to 600 s (500, 500ms, 2s)";
        } else {
            srvocsp__fmt(why, whylen, "unknown query item \"%.*s\" (%s)", (int)(kl > 24 ? 24 : kl),
                         q, items);
            return false;
        }
#undef KEY
        if (sentinel_only && u->kind != SRVOCSP__REDIS_SENTINEL) {
            srvocsp__fmt(why, whylen, "%.*s is for redis-sentinel:// URLs only", (int)kl, q);
            return false;
        }
        if (!ok) {
            srvocsp__fmt(why, whylen, "%s", what);
            return false;
        }
        q += n;
        if (*q == '&')
            q++;
    }
    return true;
}

/* redis-sentinel://[userinfo@]h1[:p1],h2[:p2]...: the hosts into |u|, and
 * in |rest| the URL with one placeholder host for curl. */
static bool split_sentinels(const char *after, srvocsp__redis_url *u, char *rest, size_t restlen,
                            char *why, size_t whylen)
{
    const char *at = userinfo_end(after), *hosts = at ? at + 1 : after, *p;
    const char *end = after + strcspn(after, "/?#");

    for (p = hosts; p <= end;) {
        size_t n = strcspn(p, ",/?#");

        if (u->n_sentinels == SRVOCSP__SENTINELS_MAX) {
            srvocsp__fmt(why, whylen, "more than %d Sentinels", SRVOCSP__SENTINELS_MAX);
            return false;
        }
        if (!parse_host(p, n, SENTINEL_PORT, &u->sentinels[u->n_sentinels], why, whylen)) {
            char tmp[200];

            snprintf(tmp, sizeof(tmp), "%s", why);
            srvocsp__fmt(why, whylen, "Sentinel %u: %s", u->n_sentinels + 1, tmp);
            return false;
        }
        u->n_sentinels++;
        p += n;
        if (*p != ',')
            break;
        p++;
    }
    snprintf(rest, restlen, "redis-sentinel://");
    if (!put_userinfo(after, at ? (size_t)(at - after) : 0, rest, restlen) ||
        strlen(rest) + 9 + strlen(end) >= restlen) {
        srvocsp__fmt(why, whylen, "store URL too long");
        return false;
    }
    strcat(rest, "localhost");
    strcat(rest, end);
    return true;
}

bool srvocsp__redis_url_parse(const char *url, srvocsp__redis_url *out, char *why, size_t whylen)
{
    char text[URL_MAX + 64], path[64], query[URL_MAX], frag[256];
    const char *after;
    CURLU *h = NULL;
    CURLUcode rc;
    bool ok = false;
    long v;

    memset(out, 0, sizeof(*out));
    out->connect_timeout_ms = SRVOCSP__REDIS_CONNECT_TIMEOUT_MS;
    out->timeout_ms = SRVOCSP__REDIS_TIMEOUT_MS;
    out->ping_interval_ms = SRVOCSP__REDIS_PING_INTERVAL_MS;
    out->failover_wait_ms = SRVOCSP__REDIS_FAILOVER_WAIT_MS;
    if (url == NULL || *url == '\0') {
        srvocsp__fmt(why, whylen, "empty store URL");
        return false;
    }
    if (strlen(url) > URL_MAX) {
        srvocsp__fmt(why, whylen, "store URL longer than %d bytes", URL_MAX);
        return false;
    }
    if (strncmp(url, "rediss://", 9) == 0) {
        srvocsp__fmt(why, whylen,
                     "rediss:// (TLS) is not supported: this system's hiredis (0.14) has no TLS; "
                     "reach Redis through a local TLS tunnel on a unix:// socket (docs/fleet.md)");
        return false;
    }
    if (strncmp(url, "redis://", 8) == 0) {
        const char *at = userinfo_end(url + 8), *rest = at ? at + 1 : url + 8;

        out->kind = SRVOCSP__REDIS_TCP;
        snprintf(text, sizeof(text), "redis://");
        if (!put_userinfo(url + 8, at ? (size_t)(at - url - 8) : 0, text, sizeof(text)) ||
            strlen(text) + strlen(rest) >= sizeof(text)) {
            srvocsp__fmt(why, whylen, "store URL too long");
            return false;
        }
        strcat(text, rest);
    } else if (strncmp(url, "unix://", 7) == 0) {
        /* unix://[userinfo@]/path: curl wants a host between them. */
        size_t auth = strcspn(url + 7, "/");

        out->kind = SRVOCSP__REDIS_UNIX;
        out->unix_socket = true;
        if (url[7 + auth] != '/') {
            srvocsp__fmt(why, whylen, "no socket path (unix:///path/to/redis.sock)");
            return false;
        }
        if (auth > 0 && url[7 + auth - 1] != '@') {
            srvocsp__fmt(why, whylen,
                         "unix URL with a host part; the path must be absolute (unix:///path)");
            return false;
        }
        snprintf(text, sizeof(text), "unix://");
        if (!put_userinfo(url + 7, auth ? auth - 1 : 0, text, sizeof(text)) ||
            strlen(text) + 9 + strlen(url + 7 + auth) >= sizeof(text)) {
            srvocsp__fmt(why, whylen, "store URL too long");
            return false;
        }
        strcat(text, "localhost");
        strcat(text, url + 7 + auth);
    } else if (strncmp(url, "redis-sentinel://", 17) == 0) {
        out->kind = SRVOCSP__REDIS_SENTINEL;
        if (!split_sentinels(url + 17, out, text, sizeof(text), why, whylen))
            return false;
    } else {
        size_t n = strcspn(url, ":");

        srvocsp__fmt(why, whylen,
                     "unknown scheme \"%.*s\" (redis://, redis-sentinel:// or unix://)",
                     (int)(n > 16 ? 16 : n), url);
        return false;
    }
    if ((h = curl_url()) == NULL) {
        srvocsp__fmt(why, whylen, "out of memory");
        return false;
    }
    rc = curl_url_set(h, CURLUPART_URL, text, CURLU_NON_SUPPORT_SCHEME);
    if (rc != CURLUE_OK) {
        curl_fault(rc, why, whylen);
        goto out;
    }
    if (!get_part(h, CURLUPART_USER, true, out->user, sizeof(out->user), "user name", why,
                  whylen) ||
        !get_part(h, CURLUPART_PASSWORD, true, out->password, sizeof(out->password), "password",
                  why, whylen) ||
        !get_part(h, CURLUPART_QUERY, false, query, sizeof(query), "query", why, whylen) ||
        !get_part(h, CURLUPART_FRAGMENT, true, frag, sizeof(frag), "master name", why, whylen))
        goto out;
    if (out->kind == SRVOCSP__REDIS_UNIX) {
        if (!get_part(h, CURLUPART_PATH, true, out->path, sizeof(out->path), "socket path", why,
                      whylen))
            goto out;
        if (strlen(out->path) <= 1) {
            srvocsp__fmt(why, whylen, "socket path empty or too long");
            goto out;
        }
    } else {
        if (out->kind == SRVOCSP__REDIS_TCP) {
            char hp[SRVOCSP__REDIS_HOST_MAX + 16];
            srvocsp__redis_addr a;

            after = userinfo_end(url + 8) ? userinfo_end(url + 8) + 1 : url + 8;
            snprintf(hp, sizeof(hp), "%.*s", (int)strcspn(after, "/?#"), after);
            if (!parse_host(hp, strlen(hp), 6379, &a, why, whylen))
                goto out;
            memcpy(out->host, a.host, sizeof(out->host));
            out->port = a.port;
        }
        if (!get_part(h, CURLUPART_PATH, false, path, sizeof(path), "database", why, whylen))
            goto out;
        if (path[0] == '/' && path[1] != '\0') {
            if (!parse_int(path + 1, strlen(path + 1), 0, 1000000, &v)) {
                /* Not echoed: an unescaped '/' in a password puts the
                 * rest of the password here. */
                srvocsp__fmt(why, whylen,
                             "database is not a number (/0 to /1000000 after host[:port]; "
                             "a '/' in a password is written %%2F)");
                goto out;
            }
            out->db = (int)v;
        }
    }
    if (out->kind == SRVOCSP__REDIS_SENTINEL) {
        if (frag[0] == '\0') {
            srvocsp__fmt(
                why, whylen,
                "no master name (redis-sentinel://host[:port][,host[:port]...][/db]#MASTER)");
            goto out;
        }
        snprintf(out->master, sizeof(out->master), "%s", frag);
    } else if (frag[0] != '\0') {
        srvocsp__fmt(why, whylen,
                     "unexpected \"#\" in the URL (a master name is for redis-sentinel://)");
        goto out;
    }
    if (!parse_query(query, out, why, whylen))
        goto out;
    ok = true;
out:
    curl_url_cleanup(h);
    if (!ok)
        OPENSSL_cleanse(out, sizeof(*out)); /* no half-parsed password left behind */
    return ok;
}
