/*
 * Certificate stores: memory, a file (PEM certificates or one DER
 * certificate), and the system stores (MY, CA, ROOT, any name) under
 * CERT_SYSTEM_STORE_CURRENT_USER and _LOCAL_MACHINE, which are directories
 * of PEM files (certfiles.c says where).
 *
 * Lifetime as in crypt32: a store handle counts opens (CertOpenStore,
 * CertDuplicateStore, CertCloseStore); each certificate context of the
 * store keeps the store's memory alive, so a context outlives the close.
 */
#include "wincrypt/wincrypt_internal.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define STORE_MAGIC 0x53544f52u /* "STOR" */

enum store_kind { K_MEMORY, K_FILE, K_SYSTEM };

struct srvocsp__win_store {
    uint32_t magic;              /* first: checked before anything else */
    atomic_uint opens;
    atomic_uint mem;             /* 1 while open, +1 per live context */
    pthread_mutex_t mu;
    srvocsp__win_cert **certs;   /* each holds a reference */
    size_t n, cap;
    enum store_kind kind;
    bool readonly;
    bool commit;                 /* file store: write back at close */
    char *path;                  /* file, or system store directory */
};

/* ---- the store object ---- */

srvocsp__win_store *srvocsp__win_store_of(HCERTSTORE h)
{
    srvocsp__win_store *s = (srvocsp__win_store *)h;

    return s != NULL && s->magic == STORE_MAGIC ? s : NULL;
}

void srvocsp__win_store_mem_ref(srvocsp__win_store *s)
{
    atomic_fetch_add(&s->mem, 1);
}

void srvocsp__win_store_mem_unref(srvocsp__win_store *s)
{
    if (atomic_fetch_sub(&s->mem, 1) != 1)
        return;
    s->magic = 0;
    pthread_mutex_destroy(&s->mu);
    free(s->certs);
    free(s->path);
    free(s);
}

static srvocsp__win_cert *find_thumbprint_locked(srvocsp__win_store *s, const unsigned char *sha1,
                                                 size_t *idx)
{
    size_t i;

    for (i = 0; i < s->n; i++)
        if (memcmp(s->certs[i]->sha1, sha1, 20) == 0) {
            *idx = i;
            return s->certs[i];
        }
    return NULL;
}

/* Appends a new context of |s| for |x|; returns it (borrowed) or NULL. */
static srvocsp__win_cert *append_locked(srvocsp__win_store *s, X509 *x)
{
    srvocsp__win_cert *c;

    if (s->n == SRVOCSP__WIN_MAX_STORE_CERTS)
        return NULL;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        srvocsp__win_cert **t = realloc(s->certs, cap * sizeof(*t));

        if (t == NULL)
            return NULL;
        s->certs = t;
        s->cap = cap;
    }
    c = srvocsp__win_cert_wrap(x, s);
    if (c != NULL)
        s->certs[s->n++] = c;
    return c;
}

static void sha1_hex(const unsigned char *sha1, char *out)
{
    static const char hex[] = "0123456789abcdef";
    int i;

    for (i = 0; i < 20; i++) {
        out[2 * i] = hex[sha1[i] >> 4];
        out[2 * i + 1] = hex[sha1[i] & 15];
    }
    out[40] = '\0';
}

/* ---- CertOpenStore ---- */

static srvocsp__win_store *store_new(enum store_kind kind, DWORD flags)
{
    srvocsp__win_store *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    s->magic = STORE_MAGIC;
    atomic_init(&s->opens, 1);
    atomic_init(&s->mem, 1);
    pthread_mutex_init(&s->mu, NULL);
    s->kind = kind;
    s->readonly = (flags & CERT_STORE_READONLY_FLAG) != 0;
    return s;
}

/* Fills a new store from |sk| (consumed). */
static bool fill(srvocsp__win_store *s, STACK_OF(X509) *sk)
{
    bool ok = true;
    int i;

    for (i = 0; i < sk_X509_num(sk) && ok; i++) {
        size_t idx;
        unsigned char sha1[20], *der = NULL;
        int len = i2d_X509(sk_X509_value(sk, i), &der);

        /* A certificate present twice (two files) is one entry. */
        ok = len > 0;
        if (ok) {
            SHA1(der, (size_t)len, sha1);
            if (find_thumbprint_locked(s, sha1, &idx) == NULL)
                ok = append_locked(s, sk_X509_value(sk, i)) != NULL;
        }
        OPENSSL_free(der);
    }
    sk_X509_pop_free(sk, X509_free);
    return ok;
}

