/*
 * The crypt32 server OCSP response API, exercised the way Windows code uses
 * it: only the Windows names (plus SrvOcspLoadChainFromPemFile, since Linux
 * has no CertGetCertificateChain).  The test PKI and the real `openssl
 * ocsp` responder on 127.0.0.1 are set up by the test harness.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <openssl/ocsp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "srvocsp.h"
#include "srvocsp/wincrypt.h"

#include "peers.h"
#include "testpki.h"

static char *dir, *hang_dir;
static char config_messages[2048];
static tr_responder resp;
static tp_pki pki; /* kept: tests sign responses and make certificates */
static char stores_root[1200];
static void put_cert(const char *loc, const char *name, const char *file, X509 *x);
static int hang_fd = -1;

/* ---- harness ---- */

static int listen_and_never_answer(int *port)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        return -1;
    *port = ntohs(a.sin_port);
    return fd; /* the kernel completes handshakes; nobody ever reads */
}

static int setup(void **s)
{
    char url[64];
    int port = tr_free_port(), hang_port = 0;
    tp_pki hang;

    dir = tr_tmpdir("wincrypt");
    hang_dir = tr_tmpdir("wincrypt-hang");
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
    if (!tp_pki_make(&pki, url, url, (int64_t)time(NULL)) || !tp_pki_write(&pki, dir))
        return -1;
    if (!tr_responder_start(&resp, port, dir, "ca", 60))
        return -1;
    hang_fd = listen_and_never_answer(&hang_port);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", hang_port);
    if (hang_fd < 0 || !tp_pki_make(&hang, url, url, (int64_t)time(NULL)) ||
        !tp_pki_write(&hang, hang_dir))
        return -1;
    tp_pki_free(&hang);
    /* The system stores: MY holds the leaf, CA the issuing CA, ROOT the
     * root, under LocalMachine (docs/wincrypt.md "System stores"). */
    snprintf(stores_root, sizeof(stores_root), "%s/certstores", dir);
    mkdir(stores_root, 0755);
    setenv("SRVOCSP_CERT_STORE_DIR", stores_root, 1);
    put_cert("LocalMachine", "MY", "good.pem", pki.good.cert);
    put_cert("LocalMachine", "CA", "ca.pem", pki.ca.cert);
    put_cert("LocalMachine", "ROOT", "root.pem", pki.root.cert);
    return 0;
}

static int teardown(void **s)
{
    tr_responder_stop(&resp);
    close(hang_fd);
    tr_rmrf(dir);
    tr_rmrf(hang_dir);
    free(dir);
    free(hang_dir);
    tp_pki_free(&pki);
    /* The harness (not the Windows-style code above) stops the engine so
     * that memory checkers see a clean exit. */
    srvocsp_cleanup();
    return 0;
}

static PCCERT_CHAIN_CONTEXT chain_of(const char *d, const char *name)
{
    char path[1200];

    snprintf(path, sizeof(path), "%s/%s.pem", d, name);
    return SrvOcspLoadChainFromPemFile(path);
}

static long elapsed_ms(const struct timespec *a)
{
    struct timespec b;

    clock_gettime(CLOCK_MONOTONIC, &b);
    return (b.tv_sec - a->tv_sec) * 1000 + (b.tv_nsec - a->tv_nsec) / 1000000;
}

static int status_of(PCCERT_SERVER_OCSP_RESPONSE_CONTEXT ctx)
{
    const unsigned char *p = ctx->pbEncodedOcspResponse;
    OCSP_RESPONSE *r = d2i_OCSP_RESPONSE(NULL, &p, (long)ctx->cbEncodedOcspResponse);
    OCSP_BASICRESP *bs = r ? OCSP_response_get1_basic(r) : NULL;
    int st = -1;

    if (bs && OCSP_resp_count(bs) == 1)
        st = OCSP_single_get0_status(OCSP_resp_get0(bs, 0), NULL, NULL, NULL, NULL);
    OCSP_BASICRESP_free(bs);
    OCSP_RESPONSE_free(r);
    return st;
}

/* ---- semantics table ---- */

static void test_open_sync_then_get(void **s)
{
    PCCERT_CHAIN_CONTEXT chain = chain_of(dir, "good");
    HCERT_SERVER_OCSP_RESPONSE h;
    PCCERT_SERVER_OCSP_RESPONSE_CONTEXT ctx;

    assert_non_null(chain);
    h = CertOpenServerOcspResponse(chain, 0, NULL);
    assert_non_null(h);
    CertFreeCertificateChain(chain); /* the handle holds its own reference */
    ctx = CertGetServerOcspResponseContext(h, 0, NULL);
    assert_non_null(ctx);
    assert_int_equal(ctx->cbSize, sizeof(CERT_SERVER_OCSP_RESPONSE_CONTEXT));
    assert_true(ctx->cbEncodedOcspResponse > 100);
    assert_int_equal(status_of(ctx), V_OCSP_CERTSTATUS_GOOD);
    CertCloseServerOcspResponse(h, 0);
    /* A context stays valid after its handle is closed. */
    assert_int_equal(status_of(ctx), V_OCSP_CERTSTATUS_GOOD);
    CertFreeServerOcspResponseContext(ctx);
}

static void test_sync_open_bounded_async_immediate(void **s)
{
    PCCERT_CHAIN_CONTEXT chain = chain_of(hang_dir, "good");
    HCERT_SERVER_OCSP_RESPONSE h, a;
    struct timespec t0;
    long ms;

    /* flags 0: waits for the first retrieval, bounded by the timeout
     * (1500 ms from SrvOcspRespUrlRetrievalTimeoutMilliseconds), and
     * returns a handle even though it failed. */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    h = CertOpenServerOcspResponse(chain, 0, NULL);
    ms = elapsed_ms(&t0);
    assert_non_null(h);
    print_message("  sync open against a silent responder returned after %ld ms\n", ms);
    assert_true(ms >= 1300 && ms < 5000);
    assert_null(CertGetServerOcspResponseContext(h, 0, NULL));
    assert_int_equal(GetLastError(), (DWORD)CRYPT_E_REVOCATION_OFFLINE);

    CertFreeCertificateChain(chain);
    chain = chain_of(hang_dir, "revoked");
    clock_gettime(CLOCK_MONOTONIC, &t0);
    a = CertOpenServerOcspResponse(chain, CERT_SERVER_OCSP_RESPONSE_ASYNC_FLAG, NULL);
    ms = elapsed_ms(&t0);
    assert_non_null(a);
    assert_true(ms < 500);
    assert_null(CertGetServerOcspResponseContext(a, 0, NULL));
    assert_int_equal(GetLastError(), (DWORD)CRYPT_E_REVOCATION_OFFLINE);
    CertCloseServerOcspResponse(a, 0);
    CertCloseServerOcspResponse(h, 0);
    CertFreeCertificateChain(chain);
}

