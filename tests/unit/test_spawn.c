/* The test harness's runner (tests/support/spawn.c), which the Apache and
 * nginx tests start their servers' control commands with: exit status and
 * output come back, the planned environment reaches the program, and a
 * program that runs past its limit is killed, whether it keeps its output
 * open or closes it first (the harness must never wait without end). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <string.h>
#include <time.h>

#include "spawn.h"

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int run_sh(const char *script, const char *const *set, char *out, size_t cap,
                  int timeout_ms, double *took)
{
    const char *argv[] = {"sh", "-c", script, NULL};
    tr_exec p;
    double t0;
    int rc;

    assert_true(tr_exec_plan(&p, argv, set));
    t0 = now_s();
    rc = tr_exec_run(&p, "/bin/sh", out, cap, timeout_ms);
    *took = now_s() - t0;
    tr_exec_free(&p);
    return rc;
}

static void test_status_output_env(void **state)
{
    const char *set[] = {"SRVOCSP_SPAWN_TEST=planned", NULL};
    char out[256];
    double took;

    (void)state;
    assert_int_equal(run_sh("echo \"out $SRVOCSP_SPAWN_TEST\"; echo err >&2; exit 3", set, out,
                            sizeof(out), 10000, &took),
                     3);
    assert_non_null(strstr(out, "out planned"));
    assert_non_null(strstr(out, "err"));
    /* Output beyond the buffer is read and dropped, not left to block the
     * program. */
    assert_int_equal(run_sh("head -c 200000 /dev/zero | tr '\\0' x; exit 0", NULL, out, 16,
                            10000, &took),
                     0);
    assert_int_equal(strlen(out), 15);
}

static void test_limit(void **state)
{
    char out[64];
    double took;

    (void)state;
    /* Runs on with its output open. */
    assert_int_equal(run_sh("sleep 30", NULL, out, sizeof(out), 300, &took), 128);
    assert_true(took < 10);
    /* Closes its output, then runs on: the wait for its exit has the
     * limit too. */
    assert_int_equal(run_sh("exec >/dev/null 2>&1; sleep 30", NULL, out, sizeof(out), 300, &took),
                     128);
    assert_true(took < 10);
    /* Closes its output and exits soon after: its status, not a kill. */
    assert_int_equal(run_sh("exec >/dev/null 2>&1; sleep 0.2; exit 5", NULL, out, sizeof(out),
                            10000, &took),
                     5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_output_env),
        cmocka_unit_test(test_limit),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
