/*
 * CertOpenServerOcspResponse and friends, on srvocsp's engine.
 *
 * HCERT_SERVER_OCSP_RESPONSE is an srvocsp_handle; a response context is
 * the view embedded in what srvocsp_get1_response returns (the thread's
 * proxy of the snapshot), laid out like CERT_SERVER_OCSP_RESPONSE_CONTEXT,
 * so Get hands out a pointer without allocating and
 * AddRef/Free map to that response's reference count.
 */
#include "wincrypt/wincrypt_internal.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(CERT_SERVER_OCSP_RESPONSE_CONTEXT) == sizeof(struct srvocsp__flat_view),
               "context layout");
_Static_assert(offsetof(CERT_SERVER_OCSP_RESPONSE_CONTEXT, pbEncodedOcspResponse) ==
                   offsetof(struct srvocsp__flat_view, pb),
               "context layout");
_Static_assert(offsetof(CERT_SERVER_OCSP_RESPONSE_CONTEXT, cbEncodedOcspResponse) ==
                   offsetof(struct srvocsp__flat_view, cb),
               "context layout");

/* ---- configuration: the registry values, read from the environment ---- */

static srvocsp_params g_defaults;
static pthread_once_t g_config_once = PTHREAD_ONCE_INIT;

static void read_knob(const char *name, uint32_t *field)
{
    const char *v = getenv(name);
    char *end;
    unsigned long long n;

    if (v == NULL)
        return;
    errno = 0;
    n = strtoull(v, &end, 10);
    if (*v == '\0' || *v == '-' || *v == '+' || *end != '\0' || errno != 0 || n > UINT32_MAX ||
        (n == 0 && (strcmp(name, "SrvOcspRespUrlRetrievalTimeoutMilliseconds") == 0 ||
                    strcmp(name, "SrvOcspRespMinSyncCertFileSeconds") == 0))) {
        fprintf(stderr,
                "srvocsp-wincrypt: ignoring %s=\"%.40s\": not a whole number in range; "
                "keeping %u\n",
                name, v, *field);
        return;
    }
    *field = (uint32_t)n;
}

static void load_config(void)
{
    srvocsp_params_init(&g_defaults);
    read_knob("SrvOcspRespMinValiditySeconds", &g_defaults.min_validity_s);
    read_knob("SrvOcspRespUrlRetrievalTimeoutMilliseconds", &g_defaults.url_timeout_ms);
    read_knob("SrvOcspRespMaxBeforeNextUpdateSeconds", &g_defaults.max_before_next_update_s);
    read_knob("SrvOcspRespMinBeforeNextUpdateSeconds", &g_defaults.min_before_next_update_s);
    read_knob("SrvOcspRespMinAfterNextUpdateSeconds", &g_defaults.min_after_next_update_s);
    /* Not a crypt32 value: the trust horizon (docs/schedule.md), 0 = none. */
    read_knob("SrvOcspRespMaxLifetimeSeconds", &g_defaults.max_lifetime_s);
    if (g_defaults.max_lifetime_s != 0 && g_defaults.max_lifetime_s <= g_defaults.min_validity_s) {
        fprintf(stderr,
                "srvocsp-wincrypt: SrvOcspRespMaxLifetimeSeconds %u is not above "
                "SrvOcspRespMinValiditySeconds %u; keeping %u\n",
                g_defaults.max_lifetime_s, g_defaults.min_validity_s,
                CERT_SRV_OCSP_RESP_MAX_LIFETIME_SECONDS_DEFAULT);
        g_defaults.max_lifetime_s = CERT_SRV_OCSP_RESP_MAX_LIFETIME_SECONDS_DEFAULT;
    }
    /* How often a directory opened with the READ flag is looked at again. */
    read_knob("SrvOcspRespMinSyncCertFileSeconds", &g_defaults.min_sync_s);
    read_knob("SrvOcspRespMaxSyncCertFileSeconds", &g_defaults.max_sync_s);
    if (g_defaults.max_sync_s < g_defaults.min_sync_s) {
        fprintf(stderr,
                "srvocsp-wincrypt: SrvOcspRespMaxSyncCertFileSeconds %u is below "
                "SrvOcspRespMinSyncCertFileSeconds %u; using %u for both\n",
                g_defaults.max_sync_s, g_defaults.min_sync_s, g_defaults.min_sync_s);
        g_defaults.max_sync_s = g_defaults.min_sync_s;
    }
}

