/*
 * What broke in the field, replayed with an injected clock that has a
 * monotonic side: wall-clock jumps both ways, short windows, responses
 * shorter than the minimum validity, unknown for a new certificate, a
 * trust horizon, a CDN handing back the same response for hours, revoked
 * ties and lagging replicas, a newer response that cannot be served,
 * event order on a full disk, and responses offered from elsewhere.  Each
 * test asks whether a time-valid staple is ready, not only whether a call
 * returned OK.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <openssl/ocsp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fake.h"
#include "srvocsp.h"
#include "testpki.h"

#define DAY 86400
#define HOUR 3600

static tp_pki pki;
static int64_t T; /* start of simulated time */

typedef enum mode { M_GOOD, M_DOWN, M_UNKNOWN, M_REVOKED, M_CDN, M_FIXED } mode;

typedef struct world {
    manual_clock clock;
    fake_transport fake;
    srvocsp_engine *eng;
    pthread_mutex_t mu;
    mode mode;
    int64_t validity;          /* nextUpdate - thisUpdate of what is signed */
    int64_t this_update_shift; /* thisUpdate = now + shift */
    int64_t produced_shift;    /* producedAt = now + shift (0: thisUpdate) */
    int64_t revoked_at;        /* 0: an hour before thisUpdate */
    /* M_CDN: a new response is published every |period| from T (as other
     * clients keep the CDN warm); every answer in between is that one.
     * |resign|: the same thisUpdate, signed again at each answer. */
    int64_t period;
    bool resign;
    unsigned char *cdn_der;
    size_t cdn_len;
    int64_t cdn_k;
    /* M_FIXED: exactly these bytes. */
    unsigned char *fixed;
    size_t fixed_len;
    /* events, in order */
    int n_updated, n_revoked, n_unknown, n_failed, n_store_failed;
    srvocsp_event_type order[64];
    int n_order;
    srvocsp_error last_err;
    char last_reason[512];
} world;

static void sign(world *w, int64_t now, int status, unsigned char **der, size_t *len)
{
    tp_resp_opts o;

    tp_resp_opts_init(&o, &pki.good, &pki.ca, now);
    o.this_update = now + w->this_update_shift;
    o.next_update = o.this_update + w->validity;
    if (w->produced_shift)
        o.produced_at = now + w->produced_shift;
    o.status = status;
    if (status == V_OCSP_CERTSTATUS_REVOKED && w->revoked_at)
        o.revoked_at = w->revoked_at;
    *der = tp_response(&o, len);
}

static void handler(void *arg, const char *url, fake_reply *out)
{
    world *w = arg;
    int64_t now = atomic_load(&w->clock.now);

    (void)url;
    pthread_mutex_lock(&w->mu);
    switch (w->mode) {
    case M_DOWN:
        out->error = SRVOCSP_E_TRANSPORT;
        break;
    case M_GOOD:
        sign(w, now, V_OCSP_CERTSTATUS_GOOD, &out->body, &out->len);
        break;
    case M_UNKNOWN:
        sign(w, now, V_OCSP_CERTSTATUS_UNKNOWN, &out->body, &out->len);
        break;
    case M_REVOKED:
        sign(w, now, V_OCSP_CERTSTATUS_REVOKED, &out->body, &out->len);
        break;
    case M_FIXED:
        out->body = malloc(w->fixed_len);
        memcpy(out->body, w->fixed, w->fixed_len);
        out->len = w->fixed_len;
        break;
    case M_CDN: {
        int64_t k = (now - T) / w->period, pub = T + k * w->period;
        tp_resp_opts o;

        if (w->cdn_der == NULL || k != w->cdn_k || w->resign) {
            free(w->cdn_der);
            tp_resp_opts_init(&o, &pki.good, &pki.ca, pub);
            o.next_update = pub + w->validity;
            o.produced_at = w->resign ? now : pub;
            w->cdn_der = tp_response(&o, &w->cdn_len);
            w->cdn_k = k;
        }
        out->body = malloc(w->cdn_len);
        memcpy(out->body, w->cdn_der, w->cdn_len);
        out->len = w->cdn_len;
        break;
    }
    }
    pthread_mutex_unlock(&w->mu);
}

static void on_event(srvocsp_handle *h, const srvocsp_event *ev, void *arg)
{
    world *w = arg;

    (void)h;
    pthread_mutex_lock(&w->mu);
    if (w->n_order < 64)
        w->order[w->n_order++] = ev->type;
    switch (ev->type) {
    case SRVOCSP_EVENT_UPDATED: w->n_updated++; break;
    case SRVOCSP_EVENT_REVOKED: w->n_revoked++; break;
    case SRVOCSP_EVENT_UNKNOWN: w->n_unknown++; break;
    case SRVOCSP_EVENT_STORE_FAILED: w->n_store_failed++; break;
    case SRVOCSP_EVENT_FAILED:
        w->n_failed++;
        w->last_err = ev->error;
        snprintf(w->last_reason, sizeof(w->last_reason), "%s", ev->reason);
        break;
    }
    pthread_mutex_unlock(&w->mu);
}

