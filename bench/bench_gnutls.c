/*
 * GnuTLS TLS 1.3 handshakes per second in one process (client and server
 * over in-memory buffers): a credential stapling the leaf's and the
 * intermediate's responses (libsrvocsp-gnutls) vs a plain credential with
 * the same chain and key, no staples.  The client asks for status both
 * times; rounds are interleaved in one run and the ratio of each round
 * reported as a median.  Rates are per second of the thread's CPU time
 * (client and server run on it), which other processes on a shared machine
 * disturb much less than wall time.  And the retrieve function alone, per
 * handshake, beside bench_handshake's figure for the OpenSSL callback.
 */
#define _GNU_SOURCE /* RTLD_NEXT */
#include <dlfcn.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fake.h"
#include "gnutls_pair.h"
#include "srvocsp/gnutls.h"
#include "testpki.h"

#define ROUNDS 15
#define PER_ROUND 300
#define CB_CALLS 200000

static tp_pki pki;
static manual_clock clk;

/* The leaf's responder and the root's, in-process. */
static void handler(void *arg, const char *url, fake_reply *out)
{
    tp_resp_opts o;
    bool root = strstr(url, "root.test") != NULL;

    (void)arg;
    tp_resp_opts_init(&o, root ? &pki.ica : &pki.chain_leaf, root ? &pki.root : &pki.ica,
                      atomic_load(&clk.now));
    out->body = tp_response(&o, &out->len);
}

