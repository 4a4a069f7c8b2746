/* Against a real `openssl ocsp` responder on 127.0.0.1, through libcurl. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "peers.h"
#include "srvocsp.h"
#include "testpki.h"

static char *dir;
static tr_responder resp, resp_delegate;
static tp_pki pki;
static char cert_path[5][1100];

static int setup(void **s)
{
    char url[64], dead[64];
    int port = tr_free_port(), port2 = tr_free_port(), dead_port = tr_free_port();

    if (port < 0 || dead_port < 0)
        return -1;
    dir = tr_tmpdir("responder");
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
    /* Nothing listens on the dead port: connection refused. */
    snprintf(dead, sizeof(dead), "http://127.0.0.1:%d/", dead_port);
    if (!tp_pki_make(&pki, url, dead, (int64_t)time(NULL)) || !tp_pki_write(&pki, dir))
        return -1;
    if (!tr_responder_start(&resp, port, dir, "ca", 60)) {
        fprintf(stderr, "cannot start openssl ocsp (log %s)\n", resp.log);
        return -1;
    }
    if (!tr_listens_on_loopback_only(port)) {
        fprintf(stderr, "the responder listens beyond 127.0.0.1\n");
        return -1;
    }
    /* A second responder that signs through the delegated signer. */
    if (!tr_responder_start(&resp_delegate, port2, dir, "delegate", 60))
        return -1;
    snprintf(cert_path[0], sizeof(cert_path[0]), "%s/good.pem", dir);
    snprintf(cert_path[1], sizeof(cert_path[1]), "%s/revoked.pem", dir);
    snprintf(cert_path[2], sizeof(cert_path[2]), "%s/unknown.pem", dir);
    snprintf(cert_path[3], sizeof(cert_path[3]), "%s/twourls.pem", dir);
    snprintf(cert_path[4], sizeof(cert_path[4]), "%s/noaia.pem", dir);
    return 0;
}

static int teardown(void **s)
{
    tr_responder_stop(&resp);
    tr_responder_stop(&resp_delegate);
    tp_pki_free(&pki);
    srvocsp_cleanup();
    tr_rmrf(dir);
    free(dir);
    return 0;
}

static srvocsp_handle *open_file(const char *path, unsigned flags, const char *url)
{
    srvocsp_params p;

    srvocsp_params_init(&p);
    p.flags = flags;
    p.url_timeout_ms = 5000;
    p.responder_url = url;
    return srvocsp_open_pem(path, NULL, &p);
}

static void test_good_revoked_unknown(void **s)
{
    srvocsp_handle *g = open_file(cert_path[0], 0, NULL);
    srvocsp_handle *r = open_file(cert_path[1], 0, NULL);
    srvocsp_handle *u = open_file(cert_path[2], 0, NULL);
    srvocsp_response *rg, *rr;
    int64_t now = (int64_t)time(NULL);

    assert_non_null(g);
    assert_non_null(r);
    assert_non_null(u);
    rg = srvocsp_get1_response(g);
    assert_non_null(rg);
    assert_int_equal(srvocsp_response_status(rg), SRVOCSP_STATUS_GOOD);
    assert_true(srvocsp_response_next_update(rg) >= now + 3500); /* -nmin 60 */
    rr = srvocsp_get1_response(r);
    assert_non_null(rr);
    assert_int_equal(srvocsp_response_status(rr), SRVOCSP_STATUS_REVOKED);
    assert_int_equal(srvocsp_response_revocation_reason(rr), 1); /* keyCompromise */
    assert_null(srvocsp_get1_response(u));
    assert_int_equal(srvocsp_last_error(), SRVOCSP_E_STATUS_UNKNOWN);
    srvocsp_response_free(rg);
    srvocsp_response_free(rr);
    srvocsp_close(g);
    srvocsp_close(r);
    srvocsp_close(u);
}

static void test_delegated_signer(void **s)
{
    char url[64];
    srvocsp_handle *h;
    srvocsp_response *r;

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", resp_delegate.port);
    h = open_file(cert_path[1], 0, url);
    r = srvocsp_get1_response(h);
    assert_non_null(r);
    assert_int_equal(srvocsp_response_status(r), SRVOCSP_STATUS_REVOKED);
    srvocsp_response_free(r);
    srvocsp_close(h);
}

