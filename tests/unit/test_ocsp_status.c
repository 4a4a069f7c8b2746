/*
 * OCSP error statuses (malformedRequest, internalError, tryLater,
 * sigRequired, unauthorized), an unknown certificate and a transport
 * failure, each answered every time by a fake responder on an injected
 * clock: the reason names the status, and the retries follow the failure
 * backoff, the same for all of them: 1 min doubling, stopping at 10 min
 * since nothing servable is held here (1 h while a servable response is
 * held, which test_schedule covers).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <openssl/ocsp.h>
#include <string.h>

#include "fake.h"
#include "testpki.h"

#define T 1900000000LL

static tp_pki pki;

typedef struct answer {
    int response_status;         /* OCSP_RESPONSE_STATUS_*, or -1: unknown cert, -2: no answer */
    manual_clock *clock;
} answer;

static void handler(void *arg, const char *url, fake_reply *out)
{
    const answer *a = arg;
    int64_t now = atomic_load(&a->clock->now);
    tp_resp_opts o;

    (void)url;
    if (a->response_status == -2) {
        out->error = SRVOCSP_E_TRANSPORT;
        return;
    }
    tp_resp_opts_init(&o, &pki.good, &pki.ca, now);
    o.next_update = now + 86400;
    if (a->response_status == -1)
        o.status = V_OCSP_CERTSTATUS_UNKNOWN;
    else
        o.response_status = a->response_status;
    out->status = 200;
    out->content_type = "application/ocsp-response";
    out->body = tp_response(&o, &out->len);
}

static const struct {
    int response_status;
    srvocsp_error err;
    const char *says;
} cases[] = {
    {OCSP_RESPONSE_STATUS_MALFORMEDREQUEST, SRVOCSP_E_RESPONSE_STATUS, "malformedRequest (1)"},
    {OCSP_RESPONSE_STATUS_INTERNALERROR, SRVOCSP_E_RESPONSE_STATUS, "internalError (2)"},
    {OCSP_RESPONSE_STATUS_TRYLATER, SRVOCSP_E_RESPONSE_STATUS, "tryLater (3)"},
    {OCSP_RESPONSE_STATUS_SIGREQUIRED, SRVOCSP_E_RESPONSE_STATUS, "sigRequired (5)"},
    {OCSP_RESPONSE_STATUS_UNAUTHORIZED, SRVOCSP_E_RESPONSE_STATUS,
     "unauthorized (6): it does not answer for this certificate"},
    {-1, SRVOCSP_E_STATUS_UNKNOWN, "unknown"},
    {-2, SRVOCSP_E_TRANSPORT, ""},
};

static void test_status_retry(void **s)
{
    /* Nothing held: the backoff stops at 10 minutes. */
    static const int64_t want[] = {60, 120, 240, 480, 600, 600, 600, 600, 600};
    size_t i, k;

    (void)s;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        manual_clock clock;
        fake_transport ft;
        answer a;
        srvocsp_engine *eng;
        srvocsp_handle *h;
        srvocsp_params p;
        char why[512];

        manual_clock_init(&clock, T);
        a.response_status = cases[i].response_status;
        a.clock = &clock;
        fake_init(&ft, &clock, handler, &a);
        eng = fake_engine_new(&clock, &ft, 0, 42);
        assert_non_null(eng);
        srvocsp_params_init(&p);
        p.engine = eng;
        h = fake_open(pki.good.cert, pki.ca.cert, &p);
        assert_non_null(h);
        for (k = 0; k < sizeof(want) / sizeof(want[0]); k++) {
            int64_t now = atomic_load(&clock.now), next;

            assert_int_equal(srvocsp_engine_settle(eng, 5000), SRVOCSP_OK);
            assert_null(srvocsp_get1_response(h));
            assert_int_equal(srvocsp_handle_last_failure(h, why, sizeof(why)), cases[i].err);
            assert_non_null(strstr(why, cases[i].says));
            next = srvocsp_handle_next_attempt(h);
            if (next - now != want[k])
                fail_msg("case %zu (%s), failure %zu: next attempt in %lld s, want %lld", i,
                         cases[i].says, k + 1, (long long)(next - now), (long long)want[k]);
            manual_clock_set(&clock, next);
            srvocsp_engine_kick(eng);
        }
        assert_int_equal(srvocsp_engine_settle(eng, 5000), SRVOCSP_OK);
        assert_int_equal(fake_requests(&ft), (int)(sizeof(want) / sizeof(want[0])) + 1);
        srvocsp_close(h);
        srvocsp_engine_free(eng);
        fake_destroy(&ft);
    }
}

static int setup(void **s)
{
    (void)s;
    return tp_pki_make(&pki, "http://127.0.0.1:9/", NULL, T) ? 0 : -1;
}

static int teardown(void **s)
{
    (void)s;
    tp_pki_free(&pki);
    srvocsp_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_retry),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
