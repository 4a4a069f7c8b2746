/* Internals of libsrvocsp-wincrypt. */
#ifndef SRVOCSP_WINCRYPT_INTERNAL_H
#define SRVOCSP_WINCRYPT_INTERNAL_H

#define SRVOCSP_WINCRYPT_BUILDING 1
#include "internal.h"
#include "srvocsp/wincrypt.h"

#include <openssl/x509.h>

/* A certificate context and what it stands for. */
typedef struct srvocsp__win_cert {
    CERT_CONTEXT pub;            /* first: PCCERT_CONTEXT points here */
    atomic_uint refs;
    X509 *x509;
} srvocsp__win_cert;

/* A chain context with its storage. */
typedef struct srvocsp__win_chain {
    CERT_CHAIN_CONTEXT pub;      /* first: PCCERT_CHAIN_CONTEXT points here */
    atomic_uint refs;
    CERT_SIMPLE_CHAIN simple;
    PCERT_SIMPLE_CHAIN simple_ptr;
    CERT_CHAIN_ELEMENT *elems;
    PCERT_CHAIN_ELEMENT *elem_ptrs;
} srvocsp__win_chain;

SRVOCSP__HIDDEN void srvocsp__win_set_error(DWORD err);
/* Wraps |x| (reference taken) in a new certificate context. */
SRVOCSP__HIDDEN srvocsp__win_cert *srvocsp__win_cert_wrap(X509 *x);
/* A new chain context over |certs| (each context's reference is taken). */
SRVOCSP__HIDDEN PCCERT_CHAIN_CONTEXT srvocsp__win_chain_new(PCCERT_CONTEXT *certs, DWORD n);
/* The X509 behind a context made by this library, else parsed from its
 * DER (new reference in both cases), or NULL. */
SRVOCSP__HIDDEN X509 *srvocsp__win_cert_x509(PCCERT_CONTEXT c);

#endif
