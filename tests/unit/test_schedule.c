/* The scheduling rules as pure functions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <string.h>

#include "internal.h"

static const srvocsp__sched P = {600, 14400, 120, 60, 300, false};
#define T0 1800000000LL
#define DAY 86400

static srvocsp_response resp(int64_t tu, int64_t nu)
{
    srvocsp_response r;

    memset(&r, 0, sizeof(r));
    r.status = SRVOCSP_STATUS_GOOD;
    r.this_update = tu;
    r.next_update = nu;
    r.expires = nu;
    return r;
}

static void test_halfway_for_long_windows(void **s)
{
    srvocsp_response r = resp(T0, T0 + 7 * DAY);

    assert_int_equal(srvocsp__sched_after_success(&P, &r, T0, true), T0 + 7 * DAY / 2);
    r = resp(T0, T0 + DAY);
    assert_int_equal(srvocsp__sched_after_success(&P, &r, T0, true), T0 + DAY / 2);
}

static void test_windows_prefetch_for_mid_windows(void **s)
{
    /* 6 h window: prefetch point nextUpdate - 4 h = +2 h beats halfway +3 h. */
    srvocsp_response r = resp(T0, T0 + 6 * 3600);

    assert_int_equal(srvocsp__sched_after_success(&P, &r, T0, true), T0 + 2 * 3600);
}

static void test_short_windows_quarter_floor(void **s)
{
    /* 1 h window: prefetch point is before thisUpdate; a quarter in. */
    srvocsp_response r = resp(T0, T0 + 3600);

    assert_int_equal(srvocsp__sched_after_success(&P, &r, T0, true), T0 + 900);
}

static void test_min_interval_after_fresh(void **s)
{
    /* An old response fetched late: its refresh point has passed; a fresh
     * one waits a minute, a loaded one is fetched at once. */
    srvocsp_response r = resp(T0, T0 + 7 * DAY);
    int64_t now = T0 + 5 * DAY;

    assert_int_equal(srvocsp__sched_after_success(&P, &r, now, true), now + 60);
    assert_int_equal(srvocsp__sched_after_success(&P, &r, now, false), now);
}

static void test_near_next_update_rule(void **s)
{
    srvocsp_response r = resp(T0, T0 + DAY);
    int64_t now = T0 + DAY - 100; /* within 120 s of nextUpdate */

    assert_int_equal(srvocsp__sched_after_success(&P, &r, now, false), T0 + DAY + 60);
}

static void test_backoff_sequence(void **s)
{
    static const int64_t want[] = {0, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600};

    for (unsigned i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        assert_int_equal(srvocsp__backoff_s(i), want[i]);
    /* Jitter stays within +/- 20 %. */
    assert_int_equal(srvocsp__sched_after_failure(&P, NULL, T0, 1, 1.0, 20), T0 + 72);
    assert_int_equal(srvocsp__sched_after_failure(&P, NULL, T0, 1, -1.0, 20), T0 + 48);
    /* Nothing held: the backoff stops at 10 min; with a servable response
     * held it goes on to 1 h. */
    assert_int_equal(srvocsp__sched_after_failure(&P, NULL, T0, 4, 0.0, 20), T0 + 480);
    assert_int_equal(srvocsp__sched_after_failure(&P, NULL, T0, 5, 0.0, 20), T0 + 600);
    assert_int_equal(srvocsp__sched_after_failure(&P, NULL, T0, 7, 0.0, 20), T0 + 600);
    assert_int_equal(srvocsp__sched_after_failure(&P, NULL, T0, 7, 1.0, 20), T0 + 720);
    {
        srvocsp_response held = resp(T0, T0 + 7 * DAY);
        srvocsp_response gone = resp(T0 - 2 * DAY, T0 + 300);

        assert_int_equal(srvocsp__sched_after_failure(&P, &held, T0, 7, 0.0, 20), T0 + 3600);
        /* Held but no longer servable (300 s left, MinValidity 600): cold. */
        assert_int_equal(srvocsp__sched_after_failure(&P, &gone, T0, 7, 0.0, 20), T0 + 600);
    }
}

static void test_last_chance_before_min_validity(void **s)
{
    /* Held response servable until nextUpdate - 600; a 1 h backoff would
     * miss that, so the retry comes one minute before. */
    srvocsp_response r = resp(T0, T0 + DAY);
    int64_t now = T0 + DAY - 1800;

    assert_int_equal(srvocsp__sched_after_failure(&P, &r, now, 7, 0.0, 20), T0 + DAY - 660);
    /* Once it cannot be served any more: plain backoff. */
    now = T0 + DAY - 500;
    assert_int_equal(srvocsp__sched_after_failure(&P, &r, now, 1, 0.0, 20), T0 + DAY - 440);
    /* A retry that would land within 120 s of nextUpdate waits until 60 s
     * after it (the Windows rule). */
    now = T0 + DAY - 150;
    assert_int_equal(srvocsp__sched_after_failure(&P, &r, now, 1, 0.0, 20), T0 + DAY + 60);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_halfway_for_long_windows),
        cmocka_unit_test(test_windows_prefetch_for_mid_windows),
        cmocka_unit_test(test_short_windows_quarter_floor),
        cmocka_unit_test(test_min_interval_after_fresh),
        cmocka_unit_test(test_near_next_update_rule),
        cmocka_unit_test(test_backoff_sequence),
        cmocka_unit_test(test_last_chance_before_min_validity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
