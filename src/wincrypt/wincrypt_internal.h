/* Internals of libsrvocsp-wincrypt.  Only srvocsp's public API and inline
 * helpers are used from the core library (its hidden symbols are not
 * exported by the shared library this one links against). */
#ifndef SRVOCSP_WINCRYPT_INTERNAL_H
#define SRVOCSP_WINCRYPT_INTERNAL_H

#define SRVOCSP_WINCRYPT_BUILDING 1
#include "internal.h"
#include "srvocsp/wincrypt.h"

#include <openssl/x509.h>

/* The SDK's layouts on x86-64 (Windows is LLP64: DWORD and LONG are 32
 * bits there as here, pointers 64): the sizes crypt32 callers compile
 * against, checked against the mingw-w64 headers' field lists. */
_Static_assert(sizeof(CERT_CONTEXT) == 40, "CERT_CONTEXT layout");
_Static_assert(sizeof(CERT_INFO) == 208, "CERT_INFO layout");
_Static_assert(offsetof(CERT_INFO, NotBefore) == 64, "CERT_INFO layout");
_Static_assert(offsetof(CERT_INFO, rgExtension) == 200, "CERT_INFO layout");
_Static_assert(sizeof(CERT_EXTENSION) == 32, "CERT_EXTENSION layout");
_Static_assert(sizeof(CRL_INFO) == 96, "CRL_INFO layout");
_Static_assert(sizeof(CRL_CONTEXT) == 40, "CRL_CONTEXT layout");
_Static_assert(sizeof(CERT_CHAIN_PARA) == 32, "CERT_CHAIN_PARA layout (without extra fields)");
_Static_assert(sizeof(CERT_CHAIN_ELEMENT) == 56, "CERT_CHAIN_ELEMENT layout");
_Static_assert(sizeof(CERT_SIMPLE_CHAIN) == 40, "CERT_SIMPLE_CHAIN layout");
_Static_assert(sizeof(CERT_CHAIN_CONTEXT) == 72, "CERT_CHAIN_CONTEXT layout");
_Static_assert(sizeof(CERT_SERVER_OCSP_RESPONSE_OPEN_PARA) == 40, "OPEN_PARA layout");
_Static_assert(sizeof(FILETIME) == 8 && sizeof(HRESULT) == 4 && sizeof(LONG) == 4,
               "Windows widths");

/* Hard caps on what is read from disk. */
#define SRVOCSP__WIN_MAX_CHAIN 100            /* certificates in a chain */
#define SRVOCSP__WIN_MAX_FILE (4u << 20)      /* one certificate or store file */
#define SRVOCSP__WIN_MAX_STORE_CERTS 20000    /* certificates in one store */

typedef struct srvocsp__win_store srvocsp__win_store;

/* Allocations that live and die together (a decoded CERT_INFO, a CRL_INFO). */
typedef struct srvocsp__win_arena srvocsp__win_arena;
SRVOCSP__HIDDEN void *srvocsp__win_arena_alloc(srvocsp__win_arena **a, size_t n);
SRVOCSP__HIDDEN void srvocsp__win_arena_free(srvocsp__win_arena *a);

