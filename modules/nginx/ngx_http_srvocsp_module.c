/*
 * ngx_http_srvocsp_module: nginx staples through libsrvocsp, in process.
 *
 * How it fits nginx's processes:
 *  - The master parses the configuration.  After nginx's SSL module made
 *    every server's SSL_CTX, this module opens one srvocsp handle per
 *    certificate (several server blocks with one certificate share one)
 *    and attaches it to the context: the status callback of libsrvocsp
 *    staples whichever certificate the handshake selected, never blocking.
 *  - First fetches run side by side, bounded by srvocsp_timeout, before the
 *    master starts serving; with srvocsp_directory a saved, verified
 *    response is served at once instead.  So the first handshake staples.
 *  - On reload the master opens the new cycle's handles while the old
 *    cycle's are still open: libsrvocsp shares one entry per certificate,
 *    so the new handles hold the current response before the old ones
 *    close.  Workers forked from the master inherit the handles and staple
 *    at once; libsrvocsp restarts its engine in each of them.
 *  - With srvocsp_directory the master and its workers cost one fetch per
 *    refresh together: the first process due fetches and saves, the others
 *    adopt the saved response (see docs/persistence.md).  With srvocsp_store
 *    the same holds across machines through Redis (docs/fleet.md).
 *  - Reports go to nginx's error log through a pipe drained by the workers'
 *    event loop, never from the engine thread (ngx_srvocsp_log.h).
 */
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <srvocsp.h>
#include <srvocsp/openssl.h>

#include "ngx_srvocsp_certs.h"
#include "ngx_srvocsp_log.h"

#define DEFAULT_MIN_VALIDITY_S 600
#define DEFAULT_TIMEOUT_MS 5000

typedef struct {
    ngx_flag_t enable;
    ngx_str_t directory;
    ngx_str_t responder;
    ngx_str_t store;        /* srvocsp_store URL (docs/fleet.md) */
    ngx_str_t store_prefix;
    time_t min_validity;
    ngx_msec_t timeout;
    u_char *file; /* where "srvocsp on" was written, for messages */
    ngx_uint_t line;
} ngx_http_srvocsp_srv_conf_t;

typedef struct {
    ngx_array_t certs;      /* ngx_srvocsp_cert_t of this cycle */
    ngx_str_t *directories; /* distinct srvocsp_directory values, for chown */
    ngx_uint_t n_directories;
} ngx_http_srvocsp_main_conf_t;

