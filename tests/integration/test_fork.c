/* fork(): the child keeps serving what it has and its engine runs again,
 * observed through a real responder's request log; and a fork never
 * catches the engine thread inside another library. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "peers.h"
#include "srvocsp.h"
#include "testpki.h"

static char *dir;
static tr_responder resp;

static int setup(void **s)
{
    char url[64];
    int port = tr_free_port();
    tp_pki pki;

    dir = tr_tmpdir("fork");
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
    if (!tp_pki_make(&pki, url, url, (int64_t)time(NULL)) || !tp_pki_write(&pki, dir))
        return -1;
    tp_pki_free(&pki);
    return tr_responder_start(&resp, port, dir, "ca", 60) ? 0 : -1;
}

static int teardown(void **s)
{
    tr_responder_stop(&resp);
    srvocsp_cleanup();
    tr_rmrf(dir);
    free(dir);
    return 0;
}

static srvocsp_handle *open_leaf(const char *name)
{
    char path[1200];

    snprintf(path, sizeof(path), "%s/%s.pem", dir, name);
    return srvocsp_open_pem(path, NULL, NULL);
}

static void test_child_serves_and_refreshes(void **s)
{
    srvocsp_handle *h = open_leaf("good");
    srvocsp_response *r = srvocsp_get1_response(h);
    int before = tr_responder_requests(&resp), status;
    pid_t pid;

    assert_non_null(r);
    srvocsp_response_free(r);
    pid = fork();
    if (pid == 0) {
        /* Exit codes tell the parent what failed. */
        srvocsp_response *cr = srvocsp_get1_response(h), *cr2;
        srvocsp_handle *h2;

        if (cr == NULL)
            _exit(10); /* the snapshot from before the fork is served */
        srvocsp_response_free(cr);
        h2 = open_leaf("revoked"); /* needs the engine running in the child */
        cr2 = srvocsp_get1_response(h2);
        if (cr2 == NULL || srvocsp_response_status(cr2) != SRVOCSP_STATUS_REVOKED)
            _exit(11);
        srvocsp_response_free(cr2);
        srvocsp_close(h2);
        srvocsp_close(h);
        srvocsp_cleanup();
        _exit(0);
    }
    assert_true(pid > 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* The child's engine asked the responder itself. */
    assert_int_equal(tr_responder_requests(&resp) - before, 1);
    /* The parent is unaffected: still serving, engine still working. */
    r = srvocsp_get1_response(h);
    assert_non_null(r);
    srvocsp_response_free(r);
    {
        srvocsp_handle *u = open_leaf("unknown");

        assert_null(srvocsp_get1_response(u));
        assert_int_equal(srvocsp_last_error(), SRVOCSP_E_STATUS_UNKNOWN);
        srvocsp_close(u);
    }
    assert_int_equal(tr_responder_requests(&resp) - before, 2);
    srvocsp_close(h);
}

/* A transport that stands for a library the engine thread calls into
 * (libcurl, OpenSSL, the allocator): it holds that library's lock for a
 * while, as OpenSSL's method store does while fetching.  A child forked
 * meanwhile would inherit the lock taken, with no thread to give it back,
 * and block on its first use (a worker's first handshake, as nginx forks
 * its workers while the master's engine verifies). */
static pthread_mutex_t g_lib_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int g_inside;

static srvocsp_error locking_start(void *ctx, const srvocsp_http_request *req,
                                   srvocsp_http_done_fn done, void *arg)
{
    struct timespec nap = {0, 300 * 1000000L};

    (void)ctx, (void)req, (void)done, (void)arg;
    pthread_mutex_lock(&g_lib_lock);
    atomic_store(&g_inside, 1);
    nanosleep(&nap, NULL);
    atomic_store(&g_inside, 0);
    pthread_mutex_unlock(&g_lib_lock);
    return SRVOCSP_E_TRANSPORT;
}

static void test_fork_waits_until_engine_thread_is_out_of_libraries(void **s)
{
    srvocsp_transport t = {locking_start, NULL};
    srvocsp_engine_config c;
    srvocsp_engine *e;
    srvocsp_params p;
    srvocsp_handle *h;
    char path[1200];
    int status;
    pid_t pid;

    srvocsp_engine_config_init(&c);
    c.transport = &t;
    e = srvocsp_engine_new(&c);
    assert_non_null(e);
    srvocsp_params_init(&p);
    p.engine = e;
    p.flags = SRVOCSP_OPEN_ASYNC;
    snprintf(path, sizeof(path), "%s/good.pem", dir);
    atomic_store(&g_inside, 0);
    h = srvocsp_open_pem(path, NULL, &p); /* its first fetch enters the transport */
    assert_non_null(h);
    for (int i = 0; i < 2000 && !atomic_load(&g_inside); i++) {
        struct timespec ms = {0, 1000000L};

        nanosleep(&ms, NULL);
    }
    assert_true(atomic_load(&g_inside)); /* fork while the thread is inside */
    pid = fork();
    if (pid == 0) {
        struct timespec dl;
        int rc;

        /* The child's memory is the parent's at the fork: the thread had
         * left the library by then, and its lock is free. */
        if (atomic_load(&g_inside))
            _exit(22);
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += 3;
        rc = pthread_mutex_timedlock(&g_lib_lock, &dl);
        _exit(rc == 0 ? 0 : rc == ETIMEDOUT ? 20 : 21);
    }
    assert_true(pid > 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* The parent's engine goes on after the fork. */
    srvocsp_engine_kick(e);
    srvocsp_close(h);
    srvocsp_engine_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_child_serves_and_refreshes),
        cmocka_unit_test(test_fork_waits_until_engine_thread_is_out_of_libraries),
    };
    if (system("openssl version >/dev/null 2>&1") != 0) {
        printf("SKIP: openssl command not found\n");
        return 77;
    }
    return cmocka_run_group_tests(tests, setup, teardown);
}
