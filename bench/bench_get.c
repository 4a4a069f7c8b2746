/*
 * Hot path: srvocsp_get1_response + srvocsp_response_free, ns per pair,
 * with 1 and 2 reader threads, while the engine publishes a new snapshot
 * about 1,000 times a second.  Median of several runs.
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

#define RUNS 7
#define OPS 5000000L

static tp_pki pki;
static manual_clock clk;
static fake_transport fake;
static srvocsp_engine *eng;
static srvocsp_handle *h;
static atomic_bool stop_swapper;
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

static void *reader(void *arg)
{
    double *ns = arg, t0 = now_ns();
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
    *ns = (now_ns() - t0) / (double)OPS;
    return NULL;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double run(int threads)
{
    double res[RUNS], per[2];
    pthread_t th[2];
    int r, i;

    for (r = 0; r < RUNS; r++) {
        double sum = 0;

        for (i = 0; i < threads; i++)
            pthread_create(&th[i], NULL, reader, &per[i]);
        for (i = 0; i < threads; i++)
            pthread_join(th[i], NULL);
        for (i = 0; i < threads; i++)
            sum += per[i];
        res[r] = sum / threads; /* ns per operation as each thread sees it */
    }
    qsort(res, RUNS, sizeof(res[0]), cmp);
    return res[RUNS / 2];
}

int main(int argc, char **argv)
{
    srvocsp_params p;
    pthread_t sw;
    double t1, t2, w0, w1;
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
    t1 = run(1);
    t2 = run(2);
    w1 = now_ns();
    atomic_store(&stop_swapper, true);
    pthread_join(sw, NULL);
    srvocsp_engine_settle(eng, 5000);
    srvocsp_engine_get_stats(eng, &st);
    if (json)
        printf("{\"get_free_ns_1thread\":%.1f,\"get_free_ns_2threads\":%.1f,"
               "\"throughput_scaling_2threads\":%.2f,\"swaps_per_s\":%.0f}\n",
               t1, t2, 2.0 * t1 / t2, (double)st.responses_accepted / ((w1 - w0) / 1e9));
    else
        printf("get+free: %.1f ns (1 thread), %.1f ns per op per thread (2 threads), "
               "throughput x%.2f with 2 threads; %.0f swaps/s during the run\n",
               t1, t2, 2.0 * t1 / t2, (double)st.responses_accepted / ((w1 - w0) / 1e9));
    srvocsp_close(h);
    srvocsp_engine_free(eng);
    tp_pki_free(&pki);
    fake_destroy(&fake);
    return 0;
}
