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
        (strcmp(name, "SrvOcspRespUrlRetrievalTimeoutMilliseconds") == 0 && n == 0)) {
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
    PCCERT_CHAIN_CONTEXT chain; /* the handle's own copy */
} win_cb;

static void trampoline(srvocsp_handle *h, const srvocsp_event *ev, void *arg)
{
    win_cb *cb = arg;

    (void)h;
    /* Windows calls back for each retrieved response, with the error of
     * writing it to the directory; failures are not reported this way. */
    if (ev->response == NULL || ev->type == SRVOCSP_EVENT_STORE_FAILED)
        return;
    cb->fn(cb->chain, (PCCERT_SERVER_OCSP_RESPONSE_CONTEXT)(const void *)&ev->response->view,
           NULL, NULL, cb->arg, win_write_error(ev->store_errno));
}

static void win_cb_free(void *arg)
{
    win_cb *cb = arg;

    CertFreeCertificateChain(cb->chain);
    free(cb);
}

/* ---- helpers ---- */

/* UTF-32 (Linux wchar_t) to UTF-8; NULL on an invalid code point. */
static char *wide_to_utf8(const WCHAR *w)
{
    size_t n = wcslen(w), i, o = 0;
    char *out = malloc(4 * n + 1);

    if (out == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        uint32_t c = (uint32_t)w[i];

        if (c >= 0xD800 && c <= 0xDFFF) {
            free(out);
            return NULL;
        }
        if (c < 0x80) {
            out[o++] = (char)c;
        } else if (c < 0x800) {
            out[o++] = (char)(0xC0 | (c >> 6));
            out[o++] = (char)(0x80 | (c & 0x3F));
        } else if (c < 0x10000) {
            out[o++] = (char)(0xE0 | (c >> 12));
            out[o++] = (char)(0x80 | ((c >> 6) & 0x3F));
            out[o++] = (char)(0x80 | (c & 0x3F));
        } else if (c <= 0x10FFFF) {
            out[o++] = (char)(0xF0 | (c >> 18));
            out[o++] = (char)(0x80 | ((c >> 12) & 0x3F));
            out[o++] = (char)(0x80 | ((c >> 6) & 0x3F));
            out[o++] = (char)(0x80 | (c & 0x3F));
        } else {
            free(out);
            return NULL;
        }
    }
    out[o] = '\0';
    return out;
}

#define PARA_HAS(para, field)                                                                      \
    ((para)->cbSize >= offsetof(CERT_SERVER_OCSP_RESPONSE_OPEN_PARA, field) +                      \
                           sizeof(((CERT_SERVER_OCSP_RESPONSE_OPEN_PARA *)0)->field))

/* Copies the caller's chain (which may be assembled by hand) into X509s and
 * a private chain context for the callback. */
static DWORD copy_chain(PCCERT_CHAIN_CONTEXT in, STACK_OF(X509) **sk, PCCERT_CHAIN_CONTEXT *out)
{
    PCCERT_SIMPLE_CHAIN simple;
    PCCERT_CONTEXT ctxs[16];
    DWORD i, n, err = ERROR_SUCCESS;

    *sk = NULL;
    *out = NULL;
    if (in == NULL || in->cChain < 1 || in->rgpChain == NULL || in->rgpChain[0] == NULL)
        return ERROR_INVALID_PARAMETER;
    simple = in->rgpChain[0];
    n = simple->cElement;
    if (n < 2 || n > 16 || simple->rgpElement == NULL)
        return ERROR_INVALID_PARAMETER; /* leaf and issuer at least */
    *sk = sk_X509_new_null();
    if (*sk == NULL)
        return ERROR_NOT_ENOUGH_MEMORY;
    for (i = 0; i < n; i++) {
        X509 *x = simple->rgpElement[i] ? srvocsp__win_cert_x509(simple->rgpElement[i]->pCertContext)
                                        : NULL;
        srvocsp__win_cert *c;

        if (x == NULL) {
            err = ERROR_INVALID_PARAMETER;
            break;
        }
        c = srvocsp__win_cert_wrap(x);
        if (c == NULL || !sk_X509_push(*sk, x)) {
            X509_free(x);
            if (c)
                CertFreeCertificateContext(&c->pub);
            err = ERROR_NOT_ENOUGH_MEMORY;
            break;
        }
        ctxs[i] = &c->pub;
    }
    if (err == ERROR_SUCCESS && (*out = srvocsp__win_chain_new(ctxs, n)) == NULL)
        err = ERROR_NOT_ENOUGH_MEMORY;
    n = i < n ? i : n;
    for (i = 0; i < n; i++)
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
    if (dwFlags & ~CERT_SERVER_OCSP_RESPONSE_ASYNC_FLAG) {
        SetLastError(ERROR_INVALID_PARAMETER);
        return NULL;
    }
    if (pOpenPara != NULL) {
        /* cbSize says which fields the caller knows: read only those. */
        if (!PARA_HAS(pOpenPara, dwFlags) || pOpenPara->dwFlags != 0) {
            SetLastError(ERROR_INVALID_PARAMETER);
            return NULL;
        }
        if (PARA_HAS(pOpenPara, pcbUsedSize) && pOpenPara->pcbUsedSize != NULL)
            *pOpenPara->pcbUsedSize =
                pOpenPara->cbSize < sizeof(*pOpenPara) ? pOpenPara->cbSize : sizeof(*pOpenPara);
        if (PARA_HAS(pOpenPara, pwszOcspDirectory) && pOpenPara->pwszOcspDirectory != NULL) {
            dir = wide_to_utf8(pOpenPara->pwszOcspDirectory);
            if (dir == NULL || dir[0] == '\0') {
                free(dir);
                SetLastError(ERROR_INVALID_PARAMETER);
                return NULL;
            }
            p.directory = dir;
        }
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
        cb->chain = CertDuplicateCertificateChain(chain);
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
