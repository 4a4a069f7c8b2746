/* Handles for a server block's certificates; the first fetch. */
#include "ngx_srvocsp_certs.h"
#include "ngx_srvocsp_log.h"

#include <srvocsp/openssl.h>

#include <stdio.h>
#include <time.h>

/* The first fetch may take the retrieval timeout; this much more covers
 * the engine noticing the end. */
#define FIRST_FETCH_SLACK_MS 250
#define FIRST_FETCH_POLL_MS 5

/* The module's own engine, for every configuration of the process: its
 * counters show what the process holds (the default engine's are not
 * readable).  Made once, in the master; forked workers resume it. */
static srvocsp_engine *g_engine;

srvocsp_engine *ngx_srvocsp_engine(void)
{
    if (g_engine == NULL) {
        srvocsp_engine_config c;

        srvocsp_engine_config_init(&c);
        g_engine = srvocsp_engine_new(&c);
    }
    return g_engine;
}

static int same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static int same_opts(const ngx_srvocsp_opts_t *a, const ngx_srvocsp_opts_t *b)
{
    return a->min_validity_s == b->min_validity_s && a->timeout_ms == b->timeout_ms &&
           same_str(a->directory, b->directory) && same_str(a->responder, b->responder) &&
           same_str(a->store_url, b->store_url) && same_str(a->store_prefix, b->store_prefix);
}

/* The handles of the configuration in service, for the next reload to
 * compare with (NULL once that configuration is gone). */
static ngx_array_t *g_live;

void ngx_srvocsp_certs_close(void *data)
{
    ngx_array_t *certs = data;
    ngx_srvocsp_cert_t *c = certs->elts;

    if (g_live == certs)
        g_live = NULL;

    for (ngx_uint_t i = 0; i < certs->nelts; i++) {
        srvocsp_close(c[i].h);
        c[i].h = NULL;
    }
}

/* An already opened handle of this cycle for |cert| with the same options. */
static srvocsp_handle *find_open(ngx_array_t *certs, X509 *cert, const ngx_srvocsp_opts_t *o)
{
    ngx_srvocsp_cert_t *c = certs->elts;

    for (ngx_uint_t i = 0; i < certs->nelts; i++)
        if (X509_cmp(c[i].cert, cert) == 0 && same_opts(&c[i].opts, o))
            return c[i].h;
    return NULL;
}

