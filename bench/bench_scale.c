/*
 * The refresh engine at scale, and startup from a directory.
 *
 *   bench_scale N [--issuer p256|p384|rsa2048] [--startup-only] [--json]
 *
 * N certificates (one issuing CA) against the fast responder (pre-signed
 * responses over HTTP keep-alive, in a child process so its CPU is not
 * ours): wall time until every handle serves, verified responses per
 * second, CPU time per refresh, resident memory per handle beside the
 * response bytes (the first fetch: each CPU figure includes its
 * srvocsp_open).  Then the steady state: the engine's clock moves six days
 * on, the responder has newer responses, and every handle refreshes; CPU
 * per refresh of that round is the recurring cost, without the opens.
 * Then: the same certificates opened with their responses
 * already on disk and no responder at all, time until all serve.  Then
 * the way operators do it today, one `openssl ocsp` process per
 * certificate run sequentially (on 100 of them), and the ratio.
 *
 * Beside the CPU per refresh it measures, in the same process, the one
 * step no implementation can skip: checking one signature of the issuer's
 * algorithm (an EVP_DigestVerify loop on the issuer's key over a message
 * the size of a response's signed part), and prints the ratio of the two:
 * how far a refresh is from the cryptographic floor.  The steady state
 * runs ROUNDS times, each round with a check measured just before it; the
 * figures are the medians, the ratio's spread is printed beside them.
 *
 * --startup-only measures the startup from the directory alone (no
 * responder, no openssl comparison): the figure for 100,000 certificates
 * without the minutes the other parts take at that size.  --fetch-only
 * measures the fetch from the responder alone (for a profile of it).
 * --perf-ctl FIFO writes "enable" and "disable" to perf's control FIFO
 * around the steady-state round (with --startup-only, around the startup
 * verified on the pool; with --fetch-only, around the first fetch), so
 * `perf record -D -1 --control fifo:FIFO` profiles that part alone.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "exchange_floor.h"
#include "fast_responder.h"
#include "fake.h"
#include "internal.h"
#include "peers.h"
#include "srvocsp.h"
#include "store/store.h"
#include "testpki.h"

#define OPENSSL_SAMPLE 100

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* When the steady-state rounds happen, after the first fetch: each past
 * every refresh point of the response before, valid 7 days. */
#define REFRESH_AT (6 * 86400)
/* Steady-state rounds: CPU per refresh and its ratio are the medians of
 * these, each round's ratio taken to a signature check measured just
 * before it (a single round and a single check each moved 10-20 % between
 * runs on a shared machine). */
#define ROUNDS 3

/* CPU time, like the refresh's figure: other work on a shared machine
 * does not inflate it as it inflates wall time. */
static double thread_cpu_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Context switches of the whole process so far, voluntary (a wait) and
 * not (preempted): each wakeup between threads costs both sides. */
static double switches(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_nvcsw + (double)ru.ru_nivcsw;
}

static double cpu_s(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* One signature check of |key|'s algorithm with SHA-256 (what the
 * responses here are signed with), in microseconds of CPU: the median of 7
 * batches of EVP_DigestVerify over a 300-byte message, about the size of
 * a response's tbsResponseData.  Signed with the private key, checked with
 * |pub|, the public key as parsed from the certificate: what verification
 * uses (a key that also holds its private half verifies P-384 about 1.6x
 * slower here, which made the floor look higher than it is). */