static void test_no_ocsp_url(void **s)
{
    PCCERT_CHAIN_CONTEXT chain = chain_of(dir, "noaia");

    SetLastError(0);
    assert_null(CertOpenServerOcspResponse(chain, 0, NULL));
    assert_int_equal(GetLastError(), (DWORD)CRYPT_E_NOT_IN_REVOCATION_DATABASE);
    CertFreeCertificateChain(chain);
}

static void test_bad_arguments(void **s)
{
    PCCERT_CHAIN_CONTEXT chain = chain_of(dir, "good");
    CERT_SERVER_OCSP_RESPONSE_OPEN_PARA para;
    HCERT_SERVER_OCSP_RESPONSE h;
    CERT_CHAIN_CONTEXT lone;
    CERT_SIMPLE_CHAIN simple;
    PCERT_SIMPLE_CHAIN psimple = &simple;
    int reserved = 0;

    assert_null(CertOpenServerOcspResponse(NULL, 0, NULL));
    assert_int_equal(GetLastError(), ERROR_INVALID_PARAMETER);
    /* Flag bits crypt32 does not define are ignored, as crypt32 does. */
    h = CertOpenServerOcspResponse(chain, 0x100 | CERT_SERVER_OCSP_RESPONSE_ASYNC_FLAG, NULL);
    assert_non_null(h);
    CertCloseServerOcspResponse(h, 0);
    /* No issuer: a chain of the leaf alone. */
    lone = *chain;
    simple = *chain->rgpChain[0];
    simple.cElement = 1;
    lone.rgpChain = &psimple;
    assert_null(CertOpenServerOcspResponse(&lone, 0, NULL));
    assert_int_equal(GetLastError(), ERROR_INVALID_PARAMETER);
    memset(&para, 0, sizeof(para));
    para.cbSize = sizeof(para);
    /* READ or WRITE needs a directory; READ and WRITE together is refused. */
    para.dwFlags = CERT_SERVER_OCSP_RESPONSE_OPEN_PARA_READ_FLAG;
    assert_null(CertOpenServerOcspResponse(chain, 0, &para));
    assert_int_equal(GetLastError(), ERROR_INVALID_PARAMETER);
    para.dwFlags = CERT_SERVER_OCSP_RESPONSE_OPEN_PARA_WRITE_FLAG;
    assert_null(CertOpenServerOcspResponse(chain, 0, &para));
    assert_int_equal(GetLastError(), ERROR_INVALID_PARAMETER);
    para.pwszOcspDirectory = (PWSTR)L"/tmp";
    para.dwFlags = CERT_SERVER_OCSP_RESPONSE_OPEN_PARA_READ_FLAG |
                   CERT_SERVER_OCSP_RESPONSE_OPEN_PARA_WRITE_FLAG;
    SetLastError(0);
    assert_null(CertOpenServerOcspResponse(chain, CERT_SERVER_OCSP_RESPONSE_ASYNC_FLAG, &para));
    assert_int_equal(GetLastError(), ERROR_INVALID_PARAMETER);

    h = CertOpenServerOcspResponse(chain, 0, NULL);
    assert_non_null(h);
    assert_null(CertGetServerOcspResponseContext(h, 1, NULL));
    assert_int_equal(GetLastError(), ERROR_INVALID_PARAMETER);
    assert_null(CertGetServerOcspResponseContext(h, 0, &reserved));
    assert_int_equal(GetLastError(), ERROR_INVALID_PARAMETER);
    assert_null(CertGetServerOcspResponseContext(NULL, 0, NULL));
    assert_int_equal(GetLastError(), ERROR_INVALID_PARAMETER);
    /* NULL handles and contexts are ignored. */
    CertAddRefServerOcspResponse(NULL);
    CertCloseServerOcspResponse(NULL, 0);
    CertAddRefServerOcspResponseContext(NULL);
    CertFreeServerOcspResponseContext(NULL);
    CertCloseServerOcspResponse(h, 0);
    CertFreeCertificateChain(chain);
    assert_null(SrvOcspLoadChainFromPemFile("/nonexistent/chain.pem"));
    assert_int_equal(GetLastError(), ERROR_FILE_NOT_FOUND);
    {
        /* Bounded: a file over the certificate files' 4 MiB cap is refused
         * unread. */
        char big[1200];
        size_t n = (5u << 20);
        char *junk = malloc(n);

        assert_non_null(junk);
        memset(junk, 'x', n);
        snprintf(big, sizeof(big), "%s/huge.pem", dir);
        assert_true(tp_write_file(big, junk, n));
        free(junk);
        assert_null(SrvOcspLoadChainFromPemFile(big));
        assert_int_equal(GetLastError(), ERROR_INVALID_PARAMETER);
        unlink(big);
    }
}

static void test_unknown_and_revoked(void **s)
{
    PCCERT_CHAIN_CONTEXT cu = chain_of(dir, "unknown"), cr = chain_of(dir, "revoked");
    HCERT_SERVER_OCSP_RESPONSE hu = CertOpenServerOcspResponse(cu, 0, NULL);
    HCERT_SERVER_OCSP_RESPONSE hr = CertOpenServerOcspResponse(cr, 0, NULL);
    PCCERT_SERVER_OCSP_RESPONSE_CONTEXT ctx;

    assert_non_null(hu);
    assert_null(CertGetServerOcspResponseContext(hu, 0, NULL));
    assert_int_equal(GetLastError(), (DWORD)CRYPT_E_REVOCATION_OFFLINE);
    ctx = CertGetServerOcspResponseContext(hr, 0, NULL);
    assert_non_null(ctx); /* revoked is served */
    assert_int_equal(status_of(ctx), V_OCSP_CERTSTATUS_REVOKED);
    CertFreeServerOcspResponseContext(ctx);
    CertCloseServerOcspResponse(hu, 0);
    CertCloseServerOcspResponse(hr, 0);
    CertFreeCertificateChain(cu);
    CertFreeCertificateChain(cr);
}