static void test_sync_vs_async_and_sharing(void **s)
{
    int before = tr_responder_requests(&resp);
    srvocsp_handle *a = open_file(cert_path[0], SRVOCSP_OPEN_ASYNC, NULL);
    srvocsp_handle *b = open_file(cert_path[0], 0, NULL); /* joins a's retrieval */
    srvocsp_response *ra, *rb;

    assert_non_null(a);
    assert_non_null(b);
    rb = srvocsp_get1_response(b);
    ra = srvocsp_get1_response(a);
    assert_non_null(rb);
    assert_ptr_equal(ra, rb);
    assert_int_equal(tr_responder_requests(&resp) - before, 1);
    srvocsp_response_free(ra);
    srvocsp_response_free(rb);
    srvocsp_close(a);
    srvocsp_close(b);
}

static void test_async_returns_before_retrieval(void **s)
{
    srvocsp_handle *h = open_file(cert_path[1], SRVOCSP_OPEN_ASYNC, NULL);
    srvocsp_response *r = NULL;
    int i;

    assert_non_null(h);
    for (i = 0; i < 100 && (r = srvocsp_get1_response(h)) == NULL; i++)
        usleep(50 * 1000); /* waits for the background retrieval; polls only here */
    assert_non_null(r);
    srvocsp_response_free(r);
    srvocsp_close(h);
}

static void test_dead_first_url(void **s)
{
    int before = tr_responder_requests(&resp);
    srvocsp_handle *h = open_file(cert_path[3], 0, NULL);
    srvocsp_response *r = srvocsp_get1_response(h);

    assert_non_null(r);
    assert_int_equal(srvocsp_response_status(r), SRVOCSP_STATUS_GOOD);
    assert_int_equal(tr_responder_requests(&resp) - before, 1);
    srvocsp_response_free(r);
    srvocsp_close(h);
}

static void test_no_aia(void **s)
{
    assert_null(open_file(cert_path[4], 0, NULL));
    assert_int_equal(srvocsp_last_error(), SRVOCSP_E_NO_OCSP_URL);
}

static void test_responder_down_sync_open_bounded(void **s)
{
    char url[64];
    srvocsp_params p;
    srvocsp_handle *h;
    struct timespec a, b;
    long ms;
    char why[512];

    /* A port where nothing listens: fails fast, handle returned anyway. */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", tr_free_port());
    srvocsp_params_init(&p);
    p.responder_url = url;
    p.url_timeout_ms = 3000;
    clock_gettime(CLOCK_MONOTONIC, &a);
    h = srvocsp_open_pem(cert_path[0], NULL, &p);
    clock_gettime(CLOCK_MONOTONIC, &b);
    ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
    assert_non_null(h);
    assert_true(ms < 3000);
    assert_null(srvocsp_get1_response(h));
    assert_int_equal(srvocsp_handle_last_failure(h, why, sizeof(why)), SRVOCSP_E_TRANSPORT);
    assert_non_null(strstr(why, url));
    srvocsp_close(h);
}

/* A responder that accepts and never answers must not delay the others. */
static void test_hung_responder_does_not_delay_others(void **s)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    char url[64];
    srvocsp_params p;
    srvocsp_handle *hung, *h;
    struct timespec t0, t1;
    long ms;

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 16), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", ntohs(a.sin_port));
    srvocsp_params_init(&p);
    p.responder_url = url;
    p.flags = SRVOCSP_OPEN_ASYNC;
    p.url_timeout_ms = 10000;
    hung = srvocsp_open_pem(cert_path[1], NULL, &p); /* hangs for 10 s */
    assert_non_null(hung);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    h = open_file(cert_path[2], 0, NULL); /* another certificate, same engine */
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    print_message("  open while another responder hangs: %ld ms\n", ms);
    assert_true(ms < 2000);
    assert_null(srvocsp_get1_response(h)); /* unknown.pem: answered, not served */
    assert_int_equal(srvocsp_last_error(), SRVOCSP_E_STATUS_UNKNOWN);
    srvocsp_close(h);
    srvocsp_close(hung);
    close(fd);
}

static int threads_now(void)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *de;
    int n = 0;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL)
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

/* One background thread per engine does everything, the HTTP transfers
 * included, and it ends once the last handle has closed and the retrievals
 * still in flight have ended (at most their timeout: they are not
 * cancelled).  Beside it, once answers came in bulk and until the engine
 * is freed, its verification threads (src/engine/pool.c): one per core, at
 * most 4. */