static world *world_new(void)
{
    world *w = calloc(1, sizeof(*w));

    manual_clock_init(&w->clock, T);
    manual_clock_use_monotonic(&w->clock);
    fake_init(&w->fake, &w->clock, handler, w);
    pthread_mutex_init(&w->mu, NULL);
    w->validity = DAY;
    w->eng = fake_engine_new(&w->clock, &w->fake, 0, 42);
    assert_non_null(w->eng);
    return w;
}

static void world_free(world *w)
{
    srvocsp_engine_free(w->eng);
    fake_destroy(&w->fake);
    pthread_mutex_destroy(&w->mu);
    free(w->cdn_der);
    free(w->fixed);
    free(w);
}

static void set_mode(world *w, mode m)
{
    pthread_mutex_lock(&w->mu);
    w->mode = m;
    pthread_mutex_unlock(&w->mu);
}

static srvocsp_handle *open_in(world *w, const char *dir, bool adaptive)
{
    srvocsp_params p;
    srvocsp_handle *h;

    srvocsp_params_init(&p);
    p.engine = w->eng;
    p.update_cb = on_event;
    p.update_arg = w;
    p.directory = dir;
    p.adaptive_min_validity = adaptive;
    h = fake_open(pki.good.cert, pki.ca.cert, &p);
    assert_non_null(h);
    assert_int_equal(srvocsp_engine_settle(w->eng, 5000), SRVOCSP_OK);
    return h;
}

/* Time passes (both clocks) and the engine does what falls due. */
static void pass(world *w, int64_t secs)
{
    manual_clock_advance(&w->clock, secs);
    srvocsp_engine_kick(w->eng);
    assert_int_equal(srvocsp_engine_settle(w->eng, 5000), SRVOCSP_OK);
}

/* The wall clock is stepped; no time passes. */
static void jump(world *w, int64_t secs)
{
    manual_clock_jump(&w->clock, secs);
    srvocsp_engine_kick(w->eng);
    assert_int_equal(srvocsp_engine_settle(w->eng, 5000), SRVOCSP_OK);
}

/* Asks now (srvocsp_handle_refresh_now) and lets the engine finish. */
static void refresh(world *w, srvocsp_handle *h)
{
    assert_int_equal(srvocsp_handle_refresh_now(h), SRVOCSP_OK);
    srvocsp_engine_kick(w->eng);
    assert_int_equal(srvocsp_engine_settle(w->eng, 5000), SRVOCSP_OK);
}

static void remove_tree(const char *dir, bool contents_only)
{
    char cmd[600];

    snprintf(cmd, sizeof(cmd), "rm -rf %s%s", dir, contents_only ? "/*" : "");
    assert_int_equal(system(cmd), 0);
}

static int64_t now_of(world *w)
{
    return atomic_load(&w->clock.now);
}

/* thisUpdate of what get serves now, or -1 with |*err| set. */
static int64_t served(srvocsp_handle *h, srvocsp_error *err)
{
    srvocsp_response *r = srvocsp_get1_response(h);
    int64_t t;

    if (r == NULL) {
        if (err)
            *err = srvocsp_last_error();
        return -1;
    }
    t = srvocsp_response_this_update(r);
    srvocsp_response_free(r);
    return t;
}

static srvocsp_engine_stats stats(world *w)
{
    srvocsp_engine_stats st;

    srvocsp_engine_get_stats(w->eng, &st);
    return st;
}

/* ---- 1. wall-clock jumps ---------------------------------------------- */

/* Forward 2 days, then back.  After the forward jump the held response
 * has expired: a fetch at once.  After the jump back, the response fetched
 * "in the future" is withheld (strict clients refuse it), fetched again at
 * once, and the older answer replaces it (no rollback lock-in); the next
 * attempt comes from that response's own times, not 2.5 days away. */
static void test_jump_forward_then_back(void **s)
{
    world *w = world_new();
    srvocsp_handle *h = open_in(w, NULL, false);
    srvocsp_error err = SRVOCSP_OK;
    int64_t next;

    assert_int_equal(served(h, NULL), T);
    jump(w, 2 * DAY);
    assert_int_equal(stats(w).clock_jumps, 1);
    assert_int_equal(fake_requests(&w->fake), 2);
    assert_int_equal(served(h, NULL), T + 2 * DAY);

    jump(w, -2 * DAY);
    assert_int_equal(stats(w).clock_jumps, 2);
    assert_int_equal(fake_requests(&w->fake), 3);
    assert_int_equal(served(h, &err), T);
    assert_int_equal(w->n_failed, 0);
    next = srvocsp_handle_next_attempt(h);
    print_message("  after the jump back: serving thisUpdate now+%lld, next attempt in %lld s\n",
                  (long long)(T - now_of(w)), (long long)(next - now_of(w)));
    assert_true(next <= now_of(w) + DAY / 2);
    srvocsp_close(h);
    world_free(w);
}

