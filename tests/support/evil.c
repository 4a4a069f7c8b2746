#define _GNU_SOURCE
#include "evil.h"
#include "peers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SLOTS 16
#define MAX_CONNS 4096
#define PRESIGNED_BUCKETS 16384

typedef struct presigned {
    struct presigned *next;
    long serial;
    unsigned char *der;
    size_t len;
} presigned;

struct evil {
    const tp_pki *pki;
    tp_cert forged_ca; /* the issuing CA's name, another key */
    int64_t (*now)(void *);
    void *now_ctx;
    int64_t validity;
    int lfd, port;
    pthread_t acceptor;
    atomic_bool stop;
    atomic_long requests;
    atomic_long connections;
    atomic_long active, max_active;
    atomic_int slots[MAX_SLOTS];
    atomic_int refusal; /* evil_set_refusal */
    pthread_mutex_t mu;
    int conns[MAX_CONNS];
    pthread_t threads[MAX_CONNS];
    int n_conns;
    presigned *buckets[PRESIGNED_BUCKETS];
    presigned *cached;             /* "cdn-cached": first answer per serial */
};

static const char *const names[] = {
#define EVIL_NAME(id, name) name,
    EVIL_SCENARIOS(EVIL_NAME)
#undef EVIL_NAME
};

const char *evil_name(evil_scenario s)
{
    return (unsigned)s < EVIL__COUNT ? names[s] : "?";
}

int evil_port(const evil *e)
{
    return e->port;
}

void evil_set_slot(evil *e, int slot, evil_scenario s)
{
    if (slot >= 0 && slot < MAX_SLOTS)
        atomic_store(&e->slots[slot], (int)s);
}

void evil_set_refusal(evil *e, int how)
{
    atomic_store(&e->refusal, how);
}

long evil_requests(evil *e)
{
    return atomic_load(&e->requests);
}

long evil_connections(evil *e)
{
    return atomic_load(&e->connections);
}

long evil_max_concurrent(evil *e)
{
    return atomic_load(&e->max_active);
}

void evil_add_presigned(evil *e, long serial, const unsigned char *der, size_t len)
{
    presigned *p = calloc(1, sizeof(*p));

    p->serial = serial;
    p->der = malloc(len);
    memcpy(p->der, der, len);
    p->len = len;
    pthread_mutex_lock(&e->mu);
    p->next = e->buckets[(unsigned long)serial % PRESIGNED_BUCKETS];
    e->buckets[(unsigned long)serial % PRESIGNED_BUCKETS] = p;
    pthread_mutex_unlock(&e->mu);
}

static const presigned *find_presigned(evil *e, long serial)
{
    const presigned *p;

    for (p = e->buckets[(unsigned long)serial % PRESIGNED_BUCKETS]; p; p = p->next)
        if (p->serial == serial)
            return p;
    return NULL;
}

/* ---- HTTP ---- */

/* Status line and headers announcing |content_len| bytes of body. */
static bool send_head(int fd, int status, const char *reason, const char *ctype,
                      size_t content_len, const char *extra)
{
    char head[512];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n", status,
                     reason, ctype, content_len, extra ? extra : "");

    return tr_send_all(fd, head, (size_t)n);
}

static bool reply(int fd, int status, const char *reason, const char *ctype,
                  const unsigned char *body, size_t len, const char *extra)
{
    return send_head(fd, status, reason, ctype, len, extra) && (len == 0 || tr_send_all(fd, body, len));
}

static int url_unescape(const char *in, size_t n, char *out, size_t cap)
{
    size_t o = 0;

    for (size_t i = 0; i < n && o + 1 < cap; i++) {
        if (in[i] == '%' && i + 2 < n) {
            unsigned v = 0;

            sscanf(in + i + 1, "%2x", &v);
            out[o++] = (char)v;
            i += 2;
        } else {
            out[o++] = in[i];
        }
    }
    out[o] = '\0';
    return (int)o;
}

/* The serial of the first CertID of a DER OCSPRequest, -1 if none. */
static long request_serial(const unsigned char *der, size_t len)
{
    const unsigned char *p = der;
    OCSP_REQUEST *req = d2i_OCSP_REQUEST(NULL, &p, (long)len);
    ASN1_INTEGER *serial = NULL;
    long v = -1;

    if (req && OCSP_request_onereq_count(req) > 0 &&
        OCSP_id_get0_info(NULL, NULL, NULL, &serial,
                          OCSP_onereq_get0_id(OCSP_request_onereq_get0(req, 0))) == 1)
        v = ASN1_INTEGER_get(serial);
    OCSP_REQUEST_free(req);
    return v;
}

