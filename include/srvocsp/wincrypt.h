/*
 * The crypt32 server OCSP response API, with the Windows names, types and
 * error codes, on top of srvocsp, together with what such code needs
 * around it: the windows.h basics (CALLBACK, HRESULT, S_OK, FAILED, ...),
 * decoded certificates (CERT_INFO), certificate stores and
 * CertGetCertificateChain.  Code written for Windows against these
 * functions compiles unchanged once <windows.h> and <wincrypt.h> are
 * replaced by this header, as C (C11) or C++ (C++11 or later); link with
 * -lsrvocsp-wincrypt.  Layouts and values are those of the SDK on x86-64.
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

/* ---- wchar_t must be Windows' width here: 4 bytes (UTF-32) ----
 * The library reads directory names and find strings as 4-byte wchar_t; a
 * caller built with -fshort-wchar would hand it 2-byte strings that it
 * would misread, so such a build stops here. */
#if defined(__SIZEOF_WCHAR_T__) && __SIZEOF_WCHAR_T__ != 4
#error "srvocsp/wincrypt.h needs a 4-byte wchar_t (do not build with -fshort-wchar)"
#endif
#ifdef __cplusplus
static_assert(sizeof(wchar_t) == 4, "srvocsp/wincrypt.h needs a 4-byte wchar_t");
#else
_Static_assert(sizeof(wchar_t) == 4, "srvocsp/wincrypt.h needs a 4-byte wchar_t");
#endif

/* ---- what windows.h gives every Windows source (x86-64 widths) ---- */
#ifndef WINAPI
#define WINAPI
#endif
#ifndef CALLBACK
#define CALLBACK
#endif
#ifndef VOID
#define VOID void
#endif
#ifndef CONST
#define CONST const
#endif
typedef uint32_t DWORD;
typedef DWORD *PDWORD, *LPDWORD;
typedef uint16_t WORD;
typedef int BOOL;
typedef BOOL *PBOOL;
typedef int INT;
typedef unsigned int UINT;
typedef int32_t LONG;           /* 32 bits, as on Windows (long is 64 here) */
typedef uint32_t ULONG;
typedef int64_t LONGLONG;
typedef uint64_t ULONGLONG;
typedef LONG HRESULT;           /* 32-bit signed, as on Windows */
typedef unsigned char BYTE;
typedef BYTE *PBYTE, *LPBYTE;
typedef char CHAR;
typedef CHAR *PSTR, *LPSTR;
typedef const CHAR *PCSTR, *LPCSTR;
typedef void *PVOID;
typedef void *LPVOID;
typedef const void *LPCVOID;
typedef void *HANDLE;
typedef wchar_t WCHAR;
typedef WCHAR *PWSTR;
typedef WCHAR *LPWSTR;
typedef const WCHAR *PCWSTR;
typedef const WCHAR *LPCWSTR;
typedef uintptr_t ULONG_PTR;
typedef ULONG_PTR HCRYPTPROV_LEGACY;
typedef void *HCERTSTORE;
typedef void *HCERTCHAINENGINE;
#ifndef TRUE
#define TRUE 1
#endif
#ifndef FALSE
#define FALSE 0
#endif

typedef struct _FILETIME {      /* 100 ns intervals since 1601-01-01 UTC */
    DWORD dwLowDateTime;
    DWORD dwHighDateTime;
} FILETIME, *PFILETIME, *LPFILETIME;

/* ---- HRESULTs ---- */
#define FACILITY_WIN32 7
#define SUCCEEDED(hr) (((HRESULT)(hr)) >= 0)
#define FAILED(hr) (((HRESULT)(hr)) < 0)
#define HRESULT_FROM_WIN32(x)                                                                      \
    ((HRESULT)(x) <= 0 ? ((HRESULT)(x))                                                            \
                       : ((HRESULT)(((x)&0x0000FFFF) | (FACILITY_WIN32 << 16) | 0x80000000)))
#define S_OK ((HRESULT)0x00000000)
#define S_FALSE ((HRESULT)0x00000001)
#define E_NOTIMPL ((HRESULT)0x80004001)
#define E_FAIL ((HRESULT)0x80004005)
#define E_OUTOFMEMORY ((HRESULT)0x8007000E)
#define E_INVALIDARG ((HRESULT)0x80070057)