/* ---- errors ---- */

static DWORD win_error(srvocsp_error e)
{
    switch (e) {
    case SRVOCSP_OK: return ERROR_SUCCESS;
    case SRVOCSP_E_NOMEM: return ERROR_NOT_ENOUGH_MEMORY;
    case SRVOCSP_E_NO_OCSP_URL: return CRYPT_E_NOT_IN_REVOCATION_DATABASE;
    case SRVOCSP_E_INVALID_ARG:
    case SRVOCSP_E_NO_ISSUER:
    case SRVOCSP_E_CERT:
    case SRVOCSP_E_UNSUPPORTED: return ERROR_INVALID_PARAMETER;
    default: return CRYPT_E_REVOCATION_OFFLINE;
    }
}

static DWORD win_write_error(int err_no)
{
    switch (err_no) {
    case 0: return ERROR_SUCCESS;
    case EACCES:
    case EPERM: return ERROR_ACCESS_DENIED;
    case EROFS: return ERROR_WRITE_PROTECT;
    case ENOSPC:
    case EDQUOT: return ERROR_DISK_FULL;
    case ENOENT:
    case ENOTDIR: return ERROR_PATH_NOT_FOUND;
    case ENOMEM: return ERROR_NOT_ENOUGH_MEMORY;
    default: return ERROR_WRITE_FAULT;
    }
}

/* ---- the update callback ---- */

typedef struct win_cb {
    PFN_CERT_SERVER_OCSP_RESPONSE_UPDATE_CALLBACK fn;
    PVOID arg;
    PCCERT_CHAIN_CONTEXT chain;  /* the caller's (a reference), or the handle's copy */
    pthread_mutex_t mu;          /* |prev| and |called|: the opener sets the first */
    srvocsp_response *prev;      /* the response served before the next call's */
    bool called;
} win_cb;

/* A CRL context standing for one OCSP response, as crypt32 hands them to
 * the callback: the issuer's name, the response's signature algorithm,
 * ThisUpdate and NextUpdate, and for a revoked certificate one entry with
 * its serial number and revocation time.  There is no CRL encoding of an
 * OCSP response: pbCrlEncoded is NULL. */
typedef struct crl_view {
    CRL_CONTEXT ctx;
    CRL_INFO info;
    CRL_ENTRY entry;
} crl_view;

static bool crl_fill(crl_view *v, srvocsp_handle *h, srvocsp_response *r, srvocsp__win_arena **a)
{
    const unsigned char *der;
    size_t len = 0;
    OCSP_RESPONSE *resp;
    OCSP_BASICRESP *bs = NULL;
    bool ok;

    memset(v, 0, sizeof(*v));
    der = srvocsp_response_der(r, &len);
    resp = d2i_OCSP_RESPONSE(NULL, &der, (long)len);
    if (resp != NULL)
        bs = OCSP_response_get1_basic(resp);
    ok = bs != NULL &&
         srvocsp__win_algorithm(OCSP_resp_get0_tbs_sigalg(bs), a, &v->info.SignatureAlgorithm) &&
         srvocsp__win_name_blob(X509_get_subject_name(srvocsp_handle_get0_issuer(h)), a,
                                &v->info.Issuer);
    OCSP_BASICRESP_free(bs);
    OCSP_RESPONSE_free(resp);
    ERR_clear_error();
    if (!ok)
        return false;
    v->info.dwVersion = CRL_V2;
    v->info.ThisUpdate = srvocsp__win_filetime(srvocsp_response_this_update(r));
    if (srvocsp_response_next_update(r) != 0)
        v->info.NextUpdate = srvocsp__win_filetime(srvocsp_response_next_update(r));
    if (srvocsp_response_status(r) == SRVOCSP_STATUS_REVOKED) {
        if (!srvocsp__win_serial_blob(X509_get0_serialNumber(srvocsp_handle_get0_leaf(h)), a,
                                      &v->entry.SerialNumber))
            return false;
        v->entry.RevocationDate = srvocsp__win_filetime(srvocsp_response_revocation_time(r));
        v->info.cCRLEntry = 1;
        v->info.rgCRLEntry = &v->entry;
    }
    v->ctx.dwCertEncodingType = X509_ASN_ENCODING;
    v->ctx.pCrlInfo = &v->info;
    return true;
}