static const tp_cert *leaf_by_serial(const tp_pki *k, long serial)
{
    const tp_cert *all[] = {&k->good,    &k->revoked,  &k->unknown,   &k->noaia,
                            &k->twourls, &k->good_rsa, &k->muststaple};

    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (all[i]->cert && ASN1_INTEGER_get(X509_get0_serialNumber(all[i]->cert)) == serial)
            return all[i];
    return NULL;
}

static unsigned char *make_response(evil *e, evil_scenario s, const tp_cert *leaf, size_t *len)
{
    const tp_pki *k = e->pki;
    int64_t now = e->now(e->now_ctx);
    tp_resp_opts o;

    tp_resp_opts_init(&o, leaf, &k->ca, now);
    o.next_update = now + e->validity;
    switch (s) {
    case EVIL_MALFORMED: o.response_status = OCSP_RESPONSE_STATUS_MALFORMEDREQUEST; break;
    case EVIL_INTERNAL: o.response_status = OCSP_RESPONSE_STATUS_INTERNALERROR; break;
    case EVIL_TRYLATER: o.response_status = OCSP_RESPONSE_STATUS_TRYLATER; break;
    case EVIL_SIGREQUIRED: o.response_status = OCSP_RESPONSE_STATUS_SIGREQUIRED; break;
    case EVIL_UNAUTHORIZED: o.response_status = OCSP_RESPONSE_STATUS_UNAUTHORIZED; break;
    case EVIL_UNKNOWN: o.status = V_OCSP_CERTSTATUS_UNKNOWN; break;
    case EVIL_REVOKED: o.status = V_OCSP_CERTSTATUS_REVOKED; o.reason = 1; break;
    case EVIL_OTHER_CERT: o.leaf = leaf == &k->revoked ? &k->good : &k->revoked; break;
    case EVIL_WRONG_SERIAL: o.mangle = TP_MANGLE_SERIAL; break;
    case EVIL_WRONG_NAME_HASH: o.mangle = TP_MANGLE_NAME_HASH; break;
    case EVIL_WRONG_KEY_HASH: o.mangle = TP_MANGLE_KEY_HASH; break;
    case EVIL_WRONG_KEY: o.signer = &e->forged_ca; break;
    case EVIL_DELEGATE_NOEKU: o.signer = &k->delegate_noeku; o.include_signer = true; break;
    case EVIL_DELEGATE_OTHER_CA: o.signer = &k->delegate_other; o.include_signer = true; break;
    case EVIL_DELEGATE_EXPIRED: o.signer = &k->delegate_expired; o.include_signer = true; break;
    case EVIL_DELEGATE_OK: o.signer = &k->delegate; o.include_signer = true; break;
    case EVIL_FUTURE: o.this_update = now + 3600; o.next_update = now + 3600 + e->validity; break;
    case EVIL_PAST: o.this_update = now - 7200; o.next_update = now - 60; break;
    case EVIL_NO_NEXT: o.next_update = 0; break;
    case EVIL_ROLLBACK: o.this_update = now - e->validity / 2 - 3600; break;
    case EVIL_SHA256: o.certid_md = EVP_sha256(); break;
    case EVIL_NOT_FIRST: o.other_first = leaf == &k->revoked ? &k->good : &k->revoked; break;
    case EVIL_CRITICAL_EXT: o.critical_ext_single = true; break;
    default: break;
    }
    return tp_response(&o, len);
}

/* Sleeps up to |ms| unless the responder stops. */
static bool nap(evil *e, int ms)
{
    for (int i = 0; i < ms / 10; i++) {
        if (atomic_load(&e->stop))
            return false;
        usleep(10 * 1000);
    }
    return !atomic_load(&e->stop);
}

/* Answers one request; returns false to close the connection. Sets
 * |*released| when it ended its own count of busy requests before the last
 * byte went out, which orders that count before anything the client does next. */
