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
 * the engine's.  libmicrohttpd's timeout counts idle time only, so clients
 * that each send a byte now and then could hold every connection for
 * ever: a reaper thread ends any connection older than a whole-life
 * deadline, through a duplicate of its socket taken when it opened (the
 * duplicate keeps the socket, so a descriptor number the server has
 * closed and reused is never touched).  Loopback by default; another
 * address only when asked for explicitly (--metrics-any-address).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "watch.h"

#ifdef SRVOCSP_HAVE_MICROHTTPD
#include <microhttpd.h>

#define METRICS_CONNECTIONS 32   /* at once, all clients together */
#define METRICS_TIMEOUT_S 5      /* idle connection closed after */
#define METRICS_LIFE_S 10        /* any connection closed after, however busy */
#define METRICS_SLOTS (METRICS_CONNECTIONS + 8)

typedef struct wconn {
    int fd;                      /* our duplicate of its socket; -1 free */
    int64_t since_ms;
} wconn;

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
    /* Connections' ages, for the reaper (under cmu). */
    pthread_mutex_t cmu;
    pthread_cond_t cwake;
    wconn conns[METRICS_SLOTS];
    bool reaper_stop, reaper_started;
    pthread_t reaper;
};

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* On libmicrohttpd's thread, as a connection opens and closes. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    wmetrics *m = cls;
    wconn *slot = *socket_context;

    pthread_mutex_lock(&m->cmu);
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        int fd = ci != NULL ? fcntl(ci->connect_fd, F_DUPFD_CLOEXEC, 0) : -1;

        for (size_t i = 0; fd >= 0 && i < METRICS_SLOTS; i++)
            if (m->conns[i].fd < 0) {
                m->conns[i].fd = fd;
                m->conns[i].since_ms = mono_ms();
                *socket_context = &m->conns[i];
                fd = -1;
            }
        if (fd >= 0) /* no slot: cannot happen under the connection limit */
            close(fd);
    } else if (slot != NULL) {
        close(slot->fd);
        slot->fd = -1;
        *socket_context = NULL;
    }
    pthread_mutex_unlock(&m->cmu);
}

/* Once a second: a connection past its whole life is shut down; the
 * server then sees it end and frees it as any other. */
static void *reaper(void *arg)
{
    wmetrics *m = arg;
    struct timespec ts;

    pthread_mutex_lock(&m->cmu);
    while (!m->reaper_stop) {
        int64_t now = mono_ms();

        for (size_t i = 0; i < METRICS_SLOTS; i++)
            if (m->conns[i].fd >= 0 && now - m->conns[i].since_ms > METRICS_LIFE_S * 1000)
                shutdown(m->conns[i].fd, SHUT_RDWR);
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&m->cwake, &m->cmu, &ts);
    }
    pthread_mutex_unlock(&m->cmu);
    return NULL;
}

static void conns_init(wmetrics *m)
{
    pthread_condattr_t ca;

    pthread_mutex_init(&m->cmu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&m->cwake, &ca);
    pthread_condattr_destroy(&ca);
    for (size_t i = 0; i < METRICS_SLOTS; i++)
        m->conns[i].fd = -1;
}

static void conns_fini(wmetrics *m)
{
    if (m->reaper_started) {
        pthread_mutex_lock(&m->cmu);
        m->reaper_stop = true;
        pthread_cond_signal(&m->cwake);
        pthread_mutex_unlock(&m->cmu);
        pthread_join(m->reaper, NULL);
    }
    for (size_t i = 0; i < METRICS_SLOTS; i++)
        if (m->conns[i].fd >= 0)
            close(m->conns[i].fd);
    pthread_cond_destroy(&m->cwake);
    pthread_mutex_destroy(&m->cmu);
}

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
    conns_init(m);
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    errno = 0;
    m->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, m, MHD_OPTION_SOCK_ADDR,
                            (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT,
                            (unsigned)METRICS_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT,
                            (unsigned)METRICS_TIMEOUT_S, MHD_OPTION_NOTIFY_CONNECTION,
                            on_connection, m, MHD_OPTION_END);
    if (m->d == NULL) {
        snprintf(err, errlen, "cannot listen on %s: %s", spec,
                 errno ? strerror(errno) : "libmicrohttpd refused to start");
        goto fail;
    }
    if (pthread_create(&m->reaper, NULL, reaper, m) != 0) {
        snprintf(err, errlen, "--metrics: cannot start a thread");
        MHD_stop_daemon(m->d);
        goto fail;
    }
    m->reaper_started = true;
    return m;
fail:
    conns_fini(m);
    pthread_mutex_destroy(&m->mu);
    free(m);
    return NULL;
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
    MHD_stop_daemon(m->d); /* closes every connection: our duplicates are closed with them */
    conns_fini(m);
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
