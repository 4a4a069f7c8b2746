/*
 * Stapling with GnuTLS: the whole chain's status.
 *
 * Attach chains (srvocsp_chain, include/srvocsp.h) and their private keys
 * to a gnutls_certificate_credentials_t: every handshake that asks for
 * status gets the leaf's current response (TLS 1.2 and 1.3) and, in TLS
 * 1.3, the current response of each intermediate that has one (RFC 8446
 * section 4.4.2.1: a status_request extension per CertificateEntry).
 *
 * It works through gnutls_certificate_set_retrieve_function3: per
 * handshake the credential hands GnuTLS the chain's certificates (imported
 * once, at attach), its key, and an array of responses that are references
 * to the engine's current snapshots (one lock-free get per certificate, no
 * lock, no I/O, no parse, no copy of the DER).  The references are kept
 * with the session and released when it is deinitialised (GnuTLS's
 * per-session extension data, see docs/gnutls.md), so a response is never
 * freed while a handshake still points at it.  GnuTLS 3.7 sends the
 * statuses of intermediates only from such an array: the per-certificate
 * callback (gnutls_certificate_set_ocsp_status_request_function2) serves
 * the leaf alone.
 *
 * Link with -lsrvocsp-gnutls (pkg-config srvocsp-gnutls, CMake
 * srvocsp::srvocsp-gnutls); the main library does not depend on GnuTLS.
 */
#ifndef SRVOCSP_GNUTLS_H
#define SRVOCSP_GNUTLS_H

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>

#include "srvocsp.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct srvocsp_gnutls srvocsp_gnutls;

/* Most chains one credential carries. */
#define SRVOCSP_GNUTLS_MAX_CHAINS 8

/* Handshakes that selected a certificate of one credential, since attach.
 * Monotonic counters, read without a lock (each is exact; together they
 * are a near-instant view).  The first six are those of the OpenSSL side
 * (srvocsp_ssl_stats), about the leaf.  GnuTLS chooses the certificate
 * before it reads the client's status_request, so these count every
 * handshake that selected a certificate, whether the client asked for
 * status or not (GnuTLS sends a staple only to clients that ask). */
typedef struct srvocsp_gnutls_stats {
    uint64_t stapled;              /* the leaf's response was handed to GnuTLS */
    uint64_t unstapled_none;       /* no response yet for the leaf */
    uint64_t unstapled_expired;    /* the held response is not time-valid now (too close to
                                    * expiry, or not yet valid after the clock went back) */
    uint64_t unstapled_unknown;    /* the responder says unknown */
    uint64_t unstapled_no_handle;  /* no chain attached could serve the handshake */
    uint64_t must_staple_unstapled;/* of the unstapled: leaves with TLS Feature status_request */
    /* TLS 1.3 only: intermediates that have a handle. */
    uint64_t intermediates_stapled;   /* an intermediate's response was handed to GnuTLS */
    uint64_t intermediates_unstapled; /* an intermediate had no servable response */
} srvocsp_gnutls_stats;

/* Called on the handshake's thread when a leaf carrying the TLS Feature
 * status_request extension (RFC 7633, "must-staple") is about to be
 * served without a response.  Must not block. */
typedef void (*srvocsp_gnutls_must_staple_cb)(gnutls_session_t session, srvocsp_handle *h,
                                              void *arg);

/* srvocsp_gnutls_attach makes |cred| serve the chains added to the new
 * object it stores in |*out|, with their staples: it installs the
 * credential's retrieve function (gnutls_certificate_set_retrieve_function3),
 * so certificates set on |cred| with gnutls_certificate_set_x509_key_file
 * and friends are no longer used.  The first attach in a process registers
 * GnuTLS per-session data for the staples (gnutls_ext_register, with a TLS
 * extension number of the private-use range that is never sent): make it
 * before handshakes start anywhere in the process, as GnuTLS asks of
 * gnutls_ext_register.
 *
 * Returns SRVOCSP_OK (free the object with srvocsp_gnutls_free once no
 * session uses |cred| any more), E_INVALID_ARG, E_NOMEM, or E_UNSUPPORTED
 * (|cred| is already attached, or the registration failed, e.g. the
 * number is taken by the application); |*out| is NULL on failure.  Errors
 * of this header are returned, not stored as the thread's last error.
 * Not thread-safe against handshakes on |cred|. */
