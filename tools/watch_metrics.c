/*
 * srvocsp watch: GET /metrics (Prometheus text) and GET /healthz, served by
 * libmicrohttpd on its own thread.
 *
 * Nobody can freeze watch through it: the HTTP server never touches
 * watch's state.  The loop renders both answers when something changed (at
 * most once per pass) and swaps them in here under a short lock; a request
 * takes a reference to the current text and is answered from it.  A client
 * that sends nothing, or reads slowly, costs one of a bounded number of
 * connections until a per-connection timeout, never the loop's time or
 * the engine's.  Loopback by default; another address only when asked for
 * explicitly (--metrics-any-address).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "watch.h"

#ifdef SRVOCSP_HAVE_MICROHTTPD
#include <microhttpd.h>

#define METRICS_CONNECTIONS 32   /* at once, all clients together */
#define METRICS_TIMEOUT_S 5      /* idle connection closed after */

typedef struct snap {
    atomic_int refs;
    size_t len;
    char *text;
} snap;

struct wmetrics {
    struct MHD_Daemon *d;
    pthread_mutex_t mu;
    snap *metrics, *health;
    bool healthy;
};

static snap *snap_new(char *text, size_t len)
{
    snap *s = malloc(sizeof(*s));

    if (s == NULL) {
        free(text);
        return NULL;
    }
    atomic_init(&s->refs, 1);
    s->len = len;
    s->text = text;
    return s;
}

static void snap_free(void *arg)
{
    snap *s = arg;

    if (s != NULL && atomic_fetch_sub(&s->refs, 1) == 1) {
        free(s->text);
        free(s);
    }
}

static enum MHD_Result answer_text(struct MHD_Connection *conn, unsigned code, const char *type,
                                   snap *s)
{
    struct MHD_Response *r;
    enum MHD_Result ret;

    r = MHD_create_response_from_buffer_with_free_callback_cls(s->len, s->text, snap_free, s);
    if (r == NULL) {
        snap_free(s);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    ret = MHD_queue_response(conn, code, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result answer_const(struct MHD_Connection *conn, unsigned code, const char *text)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ret;

    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "text/plain");
    if (code == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, "Allow", "GET, HEAD");
    ret = MHD_queue_response(conn, code, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **req_cls)
{
    wmetrics *m = cls;
    snap *s = NULL;
    bool health = false, healthy = false;

    (void)version;
    (void)upload_data;
    if (*req_cls == NULL) { /* headers only so far: answer once they are in */
        *req_cls = m;
        return MHD_YES;
    }
    if (*upload_data_size != 0) {
        *upload_data_size = 0; /* a body is not wanted; ignored */
        return MHD_YES;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return answer_const(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD\n");
    if (strcmp(url, "/metrics") == 0) {
        health = false;
    } else if (strcmp(url, "/healthz") == 0) {
        health = true;
    } else {
        return answer_const(conn, MHD_HTTP_NOT_FOUND, "not found: try /metrics or /healthz\n");
    }
    pthread_mutex_lock(&m->mu);
    s = health ? m->health : m->metrics;
    healthy = m->healthy;
    if (s != NULL)
        atomic_fetch_add(&s->refs, 1);
    pthread_mutex_unlock(&m->mu);
    if (s == NULL)
        return answer_const(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "starting\n");
    if (health)
        return answer_text(conn, healthy ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
                           "text/plain; charset=utf-8", s);
    return answer_text(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", s);
}

/* |spec|: PORT, HOST:PORT or [V6]:PORT; HOST numeric or "localhost". */
static bool parse_spec(const char *spec, struct sockaddr_storage *ss, char *err, size_t errlen)
{
    char host[128] = "127.0.0.1", *end;
    const char *port = spec, *colon = strrchr(spec, ':');
    struct addrinfo hints, *ai = NULL;
    long n;

    if (colon != NULL) {
        size_t hl = (size_t)(colon - spec);

        if (hl >= 2 && spec[0] == '[' && spec[hl - 1] == ']') {
            spec++;
            hl -= 2;
        }
        if (hl == 0 || hl >= sizeof(host)) {
            snprintf(err, errlen, "--metrics: bad address in '%s'", spec);
            return false;
        }
        memcpy(host, spec, hl);
        host[hl] = '\0';
        port = colon + 1;
        if (strcmp(host, "localhost") == 0)
            strcpy(host, "127.0.0.1");
    }
    errno = 0;
    n = strtol(port, &end, 10);
    if (errno != 0 || end == port || *end != '\0' || n < 1 || n > 65535) {
        snprintf(err, errlen, "--metrics: the port must be 1 to 65535, not '%s'", port);
        return false;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &hints, &ai) != 0 || ai == NULL) {
        snprintf(err, errlen, "--metrics: '%s' is not a numeric IPv4 or IPv6 address", host);
        return false;
    }
    memset(ss, 0, sizeof(*ss));
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    return true;
}

static bool is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
    return ss->ss_family == AF_INET6 &&
           IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

wmetrics *wm_start(const char *spec, bool any_address, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    wmetrics *m;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO;

    if (!parse_spec(spec, &ss, err, errlen))
        return NULL;
    if (!any_address && !is_loopback(&ss)) {
        snprintf(err, errlen,
                 "--metrics %s is not a loopback address; add --metrics-any-address to serve "
                 "metrics beyond this machine",
                 spec);
        return NULL;
    }
    if ((m = calloc(1, sizeof(*m))) == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&m->mu, NULL);
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    errno = 0;
    m->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, m, MHD_OPTION_SOCK_ADDR,
                            (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT,
                            (unsigned)METRICS_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT,
                            (unsigned)METRICS_TIMEOUT_S, MHD_OPTION_END);
    if (m->d == NULL) {
        snprintf(err, errlen, "cannot listen on %s: %s", spec,
                 errno ? strerror(errno) : "libmicrohttpd refused to start");
        pthread_mutex_destroy(&m->mu);
        free(m);
        return NULL;
    }
    return m;
}

void wm_publish(wmetrics *m, char *metrics, size_t mlen, char *health, size_t hlen, bool healthy)
{
    snap *a = metrics ? snap_new(metrics, mlen) : NULL;
    snap *b = health ? snap_new(health, hlen) : NULL;
    snap *old_a = NULL, *old_b = NULL;

    pthread_mutex_lock(&m->mu);
    if (a != NULL) {
        old_a = m->metrics;
        m->metrics = a;
    }
    if (b != NULL) {
        old_b = m->health;
        m->health = b;
        m->healthy = healthy;
    }
    pthread_mutex_unlock(&m->mu);
    snap_free(old_a);
    snap_free(old_b);
}

void wm_stop(wmetrics *m)
{
    if (m == NULL)
        return;
    MHD_stop_daemon(m->d);
    snap_free(m->metrics);
    snap_free(m->health);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

#else /* no libmicrohttpd */

wmetrics *wm_start(const char *spec, bool any_address, char *err, size_t errlen)
{
    (void)spec;
    (void)any_address;
    snprintf(err, errlen, "--metrics: this srvocsp was built without libmicrohttpd "
                          "(install libmicrohttpd-dev and rebuild)");
    return NULL;
}

void wm_publish(wmetrics *m, char *metrics, size_t mlen, char *health, size_t hlen, bool healthy)
{
    (void)m;
    (void)mlen;
    (void)hlen;
    (void)healthy;
    free(metrics);
    free(health);
}

void wm_stop(wmetrics *m)
{
    (void)m;
}

#endif