/* ---- Win32 error codes (winerror.h values) ---- */
#define ERROR_SUCCESS 0L
#define ERROR_FILE_NOT_FOUND 2L
#define ERROR_PATH_NOT_FOUND 3L
#define ERROR_ACCESS_DENIED 5L
#define ERROR_INVALID_HANDLE 6L
#define ERROR_NOT_ENOUGH_MEMORY 8L
#define ERROR_INVALID_DATA 13L
#define ERROR_WRITE_PROTECT 19L
#define ERROR_WRITE_FAULT 29L
#define ERROR_NOT_SUPPORTED 50L
#define ERROR_FILE_EXISTS 80L
#define ERROR_INVALID_PARAMETER 87L
#define ERROR_DISK_FULL 112L
#define ERROR_CALL_NOT_IMPLEMENTED 120L
#define ERROR_MORE_DATA 234L
/* crypt32's codes are HRESULTs (FAILED(CRYPT_E_NOT_FOUND) is true) and
 * are also what GetLastError() returns: compare them directly. */
#define CRYPT_E_BAD_ENCODE ((HRESULT)0x80092002)
#define CRYPT_E_FILE_ERROR ((HRESULT)0x80092003)
#define CRYPT_E_NOT_FOUND ((HRESULT)0x80092004)
#define CRYPT_E_EXISTS ((HRESULT)0x80092005)
#define CRYPT_E_PENDING_CLOSE ((HRESULT)0x8009200F)
#define CRYPT_E_NO_REVOCATION_CHECK ((HRESULT)0x80092012)
#define CRYPT_E_REVOCATION_OFFLINE ((HRESULT)0x80092013)
#define CRYPT_E_NOT_IN_REVOCATION_DATABASE ((HRESULT)0x80092014)
#define CRYPT_E_ASN1_BADTAG ((HRESULT)0x8009310B)

/* ---- encodings ---- */
#define X509_ASN_ENCODING 0x00000001
#define PKCS_7_ASN_ENCODING 0x00010000

/* ---- decoded certificates: CERT_INFO (wincrypt.h layout) ---- */
typedef struct _CRYPTOAPI_BLOB {
    DWORD cbData;
    BYTE *pbData;
} CRYPT_INTEGER_BLOB, *PCRYPT_INTEGER_BLOB, CRYPT_UINT_BLOB, *PCRYPT_UINT_BLOB,
    CRYPT_OBJID_BLOB, *PCRYPT_OBJID_BLOB, CERT_NAME_BLOB, *PCERT_NAME_BLOB, CRYPT_DATA_BLOB,
    *PCRYPT_DATA_BLOB, CRYPT_HASH_BLOB, *PCRYPT_HASH_BLOB, DATA_BLOB, *PDATA_BLOB;

typedef struct _CRYPT_ALGORITHM_IDENTIFIER {
    LPSTR pszObjId;             /* dotted OID, e.g. "1.2.840.10045.4.3.2" */
    CRYPT_OBJID_BLOB Parameters; /* DER of the parameters (05 00 for NULL) */
} CRYPT_ALGORITHM_IDENTIFIER, *PCRYPT_ALGORITHM_IDENTIFIER;

typedef struct _CRYPT_BIT_BLOB {
    DWORD cbData;
    BYTE *pbData;
    DWORD cUnusedBits;
} CRYPT_BIT_BLOB, *PCRYPT_BIT_BLOB;

typedef struct _CERT_PUBLIC_KEY_INFO {
    CRYPT_ALGORITHM_IDENTIFIER Algorithm;
    CRYPT_BIT_BLOB PublicKey;
} CERT_PUBLIC_KEY_INFO, *PCERT_PUBLIC_KEY_INFO;

typedef struct _CERT_EXTENSION {
    LPSTR pszObjId;
    BOOL fCritical;
    CRYPT_OBJID_BLOB Value;     /* DER of the extension's value */
} CERT_EXTENSION, *PCERT_EXTENSION;
typedef const CERT_EXTENSION *PCCERT_EXTENSION;

typedef struct _CERT_INFO {
    DWORD dwVersion;            /* CERT_V1, CERT_V2, CERT_V3 */
    CRYPT_INTEGER_BLOB SerialNumber; /* little-endian, as Windows */
    CRYPT_ALGORITHM_IDENTIFIER SignatureAlgorithm;
    CERT_NAME_BLOB Issuer;      /* DER Name */
    FILETIME NotBefore;
    FILETIME NotAfter;
    CERT_NAME_BLOB Subject;
    CERT_PUBLIC_KEY_INFO SubjectPublicKeyInfo;
    CRYPT_BIT_BLOB IssuerUniqueId;
    CRYPT_BIT_BLOB SubjectUniqueId;
    DWORD cExtension;
    PCERT_EXTENSION rgExtension;
} CERT_INFO, *PCERT_INFO;

#define CERT_V1 0
#define CERT_V2 1
#define CERT_V3 2
#define CERT_INFO_ISSUER_FLAG 4
#define CERT_INFO_SUBJECT_FLAG 7

