/*
 * One case per row of the per-source policy table (srvocsp__sources,
 * engine/outcome.c): the network, a directory pickup, a read-only
 * directory's look, a fleet read, a fleet announcement, an offer and the
 * stored response at open.  Each source is fed, against a held good
 * response H, (a) a newer good response, (b) a rollback (older
 * thisUpdate) and (c) a lagging replica's revocation (thisUpdate 1 s
 * older than H, produced later), and the test checks what the table's row
 * promises: what is served after, whether the directory was written
 * (save), whether the shared store was written with it (share), whether
 * it counted as an attempt, whether the callbacks heard of it (events) or
 * a refusal was reported (report), whether it counted as a store pickup,
 * and that its bytes were verified exactly once where they entered.
 *
 * A manual engine (no thread, stepped here) on an injected clock, the
 * fake transport, a real directory and an in-memory shared store
 * registered for the scheme t19://.  Verification is counted by wrapping
 * srvocsp__verify at link time (-Wl,--wrap).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/lifecycle.h"
#include "fake.h"
#include "testpki.h"

static tp_pki pki;
static int64_t T0;
static unsigned char *held_der;
static size_t held_len;

enum { C_NEWER, C_ROLLBACK, C_LAGGING, C_N };
static unsigned char *cand_der[C_N];
static size_t cand_len[C_N];
static const char *const CASE_NAME[C_N] = {"newer good", "rollback", "lagging revocation"};

/* ---------------------------------------------------------------------
 * Verification, counted for one byte string
 * ------------------------------------------------------------------- */

srvocsp_error __real_srvocsp__verify(const unsigned char *der, size_t len, X509 *leaf,
                                     X509 *issuer, const srvocsp__policy *pol,
                                     srvocsp_response **out, char *why, size_t whylen);

static const unsigned char *watch_der;
static size_t watch_len;
static int watch_verified;

static bool is_watched(const unsigned char *der, size_t len)
{
    return watch_der != NULL && len == watch_len && memcmp(der, watch_der, len) == 0;
}

srvocsp_error __wrap_srvocsp__verify(const unsigned char *der, size_t len, X509 *leaf,
                                     X509 *issuer, const srvocsp__policy *pol,
                                     srvocsp_response **out, char *why, size_t whylen);
srvocsp_error __wrap_srvocsp__verify(const unsigned char *der, size_t len, X509 *leaf,
                                     X509 *issuer, const srvocsp__policy *pol,
                                     srvocsp_response **out, char *why, size_t whylen)
{
    if (is_watched(der, len))
        watch_verified++;
    return __real_srvocsp__verify(der, len, leaf, issuer, pol, out, why, whylen);
}

/* ---------------------------------------------------------------------
 * The shared store: one value, compare-and-set on its SHA-1 as the Redis
 * store does; the test decides when an announcement is heard
 * ------------------------------------------------------------------- */

typedef struct tstore {
    srvocsp__store base;
    unsigned char *der;
    size_t len;
    char name[SRVOCSP__STORE_NAME_LEN + 1];
    unsigned char *ann;          /* an announcement waiting to be drained */
    size_t ann_len;
    int saves;                   /* save_if calls that stored */
    int saves_watched;           /* ... of the watched bytes */
} tstore;

static tstore g_st;

