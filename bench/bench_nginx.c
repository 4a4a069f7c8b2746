/*
 * nginx with the srvocsp module against nginx's own ssl_stapling and
 * against no stapling, on one machine in one run (bench/nginx.sh).
 *
 *  1. TLS 1.3 handshakes per second: client threads take the three
 *     servers in turn, one full handshake each (asking for a staple),
 *     timing each; rounds of a fixed time; medians and the median of the
 *     per-round module/none ratios.
 *  2. The first handshake after start and after `nginx -s reload`: how
 *     often it carries a staple, module versus ssl_stapling.
 *  3. Handshake latency while the responder hangs (it takes the request
 *     and never answers), both servers, against their latency with a
 *     working responder.
 *
 * bench_nginx MODULE.so [--rounds N] [--seconds S] [--trials N] [--json]
 */
#define _GNU_SOURCE
#include <openssl/ocsp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "evil.h"
#include "nginxrun.h"
#include "peers.h"
#include "srvocsp.h"
#include "testpki.h"

#define NGINX_BIN "/usr/sbin/nginx"
#define CLIENT_THREADS 2

static tp_pki pki;
static char *dir;
static char pkidir[1200];
static const char *module_so;
static evil *resp;

static int64_t wall_now(void *ctx)
{
    (void)ctx;
    return (int64_t)time(NULL);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(v[0]), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double pct(double *v, int n, double p)
{
    qsort(v, (size_t)n, sizeof(v[0]), cmp_double);
    return v[(int)((n - 1) * p)];
}

typedef enum { S_MODULE, S_NGINX, S_NONE } server_kind;
static const char *const kind_name[] = {"module", "ssl_stapling", "none"};

/* The server block of each kind; |slot| picks the responder's behaviour. */
static void conf_body(char *b, size_t cap, server_kind k, int port, int slot, const char *cache)
{
    char certs[6000], extra[1500] = "";

    snprintf(certs, sizeof(certs),
             "ssl_certificate %s/good.pem; ssl_certificate_key %s/good.key;\n"
             "ssl_certificate %s/good-rsa.pem; ssl_certificate_key %s/good-rsa.key;\n",
             pkidir, pkidir, pkidir, pkidir);
    if (k == S_MODULE)
        snprintf(extra, sizeof(extra),
                 "srvocsp on; srvocsp_timeout 5s; srvocsp_responder http://127.0.0.1:%d/k%d/;%s%s%s\n",
                 evil_port(resp), slot, cache ? " srvocsp_directory " : "", cache ? cache : "",
                 cache ? ";" : "");
    else if (k == S_NGINX)
        snprintf(extra, sizeof(extra),
                 "ssl_stapling on; ssl_stapling_verify on; ssl_trusted_certificate %s/root.pem;\n"
                 "ssl_stapling_responder http://127.0.0.1:%d/k%d/;\n",
                 pkidir, evil_port(resp), slot);
    snprintf(b, cap,
             "ssl_session_cache off; ssl_session_tickets off;\n"
             "server { listen 127.0.0.1:%d ssl; %s%s location / { return 200; } }\n",
             port, certs, extra);
}

static bool start_kind(nr_nginx *n, const char *name, server_kind k, int port, int slot,
                       const char *cache)
{
    char p[1200], body[16384];

    snprintf(p, sizeof(p), "%s/%s", dir, name);
    mkdir(p, 0755);
    nr_init(n, p, NGINX_BIN, k == S_MODULE ? module_so : NULL, "");
    conf_body(body, sizeof(body), k, port, slot, cache);
    return nr_write_conf(n, 1, body) && nr_start(n, port, 1);
}

/* ---- 1. throughput ---- */

/* Each client thread takes the three servers in turn, one handshake each,
 * and times every handshake: load from elsewhere on the machine falls on
 * the three alike.  A server's rate is the handshakes it completed over
 * the time the clients spent on it, times the number of client threads. */
typedef struct load {
    const int *ports;
    unsigned first;              /* which server this round starts with */
    double until;
    long done[3], stapled[3];
    double ms[3];
} load;

static void *load_main(void *arg)
{
    load *l = arg;
    SSL_CTX *ctx = nr_client_ctx(NULL, TLS1_3_VERSION);

    for (unsigned i = l->first; tr_now_ms() < l->until; i++) {
        int k = (int)(i % 3);
        nr_hs h;

        if (nr_handshake(ctx, l->ports[k], NULL, &h)) {
            l->done[k]++;
            l->stapled[k] += h.stapled;
        }
        l->ms[k] += h.ms;
    }
    SSL_CTX_free(ctx);
    return NULL;
}

static void measure(const int *ports, unsigned first, double seconds, double *rate,
                    double *staple_share)
{
    load l[CLIENT_THREADS];
    pthread_t th[CLIENT_THREADS];
    long done[3] = {0}, stapled[3] = {0};
    double ms[3] = {0};
    double t0 = tr_now_ms();

    for (int i = 0; i < CLIENT_THREADS; i++) {
        memset(&l[i], 0, sizeof(l[i]));
        l[i].ports = ports;
        l[i].first = first + (unsigned)i;
        l[i].until = t0 + seconds * 1000;
        pthread_create(&th[i], NULL, load_main, &l[i]);
    }
    for (int i = 0; i < CLIENT_THREADS; i++) {
        pthread_join(th[i], NULL);
        for (int k = 0; k < 3; k++) {
            done[k] += l[i].done[k];
            stapled[k] += l[i].stapled[k];
            ms[k] += l[i].ms[k];
        }
    }
    for (int k = 0; k < 3; k++) {
        rate[k] = ms[k] > 0 ? (double)done[k] / (ms[k] / 1000) * CLIENT_THREADS : 0;
        staple_share[k] = done[k] ? (double)stapled[k] / (double)done[k] : 0;
    }
}

/* ---- 2. first handshake after start / reload ---- */

static bool first_stapled(int port)
{
    SSL_CTX *ctx = nr_client_ctx(NULL, TLS1_3_VERSION);
    nr_hs h;

    nr_handshake(ctx, port, NULL, &h);
    SSL_CTX_free(ctx);
    return h.ok && h.stapled;
}

/* ---- 3. latency while the responder hangs ---- */

/* |n| sequential handshakes to each of two servers, alternating (the order
 * swapped every other pair), so both see the same moments of the machine. */
static void latencies(const int *ports, int n, double out[2][4])
{
    SSL_CTX *ctx = nr_client_ctx(NULL, TLS1_3_VERSION);
    double *v[2] = {calloc((size_t)n, sizeof(double)), calloc((size_t)n, sizeof(double))};
    int st[2] = {0, 0};

    for (int i = 0; i < n; i++)
        for (int j = 0; j < 2; j++) {
            int k = (i + j) % 2;
            nr_hs h;

            nr_handshake(ctx, ports[k], NULL, &h);
            v[k][i] = h.ms;
            st[k] += h.stapled;
        }
    for (int k = 0; k < 2; k++) {
        out[k][0] = median(v[k], n);
        out[k][1] = pct(v[k], n, 0.99);
        out[k][2] = v[k][n - 1];
        out[k][3] = (double)st[k] / n;
        free(v[k]);
    }
    SSL_CTX_free(ctx);
}

int main(int argc, char **argv)
{
    int rounds = 15, trials = 10;
    double seconds = 2.0;
    bool json = false;
    nr_nginx srv[3] = {0};
    int port[3];
    double rate[3][64], share[3][64], ratio[64], ratio_ng[64];
    int first_start[2] = {0, 0}, first_reload[2] = {0, 0};
    double lat[2][2][4]; /* kind, good/hang, med/p99/max/stapled */
    char url[128], cache[1300];

    if (argc < 2) {
        fprintf(stderr, "usage: %s MODULE.so [--rounds N] [--seconds S] [--trials N] [--json]\n", argv[0]);
        return 2;
    }
    module_so = realpath(argv[1], NULL);
    if (module_so == NULL) {
        perror(argv[1]);
        return 2;
    }
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (strcmp(argv[i], "--trials") == 0 && i + 1 < argc)
            trials = atoi(argv[++i]);
        else if (strcmp(argv[i], "--json") == 0)
            json = true;
    }
    if (rounds < 1 || rounds > 64)
        rounds = 9;
    signal(SIGPIPE, SIG_IGN);
    dir = tr_tmpdir("bench-nginx");
    chmod(dir, 0755);
    resp = evil_start(&pki, wall_now, NULL, 3600);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/k0/", evil_port(resp));
    snprintf(pkidir, sizeof(pkidir), "%s/pki", dir);
    mkdir(pkidir, 0755);
    if (resp == NULL || !tp_pki_make(&pki, url, url, (int64_t)time(NULL)) || !tp_pki_write(&pki, pkidir))
        return 1;
    evil_set_slot(resp, 0, EVIL_GOOD);
    evil_set_slot(resp, 1, EVIL_HANG);

    /* 1. Throughput, interleaved rounds. */
    fprintf(stderr, "handshakes per second, %d rounds of %.1f s, servers interleaved handshake by handshake ...\n",
            rounds, seconds);
    for (int k = 0; k < 3; k++) {
        char name[32];

        port[k] = tr_free_port();
        snprintf(name, sizeof(name), "tp-%s", kind_name[k]);
        if (!start_kind(&srv[k], name, (server_kind)k, port[k], 0, NULL))
            goto fail;
        first_stapled(port[k]); /* nginx's own stapling fetches now */
    }
    tr_sleep_ms(500);
    nr_parse_staples = false; /* the client's work must not depend on the staple */
    for (int r = 0; r < rounds; r++) {
        double rt[3], sh[3];

        measure(port, (unsigned)r, seconds, rt, sh); /* each round starts elsewhere */
        for (int k = 0; k < 3; k++) {
            rate[k][r] = rt[k];
            share[k][r] = sh[k];
        }
    }
    for (int r = 0; r < rounds; r++) {
        ratio[r] = rate[S_MODULE][r] / rate[S_NONE][r];
        ratio_ng[r] = rate[S_NGINX][r] / rate[S_NONE][r];
        fprintf(stderr, "  round %2d: module %.0f, ssl_stapling %.0f, none %.0f handshakes/s\n", r + 1,
                rate[S_MODULE][r], rate[S_NGINX][r], rate[S_NONE][r]);
    }
    nr_parse_staples = true;
    for (int k = 0; k < 3; k++)
        nr_stop(&srv[k]);

    /* 2. First handshake after start and after reload. */
    fprintf(stderr, "first handshakes, %d trials ...\n", trials);
    for (int t = 0; t < trials; t++)
        for (int k = 0; k < 2; k++) {
            nr_nginx n;
            char name[32];
            int p = tr_free_port();

            snprintf(name, sizeof(name), "first-%s-%d", kind_name[k], t);
            if (!start_kind(&n, name, (server_kind)k, p, 0, NULL))
                goto fail;
            first_start[k] += first_stapled(p);
            tr_sleep_ms(200);
            if (nr_reload(&n, 1, 20000))
                first_reload[k] += first_stapled(p);
            nr_stop(&n);
        }

    /* 3. Latency with a working and with a hung responder, the module and
     * nginx's own stapling side by side. */
    fprintf(stderr, "latency while the responder hangs ...\n");
    snprintf(cache, sizeof(cache), "%s/cache", dir);
    for (int phase = 0; phase < 2; phase++) {
        nr_nginx n[2] = {0};
        int p[2] = {tr_free_port(), tr_free_port()};
        double out[2][4];

        if (phase == 1)
            nr_age_cache(cache, &pki); /* held response due for refresh: the engine asks at once */
        for (int k = 0; k < 2; k++) {
            char name[32];

            snprintf(name, sizeof(name), "%s-%s", phase ? "hang" : "lat", kind_name[k]);
            if (!start_kind(&n[k], name, (server_kind)k, p[k], phase, k == S_MODULE ? cache : NULL)) {
                nr_stop(&n[0]);
                goto fail;
            }
            first_stapled(p[k]); /* nginx's own: its fetch starts now (and hangs in phase 1) */
        }
        tr_sleep_ms(300);
        latencies(p, 400, out);
        for (int k = 0; k < 2; k++) {
            memcpy(lat[k][phase], out[k], sizeof(out[k]));
            nr_stop(&n[k]);
        }
    }
    evil_stop(resp);

    {
        double m = median(rate[S_MODULE], rounds), g = median(rate[S_NGINX], rounds),
               z = median(rate[S_NONE], rounds), q = median(ratio, rounds),
               qg = median(ratio_ng, rounds);
        double sm = median(share[S_MODULE], rounds), sg = median(share[S_NGINX], rounds);

        if (json) {
            printf("{\"rounds\":%d,\"seconds\":%.1f,\"hs_per_s_module\":%.0f,\"hs_per_s_ssl_stapling\":%.0f,"
                   "\"hs_per_s_none\":%.0f,\"ratio_module_none\":%.3f,\"ratio_ssl_stapling_none\":%.3f,"
                   "\"stapled_share_module\":%.3f,\"stapled_share_ssl_stapling\":%.3f,"
                   "\"first_after_start_module\":%.2f,\"first_after_start_ssl_stapling\":%.2f,"
                   "\"first_after_reload_module\":%.2f,\"first_after_reload_ssl_stapling\":%.2f,"
                   "\"lat_ms_good_module\":%.2f,\"lat_ms_good_ssl_stapling\":%.2f,"
                   "\"lat_ms_hang_module\":%.2f,\"lat_ms_hang_ssl_stapling\":%.2f,"
                   "\"lat_p99_ms_hang_module\":%.2f,\"lat_p99_ms_hang_ssl_stapling\":%.2f,"
                   "\"stapled_hang_module\":%.2f,\"stapled_hang_ssl_stapling\":%.2f}\n",
                   rounds, seconds, m, g, z, q, qg, sm, sg,
                   (double)first_start[0] / trials, (double)first_start[1] / trials,
                   (double)first_reload[0] / trials, (double)first_reload[1] / trials, lat[0][0][0],
                   lat[1][0][0], lat[0][1][0], lat[1][1][0], lat[0][1][1], lat[1][1][1], lat[0][1][3],
                   lat[1][1][3]);
        } else {
            printf("| measure | srvocsp module | nginx ssl_stapling | no stapling |\n");
            printf("|---|---|---|---|\n");
            printf("| TLS 1.3 handshakes/s, median of %d rounds (interleaved per handshake) | %.0f | %.0f | %.0f |\n",
                   rounds, m, g, z);
            printf("| ratio to no stapling, median of the per-round ratios | %.3f | %.3f | 1 |\n", q, qg);
            printf("| handshakes stapled during the rounds | %.1f %% | %.1f %% | - |\n", 100 * sm,
                   100 * sg);
            printf("| first handshake stapled, after start (%d trials) | %d %% | %d %% | - |\n", trials,
                   100 * first_start[0] / trials, 100 * first_start[1] / trials);
            printf("| first handshake stapled, after reload (%d trials) | %d %% | %d %% | - |\n", trials,
                   100 * first_reload[0] / trials, 100 * first_reload[1] / trials);
            printf("| handshake latency, responder answering: median / p99 | %.2f / %.2f ms | %.2f / %.2f ms | - |\n",
                   lat[0][0][0], lat[0][0][1], lat[1][0][0], lat[1][0][1]);
            printf("| handshake latency, responder hung: median / p99 / max | %.2f / %.2f / %.2f ms | "
                   "%.2f / %.2f / %.2f ms | - |\n",
                   lat[0][1][0], lat[0][1][1], lat[0][1][2], lat[1][1][0], lat[1][1][1], lat[1][1][2]);
            printf("| handshakes stapled while it hangs | %.0f %% | %.0f %% | - |\n", 100 * lat[0][1][3],
                   100 * lat[1][1][3]);
        }
    }
    tp_pki_free(&pki);
    tr_rmrf(dir);
    free(dir);
    return 0;
fail:
    for (int k = 0; k < 3; k++)
        nr_stop(&srv[k]);
    evil_stop(resp);
    tr_rmrf(dir);
    return 1;
}