/* ---- certificate contexts ---- */
typedef struct _CERT_CONTEXT {
    DWORD dwCertEncodingType;
    BYTE *pbCertEncoded;
    DWORD cbCertEncoded;
    PCERT_INFO pCertInfo;       /* decoded from pbCertEncoded */
    HCERTSTORE hCertStore;      /* the store it belongs to, or NULL */
} CERT_CONTEXT, *PCERT_CONTEXT;
typedef const CERT_CONTEXT *PCCERT_CONTEXT;

/* ---- CRLs: what the update callback's CRL contexts carry ---- */
typedef struct _CRL_ENTRY {
    CRYPT_INTEGER_BLOB SerialNumber;
    FILETIME RevocationDate;
    DWORD cExtension;
    PCERT_EXTENSION rgExtension;
} CRL_ENTRY, *PCRL_ENTRY;

typedef struct _CRL_INFO {
    DWORD dwVersion;
    CRYPT_ALGORITHM_IDENTIFIER SignatureAlgorithm;
    CERT_NAME_BLOB Issuer;
    FILETIME ThisUpdate;
    FILETIME NextUpdate;
    DWORD cCRLEntry;
    PCRL_ENTRY rgCRLEntry;
    DWORD cExtension;
    PCERT_EXTENSION rgExtension;
} CRL_INFO, *PCRL_INFO;

#define CRL_V1 0
#define CRL_V2 1

typedef struct _CRL_CONTEXT {
    DWORD dwCertEncodingType;
    BYTE *pbCrlEncoded;
    DWORD cbCrlEncoded;
    PCRL_INFO pCrlInfo;
    HCERTSTORE hCertStore;
} CRL_CONTEXT, *PCRL_CONTEXT;
typedef const CRL_CONTEXT *PCCRL_CONTEXT;

/* ---- chain contexts ---- */
typedef struct _CERT_TRUST_STATUS {
    DWORD dwErrorStatus;
    DWORD dwInfoStatus;
} CERT_TRUST_STATUS, *PCERT_TRUST_STATUS;

#define CERT_TRUST_NO_ERROR 0x00000000
#define CERT_TRUST_IS_NOT_TIME_VALID 0x00000001
#define CERT_TRUST_IS_REVOKED 0x00000004
#define CERT_TRUST_IS_NOT_SIGNATURE_VALID 0x00000008
#define CERT_TRUST_IS_NOT_VALID_FOR_USAGE 0x00000010
#define CERT_TRUST_IS_UNTRUSTED_ROOT 0x00000020
#define CERT_TRUST_REVOCATION_STATUS_UNKNOWN 0x00000040
#define CERT_TRUST_IS_CYCLIC 0x00000080
#define CERT_TRUST_INVALID_EXTENSION 0x00000100
#define CERT_TRUST_INVALID_BASIC_CONSTRAINTS 0x00000400
#define CERT_TRUST_IS_PARTIAL_CHAIN 0x00010000
#define CERT_TRUST_HAS_EXACT_MATCH_ISSUER 0x00000001
#define CERT_TRUST_HAS_KEY_MATCH_ISSUER 0x00000002
#define CERT_TRUST_HAS_NAME_MATCH_ISSUER 0x00000004
#define CERT_TRUST_IS_SELF_SIGNED 0x00000008
#define CERT_TRUST_HAS_PREFERRED_ISSUER 0x00000100

typedef struct _CERT_REVOCATION_INFO CERT_REVOCATION_INFO, *PCERT_REVOCATION_INFO;
typedef struct _CTL_USAGE {
    DWORD cUsageIdentifier;
    LPSTR *rgpszUsageIdentifier;
} CTL_USAGE, *PCTL_USAGE, CERT_ENHKEY_USAGE, *PCERT_ENHKEY_USAGE;
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

typedef struct _CERT_USAGE_MATCH {
    DWORD dwType;               /* USAGE_MATCH_TYPE_AND or _OR */
    CERT_ENHKEY_USAGE Usage;
} CERT_USAGE_MATCH, *PCERT_USAGE_MATCH;
#define USAGE_MATCH_TYPE_AND 0x00000000
#define USAGE_MATCH_TYPE_OR 0x00000001
#define szOID_PKIX_KP_SERVER_AUTH "1.3.6.1.5.5.7.3.1"
#define szOID_PKIX_KP_CLIENT_AUTH "1.3.6.1.5.5.7.3.2"

typedef struct _CERT_STRONG_SIGN_PARA CERT_STRONG_SIGN_PARA;
typedef const CERT_STRONG_SIGN_PARA *PCCERT_STRONG_SIGN_PARA;