static char *set_enable(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *set_store(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static void *create_main_conf(ngx_conf_t *cf);
static void *create_srv_conf(ngx_conf_t *cf);
static char *merge_srv_conf(ngx_conf_t *cf, void *parent, void *child);
static ngx_int_t postconfiguration(ngx_conf_t *cf);
static ngx_int_t init_module(ngx_cycle_t *cycle);
static ngx_int_t init_process(ngx_cycle_t *cycle);
static void exit_process(ngx_cycle_t *cycle);

static ngx_command_t commands[] = {
    {ngx_string("srvocsp"), NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_CONF_FLAG, set_enable,
     NGX_HTTP_SRV_CONF_OFFSET, offsetof(ngx_http_srvocsp_srv_conf_t, enable), NULL},
    {ngx_string("srvocsp_directory"), NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_CONF_TAKE1,
     ngx_conf_set_str_slot, NGX_HTTP_SRV_CONF_OFFSET,
     offsetof(ngx_http_srvocsp_srv_conf_t, directory), NULL},
    {ngx_string("srvocsp_responder"), NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_CONF_TAKE1,
     ngx_conf_set_str_slot, NGX_HTTP_SRV_CONF_OFFSET,
     offsetof(ngx_http_srvocsp_srv_conf_t, responder), NULL},
    {ngx_string("srvocsp_store"), NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_CONF_TAKE1,
     set_store, NGX_HTTP_SRV_CONF_OFFSET,
     offsetof(ngx_http_srvocsp_srv_conf_t, store), NULL},
    {ngx_string("srvocsp_store_prefix"), NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_CONF_TAKE1,
     ngx_conf_set_str_slot, NGX_HTTP_SRV_CONF_OFFSET,
     offsetof(ngx_http_srvocsp_srv_conf_t, store_prefix), NULL},
    {ngx_string("srvocsp_min_validity"), NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_CONF_TAKE1,
     ngx_conf_set_sec_slot, NGX_HTTP_SRV_CONF_OFFSET,
     offsetof(ngx_http_srvocsp_srv_conf_t, min_validity), NULL},
    {ngx_string("srvocsp_timeout"), NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_CONF_TAKE1,
     ngx_conf_set_msec_slot, NGX_HTTP_SRV_CONF_OFFSET,
     offsetof(ngx_http_srvocsp_srv_conf_t, timeout), NULL},
    ngx_null_command};

static ngx_http_module_t module_ctx = {
    NULL,              /* preconfiguration */
    postconfiguration, /* postconfiguration */
    create_main_conf,  /* create main configuration */
    NULL,              /* init main configuration */
    create_srv_conf,   /* create server configuration */
    merge_srv_conf,    /* merge server configuration */
    NULL,              /* create location configuration */
    NULL               /* merge location configuration */
};

ngx_module_t ngx_http_srvocsp_module = {NGX_MODULE_V1,
                                        &module_ctx,
                                        commands,
                                        NGX_HTTP_MODULE,
                                        NULL,         /* init master */
                                        init_module,  /* init module */
                                        init_process, /* init process */
                                        NULL,         /* init thread */
                                        NULL,         /* exit thread */
                                        exit_process, /* exit process */
                                        NULL,         /* exit master */
                                        NGX_MODULE_V1_PADDING};

static char *set_enable(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_srvocsp_srv_conf_t *scf = conf;
    char *rv = ngx_conf_set_flag_slot(cf, cmd, conf);

    if (rv == NGX_CONF_OK) {
        scf->file = cf->conf_file->file.name.data;
        scf->line = cf->conf_file->line;
    }
    return rv;
}

/* The URL is checked as the configuration is read (nginx -t refuses it,
 * with the file and line), by the library's own parser; the message names
 * the fault and never the URL, which may carry a password. */
static char *set_store(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_srvocsp_srv_conf_t *scf = conf;
    char *rv = ngx_conf_set_str_slot(cf, cmd, conf);

    if (rv != NGX_CONF_OK)
        return rv;
    if (srvocsp_store_url_check((const char *)scf->store.data) != SRVOCSP_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "srvocsp_store: %s", srvocsp_last_error_text());
        return NGX_CONF_ERROR;
    }
    return NGX_CONF_OK;
}

static void *create_main_conf(ngx_conf_t *cf)
{
    ngx_http_srvocsp_main_conf_t *mcf = ngx_pcalloc(cf->pool, sizeof(*mcf));
    ngx_pool_cleanup_t *cln;

    if (mcf == NULL || ngx_array_init(&mcf->certs, cf->pool, 8, sizeof(ngx_srvocsp_cert_t)) != NGX_OK)
        return NULL;
    /* The cycle's references go with the cycle (nginx frees the SSL_CTXs,
     * and with them their own references, in the same pool). */
    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL)
        return NULL;
    cln->handler = ngx_srvocsp_certs_close;
    cln->data = &mcf->certs;
    return mcf;
}

static void *create_srv_conf(ngx_conf_t *cf)
{
    ngx_http_srvocsp_srv_conf_t *scf = ngx_pcalloc(cf->pool, sizeof(*scf));

    if (scf == NULL)
        return NULL;
    scf->enable = NGX_CONF_UNSET;
    scf->min_validity = NGX_CONF_UNSET;
    scf->timeout = NGX_CONF_UNSET_MSEC;
    return scf;
}

