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
 *
 * Responders as deployed do not all take both methods: some decode a GET's
 * path twice (or turn "+" into a space) and refuse it, some never answer a
 * GET at all, CDN fronts refuse POST.  A transfer therefore carries the
 * request in both forms and steps around such a responder:
 *  - a GET answered 400, 404, 405, 414, or 200 with a body that is not an
 *    OCSP response (or says malformedRequest) is sent again at once as
 *    POST, in the same transfer;
 *  - a POST answered 405 or 501 is sent again at once as GET;
 *  - a GET that got no answer at all on an accepted connection makes the
 *    next request to that responder a POST (on trial);
 *  - what worked is remembered per responder (net/method_memo.c) and used
 *    first, until it is forgotten a day later.
 * Only the transfer's final answer reaches the engine.
 */
#include "net/easy_pool.h"
#include "net/method_memo.h"
#include "net/transport.h"

#include <curl/curl.h>
#include <openssl/ocsp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct xfer {
    struct xfer *next;
    CURL *easy;
    srvocsp_http_done_fn done;
    void *done_arg;
    unsigned char *buf;
    size_t len, cap, max;
    bool too_large;
    char errbuf[CURL_ERROR_SIZE];
    char content_encoding[64];   /* of the final answer; "" if none */

    /* The request in both forms, for stepping between methods. */
    struct curl_transport *t;
    char *get_url;               /* NULL: no GET form (too long, a query) */
    char *post_url;              /* NULL: no POST form known */
    unsigned char *der;
    size_t der_len;
    char *proxy;
    long timeout_ms;
    int64_t started_ms;
    bool post;                   /* the method of the exchange under way */
    bool asked_post;             /* RFC 5019's choice, made by the caller */
    bool from_memo;              /* |post| differs from it by what was remembered */
    bool trial;                  /* ... and that is only on trial */
    bool switched;               /* already sent again with the other method */
    char key[SRVOCSP__MEMO_KEY_LEN]; /* the responder; "" when no fallback is possible */
    char first_why[160];         /* what the first method got */
} xfer;

typedef struct curl_transport {
    pthread_mutex_t mu;  /* guards |pending| and |stop| */
    CURLM *multi;
    bool stop;
    xfer *pending;       /* handed over, not yet added to |multi| */
    srvocsp__easy_pool easy; /* handles kept between transfers */
    xfer *active;        /* added to |multi|; the engine thread's */
    atomic_uint_fast64_t get_to_post, post_to_get; /* requests sent with the other method */
    atomic_uint_fast64_t get_unanswered;           /* GETs that hung on an accepted connection */
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
    srvocsp__easy_put(&x->t->easy, x->easy);
    free(x->buf);
    free(x->get_url);
    free(x->post_url);
    free(x->der);
    free(x->proxy);
    free(x);
}

/* Records what this transfer taught about its responder. */
static void learn(xfer *x, CURLcode rc, long status)
{
    int64_t now = srvocsp__system_monotonic_ms(NULL);
    curl_off_t connected = 0;
    long sent = 0;

    if (x->key[0] == '\0')
        return;
    /* A transfer that completed with the method first chosen and not on
     * trial teaches nothing, whatever it got: spare it a parse of the
     * body on the engine thread (every refresh comes here). */
    if (rc == CURLE_OK && !x->switched && !x->trial)
        return;
    if (rc == CURLE_OK && srvocsp__answer_judgeable(status, x->buf, x->len)) {
        /* Learnt from a fallback or a trial only: a method used from memory
         * that works does not extend the memory, so a day later the first
         * choice is tried again (a fixed responder gets GET back). */
        if (x->post != x->asked_post && (x->switched || x->trial))
            srvocsp__memo_learn(x->key, x->post ? SRVOCSP__USE_POST : SRVOCSP__USE_GET,
                                x->first_why[0] ? x->first_why : NULL, now);
        else if (x->post == x->asked_post && x->switched)
            srvocsp__memo_forget(x->key); /* what was remembered no longer holds */
        return;
    }
    /* A POST tried only because a GET once hung, and it failed too: the
     * responder is down, not picky about methods. */
    if (x->from_memo && x->trial && !x->switched) {
        srvocsp__memo_forget(x->key);
        return;
    }
    /* The request went out on an accepted connection and nothing came back
     * (a responder that is down does not accept, or answers something). */
    curl_easy_getinfo(x->easy, CURLINFO_CONNECT_TIME_T, &connected);
    curl_easy_getinfo(x->easy, CURLINFO_REQUEST_SIZE, &sent);
    if (!x->post && rc == CURLE_OPERATION_TIMEDOUT && status == 0 &&
        (sent > 0 || connected > 0)) {
        char why[160];

        srvocsp__fmt(why, sizeof(why), "GET got no answer in %ld ms on an accepted connection",
                     x->timeout_ms);
        srvocsp__memo_suspect_get(x->key, why, now);
        atomic_fetch_add(&x->t->get_unanswered, 1);
    }
}

