/* The engine with an injected clock and transport: time is stepped, never
 * slept through. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <openssl/ocsp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fake.h"
#include "peers.h"
#include "srvocsp.h"
#include "testpki.h"

#define DAY 86400

static tp_pki pki;
static int64_t T; /* start of simulated time */

enum mode { M_GOOD, M_DOWN, M_REVOKED, M_UNKNOWN, M_OLD, M_NONEXT, M_GARBAGE, M_HTTP500,
            M_BADTYPE, M_BLOCK };

typedef struct world {
    manual_clock clock;
    fake_transport fake;
    srvocsp_engine *eng;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    enum mode mode;
    int64_t validity;
    bool released;
    const tp_cert *leaf;
    int64_t down_from, down_until; /* an outage window on the clock */
    /* events */
    int n_updated, n_revoked, n_unknown, n_failed;
    srvocsp_error last_err;
    char last_reason[512];
} world;

static void handler(void *arg, const char *url, fake_reply *out)
{
    world *w = arg;
    tp_resp_opts o;
    int64_t now = atomic_load(&w->clock.now);
    enum mode m;

    pthread_mutex_lock(&w->mu);
    m = w->mode;
    if (m == M_BLOCK) {
        while (!w->released)
            pthread_cond_wait(&w->cv, &w->mu);
        m = M_GOOD;
    }
    pthread_mutex_unlock(&w->mu);
    if (strstr(url, "127.0.0.1:1/") != NULL) { /* the dead first URL */
        out->error = SRVOCSP_E_TRANSPORT;
        return;
    }
    if (now >= w->down_from && now < w->down_until) {
        out->error = SRVOCSP_E_TRANSPORT;
        return;
    }
    tp_resp_opts_init(&o, w->leaf, &pki.ca, now);
    o.next_update = now + w->validity;
    switch (m) {
    case M_DOWN:
        out->error = SRVOCSP_E_TRANSPORT;
        return;
    case M_HTTP500:
        out->status = 500;
        return;
    case M_BADTYPE:
        out->content_type = "text/html";
        break;
    case M_GARBAGE:
        out->body = malloc(5);
        memcpy(out->body, "hello", 5);
        out->len = 5;
        return;
    case M_REVOKED:
        o.status = V_OCSP_CERTSTATUS_REVOKED;
        break;
    case M_UNKNOWN:
        o.status = V_OCSP_CERTSTATUS_UNKNOWN;
        break;
    case M_OLD:
        o.this_update = T;
        o.next_update = now + w->validity;
        break;
    case M_NONEXT:
        o.next_update = 0;
        break;
    default:
        break;
    }
    out->body = tp_response(&o, &out->len);
}

static void on_event(srvocsp_handle *h, const srvocsp_event *ev, void *arg)
{
    world *w = arg;

    pthread_mutex_lock(&w->mu);
    switch (ev->type) {
    case SRVOCSP_EVENT_UPDATED: w->n_updated++; break;
    case SRVOCSP_EVENT_REVOKED: w->n_revoked++; break;
    case SRVOCSP_EVENT_UNKNOWN: w->n_unknown++; break;
    default:
        w->n_failed++;
        w->last_err = ev->error;
        snprintf(w->last_reason, sizeof(w->last_reason), "%s", ev->reason);
        break;
    }
    pthread_mutex_unlock(&w->mu);
}

static world *world_new_seeded(unsigned jitter, uint64_t seed)
{
    world *w = calloc(1, sizeof(*w));

    manual_clock_init(&w->clock, T);
    fake_init(&w->fake, &w->clock, handler, w);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->validity = DAY;
    w->leaf = &pki.good;
    w->eng = fake_engine_new(&w->clock, &w->fake, (int)jitter, seed);
    assert_non_null(w->eng);
    return w;
}

static world *world_new(unsigned jitter)
{
    return world_new_seeded(jitter, 42);
}

static void world_free(world *w)
{
    srvocsp_engine_free(w->eng);
    fake_destroy(&w->fake);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
}

static void set_mode(world *w, enum mode m)
{
    pthread_mutex_lock(&w->mu);
    w->mode = m;
    pthread_mutex_unlock(&w->mu);
}