static void sha1_hex(const unsigned char *d, size_t n, char out[41])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int l = 0, i;

    EVP_Digest(d, n, md, &l, EVP_sha1(), NULL);
    for (i = 0; i < l && i < 20; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void st_put(const unsigned char *der, size_t len)
{
    free(g_st.der);
    g_st.der = NULL;
    g_st.len = 0;
    if (der != NULL) {
        g_st.der = malloc(len);
        memcpy(g_st.der, der, len);
        g_st.len = len;
    }
}

static srvocsp_error st_load(srvocsp__store *s, const char *name, size_t cap, unsigned char **der,
                             size_t *len, uint64_t *version, char *why, size_t whylen)
{
    (void)s, (void)cap, (void)why, (void)whylen;
    snprintf(g_st.name, sizeof(g_st.name), "%s", name);
    *der = NULL;
    *len = 0;
    *version = 0;
    if (g_st.der != NULL) {
        *der = malloc(g_st.len);
        memcpy(*der, g_st.der, g_st.len);
        *len = g_st.len;
        *version = 1;
    }
    return SRVOCSP_OK;
}

static srvocsp__lease st_lease_acquire(srvocsp__store *s, const char *name, uint32_t ttl_ms,
                                       char token[SRVOCSP__LEASE_TOKEN_LEN + 1],
                                       int64_t *ttl_left_ms, char *why, size_t whylen)
{
    (void)s, (void)name, (void)ttl_ms, (void)why, (void)whylen;
    memset(token, 'a', SRVOCSP__LEASE_TOKEN_LEN);
    token[SRVOCSP__LEASE_TOKEN_LEN] = '\0';
    *ttl_left_ms = -1;
    return SRVOCSP__LEASE_HELD;
}

static void st_lease_release(srvocsp__store *s, const char *name, const char *token)
{
    (void)s, (void)name, (void)token;
}

static srvocsp_error st_save_if(srvocsp__store *s, const char *name, const unsigned char *der,
                                size_t len, int64_t this_update, int64_t expires, bool revoked,
                                const char *expect, bool *stored, char *why, size_t whylen)
{
    char sha[41] = "";

    (void)s, (void)this_update, (void)expires, (void)revoked, (void)why, (void)whylen;
    snprintf(g_st.name, sizeof(g_st.name), "%s", name);
    if (g_st.der != NULL)
        sha1_hex(g_st.der, g_st.len, sha);
    *stored = strcmp(sha, expect != NULL ? expect : "") == 0;
    if (!*stored)
        return SRVOCSP_OK;
    st_put(der, len);
    g_st.saves++;
    if (is_watched(der, len))
        g_st.saves_watched++;
    return SRVOCSP_OK;
}

static int st_notify_fd(srvocsp__store *s)
{
    (void)s;
    return -1; /* the manual engine drains at every step */
}

static size_t st_notify_drain(srvocsp__store *s, srvocsp__notify_fn fn, void *arg)
{
    unsigned char *der = g_st.ann;

    (void)s;
    if (der == NULL)
        return 0;
    g_st.ann = NULL;
    fn(arg, g_st.name, der, g_st.ann_len);
    free(der);
    return 1;
}

static void st_discard(srvocsp__store *s, const char *name, const unsigned char *der, size_t len)
{
    (void)s, (void)name;
    if (g_st.der != NULL && der != NULL && len == g_st.len && memcmp(der, g_st.der, len) == 0)
        st_put(NULL, 0);
}

static uint64_t st_epoch(srvocsp__store *s)
{
    (void)s;
    return 1;
}

static void st_free(srvocsp__store *s)
{
    (void)s; /* static: every open hands out the same one */
}

static const srvocsp__store_ops st_ops = {
    .load = st_load,
    .free = st_free,
    .lease_acquire = st_lease_acquire,
    .lease_release = st_lease_release,
    .save_if = st_save_if,
    .notify_fd = st_notify_fd,
    .notify_drain = st_notify_drain,
    .discard = st_discard,
    .epoch = st_epoch,
};

static srvocsp__store *st_open(const char *url, const char *prefix, void *arg)
{
    (void)url, (void)prefix, (void)arg;
    return &g_st.base;
}

/* ---------------------------------------------------------------------
 * One process: a manual engine, its directory, one handle
 * ------------------------------------------------------------------- */

typedef struct world {
    manual_clock clk;
    fake_transport ft;
    srvocsp_engine *e;
    srvocsp_handle *h;
    char dir[64];
    srvocsp__store *other;       /* another process's view of the directory */
    char name[SRVOCSP__STORE_NAME_LEN + 1];
    const unsigned char *answer; /* what the responder says */
    size_t answer_len;
    int news, failed;            /* UPDATED or REVOKED callbacks; FAILED ones */
    uint64_t stored_version;     /* the directory's, after |stored| was saved */
} world;

static void answer(void *arg, const char *url, fake_reply *out)
{
    world *w = arg;

    (void)url;
    out->body = malloc(w->answer_len);
    memcpy(out->body, w->answer, w->answer_len);
    out->len = w->answer_len;
}

static void on_update(srvocsp_handle *h, const srvocsp_event *ev, void *arg)
{
    world *w = arg;

    (void)h;
    if (ev->type == SRVOCSP_EVENT_UPDATED || ev->type == SRVOCSP_EVENT_REVOKED)
        w->news++;
    else if (ev->type == SRVOCSP_EVENT_FAILED)
        w->failed++;
    if (getenv("TEST_SOURCES_TRACE") != NULL)
        print_message("    event %d: %s\n", (int)ev->type, ev->reason ? ev->reason : "");
}

/* |fleet|: with the shared store; |read_only|: the directory belongs to
 * another process.  |stored|: what that directory holds before the open. */
static void world_open(world *w, bool fleet, bool read_only, const unsigned char *stored,
                       size_t stored_len)
{
    srvocsp_engine_config cfg;
    srvocsp_params p;
    int err_no = 0;
    char why[256];

    memset(w, 0, sizeof(*w));
    memset(&g_st, 0, sizeof(g_st));
    g_st.base.ops = &st_ops;
    manual_clock_init(&w->clk, T0);
    fake_init(&w->ft, &w->clk, answer, w);
    w->answer = held_der;
    w->answer_len = held_len;
    snprintf(w->dir, sizeof(w->dir), "/tmp/srvocsp-sources-XXXXXX");
    assert_non_null(mkdtemp(w->dir));
    assert_non_null(w->other = srvocsp__store_dir_new(w->dir));
    assert_true(srvocsp__store_name(pki.good.cert, pki.ca.cert, w->name));
    if (stored != NULL)
        assert_int_equal(w->other->ops->save(w->other, w->name, stored, stored_len, &err_no, why,
                                             sizeof(why)),
                         SRVOCSP_OK);
    w->stored_version = w->other->ops->version(w->other, w->name);

    srvocsp_engine_config_init(&cfg);
    cfg.clock = &w->clk.clock;
    cfg.transport = &w->ft.transport;
    cfg.jitter_percent = 0;
    assert_non_null(w->e = srvocsp__engine_new_manual(&cfg));
    srvocsp_params_init(&p);
    p.engine = w->e;
    p.flags = SRVOCSP_OPEN_ASYNC; /* a manual engine's opens never wait */
    p.directory = w->dir;
    p.directory_mode = read_only ? SRVOCSP_DIR_READ_ONLY : SRVOCSP_DIR_READ_WRITE;
    p.store_url = fleet ? "t19://fleet" : NULL;
    p.update_cb = on_update;
    p.update_arg = w;
    assert_non_null(w->h = fake_open(pki.good.cert, pki.ca.cert, &p));
    srvocsp__engine_step(w->e);
}

static void world_close(world *w)
{
    DIR *d;
    struct dirent *de;
    char path[512];

    srvocsp_close(w->h);
    srvocsp_engine_free(w->e);
    fake_destroy(&w->ft);
    w->other->ops->free(w->other);
    if ((d = opendir(w->dir)) != NULL) {
        while ((de = readdir(d)) != NULL)
            if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
                snprintf(path, sizeof(path), "%s/%s", w->dir, de->d_name);
                unlink(path);
            }
        closedir(d);
    }
    rmdir(w->dir);
    st_put(NULL, 0);
    free(g_st.ann);
    g_st.ann = NULL;
}

