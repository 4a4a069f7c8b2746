/*
 * Server set-up code written the Windows way, from the Microsoft
 * documentation of crypt32 only: the server certificate is found in the
 * machine's MY store, its chain is built by CertGetCertificateChain, and
 * a stapling handle is opened on that chain with an update callback and
 * the response directory.  It compiles unchanged as C and as C++; on
 * Windows the one include below would be <windows.h> and <wincrypt.h>.
 *
 * Usage: wincrypt_proof OCSP-DIRECTORY SUBJECT NO-AIA-SUBJECT
 * (the system stores are configured by the caller).  Exit status 0 when
 * every check held.
 */
#include <srvocsp/wincrypt.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

static int g_failures;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "wincrypt_proof:%d: check failed: %s (GetLastError 0x%08lx)\n",       \
                    __LINE__, #cond, (unsigned long)GetLastError());                               \
            g_failures++;                                                                          \
        }                                                                                          \
    } while (0)

/* What the update callback saw. */
static volatile LONG g_updates;
static volatile LONG g_callback_ok;
static PCCERT_CHAIN_CONTEXT g_chain;

static ULONGLONG FileTimeValue(const FILETIME *ft)
{
    return ((ULONGLONG)ft->dwHighDateTime << 32) | ft->dwLowDateTime;
}

static VOID CALLBACK OcspResponseUpdated(PCCERT_CHAIN_CONTEXT pChainContext,
                                         PCCERT_SERVER_OCSP_RESPONSE_CONTEXT pServerOcspResponseContext,
                                         PCCRL_CONTEXT pNewCrlContext,
                                         PCCRL_CONTEXT pPrevCrlContext, PVOID pvArg,
                                         DWORD dwWriteOcspFileError)
{
    BOOL ok = TRUE;

    (void)pPrevCrlContext;
    (void)pvArg;
    if (pChainContext != g_chain)
        ok = FALSE;
    if (pServerOcspResponseContext == NULL ||
        pServerOcspResponseContext->cbEncodedOcspResponse == 0)
        ok = FALSE;
    if (pNewCrlContext == NULL || pNewCrlContext->pCrlInfo == NULL ||
        FileTimeValue(&pNewCrlContext->pCrlInfo->NextUpdate) <=
            FileTimeValue(&pNewCrlContext->pCrlInfo->ThisUpdate))
        ok = FALSE;
    if (dwWriteOcspFileError != ERROR_SUCCESS)
        ok = FALSE;
    if (ok)
        InterlockedIncrement(&g_callback_ok);
    InterlockedIncrement(&g_updates);
}

static HRESULT HResultFromLastError(void)
{
    DWORD dwError = GetLastError();

    return dwError == ERROR_SUCCESS ? E_FAIL : HRESULT_FROM_WIN32(dwError);
}

static WCHAR *Widen(const char *s)
{
    size_t n = strlen(s) + 1;
    WCHAR *w = (WCHAR *)calloc(n, sizeof(WCHAR));

    if (w != NULL && mbstowcs(w, s, n) == (size_t)-1) {
        free(w);
        w = NULL;
    }
    return w;
}

/* Finds the certificate whose subject contains |pwszSubject| in the
 * machine's MY store and builds its chain for server authentication. */