static void test_reference_counts(void **s)
{
    PCCERT_CHAIN_CONTEXT chain = chain_of(dir, "good");
    PCCERT_CHAIN_CONTEXT dup = CertDuplicateCertificateChain(chain);
    HCERT_SERVER_OCSP_RESPONSE h = CertOpenServerOcspResponse(dup, 0, NULL);
    PCCERT_SERVER_OCSP_RESPONSE_CONTEXT a, b;

    CertFreeCertificateChain(chain);
    CertFreeCertificateChain(dup);
    CertAddRefServerOcspResponse(h);
    CertCloseServerOcspResponse(h, 0);
    a = CertGetServerOcspResponseContext(h, 0, NULL); /* still open: one reference left */
    assert_non_null(a);
    b = CertGetServerOcspResponseContext(h, 0, NULL);
    assert_ptr_equal(a, b); /* one snapshot, two references */
    CertAddRefServerOcspResponseContext(a);
    CertFreeServerOcspResponseContext(a);
    CertFreeServerOcspResponseContext(b);
    CertCloseServerOcspResponse(h, 0);
    assert_int_equal(status_of(a), V_OCSP_CERTSTATUS_GOOD); /* last reference */
    CertFreeServerOcspResponseContext(a);
}

/* ---- the callback and the directory ---- */

static ULONGLONG ft64(FILETIME ft)
{
    return ((ULONGLONG)ft.dwHighDateTime << 32) | ft.dwLowDateTime;
}

static ULONGLONG unix_to_ft64(int64_t t)
{
    return (ULONGLONG)(t + 11644473600LL) * 10000000ULL;
}

/* thisUpdate / nextUpdate of a DER response, Unix seconds. */
static void times_of(const BYTE *der, DWORD len, int64_t *this_upd, int64_t *next_upd)
{
    const unsigned char *p = der;
    OCSP_RESPONSE *r = d2i_OCSP_RESPONSE(NULL, &p, (long)len);
    OCSP_BASICRESP *bs = r ? OCSP_response_get1_basic(r) : NULL;
    ASN1_GENERALIZEDTIME *tu = NULL, *nu = NULL;
    struct tm tm;

    *this_upd = *next_upd = 0;
    if (bs && OCSP_single_get0_status(OCSP_resp_get0(bs, 0), NULL, NULL, &tu, &nu) >= 0) {
        if (tu && ASN1_TIME_to_tm(tu, &tm))
            *this_upd = (int64_t)timegm(&tm);
        if (nu && ASN1_TIME_to_tm(nu, &tm))
            *next_upd = (int64_t)timegm(&tm);
    }
    OCSP_BASICRESP_free(bs);
    OCSP_RESPONSE_free(r);
}

typedef struct seen {
    pthread_mutex_t mu;
    int calls;
    DWORD write_error;
    PCCERT_CHAIN_CONTEXT chain;
    BOOL chain_ok;
    DWORD size;
    BOOL have_new, have_prev;
    BOOL times_match;            /* new CRL's ThisUpdate/NextUpdate = the response's */
    ULONGLONG prev_this;
    DWORD crl_entries;
    BYTE serial[8];
    DWORD serial_len;
    ULONGLONG revoked_at;
} seen;

static VOID CALLBACK on_update(PCCERT_CHAIN_CONTEXT pChainContext,
                               PCCERT_SERVER_OCSP_RESPONSE_CONTEXT pCtx, PCCRL_CONTEXT pNewCrl,
                               PCCRL_CONTEXT pPrevCrl, PVOID pvArg, DWORD dwWriteOcspFileError)
{
    seen *sn = pvArg;
    int64_t tu, nu;

    pthread_mutex_lock(&sn->mu);
    sn->calls++;
    sn->write_error = dwWriteOcspFileError;
    sn->chain = pChainContext;
    sn->chain_ok = pChainContext != NULL && pChainContext->cChain == 1 &&
                   pChainContext->rgpChain[0]->cElement >= 2 &&
                   pChainContext->rgpChain[0]->rgpElement[0]->pCertContext->cbCertEncoded > 0;
    sn->size = pCtx ? pCtx->cbEncodedOcspResponse : 0;
    sn->have_new = pNewCrl != NULL && pNewCrl->pCrlInfo != NULL;
    sn->have_prev = pPrevCrl != NULL && pPrevCrl->pCrlInfo != NULL;
    if (sn->have_prev)
        sn->prev_this = ft64(pPrevCrl->pCrlInfo->ThisUpdate);
    if (sn->have_new && pCtx != NULL) {
        const CRL_INFO *ci = pNewCrl->pCrlInfo;

        times_of(pCtx->pbEncodedOcspResponse, pCtx->cbEncodedOcspResponse, &tu, &nu);
        sn->times_match = ft64(ci->ThisUpdate) == unix_to_ft64(tu) &&
                          ft64(ci->NextUpdate) == unix_to_ft64(nu) && nu > tu &&
                          ci->Issuer.cbData > 0;
        sn->crl_entries = ci->cCRLEntry;
        if (ci->cCRLEntry == 1 && ci->rgCRLEntry[0].SerialNumber.cbData <= sizeof(sn->serial)) {
            sn->serial_len = ci->rgCRLEntry[0].SerialNumber.cbData;
            memcpy(sn->serial, ci->rgCRLEntry[0].SerialNumber.pbData, sn->serial_len);
            sn->revoked_at = ft64(ci->rgCRLEntry[0].RevocationDate);
        }
    }
    pthread_mutex_unlock(&sn->mu);
}

static int wait_calls(seen *sn, int n)
{
    int i, c = 0;

    for (i = 0; i < 1000; i++) {
        pthread_mutex_lock(&sn->mu);
        c = sn->calls;
        pthread_mutex_unlock(&sn->mu);
        if (c >= n)
            break;
        usleep(10 * 1000); /* the callback runs on the engine's thread */
    }
    return c;
}

static void seen_init(seen *sn)
{
    memset(sn, 0, sizeof(*sn));
    pthread_mutex_init(&sn->mu, NULL);
}

/* Opens |leaf| with the directory and flags, waits for the first callback
 * when the callback is within cbSize, closes.  Returns the chain passed. */