typedef struct _CERT_CHAIN_PARA {
    DWORD cbSize;
    CERT_USAGE_MATCH RequestedUsage;
#ifdef CERT_CHAIN_PARA_HAS_EXTRA_FIELDS
    CERT_USAGE_MATCH RequestedIssuancePolicy;
    DWORD dwUrlRetrievalTimeout;
    BOOL fCheckRevocationFreshnessTime;
    DWORD dwRevocationFreshnessTime;
    LPFILETIME pftCacheResync;
    PCCERT_STRONG_SIGN_PARA pStrongSignPara;
    DWORD dwStrongSignFlags;
#endif
} CERT_CHAIN_PARA, *PCERT_CHAIN_PARA;

#define HCCE_CURRENT_USER ((HCERTCHAINENGINE)NULL)
#define HCCE_LOCAL_MACHINE ((HCERTCHAINENGINE)0x1)
#define CERT_CHAIN_CACHE_END_CERT 0x00000001
#define CERT_CHAIN_REVOCATION_CHECK_END_CERT 0x10000000
#define CERT_CHAIN_REVOCATION_CHECK_CHAIN 0x20000000
#define CERT_CHAIN_REVOCATION_CHECK_CHAIN_EXCLUDE_ROOT 0x40000000
#define CERT_CHAIN_REVOCATION_CHECK_CACHE_ONLY 0x80000000

/* ---- certificate stores ---- */
#define CERT_STORE_PROV_MEMORY ((LPCSTR)2)
#define CERT_STORE_PROV_FILE ((LPCSTR)3)
#define CERT_STORE_PROV_FILENAME_A ((LPCSTR)7)
#define CERT_STORE_PROV_FILENAME_W ((LPCSTR)8)
#define CERT_STORE_PROV_FILENAME CERT_STORE_PROV_FILENAME_W
#define CERT_STORE_PROV_SYSTEM_A ((LPCSTR)9)
#define CERT_STORE_PROV_SYSTEM_W ((LPCSTR)10)
#define CERT_STORE_PROV_SYSTEM CERT_STORE_PROV_SYSTEM_W
#define sz_CERT_STORE_PROV_MEMORY "Memory"
#define sz_CERT_STORE_PROV_FILENAME_W "File"
#define sz_CERT_STORE_PROV_FILENAME sz_CERT_STORE_PROV_FILENAME_W
#define sz_CERT_STORE_PROV_SYSTEM_W "System"
#define sz_CERT_STORE_PROV_SYSTEM sz_CERT_STORE_PROV_SYSTEM_W

#define CERT_STORE_NO_CRYPT_RELEASE_FLAG 0x00000001
#define CERT_STORE_DEFER_CLOSE_UNTIL_LAST_FREE_FLAG 0x00000004
#define CERT_STORE_MAXIMUM_ALLOWED_FLAG 0x00001000
#define CERT_STORE_CREATE_NEW_FLAG 0x00002000
#define CERT_STORE_OPEN_EXISTING_FLAG 0x00004000
#define CERT_STORE_READONLY_FLAG 0x00008000
#define CERT_FILE_STORE_COMMIT_ENABLE_FLAG 0x00010000
#define CERT_SYSTEM_STORE_LOCATION_MASK 0x00FF0000
#define CERT_SYSTEM_STORE_LOCATION_SHIFT 16
#define CERT_SYSTEM_STORE_CURRENT_USER_ID 1
#define CERT_SYSTEM_STORE_LOCAL_MACHINE_ID 2
#define CERT_SYSTEM_STORE_CURRENT_USER                                                             \
    (CERT_SYSTEM_STORE_CURRENT_USER_ID << CERT_SYSTEM_STORE_LOCATION_SHIFT)
#define CERT_SYSTEM_STORE_LOCAL_MACHINE                                                            \
    (CERT_SYSTEM_STORE_LOCAL_MACHINE_ID << CERT_SYSTEM_STORE_LOCATION_SHIFT)
#define CERT_CLOSE_STORE_FORCE_FLAG 0x00000001
#define CERT_CLOSE_STORE_CHECK_FLAG 0x00000002

#define CERT_STORE_ADD_NEW 1
#define CERT_STORE_ADD_USE_EXISTING 2
#define CERT_STORE_ADD_REPLACE_EXISTING 3
#define CERT_STORE_ADD_ALWAYS 4
#define CERT_STORE_ADD_REPLACE_EXISTING_INHERIT_PROPERTIES 5
#define CERT_STORE_ADD_NEWER 6
#define CERT_STORE_ADD_NEWER_INHERIT_PROPERTIES 7

