/* The status callback in-process: SNI across contexts, counters, no staple
 * without a valid response, must-staple report; counters exact when more
 * threads handshake at once than have a counter shard of their own, and
 * after those threads exit and others take their shards. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fake.h"
#include "srvocsp/openssl.h"
#include "testpki.h"
#include "tlspair.h"

static tp_pki pki;
static manual_clock clk;
static fake_transport fake;
static srvocsp_engine *eng;
static int64_t T;
static atomic_bool down;

/* Each handle has its own responder path; "unknown" is down. */
static void handler(void *arg, const char *url, fake_reply *out)
{
    const tp_cert *leaf = strstr(url, "/good/") ? &pki.good
                          : strstr(url, "/must/") ? &pki.muststaple
                                                  : NULL;
    tp_resp_opts o;

    (void)arg;
    if (atomic_load(&down) || leaf == NULL) {
        out->error = SRVOCSP_E_TRANSPORT;
        return;
    }
    tp_resp_opts_init(&o, leaf, &pki.ca, atomic_load(&clk.now));
    out->body = tp_response(&o, &out->len);
}

static srvocsp_handle *open_leaf(const tp_cert *leaf, const char *url)
{
    srvocsp_params p;
    srvocsp_handle *h;

    srvocsp_params_init(&p);
    p.engine = eng;
    p.responder_url = url;
    h = fake_open(leaf->cert, pki.ca.cert, &p);
    return h;
}

static SSL_CTX *second;

static int on_sni(SSL *ssl, int *alert, void *arg)
{
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);

    if (name && strcmp(name, "muststaple.test") == 0)
        SSL_set_SSL_CTX(ssl, second);
    return SSL_TLSEXT_ERR_OK;
}

static int must_calls;
static void on_must(SSL *ssl, srvocsp_handle *h, void *arg)
{
    must_calls++;
}

static void test_sni_contexts_and_counters(void **s)
{
    SSL_CTX *first, *client;
    srvocsp_handle *hg, *hm, *hu;
    srvocsp_ssl_stats st;
    tls_result r;

    T = (int64_t)time(NULL);
    assert_true(tp_pki_make(&pki, "http://127.0.0.1:8080/", "http://127.0.0.1:1/", T));
    manual_clock_init(&clk, T);
    fake_init(&fake, &clk, handler, NULL);
    eng = fake_engine_new(&clk, &fake, 0, 0);

    first = tls_server_ctx(&pki.good, &pki.ca);
    second = tls_server_ctx(&pki.muststaple, &pki.ca);
    client = tls_client_ctx(&pki.root, true);
    SSL_CTX_set_tlsext_servername_callback(first, on_sni);
    hg = open_leaf(&pki.good, "http://fake.test/good/");
    hm = open_leaf(&pki.muststaple, "http://fake.test/must/");
    hu = open_leaf(&pki.unknown, "http://fake.test/unknown/");
    assert_int_equal(srvocsp_ssl_ctx_attach(first, hg), 1);
    assert_int_equal(srvocsp_ssl_ctx_attach(second, hm), 1);
    assert_int_equal(srvocsp_ssl_ctx_set_must_staple_cb(second, on_must, NULL), 1);
    assert_int_equal(srvocsp_ssl_ctx_attach(NULL, hg), 0);

    /* A certificate whose responder is down: no staple, the handshake
     * completes. */
    {
        SSL_CTX *third = tls_server_ctx(&pki.unknown, &pki.ca);

        assert_int_equal(srvocsp_ssl_ctx_attach(third, hu), 1);
        r = tls_handshake(third, client, "unknown.test", true);
        assert_true(r.ok);
        assert_int_equal(r.staple_serial, -1);
        srvocsp_ssl_ctx_get_stats(third, &st);
        assert_int_equal(st.unstapled_none, 1);
        SSL_CTX_free(third);
    }
    /* A certificate served without a handle of its own (one with no OCSP
     * URL, which a server skips): no staple, counted, the handshake goes
     * on, again and again; a handle attached for it later is used. */
    {
        SSL_CTX *fourth = tls_server_ctx(&pki.good, &pki.ca);

        assert_int_equal(srvocsp_ssl_ctx_attach(fourth, hm), 1); /* another certificate's */
        for (int k = 0; k < 3; k++) {
            r = tls_handshake(fourth, client, "good.test", true);
            assert_true(r.ok);
            assert_int_equal(r.staple_serial, -1);
        }
        srvocsp_ssl_ctx_get_stats(fourth, &st);
        assert_int_equal(st.unstapled_no_handle, 3);
        assert_int_equal(srvocsp_ssl_ctx_attach(fourth, hg), 1);
        r = tls_handshake(fourth, client, "good.test", true);
        assert_true(r.ok);
        assert_int_equal(r.staple_serial, TP_SERIAL_GOOD);
        SSL_CTX_free(fourth);
    }
    r = tls_handshake(first, client, "good.test", true);
    assert_true(r.ok);
    assert_int_equal(r.staple_serial, TP_SERIAL_GOOD);
    r = tls_handshake(first, client, "muststaple.test", true);
    assert_true(r.ok);
    assert_int_equal(r.staple_serial, TP_SERIAL_MUSTSTAPLE); /* the SNI context's handle */
    r = tls_handshake(first, client, "good.test", false); /* client asks for no staple */
    assert_true(r.ok);
    srvocsp_ssl_ctx_get_stats(first, &st);
    assert_int_equal(st.stapled, 1);
    srvocsp_ssl_ctx_get_stats(second, &st);
    assert_int_equal(st.stapled, 1);

    /* Past the response's validity (the responder now fails for all):
     * no staple, the handshake goes on, counted as expired; must-staple
     * reported. */
    atomic_store(&down, true);
    {
        srvocsp_response *cur = srvocsp_get1_response(hm);
        int64_t exp = srvocsp_response_expires(cur);

        srvocsp_response_free(cur);
        manual_clock_set(&clk, exp - 599);
    }
    r = tls_handshake(first, client, "muststaple.test", true);
    assert_true(r.ok);
    assert_int_equal(r.staple_serial, -1);
    srvocsp_ssl_ctx_get_stats(second, &st);
    assert_int_equal(st.unstapled_expired, 1);
    assert_int_equal(st.must_staple_unstapled, 1);
    assert_int_equal(must_calls, 1);

    /* The clock went back two days: the held response is not valid yet.
     * No staple, counted as a held response that is not time-valid, not
     * as "none yet". */
    manual_clock_set(&clk, T - 2 * 86400);
    r = tls_handshake(first, client, "good.test", true);
    assert_true(r.ok);
    assert_int_equal(r.staple_serial, -1);
    srvocsp_ssl_ctx_get_stats(first, &st);
    assert_int_equal(st.unstapled_expired, 1);
    assert_int_equal(st.unstapled_none, 0);

    srvocsp_close(hg);
    srvocsp_close(hm);
    srvocsp_close(hu);
    SSL_CTX_free(first); /* releases the attached handles */
    SSL_CTX_free(second);
    SSL_CTX_free(client);
    srvocsp_engine_free(eng);
    fake_destroy(&fake);
    tp_pki_free(&pki);
}

