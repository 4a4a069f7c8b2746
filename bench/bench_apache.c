/*
 * Apache with mod_srvocsp against mod_ssl's own stapling (SSLUseStapling)
 * and against no stapling, on one machine in one run (bench/apache.sh).
 *
 *  1. TLS 1.3 handshakes per second: client threads take the three
 *     servers in turn, one full handshake each (asking for a staple),
 *     timing each; rounds of a fixed time; medians and the median of the
 *     per-round module/none ratios.
 *  2. The first handshake after start, after `apache2 -k graceful`, and
 *     after a stop and start while the responder is down: how often it
 *     carries a staple, module versus mod_ssl.
 *  3. A hung responder (it takes the request and never answers): the
 *     first handshake after start, then a series, module and mod_ssl side
 *     by side (mod_ssl with its default SSLStaplingResponderTimeout).
 *
 * bench_apache MODULE.so [--rounds N] [--seconds S] [--trials N]
 */
#define _GNU_SOURCE
#include <openssl/ocsp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "apacherun.h"
#include "evil.h"
#include "nginxrun.h"
#include "peers.h"
#include "testpki.h"

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

typedef enum { S_MODULE, S_MODSSL, S_NONE } server_kind;
static const char *const kind_name[] = {"mod_srvocsp", "mod_ssl", "none"};

/* One apache2 of |k| with one child; |slot| picks the responder's
 * behaviour; |cache| is the module's directory (NULL: none). */
static bool start_kind(ar_apache *a, const char *name, server_kind k, int port, int slot,
                       const char *cache)
{
    char p[1200], body[8192], extra[1500] = "", globals[1500] = "";

    snprintf(p, sizeof(p), "%s/%s", dir, name);
    mkdir(p, 0755);
    ar_init(a, p, k == S_MODULE ? module_so : NULL, "");
    if (k == S_MODULE) {
        snprintf(globals, sizeof(globals), "SrvOcspDirectory %s\nSrvOcspUrlTimeout 5",
                 cache ? cache : "none");
        snprintf(extra, sizeof(extra), "SrvOcsp on\n  SrvOcspResponderUrl http://127.0.0.1:%d/k%d/",
                 evil_port(resp), slot);
    } else if (k == S_MODSSL) {
        snprintf(globals, sizeof(globals),
                 "LoadModule socache_shmcb_module " AR_MODULES_DIR "/mod_socache_shmcb.so\n"
                 "SSLStaplingCache shmcb:%s/run/stapling(128000)",
                 p);
        snprintf(extra, sizeof(extra),
                 "SSLUseStapling on\n  SSLStaplingForceURL http://127.0.0.1:%d/k%d/",
                 evil_port(resp), slot);
    }
    snprintf(body, sizeof(body),
             "Listen 127.0.0.1:%d\nSSLSessionCache none\nSSLSessionTickets off\n%s\n"
             "<VirtualHost 127.0.0.1:%d>\n  ServerName good.test\n  SSLEngine on\n"
             "  SSLCertificateFile %s/good.pem\n  SSLCertificateKeyFile %s/good.key\n"
             "  SSLCertificateFile %s/good-rsa.pem\n  SSLCertificateKeyFile %s/good-rsa.key\n"
             "  %s\n</VirtualHost>\n",
             port, globals, port, pkidir, pkidir, pkidir, pkidir, extra);
    return ar_write_conf(a, 1, body) && ar_start(a, port, 1);
}

/* ---- 1. throughput ---- */

typedef struct load {
    const int *ports;
    unsigned first;
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
                    double *share)
{
    load l[CLIENT_THREADS];
    pthread_t th[CLIENT_THREADS];
    long done[3] = {0}, stapled[3] = {0};
    double ms[3] = {0}, t0 = tr_now_ms();

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
        share[k] = done[k] ? (double)stapled[k] / (double)done[k] : 0;
    }
}

/* ---- 2, 3 ---- */

static nr_hs first_hs(int port)
{
    SSL_CTX *ctx = nr_client_ctx(NULL, TLS1_3_VERSION);
    nr_hs h;

    nr_handshake(ctx, port, NULL, &h);
    SSL_CTX_free(ctx);
    return h;
}

static bool first_stapled(int port)
{
    nr_hs h = first_hs(port);

    /* A staple that is not a successful response (mod_ssl's fake
     * tryLater) carries no status for the certificate. */
    return h.ok && h.stapled && h.cert_status >= 0;
}

/* |n| handshakes to each of two servers, alternating; per server: median,
 * p99, max (ms), share stapled with a status, share stapled without one. */