static bool answer(evil *e, int fd, const char *method, const char *path, const unsigned char *body,
                   size_t body_len, bool *released)
{
    char seg[64], b64[4096];
    const char *rest;
    evil_scenario s = EVIL_GOOD;
    unsigned char der_req[4096], *der = NULL;
    size_t req_len = 0, len = 0;
    const tp_cert *leaf;
    long serial;
    bool keep = true;
    int i;

    {
        /* Responders route on the path: a query string is not part of it,
         * and GET data appended after one is lost. */
        static _Thread_local char clean[8192];

        snprintf(clean, sizeof(clean), "%.*s", (int)strcspn(path, "?#"), path);
        path = clean;
    }
    if (path[0] != '/' || (rest = strchr(path + 1, '/')) == NULL)
        return reply(fd, 404, "Not Found", "text/plain", NULL, 0, NULL);
    snprintf(seg, sizeof(seg), "%.*s", (int)(rest - path - 1), path + 1);
    rest++;
    if (seg[0] == 'k' && seg[1] >= '0' && seg[1] <= '9')
        s = (evil_scenario)atomic_load(&e->slots[atoi(seg + 1) % MAX_SLOTS]);
    else
        for (i = 0; i < EVIL__COUNT; i++)
            if (strcmp(seg, names[i]) == 0)
                s = (evil_scenario)i;
    atomic_fetch_add(&e->requests, 1);
    /* Fronts that take one method only (CDNs, responders as deployed). */
    if (s == EVIL_NO_POST || s == EVIL_NO_GET || s == EVIL_GET_HANGS) {
        bool post = strcmp(method, "POST") == 0;

        int how = atomic_load(&e->refusal);

        if (s == EVIL_GET_HANGS || (s == EVIL_NO_POST) != post) {
            s = s == EVIL_GET_HANGS && !post ? EVIL_HANG : EVIL_GOOD;
        } else if (how == EVIL_REFUSE_HTML) {
            static const char page[] = "<html><body>405 Not Allowed</body></html>";

            return reply(fd, 200, "OK", "text/html", (const unsigned char *)page,
                         sizeof(page) - 1, NULL);
        } else if (how == EVIL_REFUSE_MALFORMED) {
            s = EVIL_MALFORMED; /* answered below, once the request is read */
        } else {
            return reply(fd, how > 0 ? how : post ? 405 : 400,
                         how > 0 ? "Refused" : post ? "Method Not Allowed" : "Bad Request",
                         "text/plain", NULL, 0, post ? "Allow: GET\r\n" : NULL);
        }
    }

    if (strcmp(method, "POST") == 0) {
        if (body_len > sizeof(der_req))
            return reply(fd, 413, "Too Large", "text/plain", NULL, 0, NULL);
        memcpy(der_req, body, body_len);
        req_len = body_len;
    } else {
        int n = url_unescape(rest, strlen(rest), b64, sizeof(b64));
        int k = EVP_DecodeBlock(der_req, (unsigned char *)b64, n);

        while (n > 0 && b64[n - 1] == '=') {
            n--;
            k--;
        }
        req_len = k > 0 ? (size_t)k : 0;
    }
    serial = request_serial(der_req, req_len);
    if (s == EVIL_GOOD_SLOW) {
        /* A responder that takes its time: fetches started together overlap. */
        if (!nap(e, 300))
            return false;
        s = EVIL_GOOD;
    }
    if (s == EVIL_FAST) {
        const presigned *p = find_presigned(e, serial);

        return p ? reply(fd, 200, "OK", "application/ocsp-response", p->der, p->len, NULL)
                 : reply(fd, 404, "Not Found", "text/plain", NULL, 0, NULL);
    }
    leaf = leaf_by_serial(e->pki, serial);
    if (leaf == NULL)
        return reply(fd, 400, "Bad Request", "text/plain", NULL, 0, NULL);

    switch (s) {
    case EVIL_HANG:
        /* Until the client gives up (closes) or the responder stops. */
        while (!atomic_load(&e->stop)) {
            struct pollfd pfd = {fd, POLLIN, 0};
            char c;

            if (poll(&pfd, 1, 50) > 0 && recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) <= 0)
                break;
        }
        return false;
    case EVIL_SLOW:
        if (!nap(e, 200))
            return false;
        atomic_fetch_sub(&e->active, 1);
        *released = true;
        return reply(fd, 503, "Service Unavailable", "text/plain", NULL, 0, NULL);
    case EVIL_HTTP404: return reply(fd, 404, "Not Found", "text/plain", NULL, 0, NULL);
    case EVIL_HTTP500: return reply(fd, 500, "Internal Server Error", "text/plain", NULL, 0, NULL);
    case EVIL_HTTP503:
        return reply(fd, 503, "Service Unavailable", "text/plain", NULL, 0, "Retry-After: 60\r\n");
    case EVIL_REDIRECT:
        return reply(fd, 302, "Found", "text/plain", NULL, 0, "Location: http://127.0.0.1:1/\r\n");
    case EVIL_EMPTY: return reply(fd, 200, "OK", "application/ocsp-response", NULL, 0, NULL);
    case EVIL_GARBAGE:
        return reply(fd, 200, "OK", "application/ocsp-response",
                     (const unsigned char *)"<html>not OCSP</html>", 21, NULL);
    case EVIL_TOO_LARGE: {
        size_t n = 300 * 1024;
        unsigned char *big = calloc(1, n);

        keep = reply(fd, 200, "OK", "application/ocsp-response", big, n, NULL);
        free(big);
        return keep;
    }
    default: break;
    }
    if (s == EVIL_CACHED) {
        presigned *c;

        pthread_mutex_lock(&e->mu);
        for (c = e->cached; c != NULL && c->serial != serial; c = c->next)
            ;
        if (c == NULL && (c = calloc(1, sizeof(*c))) != NULL) {
            c->serial = serial;
            c->der = make_response(e, EVIL_GOOD, leaf, &c->len);
            c->next = e->cached;
            e->cached = c;
        }
        keep = c && c->der ? reply(fd, 200, "OK", "application/ocsp-response", c->der, c->len,
                                   "Cache-Control: max-age=9000\r\n")
                           : reply(fd, 500, "Internal Server Error", "text/plain", NULL, 0, NULL);
        pthread_mutex_unlock(&e->mu);
        return keep;
    }
    der = make_response(e, s, leaf, &len);
    if (der == NULL)
        return reply(fd, 500, "Internal Server Error", "text/plain", NULL, 0, NULL);
    switch (s) {
    case EVIL_BER: {
        /* The outer SEQUENCE with an indefinite length (BER, as some
         * responders send it): 30 80 <contents> 00 00. */
        size_t hl = der[1] & 0x80 ? 2 + (size_t)(der[1] & 0x7f) : 2;
        size_t blen = len - hl;
        unsigned char *ber = malloc(blen + 4);

        ber[0] = 0x30;
        ber[1] = 0x80;
        memcpy(ber + 2, der + hl, blen);
        ber[2 + blen] = 0;
        ber[3 + blen] = 0;
        keep = reply(fd, 200, "OK", "application/ocsp-response", ber, blen + 4, NULL);
        free(ber);
        break;
    }
    case EVIL_GZIP: {
        /* A compressed answer the client never asked for: a gzip member
         * header (RFC 1952) in front of stored bytes. */
        static const unsigned char gz[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
        unsigned char *z = malloc(len + sizeof(gz));

        memcpy(z, gz, sizeof(gz));
        memcpy(z + sizeof(gz), der, len);
        keep = reply(fd, 200, "OK", "application/ocsp-response", z, len + sizeof(gz),
                     "Content-Encoding: gzip\r\n");
        free(z);
        break;
    }
    case EVIL_BAD_CTYPE: keep = reply(fd, 200, "OK", "text/html", der, len, NULL); break;
    case EVIL_TRUNCATED:
        keep = reply(fd, 200, "OK", "application/ocsp-response", der, len / 2, NULL);
        break;
    case EVIL_CLOSE_MID: /* announces all of it, sends half, closes */
        if (send_head(fd, 200, "OK", "application/ocsp-response", len, NULL))
            tr_send_all(fd, der, len / 2);
        keep = false;
        break;
    case EVIL_DRIP:
        keep = send_head(fd, 200, "OK", "application/ocsp-response", len, NULL);
        for (size_t b = 0; keep && b < len; b++)
            keep = tr_send_all(fd, der + b, 1) && nap(e, 1000);
        break;
    default: keep = reply(fd, 200, "OK", "application/ocsp-response", der, len, NULL);
    }
    free(der);
    return keep;
}