/* A certificate context and what it stands for. */
typedef struct srvocsp__win_cert {
    CERT_CONTEXT pub;            /* first: PCCERT_CONTEXT points here */
    atomic_uint refs;
    X509 *x509;
    unsigned char sha1[20];      /* thumbprint of the DER */
    srvocsp__win_arena *info;    /* owns pub.pCertInfo */
    srvocsp__win_store *store;   /* the store it belongs to (a memory reference) */
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

/* contexts.c */
/* Wraps |x| (reference taken) in a new certificate context of |store|
 * (may be NULL; a memory reference on it is taken). */
SRVOCSP__HIDDEN srvocsp__win_cert *srvocsp__win_cert_wrap(X509 *x, srvocsp__win_store *store);
/* The library's own object behind |c|, or NULL for a context that was
 * assembled by the caller (or already freed). */
SRVOCSP__HIDDEN srvocsp__win_cert *srvocsp__win_cert_of(PCCERT_CONTEXT c);
/* A new chain context over |certs| (each context's reference is taken),
 * with each element's trust status (|status| may be NULL: all zero) and
 * the chain's. */
SRVOCSP__HIDDEN PCCERT_CHAIN_CONTEXT srvocsp__win_chain_new(PCCERT_CONTEXT *certs, DWORD n,
                                                          const CERT_TRUST_STATUS *status,
                                                          CERT_TRUST_STATUS chain_status);
/* Whether |c| is a live chain context made by this library. */
SRVOCSP__HIDDEN bool srvocsp__win_chain_is_ours(PCCERT_CHAIN_CONTEXT c);
/* The X509 behind |c|, parsed from its DER (new reference), or NULL. */
SRVOCSP__HIDDEN X509 *srvocsp__win_cert_x509(PCCERT_CONTEXT c);

/* certinfo.c */
/* CERT_INFO of |x| in a new arena (|*arena|), or NULL. */
SRVOCSP__HIDDEN CERT_INFO *srvocsp__win_certinfo_new(X509 *x, srvocsp__win_arena **arena);
/* Unix seconds as a FILETIME. */
SRVOCSP__HIDDEN FILETIME srvocsp__win_filetime(int64_t unix_s);
/* Windows' little-endian serial number blob of |serial| (in |*arena|). */
SRVOCSP__HIDDEN bool srvocsp__win_serial_blob(const ASN1_INTEGER *serial,
                                             srvocsp__win_arena **arena,
                                             CRYPT_INTEGER_BLOB *out);
/* DER of |name| as a blob (in |*arena|). */
SRVOCSP__HIDDEN bool srvocsp__win_name_blob(const X509_NAME *name, srvocsp__win_arena **arena,
                                           CERT_NAME_BLOB *out);
/* An algorithm identifier (dotted OID and DER parameters) of |alg|. */
SRVOCSP__HIDDEN bool srvocsp__win_algorithm(const X509_ALGOR *alg, srvocsp__win_arena **arena,
                                           CRYPT_ALGORITHM_IDENTIFIER *out);

/* stores.c */
/* Whether |h| is a store handle of this library (open or not yet freed). */
SRVOCSP__HIDDEN srvocsp__win_store *srvocsp__win_store_of(HCERTSTORE h);
SRVOCSP__HIDDEN void srvocsp__win_store_mem_ref(srvocsp__win_store *s);
SRVOCSP__HIDDEN void srvocsp__win_store_mem_unref(srvocsp__win_store *s);
/* Pushes (new references to) every certificate of |s| onto |sk|. */
SRVOCSP__HIDDEN bool srvocsp__win_store_collect(srvocsp__win_store *s, STACK_OF(X509) *sk);
/* Pushes the certificates of a system store (CERT_SYSTEM_STORE_*
 * |location|, |name|) onto |sk|; a store that does not exist adds none. */
SRVOCSP__HIDDEN bool srvocsp__win_system_collect(DWORD location, const char *name,
                                                STACK_OF(X509) *sk);

/* certfiles.c */
/* Reads the certificates of one file (PEM, any number; else one DER) onto
 * |sk|: how many, 0 for none, -1 when unreadable or over the cap (errno). */
SRVOCSP__HIDDEN int srvocsp__win_read_cert_file(const char *path, STACK_OF(X509) *sk);
/* The directory of a system store (malloc'd), NULL for an unknown
 * location or a name that is not a plain directory name. */
SRVOCSP__HIDDEN char *srvocsp__win_system_dir(DWORD location, const char *name);
/* Reads a system store's directory |dir| onto |sk|; |*exists| says whether
 * the store exists.  false when the directory cannot be read. */
SRVOCSP__HIDDEN bool srvocsp__win_read_system(DWORD location, const char *name, const char *dir,
                                             STACK_OF(X509) *sk, bool *exists);
SRVOCSP__HIDDEN void srvocsp__win_make_dirs(const char *dir);
/* Writes |certs| as PEM to |path| (temporary file, fsync, rename, 0644);
 * ERROR_SUCCESS or a Windows error code. */
SRVOCSP__HIDDEN DWORD srvocsp__win_write_pem(const char *path, X509 **certs, size_t n);
/* UTF-32 (wchar_t) to UTF-8, malloc'd; NULL on an invalid code point. */
SRVOCSP__HIDDEN char *srvocsp__win_wide_to_utf8(const WCHAR *w);

#endif