#define CERT_COMPARE_SHIFT 16
#define CERT_COMPARE_ANY 0
#define CERT_COMPARE_SHA1_HASH 1
#define CERT_COMPARE_NAME 2
#define CERT_COMPARE_HASH CERT_COMPARE_SHA1_HASH
#define CERT_COMPARE_NAME_STR_A 7
#define CERT_COMPARE_NAME_STR_W 8
#define CERT_FIND_ANY (CERT_COMPARE_ANY << CERT_COMPARE_SHIFT)
#define CERT_FIND_SHA1_HASH (CERT_COMPARE_SHA1_HASH << CERT_COMPARE_SHIFT)
#define CERT_FIND_HASH CERT_FIND_SHA1_HASH
#define CERT_FIND_SUBJECT_NAME (CERT_COMPARE_NAME << CERT_COMPARE_SHIFT | CERT_INFO_SUBJECT_FLAG)
#define CERT_FIND_ISSUER_NAME (CERT_COMPARE_NAME << CERT_COMPARE_SHIFT | CERT_INFO_ISSUER_FLAG)
#define CERT_FIND_SUBJECT_STR_A (CERT_COMPARE_NAME_STR_A << CERT_COMPARE_SHIFT | CERT_INFO_SUBJECT_FLAG)
#define CERT_FIND_SUBJECT_STR_W (CERT_COMPARE_NAME_STR_W << CERT_COMPARE_SHIFT | CERT_INFO_SUBJECT_FLAG)
#define CERT_FIND_SUBJECT_STR CERT_FIND_SUBJECT_STR_W
#define CERT_FIND_ISSUER_STR_A (CERT_COMPARE_NAME_STR_A << CERT_COMPARE_SHIFT | CERT_INFO_ISSUER_FLAG)
#define CERT_FIND_ISSUER_STR_W (CERT_COMPARE_NAME_STR_W << CERT_COMPARE_SHIFT | CERT_INFO_ISSUER_FLAG)
#define CERT_FIND_ISSUER_STR CERT_FIND_ISSUER_STR_W

/* ---- the registry values (crypt32's names and defaults) ----
 * Here they are environment variables of the same names (see
 * docs/wincrypt.md), read when the first handle is opened. */
#define CERT_SRV_OCSP_RESP_MIN_VALIDITY_SECONDS_VALUE_NAME L"SrvOcspRespMinValiditySeconds"
#define CERT_SRV_OCSP_RESP_MIN_VALIDITY_SECONDS_DEFAULT (10 * 60)
#define CERT_SRV_OCSP_RESP_URL_RETRIEVAL_TIMEOUT_MILLISECONDS_VALUE_NAME                           \
    L"SrvOcspRespUrlRetrievalTimeoutMilliseconds"
#define CERT_SRV_OCSP_RESP_URL_RETRIEVAL_TIMEOUT_MILLISECONDS_DEFAULT (15 * 1000)
#define CERT_SRV_OCSP_RESP_MAX_BEFORE_NEXT_UPDATE_SECONDS_VALUE_NAME                               \
    L"SrvOcspRespMaxBeforeNextUpdateSeconds"
#define CERT_SRV_OCSP_RESP_MAX_BEFORE_NEXT_UPDATE_SECONDS_DEFAULT (4 * 60 * 60)
#define CERT_SRV_OCSP_RESP_MIN_BEFORE_NEXT_UPDATE_SECONDS_VALUE_NAME                               \
    L"SrvOcspRespMinBeforeNextUpdateSeconds"
#define CERT_SRV_OCSP_RESP_MIN_BEFORE_NEXT_UPDATE_SECONDS_DEFAULT (2 * 60)
#define CERT_SRV_OCSP_RESP_MIN_AFTER_NEXT_UPDATE_SECONDS_VALUE_NAME                                \
    L"SrvOcspRespMinAfterNextUpdateSeconds"
#define CERT_SRV_OCSP_RESP_MIN_AFTER_NEXT_UPDATE_SECONDS_DEFAULT (1 * 60)
#define CERT_SRV_OCSP_RESP_MIN_SYNC_CERT_FILE_SECONDS_VALUE_NAME                                   \
    L"SrvOcspRespMinSyncCertFileSeconds"
#define CERT_SRV_OCSP_RESP_MIN_SYNC_CERT_FILE_SECONDS_DEFAULT 5
#define CERT_SRV_OCSP_RESP_MAX_SYNC_CERT_FILE_SECONDS_VALUE_NAME                                   \
    L"SrvOcspRespMaxSyncCertFileSeconds"
#define CERT_SRV_OCSP_RESP_MAX_SYNC_CERT_FILE_SECONDS_DEFAULT (1 * 60 * 60)
/* Not in the Windows SDK: srvocsp's trust horizon, a response is never
 * served longer than this after its thisUpdate whatever its nextUpdate
 * says (as mozilla::pkix; 0 = no horizon). */
