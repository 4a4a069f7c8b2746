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

#include "srvocsp/wincrypt.h"

#include "peers.h"
#include "testpki.h"

static char *dir, *hang_dir;
static char config_messages[2048];
static tr_responder resp;
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
    tp_pki pki;

    dir = tr_tmpdir("wincrypt");
    hang_dir = tr_tmpdir("wincrypt-hang");
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
    if (!tp_pki_make(&pki, url, url, (int64_t)time(NULL)) || !tp_pki_write(&pki, dir))
        return -1;
    tp_pki_free(&pki);
    if (!tr_responder_start(&resp, port, dir, "ca", 60))
        return -1;
    hang_fd = listen_and_never_answer(&hang_port);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", hang_port);
    if (hang_fd < 0 || !tp_pki_make(&pki, url, url, (int64_t)time(NULL)) ||
        !tp_pki_write(&pki, hang_dir))
        return -1;
    tp_pki_free(&pki);
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
    assert_int_equal(GetLastError(), CRYPT_E_REVOCATION_OFFLINE);

    CertFreeCertificateChain(chain);
    chain = chain_of(hang_dir, "revoked");
    clock_gettime(CLOCK_MONOTONIC, &t0);
    a = CertOpenServerOcspResponse(chain, CERT_SERVER_OCSP_RESPONSE_ASYNC_FLAG, NULL);
    ms = elapsed_ms(&t0);
    assert_non_null(a);
    assert_true(ms < 500);
    assert_null(CertGetServerOcspResponseContext(a, 0, NULL));
    assert_int_equal(GetLastError(), CRYPT_E_REVOCATION_OFFLINE);
    CertCloseServerOcspResponse(a, 0);
    CertCloseServerOcspResponse(h, 0);
    CertFreeCertificateChain(chain);
}

static void test_no_ocsp_url(void **s)
{
    PCCERT_CHAIN_CONTEXT chain = chain_of(dir, "noaia");

    SetLastError(0);
    assert_null(CertOpenServerOcspResponse(chain, 0, NULL));
    assert_int_equal(GetLastError(), CRYPT_E_NOT_IN_REVOCATION_DATABASE);
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
    assert_null(CertOpenServerOcspResponse(chain, 0x100, NULL));
    assert_int_equal(GetLastError(), ERROR_INVALID_PARAMETER);
    /* No issuer: a chain of the leaf alone. */
    lone = *chain;
    simple = *chain->rgpChain[0];
    simple.cElement = 1;
    lone.rgpChain = &psimple;
    assert_null(CertOpenServerOcspResponse(&lone, 0, NULL));
    assert_int_equal(GetLastError(), ERROR_INVALID_PARAMETER);
    memset(&para, 0, sizeof(para));
    para.cbSize = sizeof(para);
    para.dwFlags = 1; /* reserved */
    assert_null(CertOpenServerOcspResponse(chain, 0, &para));
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
}

