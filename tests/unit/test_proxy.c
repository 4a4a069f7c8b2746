/*
 * Per-thread proxies of snapshots (src/core/proxy.h): what get hands out on
 * the hot path.  First the rules one thread can see (same proxy while the
 * snapshot stands, re-pointed in place when nobody holds it, the way's
 * other proxy when somebody does, the shared reference when both are held,
 * a held reference keeps its bytes), the owner's and other threads'
 * counts and a set given back while its proxies are held, then sets coming
 * back from threads that exit and after fork, then a storm: readers on
 * several cells whose cache ways collide, references handed to another
 * thread and freed there, references held across many swaps, sets given
 * back and claimed again while references are out.  ASan reports
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/proxy.h"
#include "fake.h"
#include "testpki.h"

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
    srvocsp_response *a, *b, *held, *again, *plain;

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

    /* Somebody holds it: the way's other proxy stands for the new
     * snapshot; the held one keeps its bytes (and its snapshot) until its
     * last free. */
    held = a;
    srvocsp__cell_publish(&c, make_snap(0, 3));
    again = srvocsp__proxy_acquire(&c);
    assert_ptr_not_equal(again, held);
    assert_ptr_equal(again->base, srvocsp__cell_peek(&c));
    assert_int_equal(srvocsp_response_this_update(again), 3);
    assert_int_equal(srvocsp_response_this_update(held), 2);
    assert_true(intact(held, 0));
    assert_true(intact(again, 0));

    /* Both held: get allocates nothing and hands out the snapshot itself. */
    srvocsp__cell_publish(&c, make_snap(0, 4));
    plain = srvocsp__proxy_acquire(&c);
    assert_ptr_equal(plain, srvocsp__cell_peek(&c));
    assert_null(plain->base);
    assert_int_equal(srvocsp_response_this_update(plain), 4);
    assert_true(intact(plain, 0));
    srvocsp_response_free(plain);

    /* up_ref and free work on a proxy like on any response. */
    assert_ptr_equal(srvocsp_response_up_ref(held), held);
    srvocsp_response_free(held);
    srvocsp_response_free(held);
    assert_int_equal(srvocsp_response_this_update(again), 3);
    srvocsp_response_free(again);

    /* Freed again, the proxies serve the newest snapshot. */
    again = srvocsp__proxy_acquire(&c);
    assert_ptr_not_equal(again, srvocsp__cell_peek(&c));
    assert_ptr_equal(again->base, srvocsp__cell_peek(&c));
    assert_int_equal(srvocsp_response_this_update(again), 4);

    /* The wincrypt view of a proxy is its own and leads back to it. */
    assert_ptr_equal(srvocsp__response_from_view(&again->view), again);
    assert_int_equal(again->view.cb, SNAP_LEN);
    assert_ptr_equal(again->view.pb, again->base->view.pb);
    srvocsp_response_free(again);

    srvocsp__cell_publish(&c, NULL);
    assert_null(srvocsp__proxy_acquire(&c));
    /* The set still holds the last snapshot; giving the set back frees it
     * (LeakSanitizer would report it otherwise). */
    srvocsp__proxy_thread_release();
    srvocsp__proxy_thread_release();
}

/* ---- counts: the owner's side, other threads', a set given back ---- */

static void *free_there(void *arg)
{
    srvocsp_response_free(arg);
    return NULL;
}

typedef struct next_owner {
    srvocsp__cell *cell;
    srvocsp_response *held; /* the first owner's, freed here */
    int first_set, set;
    bool distinct;
} next_owner;

static void *take_over(void *arg)
{
    next_owner *st = arg;
    srvocsp_response *mine = srvocsp__proxy_acquire(st->cell);

    st->set = srvocsp__tl_proxy_set;
    st->distinct = mine != NULL && mine != st->held && mine->base != NULL && intact(mine, 5);
    /* In this thread's own set, but counted the shared way since its
     * first owner gave the set back. */
    srvocsp_response_free(st->held);
    srvocsp_response_free(mine);
    return NULL; /* and gives the set back again */
}

static size_t refs_of(srvocsp_response *r)
{
    return atomic_load(&r->refs);
}