static char *para_string(const void *pvPara, bool wide)
{
    if (pvPara == NULL)
        return NULL;
    return wide ? srvocsp__win_wide_to_utf8((const WCHAR *)pvPara) : strdup((const char *)pvPara);
}

HCERTSTORE WINAPI CertOpenStore(LPCSTR lpszStoreProvider, DWORD dwEncodingType,
                                HCRYPTPROV_LEGACY hCryptProv, DWORD dwFlags, const void *pvPara)
{
    srvocsp__win_store *s = NULL;
    STACK_OF(X509) *sk = NULL;
    char *name = NULL;
    DWORD err = ERROR_SUCCESS;
    uintptr_t prov = (uintptr_t)lpszStoreProvider;
    bool wide = false, exists = false;

    (void)dwEncodingType; /* certificates are X.509 DER/PEM whatever it says */
    (void)hCryptProv;     /* no CSPs here */
    sk = sk_X509_new_null();
    if (sk == NULL) {
        err = ERROR_NOT_ENOUGH_MEMORY;
        goto out;
    }
    /* The provider is a small number cast to LPCSTR, or a name. */
    if (prov >= 0x10000 && strcmp(lpszStoreProvider, sz_CERT_STORE_PROV_MEMORY) == 0)
        prov = (uintptr_t)CERT_STORE_PROV_MEMORY;
    else if (prov >= 0x10000 && strcmp(lpszStoreProvider, sz_CERT_STORE_PROV_FILENAME) == 0)
        prov = (uintptr_t)CERT_STORE_PROV_FILENAME_W;
    else if (prov >= 0x10000 && strcmp(lpszStoreProvider, sz_CERT_STORE_PROV_SYSTEM) == 0)
        prov = (uintptr_t)CERT_STORE_PROV_SYSTEM_W;

    if (prov == (uintptr_t)CERT_STORE_PROV_MEMORY) {
        s = store_new(K_MEMORY, dwFlags);
        if (s == NULL)
            err = ERROR_NOT_ENOUGH_MEMORY;
        goto out;
    }
    if (prov == (uintptr_t)CERT_STORE_PROV_FILENAME_A ||
        prov == (uintptr_t)CERT_STORE_PROV_FILENAME_W) {
        int n;

        wide = prov == (uintptr_t)CERT_STORE_PROV_FILENAME_W;
        name = para_string(pvPara, wide);
        if (name == NULL || name[0] == '\0') {
            err = ERROR_INVALID_PARAMETER;
            goto out;
        }
        n = srvocsp__win_read_cert_file(name, sk);
        exists = n >= 0 || errno != ENOENT;
        if ((dwFlags & CERT_STORE_OPEN_EXISTING_FLAG) && !exists) {
            err = ERROR_FILE_NOT_FOUND;
        } else if ((dwFlags & CERT_STORE_CREATE_NEW_FLAG) && exists) {
            err = ERROR_FILE_EXISTS;
        } else if (exists && n < 0) {
            err = errno == EACCES ? ERROR_ACCESS_DENIED : ERROR_INVALID_PARAMETER;
        } else if (exists && n == 0) {
            err = CRYPT_E_ASN1_BADTAG; /* a file, but no certificate in it */
        } else if ((s = store_new(K_FILE, dwFlags)) == NULL) {
            err = ERROR_NOT_ENOUGH_MEMORY;
        } else {
            s->commit = (dwFlags & CERT_FILE_STORE_COMMIT_ENABLE_FLAG) != 0 && !s->readonly;
            s->path = name;
            name = NULL;
        }
        goto out;
    }
    if (prov == (uintptr_t)CERT_STORE_PROV_SYSTEM_A || prov == (uintptr_t)CERT_STORE_PROV_SYSTEM_W) {
        DWORD location = dwFlags & CERT_SYSTEM_STORE_LOCATION_MASK;
        char *dir;

        wide = prov == (uintptr_t)CERT_STORE_PROV_SYSTEM_W;
        name = para_string(pvPara, wide);
        dir = name ? srvocsp__win_system_dir(location, name) : NULL;
        if (dir == NULL) {
            err = name == NULL && pvPara != NULL ? ERROR_NOT_ENOUGH_MEMORY : ERROR_INVALID_PARAMETER;
            goto out;
        }
        if (!srvocsp__win_read_system(location, name, dir, sk, &exists)) {
            err = ERROR_ACCESS_DENIED;
            free(dir);
        } else if ((dwFlags & CERT_STORE_OPEN_EXISTING_FLAG) && !exists) {
            err = ERROR_FILE_NOT_FOUND;
            free(dir);
        } else if ((s = store_new(K_SYSTEM, dwFlags)) == NULL) {
            err = ERROR_NOT_ENOUGH_MEMORY;
            free(dir);
        } else {
            s->path = dir;
        }
        goto out;
    }
    err = ERROR_NOT_SUPPORTED;
out:
    if (s != NULL && err == ERROR_SUCCESS && !fill(s, sk)) {
        sk = NULL;
        err = ERROR_NOT_ENOUGH_MEMORY;
        CertCloseStore(s, 0);
        s = NULL;
    } else if (s != NULL && err == ERROR_SUCCESS) {
        sk = NULL; /* consumed */
    }
    sk_X509_pop_free(sk, X509_free);
    free(name);
    if (err != ERROR_SUCCESS)
        SetLastError(err);
    return (HCERTSTORE)s;
}

