/*
 * Per-thread proxies of snapshots (src/core/proxy.h): what get hands out on
 * the hot path.  First the rules one thread can see (same proxy while the
 * snapshot stands, re-pointed in place when nobody holds it, a new one when
 * somebody does, a held reference keeps its bytes), then a storm: readers on
 * several cells whose cache slots collide, references handed to another
 * thread and freed there, references held across many swaps.  ASan reports
 * a proxy or snapshot used after its last free and LeakSanitizer one never
 * freed; TSan a missing ordering; the content checks a torn or recycled one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/proxy.h"

#define SNAP_LEN 48
#define CELLS 3
#define READERS 3
#define RING 64

/* Every byte of snapshot n is (n & 0xff), this_update is n, and the cell it
 * belongs to is in next_update (checked against the cell read). */
static srvocsp_response *make_snap(int cell_no, int64_t n)
{
    unsigned char buf[SNAP_LEN];
    srvocsp_response *r;

    memset(buf, (int)(n & 0xff), sizeof(buf));
    r = srvocsp__response_new(buf, sizeof(buf));
    assert_non_null(r);
    r->this_update = n;
    r->next_update = cell_no;
    r->expires = INT64_MAX / 2;
    r->status = SRVOCSP_STATUS_GOOD;
    return r;
}

static bool intact(const srvocsp_response *r, int cell_no)
{
    size_t len, i;
    const unsigned char *d = srvocsp_response_der(r, &len);
    int64_t n = srvocsp_response_this_update(r);

    if (len != SNAP_LEN || srvocsp_response_next_update(r) != cell_no)
        return false;
    for (i = 0; i < len; i++)
        if (d[i] != (unsigned char)(n & 0xff))
            return false;
    return true;
}

static void test_rules_on_one_thread(void **s)
{
    srvocsp__cell c;
    srvocsp_response *a, *b, *held, *again;

    srvocsp__cell_init(&c);
    assert_null(srvocsp__proxy_acquire(&c));
    srvocsp__cell_publish(&c, make_snap(0, 1));

    /* While the snapshot stands: the same proxy each time, not the
     * snapshot itself (whose count other threads would share). */
    a = srvocsp__proxy_acquire(&c);
    b = srvocsp__proxy_acquire(&c);
    assert_non_null(a);
    assert_ptr_equal(a, b);
    assert_ptr_not_equal(a, srvocsp__cell_peek(&c));
    assert_ptr_equal(a->base, srvocsp__cell_peek(&c));
    assert_true(intact(a, 0));
    assert_int_equal(srvocsp_response_this_update(a), 1);
    srvocsp_response_free(a);
    srvocsp_response_free(b);

    /* Nobody holds it: a new snapshot re-points the same proxy. */
    srvocsp__cell_publish(&c, make_snap(0, 2));
    a = srvocsp__proxy_acquire(&c);
    assert_ptr_equal(a, b);
    assert_int_equal(srvocsp_response_this_update(a), 2);
    assert_true(intact(a, 0));

    /* Somebody holds it: the slot gets a new proxy, the held one keeps its
     * bytes (and its snapshot) until its last free. */
    held = a;
    srvocsp__cell_publish(&c, make_snap(0, 3));
    again = srvocsp__proxy_acquire(&c);
    assert_ptr_not_equal(again, held);
    assert_int_equal(srvocsp_response_this_update(again), 3);
    assert_int_equal(srvocsp_response_this_update(held), 2);
    assert_true(intact(held, 0));
    assert_true(intact(again, 0));
    /* up_ref and free work on a proxy like on any response. */
    assert_ptr_equal(srvocsp_response_up_ref(held), held);
    srvocsp_response_free(held);
    srvocsp_response_free(held);
    srvocsp_response_free(again);

    /* The wincrypt view of a proxy is its own and leads back to it. */
    again = srvocsp__proxy_acquire(&c);
    assert_ptr_equal(srvocsp__response_from_view(&again->view), again);
    assert_int_equal(again->view.cb, SNAP_LEN);
    assert_ptr_equal(again->view.pb, again->base->der);
    srvocsp_response_free(again);

    srvocsp__cell_publish(&c, NULL);
    assert_null(srvocsp__proxy_acquire(&c));
    /* The cache still holds the last snapshot; releasing it frees it
     * (LeakSanitizer would report it otherwise). */
    srvocsp__proxy_thread_release();
    srvocsp__proxy_thread_release();
}

/* ---- the storm ---- */

/* Four cells; the last one's cache slot is the first one's, so readers
 * switching between them keep re-pointing and replacing proxies. */
static srvocsp__cell pool[4096];
static srvocsp__cell *cells[CELLS + 1];

