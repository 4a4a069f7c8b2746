/* srvocsp watch's pieces without a process: the engine's event queue
 * (bounded, coalescing, never waiting for its reader) and the decision of
 * the served/withdrawn state machine. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testpki.h"
#include "watch.h"

#define SLOTS 1000
#define POSTS_PER_THREAD 100000
#define THREADS 2

static wqueue *q;
static void *tags[SLOTS];

static int setup(void **s)
{
    (void)s;
    q = wq_new();
    if (q == NULL || !wq_reserve(q, SLOTS))
        return -1;
    for (int i = 0; i < SLOTS; i++)
        tags[i] = wq_arm(q, i);
    return 0;
}

static int teardown(void **s)
{
    (void)s;
    wq_free(q);
    q = NULL;
    return 0;
}

/* What one engine thread reports: event |n| is for slot n % SLOTS, a
 * failure when n is odd, its sequence number in the reason. */
static void *poster(void *arg)
{
    int t = (int)(intptr_t)arg;

    for (int k = 0; k < POSTS_PER_THREAD; k++) {
        int n = t * POSTS_PER_THREAD + k;
        char reason[32];
        srvocsp_event ev;

        memset(&ev, 0, sizeof(ev));
        snprintf(reason, sizeof(reason), "n=%d", n);
        ev.type = n % 2 ? SRVOCSP_EVENT_FAILED : SRVOCSP_EVENT_UPDATED;
        ev.error = n % 2 ? SRVOCSP_E_TIMEOUT : SRVOCSP_OK;
        ev.reason = reason;
        wq_on_update(NULL, &ev, tags[n % SLOTS]);
    }
    return NULL;
}

/* Nobody reads while the engine posts 200,000 events for 1,000
 * certificates: every post returns (the old pipe blocked the engine once
 * 64 KiB waited), at most one event per certificate waits, each the
 * latest of its certificate, and the counters still count every event. */
static void test_queue_never_waits_and_coalesces(void **s)
{
    pthread_t th[THREADS];
    static wq_event evs[SLOTS + 10];
    wq_counts counts;
    int n, seen[SLOTS];

    (void)s;
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, poster, (void *)(intptr_t)t), 0);
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    memset(&counts, 0, sizeof(counts));
    n = wq_take(q, evs, SLOTS + 10, &counts);
    assert_int_equal(n, SLOTS);
    memset(seen, 0, sizeof(seen));
    for (int i = 0; i < n; i++) {
        int seq = -1;

        assert_in_range(evs[i].slot, 0, SLOTS - 1);
        assert_int_equal(seen[evs[i].slot]++, 0);
        assert_true(evs[i].attempted);
        assert_int_equal(sscanf(evs[i].reason, "n=%d", &seq), 1);
        assert_int_equal(seq % SLOTS, evs[i].slot);
        /* The last event of this slot from one of the two threads. */
        assert_true((seq >= POSTS_PER_THREAD - SLOTS && seq < POSTS_PER_THREAD) ||
                    seq >= THREADS * POSTS_PER_THREAD - SLOTS);
        assert_int_equal(evs[i].type, seq % 2 ? SRVOCSP_EVENT_FAILED : SRVOCSP_EVENT_UPDATED);
    }
    assert_int_equal(counts.responses[SRVOCSP_STATUS_GOOD], THREADS * POSTS_PER_THREAD / 2);
    assert_int_equal(counts.failures[SRVOCSP_E_TIMEOUT], THREADS * POSTS_PER_THREAD / 2);
    assert_int_equal(counts.coalesced, THREADS * POSTS_PER_THREAD - SLOTS);
    /* Taken: nothing waits any more. */
    assert_int_equal(wq_take(q, evs, SLOTS, NULL), 0);
}

/* A reader that takes a few at a time while the engine posts: every
 * certificate's last event arrives, oldest certificate first. */
static void test_queue_order_and_partial_takes(void **s)
{
    wq_event evs[8];
    srvocsp_event ev;
    int n, total = 0;

    (void)s;
    memset(&ev, 0, sizeof(ev));
    ev.type = SRVOCSP_EVENT_UPDATED;
    ev.reason = "";
    for (int i = 20; i >= 0; i--)
        wq_on_update(NULL, &ev, tags[i]);
    wq_on_update(NULL, &ev, tags[20]); /* coalesced: keeps its place */
    while ((n = wq_take(q, evs, 8, NULL)) > 0) {
        for (int i = 0; i < n; i++)
            assert_int_equal(evs[i].slot, 20 - (total + i));
        total += n;
    }
    assert_int_equal(total, 21);
}

/* A closed handle's last callback is dropped, never credited to the
 * certificate that takes its slot next. */
static void test_queue_generations(void **s)
{
    wq_event evs[4];
    srvocsp_event ev;
    void *old = tags[5], *fresh;

    (void)s;
    memset(&ev, 0, sizeof(ev));
    ev.type = SRVOCSP_EVENT_REVOKED;
    ev.reason = "";
    wq_on_update(NULL, &ev, old);
    wq_disarm(q, 5);                    /* the certificate was removed */
    assert_int_equal(wq_take(q, evs, 4, NULL), 0);
    fresh = wq_arm(q, 5);               /* another certificate in slot 5 */
    assert_ptr_not_equal(fresh, old);
    wq_on_update(NULL, &ev, old);
    assert_int_equal(wq_take(q, evs, 4, NULL), 0);
    wq_on_update(NULL, &ev, fresh);
    assert_int_equal(wq_take(q, evs, 4, NULL), 1);
    assert_int_equal(evs[0].slot, 5);
    assert_int_equal(evs[0].type, SRVOCSP_EVENT_REVOKED);
    tags[5] = fresh;
}

