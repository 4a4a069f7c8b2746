/*
 * What both TLS bindings (OpenSSL's in this folder, GnuTLS's in
 * src/gnutls) and `srvocsp check` decide the same way.  Header-only:
 * libsrvocsp-gnutls links the shared library, whose internal symbols it
 * cannot see.
 */
#ifndef SRVOCSP_TLS_STAPLE_RULES_H
#define SRVOCSP_TLS_STAPLE_RULES_H

#include <openssl/x509v3.h>

#include "srvocsp.h"

/* RFC 7633 "must-staple": 1 when |x| carries the TLS Feature extension
 * listing status_request (5), 0 when it carries none, -1 when it is there
 * but cannot be read. */
static inline int srvocsp__must_staple(X509 *x)
{
    int crit = 0, r = 0;
    TLS_FEATURE *feat = X509_get_ext_d2i(x, NID_tlsfeature, &crit, NULL);

    if (feat == NULL)
        return crit == -1 ? 0 : -1; /* absent, or present but unreadable */
    for (int i = 0; i < sk_ASN1_INTEGER_num(feat); i++)
        if (ASN1_INTEGER_get(sk_ASN1_INTEGER_value(feat, i)) == 5)
            r = 1;
    TLS_FEATURE_free(feat);
    return r;
}

/* Why a handshake went without the certificate's staple, for the
 * bindings' counters, from the error srvocsp_get1_response left. */
typedef enum {
    SRVOCSP__MISS_NONE,    /* no response yet */
    SRVOCSP__MISS_EXPIRED, /* one is held, but not time-valid now (too close
                            * to expiry, or not yet valid after the clock
                            * went back) */
    SRVOCSP__MISS_UNKNOWN  /* the responder does not know the certificate */
} srvocsp__staple_miss;

static inline srvocsp__staple_miss srvocsp__staple_miss_of(srvocsp_error why)
{
    switch (why) {
    case SRVOCSP_E_STALE:
    case SRVOCSP_E_NOT_YET_VALID: return SRVOCSP__MISS_EXPIRED;
    case SRVOCSP_E_STATUS_UNKNOWN: return SRVOCSP__MISS_UNKNOWN;
    default: return SRVOCSP__MISS_NONE;
    }
}

#endif