HCERTSTORE WINAPI CertOpenSystemStoreA(HCRYPTPROV_LEGACY hProv, LPCSTR szSubsystemProtocol)
{
    return CertOpenStore(CERT_STORE_PROV_SYSTEM_A, X509_ASN_ENCODING | PKCS_7_ASN_ENCODING, hProv,
                         CERT_SYSTEM_STORE_CURRENT_USER, szSubsystemProtocol);
}

HCERTSTORE WINAPI CertOpenSystemStoreW(HCRYPTPROV_LEGACY hProv, LPCWSTR szSubsystemProtocol)
{
    return CertOpenStore(CERT_STORE_PROV_SYSTEM_W, X509_ASN_ENCODING | PKCS_7_ASN_ENCODING, hProv,
                         CERT_SYSTEM_STORE_CURRENT_USER, szSubsystemProtocol);
}

HCERTSTORE WINAPI CertDuplicateStore(HCERTSTORE hCertStore)
{
    srvocsp__win_store *s = srvocsp__win_store_of(hCertStore);

    if (s != NULL)
        atomic_fetch_add(&s->opens, 1);
    return hCertStore;
}

BOOL WINAPI CertCloseStore(HCERTSTORE hCertStore, DWORD dwFlags)
{
    srvocsp__win_store *s = srvocsp__win_store_of(hCertStore);
    srvocsp__win_cert **certs;
    DWORD err = ERROR_SUCCESS;
    size_t n, i;
    BOOL ok = TRUE;

    if (hCertStore == NULL)
        return TRUE;
    if (s == NULL) {
        SetLastError(ERROR_INVALID_HANDLE);
        return FALSE;
    }
    if (atomic_fetch_sub(&s->opens, 1) != 1)
        return TRUE;
    pthread_mutex_lock(&s->mu);
    certs = s->certs;
    n = s->n;
    if (s->commit) {
        X509 **xs = n ? calloc(n, sizeof(*xs)) : NULL;

        if (n > 0 && xs == NULL) {
            err = ERROR_NOT_ENOUGH_MEMORY;
        } else {
            for (i = 0; i < n; i++)
                xs[i] = certs[i]->x509;
            err = srvocsp__win_write_pem(s->path, xs, n);
        }
        free(xs);
    }
    s->certs = NULL;
    s->n = s->cap = 0;
    pthread_mutex_unlock(&s->mu);
    for (i = 0; i < n; i++)
        CertFreeCertificateContext(&certs[i]->pub);
    free(certs);
    if (err != ERROR_SUCCESS) {
        SetLastError(err);
        ok = FALSE;
    } else if ((dwFlags & CERT_CLOSE_STORE_CHECK_FLAG) && atomic_load(&s->mem) > 1) {
        SetLastError(CRYPT_E_PENDING_CLOSE);
        ok = FALSE;
    }
    srvocsp__win_store_mem_unref(s);
    return ok;
}

/* ---- adding and finding ---- */

