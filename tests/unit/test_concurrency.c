/*
 * Lock-free readers against a writer that swaps snapshots as fast as it
 * can, and against the engine while handles open and close.  Under ASan a
 * reader touching a freed snapshot is reported; under TSan a missing
 * ordering is; the content checks below catch a torn or recycled snapshot
 * in any build.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/cell.h"
#include "fake.h"
#include "testpki.h"

#define READERS 3
#define SNAP_LEN 64

static srvocsp__cell cell;
static atomic_bool stop;
static atomic_ulong bad_reads, good_reads;

/* Every byte of snapshot n is (n & 0xff) and this_update is n. */
static srvocsp_response *make_snap(int64_t n)
{
    unsigned char buf[SNAP_LEN];
    srvocsp_response *r;

    memset(buf, (int)(n & 0xff), sizeof(buf));
    r = srvocsp__response_new(buf, sizeof(buf));
    r->this_update = n;
    r->expires = INT64_MAX / 2;
    return r;
}

static void *cell_reader(void *arg)
{
    int64_t last = 0;

    while (!atomic_load(&stop)) {
        srvocsp_response *r = srvocsp__cell_acquire(&cell);
        size_t len, i;
        const unsigned char *d;
        bool ok = true;

        if (r == NULL)
            continue;
        d = srvocsp_response_der(r, &len);
        ok = len == SNAP_LEN && r->this_update >= last;
        for (i = 0; ok && i < len; i++)
            ok = d[i] == (unsigned char)(r->this_update & 0xff);
        last = r->this_update;
        atomic_fetch_add(ok ? &good_reads : &bad_reads, 1);
        srvocsp_response_free(r);
    }
    return NULL;
}

static void test_cell_swap_storm(void **s)
{
    pthread_t th[READERS];
    int i;
    int64_t n;
    struct timespec a, b;

    srvocsp__cell_init(&cell);
    srvocsp__cell_publish(&cell, make_snap(1));
    for (i = 0; i < READERS; i++)
        pthread_create(&th[i], NULL, cell_reader, NULL);
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (n = 2; n < 300000; n++) {
        srvocsp__cell_publish(&cell, make_snap(n));
        if ((n & 1023) == 0) {
            clock_gettime(CLOCK_MONOTONIC, &b);
            if (b.tv_sec - a.tv_sec > 8) /* bounded on slow sanitizer builds */
                break;
        }
    }
    atomic_store(&stop, true);
    for (i = 0; i < READERS; i++)
        pthread_join(th[i], NULL);
    print_message("  %ld swaps, %lu good reads, %lu bad reads\n", (long)n,
                  atomic_load(&good_reads), atomic_load(&bad_reads));
    assert_int_equal(atomic_load(&bad_reads), 0);
    assert_true(atomic_load(&good_reads) > 0);
    srvocsp__cell_publish(&cell, NULL);
}

/* ---- the whole engine ---- */

static tp_pki pki;
static manual_clock clk;
static fake_transport fake;
static srvocsp_engine *eng;
static atomic_bool stop2;

static fake_signer signer = {&pki, &pki.good, &clk, 3600};

static srvocsp_handle *open_good(unsigned flags, const tp_cert *leaf)
{
    srvocsp_params p;
    srvocsp_handle *h;

    srvocsp_params_init(&p);
    p.engine = eng;
    p.flags = flags;
    h = fake_open(leaf->cert, pki.ca.cert, &p);
    return h;
}

static void *engine_reader(void *arg)
{
    srvocsp_handle *h = arg;
    int64_t last = 0;

    while (!atomic_load(&stop2)) {
        srvocsp_response *r = srvocsp_get1_response(h);
        size_t len;
        const unsigned char *d;

        if (r == NULL)
            continue;
        d = srvocsp_response_der(r, &len);
        if (len < 100 || d[0] != 0x30 || r->this_update < last ||
            srvocsp_response_status(r) != SRVOCSP_STATUS_GOOD)
            atomic_fetch_add(&bad_reads, 1);
        else
            atomic_fetch_add(&good_reads, 1);
        last = r->this_update;
        srvocsp_response_free(r);
    }
    return NULL;
}

static void *opener(void *arg)
{
    const tp_cert *leaf = arg;

    while (!atomic_load(&stop2)) {
        srvocsp_handle *h = open_good(SRVOCSP_OPEN_ASYNC, leaf);
        srvocsp_response *r;

        assert_non_null(h);
        r = srvocsp_get1_response(h);
        srvocsp_response_free(r);
        srvocsp_close(h);
    }
    return NULL;
}

static void test_engine_swaps_with_open_close(void **s)
{
    pthread_t rd[READERS], op[2];
    srvocsp_handle *h;
    int64_t t0 = (int64_t)time(NULL), t;
    int i, swaps = 0;
    srvocsp_engine_stats st;

    assert_true(tp_pki_make(&pki, "http://127.0.0.1:8080/", "http://127.0.0.1:1/", t0));
    manual_clock_init(&clk, t0);
    fake_init(&fake, &clk, fake_sign_good, &signer);
    eng = fake_engine_new(&clk, &fake, -1, 0);
    h = open_good(0, &pki.good);
    {
        srvocsp_response *first = srvocsp_get1_response(h);

        assert_non_null(first);
        srvocsp_response_free(first);
    }
    atomic_store(&good_reads, 0);
    for (i = 0; i < READERS; i++)
        pthread_create(&rd[i], NULL, engine_reader, h);
    pthread_create(&op[0], NULL, opener, (void *)&pki.good);
    pthread_create(&op[1], NULL, opener, (void *)&pki.revoked);
    /* Each step crosses the refresh point (a quarter of the 1 h window);
     * bounded in count and in time (sanitizer builds are slower). */
    {
        struct timespec a, b;

        clock_gettime(CLOCK_MONOTONIC, &a);
        b = a;
    for (t = t0; swaps < 1500 && b.tv_sec - a.tv_sec < 10; swaps++) {
        clock_gettime(CLOCK_MONOTONIC, &b);
        t += 900;
        manual_clock_set(&clk, t);
        assert_int_equal(srvocsp_engine_settle(eng, 10000), SRVOCSP_OK);
    }
    }
    atomic_store(&stop2, true);
    for (i = 0; i < READERS; i++)
        pthread_join(rd[i], NULL);
    pthread_join(op[0], NULL);
    pthread_join(op[1], NULL);
    srvocsp_engine_get_stats(eng, &st);
    print_message("  %d clock steps, %llu responses accepted, %lu good reads, %lu bad reads\n",
                  swaps, (unsigned long long)st.responses_accepted, atomic_load(&good_reads),
                  atomic_load(&bad_reads));
    assert_int_equal(atomic_load(&bad_reads), 0);
    assert_true(swaps >= 50);
    assert_true(st.responses_accepted >= (uint64_t)swaps);
    assert_int_equal(st.handles_open, 1);
    srvocsp_close(h);
    srvocsp_engine_free(eng);
    fake_destroy(&fake);
    tp_pki_free(&pki);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cell_swap_storm),
        cmocka_unit_test(test_engine_swaps_with_open_close),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