static void trampoline(srvocsp_handle *h, const srvocsp_event *ev, void *arg)
{
    win_cb *cb = arg;
    srvocsp__win_arena *a = NULL;
    srvocsp_response *prev;
    crl_view nv, pv;
    bool have_new, have_prev;

    /* Windows calls back for each retrieved response, with the error of
     * writing it to the directory; failures are not reported this way. */
    if (ev->response == NULL || ev->type == SRVOCSP_EVENT_STORE_FAILED)
        return;
    /* Callbacks of one handle run one at a time on the engine's thread;
     * the lock is for the opener, which may set the first |prev|. */
    pthread_mutex_lock(&cb->mu);
    prev = cb->prev;
    cb->prev = NULL;
    cb->called = true;
    pthread_mutex_unlock(&cb->mu);
    /* What the opener saw may already be this very response. */
    if (prev != NULL &&
        srvocsp_response_this_update(prev) >= srvocsp_response_this_update(ev->response)) {
        srvocsp_response_free(prev);
        prev = NULL;
    }
    have_new = crl_fill(&nv, h, ev->response, &a);
    have_prev = prev != NULL && crl_fill(&pv, h, prev, &a);
    cb->fn(cb->chain, (PCCERT_SERVER_OCSP_RESPONSE_CONTEXT)(const void *)&ev->response->view,
           have_new ? &nv.ctx : NULL, have_prev ? &pv.ctx : NULL, cb->arg,
           win_write_error(ev->store_errno));
    srvocsp__win_arena_free(a);
    srvocsp_response_free(prev);
    pthread_mutex_lock(&cb->mu);
    srvocsp_response_free(cb->prev);
    cb->prev = srvocsp_response_up_ref(ev->response);
    pthread_mutex_unlock(&cb->mu);
}

static void win_cb_free(void *arg)
{
    win_cb *cb = arg;

    CertFreeCertificateChain(cb->chain);
    srvocsp_response_free(cb->prev);
    pthread_mutex_destroy(&cb->mu);
    free(cb);
}

/* ---- helpers ---- */

#define PARA_HAS(para, field)                                                                      \
    ((para)->cbSize >= offsetof(CERT_SERVER_OCSP_RESPONSE_OPEN_PARA, field) +                      \
                           sizeof(((CERT_SERVER_OCSP_RESPONSE_OPEN_PARA *)0)->field))

/* Reads the caller's chain (which may be assembled by hand: each element's
 * encoded certificate is parsed) into X509s, and, unless the chain is one
 * of this library's (then the callback gets the caller's own pointer), a
 * private chain context for the callback. */
static DWORD copy_chain(PCCERT_CHAIN_CONTEXT in, STACK_OF(X509) **sk, PCCERT_CHAIN_CONTEXT *out)
{
    PCCERT_SIMPLE_CHAIN simple;
    PCCERT_CONTEXT ctxs[SRVOCSP__WIN_MAX_CHAIN];
    CERT_TRUST_STATUS none = {0, 0};
    DWORD i, n, made = 0, err = ERROR_SUCCESS;
    bool ours = srvocsp__win_chain_is_ours(in);

    *sk = NULL;
    *out = NULL;
    if (in == NULL || in->cChain < 1 || in->rgpChain == NULL || in->rgpChain[0] == NULL)
        return ERROR_INVALID_PARAMETER;
    simple = in->rgpChain[0];
    n = simple->cElement;
    if (n < 2 || n > SRVOCSP__WIN_MAX_CHAIN || simple->rgpElement == NULL)
        return ERROR_INVALID_PARAMETER; /* leaf and issuer at least */
    *sk = sk_X509_new_null();
    if (*sk == NULL)
        return ERROR_NOT_ENOUGH_MEMORY;
    for (i = 0; i < n && err == ERROR_SUCCESS; i++) {
        X509 *x = simple->rgpElement[i] ? srvocsp__win_cert_x509(simple->rgpElement[i]->pCertContext)
                                        : NULL;
        srvocsp__win_cert *c = NULL;

        if (x == NULL) {
            err = ERROR_INVALID_PARAMETER;
        } else if ((!ours && (c = srvocsp__win_cert_wrap(x, NULL)) == NULL) ||
                   !sk_X509_push(*sk, x)) {
            X509_free(x);
            err = ERROR_NOT_ENOUGH_MEMORY;
        }
        if (c != NULL)
            ctxs[made++] = &c->pub;
    }
    if (err == ERROR_SUCCESS)
        *out = ours ? CertDuplicateCertificateChain(in) : srvocsp__win_chain_new(ctxs, n, NULL, none);
    if (err == ERROR_SUCCESS && *out == NULL)
        err = ERROR_NOT_ENOUGH_MEMORY;
    for (i = 0; i < made; i++)
        CertFreeCertificateContext(ctxs[i]);
    if (err != ERROR_SUCCESS) {
        sk_X509_pop_free(*sk, X509_free);
        *sk = NULL;
    }
    return err;
}

