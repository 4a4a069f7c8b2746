/* Certificate and chain contexts, and the per-thread last error. */
#include "wincrypt/wincrypt_internal.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local DWORD tl_last_error;

DWORD WINAPI GetLastError(void)
{
    return tl_last_error;
}

VOID WINAPI SetLastError(DWORD dwErrCode)
{
    tl_last_error = dwErrCode;
}

void srvocsp__win_set_error(DWORD err)
{
    tl_last_error = err;
}

srvocsp__win_cert *srvocsp__win_cert_wrap(X509 *x)
{
    srvocsp__win_cert *c = calloc(1, sizeof(*c));
    unsigned char *der = NULL;
    int len;

    if (c == NULL)
        return NULL;
    len = i2d_X509(x, &der);
    if (len <= 0) {
        free(c);
        return NULL;
    }
    X509_up_ref(x);
    c->x509 = x;
    c->pub.dwCertEncodingType = X509_ASN_ENCODING;
    c->pub.pbCertEncoded = der;
    c->pub.cbCertEncoded = (DWORD)len;
    atomic_init(&c->refs, 1);
    return c;
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
    c = srvocsp__win_cert_wrap(x);
    X509_free(x);
    if (c == NULL) {
        SetLastError(ERROR_NOT_ENOUGH_MEMORY);
        return NULL;
    }
    return &c->pub;
}

PCCERT_CONTEXT WINAPI CertDuplicateCertificateContext(PCCERT_CONTEXT pCertContext)
{
    if (pCertContext != NULL)
        atomic_fetch_add(&((srvocsp__win_cert *)(uintptr_t)pCertContext)->refs, 1);
    return pCertContext;
}

BOOL WINAPI CertFreeCertificateContext(PCCERT_CONTEXT pCertContext)
{
    srvocsp__win_cert *c = (srvocsp__win_cert *)(uintptr_t)pCertContext;

    if (c == NULL || atomic_fetch_sub(&c->refs, 1) != 1)
        return TRUE;
    X509_free(c->x509);
    OPENSSL_free(c->pub.pbCertEncoded);
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

PCCERT_CHAIN_CONTEXT srvocsp__win_chain_new(PCCERT_CONTEXT *certs, DWORD n)
{
    srvocsp__win_chain *ch = calloc(1, sizeof(*ch));
    DWORD i;

    if (ch == NULL)
        return NULL;
    ch->elems = calloc(n, sizeof(*ch->elems));
    ch->elem_ptrs = calloc(n, sizeof(*ch->elem_ptrs));
    if (ch->elems == NULL || ch->elem_ptrs == NULL) {
        free(ch->elems);
        free(ch->elem_ptrs);
        free(ch);
        return NULL;
    }
    for (i = 0; i < n; i++) {
        ch->elems[i].cbSize = sizeof(CERT_CHAIN_ELEMENT);
        ch->elems[i].pCertContext = CertDuplicateCertificateContext(certs[i]);
        ch->elem_ptrs[i] = &ch->elems[i];
    }
    ch->simple.cbSize = sizeof(CERT_SIMPLE_CHAIN);
    ch->simple.cElement = n;
    ch->simple.rgpElement = ch->elem_ptrs;
    ch->simple_ptr = &ch->simple;
    ch->pub.cbSize = sizeof(CERT_CHAIN_CONTEXT);
    ch->pub.cChain = 1;
    ch->pub.rgpChain = &ch->simple_ptr;
    atomic_init(&ch->refs, 1);
    return &ch->pub;
}

PCCERT_CHAIN_CONTEXT WINAPI CertDuplicateCertificateChain(PCCERT_CHAIN_CONTEXT pChainContext)
{
    if (pChainContext != NULL)
        atomic_fetch_add(&((srvocsp__win_chain *)(uintptr_t)pChainContext)->refs, 1);
    return pChainContext;
}

VOID WINAPI CertFreeCertificateChain(PCCERT_CHAIN_CONTEXT pChainContext)
{
    srvocsp__win_chain *ch = (srvocsp__win_chain *)(uintptr_t)pChainContext;
    DWORD i;

    if (ch == NULL || atomic_fetch_sub(&ch->refs, 1) != 1)
        return;
    for (i = 0; i < ch->simple.cElement; i++)
        CertFreeCertificateContext(ch->elems[i].pCertContext);
    free(ch->elems);
    free(ch->elem_ptrs);
    free(ch);
}

PCCERT_CHAIN_CONTEXT SrvOcspLoadChainFromPemFile(const char *path)
{
    FILE *f;
    X509 *x;
    PCCERT_CONTEXT certs[16];
    PCCERT_CHAIN_CONTEXT chain = NULL;
    DWORD n = 0, i;

    if (path == NULL) {
        SetLastError(ERROR_INVALID_PARAMETER);
        return NULL;
    }
    f = fopen(path, "r");
    if (f == NULL) {
        SetLastError(ERROR_FILE_NOT_FOUND);
        return NULL;
    }
    while (n < 16 && (x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
        srvocsp__win_cert *c = srvocsp__win_cert_wrap(x);

        X509_free(x);
        if (c == NULL) {
            SetLastError(ERROR_NOT_ENOUGH_MEMORY);
            goto out;
        }
        certs[n++] = &c->pub;
    }
    ERR_clear_error();
    if (n == 0) {
        SetLastError(CRYPT_E_ASN1_BADTAG);
        goto out;
    }
    chain = srvocsp__win_chain_new(certs, n);
    if (chain == NULL)
        SetLastError(ERROR_NOT_ENOUGH_MEMORY);
out:
    for (i = 0; i < n; i++)
        CertFreeCertificateContext(certs[i]);
    fclose(f);
    return chain;
}
