/*
 * The crypt32 server OCSP response API, with the Windows names, types and
 * error codes, on top of srvocsp.  Code written for Windows against these
 * functions compiles unchanged; link with -lsrvocsp-wincrypt.
 *
 * See docs/wincrypt.md for each function's behaviour and every difference
 * from Windows.
 */
#ifndef SRVOCSP_WINCRYPT_H
#define SRVOCSP_WINCRYPT_H

#include <stddef.h>
#include <stdint.h>
#include <wchar.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(SRVOCSP_WINCRYPT_BUILDING)
#define SRVOCSP_WIN_EXPORT __attribute__((visibility("default")))
#else
#define SRVOCSP_WIN_EXPORT
#endif

/* ---- base types ---- */
#ifndef WINAPI
#define WINAPI
#endif
#ifndef VOID
#define VOID void
#endif
typedef uint32_t DWORD;
typedef DWORD *PDWORD;
typedef uint16_t WORD;
typedef int BOOL;
typedef unsigned char BYTE;
typedef BYTE *PBYTE;
typedef void *PVOID;
typedef void *LPVOID;
typedef const void *LPCVOID;
typedef wchar_t WCHAR;
typedef WCHAR *PWSTR;
typedef WCHAR *LPWSTR;
typedef const WCHAR *PCWSTR;
typedef const WCHAR *LPCWSTR;
typedef void *HCERTSTORE;
#ifndef TRUE
#define TRUE 1
#endif
#ifndef FALSE
#define FALSE 0
#endif

/* ---- error codes (Windows values) ---- */
#define ERROR_SUCCESS 0u
#define ERROR_ACCESS_DENIED 5u
#define ERROR_NOT_ENOUGH_MEMORY 8u
#define ERROR_WRITE_PROTECT 19u
#define ERROR_WRITE_FAULT 29u
#define ERROR_INVALID_PARAMETER 87u
#define ERROR_DISK_FULL 112u
#define ERROR_PATH_NOT_FOUND 3u
#define ERROR_FILE_NOT_FOUND 2u
#define CRYPT_E_REVOCATION_OFFLINE 0x80092013u
#define CRYPT_E_NOT_IN_REVOCATION_DATABASE 0x80092014u
#define CRYPT_E_ASN1_BADTAG 0x8009310Bu

/* ---- encodings ---- */
#define X509_ASN_ENCODING 0x00000001u
#define PKCS_7_ASN_ENCODING 0x00010000u

/* ---- certificate and chain contexts (as far as this API needs) ---- */
typedef struct _CERT_INFO CERT_INFO, *PCERT_INFO; /* not exposed here: NULL */

typedef struct _CERT_CONTEXT {
    DWORD dwCertEncodingType;
    BYTE *pbCertEncoded;
    DWORD cbCertEncoded;
    PCERT_INFO pCertInfo;
    HCERTSTORE hCertStore;
} CERT_CONTEXT, *PCERT_CONTEXT;
typedef const CERT_CONTEXT *PCCERT_CONTEXT;

typedef struct _CERT_TRUST_STATUS {
    DWORD dwErrorStatus;
    DWORD dwInfoStatus;
} CERT_TRUST_STATUS, *PCERT_TRUST_STATUS;

typedef struct _CERT_REVOCATION_INFO CERT_REVOCATION_INFO, *PCERT_REVOCATION_INFO;
typedef struct _CTL_USAGE CERT_ENHKEY_USAGE, *PCERT_ENHKEY_USAGE;
typedef struct _CERT_TRUST_LIST_INFO CERT_TRUST_LIST_INFO, *PCERT_TRUST_LIST_INFO;

typedef struct _CERT_CHAIN_ELEMENT {
    DWORD cbSize;
    PCCERT_CONTEXT pCertContext;
    CERT_TRUST_STATUS TrustStatus;
    PCERT_REVOCATION_INFO pRevocationInfo;
    PCERT_ENHKEY_USAGE pIssuanceUsage;
    PCERT_ENHKEY_USAGE pApplicationUsage;
    LPCWSTR pwszExtendedErrorInfo;
} CERT_CHAIN_ELEMENT, *PCERT_CHAIN_ELEMENT;
typedef const CERT_CHAIN_ELEMENT *PCCERT_CHAIN_ELEMENT;