BOOL WINAPI CertAddCertificateContextToStore(HCERTSTORE hCertStore, PCCERT_CONTEXT pCertContext,
                                             DWORD dwAddDisposition,
                                             PCCERT_CONTEXT *ppStoreContext)
{
    srvocsp__win_store *s = srvocsp__win_store_of(hCertStore);
    srvocsp__win_cert *have, *added = NULL;
    X509 *x;
    unsigned char sha1[20];
    size_t idx = 0;
    DWORD err = ERROR_SUCCESS;

    if (ppStoreContext != NULL)
        *ppStoreContext = NULL;
    if (s == NULL || dwAddDisposition < CERT_STORE_ADD_NEW ||
        dwAddDisposition > CERT_STORE_ADD_NEWER_INHERIT_PROPERTIES ||
        (x = srvocsp__win_cert_x509(pCertContext)) == NULL) {
        SetLastError(s == NULL ? ERROR_INVALID_HANDLE : ERROR_INVALID_PARAMETER);
        return FALSE;
    }
    if (s->readonly) {
        X509_free(x);
        SetLastError(ERROR_ACCESS_DENIED);
        return FALSE;
    }
    SHA1(pCertContext->pbCertEncoded, pCertContext->cbCertEncoded, sha1);
    pthread_mutex_lock(&s->mu);
    have = find_thumbprint_locked(s, sha1, &idx);
    if (have != NULL) {
        switch (dwAddDisposition) {
        case CERT_STORE_ADD_NEW:
            err = CRYPT_E_EXISTS;
            break;
        case CERT_STORE_ADD_ALWAYS:
            added = append_locked(s, x);
            err = added ? ERROR_SUCCESS : ERROR_NOT_ENOUGH_MEMORY;
            break;
        case CERT_STORE_ADD_NEWER:
        case CERT_STORE_ADD_NEWER_INHERIT_PROPERTIES:
            /* The same thumbprint is the same certificate: not newer. */
            err = CRYPT_E_EXISTS;
            break;
        default: /* USE_EXISTING, REPLACE_EXISTING(_INHERIT_PROPERTIES): same bytes */
            added = have;
        }
    } else {
        added = append_locked(s, x);
        err = added ? ERROR_SUCCESS : ERROR_NOT_ENOUGH_MEMORY;
        if (added != NULL && s->kind == K_SYSTEM) {
            char hex[41], path[4200];

            sha1_hex(sha1, hex);
            srvocsp__win_make_dirs(s->path);
            if ((size_t)snprintf(path, sizeof(path), "%s/%s.pem", s->path, hex) >= sizeof(path))
                err = ERROR_INVALID_PARAMETER;
            else
                err = srvocsp__win_write_pem(path, &x, 1);
            if (err != ERROR_SUCCESS) {
                s->n--; /* not kept in memory either */
                CertFreeCertificateContext(&added->pub);
                added = NULL;
            }
        }
    }
    if (added != NULL && ppStoreContext != NULL)
        *ppStoreContext = CertDuplicateCertificateContext(&added->pub);
    pthread_mutex_unlock(&s->mu);
    X509_free(x);
    if (err != ERROR_SUCCESS) {
        SetLastError(err);
        return FALSE;
    }
    return TRUE;
}

typedef struct find_para {
    DWORD type;
    const void *para;
    char *str;                   /* the _STR_ types, UTF-8 */
} find_para;

static bool contains_nocase(const unsigned char *hay, size_t hlen, const char *needle)
{
    size_t nlen = strlen(needle), i, j;

    if (nlen == 0)
        return true;
    for (i = 0; i + nlen <= hlen; i++) {
        for (j = 0; j < nlen; j++)
            if (tolower(hay[i + j]) != tolower((unsigned char)needle[j]))
                break;
        if (j == nlen)
            return true;
    }
    return false;
}

/* Windows' NAME_STR match: the string within one of the attribute values. */
static bool name_has(const X509_NAME *name, const char *s)
{
    int i;

    for (i = 0; i < X509_NAME_entry_count(name); i++) {
        ASN1_STRING *v = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
        unsigned char *utf8 = NULL;
        int n = ASN1_STRING_to_UTF8(&utf8, v);
        bool hit = n >= 0 && contains_nocase(utf8, (size_t)n, s);

        OPENSSL_free(utf8);
        if (hit)
            return true;
    }
    ERR_clear_error();
    return false;
}

static bool blob_eq(const CERT_NAME_BLOB *a, const CERT_NAME_BLOB *b)
{
    return a->cbData == b->cbData && (a->cbData == 0 || memcmp(a->pbData, b->pbData, a->cbData) == 0);
}

