/*
 * CertGetCertificateChain, built with OpenSSL's verifier.
 *
 * Candidates: the certificate's own store, the additional store, and the
 * chain engine's system stores (MY and CA: intermediates; ROOT: trust
 * anchors).  HCCE_CURRENT_USER also sees the LocalMachine stores, as the
 * current user's logical stores include the machine's on Windows.  Every
 * verification problem is recorded (the verify callback keeps going) and
 * mapped to CERT_TRUST_* bits on the element it concerns; the function
 * returns TRUE with the chain as far as it was built, as crypt32 does, and
 * the caller reads TrustStatus.
 */
#include "wincrypt/wincrypt_internal.h"

#include <openssl/err.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct record {
    DWORD err[SRVOCSP__WIN_MAX_CHAIN];   /* CERT_TRUST_* error bits per depth */
    DWORD chain_err;
} record;

static int rec_index = -1;
static pthread_once_t rec_once = PTHREAD_ONCE_INIT;

static void rec_index_init(void)
{
    rec_index = X509_STORE_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

static DWORD trust_bits(int verr)
{
    switch (verr) {
    case X509_V_ERR_CERT_NOT_YET_VALID:
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_ERROR_IN_CERT_NOT_BEFORE_FIELD:
    case X509_V_ERR_ERROR_IN_CERT_NOT_AFTER_FIELD:
        return CERT_TRUST_IS_NOT_TIME_VALID;
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
    case X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE:
    case X509_V_ERR_UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY:
        return CERT_TRUST_IS_NOT_SIGNATURE_VALID;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
        return CERT_TRUST_IS_PARTIAL_CHAIN;
    case X509_V_ERR_INVALID_CA:
    case X509_V_ERR_PATH_LENGTH_EXCEEDED:
        return CERT_TRUST_INVALID_BASIC_CONSTRAINTS;
    case X509_V_ERR_INVALID_PURPOSE:
        return CERT_TRUST_IS_NOT_VALID_FOR_USAGE;
    case X509_V_ERR_UNHANDLED_CRITICAL_EXTENSION:
        return CERT_TRUST_INVALID_EXTENSION;
    default:
        /* Self-signed not in ROOT, untrusted, and whatever else keeps the
         * chain from ending in a trust anchor. */
        return CERT_TRUST_IS_UNTRUSTED_ROOT;
    }
}

static int verify_cb(int ok, X509_STORE_CTX *ctx)
{
    record *r = X509_STORE_CTX_get_ex_data(ctx, rec_index);
    int depth = X509_STORE_CTX_get_error_depth(ctx);

    if (!ok && r != NULL) {
        DWORD bits = trust_bits(X509_STORE_CTX_get_error(ctx));

        if (depth >= 0 && depth < SRVOCSP__WIN_MAX_CHAIN)
            r->err[depth] |= bits;
        r->chain_err |= bits;
    }
    return 1; /* keep going: report every problem, as crypt32 does */
}

/* Whether the leaf may be used for the requested usage (no EKU: any). */
static bool usage_ok(X509 *leaf, const CERT_USAGE_MATCH *m)
{
    EXTENDED_KEY_USAGE *eku;
    DWORD i, hits = 0;
    int j;

    if (m->Usage.cUsageIdentifier == 0 || m->Usage.rgpszUsageIdentifier == NULL)
        return true;
    eku = X509_get_ext_d2i(leaf, NID_ext_key_usage, NULL, NULL);
    if (eku == NULL) {
        ERR_clear_error();
        return true;
    }
    for (i = 0; i < m->Usage.cUsageIdentifier; i++) {
        const char *want = m->Usage.rgpszUsageIdentifier[i];
        bool found = false;

        for (j = 0; want != NULL && j < sk_ASN1_OBJECT_num(eku) && !found; j++) {
            char oid[128];

            found = OBJ_obj2txt(oid, sizeof(oid), sk_ASN1_OBJECT_value(eku, j), 1) > 0 &&
                    strcmp(oid, want) == 0;
            /* anyExtendedKeyUsage covers every purpose */
            found = found || OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, j)) == NID_anyExtendedKeyUsage;
        }
        hits += found;
    }
    sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
    return m->dwType == USAGE_MATCH_TYPE_OR ? hits > 0 : hits == m->Usage.cUsageIdentifier;
}