static void finish(xfer *x, CURLcode rc)
{
    srvocsp_http_result res;
    char *ct = NULL;
    long status = 0;

    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    learn(x, rc, status);
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

/* Adds what was handed over to the multi handle; returns how many could
 * not be added and were finished at once (they count as delivered). */
static int add_pending(curl_transport *t)
{
    xfer *add, *x;
    int n = 0;

    pthread_mutex_lock(&t->mu);
    add = t->pending;
    t->pending = NULL;
    pthread_mutex_unlock(&t->mu);
    while (add != NULL) {
        x = add;
        add = x->next;
        if (curl_multi_add_handle(t->multi, x->easy) != CURLM_OK) {
            finish(x, CURLE_FAILED_INIT);
            n++;
            continue;
        }
        x->next = t->active;
        t->active = x;
    }
    return n;
}

static bool easy_setup(xfer *x);

/* After the first exchange of |x|: sends it again with the other method
 * when the answer says the responder cannot take this one.  Returns 1 when
 * |x| went out again (it stays active), 0 when it is done, -1 when it
 * could not be sent again. */
static int fall_back(curl_transport *t, xfer *x, CURLcode rc)
{
    long status = 0;
    char why[160];

    if (x->switched || x->key[0] == '\0' || rc != CURLE_OK)
        return 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    if (!x->post && x->post_url != NULL &&
        srvocsp__get_refused(status, x->buf, x->len, why, sizeof(why))) {
        atomic_fetch_add(&t->get_to_post, 1);
    } else if (x->post && x->get_url != NULL && srvocsp__post_refused(status, why, sizeof(why))) {
        atomic_fetch_add(&t->post_to_get, 1);
    } else {
        return 0;
    }
    snprintf(x->first_why, sizeof(x->first_why), "%s", why);
    x->switched = true;
    x->post = !x->post;
    x->len = 0;
    x->too_large = false;
    x->errbuf[0] = '\0';
    x->content_encoding[0] = '\0';
    if (!easy_setup(x) || curl_multi_add_handle(t->multi, x->easy) != CURLM_OK) {
        srvocsp__fmt(x->errbuf, sizeof(x->errbuf), "%s; the %s could not be sent", why,
                     x->post ? "POST" : "GET");
        return -1;
    }
    return 1;
}

/* Moves transfers along and delivers the finished ones; returns how many.
 * Every perform is followed by a read of what it finished: a transfer
 * that finished in a perform whose messages were left unread had no
 * socket left to wake the wait, and was delivered only when the wait ran
 * out (a second; wakeups the engine sent itself used to hide this). */
static int step(curl_transport *t)
{
    CURLMsg *msg;
    xfer *x;
    int running = 0, left = 0, n;
    bool again;

    n = add_pending(t);
    do {
        again = false;
        curl_multi_perform(t->multi, &running);
        while ((msg = curl_multi_info_read(t->multi, &left)) != NULL) {
            CURLcode rc;

            if (msg->msg != CURLMSG_DONE)
                continue;
            rc = msg->data.result;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            curl_multi_remove_handle(t->multi, msg->easy_handle);
            switch (fall_back(t, x, rc)) {
            case 1: /* same transfer, other method: moved along before the wait */
                again = true;
                continue;
            case -1: rc = CURLE_FAILED_INIT; break;
            default: break;
            }
            unlink_active(t, x);
            finish(x, rc);
            n++;
        }
    } while (again); /* at most once more per transfer: it falls back once */
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
    if (t->multi == NULL || !srvocsp__easy_pool_init(&t->easy)) {
        curl_multi_cleanup(t->multi);
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
    srvocsp__easy_pool_free(&t->easy);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

/* (Re)creates |x|'s easy handle for its current method, with what is left
 * of the transfer's timeout (at least a second for a second exchange). */
static bool easy_setup(xfer *x)
{
    CURL *c;
    long tmo = x->timeout_ms;

    /* A second exchange reuses the first one's handle (out of |multi|). */
    if (x->easy != NULL)
        curl_easy_reset(x->easy);
    else
        x->easy = srvocsp__easy_get(&x->t->easy);
    if ((c = x->easy) == NULL)
        return false;
    if (x->switched) {
        tmo -= (long)(srvocsp__system_monotonic_ms(NULL) - x->started_ms);
        if (tmo < 1000)
            tmo = 1000;
    }
    curl_easy_setopt(c, CURLOPT_PRIVATE, (char *)x);
    curl_easy_setopt(c, CURLOPT_URL, x->post ? x->post_url : x->get_url);
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
    if (x->proxy != NULL)
        curl_easy_setopt(c, CURLOPT_PROXY, x->proxy);
    if (x->post) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->der_len);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, (const char *)x->der); /* |x| owns the copy */
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, srvocsp__easy_headers(&x->t->easy, x->post));
    return true;
}