static ngx_int_t attach_one(ngx_conf_t *cf, SSL_CTX *ctx, X509 *cert, ngx_str_t *server_name,
                            const ngx_srvocsp_opts_t *o, ngx_array_t *certs)
{
    const char *file = X509_get_ex_data(cert, ngx_ssl_certificate_name_index);
    STACK_OF(X509) *chain = NULL;
    ngx_srvocsp_cert_tag_t *tag = NULL;
    ngx_srvocsp_cert_t *slot;
    srvocsp_handle *h;
    srvocsp_params p;
    srvocsp_error err;

    if (file == NULL)
        file = "(certificate)";
    h = find_open(certs, cert, o);
    if (h != NULL) {
        /* Another server block serves the same certificate: one handle,
         * one set of log lines. */
        if (!srvocsp_ssl_ctx_attach(ctx, h)) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "srvocsp: cannot staple \"%s\" in server \"%V\": %s",
                          file, server_name, srvocsp_last_error_text());
            return NGX_ERROR;
        }
        return NGX_OK;
    }

    {
        ngx_srvocsp_cert_t *c = certs->elts;

        for (ngx_uint_t i = 0; i < certs->nelts; i++) {
            ngx_srvocsp_opts_t a = c[i].opts, b = *o;

            a.min_validity_s = b.min_validity_s = 0;
            if (X509_cmp(c[i].cert, cert) == 0 && !same_opts(&a, &b)) {
                /* One retrieval per certificate: the first block's options. */
                ngx_log_error(NGX_LOG_NOTICE, cf->log, 0,
                              "srvocsp: \"%s\" (server \"%V\") is fetched with the "
                              "srvocsp_responder, srvocsp_directory, srvocsp_store, "
                              "srvocsp_store_prefix and srvocsp_timeout of the first server "
                              "block that serves it",
                              file, server_name);
                break;
            }
        }
    }
    SSL_CTX_select_current_cert(ctx, cert);
    if (!SSL_CTX_get0_chain_certs(ctx, &chain) || chain == NULL || sk_X509_num(chain) == 0) {
        /* No "ssl_certificate" chain: the issuer may still be in the
         * extra chain of the context. */
        SSL_CTX_get_extra_chain_certs(ctx, &chain);
    }
    if (chain == NULL || sk_X509_num(chain) == 0) {
        ngx_log_error(NGX_LOG_NOTICE, cf->log, 0,
                      "srvocsp: \"%s\" (server \"%V\") comes without its issuer certificate, "
                      "not stapled: put the issuer after the leaf in the ssl_certificate file",
                      file, server_name);
        return NGX_OK;
    }

    tag = calloc(1, sizeof(*tag));
    if (tag == NULL)
        return NGX_ERROR;
    snprintf(tag->name, sizeof(tag->name), "%s", file);

    srvocsp_params_init(&p);
    p.engine = ngx_srvocsp_engine();
    if (p.engine == NULL) {
        free(tag);
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "srvocsp: cannot create the engine: %s",
                      srvocsp_last_error_text());
        return NGX_ERROR;
    }
    p.flags = SRVOCSP_OPEN_ASYNC; /* the first fetches run side by side */
    p.min_validity_s = o->min_validity_s;
    p.url_timeout_ms = o->timeout_ms;
    p.directory = o->directory;
    p.responder_url = o->responder;
    p.store_url = o->store_url;
    p.store_prefix = o->store_prefix;
    p.update_cb = ngx_srvocsp_log_event;
    p.update_arg = tag;
    p.update_arg_free = ngx_srvocsp_tag_free;
    h = srvocsp_open(cert, chain, &p);
    if (h == NULL) {
        err = srvocsp_last_error();
        free(tag); /* not taken: open failed */
        if (err == SRVOCSP_E_NO_OCSP_URL || err == SRVOCSP_E_NO_ISSUER) {
            /* As nginx's own stapling does: a notice, and the server runs. */
            ngx_log_error(NGX_LOG_NOTICE, cf->log, 0,
                          "srvocsp: \"%s\" (server \"%V\") is not stapled: %s", file, server_name,
                          srvocsp_last_error_text());
            return NGX_OK;
        }
        if (o->store_url != NULL && err == SRVOCSP_E_INVALID_ARG) {
            /* The URL was checked as it was read: most likely the prefix.
             * Never the URL itself here: it may carry a password. */
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "srvocsp: cannot open \"%s\" (server \"%V\") with its srvocsp_store "
                          "and srvocsp_store_prefix: %s",
                          file, server_name, srvocsp_last_error_text());
            return NGX_ERROR;
        }
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "srvocsp: cannot open \"%s\" (server \"%V\"): %s",
                      file, server_name, srvocsp_last_error_text());
        return NGX_ERROR;
    }
    slot = ngx_array_push(certs);
    if (slot == NULL) {
        srvocsp_close(h);
        return NGX_ERROR;
    }
    slot->h = h;
    slot->cert = cert;
    slot->name = tag->name;
    slot->opts = *o;
    if (!srvocsp_ssl_ctx_attach(ctx, h)) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "srvocsp: cannot staple \"%s\" in server \"%V\": %s",
                      file, server_name, srvocsp_last_error_text());
        return NGX_ERROR;
    }
    return NGX_OK;
}