/* Jump back with the responder down: the future response is withheld
 * (E_NOT_YET_VALID, not stapled), the engine tries at once and keeps
 * trying at the backoff; refresh_now is not refused as a rollback once
 * the responder is back. */
static void test_jump_back_withholds_future(void **s)
{
    world *w = world_new();
    srvocsp_handle *h = open_in(w, NULL, false);
    srvocsp_error err = SRVOCSP_OK;
    int before;

    set_mode(w, M_DOWN);
    before = fake_requests(&w->fake);
    jump(w, -12 * HOUR);
    assert_int_equal(served(h, &err), -1);
    assert_int_equal(err, SRVOCSP_E_NOT_YET_VALID);
    assert_int_equal(fake_requests(&w->fake), before + 1); /* asked at once */
    assert_true(srvocsp_handle_next_attempt(h) <= now_of(w) + 72);

    set_mode(w, M_GOOD);
    refresh(w, h);
    {
        char why[512];

        srvocsp_handle_last_failure(h, why, sizeof(why));
        print_message("  after refresh_now: %s\n", why);
    }
    assert_int_equal(served(h, NULL), now_of(w));
    assert_int_equal(srvocsp_handle_last_failure(h, NULL, 0), SRVOCSP_OK);
    srvocsp_close(h);
    world_free(w);
}

/* Small steps of a drifting clock are time passing, not jumps. */
static void test_small_steps_are_not_jumps(void **s)
{
    world *w = world_new();
    srvocsp_handle *h = open_in(w, NULL, false);

    for (int i = 0; i < 10; i++) {
        jump(w, 2);
        pass(w, 30);
    }
    assert_int_equal(stats(w).clock_jumps, 0);
    srvocsp_close(h);
    world_free(w);
}

/* Held revoked, then the wall clock goes back 6 h: the held revoked
 * response is now from the future (withheld); the responder's fresh
 * revoked answer, older by the clock, replaces it at once. */
static void test_jump_back_keeps_revoked_stapled(void **s)
{
    world *w = world_new();
    srvocsp_handle *h;
    srvocsp_response *r;

    set_mode(w, M_REVOKED);
    w->revoked_at = T - 10 * DAY;
    h = open_in(w, NULL, false);
    assert_int_equal(w->n_revoked, 1);
    jump(w, -6 * HOUR);
    r = srvocsp_get1_response(h);
    assert_non_null(r);
    assert_int_equal(srvocsp_response_status(r), SRVOCSP_STATUS_REVOKED);
    assert_int_equal(srvocsp_response_this_update(r), T - 6 * HOUR);
    srvocsp_response_free(r);
    assert_int_equal(w->n_revoked, 2);
    assert_int_equal(w->n_failed, 0);
    srvocsp_close(h);
    world_free(w);
}

/* Booted with the wall clock 6 h behind: every answer is "from the
 * future" and the backoff grows.  When NTP steps the clock right, the
 * failures counted against the wrong clock are forgotten: asked at once. */
static void test_jump_forgets_failures_of_a_wrong_clock(void **s)
{
    world *w = world_new();
    srvocsp_params p;
    srvocsp_handle *h;

    w->this_update_shift = 6 * HOUR;
    w->produced_shift = 6 * HOUR;
    srvocsp_params_init(&p);
    p.engine = w->eng;
    p.update_cb = on_event;
    p.update_arg = w;
    p.flags = SRVOCSP_OPEN_ASYNC;
    h = fake_open(pki.good.cert, pki.ca.cert, &p);
    assert_int_equal(srvocsp_engine_settle(w->eng, 5000), SRVOCSP_OK);
    for (int i = 0; i < 12; i++)
        pass(w, 600);
    assert_true(w->n_failed >= 5);
    assert_int_equal(w->last_err, SRVOCSP_E_NOT_YET_VALID);
    pthread_mutex_lock(&w->mu);
    w->this_update_shift = 0;
    w->produced_shift = 0;
    pthread_mutex_unlock(&w->mu);
    jump(w, 6 * HOUR);
    assert_int_equal(served(h, NULL), now_of(w));
    srvocsp_close(h);
    world_free(w);
}

/* ---- 2. refresh before the last servable moment ----------------------- */