static HRESULT GetServerChain(HCERTSTORE hMy, LPCWSTR pwszSubject,
                              PCCERT_CHAIN_CONTEXT *ppChainContext)
{
    PCCERT_CONTEXT pCertContext;
    CERT_CHAIN_PARA ChainPara;
    LPSTR rgpszUsage[1];
    HRESULT hr = S_OK;

    *ppChainContext = NULL;
    pCertContext = CertFindCertificateInStore(hMy, X509_ASN_ENCODING | PKCS_7_ASN_ENCODING, 0,
                                              CERT_FIND_SUBJECT_STR_W, pwszSubject, NULL);
    if (pCertContext == NULL)
        return HResultFromLastError();
    CHECK(pCertContext->pCertInfo != NULL);
    CHECK(pCertContext->pCertInfo->dwVersion == CERT_V3);
    CHECK(pCertContext->pCertInfo->SerialNumber.cbData > 0);
    CHECK(FileTimeValue(&pCertContext->pCertInfo->NotAfter) >
          FileTimeValue(&pCertContext->pCertInfo->NotBefore));
    CHECK(pCertContext->hCertStore == hMy);

    memset(&ChainPara, 0, sizeof(ChainPara));
    ChainPara.cbSize = sizeof(ChainPara);
    rgpszUsage[0] = (LPSTR)szOID_PKIX_KP_SERVER_AUTH;
    ChainPara.RequestedUsage.dwType = USAGE_MATCH_TYPE_AND;
    ChainPara.RequestedUsage.Usage.cUsageIdentifier = 1;
    ChainPara.RequestedUsage.Usage.rgpszUsageIdentifier = rgpszUsage;
    if (!CertGetCertificateChain(HCCE_LOCAL_MACHINE, pCertContext, NULL, NULL, &ChainPara, 0, NULL,
                                 ppChainContext))
        hr = HResultFromLastError();
    else if ((*ppChainContext)->TrustStatus.dwErrorStatus != CERT_TRUST_NO_ERROR)
        hr = S_FALSE; /* built, but not trusted */
    CertFreeCertificateContext(pCertContext);
    return hr;
}