/* ---- counters from many threads ---- */

enum { THREADS = 80, CALLS = 500 }; /* more threads than counter shards (64) */

static SSL_CTX *counted;
static pthread_barrier_t together;

static void *staple_many(void *arg)
{
    SSL *ssl = SSL_new(counted);
    long *ok = arg;

    pthread_barrier_wait(&together); /* all at once: every shard taken */
    for (int i = 0; ssl != NULL && i < CALLS; i++)
        *ok += srvocsp_ssl_status_cb(ssl, counted) == SSL_TLSEXT_ERR_OK;
    SSL_free(ssl);
    return NULL;
}

static void test_counts_from_many_threads(void **s)
{
    pthread_t th[THREADS];
    long ok[THREADS];
    srvocsp_ssl_stats st;
    srvocsp_handle *h;
    long total = 0;

    T = (int64_t)time(NULL);
    atomic_store(&down, false); /* the test before left its responder down */
    assert_true(tp_pki_make(&pki, "http://127.0.0.1:8080/", "http://127.0.0.1:1/", T));
    manual_clock_init(&clk, T);
    fake_init(&fake, &clk, handler, NULL);
    eng = fake_engine_new(&clk, &fake, 0, 0);
    counted = tls_server_ctx(&pki.good, &pki.ca);
    h = open_leaf(&pki.good, "http://fake.test/good/");
    assert_non_null(h);
    assert_int_equal(srvocsp_ssl_ctx_attach(counted, h), 1);

    /* Two waves: the second's threads take the shards the first's gave
     * back when they exited, and add to their counts. */
    for (int wave = 0; wave < 2; wave++) {
        pthread_barrier_init(&together, NULL, THREADS);
        for (int i = 0; i < THREADS; i++) {
            ok[i] = 0;
            assert_int_equal(pthread_create(&th[i], NULL, staple_many, &ok[i]), 0);
        }
        for (int i = 0; i < THREADS; i++) {
            pthread_join(th[i], NULL);
            total += ok[i];
        }
        pthread_barrier_destroy(&together);
    }
    assert_int_equal(total, 2L * THREADS * CALLS);
    srvocsp_ssl_ctx_get_stats(counted, &st);
    assert_int_equal(st.stapled, (uint64_t)total);
    assert_int_equal(st.unstapled_none + st.unstapled_expired + st.unstapled_unknown +
                         st.unstapled_no_handle,
                     0);

    srvocsp_close(h);
    SSL_CTX_free(counted);
    srvocsp_engine_free(eng);
    fake_destroy(&fake);
    tp_pki_free(&pki);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sni_contexts_and_counters),
        cmocka_unit_test(test_counts_from_many_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