static bool serves(world *w, const unsigned char *der, size_t len)
{
    srvocsp_response *r = srvocsp_get1_response(w->h);
    const unsigned char *got;
    size_t got_len = 0;
    bool same;

    if (r == NULL)
        return der == NULL;
    got = srvocsp_response_der(r, &got_len);
    same = der != NULL && got_len == len && memcmp(got, der, len) == 0;
    srvocsp_response_free(r);
    return same;
}

/* ---------------------------------------------------------------------
 * The rows
 * ------------------------------------------------------------------- */

/* What each row promises, written out here (not read from the table) so
 * that a change to the table shows up as a change of behaviour. */
typedef struct row {
    srvocsp__source src;
    const char *name;
    bool fleet;                  /* the process has the shared store */
    bool read_only;
    bool save, share, attempt, events, report, pickup;
    /* A copy the verdict refuses is refused where it is read (fleet.c):
     * reported there (a note, then a FAILED event) and ours is saved over
     * it. */
    bool refused_at_read;
} row;

static const row ROWS[] = {
    {SRVOCSP__SRC_NETWORK, "network", true, false, true, true, true, true, true, false, false},
    {SRVOCSP__SRC_DIRECTORY, "directory pickup", true, false, false, false, true, true, false,
     true, false},
    {SRVOCSP__SRC_READ_ONLY, "read-only directory", false, true, false, false, true, true, true,
     true, false},
    {SRVOCSP__SRC_FLEET, "fleet read", true, false, true, false, true, true, false, true, true},
    {SRVOCSP__SRC_ANNOUNCE, "fleet announcement", true, false, true, false, true, true, false,
     true, true},
    {SRVOCSP__SRC_OFFER, "offer", true, false, true, false, false, true, false, false, false},
};