/* Copies |req| in both of its forms and picks the method: the caller's,
 * unless the responder is remembered to need the other. */
static xfer *xfer_new(curl_transport *t, const srvocsp_http_request *req,
                      srvocsp_http_done_fn done, void *arg)
{
    xfer *x = srvocsp__calloc(1, sizeof(*x));
    const unsigned char *der = req->body ? req->body : req->der;
    size_t der_len = req->body ? req->body_len : req->der_len;
    int64_t now = srvocsp__system_monotonic_ms(NULL);
    srvocsp__method how;

    if (x == NULL)
        return NULL;
    x->t = t;
    x->done = done;
    x->done_arg = arg;
    x->max = req->max_response_size ? req->max_response_size : SRVOCSP__DEFAULT_MAX_RESPONSE;
    x->timeout_ms = req->timeout_ms ? (long)req->timeout_ms : 15000L;
    x->started_ms = now;
    x->asked_post = x->post = req->body != NULL;
    if (req->proxy != NULL && (x->proxy = srvocsp__strdup(req->proxy)) == NULL)
        goto fail;
    if (der != NULL && der_len > 0) {
        if ((x->der = srvocsp__malloc(der_len)) == NULL)
            goto fail;
        memcpy(x->der, der, der_len);
        x->der_len = der_len;
    }
    if (x->asked_post) {
        if ((x->post_url = srvocsp__strdup(req->url)) == NULL)
            goto fail;
        x->get_url = srvocsp__get_url(req->url, x->der, x->der_len); /* NULL: POST only */
    } else {
        if ((x->get_url = srvocsp__strdup(req->url)) == NULL)
            goto fail;
        if (req->post_url != NULL && x->der != NULL &&
            (x->post_url = srvocsp__strdup(req->post_url)) == NULL)
            goto fail;
    }
    /* Only a request with both forms can step between them. */
    if (x->get_url != NULL && x->post_url != NULL &&
        srvocsp__responder_key(x->post_url, x->key, sizeof(x->key))) {
        how = srvocsp__memo_pick(x->key, now, &x->trial);
        if (how == SRVOCSP__USE_POST && !x->post) {
            x->post = x->from_memo = true;
            atomic_fetch_add(&t->get_to_post, 1);
        } else if (how == SRVOCSP__USE_GET && x->post) {
            x->post = false;
            x->from_memo = true;
            atomic_fetch_add(&t->post_to_get, 1);
        }
    }
    if (!easy_setup(x))
        goto fail;
    return x;
fail:
    xfer_free(x);
    return NULL;
}

void srvocsp__curl_stats(void *arg, srvocsp_engine_stats *out)
{
    curl_transport *t = arg;

    if (t == NULL)
        return;
    out->fallbacks_get_to_post = atomic_load(&t->get_to_post);
    out->fallbacks_post_to_get = atomic_load(&t->post_to_get);
    out->get_unanswered = atomic_load(&t->get_unanswered);
}

srvocsp_error srvocsp__curl_start(void *arg, const srvocsp_http_request *req,
                                  srvocsp_http_done_fn done, void *done_arg, bool driver)
{
    curl_transport *t = arg;
    xfer *x = xfer_new(t, req, done, done_arg);

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
    /* The driver's own transfers (every refresh the engine starts) need
     * no wakeup: it calls step() before it waits.  One sent to itself
     * cost a send per transfer and a poll that returned at once. */
    if (!driver)
        curl_multi_wakeup(t->multi);
    return SRVOCSP_OK;
}