#define CERT_SRV_OCSP_RESP_MAX_LIFETIME_SECONDS_VALUE_NAME L"SrvOcspRespMaxLifetimeSeconds"
#define CERT_SRV_OCSP_RESP_MAX_LIFETIME_SECONDS_DEFAULT (10 * 24 * 60 * 60)

/* ---- the server OCSP response API ---- */
typedef void *HCERT_SERVER_OCSP_RESPONSE;

typedef struct _CERT_SERVER_OCSP_RESPONSE_CONTEXT {
    DWORD cbSize;
    BYTE *pbEncodedOcspResponse;
    DWORD cbEncodedOcspResponse;
} CERT_SERVER_OCSP_RESPONSE_CONTEXT, *PCERT_SERVER_OCSP_RESPONSE_CONTEXT;
typedef const CERT_SERVER_OCSP_RESPONSE_CONTEXT *PCCERT_SERVER_OCSP_RESPONSE_CONTEXT;

typedef VOID(CALLBACK *PFN_CERT_SERVER_OCSP_RESPONSE_UPDATE_CALLBACK)(
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

/* The open para's dwFlags: READ, the responses are read from
 * pwszOcspDirectory (another process keeps them fresh; re-read on the
 * SrvOcspResp*SyncCertFileSeconds schedule, no network); WRITE, retrieved
 * responses are written there (never read); neither, the directory is not
 * used; both, ERROR_INVALID_PARAMETER. */
#define CERT_SERVER_OCSP_RESPONSE_OPEN_PARA_READ_FLAG 0x00000001
#define CERT_SERVER_OCSP_RESPONSE_OPEN_PARA_WRITE_FLAG 0x00000002

#define CERT_SERVER_OCSP_RESPONSE_ASYNC_FLAG 0x00000001

/* CertOpenServerOcspResponse opens a handle for the chain's end certificate
 * (its issuer must be the next element).  It takes a reference on
 * |pChainContext| (chains from this library; a chain assembled by hand is
 * copied).  With dwFlags 0 it tries the first retrieval before returning
 * (bounded by SrvOcspRespUrlRetrievalTimeoutMilliseconds) and returns a
 * handle even if that failed; with the ASYNC flag it returns at once.
 * Undefined bits of dwFlags and of the para's dwFlags are ignored, as
 * crypt32 ignores flag bits it does not define.  NULL with GetLastError()
 * ERROR_INVALID_PARAMETER (bad arguments, READ and WRITE together, READ
 * or WRITE without a directory), CRYPT_E_NOT_IN_REVOCATION_DATABASE (no
 * OCSP URL) or ERROR_NOT_ENOUGH_MEMORY.  Thread-safe. */
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
 * (none, or the responder said unknown) or ERROR_INVALID_PARAMETER
 * (dwFlags and pvReserved are documented as reserved: must be 0/NULL). */
SRVOCSP_WIN_EXPORT PCCERT_SERVER_OCSP_RESPONSE_CONTEXT WINAPI CertGetServerOcspResponseContext(
    HCERT_SERVER_OCSP_RESPONSE hServerOcspResponse, DWORD dwFlags, LPVOID pvReserved);
/* Reference counting of a response context; NULL is ignored.  A context
 * stays valid after its handle is closed, until freed. */
SRVOCSP_WIN_EXPORT VOID WINAPI
CertAddRefServerOcspResponseContext(PCCERT_SERVER_OCSP_RESPONSE_CONTEXT pServerOcspResponseContext);
SRVOCSP_WIN_EXPORT VOID WINAPI
CertFreeServerOcspResponseContext(PCCERT_SERVER_OCSP_RESPONSE_CONTEXT pServerOcspResponseContext);

/* ---- certificate contexts (reference counted, thread-safe) ---- */
/* A context for a DER certificate (X509_ASN_ENCODING), pCertInfo decoded,
 * hCertStore NULL.  NULL with ERROR_INVALID_PARAMETER, CRYPT_E_ASN1_BADTAG
 * or ERROR_NOT_ENOUGH_MEMORY.  Free with CertFreeCertificateContext. */
SRVOCSP_WIN_EXPORT PCCERT_CONTEXT WINAPI CertCreateCertificateContext(DWORD dwCertEncodingType,
                                                                   const BYTE *pbCertEncoded,
                                                                   DWORD cbCertEncoded);
/* Adds a reference to a context made by this library; returns it. */
SRVOCSP_WIN_EXPORT PCCERT_CONTEXT WINAPI CertDuplicateCertificateContext(PCCERT_CONTEXT pCertContext);
/* Drops a reference; always TRUE.  NULL is ignored. */
SRVOCSP_WIN_EXPORT BOOL WINAPI CertFreeCertificateContext(PCCERT_CONTEXT pCertContext);

/* ---- certificate stores (thread-safe) ----
 * Providers: CERT_STORE_PROV_MEMORY; CERT_STORE_PROV_FILENAME_A/_W (a file
 * of PEM certificates or one DER certificate; written back as PEM at close
 * with CERT_FILE_STORE_COMMIT_ENABLE_FLAG); CERT_STORE_PROV_SYSTEM_A/_W
 * (pvPara the store name, e.g. L"MY", L"CA", L"ROOT"; dwFlags
 * CERT_SYSTEM_STORE_CURRENT_USER or _LOCAL_MACHINE): a directory of PEM
 * files that the operator configures, see docs/wincrypt.md "System
 * stores".  NULL with ERROR_FILE_NOT_FOUND (OPEN_EXISTING and none),
 * ERROR_FILE_EXISTS (CREATE_NEW and one exists), CRYPT_E_ASN1_BADTAG (a
 * file that holds no certificate), ERROR_NOT_SUPPORTED (another provider),
 * ERROR_INVALID_PARAMETER or ERROR_NOT_ENOUGH_MEMORY.  Close with
 * CertCloseStore. */
SRVOCSP_WIN_EXPORT HCERTSTORE WINAPI CertOpenStore(LPCSTR lpszStoreProvider,
                                                   DWORD dwEncodingType,
                                                   HCRYPTPROV_LEGACY hCryptProv, DWORD dwFlags,
                                                   const void *pvPara);
/* CertOpenSystemStore: the CURRENT_USER system store of that name. */
SRVOCSP_WIN_EXPORT HCERTSTORE WINAPI CertOpenSystemStoreA(HCRYPTPROV_LEGACY hProv,
                                                          LPCSTR szSubsystemProtocol);
SRVOCSP_WIN_EXPORT HCERTSTORE WINAPI CertOpenSystemStoreW(HCRYPTPROV_LEGACY hProv,
                                                          LPCWSTR szSubsystemProtocol);
#ifdef UNICODE
#define CertOpenSystemStore CertOpenSystemStoreW
#else
#define CertOpenSystemStore CertOpenSystemStoreA
#endif
/* Adds a reference to an open store; returns it. */
SRVOCSP_WIN_EXPORT HCERTSTORE WINAPI CertDuplicateStore(HCERTSTORE hCertStore);
/* Drops a reference.  The store's memory lives until its last certificate
 * context is freed too.  CERT_CLOSE_STORE_CHECK_FLAG: FALSE with
 * CRYPT_E_PENDING_CLOSE when contexts are still held (the store is closed
 * all the same).  A file store opened with CERT_FILE_STORE_COMMIT_ENABLE_FLAG
 * is written back here: FALSE with the error if that fails.  TRUE for NULL. */
SRVOCSP_WIN_EXPORT BOOL WINAPI CertCloseStore(HCERTSTORE hCertStore, DWORD dwFlags);
/* Adds a copy of |pCertContext| (CERT_STORE_ADD_NEW, _USE_EXISTING,
 * _REPLACE_EXISTING(_INHERIT_PROPERTIES), _ALWAYS, _NEWER(_INHERIT_
 * PROPERTIES); "existing" is the same SHA-1 thumbprint).  A system store
 * also writes the certificate as <thumbprint>.pem into its directory.
 * |ppStoreContext| (may be NULL) receives the store's context.  FALSE
 * with CRYPT_E_EXISTS, ERROR_ACCESS_DENIED (read-only store),
 * ERROR_INVALID_PARAMETER or ERROR_NOT_ENOUGH_MEMORY. */
SRVOCSP_WIN_EXPORT BOOL WINAPI CertAddCertificateContextToStore(HCERTSTORE hCertStore,
                                                                PCCERT_CONTEXT pCertContext,
                                                                DWORD dwAddDisposition,
                                                                PCCERT_CONTEXT *ppStoreContext);
/* The store's next certificate after |pPrevCertContext| (NULL: the first),
 * which is freed, as on Windows.  NULL with CRYPT_E_NOT_FOUND at the end. */
SRVOCSP_WIN_EXPORT PCCERT_CONTEXT WINAPI CertEnumCertificatesInStore(
    HCERTSTORE hCertStore, PCCERT_CONTEXT pPrevCertContext);
/* The next certificate after |pPrevCertContext| (freed) that matches:
 * CERT_FIND_ANY; CERT_FIND_SHA1_HASH (pvFindPara a CRYPT_HASH_BLOB);
 * CERT_FIND_SUBJECT_STR_A/_W and CERT_FIND_ISSUER_STR_A/_W (a string
 * found, case-insensitively, in one of the name's attribute values);
 * CERT_FIND_SUBJECT_NAME / CERT_FIND_ISSUER_NAME (a CERT_NAME_BLOB, equal
 * DER).  NULL with CRYPT_E_NOT_FOUND, or E_INVALIDARG for another
 * dwFindType or a NULL pvFindPara. */
SRVOCSP_WIN_EXPORT PCCERT_CONTEXT WINAPI CertFindCertificateInStore(
    HCERTSTORE hCertStore, DWORD dwCertEncodingType, DWORD dwFindFlags, DWORD dwFindType,
    const void *pvFindPara, PCCERT_CONTEXT pPrevCertContext);

/* ---- chains ---- */
/* Builds the chain of |pCertContext| with OpenSSL from its own store,
 * |hAdditionalStore| and the chain engine's system stores (MY and CA as
 * intermediates, ROOT as the trust anchors; HCCE_CURRENT_USER or
 * HCCE_LOCAL_MACHINE), at |pTime| (NULL: now).  Trust problems are
 * reported in TrustStatus (CERT_TRUST_IS_UNTRUSTED_ROOT, _IS_PARTIAL_CHAIN,
 * _IS_NOT_TIME_VALID, _IS_NOT_SIGNATURE_VALID, _IS_NOT_VALID_FOR_USAGE for
 * RequestedUsage, ...) and the function still returns TRUE with the chain
 * as far as it could be built, as crypt32 does.  No revocation checking
 * (the REVOCATION flags add CERT_TRUST_REVOCATION_STATUS_UNKNOWN).  Any
 * length up to 100 certificates.  FALSE with ERROR_INVALID_PARAMETER or
 * ERROR_NOT_ENOUGH_MEMORY.  Free with CertFreeCertificateChain. */
SRVOCSP_WIN_EXPORT BOOL WINAPI CertGetCertificateChain(
    HCERTCHAINENGINE hChainEngine, PCCERT_CONTEXT pCertContext, LPFILETIME pTime,
    HCERTSTORE hAdditionalStore, PCERT_CHAIN_PARA pChainPara, DWORD dwFlags, LPVOID pvReserved,
    PCCERT_CHAIN_CONTEXT *ppChainContext);
/* Reference counting of chain contexts made by this library. */
SRVOCSP_WIN_EXPORT PCCERT_CHAIN_CONTEXT WINAPI
CertDuplicateCertificateChain(PCCERT_CHAIN_CONTEXT pChainContext);
SRVOCSP_WIN_EXPORT VOID WINAPI CertFreeCertificateChain(PCCERT_CHAIN_CONTEXT pChainContext);

/* ---- kernel32 basics ---- */
/* Per-thread last error. */
SRVOCSP_WIN_EXPORT DWORD WINAPI GetLastError(void);
SRVOCSP_WIN_EXPORT VOID WINAPI SetLastError(DWORD dwErrCode);
/* Sleeps |dwMilliseconds|. */
SRVOCSP_WIN_EXPORT VOID WINAPI Sleep(DWORD dwMilliseconds);
/* Atomic operations on a LONG (sequentially consistent). */
static inline LONG InterlockedIncrement(LONG volatile *Addend)
{
    return __atomic_add_fetch(Addend, 1, __ATOMIC_SEQ_CST);
}
static inline LONG InterlockedDecrement(LONG volatile *Addend)
{
    return __atomic_sub_fetch(Addend, 1, __ATOMIC_SEQ_CST);
}
static inline LONG InterlockedCompareExchange(LONG volatile *Destination, LONG Exchange,
                                              LONG Comparand)
{
    __atomic_compare_exchange_n(Destination, &Comparand, Exchange, 0, __ATOMIC_SEQ_CST,
                                __ATOMIC_SEQ_CST);
    return Comparand;
}

/* Not in Windows: a chain context from one PEM file holding the end
 * certificate first, then its issuer and any further CA certificates, in
 * that order (no path building; up to 100 certificates).  NULL with
 * GetLastError() set (ERROR_FILE_NOT_FOUND, CRYPT_E_ASN1_BADTAG,
 * ERROR_INVALID_PARAMETER, ERROR_NOT_ENOUGH_MEMORY).  Free with
 * CertFreeCertificateChain. */
SRVOCSP_WIN_EXPORT PCCERT_CHAIN_CONTEXT SrvOcspLoadChainFromPemFile(const char *path);

#ifdef __cplusplus
}
#endif
#endif
