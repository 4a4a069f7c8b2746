/* Handles for the certificates mod_ssl primes; the bounded first fetch. */
#include "mod_srvocsp_certs.h"
#include "mod_srvocsp_log.h"

#include "http_log.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

APLOG_USE_MODULE(srvocsp);

/* The first fetch may take the retrieval timeout; this much more covers
 * the engine noticing the end. */
#define FIRST_FETCH_SLACK_MS 250
#define FIRST_FETCH_POLL_MS 5
/* Certificates mod_ssl may hand one prime: the leaf and its issuer, and a
 * few more a file may carry. */
#define MAX_PEM_CERTS 16

/* One engine for every configuration of the process, so a restart's new
 * handles share the running retrievals; forked children resume it. */
static srvocsp_engine *g_engine;

srvocsp_engine *mod_srvocsp_engine(void)
{
    if (g_engine == NULL) {
        srvocsp_engine_config c;

        srvocsp_engine_config_init(&c);
        g_engine = srvocsp_engine_new(&c);
    }
    return g_engine;
}

void mod_srvocsp_engine_stop(void)
{
    srvocsp_engine *e = g_engine;

    g_engine = NULL;
    srvocsp_engine_free(e);
}

static mod_srvocsp_cert *find_any(const mod_srvocsp_gen *gen, const char *id)
{
    for (size_t i = 0; i < gen->n; i++)
        if (memcmp(gen->v[i].id, id, MOD_SRVOCSP_ID_LEN) == 0)
            return &gen->v[i];
    return NULL;
}

static mod_srvocsp_cert *push(mod_srvocsp_gen *gen, const char *id)
{
    mod_srvocsp_cert *c;

    if (gen->n == gen->cap) {
        size_t cap = gen->cap ? gen->cap * 2 : 16;
        mod_srvocsp_cert *v = realloc(gen->v, cap * sizeof(*v));

        if (v == NULL)
            return NULL;
        gen->v = v;
        gen->cap = cap;
    }
    c = &gen->v[gen->n++];
    memset(c, 0, sizeof(*c));
    memcpy(c->id, id, MOD_SRVOCSP_ID_LEN);
    return c;
}

/* "CN=site.test" (vhost site.test:443 at /etc/apache2/sites-enabled/x:1) */
static void describe(char *buf, size_t cap, X509 *leaf, server_rec *s)
{
    char cn[128] = "?";
    X509_NAME *subj = leaf ? X509_get_subject_name(leaf) : NULL;

    if (subj == NULL || X509_NAME_get_text_by_NID(subj, NID_commonName, cn, sizeof(cn)) < 0)
        snprintf(cn, sizeof(cn), "(no CN)");
    snprintf(buf, cap, "\"CN=%s\" (vhost %s:%u%s%s:%d)", cn,
             s->server_hostname ? s->server_hostname : "?",
             (unsigned)(s->addrs && s->addrs->host_port ? s->addrs->host_port : s->port),
             s->defn_name ? " at " : "", s->defn_name ? s->defn_name : "",
             s->defn_name ? s->defn_line_number : 0);
}

/* The leaf and the certificates after it, from mod_ssl's PEM. */
static int read_pem(const char *pem, X509 **leaf, STACK_OF(X509) **chain)
{
    BIO *b = NULL;
    X509 *x = NULL;
    int ok = 0;

    *leaf = NULL;
    *chain = sk_X509_new_null();
    if (*chain == NULL)
        goto out;
    b = BIO_new_mem_buf(pem, -1);
    if (b == NULL)
        goto out;
    *leaf = PEM_read_bio_X509(b, NULL, NULL, NULL);
    if (*leaf == NULL)
        goto out;
    while (sk_X509_num(*chain) < MAX_PEM_CERTS &&
           (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        if (!sk_X509_push(*chain, x))
            goto out;
        x = NULL;
    }
    ok = 1;
out:
    X509_free(x);
    BIO_free(b);
    ERR_clear_error(); /* the end of the PEM reads as an error */
    if (!ok) {
        X509_free(*leaf);
        *leaf = NULL;
        sk_X509_pop_free(*chain, X509_free);
        *chain = NULL;
    }
    return ok;
}

/* The settings a shared retrieval keeps (libsrvocsp: the first opener's),
 * as one string to compare. */
static char *fetch_opts_of(const mod_srvocsp_opts *o)
{
    char buf[4096];
    int n = snprintf(buf, sizeof(buf), "%s\n%s\n%s\n%u", o->directory ? o->directory : "",
                     o->responder ? o->responder : "", o->store_url ? o->store_url : "",
                     (unsigned)o->timeout_ms);

    return n < 0 || (size_t)n >= sizeof(buf) ? NULL : strdup(buf);
}

static void note_kept(const mod_srvocsp_gen *prev, const char *id, const char *opts,
                      const char *name, server_rec *s)
{
    const mod_srvocsp_cert *old = prev ? find_any(prev, id) : NULL;

    if (old == NULL || old->h == NULL || old->fetch_opts == NULL || opts == NULL ||
        strcmp(old->fetch_opts, opts) == 0)
        return;
    ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                 "srvocsp: %s: a new SrvOcspDirectory, SrvOcspResponderUrl, SrvOcspStore or "
                 "SrvOcspUrlTimeout applies after a stop and start (this restart keeps the "
                 "running retrieval, and with it the staple)",
                 name);
}