int main(int argc, char **argv)
{
    HCERTSTORE hMy = NULL;
    PCCERT_CHAIN_CONTEXT pChainContext = NULL, pNoAiaChain = NULL;
    HCERT_SERVER_OCSP_RESPONSE hServerOcspResponse, hReader;
    PCCERT_SERVER_OCSP_RESPONSE_CONTEXT pServerOcspResponseContext;
    CERT_SERVER_OCSP_RESPONSE_OPEN_PARA OpenPara;
    DWORD cbUsed = 0;
    WCHAR *pwszDirectory, *pwszSubject, *pwszNoAia;
    HRESULT hr;
    int i;

    if (argc != 4) {
        fprintf(stderr, "usage: wincrypt_proof OCSP-DIRECTORY SUBJECT NO-AIA-SUBJECT\n");
        return 2;
    }
    pwszDirectory = Widen(argv[1]);
    pwszSubject = Widen(argv[2]);
    pwszNoAia = Widen(argv[3]);
    CHECK(pwszDirectory != NULL && pwszSubject != NULL && pwszNoAia != NULL);

    /* HRESULT basics. */
    CHECK(SUCCEEDED(S_OK) && SUCCEEDED(S_FALSE) && FAILED(E_FAIL));
    CHECK(FAILED(CRYPT_E_REVOCATION_OFFLINE));
    CHECK(HRESULT_FROM_WIN32(ERROR_INVALID_PARAMETER) == E_INVALIDARG);
    CHECK(HRESULT_FROM_WIN32(CRYPT_E_NOT_FOUND) == CRYPT_E_NOT_FOUND);
    CHECK(sizeof(HRESULT) == 4 && sizeof(DWORD) == 4 && sizeof(LONG) == 4);

    /* The server certificate and its chain, from the system stores. */
    hMy = CertOpenStore(CERT_STORE_PROV_SYSTEM_W, 0, 0,
                        CERT_SYSTEM_STORE_LOCAL_MACHINE | CERT_STORE_READONLY_FLAG, L"MY");
    CHECK(hMy != NULL);
    if (hMy == NULL)
        return 1;
    hr = GetServerChain(hMy, pwszSubject, &pChainContext);
    CHECK(hr == S_OK);
    if (FAILED(hr))
        return 1;
    CHECK(pChainContext->cChain == 1 && pChainContext->rgpChain[0]->cElement == 3);

    /* Stapling: WRITE the responses to the directory, be told of each. */
    memset(&OpenPara, 0, sizeof(OpenPara));
    OpenPara.cbSize = sizeof(OpenPara);
    OpenPara.dwFlags = CERT_SERVER_OCSP_RESPONSE_OPEN_PARA_WRITE_FLAG;
    OpenPara.pcbUsedSize = &cbUsed;
    OpenPara.pwszOcspDirectory = pwszDirectory;
    OpenPara.pfnUpdateCallback = OcspResponseUpdated;
    OpenPara.pvUpdateCallbackArg = NULL;
    g_chain = pChainContext;
    hServerOcspResponse = CertOpenServerOcspResponse(pChainContext, 0, &OpenPara);
    CHECK(hServerOcspResponse != NULL);
    CHECK(cbUsed == sizeof(OpenPara));
    for (i = 0; i < 1000 && InterlockedCompareExchange(&g_updates, 0, 0) == 0; i++)
        Sleep(10);
    CHECK(InterlockedCompareExchange(&g_updates, 0, 0) == 1);
    CHECK(InterlockedCompareExchange(&g_callback_ok, 0, 0) == 1);
    pServerOcspResponseContext = CertGetServerOcspResponseContext(hServerOcspResponse, 0, NULL);
    CHECK(pServerOcspResponseContext != NULL);
    if (pServerOcspResponseContext != NULL) {
        CHECK(pServerOcspResponseContext->cbSize == sizeof(CERT_SERVER_OCSP_RESPONSE_CONTEXT));
        CHECK(pServerOcspResponseContext->cbEncodedOcspResponse > 0);
        CertFreeServerOcspResponseContext(pServerOcspResponseContext);
    }
    CertCloseServerOcspResponse(hServerOcspResponse, 0);

    /* READ and WRITE together is not a valid request. */
    OpenPara.dwFlags =
        CERT_SERVER_OCSP_RESPONSE_OPEN_PARA_READ_FLAG | CERT_SERVER_OCSP_RESPONSE_OPEN_PARA_WRITE_FLAG;
    SetLastError(ERROR_SUCCESS);
    CHECK(CertOpenServerOcspResponse(pChainContext, 0, &OpenPara) == NULL);
    CHECK(GetLastError() == ERROR_INVALID_PARAMETER);

    /* READ: another process keeps the directory fresh; this one serves
     * from it at once (ASYNC: no waiting) and never asks the responder. */
    OpenPara.dwFlags = CERT_SERVER_OCSP_RESPONSE_OPEN_PARA_READ_FLAG;
    OpenPara.pfnUpdateCallback = NULL;
    hReader = CertOpenServerOcspResponse(pChainContext, CERT_SERVER_OCSP_RESPONSE_ASYNC_FLAG,
                                         &OpenPara);
    CHECK(hReader != NULL);
    pServerOcspResponseContext = CertGetServerOcspResponseContext(hReader, 0, NULL);
    CHECK(pServerOcspResponseContext != NULL);
    CertAddRefServerOcspResponseContext(pServerOcspResponseContext);
    CertFreeServerOcspResponseContext(pServerOcspResponseContext);
    CertAddRefServerOcspResponse(hReader);
    CertCloseServerOcspResponse(hReader, 0);
    CertCloseServerOcspResponse(hReader, 0);
    /* A context outlives its handle. */
    CHECK(pServerOcspResponseContext == NULL ||
          pServerOcspResponseContext->cbEncodedOcspResponse > 0);
    CertFreeServerOcspResponseContext(pServerOcspResponseContext);

    /* A certificate without an OCSP URL: the documented error, as an
     * HRESULT too. */
    hr = GetServerChain(hMy, pwszNoAia, &pNoAiaChain);
    CHECK(SUCCEEDED(hr));
    if (SUCCEEDED(hr)) {
        CHECK(CertOpenServerOcspResponse(pNoAiaChain, 0, NULL) == NULL);
        CHECK(GetLastError() == CRYPT_E_NOT_IN_REVOCATION_DATABASE);
        hr = HResultFromLastError();
        CHECK(FAILED(hr) && hr == CRYPT_E_NOT_IN_REVOCATION_DATABASE);
        CertFreeCertificateChain(pNoAiaChain);
    }

    /* Nothing in the store matches: CRYPT_E_NOT_FOUND. */
    CHECK(CertFindCertificateInStore(hMy, X509_ASN_ENCODING, 0, CERT_FIND_SUBJECT_STR_W,
                                     L"no such subject", NULL) == NULL);
    CHECK(GetLastError() == CRYPT_E_NOT_FOUND);

    CertFreeCertificateChain(pChainContext);
    CHECK(CertCloseStore(hMy, CERT_CLOSE_STORE_CHECK_FLAG));
    free(pwszDirectory);
    free(pwszSubject);
    free(pwszNoAia);
    if (g_failures == 0)
        printf("wincrypt_proof: all checks held\n");
    return g_failures == 0 ? 0 : 1;
}