static void test_unknown_and_revoked(void **s)
{
    PCCERT_CHAIN_CONTEXT cu = chain_of(dir, "unknown"), cr = chain_of(dir, "revoked");
    HCERT_SERVER_OCSP_RESPONSE hu = CertOpenServerOcspResponse(cu, 0, NULL);
    HCERT_SERVER_OCSP_RESPONSE hr = CertOpenServerOcspResponse(cr, 0, NULL);
    PCCERT_SERVER_OCSP_RESPONSE_CONTEXT ctx;

    assert_non_null(hu);
    assert_null(CertGetServerOcspResponseContext(hu, 0, NULL));
    assert_int_equal(GetLastError(), CRYPT_E_REVOCATION_OFFLINE);
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

typedef struct seen {
    pthread_mutex_t mu;
    int calls;
    DWORD write_error;
    BOOL crls_null;
    BOOL chain_ok;
    DWORD size;
} seen;

static VOID WINAPI on_update(PCCERT_CHAIN_CONTEXT pChainContext,
                             PCCERT_SERVER_OCSP_RESPONSE_CONTEXT pCtx, PCCRL_CONTEXT pNewCrl,
                             PCCRL_CONTEXT pPrevCrl, PVOID pvArg, DWORD dwWriteOcspFileError)
{
    seen *sn = pvArg;

    pthread_mutex_lock(&sn->mu);
    sn->calls++;
    sn->write_error = dwWriteOcspFileError;
    sn->crls_null = pNewCrl == NULL && pPrevCrl == NULL;
    sn->chain_ok = pChainContext != NULL && pChainContext->cChain == 1 &&
                   pChainContext->rgpChain[0]->cElement == 2 &&
                   pChainContext->rgpChain[0]->rgpElement[0]->pCertContext->cbCertEncoded > 0;
    sn->size = pCtx ? pCtx->cbEncodedOcspResponse : 0;
    pthread_mutex_unlock(&sn->mu);
}

static int wait_calls(seen *sn, int n)
{
    int i, c = 0;

    for (i = 0; i < 500; i++) {
        pthread_mutex_lock(&sn->mu);
        c = sn->calls;
        pthread_mutex_unlock(&sn->mu);
        if (c >= n)
            break;
        usleep(10 * 1000); /* the callback runs on the engine's thread */
    }
    return c;
}

static void open_with_dir(const char *leaf, const WCHAR *wdir, DWORD cb_size, seen *sn,
                          DWORD *used)
{
    PCCERT_CHAIN_CONTEXT chain = chain_of(dir, leaf);
    CERT_SERVER_OCSP_RESPONSE_OPEN_PARA para;
    HCERT_SERVER_OCSP_RESPONSE h;

    memset(&para, 0, sizeof(para));
    para.cbSize = cb_size;
    para.pcbUsedSize = used;
    para.pwszOcspDirectory = (PWSTR)wdir;
    para.pfnUpdateCallback = on_update;
    para.pvUpdateCallbackArg = sn;
    h = CertOpenServerOcspResponse(chain, 0, &para);
    assert_non_null(h);
    CertFreeCertificateChain(chain);
    if (cb_size >= offsetof(CERT_SERVER_OCSP_RESPONSE_OPEN_PARA, pvUpdateCallbackArg) + sizeof(PVOID))
        assert_int_equal(wait_calls(sn, 1), 1);
    CertCloseServerOcspResponse(h, 0);
}

static WCHAR *widen(const char *s)
{
    size_t n = strlen(s), i;
    WCHAR *w = calloc(n + 1, sizeof(WCHAR));

    for (i = 0; i < n; i++)
        w[i] = (WCHAR)(unsigned char)s[i];
    return w;
}

static size_t count_der_files(const char *d)
{
    char cmd[1300], line[64];
    FILE *p;
    size_t n = 0;

    snprintf(cmd, sizeof(cmd), "ls '%s' 2>/dev/null | grep -c '\\.der$'", d);
    p = popen(cmd, "r");
    if (p && fgets(line, sizeof(line), p))
        n = (size_t)atoi(line);
    if (p)
        pclose(p);
    return n;
}

static void test_callback_and_directory(void **s)
{
    char store[1300], bad[1300];
    WCHAR *wstore, *wbad;
    seen sn;
    DWORD used = 0;

    memset(&sn, 0, sizeof(sn));
    pthread_mutex_init(&sn.mu, NULL);
    snprintf(store, sizeof(store), "%s/ocsp-cache", dir);
    wstore = widen(store);
    open_with_dir("good", wstore, sizeof(CERT_SERVER_OCSP_RESPONSE_OPEN_PARA), &sn, &used);
    assert_int_equal(used, sizeof(CERT_SERVER_OCSP_RESPONSE_OPEN_PARA));
    assert_int_equal(sn.write_error, 0);
    assert_true(sn.crls_null);
    assert_true(sn.chain_ok);
    assert_true(sn.size > 100);
    assert_int_equal(count_der_files(store), 1);

    /* The directory cannot be written: the callback carries the error. */
    memset(&sn, 0, sizeof(sn));
    snprintf(bad, sizeof(bad), "%s/good.pem/cache", dir); /* under a regular file */
    wbad = widen(bad);
    open_with_dir("revoked", wbad, sizeof(CERT_SERVER_OCSP_RESPONSE_OPEN_PARA), &sn, &used);
    assert_int_equal(sn.write_error, ERROR_PATH_NOT_FOUND);

    /* cbSize covering only cbSize, dwFlags and pcbUsedSize: the directory and
     * the callback are not read. */
    memset(&sn, 0, sizeof(sn));
    used = 0;
    open_with_dir("unknown", wbad,
                  offsetof(CERT_SERVER_OCSP_RESPONSE_OPEN_PARA, pwszOcspDirectory), &sn, &used);
    assert_int_equal(used, offsetof(CERT_SERVER_OCSP_RESPONSE_OPEN_PARA, pwszOcspDirectory));
    assert_int_equal(sn.calls, 0);
    free(wstore);
    free(wbad);
    pthread_mutex_destroy(&sn.mu);
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
        cmocka_unit_test(test_callback_and_directory),
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