int mod_srvocsp_gen_add(mod_srvocsp_gen *gen, const mod_srvocsp_gen *prev, server_rec *s,
                        const char *id, apr_size_t id_len, const char *pem,
                        const mod_srvocsp_opts *o)
{
    X509 *leaf = NULL;
    STACK_OF(X509) *chain = NULL;
    mod_srvocsp_tag *tag = NULL;
    mod_srvocsp_cert *c;
    srvocsp_params p;
    srvocsp_handle *h = NULL;
    char name[256];
    int rv = HTTP_INTERNAL_SERVER_ERROR;

    if (id == NULL || id_len != MOD_SRVOCSP_ID_LEN || pem == NULL)
        return DECLINED;
    c = find_any(gen, id);
    if (c != NULL) {
        /* Another vhost serves the same certificate: one handle, the first
         * vhost's settings. */
        return c->h ? OK : DECLINED;
    }
    if (!read_pem(pem, &leaf, &chain)) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     "srvocsp: a certificate of vhost %s:%u could not be read from mod_ssl's "
                     "PEM; it is not stapled by srvocsp",
                     s->server_hostname ? s->server_hostname : "?", (unsigned)s->port);
        return DECLINED;
    }
    describe(name, sizeof(name), leaf, s);

    tag = calloc(1, sizeof(*tag));
    if (tag == NULL)
        goto out;
    snprintf(tag->name, sizeof(tag->name), "%s", name);
    srvocsp_params_init(&p);
    p.engine = mod_srvocsp_engine();
    if (p.engine == NULL) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "srvocsp: cannot create the engine: %s",
                     srvocsp_last_error_text());
        goto out;
    }
    p.flags = SRVOCSP_OPEN_ASYNC; /* first fetches run side by side */
    p.min_validity_s = o->min_validity_s;
    p.url_timeout_ms = o->timeout_ms;
    p.directory = o->directory;
    p.responder_url = o->responder;
    p.store_url = o->store_url;
    p.update_cb = mod_srvocsp_log_event;
    p.update_arg = tag;
    p.update_arg_free = mod_srvocsp_tag_free;
    h = srvocsp_open(leaf, chain, &p);
    if (h == NULL) {
        srvocsp_error err = srvocsp_last_error();

        if (err == SRVOCSP_E_NO_OCSP_URL || err == SRVOCSP_E_NO_ISSUER) {
            /* Served without a staple, as mod_ssl's own stapling would;
             * remembered so a second vhost does not say it again. */
            ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, "srvocsp: %s is not stapled: %s", name,
                         srvocsp_last_error_text());
            c = push(gen, id);
            rv = c ? DECLINED : HTTP_INTERNAL_SERVER_ERROR;
            goto out;
        }
        if (o->store_url != NULL && err == SRVOCSP_E_INVALID_ARG)
            /* Never the URL: it may carry a password. */
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s,
                         "srvocsp: cannot open %s with its SrvOcspStore: %s", name,
                         srvocsp_last_error_text());
        else
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "srvocsp: cannot open %s: %s", name,
                         srvocsp_last_error_text());
        goto out;
    }
    tag = NULL; /* the handle frees it */
    c = push(gen, id);
    if (c == NULL) {
        srvocsp_close(h);
        goto out;
    }
    c->h = h;
    c->timeout_ms = o->timeout_ms;
    c->fetch_opts = fetch_opts_of(o);
    snprintf(c->name, sizeof(c->name), "%s", name);
    note_kept(prev, id, c->fetch_opts, name, s);
    rv = OK;