static double served_share(int64_t validity, bool adaptive, int64_t horizon, int64_t step,
                           int *requests)
{
    world *w = world_new();
    srvocsp_handle *h;
    int64_t t, ok = 0, n = 0;

    w->validity = validity;
    h = open_in(w, NULL, adaptive);
    for (t = 0; t < horizon; t += step) {
        pass(w, step);
        n++;
        ok += served(h, NULL) >= 0;
    }
    *requests = fake_requests(&w->fake);
    srvocsp_close(h);
    world_free(w);
    return (double)ok / (double)n;
}

/* A responder that always answers keeps the staple served >= 95 % of the
 * time for every window longer than MinValidity + 60 s. */
static void test_short_windows_stay_served(void **s)
{
    static const int64_t windows[] = {661, 700, 900, 1200, 1800, 3600, 4 * HOUR, DAY};

    for (size_t i = 0; i < sizeof(windows) / sizeof(windows[0]); i++) {
        int64_t v = windows[i], step = v <= 2 * HOUR ? 1 : 10;
        int req;
        double share = served_share(v, false, 4 * v < 2 * HOUR ? 2 * HOUR : 4 * v, step, &req);

        print_message("  window %6lld s: served %5.1f %% of the time, %d requests\n",
                      (long long)v, share * 100.0, req);
        assert_true(share >= 0.95);
    }
}

/* ---- 3. a response that can never be served --------------------------- */

static void test_short_validity_is_a_failure(void **s)
{
    static const int64_t want[] = {60, 120, 240, 480};
    world *w = world_new();
    srvocsp_handle *h;
    srvocsp_error err = SRVOCSP_OK;
    char why[512];

    w->validity = 120;
    h = open_in(w, NULL, false);
    assert_int_equal(served(h, &err), -1);
    assert_int_equal(err, SRVOCSP_E_OFFLINE);
    assert_int_equal(srvocsp_handle_last_failure(h, why, sizeof(why)), SRVOCSP_E_SHORT_VALIDITY);
    print_message("  %s\n", why);
    assert_non_null(strstr(why, "less than the minimum validity"));
    assert_int_equal(w->n_updated, 0);
    assert_int_equal(w->last_err, SRVOCSP_E_SHORT_VALIDITY);
    /* Retried at the failure backoff, not in a loop. */
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        int64_t next = srvocsp_handle_next_attempt(h);

        assert_int_equal(next - now_of(w), want[i]);
        pass(w, next - now_of(w));
    }
    assert_int_equal(w->n_updated, 0);
    assert_int_equal(w->n_failed, 5);
    srvocsp_close(h);
    world_free(w);
}

/* ---- 4. unknown is retried soon --------------------------------------- */

static void test_unknown_retried_soon(void **s)
{
    char dir[] = "/tmp/srvocsp-field-XXXXXX";
    world *w = world_new();
    srvocsp_handle *h;

    assert_non_null(mkdtemp(dir));
    w->validity = 7 * DAY;
    set_mode(w, M_UNKNOWN);
    h = open_in(w, dir, false);
    assert_int_equal(w->n_unknown, 1);
    assert_int_equal(srvocsp_handle_last_failure(h, NULL, 0), SRVOCSP_E_STATUS_UNKNOWN);
    assert_int_equal(srvocsp_handle_next_attempt(h) - now_of(w), 60);
    pass(w, 60);
    assert_int_equal(srvocsp_handle_next_attempt(h) - now_of(w), 120);
    /* Known at last: served at once. */
    set_mode(w, M_GOOD);
    pass(w, 120);
    assert_int_equal(served(h, NULL), now_of(w));
    srvocsp_close(h);
    world_free(w);

    remove_tree(dir, true);
    /* Loaded from disk: an unknown is asked again within a minute too. */
    w = world_new();
    w->validity = 7 * DAY;
    set_mode(w, M_UNKNOWN);
    h = open_in(w, dir, false);
    srvocsp_close(h);
    world_free(w);
    w = world_new();
    set_mode(w, M_DOWN);
    {
        srvocsp_params p;

        srvocsp_params_init(&p);
        p.engine = w->eng;
        p.directory = dir;
        p.flags = SRVOCSP_OPEN_ASYNC;
        h = fake_open(pki.good.cert, pki.ca.cert, &p);
    }
    assert_int_equal(fake_requests(&w->fake), 0);
    print_message("  unknown loaded from disk: next attempt in %lld s\n",
                  (long long)(srvocsp_handle_next_attempt(h) - now_of(w)));
    assert_true(srvocsp_handle_next_attempt(h) - now_of(w) <= 60);
    srvocsp_close(h);
    world_free(w);
    remove_tree(dir, false);
}

/* ---- 5. the trust horizon --------------------------------------------- */