typedef struct _CERT_SIMPLE_CHAIN {
    DWORD cbSize;
    CERT_TRUST_STATUS TrustStatus;
    DWORD cElement;
    PCERT_CHAIN_ELEMENT *rgpElement;
    PCERT_TRUST_LIST_INFO pTrustListInfo;
    BOOL fHasRevocationFreshnessTime;
    DWORD dwRevocationFreshnessTime;
} CERT_SIMPLE_CHAIN, *PCERT_SIMPLE_CHAIN;
typedef const CERT_SIMPLE_CHAIN *PCCERT_SIMPLE_CHAIN;

typedef struct _GUID {
    DWORD Data1;
    WORD Data2;
    WORD Data3;
    BYTE Data4[8];
} GUID;

typedef struct _CERT_CHAIN_CONTEXT CERT_CHAIN_CONTEXT, *PCERT_CHAIN_CONTEXT;
typedef const CERT_CHAIN_CONTEXT *PCCERT_CHAIN_CONTEXT;
struct _CERT_CHAIN_CONTEXT {
    DWORD cbSize;
    CERT_TRUST_STATUS TrustStatus;
    DWORD cChain;
    PCERT_SIMPLE_CHAIN *rgpChain;
    DWORD cLowerQualityChainContext;
    PCCERT_CHAIN_CONTEXT *rgpLowerQualityChainContext;
    BOOL fHasRevocationFreshnessTime;
    DWORD dwRevocationFreshnessTime;
    DWORD dwCreateFlags;
    GUID ChainId;
};

/* ---- CRL contexts: passed as NULL to the update callback ---- */
typedef struct _CRL_CONTEXT CRL_CONTEXT;
typedef const CRL_CONTEXT *PCCRL_CONTEXT;

/* ---- the server OCSP response API ---- */
typedef void *HCERT_SERVER_OCSP_RESPONSE;

typedef struct _CERT_SERVER_OCSP_RESPONSE_CONTEXT {
    DWORD cbSize;
    BYTE *pbEncodedOcspResponse;
    DWORD cbEncodedOcspResponse;
} CERT_SERVER_OCSP_RESPONSE_CONTEXT, *PCERT_SERVER_OCSP_RESPONSE_CONTEXT;
typedef const CERT_SERVER_OCSP_RESPONSE_CONTEXT *PCCERT_SERVER_OCSP_RESPONSE_CONTEXT;

typedef VOID(WINAPI *PFN_CERT_SERVER_OCSP_RESPONSE_UPDATE_CALLBACK)(
    PCCERT_CHAIN_CONTEXT pChainContext,
    PCCERT_SERVER_OCSP_RESPONSE_CONTEXT pServerOcspResponseContext,
    PCCRL_CONTEXT pNewCrlContext, PCCRL_CONTEXT pPrevCrlContext, PVOID pvArg,
    DWORD dwWriteOcspFileError);

typedef struct _CERT_SERVER_OCSP_RESPONSE_OPEN_PARA {
    DWORD cbSize;
    DWORD dwFlags;
    DWORD *pcbUsedSize;
    PWSTR pwszOcspDirectory;
    PFN_CERT_SERVER_OCSP_RESPONSE_UPDATE_CALLBACK pfnUpdateCallback;
    PVOID pvUpdateCallbackArg;
} CERT_SERVER_OCSP_RESPONSE_OPEN_PARA, *PCERT_SERVER_OCSP_RESPONSE_OPEN_PARA;

#define CERT_SERVER_OCSP_RESPONSE_ASYNC_FLAG 0x00000001u

/* CertOpenServerOcspResponse opens a handle for the chain's end certificate
 * (its issuer must be the next element).  It takes its own reference on
 * |pChainContext|.  With dwFlags 0 it tries the first retrieval before
 * returning (bounded by SrvOcspRespUrlRetrievalTimeoutMilliseconds) and
 * returns a handle even if that failed; with the ASYNC flag it returns at
 * once.  NULL with GetLastError() ERROR_INVALID_PARAMETER (bad arguments),
 * CRYPT_E_NOT_IN_REVOCATION_DATABASE (no OCSP URL) or
 * ERROR_NOT_ENOUGH_MEMORY.  Thread-safe. */