static srvocsp_handle *open_on(world *w, const tp_cert *leaf, unsigned flags)
{
    srvocsp_params p;
    srvocsp_handle *h;

    srvocsp_params_init(&p);
    p.engine = w->eng;
    p.flags = flags;
    p.update_cb = on_event;
    p.update_arg = w;
    p.url_timeout_ms = 2000;
    h = fake_open(leaf->cert, pki.ca.cert, &p);
    return h;
}

/* Moves the clock and lets the engine act on it. */
static void step_to(world *w, int64_t t)
{
    manual_clock_set(&w->clock, t);
    assert_int_equal(srvocsp_engine_settle(w->eng, 5000), SRVOCSP_OK);
}

static int64_t held_this_update(srvocsp_handle *h)
{
    srvocsp_response *r = srvocsp_get1_response(h);
    int64_t t = srvocsp_response_this_update(r);

    srvocsp_response_free(r);
    return t;
}

static int setup(void **s)
{
    T = (int64_t)time(NULL);
    return tp_pki_make(&pki, "http://127.0.0.1:8080/", "http://127.0.0.1:1/", T) ? 0 : -1;
}

static int teardown(void **s)
{
    tp_pki_free(&pki);
    return 0;
}

static void test_sync_open_serves_at_once(void **s)
{
    world *w = world_new(20);
    srvocsp_handle *h = open_on(w, &pki.good, 0);
    srvocsp_response *r;

    assert_non_null(h);
    r = srvocsp_get1_response(h); /* no waiting: the open did the retrieval */
    assert_non_null(r);
    assert_int_equal(srvocsp_response_status(r), SRVOCSP_STATUS_GOOD);
    assert_int_equal(srvocsp_response_this_update(r), T);
    assert_int_equal(fake_requests(&w->fake), 1);
    assert_int_equal(srvocsp_engine_settle(w->eng, 5000), SRVOCSP_OK); /* callbacks ran */
    assert_int_equal(w->n_updated, 1);
    /* A context outlives its handle. */
    srvocsp_close(h);
    assert_int_equal(srvocsp_response_next_update(r), T + DAY);
    srvocsp_response_free(r);
    world_free(w);
}

