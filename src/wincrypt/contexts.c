/* Certificate and chain contexts, the per-thread last error, Sleep. */
#include "wincrypt/wincrypt_internal.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Thread_local DWORD tl_last_error;

DWORD WINAPI GetLastError(void)
{
    return tl_last_error;
}

VOID WINAPI SetLastError(DWORD dwErrCode)
{
    tl_last_error = dwErrCode;
}

VOID WINAPI Sleep(DWORD dwMilliseconds)
{
    struct timespec ts = {(time_t)(dwMilliseconds / 1000), (long)(dwMilliseconds % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---------------------------------------------------------------------
 * Which contexts are ours
 *
 * Windows callers may hand in CERT_CONTEXT and CERT_CHAIN_CONTEXT
 * structures they assembled themselves.  Reference counts live beyond the
 * public struct, so before touching them the library checks the pointer
 * is one it made and has not freed: an open-addressing set of live
 * pointers (contexts are made and freed off any hot path).
 * ------------------------------------------------------------------- */

static pthread_mutex_t g_reg_mu = PTHREAD_MUTEX_INITIALIZER;
static const void **g_reg;
static size_t g_reg_cap, g_reg_len;
static const char g_tomb;

static size_t reg_slot(const void *p, size_t cap)
{
    return (size_t)(((uintptr_t)p >> 4) * 0x9E3779B97F4A7C15ULL) & (cap - 1);
}

/* Rebuilds the table without tombstones, at least four times the live
 * count. */
static bool reg_grow(void)
{
    size_t live = 0, cap = 256, i;
    const void **t;

    for (i = 0; i < g_reg_cap; i++)
        live += g_reg[i] != NULL && g_reg[i] != &g_tomb;
    while (cap < (live + 1) * 4)
        cap *= 2;
    t = calloc(cap, sizeof(*t));
    if (t == NULL)
        return false;
    for (i = 0; i < g_reg_cap; i++) {
        const void *p = g_reg[i];
        size_t k;

        if (p == NULL || p == &g_tomb)
            continue;
        for (k = reg_slot(p, cap); t[k] != NULL; k = (k + 1) & (cap - 1))
            ;
        t[k] = p;
    }
    free(g_reg);
    g_reg = t;
    g_reg_cap = cap;
    g_reg_len = live;
    return true;
}

static bool reg_add(const void *p)
{
    size_t k;
    bool ok = true;

    pthread_mutex_lock(&g_reg_mu);
    /* Tombstones count as used: rebuild at half full. */
    if ((g_reg_len + 1) * 2 > g_reg_cap && !reg_grow()) {
        ok = false;
    } else {
        for (k = reg_slot(p, g_reg_cap); g_reg[k] != NULL && g_reg[k] != &g_tomb;
             k = (k + 1) & (g_reg_cap - 1))
            ;
        if (g_reg[k] == NULL)
            g_reg_len++;
        g_reg[k] = p;
    }
    pthread_mutex_unlock(&g_reg_mu);
    return ok;
}

static size_t reg_find_locked(const void *p)
{
    size_t k;

    if (g_reg_cap == 0)
        return SIZE_MAX;
    for (k = reg_slot(p, g_reg_cap); g_reg[k] != NULL; k = (k + 1) & (g_reg_cap - 1))
        if (g_reg[k] == p)
            return k;
    return SIZE_MAX;
}

static bool reg_has(const void *p)
{
    bool found;

    pthread_mutex_lock(&g_reg_mu);
    found = reg_find_locked(p) != SIZE_MAX;
    pthread_mutex_unlock(&g_reg_mu);
    return found;
}

static void reg_remove(const void *p)
{
    size_t k;

    pthread_mutex_lock(&g_reg_mu);
    k = reg_find_locked(p);
    if (k != SIZE_MAX)
        g_reg[k] = &g_tomb;
    pthread_mutex_unlock(&g_reg_mu);
}

/* ---------------------------------------------------------------------
 * Certificate contexts
 * ------------------------------------------------------------------- */

srvocsp__win_cert *srvocsp__win_cert_wrap(X509 *x, srvocsp__win_store *store)
{
    srvocsp__win_cert *c = calloc(1, sizeof(*c));
    unsigned char *der = NULL;
    int len;

    if (c == NULL)
        return NULL;
    len = i2d_X509(x, &der);
    if (len <= 0 || (c->pub.pCertInfo = srvocsp__win_certinfo_new(x, &c->info)) == NULL) {
        OPENSSL_free(der);
        srvocsp__win_arena_free(c->info);
        free(c);
        return NULL;
    }
    SHA1(der, (size_t)len, c->sha1);
    X509_up_ref(x);
    c->x509 = x;
    c->pub.dwCertEncodingType = X509_ASN_ENCODING;
    c->pub.pbCertEncoded = der;
    c->pub.cbCertEncoded = (DWORD)len;
    c->pub.hCertStore = (HCERTSTORE)store;
    atomic_init(&c->refs, 1);
    if (!reg_add(c)) {
        X509_free(x);
        OPENSSL_free(der);
        srvocsp__win_arena_free(c->info);
        free(c);
        return NULL;
    }
    if (store != NULL) {
        c->store = store;
        srvocsp__win_store_mem_ref(store);
    }
    return c;
}

srvocsp__win_cert *srvocsp__win_cert_of(PCCERT_CONTEXT c)
{
    return c != NULL && reg_has(c) ? (srvocsp__win_cert *)(uintptr_t)c : NULL;
}

PCCERT_CONTEXT WINAPI CertCreateCertificateContext(DWORD dwCertEncodingType,
                                                   const BYTE *pbCertEncoded, DWORD cbCertEncoded)
{
    const unsigned char *p = pbCertEncoded;
    srvocsp__win_cert *c;
    X509 *x;

    if (pbCertEncoded == NULL || cbCertEncoded == 0 ||
        !(dwCertEncodingType & X509_ASN_ENCODING)) {
        SetLastError(ERROR_INVALID_PARAMETER);
        return NULL;
    }
    x = d2i_X509(NULL, &p, (long)cbCertEncoded);
    ERR_clear_error();
    if (x == NULL || p != pbCertEncoded + cbCertEncoded) {
        X509_free(x);
        SetLastError(CRYPT_E_ASN1_BADTAG);
        return NULL;
    }
    c = srvocsp__win_cert_wrap(x, NULL);
    X509_free(x);
    if (c == NULL) {
        SetLastError(ERROR_NOT_ENOUGH_MEMORY);
        return NULL;
    }
    return &c->pub;
}

PCCERT_CONTEXT WINAPI CertDuplicateCertificateContext(PCCERT_CONTEXT pCertContext)
{
    srvocsp__win_cert *c = srvocsp__win_cert_of(pCertContext);

    /* A context the caller assembled has no count: handed back as is. */
    if (c != NULL)
        atomic_fetch_add(&c->refs, 1);
    return pCertContext;
}

BOOL WINAPI CertFreeCertificateContext(PCCERT_CONTEXT pCertContext)
{
    srvocsp__win_cert *c = srvocsp__win_cert_of(pCertContext);

    if (c == NULL || atomic_fetch_sub(&c->refs, 1) != 1)
        return TRUE;
    reg_remove(c);
    X509_free(c->x509);
    OPENSSL_free(c->pub.pbCertEncoded);
    srvocsp__win_arena_free(c->info);
    if (c->store != NULL)
        srvocsp__win_store_mem_unref(c->store);
    free(c);
    return TRUE;
}

X509 *srvocsp__win_cert_x509(PCCERT_CONTEXT c)
{
    const unsigned char *p;
    X509 *x;

    if (c == NULL || c->pbCertEncoded == NULL || c->cbCertEncoded == 0)
        return NULL;
    /* Parse the encoding rather than trusting where the context came from:
     * contexts may have been assembled by the caller. */
    p = c->pbCertEncoded;
    x = d2i_X509(NULL, &p, (long)c->cbCertEncoded);
    ERR_clear_error();
    return x;
}

/* ---------------------------------------------------------------------
 * Chain contexts
 * ------------------------------------------------------------------- */

PCCERT_CHAIN_CONTEXT srvocsp__win_chain_new(PCCERT_CONTEXT *certs, DWORD n,
                                            const CERT_TRUST_STATUS *status,
                                            CERT_TRUST_STATUS chain_status)
{
    srvocsp__win_chain *ch = calloc(1, sizeof(*ch));
    DWORD i;

    if (ch == NULL || n == 0)
        goto fail;
    ch->elems = calloc(n, sizeof(*ch->elems));
    ch->elem_ptrs = calloc(n, sizeof(*ch->elem_ptrs));
    if (ch->elems == NULL || ch->elem_ptrs == NULL || !reg_add(ch))
        goto fail;
    for (i = 0; i < n; i++) {
        ch->elems[i].cbSize = sizeof(CERT_CHAIN_ELEMENT);
        ch->elems[i].pCertContext = CertDuplicateCertificateContext(certs[i]);
        if (status != NULL)
            ch->elems[i].TrustStatus = status[i];
        ch->elem_ptrs[i] = &ch->elems[i];
    }
    ch->simple.cbSize = sizeof(CERT_SIMPLE_CHAIN);
    ch->simple.TrustStatus = chain_status;
    ch->simple.cElement = n;
    ch->simple.rgpElement = ch->elem_ptrs;
    ch->simple_ptr = &ch->simple;
    ch->pub.cbSize = sizeof(CERT_CHAIN_CONTEXT);
    ch->pub.TrustStatus = chain_status;
    ch->pub.cChain = 1;
    ch->pub.rgpChain = &ch->simple_ptr;
    atomic_init(&ch->refs, 1);
    return &ch->pub;
fail:
    if (ch != NULL) {
        free(ch->elems);
        free(ch->elem_ptrs);
    }
    free(ch);
    return NULL;
}

bool srvocsp__win_chain_is_ours(PCCERT_CHAIN_CONTEXT c)
{
    return c != NULL && reg_has(c);
}

PCCERT_CHAIN_CONTEXT WINAPI CertDuplicateCertificateChain(PCCERT_CHAIN_CONTEXT pChainContext)
{
    if (srvocsp__win_chain_is_ours(pChainContext))
        atomic_fetch_add(&((srvocsp__win_chain *)(uintptr_t)pChainContext)->refs, 1);
    return pChainContext;
}

VOID WINAPI CertFreeCertificateChain(PCCERT_CHAIN_CONTEXT pChainContext)
{
    srvocsp__win_chain *ch = (srvocsp__win_chain *)(uintptr_t)pChainContext;
    DWORD i;

    if (!srvocsp__win_chain_is_ours(pChainContext) || atomic_fetch_sub(&ch->refs, 1) != 1)
        return;
    reg_remove(ch);
    for (i = 0; i < ch->simple.cElement; i++)
        CertFreeCertificateContext(ch->elems[i].pCertContext);
    free(ch->elems);
    free(ch->elem_ptrs);
    free(ch);
}

PCCERT_CHAIN_CONTEXT SrvOcspLoadChainFromPemFile(const char *path)
{
    STACK_OF(X509) *sk = NULL;
    PCCERT_CONTEXT certs[SRVOCSP__WIN_MAX_CHAIN];
    PCCERT_CHAIN_CONTEXT chain = NULL;
    CERT_TRUST_STATUS none = {0, 0};
    DWORD n = 0, i;
    int got;

    if (path == NULL) {
        SetLastError(ERROR_INVALID_PARAMETER);
        return NULL;
    }
    /* The certificate files' reader: bounded in bytes and certificates. */
    sk = sk_X509_new_null();
    if (sk == NULL) {
        SetLastError(ERROR_NOT_ENOUGH_MEMORY);
        return NULL;
    }
    got = srvocsp__win_read_cert_file(path, sk);
    if (got <= 0) {
        SetLastError(got == 0          ? CRYPT_E_ASN1_BADTAG
                     : errno == EFBIG  ? ERROR_INVALID_PARAMETER /* over the size cap */
                     : errno == EACCES ? ERROR_ACCESS_DENIED
                                       : ERROR_FILE_NOT_FOUND);
        goto out;
    }
    if (got > SRVOCSP__WIN_MAX_CHAIN) {
        SetLastError(ERROR_INVALID_PARAMETER); /* longer than any chain we build */
        goto out;
    }
    for (int k = 0; k < got; k++) {
        srvocsp__win_cert *c = srvocsp__win_cert_wrap(sk_X509_value(sk, k), NULL);

        if (c == NULL) {
            SetLastError(ERROR_NOT_ENOUGH_MEMORY);
            goto out;
        }
        certs[n++] = &c->pub;
    }
    chain = srvocsp__win_chain_new(certs, n, NULL, none);
    if (chain == NULL)
        SetLastError(ERROR_NOT_ENOUGH_MEMORY);
out:
    for (i = 0; i < n; i++)
        CertFreeCertificateContext(certs[i]);
    sk_X509_pop_free(sk, X509_free);
    return chain;
}
