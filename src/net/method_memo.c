/* The process-wide memory of which HTTP method each responder answers
 * (net/method_memo.h has the rules). */
#include "net/method_memo.h"

#include <curl/curl.h>
#include <openssl/ocsp.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

typedef struct memo_entry {
    char key[SRVOCSP__MEMO_KEY_LEN];   /* "" when the slot is free */
    srvocsp__method method;
    bool trial;                        /* GET hung once; POST not yet proven */
    int64_t until_ms;                  /* forgotten then */
    uint64_t id;
    uint64_t requests;
    char why[160];
} memo_entry;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static memo_entry g_slots[SRVOCSP__MEMO_SLOTS];
static uint64_t g_next_id = 1;

/* The last URL asked about and its key, under g_mu: parsing a URL with
 * libcurl's parser is a cost every request would pay, while most
 * certificates share a few responders. */
static char g_last_url[512];
static char g_last_key[SRVOCSP__MEMO_KEY_LEN];

static bool parse_key(const char *url, char *key, size_t len);

bool srvocsp__responder_key(const char *url, char *key, size_t len)
{
    bool fits = strlen(url) < sizeof(g_last_url) && len >= sizeof(g_last_key), known;

    if (fits) {
        pthread_mutex_lock(&g_mu);
        known = g_last_url[0] != '\0' && strcmp(g_last_url, url) == 0;
        if (known)
            memcpy(key, g_last_key, sizeof(g_last_key));
        pthread_mutex_unlock(&g_mu);
        if (known)
            return true;
    }
    if (!parse_key(url, key, len))
        return false;
    if (fits) {
        pthread_mutex_lock(&g_mu);
        memcpy(g_last_url, url, strlen(url) + 1);
        memcpy(g_last_key, key, sizeof(g_last_key));
        pthread_mutex_unlock(&g_mu);
    }
    return true;
}

static bool parse_key(const char *url, char *key, size_t len)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
    bool ok = false;
    int n;

    if (u == NULL || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
        goto out;
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK)
        goto out;
    n = snprintf(key, len, "%s://%s:%s%s", scheme, host, port, path);
    ok = n > 0 && (size_t)n < len;
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_url_cleanup(u);
    return ok;
}

/* Under g_mu.  Expired entries are freed as they are met. */
static memo_entry *find(const char *key, int64_t now_ms)
{
    size_t i;

    for (i = 0; i < SRVOCSP__MEMO_SLOTS; i++) {
        memo_entry *m = &g_slots[i];

        if (m->key[0] == '\0')
            continue;
        if (m->until_ms <= now_ms) {
            m->key[0] = '\0';
            continue;
        }
        if (strcmp(m->key, key) == 0)
            return m;
    }
    return NULL;
}

/* Under g_mu: a free slot for |key|, or the one nearest to being forgotten. */
static memo_entry *take_slot(const char *key, int64_t now_ms)
{
    memo_entry *m = find(key, now_ms), *victim = NULL;
    size_t i;

    if (m != NULL)
        return m;
    for (i = 0; i < SRVOCSP__MEMO_SLOTS; i++) {
        m = &g_slots[i];
        if (m->key[0] == '\0') {
            victim = m;
            break;
        }
        if (victim == NULL || m->until_ms < victim->until_ms)
            victim = m;
    }
    memset(victim, 0, sizeof(*victim));
    snprintf(victim->key, sizeof(victim->key), "%s", key);
    return victim;
}

srvocsp__method srvocsp__memo_pick(const char *key, int64_t now_ms, bool *trial)
{
    srvocsp__method how = SRVOCSP__AS_ASKED;
    memo_entry *m;

    if (trial != NULL)
        *trial = false;
    pthread_mutex_lock(&g_mu);
    if ((m = find(key, now_ms)) != NULL) {
        how = m->method;
        m->requests++;
        if (trial != NULL)
            *trial = m->trial;
    }
    pthread_mutex_unlock(&g_mu);
    return how;
}

void srvocsp__memo_learn(const char *key, srvocsp__method method, const char *why,
                         int64_t now_ms)
{
    memo_entry *m;

    pthread_mutex_lock(&g_mu);
    m = take_slot(key, now_ms);
    if (m->method != method || m->trial) {
        /* A new finding (first learnt, confirmed after a trial, or the
         * other method now) is a new report: its id must be above every id
         * given before, since a reader (watch) remembers only the largest
         * it reported.  An entry put on trial long ago and confirmed now
         * would otherwise hide behind the findings of other responders. */
        m->id = g_next_id++;
        m->method = method;
        m->trial = false;
    }
    if (why != NULL && why[0] != '\0')
        snprintf(m->why, sizeof(m->why), "%s", why);
    if (m->requests == 0)
        m->requests = 1;
    m->until_ms = now_ms + SRVOCSP__MEMO_KEEP_MS;
    pthread_mutex_unlock(&g_mu);
}

