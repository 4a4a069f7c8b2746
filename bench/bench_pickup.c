/*
 * CPU per directory pickup: what a process pays when, at its refresh, it
 * finds that another process sharing its directory already saved a newer
 * response, and takes it instead of asking the responder.
 *
 *   bench_pickup N [--json]
 *
 * N certificates (P-256 issuer) are opened on a directory holding a
 * response for each; the injected clock is then moved past their refresh
 * point after newer responses were written there, as a sibling process
 * would.  The engine's CPU for the round that takes them all is divided by
 * N.  The transport refuses every request, and any request is counted: a
 * round that asked the responder instead of picking up is reported, not
 * measured.  The public API, the test PKI and the store's file name only,
 * so the same file builds against older versions of the library for a
 * before/after figure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "internal.h"
#include "peers.h"
#include "srvocsp.h"
#include "store/store.h"
#include "testpki.h"

#define DAY 86400

typedef struct bclock {
    srvocsp_clock clock;
    int64_t now;
} bclock;

static int64_t clock_now(void *ctx)
{
    return ((bclock *)ctx)->now;
}

static int64_t clock_mono(void *ctx)
{
    struct timespec ts;

    (void)ctx;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static unsigned long g_requests;

static srvocsp_error refuse(void *ctx, const srvocsp_http_request *req, srvocsp_http_done_fn done,
                            void *arg)
{
    (void)ctx;
    (void)req;
    (void)done;
    (void)arg;
    __atomic_add_fetch(&g_requests, 1, __ATOMIC_RELAXED);
    return SRVOCSP_E_TRANSPORT;
}

static double cpu_s(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* Writes each certificate's response with |this_update| where the library
 * looks for it. */
static int write_all(const char *dir, tp_cert *leaves, const tp_cert *ca, int n,
                     int64_t this_update)
{
    for (int i = 0; i < n; i++) {
        tp_resp_opts ro;
        unsigned char *der;
        size_t len;
        char name[SRVOCSP__STORE_NAME_LEN + 1], path[1400];

        tp_resp_opts_init(&ro, &leaves[i], ca, this_update);
        ro.next_update = this_update + 7 * DAY;
        der = tp_response(&ro, &len);
        if (der == NULL)
            return -1;
        if (!srvocsp__store_name(leaves[i].cert, ca->cert, name))
            return -1;
        snprintf(path, sizeof(path), "%s/%s.der", dir, name);
        tp_write_file(path, der, len);
        free(der);
    }
    return 0;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 0, i, taken = 0;
    bool json = argc > 2 && strcmp(argv[2], "--json") == 0;
    int64_t t0 = (int64_t)time(NULL), t1 = t0 + 3 * DAY;
    tp_pki pki;
    tp_cert *ca = NULL, *leaves;
    bclock clk;
    srvocsp_transport tr;
    srvocsp_engine_config cfg;
    srvocsp_engine *eng;
    srvocsp_params p;
    srvocsp_handle **h;
    STACK_OF(X509) *chain;
    char *dir;
    double c0, cpu;

    if (n < 1) {
        fprintf(stderr, "usage: bench_pickup N [--json]\n");
        return 2;
    }
    if (!tp_pki_make(&pki, "http://127.0.0.1:9/", "http://127.0.0.1:9/", t0))
        return 1;
    /* The test PKI's issuing CA (P-256), as bench_scale's default. */
    ca = &pki.ca;
    leaves = calloc((size_t)n, sizeof(*leaves));
    h = calloc((size_t)n, sizeof(*h));
    for (i = 0; i < n; i++)
        if (!tp_leaf_make(&leaves[i], ca, &pki.good, "host", i, 0x200000 + i, t0))
            return 1;
    chain = sk_X509_new_null();
    sk_X509_push(chain, ca->cert);

    clk.clock.now = clock_now;
    clk.clock.monotonic_ms = clock_mono;
    clk.clock.ctx = &clk;
    clk.now = t0;
    memset(&tr, 0, sizeof(tr));
    tr.start = refuse;
    srvocsp_engine_config_init(&cfg);
    cfg.clock = &clk.clock;
    cfg.transport = &tr;
    cfg.jitter_percent = 0;
    eng = srvocsp_engine_new(&cfg);
    dir = tr_tmpdir("bench-pickup");
    srvocsp_params_init(&p);
    p.engine = eng;
    p.directory = dir;
    p.responder_url = "http://127.0.0.1:9/";
    p.flags = SRVOCSP_OPEN_ASYNC;

    /* What this process saved at its last refresh, loaded at open. */
    if (write_all(dir, leaves, ca, n, t0) != 0)
        return 1;
    for (i = 0; i < n; i++)
        if ((h[i] = srvocsp_open(leaves[i].cert, chain, &p)) == NULL)
            return 1;
    srvocsp_engine_settle(eng, 60000);
    /* A sibling saves newer responses; the clock reaches the refresh. */
    if (write_all(dir, leaves, ca, n, t1) != 0)
        return 1;
    g_requests = 0;
    clk.now = t0 + 4 * DAY; /* past the halfway point of the 7-day responses */
    c0 = cpu_s();
    srvocsp_engine_kick(eng);
    for (int tries = 0; tries < 600 && taken < n; tries++) {
        srvocsp_engine_settle(eng, 1000);
        taken = 0;
        for (i = 0; i < n; i++) {
            srvocsp_response *r = srvocsp_get1_response(h[i]);

            taken += r != NULL && srvocsp_response_this_update(r) == t1;
            srvocsp_response_free(r);
        }
    }
    cpu = cpu_s() - c0;
    if (json)
        printf("{\"certificates\":%d,\"taken\":%d,\"requests\":%lu,\"cpu_us_per_pickup\":%.1f}\n", n,
               taken, g_requests, cpu / n * 1e6);
    else
        printf("%d certificates: %d newer responses taken from the directory, %lu requests "
               "to the responder; CPU %.1f us per pickup (the checks of every handle "
               "included)\n",
               n, taken, g_requests, cpu / n * 1e6);
    for (i = 0; i < n; i++)
        srvocsp_close(h[i]);
    srvocsp_engine_free(eng);
    tr_rmrf(dir);
    return taken == n && g_requests == 0 ? 0 : 1;
}