static void test_one_engine_thread(void **s)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), before, during, k;
    long pool;
    char url[64];
    srvocsp_engine *eng;
    srvocsp_params p;
    srvocsp_handle *hung, *good, *revoked;

    srvocsp_cleanup(); /* the default engine's thread must not come or go meanwhile */
    before = threads_now();
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 16), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", ntohs(a.sin_port));
    eng = srvocsp_engine_new(NULL); /* the built-in libcurl transport */
    assert_non_null(eng);
    srvocsp_params_init(&p);
    p.engine = eng;
    p.url_timeout_ms = 5000;
    good = srvocsp_open_pem(cert_path[0], NULL, &p);     /* fetched before open returns */
    revoked = srvocsp_open_pem(cert_path[1], NULL, &p);
    p.responder_url = url;
    p.flags = SRVOCSP_OPEN_ASYNC;
    p.url_timeout_ms = 1500;
    hung = srvocsp_open_pem(cert_path[2], NULL, &p);     /* a transfer stays in flight */
    assert_non_null(good);
    assert_non_null(revoked);
    assert_non_null(hung);
    usleep(200 * 1000);
    during = threads_now();
    print_message("  threads: %d before, %d with 3 handles and a transfer in flight\n", before,
                  during);
    pool = sysconf(_SC_NPROCESSORS_ONLN);
    pool = pool < 1 ? 1 : pool > 4 ? 4 : pool;
    /* The verification threads start only for bulk work (several answers
     * at once), which this may or may not have been. */
    if (during != before + 1)
        assert_int_equal(during, before + 1 + pool);
    else
        pool = 0;
    {
        srvocsp_response *r = srvocsp_get1_response(good);

        assert_non_null(r);
        srvocsp_response_free(r);
    }
    srvocsp_close(good);
    srvocsp_close(revoked);
    srvocsp_close(hung);
    for (k = 0; k < 600 && threads_now() != before + pool; k++)
        usleep(10 * 1000);
    print_message("  the engine thread ended %d ms after the last close\n", k * 10);
    assert_int_equal(threads_now(), before + pool);
    srvocsp_engine_free(eng);
    assert_int_equal(threads_now(), before); /* the verification threads are joined */
    close(fd);
}

/* http_proxy / no_proxy from the environment are honoured (libcurl reads
 * them per transfer). */
static void test_proxy_environment(void **s)
{
    char proxy[64], why[512], port[16];
    int pport = tr_free_port();
    srvocsp_handle *h;
    srvocsp_response *r;

    snprintf(proxy, sizeof(proxy), "http://127.0.0.1:%d", pport); /* nobody there */
    snprintf(port, sizeof(port), "port %d", pport);
    setenv("http_proxy", proxy, 1);
    unsetenv("no_proxy");
    h = open_file(cert_path[0], 0, NULL);
    assert_non_null(h);
    assert_null(srvocsp_get1_response(h)); /* went to the dead proxy */
    srvocsp_handle_last_failure(h, why, sizeof(why));
    print_message("  through a dead proxy: %s\n", why);
    assert_non_null(strstr(why, port)); /* curl went to the proxy's port */
    srvocsp_close(h);

    setenv("no_proxy", "127.0.0.1", 1);
    h = open_file(cert_path[0], 0, NULL);
    r = srvocsp_get1_response(h);
    assert_non_null(r); /* no_proxy: straight to the responder */
    srvocsp_response_free(r);
    srvocsp_close(h);
    unsetenv("http_proxy");
    unsetenv("no_proxy");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_revoked_unknown),
        cmocka_unit_test(test_delegated_signer),
        cmocka_unit_test(test_sync_vs_async_and_sharing),
        cmocka_unit_test(test_async_returns_before_retrieval),
        cmocka_unit_test(test_dead_first_url),
        cmocka_unit_test(test_no_aia),
        cmocka_unit_test(test_responder_down_sync_open_bounded),
        cmocka_unit_test(test_hung_responder_does_not_delay_others),
        cmocka_unit_test(test_one_engine_thread),
        cmocka_unit_test(test_proxy_environment),
    };
    if (system("openssl version >/dev/null 2>&1") != 0) {
        fprintf(stderr, "SKIP: openssl command not found\n");
        return 77;
    }
    return cmocka_run_group_tests(tests, setup, teardown);
}