/* ---- the six functions ---- */

HCERT_SERVER_OCSP_RESPONSE WINAPI CertOpenServerOcspResponse(
    PCCERT_CHAIN_CONTEXT pChainContext, DWORD dwFlags,
    PCERT_SERVER_OCSP_RESPONSE_OPEN_PARA pOpenPara)
{
    srvocsp_params p;
    STACK_OF(X509) *sk = NULL;
    PCCERT_CHAIN_CONTEXT chain = NULL;
    win_cb *cb = NULL;
    char *dir = NULL;
    srvocsp_handle *h = NULL;
    DWORD err;

    pthread_once(&g_config_once, load_config);
    p = g_defaults;
    /* Undefined bits of dwFlags are ignored, as crypt32 does with flag bits
     * it does not define (docs/wincrypt.md). */
    if (pOpenPara != NULL) {
        DWORD mode;

        /* cbSize says which fields the caller knows: read only those. */
        if (!PARA_HAS(pOpenPara, dwFlags)) {
            SetLastError(ERROR_INVALID_PARAMETER);
            return NULL;
        }
        mode = pOpenPara->dwFlags &
               (CERT_SERVER_OCSP_RESPONSE_OPEN_PARA_READ_FLAG | CERT_SERVER_OCSP_RESPONSE_OPEN_PARA_WRITE_FLAG);
        if (PARA_HAS(pOpenPara, pcbUsedSize) && pOpenPara->pcbUsedSize != NULL)
            *pOpenPara->pcbUsedSize =
                pOpenPara->cbSize < sizeof(*pOpenPara) ? pOpenPara->cbSize : sizeof(*pOpenPara);
        if (mode == (CERT_SERVER_OCSP_RESPONSE_OPEN_PARA_READ_FLAG |
                     CERT_SERVER_OCSP_RESPONSE_OPEN_PARA_WRITE_FLAG)) {
            SetLastError(ERROR_INVALID_PARAMETER); /* one directory, one role */
            return NULL;
        }
        if (mode != 0) {
            /* READ or WRITE without a directory to read or write. */
            if (!PARA_HAS(pOpenPara, pwszOcspDirectory) || pOpenPara->pwszOcspDirectory == NULL) {
                SetLastError(ERROR_INVALID_PARAMETER);
                return NULL;
            }
            dir = srvocsp__win_wide_to_utf8(pOpenPara->pwszOcspDirectory);
            if (dir == NULL || dir[0] == '\0') {
                free(dir);
                SetLastError(ERROR_INVALID_PARAMETER);
                return NULL;
            }
            p.directory = dir;
            p.directory_mode = mode == CERT_SERVER_OCSP_RESPONSE_OPEN_PARA_READ_FLAG
                                   ? SRVOCSP_DIR_READ_ONLY
                                   : SRVOCSP_DIR_WRITE_ONLY;
        }
        /* Neither flag: the directory, if any, is not used. */
    }
    err = copy_chain(pChainContext, &sk, &chain);
    if (err != ERROR_SUCCESS)
        goto out;
    if (pOpenPara != NULL && PARA_HAS(pOpenPara, pfnUpdateCallback) &&
        pOpenPara->pfnUpdateCallback != NULL) {
        cb = calloc(1, sizeof(*cb));
        if (cb == NULL) {
            err = ERROR_NOT_ENOUGH_MEMORY;
            goto out;
        }
        cb->fn = pOpenPara->pfnUpdateCallback;
        cb->arg = PARA_HAS(pOpenPara, pvUpdateCallbackArg) ? pOpenPara->pvUpdateCallbackArg : NULL;
        cb->chain = CertDuplicateCertificateChain(chain); /* the caller's, when ours */
        pthread_mutex_init(&cb->mu, NULL);
        p.update_cb = trampoline;
        p.update_arg = cb;
        p.update_arg_free = win_cb_free;
    }
    p.flags = (dwFlags & CERT_SERVER_OCSP_RESPONSE_ASYNC_FLAG) ? SRVOCSP_OPEN_ASYNC : 0;
    h = srvocsp_open(sk_X509_value(sk, 0), sk, &p);
    if (h == NULL) {
        err = win_error(srvocsp_last_error());
        if (cb != NULL)
            win_cb_free(cb); /* never handed to a handle */
        goto out;
    }
    if (cb != NULL) {
        /* The response served now (e.g. loaded from the directory) is the
         * previous one of the first callback, unless that already ran. */
        srvocsp_response *now = srvocsp_get1_response(h);

        pthread_mutex_lock(&cb->mu);
        if (!cb->called && cb->prev == NULL) {
            cb->prev = now;
            now = NULL;
        }
        pthread_mutex_unlock(&cb->mu);
        srvocsp_response_free(now);
    }
    err = ERROR_SUCCESS;
out:
    CertFreeCertificateChain(chain);
    sk_X509_pop_free(sk, X509_free);
    free(dir);
    if (err != ERROR_SUCCESS)
        SetLastError(err);
    return (HCERT_SERVER_OCSP_RESPONSE)h;
}