static PCCERT_CHAIN_CONTEXT open_with_dir(const char *leaf, const WCHAR *wdir, DWORD para_flags,
                                          DWORD cb_size, seen *sn, DWORD *used)
{
    PCCERT_CHAIN_CONTEXT chain = chain_of(dir, leaf);
    CERT_SERVER_OCSP_RESPONSE_OPEN_PARA para;
    HCERT_SERVER_OCSP_RESPONSE h;

    memset(&para, 0, sizeof(para));
    para.cbSize = cb_size;
    para.dwFlags = para_flags;
    para.pcbUsedSize = used;
    para.pwszOcspDirectory = (PWSTR)wdir;
    para.pfnUpdateCallback = on_update;
    para.pvUpdateCallbackArg = sn;
    h = CertOpenServerOcspResponse(chain, 0, &para);
    assert_non_null(h);
    CertFreeCertificateChain(chain); /* the handle keeps its reference */
    if (cb_size >= offsetof(CERT_SERVER_OCSP_RESPONSE_OPEN_PARA, pvUpdateCallbackArg) + sizeof(PVOID))
        assert_int_equal(wait_calls(sn, 1), 1);
    CertCloseServerOcspResponse(h, 0);
    return chain;
}

static WCHAR *widen(const char *s)
{
    size_t n = strlen(s), i;
    WCHAR *w = calloc(n + 1, sizeof(WCHAR));

    for (i = 0; i < n; i++)
        w[i] = (WCHAR)(unsigned char)s[i];
    return w;
}

/* The one .der file in |d| (path into |out|); how many there are. */
static size_t der_files(const char *d, char *out, size_t len)
{
    DIR *dd = opendir(d);
    struct dirent *de;
    size_t n = 0;

    while (dd && (de = readdir(dd)) != NULL) {
        size_t l = strlen(de->d_name);

        if (de->d_name[0] != '.' && l > 4 && strcmp(de->d_name + l - 4, ".der") == 0) {
            if (out)
                snprintf(out, len, "%s/%s", d, de->d_name);
            n++;
        }
    }
    if (dd)
        closedir(dd);
    return n;
}

static void test_callback_and_write_flag(void **s)
{
    char store[1300], bad[1300], unused[1300];
    WCHAR *wstore, *wbad, *wunused;
    PCCERT_CHAIN_CONTEXT passed;
    seen sn;
    DWORD used = 0;
    struct stat st;

    seen_init(&sn);
    snprintf(store, sizeof(store), "%s/ocsp-cache", dir);
    wstore = widen(store);
    passed = open_with_dir("good", wstore, CERT_SERVER_OCSP_RESPONSE_OPEN_PARA_WRITE_FLAG,
                           sizeof(CERT_SERVER_OCSP_RESPONSE_OPEN_PARA), &sn, &used);
    assert_int_equal(used, sizeof(CERT_SERVER_OCSP_RESPONSE_OPEN_PARA));
    assert_int_equal(sn.write_error, 0);
    /* The caller's own chain pointer (the handle held a reference). */
    assert_ptr_equal(sn.chain, passed);
    assert_true(sn.chain_ok);
    assert_true(sn.size > 100);
    /* CRL contexts carry the response's times; no previous one yet. */
    assert_true(sn.have_new);
    assert_false(sn.have_prev);
    assert_true(sn.times_match);
    assert_int_equal(sn.crl_entries, 0);
    assert_int_equal(der_files(store, NULL, 0), 1);

    /* Revoked: one CRL entry, the serial little-endian (0x1002). */
    seen_init(&sn);
    open_with_dir("revoked", wstore, CERT_SERVER_OCSP_RESPONSE_OPEN_PARA_WRITE_FLAG,
                  sizeof(CERT_SERVER_OCSP_RESPONSE_OPEN_PARA), &sn, &used);
    assert_int_equal(sn.crl_entries, 1);
    assert_int_equal(sn.serial_len, 2);
    assert_int_equal(sn.serial[0], 0x02);
    assert_int_equal(sn.serial[1], 0x10);
    assert_true(sn.revoked_at > unix_to_ft64(1000000000));

    /* The directory cannot be written: the callback carries the error. */
    seen_init(&sn);
    snprintf(bad, sizeof(bad), "%s/good.pem/cache", dir); /* under a regular file */
    wbad = widen(bad);
    open_with_dir("unknown", wbad, CERT_SERVER_OCSP_RESPONSE_OPEN_PARA_WRITE_FLAG,
                  sizeof(CERT_SERVER_OCSP_RESPONSE_OPEN_PARA), &sn, &used);
    assert_int_equal(sn.write_error, ERROR_PATH_NOT_FOUND);

    /* Neither READ nor WRITE: the directory is not used at all. */
    seen_init(&sn);
    snprintf(unused, sizeof(unused), "%s/not-used", dir);
    wunused = widen(unused);
    open_with_dir("good", wunused, 0, sizeof(CERT_SERVER_OCSP_RESPONSE_OPEN_PARA), &sn, &used);
    assert_int_equal(sn.write_error, 0);
    assert_int_equal(stat(unused, &st), -1);

    /* cbSize covering only cbSize, dwFlags and pcbUsedSize: the directory and
     * the callback are not read (and WRITE would lack its directory). */
    seen_init(&sn);
    used = 0;
    open_with_dir("unknown", wbad, 0,
                  offsetof(CERT_SERVER_OCSP_RESPONSE_OPEN_PARA, pwszOcspDirectory), &sn, &used);
    assert_int_equal(used, offsetof(CERT_SERVER_OCSP_RESPONSE_OPEN_PARA, pwszOcspDirectory));
    assert_int_equal(sn.calls, 0);
    free(wstore);
    free(wbad);
    free(wunused);
}

