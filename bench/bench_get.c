/*
 * Hot path: srvocsp_get1_response + srvocsp_response_free, ns per pair,
 * with 1 and 2 reader threads, while the engine publishes a new snapshot
 * about 1,000 times a second (each a fetch, a signature and a
 * verification: about a tenth of a core here), and again with the engine
 * quiet, as a server is between refreshes (a handle's response changes
 * every few hours).  Median of several runs.
 *
 * On a machine with as many cores as readers, the engine's work while it
 * publishes takes its share of the readers' cores: the quiet figures are
 * the hot path's own scaling, the publishing ones what 1,000 swaps a
 * second cost on top.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fake.h"
#include "srvocsp.h"
#include "testpki.h"

#define RUNS 9
#define OPS 20000000L

static tp_pki pki;
static manual_clock clk;
static fake_transport fake;
static srvocsp_engine *eng;
static srvocsp_handle *h;
static atomic_bool stop_swapper;
static atomic_bool pause_swapper;
static atomic_bool swapper_paused;
static atomic_ulong swaps;

static fake_signer signer = {&pki, &pki.good, &clk, 3600};

static double now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void *swapper(void *arg)
{
    int64_t t = atomic_load(&clk.now);
    struct timespec tick;

    clock_gettime(CLOCK_MONOTONIC, &tick);
    while (!atomic_load(&stop_swapper)) {
        atomic_store(&swapper_paused, atomic_load(&pause_swapper));
        if (atomic_load(&swapper_paused)) {
            usleep(1000);
            clock_gettime(CLOCK_MONOTONIC, &tick);
            continue;
        }
        t += 900; /* past the refresh point: the engine fetches and swaps */
        srvocsp_engine_stats st;
        uint64_t before;

        srvocsp_engine_get_stats(eng, &st);
        before = st.responses_accepted;
        manual_clock_set(&clk, t);
        /* The next step waits for this one's swap: a clock that runs ahead
         * of a fetch in flight would (rightly) make the engine skip one. */
        do {
            srvocsp_engine_settle(eng, 5000);
            srvocsp_engine_get_stats(eng, &st);
        } while (st.responses_accepted == before && !atomic_load(&stop_swapper));
        atomic_fetch_add(&swaps, 1);
        /* Paced on absolute 1 ms ticks: about 1,000 swaps a second. */
        tick.tv_nsec += 1000000L;
        if (tick.tv_nsec >= 1000000000L) {
            tick.tv_sec++;
            tick.tv_nsec -= 1000000000L;
        }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &tick, NULL);
    }
    return NULL;
}

static double cpu_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

typedef struct per_thread {
    double wall, cpu; /* ns per operation */
} per_thread;