/* Brings candidate |k| to |w| through |r|'s source. */
static void arrive(world *w, const row *r, int k)
{
    const unsigned char *der = cand_der[k];
    size_t len = cand_len[k];
    int err_no = 0;
    char why[256];

    switch (r->src) {
    case SRVOCSP__SRC_NETWORK:
        w->answer = der;
        w->answer_len = len;
        assert_int_equal(srvocsp_handle_refresh_now(w->h), SRVOCSP_OK);
        break;
    case SRVOCSP__SRC_DIRECTORY:
    case SRVOCSP__SRC_READ_ONLY:
        /* Another process saved it; the entry looks before its next
         * fetch (the responder would only repeat H). */
        assert_int_equal(w->other->ops->save(w->other, w->name, der, len, &err_no, why,
                                             sizeof(why)),
                         SRVOCSP_OK);
        assert_int_equal(srvocsp_handle_refresh_now(w->h), SRVOCSP_OK);
        break;
    case SRVOCSP__SRC_FLEET:
        st_put(der, len); /* another machine saved it, unheard */
        assert_int_equal(srvocsp_handle_refresh_now(w->h), SRVOCSP_OK);
        break;
    case SRVOCSP__SRC_ANNOUNCE:
        st_put(der, len);
        g_st.ann = malloc(len);
        memcpy(g_st.ann, der, len);
        g_st.ann_len = len;
        break;
    case SRVOCSP__SRC_OFFER:
        /* A manual engine has no thread to wait for: the offer is judged
         * at the next step, and what the caller is told here is not under
         * test. */
        (void)srvocsp_handle_offer_der(w->h, der, len);
        break;
    default:
        fail();
    }
}