static void test_read_flag(void **s)
{
    char store[1300], file[1400];
    WCHAR *wstore;
    PCCERT_CHAIN_CONTEXT chain = chain_of(dir, "good");
    CERT_SERVER_OCSP_RESPONSE_OPEN_PARA para;
    HCERT_SERVER_OCSP_RESPONSE h;
    PCCERT_SERVER_OCSP_RESPONSE_CONTEXT ctx;
    seen sn, w;
    int requests, i;
    int64_t tu0, nu0, tu, nu;
    unsigned char *der;
    size_t len;
    tp_resp_opts o;

    /* A WRITE handle fills the directory, as another process would. */
    seen_init(&w);
    snprintf(store, sizeof(store), "%s/read-flag", dir);
    wstore = widen(store);
    open_with_dir("good", wstore, CERT_SERVER_OCSP_RESPONSE_OPEN_PARA_WRITE_FLAG,
                  sizeof(CERT_SERVER_OCSP_RESPONSE_OPEN_PARA), &w, NULL);
    assert_int_equal(der_files(store, file, sizeof(file)), 1);
    requests = tr_responder_requests(&resp);

    /* READ: served from the file at once, without asking the responder. */
    seen_init(&sn);
    memset(&para, 0, sizeof(para));
    para.cbSize = sizeof(para);
    para.dwFlags = CERT_SERVER_OCSP_RESPONSE_OPEN_PARA_READ_FLAG;
    para.pwszOcspDirectory = wstore;
    para.pfnUpdateCallback = on_update;
    para.pvUpdateCallbackArg = &sn;
    h = CertOpenServerOcspResponse(chain, CERT_SERVER_OCSP_RESPONSE_ASYNC_FLAG, &para);
    assert_non_null(h);
    ctx = CertGetServerOcspResponseContext(h, 0, NULL);
    assert_non_null(ctx);
    times_of(ctx->pbEncodedOcspResponse, ctx->cbEncodedOcspResponse, &tu0, &nu0);
    CertFreeServerOcspResponseContext(ctx);

    /* The other process stores a newer response: seen at the next sync
     * (SrvOcspRespMaxSyncCertFileSeconds is 2 here), with the callback. */
    tp_resp_opts_init(&o, &pki.good, &pki.ca, tu0 + 2);
    o.next_update = tu0 + 3600;
    der = tp_response(&o, &len); /* 2 s ahead: within the tolerated clock skew */
    {
        /* Stored as writers store (a new file renamed into place): a
         * rewrite in place within one clock tick of the last save could
         * keep size, inode and mtime, and look unchanged. */
        char tmp[sizeof(file) + 8];

        snprintf(tmp, sizeof(tmp), "%s.new", file);
        assert_true(tp_write_file(tmp, der, len));
        assert_int_equal(rename(tmp, file), 0);
    }
    free(der);
    assert_int_equal(wait_calls(&sn, 1), 1);
    assert_int_equal(sn.write_error, 0);
    assert_true(sn.times_match);
    assert_ptr_equal(sn.chain, chain);
    /* The previous CRL context is the response loaded from the file at open. */
    assert_true(sn.have_prev);
    assert_true(sn.prev_this == unix_to_ft64(tu0));
    for (i = 0; i < 100; i++) {
        ctx = CertGetServerOcspResponseContext(h, 0, NULL);
        assert_non_null(ctx);
        times_of(ctx->pbEncodedOcspResponse, ctx->cbEncodedOcspResponse, &tu, &nu);
        CertFreeServerOcspResponseContext(ctx);
        if (tu == tu0 + 2)
            break;
        usleep(20 * 1000);
    }
    assert_int_equal(tu, tu0 + 2);
    assert_int_equal(nu, tu0 + 3600);
    assert_int_equal(tr_responder_requests(&resp), requests);
    CertCloseServerOcspResponse(h, 0);
    CertFreeCertificateChain(chain);
    free(wstore);
}

/* ---- CERT_INFO ---- */

static PCCERT_CONTEXT context_of(X509 *x)
{
    unsigned char *der = NULL;
    int len = i2d_X509(x, &der);
    PCCERT_CONTEXT c = CertCreateCertificateContext(X509_ASN_ENCODING, der, (DWORD)len);

    OPENSSL_free(der);
    return c;
}

static void test_cert_info(void **s)
{
    PCCERT_CONTEXT c = context_of(pki.good.cert);
    const CERT_INFO *ci;
    unsigned char *name = NULL;
    int name_len, i;
    struct tm tm;
    BOOL aia = FALSE;
    tp_cert high;
    tp_cert_opts o;

    assert_non_null(c);
    ci = c->pCertInfo;
    assert_non_null(ci);
    assert_null(c->hCertStore);
    assert_int_equal(ci->dwVersion, CERT_V3);
    /* 0x1001: DER 10 01, Windows 01 10. */
    assert_int_equal(ci->SerialNumber.cbData, 2);
    assert_int_equal(ci->SerialNumber.pbData[0], 0x01);
    assert_int_equal(ci->SerialNumber.pbData[1], 0x10);
    name_len = i2d_X509_NAME(X509_get_subject_name(pki.good.cert), &name);
    assert_int_equal(ci->Subject.cbData, name_len);
    assert_memory_equal(ci->Subject.pbData, name, name_len);
    OPENSSL_free(name);
    name = NULL;
    name_len = i2d_X509_NAME(X509_get_subject_name(pki.ca.cert), &name);
    assert_int_equal(ci->Issuer.cbData, name_len);
    assert_memory_equal(ci->Issuer.pbData, name, name_len);
    OPENSSL_free(name);
    assert_true(ASN1_TIME_to_tm(X509_get0_notBefore(pki.good.cert), &tm));
    assert_true(ft64(ci->NotBefore) == unix_to_ft64((int64_t)timegm(&tm)));
    assert_true(ASN1_TIME_to_tm(X509_get0_notAfter(pki.good.cert), &tm));
    assert_true(ft64(ci->NotAfter) == unix_to_ft64((int64_t)timegm(&tm)));
    assert_string_equal(ci->SignatureAlgorithm.pszObjId, "1.2.840.10045.4.3.2"); /* ecdsa-with-SHA256 */
    assert_string_equal(ci->SubjectPublicKeyInfo.Algorithm.pszObjId, "1.2.840.10045.2.1");
    /* namedCurve parameter: an OID (06 ..) */
    assert_true(ci->SubjectPublicKeyInfo.Algorithm.Parameters.cbData > 2);
    assert_int_equal(ci->SubjectPublicKeyInfo.Algorithm.Parameters.pbData[0], 0x06);
    assert_int_equal(ci->SubjectPublicKeyInfo.PublicKey.cbData, 65); /* uncompressed P-256 */
    assert_int_equal(ci->cExtension, X509_get_ext_count(pki.good.cert));
    for (i = 0; i < (int)ci->cExtension; i++)
        aia |= strcmp(ci->rgExtension[i].pszObjId, "1.3.6.1.5.5.7.1.1") == 0 &&
               ci->rgExtension[i].Value.cbData > 10 && !ci->rgExtension[i].fCritical;
    assert_true(aia);
    CertFreeCertificateContext(c);

    /* A serial whose top bit is set keeps DER's sign byte, reversed: 0x80 ->
     * DER 00 80 -> 80 00. */
    memset(&o, 0, sizeof(o));
    o.cn = "high serial";
    o.issuer = &pki.ca;
    o.serial = 0x80;
    o.not_before = (int64_t)time(NULL) - 60;
    o.not_after = (int64_t)time(NULL) + 3600;
    assert_true(tp_cert_make(&high, &o));
    c = context_of(high.cert);
    assert_int_equal(c->pCertInfo->SerialNumber.cbData, 2);
    assert_int_equal(c->pCertInfo->SerialNumber.pbData[0], 0x80);
    assert_int_equal(c->pCertInfo->SerialNumber.pbData[1], 0x00);
    CertFreeCertificateContext(c);
    tp_cert_free(&high);
}