typedef struct conn_arg {
    evil *e;
    int fd;
} conn_arg;

static void *conn_main(void *arg)
{
    conn_arg *ca = arg;
    evil *e = ca->e;
    int fd = ca->fd;
    char buf[16384];
    size_t used = 0;

    free(ca);
    for (;;) {
        char *end, method[8], path[8192];
        size_t head_len, clen = 0;
        const char *cl;
        ssize_t n;

        while ((end = memmem(buf, used, "\r\n\r\n", 4)) == NULL) {
            if (used == sizeof(buf) || atomic_load(&e->stop))
                goto out;
            n = recv(fd, buf + used, sizeof(buf) - used, 0);
            if (n <= 0)
                goto out;
            used += (size_t)n;
        }
        head_len = (size_t)(end - buf) + 4;
        buf[head_len - 1] = '\0';
        if (sscanf(buf, "%7s %8191s", method, path) != 2)
            goto out;
        cl = strcasestr(buf, "\r\nContent-Length:");
        if (cl)
            clen = strtoul(cl + 17, NULL, 10);
        if (clen > sizeof(buf) - head_len)
            goto out;
        while (used < head_len + clen) {
            n = recv(fd, buf + used, sizeof(buf) - used, 0);
            if (n <= 0)
                goto out;
            used += (size_t)n;
        }
        {
            long now = atomic_fetch_add(&e->active, 1) + 1, max = atomic_load(&e->max_active);
            bool keep, released = false;

            while (now > max && !atomic_compare_exchange_weak(&e->max_active, &max, now))
                ;
            /* HTTP/1.0 without keep-alive: close after the answer (nginx's
             * own OCSP client reads until the connection closes). */
            bool close_after = strstr(buf, " HTTP/1.0\r\n") != NULL &&
                               strcasestr(buf, "\r\nConnection: keep-alive") == NULL;

            keep = answer(e, fd, method, path, (unsigned char *)buf + head_len, clen, &released);
            if (!released)
                atomic_fetch_sub(&e->active, 1);
            if (!keep || close_after)
                goto out;
        }
        memmove(buf, buf + head_len + clen, used - head_len - clen);
        used -= head_len + clen;
    }
out:
    shutdown(fd, SHUT_RDWR);
    return NULL;
}

