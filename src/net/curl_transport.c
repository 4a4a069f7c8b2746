/*
 * The default transport: libcurl's multi interface, driven by the engine's
 * one thread from where it waits (srvocsp__curl_drive).  Transfers are
 * independent, so a responder that hangs only costs its own transfer's
 * timeout; the multi handle keeps connections alive per responder between
 * transfers.
 *
 * The multi handle is touched only by the engine thread (and by
 * srvocsp__curl_free once that thread has stopped): other threads hand
 * transfers over through |pending| and end the wait with
 * curl_multi_wakeup, which libcurl makes safe from any thread.
 */
#include "net/transport.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct xfer {
    struct xfer *next;
    CURL *easy;
    struct curl_slist *headers;
    srvocsp_http_done_fn done;
    void *done_arg;
    unsigned char *buf;
    size_t len, cap, max;
    bool too_large;
    char errbuf[CURL_ERROR_SIZE];
    char content_encoding[64];   /* of the final answer; "" if none */
} xfer;

typedef struct curl_transport {
    pthread_mutex_t mu;  /* guards |pending| and |stop| */
    CURLM *multi;
    bool stop;
    xfer *pending;       /* handed over, not yet added to |multi| */
    xfer *active;        /* added to |multi|; the engine thread's */
} curl_transport;

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static CURLcode g_init_rc;

static void global_init(void)
{
    g_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    xfer *x = arg;
    size_t n = size * nmemb;

    /* Refuse to grow past the cap: returning short aborts the transfer. */
    if (x->len + n > x->max) {
        x->too_large = true;
        return 0;
    }
    if (x->len + n > x->cap) {
        size_t cap = x->cap ? x->cap : 4096;
        unsigned char *b;

        while (cap < x->len + n)
            cap *= 2;
        if (cap > x->max)
            cap = x->max;
        b = srvocsp__realloc(x->buf, cap);
        if (b == NULL)
            return 0;
        x->buf = b;
        x->cap = cap;
    }
    memcpy(x->buf + x->len, data, n);
    x->len += n;
    return n;
}

/* Only Content-Encoding is wanted from the headers: we never ask for a
 * compressed answer (no Accept-Encoding), so libcurl does not decode one,
 * and a body that arrives compressed must be named as such, not fail as
 * "not DER".  A new status line starts a new answer (after a 100). */
static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
    static const char name[] = "content-encoding:";
    xfer *x = arg;
    size_t n = size * nmemb, k = sizeof(name) - 1;

    if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        x->content_encoding[0] = '\0';
    } else if (n > k && strncasecmp(data, name, k) == 0) {
        const char *v = data + k;
        size_t vl = n - k;

        while (vl > 0 && (*v == ' ' || *v == '\t')) {
            v++;
            vl--;
        }
        while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
            vl--;
        if (vl >= sizeof(x->content_encoding))
            vl = sizeof(x->content_encoding) - 1;
        memcpy(x->content_encoding, v, vl);
        x->content_encoding[vl] = '\0';
    }
    return n;
}

static void xfer_free(xfer *x)
{
    if (x == NULL)
        return;
    curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->headers);
    free(x->buf);
    free(x);
}

static void finish(xfer *x, CURLcode rc)
{
    srvocsp_http_result res;
    char *ct = NULL;

    memset(&res, 0, sizeof(res));
    if (rc == CURLE_OK) {
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &res.http_status);
        curl_easy_getinfo(x->easy, CURLINFO_CONTENT_TYPE, &ct);
        res.content_type = ct;
        res.content_encoding = x->content_encoding[0] ? x->content_encoding : NULL;
        res.body = x->buf;
        res.body_len = x->len;
        res.error = SRVOCSP_OK;
    } else if (x->too_large || rc == CURLE_FILESIZE_EXCEEDED) {
        res.error = SRVOCSP_E_TOO_LARGE;
        res.detail = "body exceeds max_response_size";
    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
        res.error = SRVOCSP_E_TIMEOUT;
        res.detail = x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc);
    } else {
        res.error = SRVOCSP_E_TRANSPORT;
        res.detail = x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc);
    }
    x->done(x->done_arg, &res);
    xfer_free(x);
}

static void fail_all(xfer *list, const char *why)
{
    while (list != NULL) {
        xfer *x = list;
        srvocsp_http_result res;

        list = x->next;
        memset(&res, 0, sizeof(res));
        res.error = SRVOCSP_E_SHUTDOWN;
        res.detail = why;
        x->done(x->done_arg, &res);
        xfer_free(x);
    }
}

static void unlink_active(curl_transport *t, xfer *x)
{
    xfer **pp;

    for (pp = &t->active; *pp != NULL; pp = &(*pp)->next)
        if (*pp == x) {
            *pp = x->next;
            return;
        }
}

/* Adds what other threads handed over to the multi handle. */
static void add_pending(curl_transport *t)
{
    xfer *add, *x;

    pthread_mutex_lock(&t->mu);
    add = t->pending;
    t->pending = NULL;
    pthread_mutex_unlock(&t->mu);
    while (add != NULL) {
        x = add;
        add = x->next;
        if (curl_multi_add_handle(t->multi, x->easy) != CURLM_OK) {
            finish(x, CURLE_FAILED_INIT);
            continue;
        }
        x->next = t->active;
        t->active = x;
    }
}