static void test_trust_horizon(void **s)
{
    world *w = world_new();
    srvocsp_handle *h;
    srvocsp_response *r;
    srvocsp_error err = SRVOCSP_OK;
    int64_t next;

    w->validity = (int64_t)3650 * DAY; /* nextUpdate ten years ahead */
    h = open_in(w, NULL, false);
    r = srvocsp_get1_response(h);
    assert_non_null(r);
    assert_int_equal(srvocsp_response_expires(r), T + 10 * DAY);
    srvocsp_response_free(r);
    next = srvocsp_handle_next_attempt(h);
    print_message("  nextUpdate in 10 years: expires after 10 days, next refresh in %.1f days\n",
                  (double)(next - T) / DAY);
    assert_true(next <= T + 5 * DAY);
    /* Never served past the horizon, whatever nextUpdate says. */
    set_mode(w, M_DOWN);
    pass(w, 10 * DAY - 600 - 1);
    assert_int_equal(served(h, NULL), T);
    pass(w, 2);
    assert_int_equal(served(h, &err), -1);
    assert_int_equal(err, SRVOCSP_E_STALE);
    srvocsp_close(h);
    world_free(w);

    /* thisUpdate 20 years ago, nextUpdate tomorrow: refused. */
    w = world_new();
    w->this_update_shift = -(int64_t)7300 * DAY;
    w->validity = 7300 * (int64_t)DAY + DAY;
    w->produced_shift = -1; /* producedAt now: within the certificate's validity */
    h = open_in(w, NULL, false);
    assert_int_equal(served(h, &err), -1);
    assert_int_equal(srvocsp_handle_last_failure(h, NULL, 0), SRVOCSP_E_EXPIRED);
    print_message("  %s\n", w->last_reason);
    assert_non_null(strstr(w->last_reason, "maximum lifetime"));
    srvocsp_close(h);
    world_free(w);
}

/* ---- 6. the same answer again ----------------------------------------- */

typedef struct cdn_figures {
    int requests, unchanged, failed, pickups;
    int64_t max_delay, delays[64];
} cdn_figures;

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return x < y ? -1 : x > y;
}

/* Two simulated days of 4 h responses behind a CDN that publishes a new one
 * every 2.5 h and hands back the cached one in between. */
static cdn_figures cdn_days(bool resign)
{
    world *w = world_new();
    srvocsp_handle *h;
    cdn_figures f;
    int64_t held, t;
    const int64_t step = 10;

    memset(&f, 0, sizeof(f));
    w->validity = 4 * HOUR;
    w->period = 9000;
    w->resign = resign;
    set_mode(w, M_CDN);
    h = open_in(w, NULL, false);
    held = served(h, NULL);
    for (t = 0; t < 2 * DAY; t += step) {
        int64_t now;

        pass(w, step);
        now = now_of(w);
        if (served(h, NULL) != held) {
            int64_t pub = T + (now - T) / w->period * w->period;

            held = served(h, NULL);
            assert_int_equal(held, pub);
            if (f.pickups < 64)
                f.delays[f.pickups] = now - pub;
            f.pickups++;
            if (now - pub > f.max_delay)
                f.max_delay = now - pub;
        }
        assert_true(served(h, NULL) >= 0); /* never without a staple */
    }
    f.requests = fake_requests(&w->fake);
    f.unchanged = (int)stats(w).unchanged;
    f.failed = w->n_failed;
    assert_int_equal(srvocsp_handle_last_failure(h, NULL, 0), SRVOCSP_OK);
    srvocsp_close(h);
    world_free(w);
    return f;
}

static void test_cdn_unchanged_is_not_a_failure(void **s)
{
    for (int resign = 0; resign <= 1; resign++) {
        cdn_figures f = cdn_days(resign);
        int n = f.pickups < 64 ? f.pickups : 64;

        qsort(f.delays, (size_t)n, sizeof(f.delays[0]), cmp64);
        print_message("  CDN (%s): %d requests in 2 days (%.1f per day), %d unchanged, %d failed; "
                      "%d new responses picked up, delay median %lld s, max %lld s\n",
                      resign ? "same thisUpdate re-signed" : "identical bytes", f.requests,
                      f.requests / 2.0, f.unchanged, f.failed, f.pickups,
                      (long long)f.delays[n / 2], (long long)f.max_delay);
        assert_int_equal(f.failed, 0);
        assert_true(f.unchanged > 0);
        assert_true(f.pickups >= 18);
        /* Deterministic (injected clock, no jitter): measured 250 s and
         * 134 requests; the bounds keep a little room, not the old 34 min. */
        assert_true(f.max_delay <= 300);
        assert_true(f.requests <= 140);
    }
}

/* ---- 7. revoked wins a tie; a lagging replica's news ------------------- */