/* ---- stores ---- */

static int count_in(HCERTSTORE st)
{
    PCCERT_CONTEXT c = NULL;
    int n = 0;

    while ((c = CertEnumCertificatesInStore(st, c)) != NULL)
        n++;
    assert_int_equal(GetLastError(), (DWORD)CRYPT_E_NOT_FOUND);
    return n;
}

static void test_memory_store(void **s)
{
    HCERTSTORE st = CertOpenStore(CERT_STORE_PROV_MEMORY, 0, 0, 0, NULL);
    PCCERT_CONTEXT good = context_of(pki.good.cert), ca = context_of(pki.ca.cert), in = NULL, f;
    CRYPT_HASH_BLOB hash;

    assert_non_null(st);
    assert_true(CertAddCertificateContextToStore(st, good, CERT_STORE_ADD_NEW, &in));
    assert_non_null(in);
    assert_ptr_equal(in->hCertStore, st);
    assert_false(CertAddCertificateContextToStore(st, good, CERT_STORE_ADD_NEW, NULL));
    assert_int_equal(GetLastError(), (DWORD)CRYPT_E_EXISTS);
    assert_true(FAILED(HRESULT_FROM_WIN32(GetLastError())));
    assert_true(CertAddCertificateContextToStore(st, good, CERT_STORE_ADD_USE_EXISTING, &f));
    assert_ptr_equal(f, in);
    CertFreeCertificateContext(f);
    assert_true(CertAddCertificateContextToStore(st, ca, CERT_STORE_ADD_REPLACE_EXISTING, NULL));
    assert_int_equal(count_in(st), 2);

    /* Subject strings: case-insensitive, within an attribute value. */
    f = CertFindCertificateInStore(st, X509_ASN_ENCODING, 0, CERT_FIND_SUBJECT_STR_A, "GOOD.te",
                                   NULL);
    assert_ptr_equal(f, in);
    f = CertFindCertificateInStore(st, X509_ASN_ENCODING, 0, CERT_FIND_SUBJECT_STR_A, "good", f);
    assert_null(f); /* the previous one was freed; no second match */
    assert_int_equal(GetLastError(), (DWORD)CRYPT_E_NOT_FOUND);
    f = CertFindCertificateInStore(st, X509_ASN_ENCODING, 0, CERT_FIND_SUBJECT_STR_W,
                                   L"issuing ca", NULL);
    assert_non_null(f);
    assert_int_equal(f->pCertInfo->SerialNumber.pbData[0], 2);
    CertFreeCertificateContext(f);
    f = CertFindCertificateInStore(st, X509_ASN_ENCODING, 0, CERT_FIND_ISSUER_STR_W,
                                   L"test issuing", NULL);
    assert_ptr_equal(f, in);
    CertFreeCertificateContext(f);
    {
        BYTE sha1[20];
        unsigned int n = 0;

        X509_digest(pki.ca.cert, EVP_sha1(), sha1, &n);
        hash.cbData = n;
        hash.pbData = sha1;
        f = CertFindCertificateInStore(st, X509_ASN_ENCODING, 0, CERT_FIND_SHA1_HASH, &hash, NULL);
        assert_non_null(f);
        assert_int_equal(f->cbCertEncoded, ca->cbCertEncoded);
        CertFreeCertificateContext(f);
    }
    f = CertFindCertificateInStore(st, X509_ASN_ENCODING, 0, CERT_FIND_ANY, NULL, NULL);
    assert_non_null(f);
    CertFreeCertificateContext(f);
    assert_null(CertFindCertificateInStore(st, X509_ASN_ENCODING, 0, 0x12345, NULL, NULL));
    assert_int_equal(GetLastError(), (DWORD)E_INVALIDARG);

    /* A context outlives the store's close; CHECK says so. */
    SetLastError(0);
    assert_false(CertCloseStore(st, CERT_CLOSE_STORE_CHECK_FLAG));
    assert_int_equal(GetLastError(), (DWORD)CRYPT_E_PENDING_CLOSE);
    assert_true(in->pCertInfo->cExtension > 0);
    CertFreeCertificateContext(in);
    CertFreeCertificateContext(good);
    CertFreeCertificateContext(ca);
}

static void test_file_store(void **s)
{
    char path[1300], out[1300];
    HCERTSTORE st;
    PCCERT_CONTEXT ca = context_of(pki.ca.cert);
    unsigned char *der = NULL;
    int len;

    /* good.pem: the leaf and its CA. */
    snprintf(path, sizeof(path), "%s/good.pem", dir);
    st = CertOpenStore(CERT_STORE_PROV_FILENAME_A, X509_ASN_ENCODING, 0,
                       CERT_STORE_OPEN_EXISTING_FLAG | CERT_STORE_READONLY_FLAG, path);
    assert_non_null(st);
    assert_int_equal(count_in(st), 2);
    assert_false(CertAddCertificateContextToStore(st, ca, CERT_STORE_ADD_ALWAYS, NULL));
    assert_int_equal(GetLastError(), ERROR_ACCESS_DENIED);
    assert_true(CertCloseStore(st, 0));

    /* One DER certificate. */
    snprintf(path, sizeof(path), "%s/ca.der", dir);
    len = i2d_X509(pki.ca.cert, &der);
    assert_true(tp_write_file(path, der, (size_t)len));
    OPENSSL_free(der);
    st = CertOpenStore(CERT_STORE_PROV_FILENAME_A, 0, 0, CERT_STORE_OPEN_EXISTING_FLAG, path);
    assert_non_null(st);
    assert_int_equal(count_in(st), 1);
    CertCloseStore(st, 0);

    snprintf(path, sizeof(path), "%s/none.pem", dir);
    assert_null(CertOpenStore(CERT_STORE_PROV_FILENAME_A, 0, 0, CERT_STORE_OPEN_EXISTING_FLAG, path));
    assert_int_equal(GetLastError(), ERROR_FILE_NOT_FOUND);
    snprintf(path, sizeof(path), "%s/index.txt", dir); /* a file, no certificate */
    assert_null(CertOpenStore(CERT_STORE_PROV_FILENAME_A, 0, 0, 0, path));
    assert_int_equal(GetLastError(), (DWORD)CRYPT_E_ASN1_BADTAG);

    /* A new file store, written back at close. */
    snprintf(out, sizeof(out), "%s/written.pem", dir);
    st = CertOpenStore(CERT_STORE_PROV_FILENAME_A, 0, 0, CERT_FILE_STORE_COMMIT_ENABLE_FLAG, out);
    assert_non_null(st);
    assert_true(CertAddCertificateContextToStore(st, ca, CERT_STORE_ADD_NEW, NULL));
    assert_true(CertCloseStore(st, 0));
    st = CertOpenStore(CERT_STORE_PROV_FILENAME_A, 0, 0, CERT_STORE_OPEN_EXISTING_FLAG, out);
    assert_non_null(st);
    assert_int_equal(count_in(st), 1);
    CertCloseStore(st, 0);
    assert_null(CertOpenStore(CERT_STORE_PROV_FILE, 0, 0, 0, NULL));
    assert_int_equal(GetLastError(), ERROR_NOT_SUPPORTED);
    CertFreeCertificateContext(ca);
}