SRVOCSP_WIN_EXPORT HCERT_SERVER_OCSP_RESPONSE WINAPI CertOpenServerOcspResponse(
    PCCERT_CHAIN_CONTEXT pChainContext, DWORD dwFlags,
    PCERT_SERVER_OCSP_RESPONSE_OPEN_PARA pOpenPara);
/* CertAddRefServerOcspResponse adds a reference.  NULL is ignored. */
SRVOCSP_WIN_EXPORT VOID WINAPI
CertAddRefServerOcspResponse(HCERT_SERVER_OCSP_RESPONSE hServerOcspResponse);
/* CertCloseServerOcspResponse drops a reference; at zero the background
 * refresh stops.  Contexts handed out stay valid.  NULL is ignored. */
SRVOCSP_WIN_EXPORT VOID WINAPI CertCloseServerOcspResponse(
    HCERT_SERVER_OCSP_RESPONSE hServerOcspResponse, DWORD dwFlags);
/* CertGetServerOcspResponseContext returns a new reference to the current
 * time-valid response; never blocks.  NULL with CRYPT_E_REVOCATION_OFFLINE
 * (none, or the responder said unknown) or ERROR_INVALID_PARAMETER. */
SRVOCSP_WIN_EXPORT PCCERT_SERVER_OCSP_RESPONSE_CONTEXT WINAPI CertGetServerOcspResponseContext(
    HCERT_SERVER_OCSP_RESPONSE hServerOcspResponse, DWORD dwFlags, LPVOID pvReserved);
/* Reference counting of a response context; NULL is ignored.  A context
 * stays valid after its handle is closed, until freed. */
SRVOCSP_WIN_EXPORT VOID WINAPI
CertAddRefServerOcspResponseContext(PCCERT_SERVER_OCSP_RESPONSE_CONTEXT pServerOcspResponseContext);
SRVOCSP_WIN_EXPORT VOID WINAPI
CertFreeServerOcspResponseContext(PCCERT_SERVER_OCSP_RESPONSE_CONTEXT pServerOcspResponseContext);

/* Certificate contexts: a DER certificate (X509_ASN_ENCODING). */
SRVOCSP_WIN_EXPORT PCCERT_CONTEXT WINAPI CertCreateCertificateContext(DWORD dwCertEncodingType,
                                                                   const BYTE *pbCertEncoded,
                                                                   DWORD cbCertEncoded);
SRVOCSP_WIN_EXPORT PCCERT_CONTEXT WINAPI CertDuplicateCertificateContext(PCCERT_CONTEXT pCertContext);
SRVOCSP_WIN_EXPORT BOOL WINAPI CertFreeCertificateContext(PCCERT_CONTEXT pCertContext);

/* Chain contexts (reference counted). */
SRVOCSP_WIN_EXPORT PCCERT_CHAIN_CONTEXT WINAPI
CertDuplicateCertificateChain(PCCERT_CHAIN_CONTEXT pChainContext);
SRVOCSP_WIN_EXPORT VOID WINAPI CertFreeCertificateChain(PCCERT_CHAIN_CONTEXT pChainContext);

/* Per-thread last error. */
SRVOCSP_WIN_EXPORT DWORD WINAPI GetLastError(void);
SRVOCSP_WIN_EXPORT VOID WINAPI SetLastError(DWORD dwErrCode);

/* Not in Windows (Linux has no CertGetCertificateChain): builds a chain
 * context from one PEM file holding the end certificate first, then its
 * issuer and any further CA certificates.  NULL with GetLastError() set
 * (ERROR_FILE_NOT_FOUND, CRYPT_E_ASN1_BADTAG, ERROR_INVALID_PARAMETER,
 * ERROR_NOT_ENOUGH_MEMORY).  Free with CertFreeCertificateChain. */
SRVOCSP_WIN_EXPORT PCCERT_CHAIN_CONTEXT SrvOcspLoadChainFromPemFile(const char *path);

#ifdef __cplusplus
}
#endif
#endif
