/*
 * The oracle's pure pieces, and breaches the simulator reported that were
 * the oracle's own mistakes, replayed with their numbers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <string.h>

#include "core/verdict.h"
#include "sim_oracle.h"
#include "sim_world.h"

#define T0 1800000000LL
#define RULE SIM_SKEW, SIM_MIN_VALIDITY, SIM_HORIZON

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

/* The oracle's rule and the engine's verdict agree on what a held
 * response that "can still be served" is, at the edges. */
static void test_servable_edges(void **s)
{
    (void)s;
    assert_true(sim_servable(1000, 5000, 700, RULE));   /* thisUpdate at the skew */
    assert_false(sim_servable(1000, 5000, 699, RULE));  /* past it */
    assert_true(sim_servable(1000, 5000, 4400, RULE));  /* MinValidity exactly */
    assert_false(sim_servable(1000, 5000, 4401, RULE));
    /* the trust horizon ends it before nextUpdate */
    assert_true(sim_servable(1000, 1000 + 2 * SIM_HORIZON, 1000 + SIM_HORIZON - 600, RULE));
    assert_false(sim_servable(1000, 1000 + 2 * SIM_HORIZON, 1000 + SIM_HORIZON - 599, RULE));
    for (int64_t hc = 600; hc <= 4500; hc += 50) {
        srvocsp_response held = good(1000, 5000), cand = good(900, 5000);
        srvocsp_error err = SRVOCSP_OK;
        char why[SRVOCSP__REASON_LEN];
        srvocsp__verdict v = srvocsp__verdict_judge(&P, &held, &cand, hc, &err, why, sizeof(why));

        /* Wherever the candidate itself can be served, the engine refuses
         * the older one exactly when the oracle calls taking it a rollback. */
        if (sim_servable(900, 5000, hc, RULE))
            assert_int_equal(v == SRVOCSP__V_REFUSE,
                             sim_rollback(1000, 5000, SRVOCSP_STATUS_GOOD, 900, SRVOCSP_STATUS_GOOD, hc, RULE));
    }
    /* Revoked over good is never a rollback; nothing held, nothing to roll back. */
    assert_false(sim_rollback(1000, 5000, SRVOCSP_STATUS_GOOD, 900, SRVOCSP_STATUS_REVOKED, 1000, RULE));
    assert_false(sim_rollback(0, 0, SRVOCSP_STATUS_GOOD, 900, SRVOCSP_STATUS_GOOD, 1000, RULE));
    /* A held revoked one gives way to no good one as new or older, at any
     * clock; a held unknown one (never served) to an older good one. */
    assert_true(sim_rollback(1000, 5000, SRVOCSP_STATUS_REVOKED, 1000, SRVOCSP_STATUS_GOOD, 99999,
                             RULE));
    assert_false(sim_rollback(1000, 5000, SRVOCSP_STATUS_REVOKED, 1001, SRVOCSP_STATUS_GOOD,
                              1000, RULE));
    assert_false(sim_rollback(1000, 5000, SRVOCSP_STATUS_UNKNOWN, 900, SRVOCSP_STATUS_GOOD, 1000,
                              RULE));
}

/*
 * Seed 1, 30 days, 40 certificates: "process 2 rolled certificate 21
 * back: it took thisUpdate 1800414000 over 1800417600".  The held one was
 * unknown (a new certificate under a CA that pre-signs on the hour): never
 * served, it gives way to an older good one that can be, as the verdict
 * says.  The oracle had ignored the held status.
 */
static void test_seed1_30d_unknown_gives_way(void **s)
{
    srvocsp_response held = good(1800417600, 1801022400), cand = good(1800414000, 1801018800);
    srvocsp_error err = SRVOCSP_OK;
    char why[SRVOCSP__REASON_LEN];

    (void)s;
    held.status = SRVOCSP_STATUS_UNKNOWN;
    assert_int_equal(srvocsp__verdict_judge(&P, &held, &cand, 1800421110, &err, why, sizeof(why)),
                     SRVOCSP__V_REPLACE);
    assert_false(sim_rollback(1800417600, 1801022400, SRVOCSP_STATUS_UNKNOWN, 1800414000,
                              SRVOCSP_STATUS_GOOD, 1800421110, RULE));
}

/*
 * Seed 1, a year of 100 certificates, day 361: "process 0 rolled
 * certificate 16 back: thisUpdate 1831224233 after 1831227398, which could
 * still be served".  Process 0 held the response of thisUpdate
 * T0+31227398 (its CA's clock runs ahead); at T0+31227723 its wall clock
 * stepped 803 s back, so the held response was 478 s in the future, past
 * the 300 s skew: unservable.  The engine took an older servable one, as
 * the verdict's rule 4 says.  At the next sample (T0+31228201) the host's
 * clock read exactly T0+31227398 and the held one would have been
 * servable again: the oracle, looking only then, called it a rollback.
 * It now judges each replacement when the engine makes it.
 */
static void test_seed1_day361(void **s)
{
    const int64_t held_tu = 1831227398, cand_tu = 1831224233, step = T0 + 31227723;
    srvocsp_response held = good(held_tu, held_tu + 14400), cand = good(cand_tu, cand_tu + 14400);
    srvocsp_error err = SRVOCSP_OK;
    char why[SRVOCSP__REASON_LEN];

    (void)s;
    /* Just after the step: the engine replaces, the oracle agrees. */
    assert_int_equal(srvocsp__verdict_judge(&P, &held, &cand, step - 803, &err, why, sizeof(why)),
                     SRVOCSP__V_REPLACE);
    assert_false(sim_rollback(held_tu, held_tu + 14400, SRVOCSP_STATUS_GOOD, cand_tu, SRVOCSP_STATUS_GOOD, step - 803,
                              RULE));
    /* At the sample the same pair would have been a rollback. */
    assert_true(sim_rollback(held_tu, held_tu + 14400, SRVOCSP_STATUS_GOOD, cand_tu, SRVOCSP_STATUS_GOOD,
                             T0 + 31228201 - 803, RULE));
}

/*
 * Seed 5, 30 days, 40 certificates: "process 2 rolled certificate 30 back:
 * thisUpdate 1802531672 after 1802533439".  Between two samples the
 * process took a newer response (thisUpdate T0+2535088, its CA 2-hour
 * windows); its clock then stepped 601 s back and that one was from the
 * future: an older one (T0+2531502) replaced it, then T0+2531672.  The
 * sample saw T0+2533439, then T0+2531672, and never the response in
 * between that the engine judged against.
 */
static void test_seed5_unseen_between_samples(void **s)
{
    const int64_t now = T0 + 2535102 - 601;

    (void)s;
    assert_false(sim_rollback(T0 + 2535088, T0 + 2535088 + 7200, SRVOCSP_STATUS_GOOD, T0 + 2531502,
                              SRVOCSP_STATUS_GOOD, now, RULE));
    assert_false(sim_rollback(T0 + 2531502, T0 + 2531502 + 7200, SRVOCSP_STATUS_GOOD, T0 + 2531672,
                              SRVOCSP_STATUS_GOOD, now + 100, RULE));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_servable_edges),
        cmocka_unit_test(test_seed1_day361),
        cmocka_unit_test(test_seed5_unseen_between_samples),
        cmocka_unit_test(test_seed1_30d_unknown_gives_way),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