static void put_cert(const char *loc, const char *name, const char *file, X509 *x)
{
    char path[1400];

    snprintf(path, sizeof(path), "%s/%s", stores_root, loc);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/%s/%s", stores_root, loc, name);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/%s/%s/%s", stores_root, loc, name, file);
    assert_true(tp_write_cert(path, x, NULL));
}

static void test_system_stores(void **s)
{
    HCERTSTORE st;
    PCCERT_CONTEXT ca = context_of(pki.ca.cert), f;
    char path[1400];
    unsigned char sha1[20];
    unsigned int n;
    int i;

    /* Store names are case-insensitive: "root" is the ROOT directory. */
    st = CertOpenStore(CERT_STORE_PROV_SYSTEM_W, 0, 0,
                       CERT_SYSTEM_STORE_LOCAL_MACHINE | CERT_STORE_OPEN_EXISTING_FLAG, L"root");
    assert_non_null(st);
    assert_int_equal(count_in(st), 1);
    f = CertFindCertificateInStore(st, 0, 0, CERT_FIND_SUBJECT_STR_A, "srvocsp test root", NULL);
    assert_non_null(f);
    CertFreeCertificateContext(f);
    CertCloseStore(st, 0);

    assert_null(CertOpenStore(CERT_STORE_PROV_SYSTEM_A, 0, 0,
                              CERT_SYSTEM_STORE_CURRENT_USER | CERT_STORE_OPEN_EXISTING_FLAG,
                              "Trust"));
    assert_int_equal(GetLastError(), ERROR_FILE_NOT_FOUND);
    assert_null(CertOpenStore(CERT_STORE_PROV_SYSTEM_A, 0, 0, 0x00050000, "MY"));
    assert_int_equal(GetLastError(), ERROR_INVALID_PARAMETER);

    /* Adding to a system store writes <thumbprint>.pem into its directory. */
    st = CertOpenSystemStoreA(0, "Trust");
    assert_non_null(st);
    assert_true(CertAddCertificateContextToStore(st, ca, CERT_STORE_ADD_NEW, NULL));
    CertCloseStore(st, 0);
    X509_digest(pki.ca.cert, EVP_sha1(), sha1, &n);
    snprintf(path, sizeof(path), "%s/CurrentUser/TRUST/", stores_root);
    for (i = 0; i < 20; i++)
        snprintf(path + strlen(path), 3, "%02x", sha1[i]);
    strcat(path, ".pem");
    assert_int_equal(access(path, R_OK), 0);
    st = CertOpenSystemStoreW(0, L"TRUST");
    assert_int_equal(count_in(st), 1);
    CertCloseStore(st, 0);
    CertFreeCertificateContext(ca);
}

/* ---- chains ---- */

static PCCERT_CONTEXT leaf_from_my(HCERTSTORE *my, const char *cn)
{
    *my = CertOpenStore(CERT_STORE_PROV_SYSTEM_A, 0, 0,
                        CERT_SYSTEM_STORE_LOCAL_MACHINE | CERT_STORE_READONLY_FLAG, "MY");
    assert_non_null(*my);
    return CertFindCertificateInStore(*my, X509_ASN_ENCODING | PKCS_7_ASN_ENCODING, 0,
                                      CERT_FIND_SUBJECT_STR_A, cn, NULL);
}