static void test_counts_across_owners(void **s)
{
    srvocsp__cell c;
    srvocsp_response *a, *b, *snap;
    next_owner st = {&c, NULL, -1, -1, false};
    pthread_t t;
    size_t published;

    srvocsp__cell_init(&c);
    snap = make_snap(5, 1);
    srvocsp__cell_publish(&c, snap);
    published = refs_of(snap);

    /* The owner's gets and frees leave the shared count alone. */
    a = srvocsp__proxy_acquire(&c);
    assert_ptr_equal(a->base, snap);
    assert_int_equal(refs_of(snap), published + 1); /* the proxy's */
    assert_int_equal(refs_of(a), SRVOCSP__PROXY_BIAS);
    b = srvocsp__proxy_acquire(&c);
    srvocsp_response_free(b);
    assert_int_equal(refs_of(a), SRVOCSP__PROXY_BIAS);

    /* Another thread's free goes to the shared count, and the owner's
     * count still sees the proxy held by the set. */
    b = srvocsp_response_up_ref(a);
    pthread_create(&t, NULL, free_there, b);
    pthread_join(t, NULL);
    pthread_create(&t, NULL, free_there, a); /* one the owner got */
    pthread_join(t, NULL);
    assert_int_equal(refs_of(a), SRVOCSP__PROXY_BIAS - 1);
    b = srvocsp__proxy_acquire(&c);
    assert_ptr_equal(b, a);
    assert_true(intact(b, 5));

    /* Given back while held: the count becomes the shared one (2 here: b
     * and an up-ref), the next owner of the same set does not reuse it,
     * and its last free, on whichever thread, drops the snapshot. */
    srvocsp_response_up_ref(b);
    st.first_set = srvocsp__tl_proxy_set;
    st.held = b;
    srvocsp__proxy_thread_release();
    assert_int_equal(refs_of(b), 2);
    assert_int_equal(refs_of(snap), published + 1);
    pthread_create(&t, NULL, take_over, &st);
    pthread_join(t, NULL);
    assert_int_equal(st.set, st.first_set);
    assert_true(st.distinct);
    assert_int_equal(refs_of(b), 1);
    assert_true(intact(b, 5));
    /* b's; the proxy the next owner filled let go when it exited. */
    assert_int_equal(refs_of(snap), published + 1);
    srvocsp_response_free(b);
    assert_int_equal(refs_of(snap), published);

    srvocsp__cell_publish(&c, NULL);
    srvocsp__proxy_thread_release();
}

/* ---- sets: claimed per thread, given back at exit and after fork ---- */

static srvocsp__cell shared_cell;
static pthread_barrier_t all_in;

static void *get_once(void *arg)
{
    srvocsp_response *r = srvocsp__proxy_acquire(&shared_cell);
    bool *proxied = arg;

    *proxied = r != NULL && r->base != NULL && intact(r, 7);
    srvocsp_response_free(r);
    return NULL;
}

static void *get_and_wait(void *arg)
{
    get_once(arg);
    pthread_barrier_wait(&all_in); /* everyone holds a set at once */
    pthread_barrier_wait(&all_in); /* the main thread has looked */
    return NULL;
}

typedef struct late_state {
    pthread_barrier_t hold[SRVOCSP__PROXY_SETS];
    bool first_proxied, later_proxied;
} late_state;

static void *hold_a_set(void *arg)
{
    bool p;

    get_once(&p);
    pthread_barrier_wait(arg); /* until the main thread lets go */
    return NULL;
}

static void *late_reader(void *arg)
{
    late_state *st = arg;
    int k;

    get_once(&st->first_proxied);
    pthread_barrier_wait(&all_in);
    pthread_barrier_wait(&all_in);
    for (k = 0; k < 10000 && !st->later_proxied; k++)
        get_once(&st->later_proxied);
    return NULL;
}

static int owned_sets(void)
{
    int i, n = 0;

    for (i = 0; i < SRVOCSP__PROXY_SETS; i++)
        n += atomic_load(&srvocsp__proxy_sets[i].owned) != 0;
    return n;
}