static void *reader(void *arg)
{
    per_thread *pt = arg;
    double t0 = now_ns(), c0 = cpu_ns();
    long i;

    for (i = 0; i < OPS; i++) {
        srvocsp_response *r = srvocsp_get1_response(h);

        if (r == NULL) {
            char why[512];

            srvocsp_handle_last_failure(h, why, sizeof(why));
            fprintf(stderr, "get returned NULL: %s (clock %lld, swaps %lu, last failure: %s)\n",
                    srvocsp_last_error_text(), (long long)atomic_load(&clk.now),
                    atomic_load(&swaps), why);
            exit(1);
        }
        srvocsp_response_free(r);
    }
    pt->wall = (now_ns() - t0) / (double)OPS;
    pt->cpu = (cpu_ns() - c0) / (double)OPS;
    return NULL;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* One run: |threads| readers at once; ns per operation as each thread
 * sees it, in wall time and in the thread's own CPU time (what the code
 * costs while it runs, without the time the scheduler gives the engine's
 * and the swapper's threads on a machine with as many cores as readers). */
static void run(int threads, double *wall, double *cpu)
{
    per_thread per[2];
    pthread_t th[2];
    int i;

    for (i = 0; i < threads; i++)
        pthread_create(&th[i], NULL, reader, &per[i]);
    for (i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    *wall = *cpu = 0;
    for (i = 0; i < threads; i++) {
        *wall += per[i].wall / threads;
        *cpu += per[i].cpu / threads;
    }
}

static double median(double *v)
{
    qsort(v, RUNS, sizeof(v[0]), cmp);
    return v[RUNS / 2];
}

/* RUNS pairs of a 1-thread and a 2-thread run, alternating which goes
 * first, so that a change in the machine's load falls on both; the
 * scaling is the median of the pairs' ratios. */
typedef struct figures {
    double wall1, wall2, cpu1, cpu2, scaling, cpu_scaling;
} figures;

static figures measure(void)
{
    double w1[RUNS], w2[RUNS], c1[RUNS], c2[RUNS], sc[RUNS], csc[RUNS];
    figures f;
    int r;

    for (r = 0; r < RUNS; r++) {
        if (r % 2 == 0) {
            run(1, &w1[r], &c1[r]);
            run(2, &w2[r], &c2[r]);
        } else {
            run(2, &w2[r], &c2[r]);
            run(1, &w1[r], &c1[r]);
        }
        sc[r] = 2.0 * w1[r] / w2[r];
        csc[r] = 2.0 * c1[r] / c2[r];
    }
    f.wall1 = median(w1);
    f.wall2 = median(w2);
    f.cpu1 = median(c1);
    f.cpu2 = median(c2);
    f.scaling = median(sc);
    f.cpu_scaling = median(csc);
    return f;
}

int main(int argc, char **argv)
{
    srvocsp_params p;
    pthread_t sw;
    double w0, w1;
    figures f, quiet;
    srvocsp_engine_stats st;
    bool json = argc > 1 && strcmp(argv[1], "--json") == 0;

    if (!tp_pki_make(&pki, "http://127.0.0.1:8080/", "http://127.0.0.1:1/", time(NULL)))
        return 1;
    manual_clock_init(&clk, time(NULL));
    fake_init(&fake, &clk, fake_sign_good, &signer);
    eng = fake_engine_new(&clk, &fake, -1, 0);
    srvocsp_params_init(&p);
    p.engine = eng;
    h = fake_open(pki.good.cert, pki.ca.cert, &p);
    if (h == NULL)
        return 1;
    pthread_create(&sw, NULL, swapper, NULL);
    w0 = now_ns();
    f = measure();
    w1 = now_ns();
    srvocsp_engine_get_stats(eng, &st);
    /* The engine quiet: no swap is under way while the readers run. */
    atomic_store(&pause_swapper, true);
    while (!atomic_load(&swapper_paused))
        usleep(1000);
    srvocsp_engine_settle(eng, 5000);
    quiet = measure();
    atomic_store(&stop_swapper, true);
    pthread_join(sw, NULL);
    if (json)
        printf("{\"get_free_ns_1thread\":%.1f,\"get_free_ns_2threads\":%.1f,"
               "\"throughput_scaling_2threads\":%.2f,\"get_free_cpu_ns_1thread\":%.1f,"
               "\"get_free_cpu_ns_2threads\":%.1f,\"cpu_scaling_2threads\":%.2f,"
               "\"swaps_per_s\":%.0f,\"quiet_get_free_ns_1thread\":%.1f,"
               "\"quiet_get_free_ns_2threads\":%.1f,\"quiet_throughput_scaling_2threads\":%.2f,"
               "\"quiet_cpu_scaling_2threads\":%.2f}\n",
               f.wall1, f.wall2, f.scaling, f.cpu1, f.cpu2, f.cpu_scaling,
               (double)st.responses_accepted / ((w1 - w0) / 1e9), quiet.wall1, quiet.wall2,
               quiet.scaling, quiet.cpu_scaling);
    else
        printf("get+free: %.1f ns (1 thread), %.1f ns per op per thread (2 threads), "
               "throughput x%.2f with 2 threads; in each thread's CPU time %.1f / %.1f ns, "
               "x%.2f; %.0f swaps/s during the run\n"
               "engine quiet: %.1f ns (1 thread), %.1f ns (2 threads), throughput x%.2f, "
               "CPU time x%.2f\n",
               f.wall1, f.wall2, f.scaling, f.cpu1, f.cpu2, f.cpu_scaling,
               (double)st.responses_accepted / ((w1 - w0) / 1e9), quiet.wall1, quiet.wall2,
               quiet.scaling, quiet.cpu_scaling);
    srvocsp_close(h);
    srvocsp_engine_free(eng);
    tp_pki_free(&pki);
    fake_destroy(&fake);
    return 0;
}