/* Moves transfers along and delivers the finished ones; returns how many. */
static int step(curl_transport *t)
{
    CURLMsg *msg;
    xfer *x;
    int running = 0, left = 0, n = 0;

    add_pending(t);
    curl_multi_perform(t->multi, &running);
    while ((msg = curl_multi_info_read(t->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        curl_multi_remove_handle(t->multi, msg->easy_handle);
        unlink_active(t, x);
        finish(x, msg->data.result);
        n++;
    }
    return n;
}

void srvocsp__curl_drive(void *arg, int timeout_ms)
{
    srvocsp__curl_drive_fds(arg, timeout_ms, NULL, 0);
}

void srvocsp__curl_drive_fds(void *arg, int timeout_ms, const int *fds, unsigned n)
{
    curl_transport *t = arg;
    struct curl_waitfd extra[8];
    unsigned i;

    /* Finished transfers go back to the engine at once; otherwise wait
     * (curl shortens the wait to its own next timeout) and step again. */
    if (step(t) > 0)
        return;
    /* The engine's other sockets (a shared store's notifications) end the
     * wait too: one thread, one poll. */
    for (i = 0; i < n && i < 8; i++) {
        extra[i].fd = fds[i];
        extra[i].events = CURL_WAIT_POLLIN;
        extra[i].revents = 0;
    }
    curl_multi_poll(t->multi, i ? extra : NULL, i, timeout_ms, NULL);
    step(t);
}

void srvocsp__curl_wakeup(void *arg)
{
    curl_transport *t = arg;

    curl_multi_wakeup(t->multi);
}

void *srvocsp__curl_new(const srvocsp_engine_config *cfg)
{
    curl_transport *t;

    pthread_once(&g_once, global_init);
    if (g_init_rc != CURLE_OK)
        return NULL;
    t = srvocsp__calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->multi = curl_multi_init();
    if (t->multi == NULL) {
        free(t);
        return NULL;
    }
    curl_multi_setopt(t->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)cfg->max_concurrent);
    curl_multi_setopt(t->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)cfg->max_per_host);
    curl_multi_setopt(t->multi, CURLMOPT_MAXCONNECTS, (long)cfg->max_concurrent);
    pthread_mutex_init(&t->mu, NULL);
    return t;
}

void srvocsp__curl_free(void *arg)
{
    curl_transport *t = arg;
    xfer *pending;

    if (t == NULL)
        return;
    pthread_mutex_lock(&t->mu);
    t->stop = true;
    pending = t->pending;
    t->pending = NULL;
    pthread_mutex_unlock(&t->mu);
    /* Whatever is still queued or running ends as shut down. */
    for (xfer *x = t->active; x != NULL; x = x->next)
        curl_multi_remove_handle(t->multi, x->easy);
    fail_all(t->active, "the engine is shutting down");
    t->active = NULL;
    fail_all(pending, "the engine is shutting down");
    curl_multi_cleanup(t->multi);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

static xfer *xfer_new(const srvocsp_http_request *req, srvocsp_http_done_fn done, void *arg)
{
    xfer *x = srvocsp__calloc(1, sizeof(*x));
    CURL *c;
    long tmo = req->timeout_ms ? (long)req->timeout_ms : 15000L;

    if (x == NULL)
        return NULL;
    x->easy = c = curl_easy_init();
    if (c == NULL) {
        free(x);
        return NULL;
    }
    x->done = done;
    x->done_arg = arg;
    x->max = req->max_response_size ? req->max_response_size : SRVOCSP__DEFAULT_MAX_RESPONSE;
    curl_easy_setopt(c, CURLOPT_PRIVATE, (char *)x);
    curl_easy_setopt(c, CURLOPT_URL, req->url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, tmo);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, tmo);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)x->max);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "srvocsp/0.1");
    if (req->proxy != NULL)
        curl_easy_setopt(c, CURLOPT_PROXY, req->proxy);
    x->headers = curl_slist_append(NULL, "Accept: application/ocsp-response");
    if (req->body != NULL) {
        x->headers = curl_slist_append(x->headers, "Content-Type: application/ocsp-request");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        /* COPYPOSTFIELDS: the request outlives the caller's buffer. */
        curl_easy_setopt(c, CURLOPT_COPYPOSTFIELDS, (const char *)req->body);
    }
    if (x->headers == NULL) {
        xfer_free(x);
        return NULL;
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, x->headers);
    return x;
}

srvocsp_error srvocsp__curl_start(void *arg, const srvocsp_http_request *req,
                                  srvocsp_http_done_fn done, void *done_arg)
{
    curl_transport *t = arg;
    xfer *x = xfer_new(req, done, done_arg);

    if (x == NULL)
        return SRVOCSP_E_NOMEM;
    pthread_mutex_lock(&t->mu);
    if (t->stop) {
        pthread_mutex_unlock(&t->mu);
        xfer_free(x);
        return SRVOCSP_E_SHUTDOWN;
    }
    x->next = t->pending;
    t->pending = x;
    pthread_mutex_unlock(&t->mu);
    curl_multi_wakeup(t->multi);
    return SRVOCSP_OK;
}