ngx_int_t ngx_srvocsp_attach_ctx(ngx_conf_t *cf, SSL_CTX *ctx, ngx_str_t *server_name,
                                 const ngx_srvocsp_opts_t *opts, ngx_array_t *certs)
{
    X509 *cert;

    for (cert = SSL_CTX_get_ex_data(ctx, ngx_ssl_certificate_index); cert != NULL;
         cert = X509_get_ex_data(cert, ngx_ssl_next_certificate_index)) {
        if (attach_one(cf, ctx, cert, server_name, opts, certs) != NGX_OK)
            return NGX_ERROR;
    }
    return NGX_OK;
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

/* A reload shares each certificate's retrieval with the configuration in
 * service (that is what keeps it stapled), and the retrieval keeps the
 * responder, directory, store and timeout it was opened with: say so when the new
 * configuration asks for others.  srvocsp_min_validity is the handle's own
 * and applies at once. */
static void note_kept_options(ngx_conf_t *cf, ngx_array_t *certs)
{
    ngx_srvocsp_cert_t *c = certs->elts, *old;

    if (g_live == NULL || g_live == certs)
        return;
    old = g_live->elts;
    for (ngx_uint_t i = 0; i < certs->nelts; i++)
        for (ngx_uint_t j = 0; j < g_live->nelts; j++) {
            ngx_srvocsp_opts_t a = c[i].opts, b = old[j].opts;

            if (X509_cmp(c[i].cert, old[j].cert) != 0)
                continue;
            a.min_validity_s = b.min_validity_s = 0;
            if (!same_opts(&a, &b))
                ngx_log_error(NGX_LOG_NOTICE, cf->log, 0,
                              "srvocsp: \"%s\": a new srvocsp_responder, srvocsp_directory, "
                              "srvocsp_store, srvocsp_store_prefix or srvocsp_timeout applies "
                              "after a restart (this reload keeps "
                              "the running retrieval, and with it the staple)",
                              c[i].name);
            break;
        }
}

void ngx_srvocsp_first_fetch(ngx_conf_t *cf, ngx_array_t *certs)
{
    ngx_srvocsp_cert_t *c = certs->elts;
    uint32_t bound = 0;
    struct timespec start, now;

    note_kept_options(cf, certs);
    g_live = certs;
    for (ngx_uint_t i = 0; i < certs->nelts; i++)
        if (c[i].opts.timeout_ms > bound)
            bound = c[i].opts.timeout_ms;
    bound += FIRST_FETCH_SLACK_MS;
    clock_gettime(CLOCK_MONOTONIC, &start);
    /* Until every certificate has an outcome.  A held response whose
     * refresh is in flight (due at start, a hung responder) counts as one:
     * it does not hold up the start.  A save still running when nginx
     * forks its workers is finished first: libsrvocsp parks its thread
     * across a fork, so a worker never finds the retrieval in flight and
     * asks again on its own. */
    for (;;) {
        ngx_uint_t open = 0;
        int64_t ms;

        for (ngx_uint_t i = 0; i < certs->nelts; i++)
            open += !has_outcome(c[i].h);
        clock_gettime(CLOCK_MONOTONIC, &now);
        ms = (int64_t)(now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (open == 0 || ms >= (int64_t)bound)
            break;
        ngx_msleep(FIRST_FETCH_POLL_MS);
    }
    for (ngx_uint_t i = 0; i < certs->nelts; i++) {
        srvocsp_response *r = srvocsp_get1_response(c[i].h);
        char why[512];

        if (r != NULL) {
            int64_t left = srvocsp_response_expires(r) - (int64_t)time(NULL);

            ngx_log_error(NGX_LOG_NOTICE, cf->log, 0,
                          "srvocsp: \"%s\" is stapled from the first handshake: verified %s "
                          "response, valid %L s more",
                          c[i].name,
                          srvocsp_response_status(r) == SRVOCSP_STATUS_REVOKED ? "REVOKED" : "good",
                          (long long)left);
            srvocsp_response_free(r);
            continue;
        }
        srvocsp_handle_last_failure(c[i].h, why, sizeof(why));
        ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                      "srvocsp: \"%s\" has no OCSP response yet (%s); handshakes go without a "
                      "staple until one is fetched in the background",
                      c[i].name, why[0] ? why : "the first retrieval is still running");
    }
    {
        srvocsp_engine_stats st;

        /* On a reload the previous configuration's handles are still open
         * here: handles = both configurations' (a steady count across
         * reloads shows nothing is left behind). */
        srvocsp_engine_get_stats(ngx_srvocsp_engine(), &st);
        ngx_log_error(NGX_LOG_NOTICE, cf->log, 0,
                      "srvocsp: this configuration staples %ui certificates; the process holds "
                      "%uL handles on %uL certificates",
                      certs->nelts, (unsigned long long)st.handles_open,
                      (unsigned long long)st.entries);
    }
}