static double sig_check_us(EVP_PKEY *key, EVP_PKEY *pub)
{
    unsigned char msg[300], sig[1024];
    size_t siglen = sizeof(sig);
    double batch[7], t;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int b, i, iters = 400;

    memset(msg, 0x5a, sizeof(msg));
    if (ctx == NULL || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) != 1 ||
        EVP_DigestSign(ctx, sig, &siglen, msg, sizeof(msg)) != 1) {
        EVP_MD_CTX_free(ctx);
        return -1;
    }
    for (b = 0; b < 7; b++) {
        t = thread_cpu_s();
        for (i = 0; i < iters; i++) {
            EVP_MD_CTX_reset(ctx);
            if (EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pub) != 1 ||
                EVP_DigestVerify(ctx, sig, siglen, msg, sizeof(msg)) != 1) {
                EVP_MD_CTX_free(ctx);
                return -1;
            }
        }
        batch[b] = (thread_cpu_s() - t) * 1e6 / iters;
    }
    EVP_MD_CTX_free(ctx);
    for (b = 1; b < 7; b++) /* insertion sort: the median of 7 */
        for (i = b; i > 0 && batch[i - 1] > batch[i]; i--) {
            t = batch[i];
            batch[i] = batch[i - 1];
            batch[i - 1] = t;
        }
    return batch[3];
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;

    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Waits until every handle serves; returns seconds, or -1 on timeout. */
static double wait_all(srvocsp_handle **h, int n, double t0, double limit)
{
    int next = 0;

    while (next < n) {
        srvocsp_response *r = srvocsp_get1_response(h[next]);

        if (r != NULL) {
            srvocsp_response_free(r);
            next++;
            continue;
        }
        if (now_s() - t0 > limit)
            return -1;
        usleep(1000);
    }
    return now_s() - t0;
}