static bool matches(const srvocsp__win_cert *c, const find_para *f)
{
    const CRYPT_HASH_BLOB *h;

    switch (f->type) {
    case CERT_FIND_ANY:
        return true;
    case CERT_FIND_SHA1_HASH:
        h = f->para;
        return h->cbData == 20 && memcmp(h->pbData, c->sha1, 20) == 0;
    case CERT_FIND_SUBJECT_STR_A:
    case CERT_FIND_SUBJECT_STR_W:
        return name_has(X509_get_subject_name(c->x509), f->str);
    case CERT_FIND_ISSUER_STR_A:
    case CERT_FIND_ISSUER_STR_W:
        return name_has(X509_get_issuer_name(c->x509), f->str);
    case CERT_FIND_SUBJECT_NAME:
        return blob_eq(&c->pub.pCertInfo->Subject, f->para);
    case CERT_FIND_ISSUER_NAME:
        return blob_eq(&c->pub.pCertInfo->Issuer, f->para);
    default:
        return false;
    }
}

/* The store's next context after |prev| matching |f| (a new reference),
 * or NULL.  |prev| is freed, as crypt32 does. */
static PCCERT_CONTEXT next_match(HCERTSTORE hCertStore, PCCERT_CONTEXT prev, const find_para *f)
{
    srvocsp__win_store *s = srvocsp__win_store_of(hCertStore);
    PCCERT_CONTEXT found = NULL;
    size_t i = 0;

    if (s == NULL) {
        CertFreeCertificateContext(prev);
        SetLastError(ERROR_INVALID_HANDLE);
        return NULL;
    }
    pthread_mutex_lock(&s->mu);
    if (prev != NULL) {
        for (i = 0; i < s->n && &s->certs[i]->pub != prev; i++)
            ;
        i++; /* after it; a context not in the store ends the walk */
    }
    for (; i < s->n; i++)
        if (matches(s->certs[i], f)) {
            found = CertDuplicateCertificateContext(&s->certs[i]->pub);
            break;
        }
    pthread_mutex_unlock(&s->mu);
    CertFreeCertificateContext(prev);
    if (found == NULL)
        SetLastError(CRYPT_E_NOT_FOUND);
    return found;
}

PCCERT_CONTEXT WINAPI CertEnumCertificatesInStore(HCERTSTORE hCertStore,
                                                  PCCERT_CONTEXT pPrevCertContext)
{
    find_para f = {CERT_FIND_ANY, NULL, NULL};

    return next_match(hCertStore, pPrevCertContext, &f);
}

PCCERT_CONTEXT WINAPI CertFindCertificateInStore(HCERTSTORE hCertStore, DWORD dwCertEncodingType,
                                                 DWORD dwFindFlags, DWORD dwFindType,
                                                 const void *pvFindPara,
                                                 PCCERT_CONTEXT pPrevCertContext)
{
    find_para f = {dwFindType, pvFindPara, NULL};
    PCCERT_CONTEXT found;

    (void)dwCertEncodingType;
    (void)dwFindFlags; /* only meaningful for find types not offered here */
    switch (dwFindType) {
    case CERT_FIND_ANY:
        break;
    case CERT_FIND_SHA1_HASH:
    case CERT_FIND_SUBJECT_NAME:
    case CERT_FIND_ISSUER_NAME:
        if (pvFindPara == NULL)
            goto invalid;
        break;
    case CERT_FIND_SUBJECT_STR_A:
    case CERT_FIND_ISSUER_STR_A:
    case CERT_FIND_SUBJECT_STR_W:
    case CERT_FIND_ISSUER_STR_W:
        if (pvFindPara == NULL)
            goto invalid;
        f.str = para_string(pvFindPara, dwFindType == CERT_FIND_SUBJECT_STR_W ||
                                            dwFindType == CERT_FIND_ISSUER_STR_W);
        if (f.str == NULL)
            goto invalid;
        break;
    default:
        goto invalid;
    }
    found = next_match(hCertStore, pPrevCertContext, &f);
    free(f.str);
    return found;
invalid:
    CertFreeCertificateContext(pPrevCertContext);
    SetLastError(E_INVALIDARG);
    return NULL;
}

bool srvocsp__win_store_collect(srvocsp__win_store *s, STACK_OF(X509) *sk)
{
    bool ok = true;
    size_t i;

    pthread_mutex_lock(&s->mu);
    for (i = 0; i < s->n && ok; i++) {
        X509_up_ref(s->certs[i]->x509);
        ok = sk_X509_push(sk, s->certs[i]->x509) > 0;
        if (!ok)
            X509_free(s->certs[i]->x509);
    }
    pthread_mutex_unlock(&s->mu);
    return ok;
}