static void test_sets_come_back(void **s)
{
    enum { MORE = SRVOCSP__PROXY_SETS + 6, SEQ = 3 * SRVOCSP__PROXY_SETS };
    pthread_t th[MORE];
    bool proxied[MORE];
    int i, n = 0, status;
    pid_t pid;

    srvocsp__cell_init(&shared_cell);
    srvocsp__cell_publish(&shared_cell, make_snap(7, 1));

    /* Threads that come and go give their set back: far more threads than
     * sets, one after the other, all read through a proxy. */
    for (i = 0; i < SEQ; i++) {
        bool p = false;
        pthread_t t;

        pthread_create(&t, NULL, get_once, &p);
        pthread_join(t, NULL);
        n += p;
    }
    assert_int_equal(n, SEQ);
    assert_int_equal(owned_sets(), 0);

    /* More threads at once than sets: the first ones read through
     * proxies, the rest through shared references; all read right. */
    pthread_barrier_init(&all_in, NULL, MORE + 1);
    for (i = 0; i < MORE; i++)
        pthread_create(&th[i], NULL, get_and_wait, &proxied[i]);
    pthread_barrier_wait(&all_in);
    for (i = 0, n = 0; i < MORE; i++)
        n += proxied[i];
    assert_int_equal(n, SRVOCSP__PROXY_SETS);
    assert_int_equal(owned_sets(), SRVOCSP__PROXY_SETS);

    /* A child has none of those threads: it gives their sets back. */
    pid = fork();
    if (pid == 0)
        _exit(owned_sets() == 0 ? 0 : 1);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    pthread_barrier_wait(&all_in);
    for (i = 0; i < MORE; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&all_in);
    assert_int_equal(owned_sets(), 0);

    /* A thread that found every set taken gets one once some come back. */
    {
        pthread_t late;
        late_state st = {0};

        pthread_barrier_init(&all_in, NULL, 2);
        for (i = 0; i < SRVOCSP__PROXY_SETS; i++) {
            pthread_barrier_init(&st.hold[i], NULL, 2);
        }
        for (i = 0; i < SRVOCSP__PROXY_SETS; i++)
            pthread_create(&th[i], NULL, hold_a_set, &st.hold[i]);
        while (owned_sets() < SRVOCSP__PROXY_SETS)
            sched_yield();
        pthread_create(&late, NULL, late_reader, &st);
        pthread_barrier_wait(&all_in); /* the late one read without a set */
        for (i = 0; i < SRVOCSP__PROXY_SETS; i++) {
            pthread_barrier_wait(&st.hold[i]);
            pthread_join(th[i], NULL);
            pthread_barrier_destroy(&st.hold[i]);
        }
        pthread_barrier_wait(&all_in); /* the sets are back */
        pthread_join(late, NULL);
        pthread_barrier_destroy(&all_in);
        assert_false(st.first_proxied);
        assert_true(st.later_proxied);
        assert_int_equal(owned_sets(), 0);
    }
    srvocsp__cell_publish(&shared_cell, NULL);
}

/* ---- get allocates nothing ---- */

/* This test is linked with --wrap for the allocation functions: every
 * allocation made by the library's code (or the test's) is counted. */
static atomic_long allocations;
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t a, size_t n);
int __real_posix_memalign(void **p, size_t a, size_t n);
char *__real_strdup(const char *s);
void *__wrap_malloc(size_t n)
{
    atomic_fetch_add(&allocations, 1);
    return __real_malloc(n);
}
void *__wrap_calloc(size_t n, size_t m)
{
    atomic_fetch_add(&allocations, 1);
    return __real_calloc(n, m);
}
void *__wrap_realloc(void *p, size_t n)
{
    atomic_fetch_add(&allocations, 1);
    return __real_realloc(p, n);
}
void *__wrap_aligned_alloc(size_t a, size_t n)
{
    atomic_fetch_add(&allocations, 1);
    return __real_aligned_alloc(a, n);
}
int __wrap_posix_memalign(void **p, size_t a, size_t n)
{
    atomic_fetch_add(&allocations, 1);
    return __real_posix_memalign(p, a, n);
}
char *__wrap_strdup(const char *str)
{
    atomic_fetch_add(&allocations, 1);
    return __real_strdup(str);
}