static void test_async_open_and_sync_timeout(void **s)
{
    world *w = world_new(20);
    srvocsp_handle *h, *h2;
    srvocsp_response *r;
    struct timespec a, b;

    set_mode(w, M_BLOCK);
    h = open_on(w, &pki.good, SRVOCSP_OPEN_ASYNC);
    assert_non_null(h);
    assert_null(srvocsp_get1_response(h));
    assert_int_equal(srvocsp_last_error(), SRVOCSP_E_OFFLINE);

    /* A second, synchronous open of the same certificate waits for the
     * shared retrieval, bounded by its timeout, and still gets a handle. */
    clock_gettime(CLOCK_MONOTONIC, &a);
    {
        srvocsp_params p;
        STACK_OF(X509) *chain = sk_X509_new_null();

        sk_X509_push(chain, pki.ca.cert);
        srvocsp_params_init(&p);
        p.engine = w->eng;
        p.url_timeout_ms = 300;
        h2 = srvocsp_open(pki.good.cert, chain, &p);
        sk_X509_free(chain);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    assert_non_null(h2);
    assert_true((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000 >= 250);
    assert_null(srvocsp_get1_response(h2));

    pthread_mutex_lock(&w->mu);
    w->released = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    assert_int_equal(srvocsp_engine_settle(w->eng, 5000), SRVOCSP_OK);
    r = srvocsp_get1_response(h);
    assert_non_null(r);
    srvocsp_response_free(r);
    assert_int_equal(fake_requests(&w->fake), 1); /* one fetch for both */
    srvocsp_close(h);
    srvocsp_close(h2);
    world_free(w);
}

static void test_refresh_at_halfway(void **s)
{
    world *w = world_new(0);
    srvocsp_handle *h = open_on(w, &pki.good, 0);

    assert_int_equal(srvocsp_handle_next_attempt(h), T + DAY / 2);
    step_to(w, T + DAY / 2 - 1);
    assert_int_equal(fake_requests(&w->fake), 1);
    step_to(w, T + DAY / 2);
    assert_int_equal(fake_requests(&w->fake), 2);
    assert_int_equal(held_this_update(h), T + DAY / 2);
    assert_int_equal(srvocsp_handle_next_attempt(h), T + DAY);
    srvocsp_close(h);
    world_free(w);
}

static void test_success_jitter_only_earlier(void **s)
{
    /* With jitter, a refresh comes up to 10 % of the wait earlier (so that
     * processes sharing a store spread out), never later than halfway. */
    int64_t first = 0;
    int earlier = 0, distinct = 0;

    for (int i = 0; i < 20; i++) {
        world *w = world_new_seeded(20, 1000 + (uint64_t)i); /* 20 processes, 20 seeds */
        srvocsp_handle *h = open_on(w, &pki.good, 0);
        int64_t at = srvocsp_handle_next_attempt(h);

        assert_true(at <= T + DAY / 2);
        assert_true(at >= T + DAY / 2 - DAY / 20);
        earlier += at < T + DAY / 2;
        if (i == 0)
            first = at;
        distinct += at != first;
        srvocsp_close(h);
        world_free(w);
    }
    /* The jitter is really there: most are earlier, and they differ. */
    assert_true(earlier >= 15);
    assert_true(distinct >= 10);
}

static void test_outage_backoff_and_min_validity(void **s)
{
    world *w = world_new(0); /* exact schedule */
    srvocsp_handle *h = open_on(w, &pki.good, 0);
    static const int64_t want[] = {60, 120, 240, 480, 960, 1920, 3600, 3600};
    int64_t now = T + DAY / 2, next;
    int fetches = 1, i;
    srvocsp_response *r;

    set_mode(w, M_DOWN);
    step_to(w, now); /* the refresh fails */
    assert_int_equal(fake_requests(&w->fake), ++fetches);
    for (i = 0; i < 8; i++) {
        next = srvocsp_handle_next_attempt(h);
        assert_int_equal(next - now, want[i]);
        now = next;
        step_to(w, now);
        assert_int_equal(fake_requests(&w->fake), ++fetches);
    }
    assert_int_equal(w->last_err, SRVOCSP_E_TRANSPORT);
    assert_true(strstr(w->last_reason, "http://127.0.0.1:8080/") != NULL);
    /* Hourly until the last chance: one minute before the response drops
     * below MinValidity (nextUpdate - 600 - 60). */
    while ((next = srvocsp_handle_next_attempt(h)) < T + DAY - 660) {
        assert_int_equal(next - now, 3600);
        now = next;
        step_to(w, now);
    }
    assert_int_equal(next, T + DAY - 660);
    step_to(w, next);
    /* Served while nextUpdate - now >= MinValidity, not one second more. */
    manual_clock_set(&w->clock, T + DAY - 600);
    r = srvocsp_get1_response(h);
    assert_non_null(r);
    srvocsp_response_free(r);
    manual_clock_set(&w->clock, T + DAY - 599);
    assert_null(srvocsp_get1_response(h));
    assert_int_equal(srvocsp_last_error(), SRVOCSP_E_STALE);

    /* Recovery: the next retry is served at once. */
    set_mode(w, M_GOOD);
    now = srvocsp_handle_next_attempt(h);
    step_to(w, now);
    r = srvocsp_get1_response(h);
    assert_non_null(r);
    assert_int_equal(srvocsp_response_this_update(r), now);
    srvocsp_response_free(r);
    srvocsp_close(h);
    world_free(w);
}

/* The documented schedule, restated: backoff, capped by the last try one
 * minute before the held response drops below MinValidity, and the
 * Windows wait past nextUpdate when a retry would land just before it. */
static int64_t expected_retry(int64_t now, unsigned failures, int64_t next_update)
{
    int64_t b = 60, t, deadline = next_update - 600, last = deadline - 60;
    int64_t cap = now <= deadline ? 3600 : 600; /* 10 min once nothing can be served */

    for (unsigned i = 1; i < failures && b < 3600; i++)
        b *= 2;
    t = now + (b < cap ? b : cap);
    if (deadline - now >= 0) {
        if (last <= now)
            last = now + (deadline - now) / 2;
        if (t > last && last > now)
            t = last;
    }
    if (t < next_update && t > next_update - 120)
        t = next_update + 60;
    return t;
}

static void test_long_outages(void **s)
{
    static const int64_t outages[] = {3600, DAY, 4 * DAY, 9 * DAY};
    const int64_t validity = 2 * DAY;

    for (size_t k = 0; k < sizeof(outages) / sizeof(outages[0]); k++) {
        world *w = world_new(0);
        srvocsp_handle *h;
        int64_t next_update = T + validity, now, next, recovered = 0;
        unsigned failures = 0;
        int attempts = 0;
        srvocsp_response *r;

        w->validity = validity;
        h = open_on(w, &pki.good, 0);
        w->down_from = T + validity / 2; /* from the first refresh */
        w->down_until = w->down_from + outages[k];
        now = srvocsp_handle_next_attempt(h);
        assert_int_equal(now, w->down_from);
        for (;;) {
            bool servable_before = now <= next_update - 600;

            /* Just before the attempt: served exactly while valid enough. */
            manual_clock_set(&w->clock, now);
            r = srvocsp_get1_response(h);
            if (!recovered)
                assert_true((r != NULL) == servable_before);
            srvocsp_response_free(r);
            step_to(w, now);
            attempts++;
            if (now >= w->down_until) {
                /* Recovered: the first success is served at once. */
                r = srvocsp_get1_response(h);
                assert_non_null(r);
                assert_int_equal(srvocsp_response_this_update(r), now);
                srvocsp_response_free(r);
                recovered = now;
                break;
            }
            failures++;
            next = srvocsp_handle_next_attempt(h);
            assert_int_equal(next, expected_retry(now, failures, next_update));
            /* Crossing the MinValidity edge between two retries. */
            if (now < next_update - 600 && next > next_update - 600) {
                manual_clock_set(&w->clock, next_update - 600);
                r = srvocsp_get1_response(h);
                assert_non_null(r);
                srvocsp_response_free(r);
                manual_clock_set(&w->clock, next_update - 599);
                assert_null(srvocsp_get1_response(h));
                assert_int_equal(srvocsp_last_error(), SRVOCSP_E_STALE);
            }
            now = next;
        }
        print_message("  outage %7lld s: %d attempts, served again %lld s after recovery\n",
                      (long long)outages[k], attempts, (long long)(recovered - w->down_until));
        assert_true(recovered - w->down_until <= 3600); /* the backoff cap */
        assert_int_equal(fake_requests(&w->fake), attempts + 1);
        srvocsp_close(h);
        world_free(w);
    }
}

static void test_backoff_jitter_bounds(void **s)
{
    world *w = world_new(20);
    srvocsp_handle *h = open_on(w, &pki.good, 0);
    int64_t now = T + DAY / 2, next, base;

    int off_base = 0;

    set_mode(w, M_DOWN);
    step_to(w, now);
    for (unsigned i = 1; i <= 6; i++) {
        next = srvocsp_handle_next_attempt(h);
        base = 60LL << (i - 1);
        assert_true(next - now >= base - base / 5 && next - now <= base + base / 5);
        off_base += next - now != base;
        now = next;
        step_to(w, now);
    }
    /* Jittered, not the bare doubling (which all processes would share). */
    assert_true(off_base >= 4);
    srvocsp_close(h);
    world_free(w);
}

static void test_rollback_refused(void **s)
{
    world *w = world_new(0);
    srvocsp_handle *h = open_on(w, &pki.good, 0);

    step_to(w, T + DAY / 2); /* held: thisUpdate T + 12 h */
    assert_int_equal(held_this_update(h), T + DAY / 2);
    set_mode(w, M_OLD); /* responder (or attacker) replays thisUpdate T */
    step_to(w, T + DAY / 2 + DAY / 4 + 1);
    step_to(w, srvocsp_handle_next_attempt(h));
    assert_int_equal(held_this_update(h), T + DAY / 2);
    assert_int_equal(w->last_err, SRVOCSP_E_ROLLBACK);
    srvocsp_close(h);
    world_free(w);
}

static void test_bad_answers_keep_previous(void **s)
{
    static const struct {
        enum mode m;
        srvocsp_error e;
    } bad[] = {{M_GARBAGE, SRVOCSP_E_PARSE},
               {M_HTTP500, SRVOCSP_E_HTTP_STATUS},
               {M_BADTYPE, SRVOCSP_E_CONTENT_TYPE},
               {M_DOWN, SRVOCSP_E_TRANSPORT}};
    world *w = world_new(20);
    srvocsp_handle *h = open_on(w, &pki.good, 0);
    int64_t now = T + DAY / 2;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        set_mode(w, bad[i].m);
        step_to(w, now);
        assert_int_equal(w->last_err, bad[i].e);
        assert_int_equal(held_this_update(h), T);
        now = srvocsp_handle_next_attempt(h);
    }
    {
        char why[512];
        assert_int_equal(srvocsp_handle_last_failure(h, why, sizeof(why)), SRVOCSP_E_TRANSPORT);
        assert_true(strlen(why) > 0);
    }
    srvocsp_close(h);
    world_free(w);
}

static void test_no_next_update_max_age(void **s)
{
    world *w = world_new(0);
    srvocsp_handle *h;
    srvocsp_response *r;

    set_mode(w, M_NONEXT);
    h = open_on(w, &pki.good, 0);
    r = srvocsp_get1_response(h);
    assert_non_null(r);
    assert_int_equal(srvocsp_response_next_update(r), 0);
    assert_int_equal(srvocsp_response_expires(r), T + 3600);
    srvocsp_response_free(r);
    assert_int_equal(srvocsp_handle_next_attempt(h), T + 900);
    /* The responder goes away: served until max age - MinValidity. */
    set_mode(w, M_DOWN);
    step_to(w, T + 900);
    manual_clock_set(&w->clock, T + 3000);
    r = srvocsp_get1_response(h);
    assert_non_null(r);
    srvocsp_response_free(r);
    manual_clock_set(&w->clock, T + 3001);
    assert_null(srvocsp_get1_response(h));
    assert_int_equal(srvocsp_last_error(), SRVOCSP_E_STALE);
    srvocsp_close(h);
    world_free(w);
}

static void test_shared_certificate_one_fetch(void **s)
{
    world *w = world_new(20);
    srvocsp_handle *a = open_on(w, &pki.good, 0);
    srvocsp_handle *b = open_on(w, &pki.good, 0);
    srvocsp_handle *c = srvocsp_handle_up_ref(b);
    srvocsp_response *ra = srvocsp_get1_response(a), *rb = srvocsp_get1_response(b);
    srvocsp_engine_stats st;

    assert_ptr_equal(ra, rb);
    assert_int_equal(fake_requests(&w->fake), 1);
    srvocsp_engine_get_stats(w->eng, &st);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.handles_open, 2);
    srvocsp_close(a);
    step_to(w, T + DAY / 2);
    assert_int_equal(fake_requests(&w->fake), 2); /* b still refreshes */
    srvocsp_close(b);
    srvocsp_close(c);
    srvocsp_engine_get_stats(w->eng, &st);
    assert_int_equal(st.entries, 0);
    step_to(w, T + DAY);
    assert_int_equal(fake_requests(&w->fake), 2); /* nothing after the last close */
    srvocsp_response_free(ra);
    srvocsp_response_free(rb);
    world_free(w);
}