static void die(const char *what, int ret)
{
    fprintf(stderr, "bench_gnutls: %s: %s\n", what, gnutls_strerror(ret));
    exit(1);
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* CPU time spent in the server's gnutls_handshake calls. */
static double server_cpu;

/* One full handshake; returns how many statuses the client received. */
static int handshake(gnutls_certificate_credentials_t server_cred,
                     gnutls_certificate_credentials_t client_cred, gnutls_priority_t prio,
                     bool ask)
{
    static gp_pair p;
    int statuses = 0, ret;
    gnutls_datum_t d;

    ret = gp_init(&p, server_cred, client_cred, prio, prio, ask);
    if (ret != 0)
        die("init", ret);
    for (int i = 0; i < 100 && (p.client.state == 1 || p.server.state == 1); i++) {
        double t0;

        gp_step_client(&p);
        t0 = now_s();
        gp_step_server(&p);
        server_cpu += now_s() - t0;
    }
    if (p.client.state != 0 || p.server.state != 0)
        die("handshake", p.client.state ? p.client.state : p.server.state);
    for (unsigned i = 0; i < 2; i++)
        if (gnutls_ocsp_status_request_get2(p.client.s, i, &d) == 0)
            statuses++;
    gp_deinit(&p);
    return statuses;
}

/* Handshakes per CPU second; |*server_us| gets the server's share per
 * handshake. */
static double rate(gnutls_certificate_credentials_t server,
                   gnutls_certificate_credentials_t client, gnutls_priority_t prio, int want,
                   double *server_us)
{
    bool ask = want >= 0;

    double t0 = now_s();

    server_cpu = 0;
    for (int i = 0; i < PER_ROUND; i++) {
        int got = handshake(server, client, prio, ask);

        if (got != (ask ? want : 0)) {
            fprintf(stderr, "bench_gnutls: %d statuses received, want %d\n", got, want);
            exit(1);
        }
    }
    t0 = now_s() - t0;
    *server_us = server_cpu * 1e6 / PER_ROUND;
    return PER_ROUND / t0;
}

/* The binding's retrieve function, learnt as it registers it: this
 * program defines the setter, which the binding (linked in statically)
 * calls, and hands the call on to GnuTLS's own. */
static gnutls_certificate_retrieve_function3 *retrieve_fn;

void gnutls_certificate_set_retrieve_function3(gnutls_certificate_credentials_t cred,
                                               gnutls_certificate_retrieve_function3 *func)
{
    void (*real)(gnutls_certificate_credentials_t, gnutls_certificate_retrieve_function3 *);

    *(void **)&real = dlsym(RTLD_NEXT, "gnutls_certificate_set_retrieve_function3");
    if (real == NULL)
        die("dlsym gnutls_certificate_set_retrieve_function3", 0);
    if (func != NULL)
        retrieve_fn = func;
    real(cred, func);
}

/* The retrieve function alone, ns per call, on the server session of a
 * finished TLS 1.3 handshake: choose the chain, take both responses (two
 * gets), hand GnuTLS the array, free the previous call's (as the next
 * selection on a session does).  Thread CPU time, CB_CALLS calls. */
static double retrieve_ns(gnutls_certificate_credentials_t with,
                          gnutls_certificate_credentials_t client, gnutls_priority_t prio)
{
    static gp_pair p;
    struct gnutls_cert_retr_st info;
    gnutls_pcert_st *pcert;
    gnutls_ocsp_data_st *ocsp;
    gnutls_privkey_t key;
    unsigned npcert, nocsp, flags;
    double t0, ns;
    int ret;

    if (retrieve_fn == NULL)
        die("the binding registered no retrieve function", 0);
    if ((ret = gp_init(&p, with, client, prio, prio, true)) != 0 || (ret = gp_run(&p)) != 0)
        die("handshake", ret);
    memset(&info, 0, sizeof(info));
    info.version = 1;
    info.cred = with;
    t0 = now_s();
    for (int i = 0; i < CB_CALLS; i++)
        if (retrieve_fn(p.server.s, &info, &pcert, &npcert, &ocsp, &nocsp, &key, &flags) != 0 ||
            nocsp != 2 || ocsp[1].response.size == 0)
            die("retrieve: two statuses", 0);
    ns = (now_s() - t0) * 1e9 / CB_CALLS;
    gp_deinit(&p);
    return ns;
}

static gnutls_datum_t der_of(X509 *x)
{
    gnutls_datum_t d = {NULL, 0};
    unsigned char *p = NULL;
    int len = i2d_X509(x, &p);

    if (len > 0) {
        d.data = gnutls_malloc((size_t)len);
        memcpy(d.data, p, (size_t)len);
        d.size = (unsigned)len;
    }
    OPENSSL_free(p);
    return d;
}

static gnutls_privkey_t key_of(EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    gnutls_privkey_t key = NULL;
    gnutls_datum_t d;
    char *pem;
    long len;

    PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
    len = BIO_get_mem_data(b, &pem);
    d.data = (unsigned char *)pem;
    d.size = (unsigned)len;
    if (gnutls_privkey_init(&key) != 0 ||
        gnutls_privkey_import_x509_raw(key, &d, GNUTLS_X509_FMT_PEM, NULL, 0) != 0)
        die("key", 0);
    BIO_free(b);
    return key;
}

int main(int argc, char **argv)
{
    gnutls_certificate_credentials_t with, without, client;
    gnutls_priority_t prio;
    gnutls_pcert_st pcerts[2];
    gnutls_datum_t leaf_der, ica_der, root_der;
    STACK_OF(X509) *served = sk_X509_new_null(), *extra = sk_X509_new_null();
    double r_with[ROUNDS], r_without[ROUNDS], ratio[ROUNDS];
    double s_with[ROUNDS], s_without[ROUNDS], s_ratio[ROUNDS], s_noask[ROUNDS], dummy, cb_ns;
    bool json = argc > 1 && strcmp(argv[1], "--json") == 0;
    fake_transport fake;
    srvocsp_engine *eng;
    srvocsp_gnutls *g;
    srvocsp_chain *chain;
    srvocsp_params p;
    int64_t t = (int64_t)time(NULL);

    if (!tp_pki_make(&pki, "http://127.0.0.1:9/", "http://127.0.0.1:1/", t) ||
        !tp_pki_make_chain(&pki, "http://root.test/", "http://ica.test/", t))
        return 1;
    manual_clock_init(&clk, t);
    fake_init(&fake, &clk, handler, NULL);
    eng = fake_engine_new(&clk, &fake, -1, 0);
    srvocsp_params_init(&p);
    p.engine = eng;
    sk_X509_push(served, pki.chain_leaf.cert);
    sk_X509_push(served, pki.ica.cert);
    sk_X509_push(extra, pki.root.cert);
    chain = srvocsp_chain_open(served, extra, &p); /* waits for both first responses */
    if (chain == NULL || srvocsp_engine_settle(eng, 10000) != SRVOCSP_OK)
        return 1;

    leaf_der = der_of(pki.chain_leaf.cert);
    ica_der = der_of(pki.ica.cert);
    root_der = der_of(pki.root.cert);
    /* with: the chain and its staples */
    gnutls_certificate_allocate_credentials(&with);
    if (srvocsp_gnutls_attach(with, &g) != SRVOCSP_OK ||
        srvocsp_gnutls_add_chain(g, chain, key_of(pki.chain_leaf.key)) != SRVOCSP_OK)
        return 1;
    /* without: the same chain and key, set the usual way */
    gnutls_certificate_allocate_credentials(&without);
    if (gnutls_pcert_import_x509_raw(&pcerts[0], &leaf_der, GNUTLS_X509_FMT_DER, 0) != 0 ||
        gnutls_pcert_import_x509_raw(&pcerts[1], &ica_der, GNUTLS_X509_FMT_DER, 0) != 0 ||
        gnutls_certificate_set_key(without, NULL, 0, pcerts, 2, key_of(pki.chain_leaf.key)) < 0)
        return 1;
    gnutls_certificate_allocate_credentials(&client);
    gnutls_certificate_set_x509_trust_mem(client, &root_der, GNUTLS_X509_FMT_DER);
    gnutls_priority_init(&prio, "NORMAL:-VERS-ALL:+VERS-TLS1.3", NULL);

    rate(with, client, prio, 2, &dummy); /* warm up */
    rate(without, client, prio, 0, &dummy);
    for (int i = 0; i < ROUNDS; i++) {
        /* Interleaved, alternating which goes first. */
        if (i % 2) {
            r_with[i] = rate(with, client, prio, 2, &s_with[i]);
            r_without[i] = rate(without, client, prio, 0, &s_without[i]);
        } else {
            r_without[i] = rate(without, client, prio, 0, &s_without[i]);
            r_with[i] = rate(with, client, prio, 2, &s_with[i]);
        }
        ratio[i] = r_with[i] / r_without[i];
        s_ratio[i] = s_without[i] / s_with[i]; /* as a rate: > 1 is faster */
        /* attached, but the client does not ask: the retrieve function's
         * own cost, without the responses on the wire */
        rate(with, client, prio, -1, &s_noask[i]);
    }
    cb_ns = retrieve_ns(with, client, prio);
    qsort(r_with, ROUNDS, sizeof(double), cmp);
    qsort(r_without, ROUNDS, sizeof(double), cmp);
    qsort(ratio, ROUNDS, sizeof(double), cmp);
    qsort(s_with, ROUNDS, sizeof(double), cmp);
    qsort(s_without, ROUNDS, sizeof(double), cmp);
    qsort(s_ratio, ROUNDS, sizeof(double), cmp);
    qsort(s_noask, ROUNDS, sizeof(double), cmp);
    if (json)
        printf("{\"handshakes_per_s_stapling_chain\":%.0f,\"handshakes_per_s_plain\":%.0f,"
               "\"ratio_median\":%.3f,\"server_us_stapling_chain\":%.1f,"
               "\"server_us_plain\":%.1f,\"server_ratio_median\":%.3f,"
               "\"server_us_attached_not_asked\":%.1f,\"retrieve_ns\":%.0f}\n",
               r_with[ROUNDS / 2], r_without[ROUNDS / 2], ratio[ROUNDS / 2], s_with[ROUNDS / 2],
               s_without[ROUNDS / 2], s_ratio[ROUNDS / 2], s_noask[ROUNDS / 2], cb_ns);
    else
        printf("GnuTLS TLS 1.3 handshakes per CPU second (client + server, median of %d "
               "interleaved rounds of %d): stapling leaf + intermediate %.0f, without %.0f, "
               "ratio %.3f (min %.3f, max %.3f); server CPU per handshake %.1f us vs %.1f us, "
               "as a rate %.3f (min %.3f, max %.3f); attached, client not asking %.1f us; "
               "retrieve function alone (leaf + intermediate) %.0f ns\n",
               ROUNDS, PER_ROUND, r_with[ROUNDS / 2], r_without[ROUNDS / 2], ratio[ROUNDS / 2],
               ratio[0], ratio[ROUNDS - 1], s_with[ROUNDS / 2], s_without[ROUNDS / 2],
               s_ratio[ROUNDS / 2], s_ratio[0], s_ratio[ROUNDS - 1], s_noask[ROUNDS / 2], cb_ns);

    gnutls_priority_deinit(prio);
    gnutls_certificate_free_credentials(client);
    gnutls_certificate_free_credentials(without);
    gnutls_certificate_free_credentials(with);
    srvocsp_gnutls_free(g);
    srvocsp_chain_close(chain);
    srvocsp_engine_free(eng);
    fake_destroy(&fake);
    gnutls_free(leaf_der.data);
    gnutls_free(ica_der.data);
    gnutls_free(root_der.data);
    sk_X509_free(served);
    sk_X509_free(extra);
    tp_pki_free(&pki);
    return 0;
}