VOID WINAPI CertAddRefServerOcspResponse(HCERT_SERVER_OCSP_RESPONSE hServerOcspResponse)
{
    srvocsp_handle_up_ref((srvocsp_handle *)hServerOcspResponse);
}

VOID WINAPI CertCloseServerOcspResponse(HCERT_SERVER_OCSP_RESPONSE hServerOcspResponse,
                                        DWORD dwFlags)
{
    (void)dwFlags;
    srvocsp_close((srvocsp_handle *)hServerOcspResponse);
}

PCCERT_SERVER_OCSP_RESPONSE_CONTEXT WINAPI CertGetServerOcspResponseContext(
    HCERT_SERVER_OCSP_RESPONSE hServerOcspResponse, DWORD dwFlags, LPVOID pvReserved)
{
    srvocsp_response *r;

    if (hServerOcspResponse == NULL || dwFlags != 0 || pvReserved != NULL) {
        SetLastError(ERROR_INVALID_PARAMETER);
        return NULL;
    }
    r = srvocsp_get1_response((srvocsp_handle *)hServerOcspResponse);
    if (r == NULL) {
        SetLastError(CRYPT_E_REVOCATION_OFFLINE);
        return NULL;
    }
    return (PCCERT_SERVER_OCSP_RESPONSE_CONTEXT)(const void *)&r->view;
}

VOID WINAPI
CertAddRefServerOcspResponseContext(PCCERT_SERVER_OCSP_RESPONSE_CONTEXT pServerOcspResponseContext)
{
    if (pServerOcspResponseContext != NULL)
        srvocsp_response_up_ref(srvocsp__response_from_view(
            (const struct srvocsp__flat_view *)(const void *)pServerOcspResponseContext));
}

VOID WINAPI
CertFreeServerOcspResponseContext(PCCERT_SERVER_OCSP_RESPONSE_CONTEXT pServerOcspResponseContext)
{
    if (pServerOcspResponseContext != NULL)
        srvocsp_response_free(srvocsp__response_from_view(
            (const struct srvocsp__flat_view *)(const void *)pServerOcspResponseContext));
}