static void test_unknown_and_revoked(void **s)
{
    world *w = world_new(20);
    srvocsp_handle *h;
    srvocsp_response *r;

    set_mode(w, M_UNKNOWN);
    h = open_on(w, &pki.good, 0);
    assert_null(srvocsp_get1_response(h));
    assert_int_equal(srvocsp_last_error(), SRVOCSP_E_STATUS_UNKNOWN);
    assert_int_equal(srvocsp_engine_settle(w->eng, 5000), SRVOCSP_OK);
    assert_int_equal(w->n_unknown, 1);
    set_mode(w, M_REVOKED);
    step_to(w, srvocsp_handle_next_attempt(h));
    r = srvocsp_get1_response(h);
    assert_non_null(r); /* revoked is stapled */
    assert_int_equal(srvocsp_response_status(r), SRVOCSP_STATUS_REVOKED);
    assert_int_equal(w->n_revoked, 1);
    srvocsp_response_free(r);
    srvocsp_close(h);
    world_free(w);
}

static void test_dead_first_url(void **s)
{
    world *w = world_new(20);
    srvocsp_handle *h;
    srvocsp_response *r;

    w->leaf = &pki.twourls;
    h = open_on(w, &pki.twourls, 0);
    r = srvocsp_get1_response(h);
    assert_non_null(r);
    assert_int_equal(fake_requests(&w->fake), 2);
    assert_int_equal(srvocsp_engine_settle(w->eng, 5000), SRVOCSP_OK);
    assert_int_equal(w->n_failed, 0); /* one attempt, which succeeded */
    assert_int_equal(w->n_updated, 1);
    srvocsp_response_free(r);
    srvocsp_close(h);
    world_free(w);
}