static void test_chain_from_stores(void **s)
{
    HCERTSTORE my, extra;
    PCCERT_CONTEXT leaf = leaf_from_my(&my, "good.test");
    PCCERT_CHAIN_CONTEXT chain = NULL;
    CERT_CHAIN_PARA para;
    LPSTR server[1] = {(LPSTR)szOID_PKIX_KP_SERVER_AUTH};
    LPSTR client[1] = {(LPSTR)szOID_PKIX_KP_CLIENT_AUTH};
    FILETIME later;
    HCERT_SERVER_OCSP_RESPONSE h;
    PCCERT_SERVER_OCSP_RESPONSE_CONTEXT ctx;
    const CERT_SIMPLE_CHAIN *sc;
    tp_cert self;
    tp_cert_opts o;

    assert_non_null(leaf);
    memset(&para, 0, sizeof(para));
    para.cbSize = sizeof(para);
    para.RequestedUsage.dwType = USAGE_MATCH_TYPE_AND;
    para.RequestedUsage.Usage.cUsageIdentifier = 1;
    para.RequestedUsage.Usage.rgpszUsageIdentifier = server;
    assert_true(CertGetCertificateChain(HCCE_LOCAL_MACHINE, leaf, NULL, NULL, &para, 0, NULL,
                                        &chain));
    assert_int_equal(chain->TrustStatus.dwErrorStatus, CERT_TRUST_NO_ERROR);
    sc = chain->rgpChain[0];
    assert_int_equal(sc->cElement, 3); /* leaf, CA (from CA), root (from ROOT) */
    assert_ptr_equal(sc->rgpElement[0]->pCertContext, leaf); /* the caller's context */
    assert_int_equal(sc->rgpElement[1]->pCertContext->pCertInfo->SerialNumber.pbData[0], 2);
    assert_true(sc->rgpElement[2]->TrustStatus.dwInfoStatus & CERT_TRUST_IS_SELF_SIGNED);
    assert_true(sc->rgpElement[0]->TrustStatus.dwInfoStatus & CERT_TRUST_HAS_KEY_MATCH_ISSUER);

    /* The chain is what CertOpenServerOcspResponse takes. */
    h = CertOpenServerOcspResponse(chain, 0, NULL);
    assert_non_null(h);
    ctx = CertGetServerOcspResponseContext(h, 0, NULL);
    assert_non_null(ctx);
    assert_int_equal(status_of(ctx), V_OCSP_CERTSTATUS_GOOD);
    CertFreeServerOcspResponseContext(ctx);
    CertCloseServerOcspResponse(h, 0);
    CertFreeCertificateChain(chain);

    /* Trust problems are in TrustStatus; the call still succeeds. */
    para.RequestedUsage.Usage.rgpszUsageIdentifier = client;
    later = (FILETIME){0, 0};
    later.dwHighDateTime = 0x7FFFFFFF; /* far in the future */
    assert_true(CertGetCertificateChain(HCCE_LOCAL_MACHINE, leaf, &later, NULL, &para, 0, NULL,
                                        &chain));
    assert_true(chain->TrustStatus.dwErrorStatus & CERT_TRUST_IS_NOT_VALID_FOR_USAGE);
    assert_true(chain->TrustStatus.dwErrorStatus & CERT_TRUST_IS_NOT_TIME_VALID);
    CertFreeCertificateChain(chain);

    /* A self-signed certificate from an additional store: untrusted root. */
    memset(&o, 0, sizeof(o));
    o.cn = "self.test";
    o.serial = 77;
    o.not_before = (int64_t)time(NULL) - 60;
    o.not_after = (int64_t)time(NULL) + 3600;
    assert_true(tp_cert_make(&self, &o));
    extra = CertOpenStore(CERT_STORE_PROV_MEMORY, 0, 0, 0, NULL);
    CertFreeCertificateContext(leaf);
    leaf = context_of(self.cert);
    para.RequestedUsage.Usage.cUsageIdentifier = 0;
    assert_true(CertGetCertificateChain(HCCE_CURRENT_USER, leaf, NULL, extra, &para,
                                        CERT_CHAIN_REVOCATION_CHECK_CHAIN, NULL, &chain));
    assert_int_equal(chain->rgpChain[0]->cElement, 1);
    assert_true(chain->TrustStatus.dwErrorStatus & CERT_TRUST_IS_UNTRUSTED_ROOT);
    CertFreeCertificateChain(chain);
    /* Issued by a CA that is in no store: a partial chain. */
    CertFreeCertificateContext(leaf);
    leaf = context_of(pki.delegate_other.cert);
    assert_true(CertGetCertificateChain(HCCE_LOCAL_MACHINE, leaf, NULL, NULL, &para, 0, NULL,
                                        &chain));
    assert_int_equal(chain->rgpChain[0]->cElement, 1);
    assert_true(chain->TrustStatus.dwErrorStatus & CERT_TRUST_IS_PARTIAL_CHAIN);
    CertFreeCertificateChain(chain);
    assert_false(CertGetCertificateChain(HCCE_CURRENT_USER, leaf, NULL, NULL, NULL, 0, NULL,
                                         &chain));
    assert_int_equal(GetLastError(), ERROR_INVALID_PARAMETER);
    CertCloseStore(extra, 0);
    CertCloseStore(my, 0);
    CertFreeCertificateContext(leaf);
    tp_cert_free(&self);
}

static void *other_thread(void *arg)
{
    SetLastError(42);
    *(DWORD *)arg = GetLastError();
    return NULL;
}

static void test_last_error_per_thread(void **s)
{
    pthread_t t;
    DWORD theirs = 0;

    SetLastError(7);
    pthread_create(&t, NULL, other_thread, &theirs);
    pthread_join(t, NULL);
    assert_int_equal(theirs, 42);
    assert_int_equal(GetLastError(), 7);
}

static void test_malformed_config_reported(void **s)
{
    print_message("  %s", config_messages);
    assert_non_null(strstr(config_messages, "SrvOcspRespMinAfterNextUpdateSeconds=\"soon\""));
    assert_non_null(strstr(config_messages, "keeping 60"));
    /* The well-formed value was taken: see the 1500 ms bound above. */
    assert_null(strstr(config_messages, "SrvOcspRespUrlRetrievalTimeoutMilliseconds"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_sync_then_get),
        cmocka_unit_test(test_sync_open_bounded_async_immediate),
        cmocka_unit_test(test_no_ocsp_url),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_unknown_and_revoked),
        cmocka_unit_test(test_reference_counts),
        cmocka_unit_test(test_callback_and_write_flag),
        cmocka_unit_test(test_read_flag),
        cmocka_unit_test(test_cert_info),
        cmocka_unit_test(test_memory_store),
        cmocka_unit_test(test_file_store),
        cmocka_unit_test(test_system_stores),
        cmocka_unit_test(test_chain_from_stores),
        cmocka_unit_test(test_last_error_per_thread),
        cmocka_unit_test(test_malformed_config_reported),
    };
    char path[1200];
    int saved;
    FILE *f;

    if (system("openssl version >/dev/null 2>&1") != 0) {
        printf("SKIP: openssl command not found\n");
        return 77;
    }
    /* The registry values come from the environment at the first open. */
    setenv("SrvOcspRespUrlRetrievalTimeoutMilliseconds", "1500", 1);
    setenv("SrvOcspRespMinAfterNextUpdateSeconds", "soon", 1);
    /* A directory opened with the READ flag is looked at every 1..2 s. */
    setenv("SrvOcspRespMinSyncCertFileSeconds", "1", 1);
    setenv("SrvOcspRespMaxSyncCertFileSeconds", "2", 1);
    /* The first call reads them; keep what it says on stderr. */
    snprintf(path, sizeof(path), "%s/srvocsp-wincrypt-stderr-%d.txt",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
    fflush(stderr);
    saved = dup(2);
    f = fopen(path, "w+");
    if (f == NULL || saved < 0)
        return 1;
    dup2(fileno(f), 2);
    (void)CertOpenServerOcspResponse(NULL, 0, NULL);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(f);
    config_messages[fread(config_messages, 1, sizeof(config_messages) - 1, f)] = '\0';
    fclose(f);
    unlink(path);
    return cmocka_run_group_tests(tests, setup, teardown);
}