SRVOCSP_EXPORT srvocsp_error srvocsp_gnutls_attach(gnutls_certificate_credentials_t cred,
                                                   srvocsp_gnutls **out);

/* srvocsp_gnutls_add_chain adds |chain| (its certificates, in order, are
 * what handshakes that select it send) with its private key |key|.  With
 * several chains (an RSA and an ECDSA one), each handshake takes the
 * first whose leaf matches the client's server name (SNI) and can sign
 * with one of the client's signature algorithms, else the first that can
 * sign, else the first.  Takes a reference on |chain|; takes ownership of
 * |key| on success only.  Returns SRVOCSP_OK, E_INVALID_ARG, E_NOMEM,
 * E_CERT (GnuTLS cannot import a certificate of the chain), E_UNSUPPORTED
 * (SRVOCSP_GNUTLS_MAX_CHAINS already).  Call before handshakes start on
 * the credential; not thread-safe against them. */
SRVOCSP_EXPORT srvocsp_error srvocsp_gnutls_add_chain(srvocsp_gnutls *g, srvocsp_chain *chain,
                                                      gnutls_privkey_t key);

/* srvocsp_gnutls_add_pem opens the chain of |chain_path| (leaf first, then
 * intermediates, maybe the root) with srvocsp_chain_open_pem(chain_path,
 * extra_path, params), reads the PEM private key of |key_path| and adds
 * them.  |extra_path| (may be NULL) names CA certificates that are not
 * sent but issue the last one sent (typically the root), so the last
 * intermediate can be stapled too.  Returns SRVOCSP_OK, or the error of
 * opening the chain (then srvocsp_last_error_text says why), E_CERT when
 * the key cannot be read or does not load, or an error of
 * srvocsp_gnutls_add_chain.  Same rules as srvocsp_gnutls_add_chain. */
SRVOCSP_EXPORT srvocsp_error srvocsp_gnutls_add_pem(srvocsp_gnutls *g, const char *chain_path,
                                                    const char *key_path, const char *extra_path,
                                                    const srvocsp_params *params);

/* srvocsp_gnutls_get0_chain borrows the |i|-th chain added (NULL when out
 * of range), valid while |g| is. */
SRVOCSP_EXPORT srvocsp_chain *srvocsp_gnutls_get0_chain(const srvocsp_gnutls *g, size_t i);

/* srvocsp_gnutls_set_must_staple_cb sets (or clears, with NULL) the
 * must-staple report.  Call before handshakes start. */
SRVOCSP_EXPORT void srvocsp_gnutls_set_must_staple_cb(srvocsp_gnutls *g,
                                                      srvocsp_gnutls_must_staple_cb cb, void *arg);

/* srvocsp_gnutls_get_stats copies the counters of |g| (zeros for NULL).
 * Thread-safe. */
SRVOCSP_EXPORT void srvocsp_gnutls_get_stats(const srvocsp_gnutls *g, srvocsp_gnutls_stats *out);

/* srvocsp_gnutls_free detaches |g| from its credential and frees it with
 * its keys and its references to the chains.  Call it only when no session
 * uses the credential any more (after gnutls_deinit of every session, e.g.
 * after gnutls_certificate_free_credentials): sessions borrow the
 * certificates and the key.  Responses handed to sessions stay valid until
 * each session is deinitialised.  NULL is a no-op. */
SRVOCSP_EXPORT void srvocsp_gnutls_free(srvocsp_gnutls *g);

#ifdef __cplusplus
}
#endif
#endif