/* A store failure does not hide the retrieval it followed. */
static void test_queue_store_failure_keeps_news(void **s)
{
    wq_event evs[4];
    srvocsp_event ev;

    (void)s;
    memset(&ev, 0, sizeof(ev));
    ev.type = SRVOCSP_EVENT_UPDATED;
    ev.reason = "";
    wq_on_update(NULL, &ev, tags[7]);
    ev.type = SRVOCSP_EVENT_STORE_FAILED;
    ev.error = SRVOCSP_E_IO;
    ev.reason = "disk full";
    wq_on_update(NULL, &ev, tags[7]);
    assert_int_equal(wq_take(q, evs, 4, NULL), 1);
    assert_int_equal(evs[0].type, SRVOCSP_EVENT_UPDATED);
    assert_true(evs[0].attempted);
}

/* The state machine's decision, as a table: what watch last saw, what the
 * library says now. */
static void test_decide(void **s)
{
    static const unsigned char a[32] = {1}, b[32] = {2};
    static const struct {
        bool was_served;
        const unsigned char *was_md;
        srvocsp_error was_why;
        bool served_now;
        const unsigned char *md;
        srvocsp_error why;
        wstep want;
    } t[] = {
        {false, NULL, SRVOCSP_E_OFFLINE, true, a, SRVOCSP_OK, WSTEP_PUBLISH},      /* first */
        {true, a, SRVOCSP_OK, true, a, SRVOCSP_OK, WSTEP_NONE},                    /* same */
        {true, a, SRVOCSP_OK, true, b, SRVOCSP_OK, WSTEP_PUBLISH},                 /* newer */
        {true, a, SRVOCSP_OK, false, NULL, SRVOCSP_E_STALE, WSTEP_WITHDRAW},       /* too late */
        {true, a, SRVOCSP_OK, false, NULL, SRVOCSP_E_STATUS_UNKNOWN, WSTEP_WITHDRAW},
        {false, NULL, SRVOCSP_E_OFFLINE, false, NULL, SRVOCSP_E_OFFLINE, WSTEP_NONE},
        {false, NULL, SRVOCSP_E_OFFLINE, false, NULL, SRVOCSP_E_STATUS_UNKNOWN, WSTEP_NOTE},
        {false, NULL, SRVOCSP_E_STALE, true, a, SRVOCSP_OK, WSTEP_PUBLISH},        /* back */
    };

    (void)s;
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        wcert c;

        memset(&c, 0, sizeof(c));
        c.served = t[i].was_served;
        if (t[i].was_md)
            memcpy(c.served_md, t[i].was_md, 32);
        c.not_served = t[i].was_why;
        assert_int_equal(wstate_decide(&c, t[i].served_now, t[i].md, t[i].why), t[i].want);
    }
}

/* srvocsp_response_servable_until: the get path's margin, which watch
 * uses instead of a copy (it had a literal 600). */
static void test_servable_until(void **s)
{
    int64_t now = (int64_t)time(NULL);
    static const struct {
        int64_t this_off, next_off;
        int status;
        uint32_t min_validity;   /* 0: NULL params */
        bool adaptive;
        int64_t want_margin;     /* -1: 0 expected (never served) */
    } t[] = {
        {-60, 3600, V_OCSP_CERTSTATUS_GOOD, 0, false, 600},
        {-60, 3600, V_OCSP_CERTSTATUS_GOOD, 900, false, 900},
        {-60, 3600, V_OCSP_CERTSTATUS_REVOKED, 600, false, 600},
        {-10, 290, V_OCSP_CERTSTATUS_GOOD, 600, false, 600},  /* 5 minutes: never servable */
        {-10, 290, V_OCSP_CERTSTATUS_GOOD, 600, true, 75},    /* a quarter of the window */
        {-60, 7 * 86400, V_OCSP_CERTSTATUS_GOOD, 600, true, 600},
        {-60, 3600, V_OCSP_CERTSTATUS_UNKNOWN, 600, false, -1},
    };
    tp_pki pki;

    (void)s;
    assert_true(tp_pki_make(&pki, "http://127.0.0.1:9/", "http://127.0.0.1:9/", now));
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        tp_resp_opts o;
        srvocsp_params p;
        srvocsp_response *r;
        unsigned char *der;
        size_t len;

        tp_resp_opts_init(&o, &pki.good, &pki.ca, now + t[i].this_off);
        o.status = t[i].status;
        o.next_update = now + t[i].next_off;
        der = tp_response(&o, &len);
        assert_non_null(der);
        r = srvocsp_verify_der(der, len, pki.good.cert, pki.ca.cert, NULL);
        assert_non_null(r);
        srvocsp_params_init(&p);
        p.min_validity_s = t[i].min_validity;
        p.adaptive_min_validity = t[i].adaptive;
        assert_int_equal(srvocsp_response_servable_until(r, t[i].min_validity ? &p : NULL),
                         t[i].want_margin < 0 ? 0 : now + t[i].next_off - t[i].want_margin);
        srvocsp_response_free(r);
        free(der);
    }
    assert_int_equal(srvocsp_response_servable_until(NULL, NULL), 0);
    tp_pki_free(&pki);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_queue_never_waits_and_coalesces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_order_and_partial_takes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_generations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_store_failure_keeps_news, setup, teardown),
        cmocka_unit_test(test_decide),
        cmocka_unit_test(test_servable_until),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
