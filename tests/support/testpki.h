/* A test PKI made by code: certificates, keys and signed OCSP responses
 * with every property the tests need to control. */
#ifndef SRVOCSP_TESTPKI_H
#define SRVOCSP_TESTPKI_H

#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct tp_cert {
    X509 *cert;
    EVP_PKEY *key;
} tp_cert;

typedef enum { TP_KEY_EC = 0, TP_KEY_RSA = 1, TP_KEY_EC384 = 2 } tp_key_type;

typedef struct tp_cert_opts {
    const char *cn;
    const tp_cert *issuer;       /* NULL: self-signed */
    long serial;
    int64_t not_before, not_after;
    bool ca;
    bool ocsp_signing;           /* EKU id-kp-OCSPSigning */
    bool server_auth;            /* EKU serverAuth + SAN DNS:cn / IP */
    bool must_staple;            /* TLS feature status_request */
    const char *ocsp_urls[4];
    tp_key_type key_type;
    const tp_cert *same_key_as;  /* reuse this key */
} tp_cert_opts;

int tp_cert_make(tp_cert *out, const tp_cert_opts *o);
void tp_cert_free(tp_cert *c);
/* One of many leaves of |issuer| for scale tests: named "|prefix||i|.test",
 * serial |serial|, valid from a day before |now| for a year, with
 * |key_as|'s key (key generation is not what they measure). */
int tp_leaf_make(tp_cert *out, const tp_cert *issuer, const tp_cert *key_as, const char *prefix,
                 int i, long serial, int64_t now);

typedef struct tp_resp_opts {
    const tp_cert *leaf;
    const tp_cert *issuer;
    const tp_cert *signer;       /* who signs; default issuer */
    bool include_signer;         /* put the signer certificate in the response */
    const tp_cert *carry;        /* one more certificate, after the signer's */
    bool by_key;                 /* ResponderID byKey (default byName) */
    int status;                  /* V_OCSP_CERTSTATUS_GOOD/REVOKED/UNKNOWN */
    int64_t this_update;
    int64_t next_update;         /* 0: none */
    int64_t produced_at;         /* 0: this_update */
    int64_t revoked_at;
    int reason;                  /* -1 none */
    const EVP_MD *certid_md;     /* default SHA-1 */
    int response_status;         /* OCSP_RESPONSE_STATUS_*, 0 successful */
    const tp_cert *other_first;  /* a SingleResponse for this cert first */
    bool critical_ext_single;    /* unknown critical extension in SingleResponse */
    bool critical_ext_data;      /* ... in ResponseData */
    int mangle;                  /* TP_MANGLE_* on our CertID */
} tp_resp_opts;

enum { TP_MANGLE_NONE, TP_MANGLE_SERIAL, TP_MANGLE_NAME_HASH, TP_MANGLE_KEY_HASH };

void tp_resp_opts_init(tp_resp_opts *o, const tp_cert *leaf, const tp_cert *issuer, int64_t now);
/* Returns malloc'd DER, or NULL. */
unsigned char *tp_response(const tp_resp_opts *o, size_t *len);
/* A response for |leaf| by |issuer| with |status| (V_OCSP_CERTSTATUS_*)
 * and these times (a revoked one revoked 10 s before thisUpdate, reason
 * keyCompromise).  Malloc'd DER, or NULL. */
unsigned char *tp_response_at(const tp_cert *leaf, const tp_cert *issuer, int status,
                              int64_t this_update, int64_t produced_at, int64_t next_update,
                              size_t *len);

/* PEM helpers. */
int tp_write_cert(const char *path, X509 *a, X509 *b);
int tp_write_key(const char *path, EVP_PKEY *k);
int tp_write_file(const char *path, const void *data, size_t len);
unsigned char *tp_read_file(const char *path, size_t *len);

/* The standard test PKI. */
typedef struct tp_pki {
    tp_cert root, ca, other_ca;
    tp_cert delegate, delegate_noeku, delegate_other, delegate_expired;
    tp_cert good, revoked, unknown, noaia, twourls;
    tp_cert good_rsa;            /* RSA key, for a dual RSA + ECDSA server */
    tp_cert muststaple;          /* TLS Feature status_request */
    /* The chain PKI (tp_pki_make_chain): intermediates issued by root that
     * name a responder for the root in their AIA.  All four share one key
     * and one subject, so chain_leaf (issued by that key) verifies under
     * each, and its CertID is the same whichever is served with it. */
    tp_cert ica, ica_revoked, ica_unknown, ica_noaia;
    tp_cert chain_leaf;          /* issued by the intermediates, names ica_url */
} tp_pki;

#define TP_SERIAL_GOOD 0x1001
#define TP_SERIAL_REVOKED 0x1002
#define TP_SERIAL_UNKNOWN 0x1003
#define TP_SERIAL_NOAIA 0x1004
#define TP_SERIAL_TWOURLS 0x1005
#define TP_SERIAL_GOOD_RSA 0x1006
#define TP_SERIAL_MUSTSTAPLE 0x1007

/* Makes the PKI; leaves name |url| in their AIA (twourls names |dead_url|
 * first).  Times are relative to |now|. */
int tp_pki_make(tp_pki *p, const char *url, const char *dead_url, int64_t now);
void tp_pki_free(tp_pki *p);
/* Writes PEM files and an openssl-ocsp index into |dir|:
 *   root.pem ca.pem ca.key delegate.pem delegate.key
 *   good.pem (leaf + ca) good.key, revoked.pem, unknown.pem, noaia.pem,
 *   twourls.pem, good-rsa.pem, muststaple.pem, index.txt, index.txt.attr */
int tp_pki_write(const tp_pki *p, const char *dir);

#define TP_SERIAL_ICA 0x20
#define TP_SERIAL_ICA_REVOKED 0x21
#define TP_SERIAL_ICA_UNKNOWN 0x22
#define TP_SERIAL_ICA_NOAIA 0x23
#define TP_SERIAL_CHAIN_LEAF 0x2001

/* Adds the chain PKI to |p| (made by tp_pki_make): ica, ica_revoked and
 * ica_unknown name |root_url| (a responder for the root), ica_noaia names
 * none; chain_leaf names |ica_url| (a responder for the intermediate). */
int tp_pki_make_chain(tp_pki *p, const char *root_url, const char *ica_url, int64_t now);
/* Writes the chain PKI into |dir|:
 *   root.key, ica.pem ica.key (for `openssl ocsp` answering as either CA),
 *   chain.pem (chain_leaf + ica), chain-root.pem (+ root),
 *   chain-ica-revoked.pem, chain-ica-unknown.pem, chain-ica-noaia.pem,
 *   chain.key, chain-index.txt (the intermediate's: chain_leaf good),
 *   root-index.txt (the root's: ica good, ica_revoked revoked, ica_unknown
 *   not listed) and their .attr files. */
int tp_pki_write_chain(const tp_pki *p, const char *dir);

#endif