void srvocsp__memo_suspect_get(const char *key, const char *why, int64_t now_ms)
{
    memo_entry *m;

    pthread_mutex_lock(&g_mu);
    m = find(key, now_ms);
    if (m == NULL) {
        m = take_slot(key, now_ms);
        m->method = SRVOCSP__USE_POST;
        m->trial = true;
        snprintf(m->why, sizeof(m->why), "%s", why ? why : "");
        m->until_ms = now_ms + SRVOCSP__MEMO_KEEP_MS;
    }
    pthread_mutex_unlock(&g_mu);
}

void srvocsp__memo_forget(const char *key)
{
    size_t i;

    pthread_mutex_lock(&g_mu);
    for (i = 0; i < SRVOCSP__MEMO_SLOTS; i++)
        if (strcmp(g_slots[i].key, key) == 0)
            g_slots[i].key[0] = '\0';
    pthread_mutex_unlock(&g_mu);
}

size_t srvocsp__memo_list(srvocsp_method_fallback *out, size_t max, int64_t now_ms)
{
    const memo_entry *pick[SRVOCSP__MEMO_SLOTS];
    size_t i, j, n = 0;

    pthread_mutex_lock(&g_mu);
    for (i = 0; i < SRVOCSP__MEMO_SLOTS; i++) {
        const memo_entry *m = &g_slots[i];

        if (m->key[0] == '\0' || m->trial || m->until_ms <= now_ms)
            continue;
        /* Oldest report first: insertion by id. */
        for (j = n; j > 0 && pick[j - 1]->id > m->id; j--)
            pick[j] = pick[j - 1];
        pick[j] = m;
        n++;
    }
    for (i = 0; i < n && i < max; i++) {
        srvocsp_method_fallback *f = &out[i];

        memset(f, 0, sizeof(*f));
        snprintf(f->responder, sizeof(f->responder), "%s", pick[i]->key);
        snprintf(f->method, sizeof(f->method), "%s",
                 pick[i]->method == SRVOCSP__USE_POST ? "POST" : "GET");
        snprintf(f->why, sizeof(f->why), "%s", pick[i]->why);
        f->id = pick[i]->id;
        f->requests = pick[i]->requests;
        f->forget_in_s = (pick[i]->until_ms - now_ms) / 1000;
    }
    pthread_mutex_unlock(&g_mu);
    return n;
}

void srvocsp__memo_reset(void)
{
    pthread_mutex_lock(&g_mu);
    memset(g_slots, 0, sizeof(g_slots));
    pthread_mutex_unlock(&g_mu);
}

size_t srvocsp_method_fallbacks(srvocsp_method_fallback *out, size_t max)
{
    if (out == NULL)
        max = 0;
    return srvocsp__memo_list(out, max, srvocsp__system_monotonic_ms(NULL));
}

/* ---- what an answer says about the method ---- */

/* Whether |body| is an OCSP response; |*malformed| when it says
 * malformedRequest (the responder could not read what it was sent). */
static bool is_ocsp_response(const unsigned char *body, size_t len, bool *malformed)
{
    const unsigned char *p = body;
    OCSP_RESPONSE *r;

    *malformed = false;
    if (body == NULL || len == 0 || len > SRVOCSP__MAX_RESPONSE_CAP)
        return false;
    r = d2i_OCSP_RESPONSE(NULL, &p, (long)len);
    if (r == NULL)
        return false;
    *malformed = OCSP_response_status(r) == OCSP_RESPONSE_STATUS_MALFORMEDREQUEST;
    OCSP_RESPONSE_free(r);
    return true;
}

bool srvocsp__get_refused(long status, const unsigned char *body, size_t len, char *why,
                          size_t whylen)
{
    bool malformed;

    if (status == 400 || status == 404 || status == 405 || status == 414) {
        srvocsp__fmt(why, whylen, "GET answered HTTP %ld", status);
        return true;
    }
    /* Redirects are not followed, and a GET's URL is its request: Go's
     * ServeMux (cfssl ocspserve) answers 301 to a path whose base64 holds
     * "//", cleaning it, for about one certificate in thirty. */
    if (status >= 300 && status < 400) {
        srvocsp__fmt(why, whylen, "GET answered HTTP %ld (a redirect, not followed)", status);
        return true;
    }
    if (status != 200)
        return false;
    if (!is_ocsp_response(body, len, &malformed)) {
        srvocsp__fmt(why, whylen, "GET answered HTTP 200 with a body that is not an OCSP response");
        return true;
    }
    if (malformed) {
        srvocsp__fmt(why, whylen, "GET answered malformedRequest (1)");
        return true;
    }
    return false;
}

bool srvocsp__post_refused(long status, char *why, size_t whylen)
{
    if (status != 405 && status != 501)
        return false;
    srvocsp__fmt(why, whylen, "POST answered HTTP %ld", status);
    return true;
}

bool srvocsp__answer_judgeable(long status, const unsigned char *body, size_t len)
{
    bool malformed;

    return status == 200 && is_ocsp_response(body, len, &malformed) && !malformed;
}
