/*
 * TLS 1.3 handshakes per second over memory BIOs, the server stapling vs
 * not (same certificate, client asks for status both times), interleaved
 * in one run; and the cost of the status callback alone, per handshake.
 */
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fake.h"
#include "srvocsp/openssl.h"
#include "testpki.h"
#include "tlspair.h"

#define ROUNDS 11
#define PER_ROUND 150
#define CB_CALLS 200000

static tp_pki pki;
static manual_clock clk;

static void handler(void *arg, const char *url, fake_reply *out)
{
    tp_resp_opts o;

    tp_resp_opts_init(&o, &pki.good, &pki.ca, atomic_load(&clk.now));
    out->body = tp_response(&o, &out->len);
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double rate(SSL_CTX *server, SSL_CTX *client, bool expect_staple)
{
    double t0 = now_s();

    for (int i = 0; i < PER_ROUND; i++) {
        tls_result r = tls_handshake(server, client, "good.test", true);

        if (!r.ok || (r.staple_serial >= 0) != expect_staple) {
            fprintf(stderr, "handshake failed or staple mismatch\n");
            exit(1);
        }
    }
    return PER_ROUND / (now_s() - t0);
}

int main(int argc, char **argv)
{
    fake_transport fake;
    srvocsp_engine *eng;
    srvocsp_params p;
    srvocsp_handle *h;
    SSL_CTX *with, *without, *client;
    double r_with[ROUNDS], r_without[ROUNDS], ratio[ROUNDS], t0, cb_ns;
    bool json = argc > 1 && strcmp(argv[1], "--json") == 0;
    SSL *ssl;

    if (!tp_pki_make(&pki, "http://127.0.0.1:8080/", "http://127.0.0.1:1/", time(NULL)))
        return 1;
    manual_clock_init(&clk, time(NULL));
    fake_init(&fake, &clk, handler, NULL);
    eng = fake_engine_new(&clk, &fake, -1, 0);
    srvocsp_params_init(&p);
    p.engine = eng;
    h = fake_open(pki.good.cert, pki.ca.cert, &p);
    with = tls_server_ctx(&pki.good, &pki.ca);
    without = tls_server_ctx(&pki.good, &pki.ca);
    client = tls_client_ctx(&pki.root, true);
    srvocsp_ssl_ctx_attach(with, h);

    tls_parse_staples = false;
    rate(with, client, true); /* warm up */
    rate(without, client, false);
    for (int i = 0; i < ROUNDS; i++) {
        /* Interleaved, alternating which goes first. */
        if (i % 2) {
            r_with[i] = rate(with, client, true);
            r_without[i] = rate(without, client, false);
        } else {
            r_without[i] = rate(without, client, false);
            r_with[i] = rate(with, client, true);
        }
        ratio[i] = r_with[i] / r_without[i];
    }
    qsort(r_with, ROUNDS, sizeof(double), cmp);
    qsort(r_without, ROUNDS, sizeof(double), cmp);
    qsort(ratio, ROUNDS, sizeof(double), cmp);

    /* The callback alone: find the handle, take the snapshot, copy it into
     * the buffer OpenSSL owns (freeing the previous one). */
    ssl = SSL_new(with);
    t0 = now_s();
    for (int i = 0; i < CB_CALLS; i++)
        srvocsp_ssl_status_cb(ssl, with);
    cb_ns = (now_s() - t0) * 1e9 / CB_CALLS;
    SSL_free(ssl);

    if (json)
        printf("{\"handshakes_per_s_stapling\":%.0f,\"handshakes_per_s_plain\":%.0f,"
               "\"ratio_median\":%.3f,\"status_cb_ns\":%.0f}\n",
               r_with[ROUNDS / 2], r_without[ROUNDS / 2], ratio[ROUNDS / 2], cb_ns);
    else
        printf("TLS 1.3 handshakes/s (median of %d interleaved rounds of %d): stapling %.0f, "
               "without %.0f, ratio %.3f (min %.3f, max %.3f); status callback %.0f ns\n",
               ROUNDS, PER_ROUND, r_with[ROUNDS / 2], r_without[ROUNDS / 2], ratio[ROUNDS / 2],
               ratio[0], ratio[ROUNDS - 1], cb_ns);
    SSL_CTX_free(with);
    SSL_CTX_free(without);
    SSL_CTX_free(client);
    srvocsp_close(h);
    srvocsp_engine_free(eng);
    fake_destroy(&fake);
    tp_pki_free(&pki);
    return 0;
}
