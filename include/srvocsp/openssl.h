/*
 * Stapling with OpenSSL: attach handles to an SSL_CTX and its certificate
 * status callback staples the current response of whichever certificate
 * the handshake selected (TLS 1.2 and 1.3).
 *
 * The leaf's status only: OpenSSL 3.0's server API sends one status
 * response per handshake, for the leaf, so the statuses of intermediates
 * that TLS 1.3 can carry (RFC 8446 section 4.4.2.1) cannot be sent from an
 * OpenSSL 3.0 server.  OpenSSL 3.6 adds SSL_set0_tlsext_status_ocsp_resp_ex
 * for that; srvocsp does not use it yet (see docs/gnutls.md).  To staple the
 * whole chain, use GnuTLS and include/srvocsp/gnutls.h.
 */
#ifndef SRVOCSP_OPENSSL_H
#define SRVOCSP_OPENSSL_H

#include <openssl/ssl.h>

#include "srvocsp.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Handshakes seen by the status callback of one SSL_CTX, since attach.
 * Monotonic counters, read without a lock (each is exact; together they
 * are a near-instant view). */
typedef struct srvocsp_ssl_stats {
    uint64_t stapled;              /* a response was stapled */
    uint64_t unstapled_none;       /* no response yet for the certificate */
    uint64_t unstapled_expired;    /* the held response is not time-valid now (too close to
                                    * expiry, or not yet valid after the clock went back) */
    uint64_t unstapled_unknown;    /* the responder says unknown */
    uint64_t unstapled_no_handle;  /* the selected certificate has no handle attached */
    uint64_t must_staple_unstapled;/* of the unstapled: certificates with TLS Feature status_request */
} srvocsp_ssl_stats;

/* Called on the handshake's thread when a certificate carrying the TLS
 * Feature status_request extension (RFC 7633, "must-staple") is about to
 * be served without a staple.  Must not block. */
typedef void (*srvocsp_must_staple_cb)(SSL *ssl, srvocsp_handle *h, void *arg);

/* srvocsp_ssl_ctx_attach makes |ctx| staple the responses of |h| for the
 * certificate |h| was opened for (matched against the certificate OpenSSL
 * selected for each handshake, so one context may carry an RSA and an ECDSA
 * certificate, and SNI may switch between contexts that each have their
 * own handles).  Installs the status callback on first use.  Takes a
 * reference on |h|, released when |ctx| is freed.  Returns 1, or 0 with
 * the last error set (E_INVALID_ARG, E_NOMEM, E_UNSUPPORTED when 8 handles
 * are already attached).  Call before handshakes start on |ctx|; not
 * thread-safe against them. */
SRVOCSP_EXPORT int srvocsp_ssl_ctx_attach(SSL_CTX *ctx, srvocsp_handle *h);

/* srvocsp_ssl_ctx_set_must_staple_cb sets (or clears, with NULL) the
 * must-staple report of |ctx|.  Returns 1, or 0 if nothing is attached. */
SRVOCSP_EXPORT int srvocsp_ssl_ctx_set_must_staple_cb(SSL_CTX *ctx, srvocsp_must_staple_cb cb,
                                                      void *arg);

/* srvocsp_ssl_ctx_get_stats copies the counters of |ctx| (zeros if nothing
 * is attached).  Thread-safe. */
SRVOCSP_EXPORT void srvocsp_ssl_ctx_get_stats(SSL_CTX *ctx, srvocsp_ssl_stats *out);

/* srvocsp_ssl_status_cb is the callback srvocsp_ssl_ctx_attach installs, for
 * servers that must chain it from their own status callback (pass |ctx|'s
 * SSL_CTX as |arg|).  Returns SSL_TLSEXT_ERR_OK or SSL_TLSEXT_ERR_NOACK;
 * never a fatal alert. */
SRVOCSP_EXPORT int srvocsp_ssl_status_cb(SSL *ssl, void *arg);

#ifdef __cplusplus
}
#endif
#endif
