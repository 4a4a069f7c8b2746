/* The one verdict, row by row (verdict_cases.h), without an engine. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "core/verdict.h"
#include "verdict_cases.h"

#define NOW 1800000000LL

static const srvocsp__sched P = {600, 14400, 120, 60, 300, false};

/* As verification sets a snapshot's expiry (the trust horizon, the
 * maximum age). */
static const srvocsp__policy POL = {.now = NOW, .skew_s = 300, .max_age_s = 3600,
                                    .max_lifetime_s = SRVOCSP__DEFAULT_MAX_LIFETIME};

static srvocsp_response resp(int status, int64_t tu, int64_t prod, int64_t nu)
{
    srvocsp_response r;

    memset(&r, 0, sizeof(r));
    r.status = (srvocsp_cert_status)status;
    r.this_update = NOW + tu;
    r.produced_at = NOW + prod;
    r.next_update = NOW + nu;
    r.expires = srvocsp__expiry(r.this_update, r.next_update, &POL);
    return r;
}

static void test_table(void **s)
{
    size_t i;

    (void)s;
    for (i = 0; i < VERDICT_N_CASES; i++) {
        const verdict_case *vc = &VERDICT_CASES[i];
        srvocsp_response h = resp(vc->h_status, vc->h_tu, vc->h_prod, vc->h_exp);
        srvocsp_response c = resp(vc->c_status, vc->c_tu, vc->c_prod, vc->c_exp);
        srvocsp_error err = SRVOCSP_OK;
        char why[SRVOCSP__REASON_LEN] = "";
        srvocsp__verdict v =
            srvocsp__verdict_judge(&P, vc->held ? &h : NULL, &c, NOW, &err, why, sizeof(why));

        if ((int)v != vc->verdict || err != vc->err)
            fail_msg("%s: verdict %d (%s: %s), expected %d (%s)", vc->name, (int)v,
                     srvocsp_error_name(err), why, vc->verdict, srvocsp_error_name(vc->err));
        /* A refusal always says why; nothing else does. */
        if (v == SRVOCSP__V_REFUSE)
            assert_true(why[0] != '\0');
        else
            assert_true(why[0] == '\0');
    }
}

/* The lagging replica's revocation names both producedAt times when it is
 * a replay, so an operator can see which replica lags. */
static void test_replay_reason(void **s)
{
    srvocsp_response h = resp(VC_G, -100, -100, 3600), c = resp(VC_R, -200, -200, 3600);
    srvocsp_error err = SRVOCSP_OK;
    char why[SRVOCSP__REASON_LEN];

    (void)s;
    assert_int_equal(srvocsp__verdict_judge(&P, &h, &c, NOW, &err, why, sizeof(why)),
                     SRVOCSP__V_REFUSE);
    assert_non_null(strstr(why, "a replay, not news"));
}

/* The adaptive margin: a 5-minute response is servable with a quarter of
 * its window (75 s) left, never with the fixed rule. */
static void test_adaptive_margin(void **s)
{
    srvocsp__sched a = P;
    srvocsp_response c = resp(VC_G, -100, -100, 200);
    srvocsp_error err = SRVOCSP_OK;
    char why[SRVOCSP__REASON_LEN];

    (void)s;
    assert_int_equal(srvocsp__verdict_judge(&P, NULL, &c, NOW, &err, why, sizeof(why)),
                     SRVOCSP__V_REFUSE);
    a.adaptive = true;
    assert_int_equal(srvocsp__verdict_judge(&a, NULL, &c, NOW, &err, why, sizeof(why)),
                     SRVOCSP__V_REPLACE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_replay_reason),
        cmocka_unit_test(test_adaptive_margin),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