static tp_pki pki;
static manual_clock clk;
static fake_transport fake;

static fake_signer signer = {&pki, &pki.good, &clk, 3600};

static srvocsp_handle *alloc_h;
static long counted_gets;

/* Gets and frees on the calling thread, counting only their allocations;
 * |hold| references stay held across the next swaps. */
static long gets_allocate(srvocsp_response **hold, int n_hold)
{
    long before = atomic_load(&allocations), k;
    srvocsp_response *r;
    int i;

    for (k = 0; k < 100; k++) {
        r = srvocsp_get1_response(alloc_h);
        assert_non_null(r);
        srvocsp_response_free(r);
    }
    for (i = 0; i < n_hold; i++) {
        srvocsp_response_free(hold[i]);
        hold[i] = srvocsp_get1_response(alloc_h);
    }
    counted_gets += 100 + n_hold;
    return atomic_load(&allocations) - before;
}

static void *first_get_on_a_thread(void *arg)
{
    long *n = arg;

    *n = gets_allocate(NULL, 0);
    return NULL;
}

static void test_get_allocates_nothing(void **s)
{
    int64_t t0 = (int64_t)time(NULL);
    srvocsp_engine *eng;
    srvocsp_params p;
    srvocsp_response *hold[2] = {NULL, NULL};
    long n = 0, on_thread = -1;
    int step;
    pthread_t th;

    assert_true(tp_pki_make(&pki, "http://127.0.0.1:8080/", "http://127.0.0.1:1/", t0));
    manual_clock_init(&clk, t0);
    fake_init(&fake, &clk, fake_sign_good, &signer);
    eng = fake_engine_new(&clk, &fake, -1, 0);
    srvocsp_params_init(&p);
    p.engine = eng;
    n = atomic_load(&allocations);
    alloc_h = fake_open(pki.good.cert, pki.ca.cert, &p);
    assert_non_null(alloc_h);
    /* The counting works: opening a handle does allocate. */
    assert_true(atomic_load(&allocations) > n);
    n = 0;

    /* A thread's very first get (it claims its set). */
    pthread_create(&th, NULL, first_get_on_a_thread, &on_thread);
    pthread_join(th, NULL);
    assert_int_equal(on_thread, 0);

    /* Many swaps, with 0, 1 and 2 references held across them: the proxy
     * re-pointed, the way's other proxy filled, the shared reference. */
    for (step = 0; step < 60; step++) {
        manual_clock_set(&clk, t0 + 900 * (step + 1));
        assert_int_equal(srvocsp_engine_settle(eng, 10000), SRVOCSP_OK);
        n += gets_allocate(hold, step % 3);
    }
    print_message("  %ld gets and frees across 60 swaps: %ld allocations\n", counted_gets, n);
    assert_int_equal(n, 0);
    srvocsp_response_free(hold[0]);
    srvocsp_response_free(hold[1]);
    srvocsp_close(alloc_h);
    srvocsp_engine_free(eng);
    fake_destroy(&fake);
    tp_pki_free(&pki);
    srvocsp__proxy_thread_release();
}

/* ---- the storm ---- */

/* Four cells; the last one's cache way is the first one's, so readers
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
        /* Now and then the set goes back while references are out (keep,
         * handed ones); the next get claims one again. */
        if (rand_r(&seed) % 2048 == 0)
            srvocsp__proxy_thread_release();
        if (keep != NULL && --keep_for == 0) {
            if (!intact(keep, keep_cell))
                atomic_fetch_add(&bad, 1);
            srvocsp_response_free(keep);
            keep = NULL;
            atomic_fetch_add(&held_long, 1);
        }
    }
    srvocsp_response_free(keep);
    return NULL; /* the thread's set is given back as it exits */
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
        cmocka_unit_test(test_counts_across_owners),
        cmocka_unit_test(test_sets_come_back),
        cmocka_unit_test(test_get_allocates_nothing),
        cmocka_unit_test(test_storm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
