/*
 * Opening srvocsp handles for the certificates a server block loaded and
 * attaching them to its SSL_CTX; the bounded first fetch at configuration.
 */
#ifndef NGX_SRVOCSP_CERTS_H_INCLUDED
#define NGX_SRVOCSP_CERTS_H_INCLUDED

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include <srvocsp.h>

typedef struct {
    const char *directory;   /* NULL: none */
    const char *responder;   /* NULL: the certificate's AIA */
    const char *store_url;   /* srvocsp_store, NULL: none */
    const char *store_prefix; /* srvocsp_store_prefix, NULL: the library's */
    uint32_t min_validity_s;
    uint32_t timeout_ms;
} ngx_srvocsp_opts_t;

/* One handle of the cycle; |h| is a reference the cycle owns. */
typedef struct {
    srvocsp_handle *h;
    X509 *cert;              /* borrowed from nginx's SSL_CTX */
    const char *name;        /* the handle's log name, lives as long as |h| */
    ngx_srvocsp_opts_t opts;
} ngx_srvocsp_cert_t;

/* The module's engine (created on first use; NULL if that failed). */
srvocsp_engine *ngx_srvocsp_engine(void);

/* Pool cleanup: closes the references of an array of ngx_srvocsp_cert_t. */
void ngx_srvocsp_certs_close(void *certs);

/* Opens (or, for a certificate another server block of the cycle already
 * opened with the same options, shares) a handle for every certificate of
 * |ctx| and attaches it.  A certificate without an OCSP URL or without its
 * issuer in the chain is skipped with a notice.  Appends to |certs| (an
 * array of ngx_srvocsp_cert_t; ngx_srvocsp_certs_close releases it).  NGX_OK, or NGX_ERROR after logging. */
ngx_int_t ngx_srvocsp_attach_ctx(ngx_conf_t *cf, SSL_CTX *ctx, ngx_str_t *server_name,
                                 const ngx_srvocsp_opts_t *opts, ngx_array_t *certs);

/* Waits until every handle of |certs| has a response or ended its first
 * attempt, at most the largest timeout among them plus a little, then logs
 * what each certificate will staple (and, on a reload, options the running
 * retrieval keeps).  |certs| becomes the configuration compared with at the
 * next reload. */
void ngx_srvocsp_first_fetch(ngx_conf_t *cf, ngx_array_t *certs);

#endif