static void run_row(const row *r, int k)
{
    const srvocsp__source_policy *pol = &srvocsp__sources[r->src];
    bool taken = k != C_ROLLBACK;
    srvocsp_engine_stats s0, s1;
    uint64_t attempts0, dirv0;
    int news0, failed0;
    world w;

    print_message("  %s, %s\n", r->name, CASE_NAME[k]);
    /* The table says what this row expects. */
    assert_int_equal(pol->save, r->save);
    assert_int_equal(pol->share, r->share);
    assert_int_equal(pol->attempt, r->attempt);
    assert_int_equal(pol->events, r->events);
    assert_int_equal(pol->report, r->report);
    assert_int_equal(pol->pickup, r->pickup);

    /* H is held: fetched, or (read-only) loaded from the directory. */
    world_open(&w, r->fleet, r->read_only, r->read_only ? held_der : NULL, held_len);
    assert_true(serves(&w, held_der, held_len));
    if (r->fleet)
        assert_true(g_st.der != NULL && g_st.len == held_len); /* H was shared */

    watch_der = cand_der[k];
    watch_len = cand_len[k];
    watch_verified = 0;
    g_st.saves_watched = 0;
    srvocsp_engine_get_stats(w.e, &s0);
    news0 = w.news;
    failed0 = w.failed;
    attempts0 = w.h->entry->attempts_done;
    arrive(&w, r, k);
    dirv0 = w.other->ops->version(w.other, w.name); /* after another process's save */
    srvocsp__engine_step(w.e);
    srvocsp__engine_step(w.e); /* notes made in the last turn are reported */
    srvocsp_engine_get_stats(w.e, &s1);

    if (taken)
        assert_true(serves(&w, cand_der[k], cand_len[k]));
    else
        assert_true(serves(&w, held_der, held_len));
    /* save: the directory is written with what was taken. */
    assert_int_equal(w.other->ops->version(w.other, w.name) != dirv0, r->save && taken);
    /* share: the fleet is given what was taken. */
    assert_int_equal(g_st.saves_watched, r->share && taken ? 1 : 0);
    /* attempt: a refused announcement is dropped where it enters (fleet.c)
     * and never stands in for an attempt. */
    assert_int_equal(w.h->entry->attempts_done - attempts0,
                     r->attempt && (taken || r->src != SRVOCSP__SRC_ANNOUNCE) ? 1 : 0);
    /* events: the callbacks hear of what is taken; report: a refusal is
     * a FAILED event. */
    assert_int_equal(w.news - news0, r->events && taken ? 1 : 0);
    assert_int_equal(w.failed - failed0, (r->report || r->refused_at_read) && !taken ? 1 : 0);
    if (r->refused_at_read && !taken) /* the fleet's copy was left behind: ours again */
        assert_true(g_st.der != NULL && g_st.len == held_len &&
                    memcmp(g_st.der, held_der, held_len) == 0);
    assert_int_equal(s1.store_pickups - s0.store_pickups, r->pickup && taken ? 1 : 0);
    assert_int_equal(s1.responses_accepted - s0.responses_accepted, taken ? 1 : 0);
    /* Verified once, where its bytes entered. */
    assert_int_equal(watch_verified, 1);
    watch_der = NULL;
    world_close(&w);
}

static void test_rows(void **state)
{
    const row *r = *state;
    int k;

    for (k = 0; k < C_N; k++)
        run_row(r, k);
}

/* SRC_OPEN: nothing is held yet, so each candidate is served from the
 * directory as it is; nothing is saved or shared, no attempt is counted,
 * no callback is called (the opener plans the entry). */
static void test_open(void **state)
{
    const srvocsp__source_policy *pol = &srvocsp__sources[SRVOCSP__SRC_OPEN];
    int k;

    (void)state;
    assert_false(pol->save || pol->share || pol->attempt || pol->events || pol->pickup);
    assert_true(pol->report);
    for (k = 0; k < C_N; k++) {
        srvocsp_engine_stats s;
        world w;

        print_message("  open, %s\n", CASE_NAME[k]);
        watch_der = cand_der[k];
        watch_len = cand_len[k];
        watch_verified = 0;
        world_open(&w, false, false, cand_der[k], cand_len[k]);
        srvocsp_engine_get_stats(w.e, &s);
        assert_true(serves(&w, cand_der[k], cand_len[k]));
        assert_int_equal(w.other->ops->version(w.other, w.name), w.stored_version);
        assert_int_equal(w.h->entry->attempts_done, 0);
        assert_int_equal(fake_requests(&w.ft), 0);
        assert_int_equal(w.news, 0);
        assert_int_equal(w.failed, 0);
        assert_int_equal(s.store_pickups, 0);
        assert_int_equal(watch_verified, 1);
        watch_der = NULL;
        world_close(&w);
    }
}