static void test_bad_arguments(void **s)
{
    world *w = world_new(20);
    srvocsp_params p;
    STACK_OF(X509) *chain = sk_X509_new_null();

    srvocsp_params_init(&p);
    p.engine = w->eng;
    assert_null(srvocsp_open(NULL, chain, &p));
    assert_int_equal(srvocsp_last_error(), SRVOCSP_E_INVALID_ARG);
    assert_null(srvocsp_open(pki.good.cert, NULL, &p));
    assert_int_equal(srvocsp_last_error(), SRVOCSP_E_INVALID_ARG);
    assert_null(srvocsp_open(pki.good.cert, chain, &p)); /* empty chain */
    assert_int_equal(srvocsp_last_error(), SRVOCSP_E_NO_ISSUER);
    sk_X509_push(chain, pki.ca.cert);
    assert_null(srvocsp_open(pki.noaia.cert, chain, &p));
    assert_int_equal(srvocsp_last_error(), SRVOCSP_E_NO_OCSP_URL);
    p.flags = 0x80;
    assert_null(srvocsp_open(pki.good.cert, chain, &p));
    assert_int_equal(srvocsp_last_error(), SRVOCSP_E_INVALID_ARG);
    p.flags = 0;
    p.struct_size = 8;
    assert_null(srvocsp_open(pki.good.cert, chain, &p));
    assert_int_equal(srvocsp_last_error(), SRVOCSP_E_INVALID_ARG);
    assert_null(srvocsp_get1_response(NULL));
    assert_int_equal(srvocsp_last_error(), SRVOCSP_E_INVALID_ARG);
    assert_null(srvocsp_open_pem("/nonexistent.pem", NULL, NULL));
    assert_int_equal(srvocsp_last_error(), SRVOCSP_E_CERT);
    srvocsp_close(NULL);
    srvocsp_response_free(NULL);
    sk_X509_free(chain);
    assert_int_equal(fake_requests(&w->fake), 0);
    world_free(w);
}