static void test_revoked_wins(void **s)
{
    world *w = world_new();
    srvocsp_handle *h = open_in(w, NULL, false);
    srvocsp_response *r;

    /* Same thisUpdate as the held good one, now revoked. */
    set_mode(w, M_REVOKED);
    w->this_update_shift = 0;
    pass(w, 0);
    refresh(w, h);
    r = srvocsp_get1_response(h);
    assert_non_null(r);
    assert_int_equal(srvocsp_response_status(r), SRVOCSP_STATUS_REVOKED);
    assert_int_equal(srvocsp_response_this_update(r), T);
    srvocsp_response_free(r);
    assert_int_equal(w->n_revoked, 1);
    assert_int_equal(w->n_failed, 0);
    srvocsp_close(h);
    world_free(w);

    /* A lagging replica: revoked, thisUpdate older than the held good one,
     * but produced after it: fresher news, taken. */
    w = world_new();
    h = open_in(w, NULL, false);
    pass(w, HOUR);
    set_mode(w, M_REVOKED);
    w->this_update_shift = -2 * HOUR; /* older than the held T */
    w->produced_shift = -1;           /* produced now, after T */
    w->revoked_at = T - 3 * HOUR;
    refresh(w, h);
    r = srvocsp_get1_response(h);
    assert_non_null(r);
    assert_int_equal(srvocsp_response_status(r), SRVOCSP_STATUS_REVOKED);
    srvocsp_response_free(r);
    assert_int_equal(w->n_revoked, 1);

    /* The same replica's answer produced before the held good one: a
     * replay, refused. */
    srvocsp_close(h);
    world_free(w);
    w = world_new();
    h = open_in(w, NULL, false);
    pass(w, HOUR);
    set_mode(w, M_REVOKED);
    w->this_update_shift = -2 * HOUR;
    w->produced_shift = 0; /* producedAt = thisUpdate, before T */
    w->revoked_at = T - 3 * HOUR;
    refresh(w, h);
    r = srvocsp_get1_response(h);
    assert_non_null(r);
    assert_int_equal(srvocsp_response_status(r), SRVOCSP_STATUS_GOOD);
    srvocsp_response_free(r);
    assert_int_equal(w->last_err, SRVOCSP_E_ROLLBACK);
    print_message("  %s\n", w->last_reason);
    srvocsp_close(h);
    world_free(w);

    /* Held revoked; a good one with the same thisUpdate does not win. */
    w = world_new();
    set_mode(w, M_REVOKED);
    h = open_in(w, NULL, false);
    set_mode(w, M_GOOD);
    refresh(w, h);
    r = srvocsp_get1_response(h);
    assert_int_equal(srvocsp_response_status(r), SRVOCSP_STATUS_REVOKED);
    srvocsp_response_free(r);
    assert_int_equal(w->last_err, SRVOCSP_E_ROLLBACK);
    srvocsp_close(h);
    world_free(w);
}

/* ---- 16. a newer response that cannot be served ------------------------ */

static unsigned char *read_all(const char *dir, size_t *len)
{
    char cmd[700], path[600] = "";
    FILE *f;

    snprintf(cmd, sizeof(cmd), "ls %s/*.der", dir);
    f = popen(cmd, "r");
    if (f == NULL || fgets(path, sizeof(path), f) == NULL) {
        if (f)
            pclose(f);
        return NULL;
    }
    pclose(f);
    path[strcspn(path, "\n")] = '\0';
    return tp_read_file(path, len);
}

static void test_short_response_does_not_displace(void **s)
{
    char dir[] = "/tmp/srvocsp-field-XXXXXX";
    world *w = world_new();
    srvocsp_handle *h;
    srvocsp_error err = SRVOCSP_OK;
    unsigned char *before, *after;
    size_t bl = 0, al = 0;

    assert_non_null(mkdtemp(dir));
    w->validity = 7 * DAY;
    h = open_in(w, dir, false);
    before = read_all(dir, &bl);
    assert_non_null(before);
    w->validity = 300;
    pass(w, HOUR);
    refresh(w, h);
    assert_int_equal(served(h, NULL), T); /* the 7-day one stays */
    assert_int_equal(w->last_err, SRVOCSP_E_SHORT_VALIDITY);
    after = read_all(dir, &al);
    assert_int_equal(al, bl);
    assert_memory_equal(after, before, bl); /* and stays on disk */
    free(after);

    /* A newer revoked one always displaces it, servable or not. */
    set_mode(w, M_REVOKED);
    refresh(w, h);
    assert_int_equal(served(h, &err), -1);
    assert_int_equal(err, SRVOCSP_E_STALE);
    assert_int_equal(w->n_revoked, 1);
    free(before);
    srvocsp_close(h);
    world_free(w);
    remove_tree(dir, false);
}