static int64_t filetime_to_unix(const FILETIME *ft)
{
    uint64_t t = ((uint64_t)ft->dwHighDateTime << 32) | ft->dwLowDateTime;

    return (int64_t)(t / 10000000ULL) - 11644473600LL;
}

/* The system stores the chain engine looks in. */
static bool collect_system(HCERTCHAINENGINE engine, const char *name, STACK_OF(X509) *sk)
{
    bool ok = srvocsp__win_system_collect(CERT_SYSTEM_STORE_LOCAL_MACHINE, name, sk);

    if (engine == HCCE_CURRENT_USER)
        ok = ok && srvocsp__win_system_collect(CERT_SYSTEM_STORE_CURRENT_USER, name, sk);
    return ok;
}

BOOL WINAPI CertGetCertificateChain(HCERTCHAINENGINE hChainEngine, PCCERT_CONTEXT pCertContext,
                                    LPFILETIME pTime, HCERTSTORE hAdditionalStore,
                                    PCERT_CHAIN_PARA pChainPara, DWORD dwFlags,
                                    LPVOID pvReserved, PCCERT_CHAIN_CONTEXT *ppChainContext)
{
    STACK_OF(X509) *untrusted = NULL, *roots = NULL, *built = NULL;
    X509_STORE *trust = NULL;
    X509_STORE_CTX *ctx = NULL;
    X509 *leaf = NULL;
    srvocsp__win_store *own, *extra = NULL;
    CERT_TRUST_STATUS st[SRVOCSP__WIN_MAX_CHAIN], chain_st = {0, 0};
    PCCERT_CONTEXT ctxs[SRVOCSP__WIN_MAX_CHAIN];
    record *rec = NULL;
    DWORD err = ERROR_SUCCESS, n = 0, i;
    int k;

    (void)pvReserved;
    if (ppChainContext != NULL)
        *ppChainContext = NULL;
    if (ppChainContext == NULL || pChainPara == NULL ||
        pChainPara->cbSize < offsetof(CERT_CHAIN_PARA, RequestedUsage) + sizeof(CERT_USAGE_MATCH) ||
        (hChainEngine != HCCE_CURRENT_USER && hChainEngine != HCCE_LOCAL_MACHINE) ||
        (hAdditionalStore != NULL && (extra = srvocsp__win_store_of(hAdditionalStore)) == NULL) ||
        (leaf = srvocsp__win_cert_x509(pCertContext)) == NULL) {
        SetLastError(ERROR_INVALID_PARAMETER);
        return FALSE;
    }
    pthread_once(&rec_once, rec_index_init);
    untrusted = sk_X509_new_null();
    roots = sk_X509_new_null();
    trust = X509_STORE_new();
    ctx = X509_STORE_CTX_new();
    rec = calloc(1, sizeof(*rec));
    if (untrusted == NULL || roots == NULL || trust == NULL || ctx == NULL || rec == NULL ||
        rec_index < 0) {
        err = ERROR_NOT_ENOUGH_MEMORY;
        goto out;
    }
    own = srvocsp__win_store_of(pCertContext->hCertStore);
    if ((own != NULL && !srvocsp__win_store_collect(own, untrusted)) ||
        (extra != NULL && !srvocsp__win_store_collect(extra, untrusted)) ||
        !collect_system(hChainEngine, "CA", untrusted) ||
        !collect_system(hChainEngine, "MY", untrusted) ||
        !collect_system(hChainEngine, "ROOT", roots)) {
        err = ERROR_NOT_ENOUGH_MEMORY;
        goto out;
    }
    for (k = 0; k < sk_X509_num(roots); k++)
        X509_STORE_add_cert(trust, sk_X509_value(roots, k)); /* duplicates are refused: fine */
    ERR_clear_error();
    if (!X509_STORE_CTX_init(ctx, trust, leaf, untrusted)) {
        err = ERROR_NOT_ENOUGH_MEMORY;
        goto out;
    }
    X509_STORE_CTX_set_ex_data(ctx, rec_index, rec);
    X509_STORE_CTX_set_verify_cb(ctx, verify_cb);
    X509_STORE_CTX_set_depth(ctx, SRVOCSP__WIN_MAX_CHAIN - 2);
    if (pTime != NULL)
        X509_STORE_CTX_set_time(ctx, 0, (time_t)filetime_to_unix(pTime));
    (void)X509_verify_cert(ctx); /* outcome is in |rec| */
    ERR_clear_error();
    built = X509_STORE_CTX_get1_chain(ctx);
    if (built == NULL || sk_X509_num(built) == 0) {
        err = ERROR_NOT_ENOUGH_MEMORY;
        goto out;
    }

    for (k = 0; k < sk_X509_num(built) && k < SRVOCSP__WIN_MAX_CHAIN; k++) {
        X509 *x = sk_X509_value(built, k);
        bool last = k + 1 == sk_X509_num(built);
        srvocsp__win_cert *c;

        /* Element 0 is the caller's own context, as documented for
         * crypt32 (one assembled by hand is wrapped anew). */
        if (k == 0 && srvocsp__win_cert_of(pCertContext) != NULL) {
            ctxs[n] = CertDuplicateCertificateContext(pCertContext);
        } else if ((c = srvocsp__win_cert_wrap(x, NULL)) != NULL) {
            ctxs[n] = &c->pub;
        } else {
            err = ERROR_NOT_ENOUGH_MEMORY;
            goto out;
        }
        st[n].dwErrorStatus = rec->err[k];
        st[n].dwInfoStatus = 0;
        if (X509_get_extension_flags(x) & EXFLAG_SS)
            st[n].dwInfoStatus |= CERT_TRUST_IS_SELF_SIGNED;
        if (!last) {
            X509 *issuer = sk_X509_value(built, k + 1);

            st[n].dwInfoStatus |= CERT_TRUST_HAS_NAME_MATCH_ISSUER | CERT_TRUST_HAS_PREFERRED_ISSUER;
            const ASN1_OCTET_STRING *akid = X509_get0_authority_key_id(x);
            const ASN1_OCTET_STRING *skid = X509_get0_subject_key_id(issuer);

            if (akid != NULL && skid != NULL && ASN1_OCTET_STRING_cmp(akid, skid) == 0)
                st[n].dwInfoStatus |= CERT_TRUST_HAS_KEY_MATCH_ISSUER;
        } else if (!(X509_get_extension_flags(x) & EXFLAG_SS)) {
            st[n].dwErrorStatus |= CERT_TRUST_IS_PARTIAL_CHAIN;
        }
        if (dwFlags & (CERT_CHAIN_REVOCATION_CHECK_END_CERT | CERT_CHAIN_REVOCATION_CHECK_CHAIN |
                       CERT_CHAIN_REVOCATION_CHECK_CHAIN_EXCLUDE_ROOT)) {
            /* Revocation is not checked here (this library staples; it
             * does not fetch CRLs for chains): say so. */
            if (!last || !(X509_get_extension_flags(x) & EXFLAG_SS))
                st[n].dwErrorStatus |= CERT_TRUST_REVOCATION_STATUS_UNKNOWN;
        }
        n++;
    }
    if (!usage_ok(leaf, &pChainPara->RequestedUsage))
        st[0].dwErrorStatus |= CERT_TRUST_IS_NOT_VALID_FOR_USAGE;
    for (i = 0; i < n; i++) {
        chain_st.dwErrorStatus |= st[i].dwErrorStatus;
        chain_st.dwInfoStatus |= st[i].dwInfoStatus & CERT_TRUST_HAS_PREFERRED_ISSUER;
    }
    *ppChainContext = srvocsp__win_chain_new(ctxs, n, st, chain_st);
    if (*ppChainContext == NULL)
        err = ERROR_NOT_ENOUGH_MEMORY;
out:
    for (i = 0; i < n; i++)
        CertFreeCertificateContext(ctxs[i]);
    sk_X509_pop_free(built, X509_free);
    sk_X509_pop_free(untrusted, X509_free);
    sk_X509_pop_free(roots, X509_free);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(trust);
    X509_free(leaf);
    free(rec);
    ERR_clear_error();
    if (err != ERROR_SUCCESS) {
        SetLastError(err);
        return FALSE;
    }
    return TRUE;
}