static void *accept_main(void *arg)
{
    evil *e = arg;

    while (!atomic_load(&e->stop)) {
        struct pollfd pfd = {e->lfd, POLLIN, 0};
        conn_arg *ca;
        int fd, one = 1;

        if (poll(&pfd, 1, 100) <= 0)
            continue;
        fd = accept(e->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        atomic_fetch_add(&e->connections, 1);
        pthread_mutex_lock(&e->mu);
        if (e->n_conns == MAX_CONNS) {
            pthread_mutex_unlock(&e->mu);
            close(fd);
            continue;
        }
        ca = malloc(sizeof(*ca));
        ca->e = e;
        ca->fd = fd;
        e->conns[e->n_conns] = fd;
        if (pthread_create(&e->threads[e->n_conns], NULL, conn_main, ca) != 0) {
            free(ca);
            close(fd);
        } else {
            e->n_conns++;
        }
        pthread_mutex_unlock(&e->mu);
    }
    return NULL;
}

evil *evil_start(const tp_pki *pki, int64_t (*now)(void *), void *now_ctx, int64_t validity_s)
{
    evil *e = calloc(1, sizeof(*e));
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    tp_cert_opts o;

    e->pki = pki;
    e->now = now;
    e->now_ctx = now_ctx;
    e->validity = validity_s;
    pthread_mutex_init(&e->mu, NULL);
    memset(&o, 0, sizeof(o));
    o.cn = "srvocsp test issuing CA";
    o.serial = 2;
    o.ca = true;
    o.not_before = now(now_ctx) - 86400;
    o.not_after = now(now_ctx) + 365 * 86400;
    if (!tp_cert_make(&e->forged_ca, &o))
        return NULL;
    e->lfd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(e->lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(e->lfd, 512) != 0 ||
        getsockname(e->lfd, (struct sockaddr *)&a, &alen) != 0)
        return NULL;
    e->port = ntohs(a.sin_port);
    pthread_create(&e->acceptor, NULL, accept_main, e);
    return e;
}

void evil_stop(evil *e)
{
    int i;

    if (e == NULL)
        return;
    atomic_store(&e->stop, true);
    pthread_join(e->acceptor, NULL);
    pthread_mutex_lock(&e->mu);
    for (i = 0; i < e->n_conns; i++)
        shutdown(e->conns[i], SHUT_RDWR);
    pthread_mutex_unlock(&e->mu);
    for (i = 0; i < e->n_conns; i++) {
        pthread_join(e->threads[i], NULL);
        close(e->conns[i]);
    }
    close(e->lfd);
    for (i = 0; i < PRESIGNED_BUCKETS; i++)
        while (e->buckets[i]) {
            presigned *p = e->buckets[i];

            e->buckets[i] = p->next;
            free(p->der);
            free(p);
        }
    while (e->cached) {
        presigned *p = e->cached;

        e->cached = p->next;
        free(p->der);
        free(p);
    }
    tp_cert_free(&e->forged_ca);
    pthread_mutex_destroy(&e->mu);
    free(e);
}