/* The median of |n| values (sorts them). */
static double median(double *v, int n)
{
    int i, j;

    for (i = 1; i < n; i++)
        for (j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double x = v[j];

            v[j] = v[j - 1];
            v[j - 1] = x;
        }
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* A line to perf's control FIFO; the open blocks until perf reads it, which
 * is what keeps the profile's edges at the round's. */
static void perf_control(const char *fifo, const char *cmd)
{
    int fd;

    if (fifo == NULL)
        return;
    fd = open(fifo, O_WRONLY);
    if (fd < 0 || write(fd, cmd, strlen(cmd)) != (ssize_t)strlen(cmd))
        fprintf(stderr, "bench_scale: cannot write to %s\n", fifo);
    if (fd >= 0)
        close(fd);
    usleep(20000);
}

/* One bare exchange's CPU (bench/exchange_floor.c) with the requests the
 * engine sends, over as many connections as it keeps to one responder,
 * and one made with libcurl (in |*curl_us|): the medians of 3 passes over
 * up to 5,000 of the certificates. */
static double exchange_floor(tp_cert *leaves, int n, tp_cert *ca, const char *url, int port,
                             double *curl_us)
{
    char prefix[64], **paths;
    double pass[3] = {0}, cpass[3] = {0};
    int i, m = n < 5000 ? n : 5000, ok = 0;
    size_t skip;

    snprintf(prefix, sizeof(prefix), "http://127.0.0.1:%d", port);
    skip = strlen(prefix);
    if ((paths = calloc((size_t)m, sizeof(*paths))) == NULL)
        return -1;
    for (i = 0; i < m; i++) {
        srvocsp__request rq;

        memset(&rq, 0, sizeof(rq));
        if (srvocsp__request_build(leaves[i].cert, ca->cert, SRVOCSP_HASH_SHA1, url, 0, &rq) !=
                SRVOCSP_OK ||
            rq.get_urls[0] == NULL || strncmp(rq.get_urls[0], prefix, skip) != 0 ||
            (paths[i] = strdup(rq.get_urls[0] + skip)) == NULL) {
            srvocsp__request_clear(&rq);
            goto out;
        }
        srvocsp__request_clear(&rq);
    }
    for (ok = 0; ok < 3; ok++)
        if ((pass[ok] = bench_exchange_floor_us(port, paths, m, 4)) < 0 ||
            (cpass[ok] = bench_exchange_curl_us(prefix, paths, m, 4)) < 0)
            break;
out:
    for (i = 0; i < m; i++)
        free(paths[i]);
    free(paths);
    *curl_us = ok == 3 ? median(cpass, 3) : -1;
    return ok == 3 ? median(pass, 3) : -1;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 1000, i, port = 0, renewed = 0;
    bool json = false, startup_only = false, fetch_only = false;
    const char *issuer_alg = "p256";
    tp_key_type issuer_key = TP_KEY_EC;
    tp_cert ca;
    double round_csw[ROUNDS] = {0}, csw0, csw_steady = 0;
    double floor_us, round_cpu[ROUNDS] = {0}, round_ratio[ROUNDS] = {0}, round_floor[ROUNDS + 1] = {0};
    tp_pki pki;
    tp_cert *leaves;
    unsigned char **der;
    size_t *len, total_bytes = 0;
    int64_t t = (int64_t)time(NULL);
    srvocsp_handle **h;
    srvocsp_params p;
    STACK_OF(X509) *chain;
    bench_responder responder;
    char url[128], *dir;
    double t0, c0, wall, cpu, startup = 0, startup_cpu = 0, openssl_per = 0;
    double startup_inline = 0, startup_inline_cpu = 0, refresh_wall = 0, refresh_cpu = 0;
    double ratio_lo = 0, ratio_hi = 0, exchange_us = 0, curl_us = 0;
    unsigned char **der2[ROUNDS];
    size_t *len2[ROUNDS];
    int r;
    manual_clock mclk;
    srvocsp_engine_config ec;
    long rss0, rss1;
    srvocsp_engine_stats st;
    srvocsp_engine *eng;
    const char *perf_ctl = NULL;

    for (i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--startup-only") == 0) {
            startup_only = true;
        } else if (strcmp(argv[i], "--fetch-only") == 0) {
            fetch_only = true;
        } else if (strcmp(argv[i], "--perf-ctl") == 0 && i + 1 < argc) {
            perf_ctl = argv[++i];
        } else if (strcmp(argv[i], "--issuer") == 0 && i + 1 < argc) {
            issuer_alg = argv[++i];
            issuer_key = strcmp(issuer_alg, "rsa2048") == 0 ? TP_KEY_RSA
                         : strcmp(issuer_alg, "p384") == 0  ? TP_KEY_EC384
                         : strcmp(issuer_alg, "p256") == 0  ? TP_KEY_EC
                                                            : (tp_key_type)-1;
            if ((int)issuer_key < 0) {
                fprintf(stderr, "bench_scale: --issuer takes p256, p384 or rsa2048\n");
                return 2;
            }
        } else {
            fprintf(stderr, "usage: bench_scale N [--issuer p256|p384|rsa2048] [--startup-only] "
                            "[--fetch-only] [--perf-ctl FIFO] [--json]\n");
            return 2;
        }
    }
    if (n < 1)
        return 2;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!tp_pki_make(&pki, "http://127.0.0.1:9/", "http://127.0.0.1:9/", t))
        return 1;
    {
        /* The issuing CA, with the key algorithm asked for. */
        tp_cert_opts o;

        memset(&o, 0, sizeof(o));
        o.cn = "Bench Issuing CA";
        o.serial = 0x77;
        o.issuer = &pki.root;
        o.ca = true;
        o.not_before = t - 86400;
        o.not_after = t + 2 * 365 * 86400;
        o.key_type = issuer_key;
        if (!tp_cert_make(&ca, &o))
            return 1;
    }
    /* The fast responder, in its own process, forked before the leaves
     * and responses exist (bench/fast_responder.c says why). */
    if (!bench_responder_start(&responder, &pki))
        return 1;
    port = responder.port;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/fast/", port);

    floor_us = round_floor[0] = sig_check_us(ca.key, X509_get0_pubkey(ca.cert));
    leaves = calloc((size_t)n, sizeof(*leaves));
    der = calloc((size_t)n, sizeof(*der));
    len = calloc((size_t)n, sizeof(*len));
    for (r = 0; r < ROUNDS; r++) {
        der2[r] = calloc((size_t)n, sizeof(*der2[r]));
        len2[r] = calloc((size_t)n, sizeof(*len2[r]));
    }
    h = calloc((size_t)n, sizeof(*h));
    for (i = 0; i < n; i++) {
        tp_resp_opts ro;

        if (!tp_leaf_make(&leaves[i], &ca, &pki.good, "host", i, 0x100000 + i, t))
            return 1;
        tp_resp_opts_init(&ro, &leaves[i], &ca, t);
        ro.next_update = t + 7 * 86400;
        der[i] = tp_response(&ro, &len[i]);
        total_bytes += len[i];
        /* The responder's next answers, one per steady-state round. */
        for (r = 0; r < ROUNDS && !startup_only; r++) {
            int64_t at = t + (int64_t)(r + 1) * REFRESH_AT;

            tp_resp_opts_init(&ro, &leaves[i], &ca, at - 3600);
            ro.next_update = at + 7 * 86400;
            der2[r][i] = tp_response(&ro, &len2[r][i]);
        }
    }

    /* The responses for the first fetch, in place before it. */
    if (!bench_responder_feed(&responder, der, len, n, 0x100000))
        return 1;

    chain = sk_X509_new_null();
    sk_X509_push(chain, ca.cert);
    srvocsp_params_init(&p);
    p.responder_url = url;
    p.flags = SRVOCSP_OPEN_ASYNC;
    wall = cpu = 0;
    rss0 = rss1 = 0;
    memset(&st, 0, sizeof(st));
    if (!startup_only) {
        /* The system's time, on a clock the steady-state round can move. */
        manual_clock_init(&mclk, t);
        srvocsp_engine_config_init(&ec);
        ec.clock = &mclk.clock;
        eng = srvocsp_engine_new(&ec);
        p.engine = eng;
        rss0 = rss_kib();
        if (fetch_only)
            perf_control(perf_ctl, "enable\n");
        c0 = cpu_s();
        t0 = now_s();
        for (i = 0; i < n; i++)
            h[i] = srvocsp_open(leaves[i].cert, chain, &p);
        wall = wait_all(h, n, t0, 600);
        cpu = cpu_s() - c0;
        if (fetch_only)
            perf_control(perf_ctl, "disable\n");
        rss1 = rss_kib();
        srvocsp_engine_get_stats(eng, &st);

        /* The steady state: every handle's refresh comes due at once,
         * ROUNDS times. */
        for (r = 0; r < ROUNDS; r++) {
            int64_t at = t + (int64_t)(r + 1) * REFRESH_AT;
            double w0;

            if (!bench_responder_feed(&responder, der2[r], len2[r], n, 0x100000))
                return 1;
            srvocsp_engine_settle(eng, 60000);
            round_floor[r + 1] = sig_check_us(ca.key, X509_get0_pubkey(ca.cert));
            if (!fetch_only)
                perf_control(perf_ctl, "enable\n");
            c0 = cpu_s();
            csw0 = switches();
            w0 = now_s();
            manual_clock_set(&mclk, at);
            srvocsp_engine_kick(eng);
            if (srvocsp_engine_settle(eng, 600000) != SRVOCSP_OK)
                return 1;
            round_cpu[r] = (cpu_s() - c0) * 1e6 / n;
            round_csw[r] = (switches() - csw0) / n;
            refresh_wall += (now_s() - w0) / ROUNDS;
            if (!fetch_only)
                perf_control(perf_ctl, "disable\n");
            round_ratio[r] = round_cpu[r] / round_floor[r + 1];
            renewed = 0;
            for (i = 0; i < n; i++) {
                srvocsp_response *resp = srvocsp_get1_response(h[i]);

                renewed += resp != NULL && srvocsp_response_this_update(resp) == at - 3600;
                srvocsp_response_free(resp);
            }
            if (renewed != n) {
                fprintf(stderr, "bench_scale: round %d: %d of %d handles refreshed\n", r + 1,
                        renewed, n);
                break;
            }
        }
        if (renewed == n) {
            refresh_cpu = median(round_cpu, ROUNDS);
            csw_steady = median(round_csw, ROUNDS);
            floor_us = median(round_floor, ROUNDS + 1);
            ratio_lo = ratio_hi = round_ratio[0];
            for (r = 1; r < ROUNDS; r++) {
                ratio_lo = round_ratio[r] < ratio_lo ? round_ratio[r] : ratio_lo;
                ratio_hi = round_ratio[r] > ratio_hi ? round_ratio[r] : ratio_hi;
            }
        }
        for (i = 0; i < n; i++)
            srvocsp_close(h[i]);
        srvocsp_engine_free(eng);
        if (renewed == n)
            exchange_us = exchange_floor(leaves, n, &ca, url, port, &curl_us);
    }

    /* Today's way: one openssl ocsp process per certificate, sequentially. */
    if (!startup_only && !fetch_only) {
        char *d = tr_tmpdir("bench-openssl"), path[1200], cmd[4096];
        int sample = n < OPENSSL_SAMPLE ? n : OPENSSL_SAMPLE, ok = 0;

        snprintf(path, sizeof(path), "%s/ca.pem", d);
        tp_write_cert(path, ca.cert, NULL);
        for (i = 0; i < sample; i++) {
            snprintf(path, sizeof(path), "%s/leaf%d.pem", d, i);
            tp_write_cert(path, leaves[i].cert, NULL);
        }
        t0 = now_s();
        for (i = 0; i < sample; i++) {
            snprintf(cmd, sizeof(cmd),
                     "openssl ocsp -issuer %s/ca.pem -cert %s/leaf%d.pem -url "
                     "http://127.0.0.1:%d/fast/ -VAfile %s/ca.pem -no_nonce -respout %s/r%d.der "
                     ">/dev/null 2>&1",
                     d, d, i, port, d, d, i);
            ok += system(cmd) == 0;
        }
        openssl_per = (now_s() - t0) / sample;
        if (ok != sample)
            fprintf(stderr, "openssl ocsp: %d of %d succeeded\n", ok, sample);
        tr_rmrf(d);
        free(d);
    }
    /* The responder goes before the startup: it is not used there, and while
     * its process lives every page this one wrote before the fork is copied
     * on first write, a cost of the benchmark's fork, not of the library. */
    bench_responder_stop(&responder);

    if (!fetch_only) {
        /* Startup from the directory, no responder. */
        dir = tr_tmpdir("bench-dir");
        for (i = 0; i < n; i++) {
            char name[SRVOCSP__STORE_NAME_LEN + 1], path[1200];

            srvocsp__store_name(leaves[i].cert, ca.cert, name);
            snprintf(path, sizeof(path), "%s/%s.der", dir, name);
            tp_write_file(path, der[i], len[i]);
        }
        p.directory = dir;
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/", tr_free_port()); /* nothing listens */
        p.responder_url = url;
        /* Twice: each stored response verified in srvocsp_open, on the opening
         * thread (the default), then with SRVOCSP_OPEN_DEFER_STORED, verified
         * on the engine's verification threads. */
        for (int round = 0; round < 2; round++) {
            double s;

            eng = srvocsp_engine_new(NULL);
            p.engine = eng;
            p.flags = SRVOCSP_OPEN_ASYNC | (round ? SRVOCSP_OPEN_DEFER_STORED : 0);
            if (round && startup_only)
                perf_control(perf_ctl, "enable\n");
            c0 = cpu_s();
            t0 = now_s();
            for (i = 0; i < n; i++)
                h[i] = srvocsp_open(leaves[i].cert, chain, &p);
            s = wait_all(h, n, t0, 600);
            if (round && startup_only)
                perf_control(perf_ctl, "disable\n");
            if (round) {
                startup = s;
                startup_cpu = cpu_s() - c0;
            } else {
                startup_inline = s;
                startup_inline_cpu = cpu_s() - c0;
            }
            for (i = 0; i < n; i++)
                srvocsp_close(h[i]);
            srvocsp_engine_free(eng);
        }
        tr_rmrf(dir);
        free(dir);
    }


    {
        double per_handle = ((double)(rss1 - rss0) * 1024.0 - (double)total_bytes) / n;

        double per_refresh = cpu * 1e6 / n, per_steady = refresh_cpu;
        double ratio_steady = median(round_ratio, ROUNDS);

        if (startup_only)
            printf(json ? "{\"certificates\":%d,\"issuer\":\"%s\",\"startup_from_dir_s\":%.3f,"
                          "\"startup_cpu_s\":%.3f,\"startup_inline_s\":%.3f,"
                          "\"startup_inline_cpu_s\":%.3f}\n"
                        : "%d certificates (%s issuer): startup from the directory with no "
                          "responder, verified on the pool: %.3f s (%.3f s of CPU); verified in "
                          "srvocsp_open: %.3f s (%.3f s of CPU)\n",
                   n, issuer_alg, startup, startup_cpu, startup_inline, startup_inline_cpu);
        else if (json)
            printf("{\"certificates\":%d,\"issuer\":\"%s\",\"wall_s_all_serving\":%.3f,"
                   "\"verified_per_s\":%.0f,"
                   "\"cpu_us_per_refresh\":%.1f,\"sig_check_us\":%.1f,"
                   "\"ratio_refresh_to_sig_check\":%.2f,\"ratio_rounds_min\":%.2f,"
                   "\"ratio_rounds_max\":%.2f,\"switches_per_refresh\":%.2f,"
                   "\"bare_exchange_us\":%.1f,\"ratio_floor_to_sig_check\":%.2f,"
                   "\"curl_exchange_us\":%.1f,\"ratio_curl_floor_to_sig_check\":%.2f,"
                   "\"cpu_us_per_first_fetch\":%.1f,"
                   "\"ratio_first_fetch_to_sig_check\":%.2f,\"refresh_round_s\":%.3f,"
                   "\"rss_bytes_per_handle\":%.0f,"
                   "\"startup_from_dir_s\":%.3f,\"startup_inline_s\":%.3f,\"openssl_s_per_cert\":%.4f,"
                   "\"ratio_openssl_vs_srvocsp\":%.0f,\"requests\":%llu}\n",
                   n, issuer_alg, wall, n / wall, per_steady, floor_us, ratio_steady, ratio_lo,
                   ratio_hi, csw_steady, exchange_us, (floor_us + exchange_us) / floor_us, curl_us,
                   (floor_us + curl_us) / floor_us,
                   per_refresh, per_refresh / floor_us, refresh_wall, per_handle, startup,
                   startup_inline, openssl_per, openssl_per / (wall / n),
                   (unsigned long long)st.requests_started);
        else
            printf("%d certificates (%s issuer): all serving after %.3f s (%.0f verified "
                   "responses/s, %llu requests), CPU %.1f us per first fetch with its open "
                   "(%.2fx one signature check of %.1f us, measured here); steady state (median of "
                   "%d rounds): every handle refreshed in %.3f s, CPU %.1f us per refresh, %.2fx "
                   "the check (rounds %.2f-%.2fx), %.2f context switches per refresh; one bare "
                   "exchange %.1f us, so one check and one exchange are %.2fx the check (with "
                   "libcurl's exchange, %.1f us: %.2fx); "
                   "%.0f bytes resident per handle beside the "
                   "responses; startup from the directory with no responder: %.3f s (verified in "
                   "srvocsp_open: %.3f s); openssl ocsp "
                   "per certificate: %.1f ms, %.0fx slower\n",
                   n, issuer_alg, wall, n / wall, (unsigned long long)st.requests_started,
                   per_refresh, per_refresh / floor_us, floor_us, ROUNDS, refresh_wall, per_steady,
                   ratio_steady, ratio_lo, ratio_hi, csw_steady, exchange_us,
                   (floor_us + exchange_us) / floor_us, curl_us, (floor_us + curl_us) / floor_us,
                   per_handle, startup, startup_inline, openssl_per * 1e3,
                   openssl_per / (wall / n));
    }
    for (i = 0; i < n; i++) {
        tp_cert_free(&leaves[i]);
        free(der[i]);
        for (r = 0; r < ROUNDS; r++)
            free(der2[r][i]);
    }
    free(leaves);
    free(der);
    free(len);
    for (r = 0; r < ROUNDS; r++) {
        free(der2[r]);
        free(len2[r]);
    }
    free(h);
    sk_X509_free(chain);
    tp_cert_free(&ca);
    tp_pki_free(&pki);
    return wall < 0 || startup < 0 || floor_us < 0 || (!startup_only && renewed != n);
}