/* Calls from an update callback either work or fail at once: a
 * synchronous open returns without waiting for the engine thread it runs
 * on, settle and free are refused with E_INVALID_ARG and change nothing. */
typedef struct from_cb {
    world *w;
    int calls;
    double open_ms;
    srvocsp_handle *opened;
    srvocsp_error settle_err, free_err;
} from_cb;

static void calling_cb(srvocsp_handle *h, const srvocsp_event *ev, void *arg)
{
    from_cb *f = arg;
    srvocsp_params p;
    double t0;

    (void)h;
    if (ev->type != SRVOCSP_EVENT_UPDATED || f->calls++ > 0)
        return;
    f->settle_err = srvocsp_engine_settle(f->w->eng, 5000);
    srvocsp_engine_free(f->w->eng); /* refused: the engine must live on */
    f->free_err = srvocsp_last_error();
    srvocsp_params_init(&p);
    p.engine = f->w->eng;
    p.url_timeout_ms = 5000; /* a real wait here would take this long */
    t0 = tr_now_ms();
    f->opened = fake_open(pki.good_rsa.cert, pki.ca.cert, &p);
    f->open_ms = tr_now_ms() - t0;
}

static void test_calls_from_a_callback(void **s)
{
    world *w = world_new(0);
    from_cb f = {.w = w};
    srvocsp_params p;
    srvocsp_handle *h;

    srvocsp_params_init(&p);
    p.engine = w->eng;
    p.update_cb = calling_cb;
    p.update_arg = &f;
    p.url_timeout_ms = 2000;
    h = fake_open(pki.good.cert, pki.ca.cert, &p);
    assert_non_null(h);
    assert_int_equal(srvocsp_engine_settle(w->eng, 10000), SRVOCSP_OK);
    assert_int_equal(f.calls, 1);
    assert_int_equal(f.settle_err, SRVOCSP_E_INVALID_ARG);
    assert_int_equal(f.free_err, SRVOCSP_E_INVALID_ARG);
    assert_non_null(f.opened);
    assert_true(f.open_ms < 1000);
    /* The engine lives on and serves; the handle opened from the callback
     * had its retrieval in the background (this responder signs only for
     * the first certificate: asked, refused as another's). */
    assert_int_equal(srvocsp_engine_settle(w->eng, 10000), SRVOCSP_OK);
    assert_int_equal(srvocsp_handle_last_failure(f.opened, NULL, 0), SRVOCSP_E_NO_MATCH);
    {
        srvocsp_response *r = srvocsp_get1_response(h);

        assert_non_null(r);
        srvocsp_response_free(r);
    }
    srvocsp_close(f.opened);
    srvocsp_close(h);
    world_free(w);
}

