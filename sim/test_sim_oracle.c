/*
 * The oracle's pure pieces, and the breaches the simulator reported that
 * were the oracle's mistakes, replayed with their numbers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <string.h>

#include "core/verdict.h"
#include "sim_oracle.h"

#define SKEW 300
#define MIN_VALIDITY 600
#define HORIZON (10 * 86400)
#define T0 1800000000LL

static const srvocsp__sched P = {600, 14400, 120, 60, 300, false};

static srvocsp_response good(int64_t tu, int64_t nu)
{
    srvocsp_response r;

    memset(&r, 0, sizeof(r));
    r.status = SRVOCSP_STATUS_GOOD;
    r.this_update = tu;
    r.produced_at = tu;
    r.next_update = r.expires = nu;
    return r;
}

/* A clock that steps back and is set right again: the range covers the
 * readings before, during and after; another process's steps do not
 * count; steps before the interval set where it starts. */
static void test_clock_range(void **s)
{
    const sim_event ev[] = {
        {1000, EV_CLOCK_STEP, 0, -500}, /* process 0 goes 500 s back */
        {1500, EV_CLOCK_STEP, 1, 7200}, /* process 1, not ours */
        {2000, EV_CLOCK_STEP, 0, 0},    /* set right */
        {3000, EV_CLOCK_STEP, 0, 900},  /* ahead */
    };
    int64_t lo, hi;

    (void)s;
    sim_host_clock_range(ev, 4, 0, 100, 900, &lo, &hi);
    assert_int_equal(lo, 100);
    assert_int_equal(hi, 900);
    sim_host_clock_range(ev, 4, 0, 900, 2500, &lo, &hi);
    assert_int_equal(lo, 500);  /* 1000 - 500 */
    assert_int_equal(hi, 2500);
    sim_host_clock_range(ev, 4, 0, 1200, 1900, &lo, &hi); /* inside the step back */
    assert_int_equal(lo, 700);
    assert_int_equal(hi, 1400);
    sim_host_clock_range(ev, 4, 0, 2500, 3100, &lo, &hi);
    assert_int_equal(lo, 2500);
    assert_int_equal(hi, 4000); /* 3100 + 900 */
    sim_host_clock_range(ev, 4, 1, 0, 3100, &lo, &hi);
    assert_int_equal(lo, 0);
    assert_int_equal(hi, 3100 + 7200);
}

static void test_servable_throughout(void **s)
{
    (void)s;
    assert_true(sim_servable_throughout(1000, 5000, 900, 1200, SKEW, MIN_VALIDITY, HORIZON));
    /* from the future at the lowest reading */
    assert_false(sim_servable_throughout(1000, 5000, 699, 1200, SKEW, MIN_VALIDITY, HORIZON));
    assert_true(sim_servable_throughout(1000, 5000, 700, 1200, SKEW, MIN_VALIDITY, HORIZON));
    /* too little left at the highest */
    assert_false(sim_servable_throughout(1000, 5000, 900, 4401, SKEW, MIN_VALIDITY, HORIZON));
    assert_true(sim_servable_throughout(1000, 5000, 900, 4400, SKEW, MIN_VALIDITY, HORIZON));
    /* beyond the trust horizon */
    assert_false(sim_servable_throughout(1000, 1000 + 2 * HORIZON, 900, 1001 + HORIZON, SKEW,
                                         MIN_VALIDITY, HORIZON));
}

/*
 * Seed 1, a year of 100 certificates, day 361: "process 0 rolled
 * certificate 16 back: thisUpdate 1831224233 after 1831227398, which could
 * still be served".  Process 0 stapled the response of thisUpdate
 * T0+31227398 at the sample of T0+31227300 (its CA's clock runs ahead);
 * at T0+31227723 its wall clock stepped 803 s back, so the held response
 * was 478 s in the future, past the 300 s skew: unservable.  The engine
 * took an older servable one, as the verdict's rule 4 says.  At the next
 * sample (T0+31228201) the host's clock read exactly T0+31227398 and the
 * held one would have been servable again; the oracle looked only then
 * and called it a rollback.  It now asks whether the held response stayed
 * servable at every moment since its last look.
 */
static void test_seed1_day361_clock_back(void **s)
{
    const sim_event ev[] = {{T0 + 31227723, EV_CLOCK_STEP, 0, -803}};
    const int64_t held_tu = 1831227398, cand_tu = 1831224233;
    const int64_t looked = T0 + 31227300, now = T0 + 31228201;
    srvocsp_response held = good(held_tu, held_tu + 14400), cand = good(cand_tu, cand_tu + 14400);
    srvocsp_error err = SRVOCSP_OK;
    char why[SRVOCSP__REASON_LEN];
    int64_t lo, hi;

    (void)s;
    /* The engine, just after the step: the held one is from the future,
     * the older one replaces it. */
    assert_int_equal(srvocsp__verdict_judge(&P, &held, &cand, T0 + 31227723 - 803, &err, why,
                                            sizeof(why)),
                     SRVOCSP__V_REPLACE);
    /* At the sample the same pair would be a rollback: the moment matters. */
    assert_int_equal(srvocsp__verdict_judge(&P, &held, &cand, now - 803, &err, why, sizeof(why)),
                     SRVOCSP__V_REFUSE);
    assert_int_equal(err, SRVOCSP_E_ROLLBACK);
    /* The oracle sees that moment in the clock's range since its look. */
    sim_host_clock_range(ev, 1, 0, looked, now, &lo, &hi);
    assert_int_equal(lo, T0 + 31227723 - 803);
    assert_false(sim_servable_throughout(held_tu, held_tu + 14400, lo, hi, SKEW, MIN_VALIDITY,
                                         HORIZON));
    /* Without the step it would still be a breach. */
    sim_host_clock_range(ev, 0, 0, looked, now, &lo, &hi);
    assert_true(sim_servable_throughout(held_tu, held_tu + 14400, lo, hi, SKEW, MIN_VALIDITY,
                                        HORIZON));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clock_range),
        cmocka_unit_test(test_servable_throughout),
        cmocka_unit_test(test_seed1_day361_clock_back),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