/* SRC_OPEN refused (expired in the directory): not served, a note, which
 * the engine thread reports as a FAILED event; no other callback. */
static void test_open_refused_is_a_note(void **state)
{
    unsigned char *old;
    size_t len;
    world w;

    (void)state;
    old = tp_response_at(&pki.good, &pki.ca, V_OCSP_CERTSTATUS_GOOD, T0 - 9 * 86400,
                         T0 - 9 * 86400, T0 - 2 * 86400, &len);
    assert_non_null(old);
    watch_der = old;
    watch_len = len;
    watch_verified = 0;
    world_open(&w, false, false, old, len);
    /* The fetch at open got H from the responder; the note came first. */
    assert_true(serves(&w, held_der, held_len));
    assert_int_equal(w.failed, 1);
    assert_int_equal(w.news, 1); /* H's, from the network */
    assert_int_equal(watch_verified, 1);
    watch_der = NULL;
    world_close(&w);
    free(old);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_prestate(test_rows, (void *)&ROWS[0]),
        cmocka_unit_test_prestate(test_rows, (void *)&ROWS[1]),
        cmocka_unit_test_prestate(test_rows, (void *)&ROWS[2]),
        cmocka_unit_test_prestate(test_rows, (void *)&ROWS[3]),
        cmocka_unit_test_prestate(test_rows, (void *)&ROWS[4]),
        cmocka_unit_test_prestate(test_rows, (void *)&ROWS[5]),
        cmocka_unit_test(test_open),
        cmocka_unit_test(test_open_refused_is_a_note),
    };
    int64_t h_tu, k;
    int rc;

    T0 = (int64_t)time(NULL);
    if (!tp_pki_make(&pki, "http://127.0.0.1:8080/", "http://127.0.0.1:1/", T0))
        return 1;
    srvocsp__store_register("t19", st_open, NULL);
    h_tu = T0 - 3600;
    held_der = tp_response_at(&pki.good, &pki.ca, V_OCSP_CERTSTATUS_GOOD, h_tu, h_tu,
                              h_tu + 7 * 86400, &held_len);
    cand_der[C_NEWER] = tp_response_at(&pki.good, &pki.ca, V_OCSP_CERTSTATUS_GOOD, h_tu + 1800,
                                       h_tu + 1800, h_tu + 1800 + 7 * 86400, &cand_len[C_NEWER]);
    cand_der[C_ROLLBACK] = tp_response_at(&pki.good, &pki.ca, V_OCSP_CERTSTATUS_GOOD,
                                          h_tu - 3600, h_tu - 3600, h_tu - 3600 + 7 * 86400,
                                          &cand_len[C_ROLLBACK]);
    /* thisUpdate 1 s before H's, produced after it. */
    cand_der[C_LAGGING] = tp_response_at(&pki.good, &pki.ca, V_OCSP_CERTSTATUS_REVOKED, h_tu - 1,
                                         h_tu + 600, h_tu - 1 + 7 * 86400, &cand_len[C_LAGGING]);
    for (k = 0; k < C_N; k++)
        if (cand_der[k] == NULL)
            return 1;
    if (held_der == NULL)
        return 1;
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    srvocsp__store_register("t19", NULL, NULL);
    for (k = 0; k < C_N; k++)
        free(cand_der[k]);
    free(held_der);
    tp_pki_free(&pki);
    return rc;
}