static void latencies(const int *ports, int n, double out[2][5])
{
    SSL_CTX *ctx = nr_client_ctx(NULL, TLS1_3_VERSION);
    double *v[2] = {calloc((size_t)n, sizeof(double)), calloc((size_t)n, sizeof(double))};
    int st[2] = {0, 0}, bogus[2] = {0, 0};

    for (int i = 0; i < n; i++)
        for (int j = 0; j < 2; j++) {
            int k = (i + j) % 2;
            nr_hs h;

            nr_handshake(ctx, ports[k], NULL, &h);
            v[k][i] = h.ms;
            st[k] += h.stapled && h.cert_status >= 0;
            bogus[k] += h.stapled && h.cert_status < 0;
        }
    for (int k = 0; k < 2; k++) {
        out[k][0] = median(v[k], n);
        out[k][1] = pct(v[k], n, 0.99);
        out[k][2] = v[k][n - 1];
        out[k][3] = (double)st[k] / n;
        out[k][4] = (double)bogus[k] / n;
        free(v[k]);
    }
    SSL_CTX_free(ctx);
}

int main(int argc, char **argv)
{
    int rounds = 15, trials = 5;
    double seconds = 2.0;
    ar_apache srv[3];
    int port[3];
    double rate[3][64], share[3][64], ratio[64], ratio_ssl[64];
    int first_start[2] = {0, 0}, first_graceful[2] = {0, 0}, first_down[2] = {0, 0};
    double hang_first[2] = {0, 0}, lat[2][5], hang_first_saved = 0;
    char url[128], cache[1300];

    if (argc < 2) {
        fprintf(stderr, "usage: %s MODULE.so [--rounds N] [--seconds S] [--trials N]\n", argv[0]);
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
    }
    if (rounds < 1 || rounds > 64)
        rounds = 9;
    if (trials < 1)
        trials = 1;
    signal(SIGPIPE, SIG_IGN);
    memset(srv, 0, sizeof(srv));
    dir = tr_tmpdir("bench-apache");
    chmod(dir, 0755);
    resp = evil_start(&pki, wall_now, NULL, 3600);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/k0/", evil_port(resp));
    snprintf(pkidir, sizeof(pkidir), "%s/pki", dir);
    mkdir(pkidir, 0755);
    if (resp == NULL || !tp_pki_make(&pki, url, url, (int64_t)time(NULL)) ||
        !tp_pki_write(&pki, pkidir))
        return 1;
    evil_set_slot(resp, 0, EVIL_GOOD);
    evil_set_slot(resp, 1, EVIL_HANG);

    /* 1. Throughput, interleaved rounds. */
    fprintf(stderr, "handshakes per second, %d rounds of %.1f s, interleaved handshake by handshake ...\n",
            rounds, seconds);
    for (int k = 0; k < 3; k++) {
        char name[32];

        port[k] = tr_free_port();
        snprintf(name, sizeof(name), "tp-%s", kind_name[k]);
        if (!start_kind(&srv[k], name, (server_kind)k, port[k], 0, NULL))
            goto fail;
        first_hs(port[k]); /* mod_ssl's own stapling fetches now */
    }
    tr_sleep_ms(500);
    nr_parse_staples = false; /* the client's work must not depend on the staple */
    for (int r = 0; r < rounds; r++) {
        double rt[3], sh[3];

        measure(port, (unsigned)r, seconds, rt, sh);
        for (int k = 0; k < 3; k++) {
            rate[k][r] = rt[k];
            share[k][r] = sh[k];
        }
        ratio[r] = rate[S_MODULE][r] / rate[S_NONE][r];
        ratio_ssl[r] = rate[S_MODSSL][r] / rate[S_NONE][r];
        fprintf(stderr, "  round %2d: mod_srvocsp %.0f, mod_ssl %.0f, none %.0f handshakes/s\n",
                r + 1, rate[S_MODULE][r], rate[S_MODSSL][r], rate[S_NONE][r]);
    }
    nr_parse_staples = true;
    for (int k = 0; k < 3; k++)
        ar_stop(&srv[k]);

    /* 2. First handshakes. */
    fprintf(stderr, "first handshakes, %d trials ...\n", trials);
    for (int t = 0; t < trials; t++)
        for (int k = 0; k < 2; k++) {
            ar_apache a;
            char name[48];
            int p = tr_free_port();

            snprintf(name, sizeof(name), "first-%s-%d", kind_name[k], t);
            snprintf(cache, sizeof(cache), "%s/cache-%d", dir, t);
            if (!start_kind(&a, name, (server_kind)k, p, 0, cache))
                goto fail;
            first_start[k] += first_stapled(p);
            if (ar_graceful(&a, p, 1, 20000))
                first_graceful[k] += first_stapled(p);
            ar_stop(&a);
            evil_set_slot(resp, 0, EVIL_HTTP503); /* the responder is down */
            if (ar_start(&a, p, 1))
                first_down[k] += first_stapled(p);
            ar_stop(&a);
            evil_set_slot(resp, 0, EVIL_GOOD);
        }

    /* 3. A hung responder, both servers side by side. */
    fprintf(stderr, "a hung responder (mod_ssl waits its SSLStaplingResponderTimeout) ...\n");
    {
        ar_apache a[2];
        int p[2] = {tr_free_port(), tr_free_port()};

        for (int k = 0; k < 2; k++) {
            char name[32];
            double t0;

            snprintf(name, sizeof(name), "hang-%s", kind_name[k]);
            if (!start_kind(&a[k], name, (server_kind)k, p[k], 1, NULL))
                goto fail;
            t0 = tr_now_ms();
            first_hs(p[k]);
            hang_first[k] = tr_now_ms() - t0;
        }
        latencies(p, 200, lat);
        for (int k = 0; k < 2; k++)
            ar_stop(&a[k]);
    }
    {
        /* The module with a saved response due for refresh (its refresh
         * hangs): what its first handshake costs and carries. */
        ar_apache a;
        int p = tr_free_port();
        nr_hs h;
        double t0;

        snprintf(cache, sizeof(cache), "%s/cache-0", dir);
        nr_age_cache(cache, &pki);
        if (!start_kind(&a, "hang-saved", S_MODULE, p, 1, cache))
            goto fail;
        t0 = tr_now_ms();
        h = first_hs(p);
        hang_first_saved = tr_now_ms() - t0;
        if (!(h.stapled && h.cert_status >= 0))
            hang_first_saved = -hang_first_saved; /* shown as not stapled */
        ar_stop(&a);
    }
    evil_stop(resp);

    {
        double m = median(rate[S_MODULE], rounds), s = median(rate[S_MODSSL], rounds),
               z = median(rate[S_NONE], rounds), q = median(ratio, rounds),
               qs = median(ratio_ssl, rounds), sm = median(share[S_MODULE], rounds),
               ss = median(share[S_MODSSL], rounds);

        printf("| measure | mod_srvocsp | mod_ssl SSLUseStapling | no stapling |\n");
        printf("|---|---|---|---|\n");
        printf("| TLS 1.3 handshakes/s, median of %d rounds (interleaved per handshake) | %.0f | %.0f | %.0f |\n",
               rounds, m, s, z);
        printf("| ratio to no stapling, median of the per-round ratios | %.3f | %.3f | 1 |\n", q, qs);
        printf("| handshakes stapled during the rounds | %.1f %% | %.1f %% | - |\n", 100 * sm,
               100 * ss);
        printf("| first handshake stapled, after start (%d trials) | %d %% | %d %% | - |\n", trials,
               100 * first_start[0] / trials, 100 * first_start[1] / trials);
        printf("| first handshake stapled, after apache2 -k graceful | %d %% | %d %% | - |\n",
               100 * first_graceful[0] / trials, 100 * first_graceful[1] / trials);
        printf("| first handshake stapled, after a stop and start with the responder down | %d %% | %d %% | - |\n",
               100 * first_down[0] / trials, 100 * first_down[1] / trials);
        printf("| responder hung: first handshake after start | %.1f ms (no staple) | %.1f ms | - |\n",
               hang_first[0], hang_first[1]);
        printf("| responder hung, a saved response due for refresh: first handshake | %.1f ms (%s) | - | - |\n",
               hang_first_saved < 0 ? -hang_first_saved : hang_first_saved,
               hang_first_saved < 0 ? "no staple" : "stapled");
        printf("| responder hung, next 200 handshakes: median / p99 / max | %.2f / %.2f / %.2f ms | "
               "%.2f / %.2f / %.2f ms | - |\n",
               lat[0][0], lat[0][1], lat[0][2], lat[1][0], lat[1][1], lat[1][2]);
        printf("| ... stapled with a status / stapled without one (fake tryLater) | %.0f %% / %.0f %% | %.0f %% / %.0f %% | - |\n",
               100 * lat[0][3], 100 * lat[0][4], 100 * lat[1][3], 100 * lat[1][4]);
    }
    tp_pki_free(&pki);
    tr_rmrf(dir);
    free(dir);
    return 0;
fail:
    for (int k = 0; k < 3; k++)
        ar_stop(&srv[k]);
    evil_stop(resp);
    tr_rmrf(dir);
    return 1;
}