out:
    free(tag);
    X509_free(leaf);
    sk_X509_pop_free(chain, X509_free);
    return rv;
}

static int cmp_cert(const void *a, const void *b)
{
    return memcmp(((const mod_srvocsp_cert *)a)->id, ((const mod_srvocsp_cert *)b)->id,
                  MOD_SRVOCSP_ID_LEN);
}

void mod_srvocsp_gen_seal(mod_srvocsp_gen *gen)
{
    if (gen->n > 1)
        qsort(gen->v, gen->n, sizeof(*gen->v), cmp_cert);
}

srvocsp_handle *mod_srvocsp_gen_find(const mod_srvocsp_gen *gen, const char *id,
                                     apr_size_t id_len)
{
    size_t lo = 0, hi = gen->n;

    if (id == NULL || id_len != MOD_SRVOCSP_ID_LEN)
        return NULL;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int d = memcmp(gen->v[mid].id, id, MOD_SRVOCSP_ID_LEN);

        if (d == 0)
            return gen->v[mid].h;
        if (d < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

void mod_srvocsp_gen_close(mod_srvocsp_gen *gen)
{
    for (size_t i = 0; i < gen->n; i++)
        srvocsp_close(gen->v[i].h);
    mod_srvocsp_gen_forget(gen);
}

void mod_srvocsp_gen_forget(mod_srvocsp_gen *gen)
{
    for (size_t i = 0; i < gen->n; i++)
        free(gen->v[i].fetch_opts);
    free(gen->v);
    gen->v = NULL;
    gen->n = gen->cap = 0;
}

/* An outcome: a response to serve, "unknown", or a failed attempt. */
static int has_outcome(srvocsp_handle *h)
{
    char why[8];
    srvocsp_response *r = srvocsp_get1_response(h);

    if (r != NULL) {
        srvocsp_response_free(r);
        return 1;
    }
    if (srvocsp_last_error() == SRVOCSP_E_STATUS_UNKNOWN)
        return 1;
    return srvocsp_handle_last_failure(h, why, sizeof(why)) != SRVOCSP_OK;
}

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void mod_srvocsp_gen_first_fetch(mod_srvocsp_gen *gen, server_rec *s)
{
    uint32_t bound = 0;
    int64_t start = mono_ms();

    for (size_t i = 0; i < gen->n; i++)
        if (gen->v[i].h && gen->v[i].timeout_ms > bound)
            bound = gen->v[i].timeout_ms;
    bound += FIRST_FETCH_SLACK_MS;
    /* Until every certificate has an outcome.  A held response whose
     * refresh is in flight counts as one: it does not hold up the start.
     * libsrvocsp parks its thread across the children's fork, so a child
     * never finds a retrieval in flight and asks again on its own. */
    for (;;) {
        size_t open = 0;

        for (size_t i = 0; i < gen->n; i++)
            open += gen->v[i].h && !has_outcome(gen->v[i].h);
        if (open == 0 || mono_ms() - start >= (int64_t)bound)
            break;
        apr_sleep(FIRST_FETCH_POLL_MS * 1000);
    }
    for (size_t i = 0; i < gen->n; i++) {
        srvocsp_response *r;
        char why[512];

        if (gen->v[i].h == NULL)
            continue;
        r = srvocsp_get1_response(gen->v[i].h);
        if (r != NULL) {
            apr_int64_t left = (apr_int64_t)(srvocsp_response_expires(r) - (int64_t)time(NULL));

            ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                         "srvocsp: %s is stapled from the first handshake: verified %s "
                         "response, valid %" APR_INT64_T_FMT " s more",
                         gen->v[i].name,
                         srvocsp_response_status(r) == SRVOCSP_STATUS_REVOKED ? "REVOKED" : "good",
                         left);
            srvocsp_response_free(r);
            continue;
        }
        if (srvocsp_last_error() == SRVOCSP_E_STATUS_UNKNOWN) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                         "srvocsp: %s is not stapled: the responder does not know the "
                         "certificate (unknown)",
                         gen->v[i].name);
            continue;
        }
        srvocsp_handle_last_failure(gen->v[i].h, why, sizeof(why));
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     "srvocsp: %s has no OCSP response yet (%s); handshakes go without a staple "
                     "until one is fetched in the background",
                     gen->v[i].name, why[0] ? why : "the first retrieval is still running");
    }
}