static void pick_cells(void)
{
    size_t i;
    int n = 1;

    cells[0] = &pool[0];
    for (i = 1; i < sizeof(pool) / sizeof(pool[0]) && n <= CELLS; i++) {
        unsigned w = srvocsp__proxy_way(&pool[i]);
        bool taken = false;

        for (int k = 0; k < n; k++)
            taken |= w == srvocsp__proxy_way(cells[k]);
        if ((n < CELLS && !taken) || (n == CELLS && w == srvocsp__proxy_way(cells[0]) &&
                                      pool + i != cells[0]))
            cells[n++] = &pool[i];
    }
    assert_int_equal(n, CELLS + 1);
}

static atomic_bool stop;
static atomic_ulong bad, good, handed, held_long;

typedef struct ring {
    pthread_mutex_t mu;
    srvocsp_response *r[RING];
    int cell_no[RING];
    int n;
} ring;
static ring handoff = {PTHREAD_MUTEX_INITIALIZER, {0}, {0}, 0};

static void *reader(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    int64_t last[CELLS + 1] = {0};
    srvocsp_response *keep = NULL;
    int keep_cell = 0, keep_for = 0;

    while (!atomic_load(&stop)) {
        int i = (int)(rand_r(&seed) % (CELLS + 1));
        srvocsp_response *r = srvocsp__proxy_acquire(cells[i]);
        int64_t n;

        if (r == NULL)
            continue;
        n = srvocsp_response_this_update(r);
        if (!intact(r, i) || n < last[i]) {
            atomic_fetch_add(&bad, 1);
        } else {
            atomic_fetch_add(&good, 1);
        }
        last[i] = n;
        switch (rand_r(&seed) % 16) {
        case 0: /* to another thread, which frees it later */
            pthread_mutex_lock(&handoff.mu);
            if (handoff.n < RING) {
                handoff.cell_no[handoff.n] = i;
                handoff.r[handoff.n++] = r;
                r = NULL;
                atomic_fetch_add(&handed, 1);
            }
            pthread_mutex_unlock(&handoff.mu);
            break;
        case 1: /* held by this thread across many swaps */
            if (keep == NULL) {
                keep = srvocsp_response_up_ref(r);
                keep_cell = i;
                keep_for = 1000 + (int)(rand_r(&seed) % 5000);
            }
            break;
        default: break;
        }
        srvocsp_response_free(r);
        if (keep != NULL && --keep_for == 0) {
            if (!intact(keep, keep_cell))
                atomic_fetch_add(&bad, 1);
            srvocsp_response_free(keep);
            keep = NULL;
            atomic_fetch_add(&held_long, 1);
        }
    }
    srvocsp_response_free(keep);
    return NULL; /* the thread's cache is freed as it exits */
}

static void *receiver(void *arg)
{
    (void)arg;
    for (;;) {
        srvocsp_response *r[RING];
        int cn[RING], n, i;
        bool done = atomic_load(&stop);

        pthread_mutex_lock(&handoff.mu);
        n = handoff.n;
        memcpy(r, handoff.r, sizeof(r[0]) * (size_t)n);
        memcpy(cn, handoff.cell_no, sizeof(cn[0]) * (size_t)n);
        handoff.n = 0;
        pthread_mutex_unlock(&handoff.mu);
        for (i = 0; i < n; i++) {
            if (!intact(r[i], cn[i]))
                atomic_fetch_add(&bad, 1);
            srvocsp_response_free(r[i]);
        }
        if (done && n == 0)
            return NULL;
        sched_yield();
    }
}

static void test_storm(void **s)
{
    pthread_t rd[READERS], rc;
    struct timespec a, b;
    int64_t n = 0;
    int i;

    pick_cells();
    for (i = 0; i <= CELLS; i++) {
        srvocsp__cell_init(cells[i]);
        srvocsp__cell_publish(cells[i], make_snap(i, 1));
    }
    for (i = 0; i < READERS; i++)
        pthread_create(&rd[i], NULL, reader, (void *)(uintptr_t)(i + 1));
    pthread_create(&rc, NULL, receiver, NULL);
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (n = 2; n < 200000; n++) {
        int k = (int)(n % (CELLS + 1));

        srvocsp__cell_publish(cells[k], make_snap(k, n));
        if ((n & 1023) == 0) {
            clock_gettime(CLOCK_MONOTONIC, &b);
            if (b.tv_sec - a.tv_sec > 6) /* bounded on slow sanitizer builds */
                break;
        }
    }
    atomic_store(&stop, true);
    for (i = 0; i < READERS; i++)
        pthread_join(rd[i], NULL);
    pthread_join(rc, NULL);
    print_message("  %ld swaps; %lu good reads, %lu bad; %lu handed to another thread, "
                  "%lu held across swaps\n",
                  (long)n, atomic_load(&good), atomic_load(&bad), atomic_load(&handed),
                  atomic_load(&held_long));
    assert_int_equal(atomic_load(&bad), 0);
    assert_true(atomic_load(&good) > 0);
    assert_true(atomic_load(&handed) > 0);
    for (i = 0; i <= CELLS; i++)
        srvocsp__cell_publish(cells[i], NULL);
    srvocsp__proxy_thread_release();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rules_on_one_thread),
        cmocka_unit_test(test_storm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