/* 5-minute responses: never stapled with the fixed 600 s minimum; with the
 * adaptive minimum (a quarter of the window) nearly always. */
static void test_adaptive_min_validity(void **s)
{
    int req_fixed, req_adaptive;
    double fixed = served_share(300, false, 2 * HOUR, 1, &req_fixed);
    double adaptive = served_share(300, true, 2 * HOUR, 1, &req_adaptive);

    print_message("  5-minute responses: served %.1f %% with MinValidity 600 s (%d requests), "
                  "%.1f %% adaptive (%d requests)\n",
                  fixed * 100.0, req_fixed, adaptive * 100.0, req_adaptive);
    assert_true(fixed == 0.0);
    assert_true(adaptive >= 0.95);
}

/* ---- 11. events in the order they happen ------------------------------ */

static void test_events_in_order(void **s)
{
    char file[] = "/tmp/srvocsp-field-file-XXXXXX", dir[700];
    world *w = world_new();
    srvocsp_handle *h;
    int fd = mkstemp(file);

    assert_true(fd >= 0);
    close(fd);
    /* A directory below a regular file: every save fails (root too). */
    snprintf(dir, sizeof(dir), "%s/state", file);
    h = open_in(w, dir, false);
    pass(w, DAY / 2);
    /* First the note that the directory cannot be used, then each
     * response's UPDATED followed by its STORE_FAILED. */
    assert_int_equal(w->order[0], SRVOCSP_EVENT_FAILED);
    assert_int_equal(w->n_order, 5);
    for (int i = 1; i + 1 < w->n_order; i += 2) {
        assert_int_equal(w->order[i], SRVOCSP_EVENT_UPDATED);
        assert_int_equal(w->order[i + 1], SRVOCSP_EVENT_STORE_FAILED);
    }
    srvocsp_close(h);
    world_free(w);
    unlink(file);
}

/* ---- several URLs: a refusal moves on to the next one ------------------- */

/* The first AIA URL is a stale mirror that hands back the same response
 * forever; the second signs fresh ones.  The mirror's answers are
 * "unchanged" while the held response can be served; once they would
 * leave nothing to staple, the second URL is asked in the same attempt and
 * the staple never lapses. */
static unsigned char *mirror_der;
static size_t mirror_len;
static int second_url_asks;

static void two_url_handler(void *arg, const char *url, fake_reply *out)
{
    world *w = arg;
    int64_t now = atomic_load(&w->clock.now);
    tp_resp_opts o;

    tp_resp_opts_init(&o, &pki.twourls, &pki.ca, now);
    o.next_update = now + DAY;
    if (strstr(url, "127.0.0.1:1/") != NULL) { /* the first URL: the mirror */
        if (mirror_der == NULL)
            mirror_der = tp_response(&o, &mirror_len);
        out->body = malloc(mirror_len);
        memcpy(out->body, mirror_der, mirror_len);
        out->len = mirror_len;
        return;
    }
    second_url_asks++;
    out->body = tp_response(&o, &out->len);
}

static void test_refusal_tries_next_url(void **s)
{
    world *w = world_new();
    srvocsp_params p;
    srvocsp_handle *h;
    int lapses = 0;

    fake_destroy(&w->fake);
    srvocsp_engine_free(w->eng);
    fake_init(&w->fake, &w->clock, two_url_handler, w);
    w->eng = fake_engine_new(&w->clock, &w->fake, 0, 42);
    srvocsp_params_init(&p);
    p.engine = w->eng;
    p.update_cb = on_event;
    p.update_arg = w;
    h = fake_open(pki.twourls.cert, pki.ca.cert, &p);
    assert_non_null(h);
    assert_int_equal(srvocsp_engine_settle(w->eng, 5000), SRVOCSP_OK);
    for (int i = 0; i < 3 * 24 * 6; i++) {
        pass(w, 600);
        lapses += served(h, NULL) < 0;
    }
    print_message("  stale mirror first: %d unchanged, second URL asked %d times, %d lapses\n",
                  (int)stats(w).unchanged, second_url_asks, lapses);
    assert_int_equal(lapses, 0);
    assert_true(second_url_asks >= 2);
    srvocsp_close(h);
    world_free(w);
    free(mirror_der);
    mirror_der = NULL;
}

/* ---- offers ------------------------------------------------------------ */