static char *merge_srv_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_srvocsp_srv_conf_t *prev = parent, *conf = child;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    if (conf->file == NULL) {
        conf->file = prev->file;
        conf->line = prev->line;
    }
    ngx_conf_merge_str_value(conf->directory, prev->directory, "");
    ngx_conf_merge_str_value(conf->responder, prev->responder, "");
    ngx_conf_merge_str_value(conf->store, prev->store, "");
    ngx_conf_merge_str_value(conf->store_prefix, prev->store_prefix, "");
    ngx_conf_merge_sec_value(conf->min_validity, prev->min_validity, DEFAULT_MIN_VALIDITY_S);
    ngx_conf_merge_msec_value(conf->timeout, prev->timeout, DEFAULT_TIMEOUT_MS);

    if (conf->directory.len > 0 &&
        ngx_conf_full_name(cf->cycle, &conf->directory, 0) != NGX_OK)
        return NGX_CONF_ERROR;
    if (conf->responder.len > 0 &&
        ngx_strncasecmp(conf->responder.data, (u_char *)"http://", 7) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"srvocsp_responder\" must be an http:// URL (OCSP is fetched over "
                           "plain HTTP), not \"%V\"",
                           &conf->responder);
        return NGX_CONF_ERROR;
    }
    if (conf->timeout == 0 || conf->timeout > 3600000) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"srvocsp_timeout\" must be between 1ms and 1h");
        return NGX_CONF_ERROR;
    }
    if (conf->min_validity < 0 || conf->min_validity > 30 * 86400) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"srvocsp_min_validity\" must be between 0 and 30d");
        return NGX_CONF_ERROR;
    }
    return NGX_CONF_OK;
}

static ngx_int_t remember_directory(ngx_conf_t *cf, ngx_http_srvocsp_main_conf_t *mcf,
                                    ngx_str_t *dir)
{
    ngx_str_t *d;

    for (ngx_uint_t i = 0; i < mcf->n_directories; i++)
        if (mcf->directories[i].len == dir->len &&
            ngx_strncmp(mcf->directories[i].data, dir->data, dir->len) == 0)
            return NGX_OK;
    d = ngx_palloc(cf->pool, (mcf->n_directories + 1) * sizeof(ngx_str_t));
    if (d == NULL)
        return NGX_ERROR;
    if (mcf->n_directories > 0)
        ngx_memcpy(d, mcf->directories, mcf->n_directories * sizeof(ngx_str_t));
    d[mcf->n_directories++] = *dir;
    mcf->directories = d;
    return NGX_OK;
}