/* A closed handle leaves its certificate at once, even while a callback
 * queued for it still runs: an open right after the close starts a fresh
 * entry with its own settings instead of joining the old one (a READ
 * handle of the Windows layer once joined a WRITE one's entry this way
 * and never looked at its directory). */
typedef struct slow_cb {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int updated;
} slow_cb;

static void slow_on_update(srvocsp_handle *h, const srvocsp_event *ev, void *arg)
{
    slow_cb *c = arg;

    (void)h;
    if (ev->type != SRVOCSP_EVENT_UPDATED)
        return;
    pthread_mutex_lock(&c->mu);
    c->updated++;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    tr_sleep_ms(300); /* the opener closes and reopens meanwhile */
}

static void test_close_leaves_at_once(void **s)
{
    world *w = world_new(0);
    slow_cb c = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    srvocsp_params p;
    srvocsp_handle *a, *b;
    char last[2048];

    srvocsp_params_init(&p);
    p.engine = w->eng;
    p.update_cb = slow_on_update;
    p.update_arg = &c;
    p.flags = SRVOCSP_OPEN_ASYNC;
    a = fake_open(pki.good.cert, pki.ca.cert, &p);
    assert_non_null(a);
    pthread_mutex_lock(&c.mu);
    while (c.updated == 0)
        pthread_cond_wait(&c.cv, &c.mu);
    pthread_mutex_unlock(&c.mu);
    srvocsp_close(a); /* the callback is still sleeping */
    srvocsp_params_init(&p);
    p.engine = w->eng;
    p.responder_url = "http://127.0.0.1:9/second";
    p.url_timeout_ms = 2000;
    b = fake_open(pki.good.cert, pki.ca.cert, &p);
    assert_non_null(b);
    pthread_mutex_lock(&w->fake.mu);
    snprintf(last, sizeof(last), "%s", w->fake.last_url);
    pthread_mutex_unlock(&w->fake.mu);
    /* Its own entry: it asked its own responder. */
    assert_non_null(strstr(last, "127.0.0.1:9/second"));
    assert_int_equal(fake_requests(&w->fake), 2);
    srvocsp_close(b);
    assert_int_equal(srvocsp_engine_settle(w->eng, 10000), SRVOCSP_OK);
    world_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sync_open_serves_at_once),
        cmocka_unit_test(test_async_open_and_sync_timeout),
        cmocka_unit_test(test_refresh_at_halfway),
        cmocka_unit_test(test_success_jitter_only_earlier),
        cmocka_unit_test(test_outage_backoff_and_min_validity),
        cmocka_unit_test(test_backoff_jitter_bounds),
        cmocka_unit_test(test_calls_from_a_callback),
        cmocka_unit_test(test_close_leaves_at_once),
        cmocka_unit_test(test_long_outages),
        cmocka_unit_test(test_rollback_refused),
        cmocka_unit_test(test_bad_answers_keep_previous),
        cmocka_unit_test(test_no_next_update_max_age),
        cmocka_unit_test(test_shared_certificate_one_fetch),
        cmocka_unit_test(test_unknown_and_revoked),
        cmocka_unit_test(test_dead_first_url),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