static void test_offer(void **s)
{
    world *w = world_new();
    srvocsp_handle *h = open_in(w, NULL, false);
    unsigned char *der;
    size_t len;

    /* Older than the held one: a rollback, nothing changes. */
    sign(w, T - HOUR, V_OCSP_CERTSTATUS_GOOD, &der, &len);
    assert_int_equal(srvocsp_handle_offer_der(h, der, len), SRVOCSP_E_ROLLBACK);
    free(der);
    /* Garbage: the reason, and the held one is served. */
    assert_int_equal(srvocsp_handle_offer_der(h, (const unsigned char *)"junk", 4),
                     SRVOCSP_E_PARSE);
    assert_int_equal(served(h, NULL), T);
    assert_int_equal(srvocsp_handle_last_failure(h, NULL, 0), SRVOCSP_OK);
    /* Newer: taken, reported, and the schedule follows it. */
    pass(w, HOUR);
    sign(w, now_of(w), V_OCSP_CERTSTATUS_GOOD, &der, &len);
    assert_int_equal(srvocsp_handle_offer_der(h, der, len), SRVOCSP_OK);
    assert_int_equal(srvocsp_handle_offer_der(h, der, len), SRVOCSP_OK); /* the same again */
    free(der);
    srvocsp_engine_kick(w->eng);
    assert_int_equal(srvocsp_engine_settle(w->eng, 5000), SRVOCSP_OK);
    assert_int_equal(served(h, NULL), T + HOUR);
    assert_int_equal(w->n_updated, 2);
    assert_true(srvocsp_handle_next_attempt(h) >= T + HOUR + DAY / 4);
    srvocsp_close(h);
    world_free(w);
}

/* Offers from another thread while the engine fetches: every outcome goes
 * through the engine thread, so what is served, what is on disk and the
 * order of the events agree (the newest wins everywhere). */
typedef struct offerer {
    world *w;
    srvocsp_handle *h;
    unsigned char *der;
    size_t len;
} offerer;

static void *offer_main(void *arg)
{
    offerer *o = arg;

    srvocsp_handle_offer_der(o->h, o->der, o->len);
    return NULL;
}

static void test_offers_race_fetches(void **s)
{
    char dir[] = "/tmp/srvocsp-field-XXXXXX";
    world *w = world_new();
    srvocsp_handle *h;
    srvocsp_response *r;
    unsigned char *disk;
    size_t disk_len = 0, n;
    const unsigned char *der;

    assert_non_null(mkdtemp(dir));
    h = open_in(w, dir, false);
    for (int round = 1; round <= 20; round++) {
        offerer o = {w, h, NULL, 0};
        pthread_t t;

        pass(w, 60);
        /* An older response offered while a newer revoked one is fetched. */
        sign(w, now_of(w) - 30, V_OCSP_CERTSTATUS_GOOD, &o.der, &o.len);
        set_mode(w, round % 2 ? M_REVOKED : M_GOOD);
        pthread_create(&t, NULL, offer_main, &o);
        assert_int_equal(srvocsp_handle_refresh_now(h), SRVOCSP_OK);
        srvocsp_engine_kick(w->eng);
        pthread_join(t, NULL);
        assert_int_equal(srvocsp_engine_settle(w->eng, 5000), SRVOCSP_OK);
        free(o.der);
        r = srvocsp_get1_response(h);
        assert_non_null(r);
        assert_int_equal(srvocsp_response_this_update(r), now_of(w)); /* the fetched one */
        der = srvocsp_response_der(r, &n);
        disk = read_all(dir, &disk_len);
        assert_int_equal(disk_len, n);
        assert_memory_equal(disk, der, n); /* and the same on disk */
        free(disk);
        srvocsp_response_free(r);
    }
    srvocsp_close(h);
    world_free(w);
    remove_tree(dir, false);
}

static int setup(void **s)
{
    T = 1900000000;
    return tp_pki_make(&pki, "http://ocsp.test/", "http://127.0.0.1:1/", T) ? 0 : -1;
}

static int teardown(void **s)
{
    tp_pki_free(&pki);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jump_forward_then_back),
        cmocka_unit_test(test_jump_back_withholds_future),
        cmocka_unit_test(test_small_steps_are_not_jumps),
        cmocka_unit_test(test_jump_back_keeps_revoked_stapled),
        cmocka_unit_test(test_jump_forgets_failures_of_a_wrong_clock),
        cmocka_unit_test(test_refusal_tries_next_url),
        cmocka_unit_test(test_short_windows_stay_served),
        cmocka_unit_test(test_short_validity_is_a_failure),
        cmocka_unit_test(test_unknown_retried_soon),
        cmocka_unit_test(test_trust_horizon),
        cmocka_unit_test(test_cdn_unchanged_is_not_a_failure),
        cmocka_unit_test(test_revoked_wins),
        cmocka_unit_test(test_short_response_does_not_displace),
        cmocka_unit_test(test_adaptive_min_validity),
        cmocka_unit_test(test_events_in_order),
        cmocka_unit_test(test_offer),
        cmocka_unit_test(test_offers_race_fetches),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