static ngx_int_t postconfiguration(ngx_conf_t *cf)
{
    ngx_http_core_main_conf_t *cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);
    ngx_http_srvocsp_main_conf_t *mcf =
        ngx_http_conf_get_module_main_conf(cf, ngx_http_srvocsp_module);
    ngx_http_core_srv_conf_t **cscfp = cmcf->servers.elts;
    /* nginx -t and nginx -s parse the configuration too: they check it but
     * open nothing (no fetch from a process that is about to exit). */
    ngx_uint_t live = !ngx_test_config && ngx_process != NGX_PROCESS_SIGNALLER;

    for (ngx_uint_t s = 0; s < cmcf->servers.nelts; s++) {
        ngx_http_srvocsp_srv_conf_t *scf = cscfp[s]->ctx->srv_conf[ngx_http_srvocsp_module.ctx_index];
        ngx_http_ssl_srv_conf_t *sscf = cscfp[s]->ctx->srv_conf[ngx_http_ssl_module.ctx_index];
        ngx_srvocsp_opts_t o;

        if (!scf->enable || sscf == NULL || sscf->ssl.ctx == NULL)
            continue;
        if (sscf->stapling) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"srvocsp on\" (%s:%ui) and \"ssl_stapling on\" are both set for the "
                          "server in %s:%ui: only one of them can staple; turn \"ssl_stapling\" "
                          "off in that server (srvocsp replaces it)",
                          scf->file ? (char *)scf->file : "?", scf->line, cscfp[s]->file_name,
                          cscfp[s]->line);
            return NGX_ERROR;
        }
        if (sscf->certificate_values != NULL)
            ngx_log_error(NGX_LOG_NOTICE, cf->log, 0,
                          "srvocsp: certificates loaded per connection (\"ssl_certificate\" with "
                          "variables) in the server in %s:%ui are not stapled",
                          cscfp[s]->file_name, cscfp[s]->line);
        if (!live)
            continue;
        if (ngx_srvocsp_log_init(cf->log) != NGX_OK)
            return NGX_ERROR;
        o.directory = scf->directory.len ? (const char *)scf->directory.data : NULL;
        o.responder = scf->responder.len ? (const char *)scf->responder.data : NULL;
        /* The URL itself is checked by srvocsp_open (its emerg names what
         * is wrong with it). */
        o.store_url = scf->store.len ? (const char *)scf->store.data : NULL;
        o.store_prefix = scf->store_prefix.len ? (const char *)scf->store_prefix.data : NULL;
        o.min_validity_s = (uint32_t)scf->min_validity;
        o.timeout_ms = (uint32_t)scf->timeout;
        if (scf->directory.len > 0 && remember_directory(cf, mcf, &scf->directory) != NGX_OK)
            return NGX_ERROR;
        if (ngx_srvocsp_attach_ctx(cf, sscf->ssl.ctx, &cscfp[s]->server_name, &o, &mcf->certs) !=
            NGX_OK)
            return NGX_ERROR;
    }
    if (mcf->certs.nelts > 0)
        ngx_srvocsp_first_fetch(cf, &mcf->certs);
    return NGX_OK;
}

/* The master runs as root and its workers as "user": they must be able to
 * save into srvocsp_directory, as nginx does for its temporary paths. */
static ngx_int_t init_module(ngx_cycle_t *cycle)
{
    ngx_http_srvocsp_main_conf_t *mcf =
        ngx_http_cycle_get_module_main_conf(cycle, ngx_http_srvocsp_module);
    ngx_core_conf_t *ccf = (ngx_core_conf_t *)ngx_get_conf(cycle->conf_ctx, ngx_core_module);

    if (mcf == NULL || ngx_test_config || geteuid() != 0 ||
        ccf->user == (ngx_uid_t)NGX_CONF_UNSET_UINT)
        return NGX_OK;
    for (ngx_uint_t i = 0; i < mcf->n_directories; i++) {
        ngx_file_info_t fi;

        if (ngx_file_info(mcf->directories[i].data, &fi) == NGX_FILE_ERROR)
            continue; /* reported by the handles */
        if (fi.st_uid == ccf->user)
            continue;
        if (chown((const char *)mcf->directories[i].data, ccf->user, ccf->group) != 0)
            ngx_log_error(NGX_LOG_WARN, cycle->log, ngx_errno,
                          "srvocsp: chown(\"%V\") to the worker user failed; workers will not "
                          "be able to save responses there",
                          &mcf->directories[i]);
    }
    return NGX_OK;
}

static ngx_int_t init_process(ngx_cycle_t *cycle)
{
    ngx_http_srvocsp_main_conf_t *mcf =
        ngx_http_cycle_get_module_main_conf(cycle, ngx_http_srvocsp_module);
    ngx_srvocsp_cert_t *c;

    if (mcf == NULL)
        return NGX_OK;
    /* The first library call in a forked worker restarts the engine: make
     * it here rather than in the first handshake. */
    c = mcf->certs.elts;
    for (ngx_uint_t i = 0; i < mcf->certs.nelts; i++)
        srvocsp_response_free(srvocsp_get1_response(c[i].h));
    return ngx_srvocsp_log_start(cycle);
}

static void exit_process(ngx_cycle_t *cycle)
{
    ngx_srvocsp_log_drain(cycle->log);
}
