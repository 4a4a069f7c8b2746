/* libsrvocsp-gnutls in-process: what each handshake is given (TLS 1.3 both
 * statuses, TLS 1.2 the leaf's), the counters, a response replaced while a
 * handshake that selected the old one is paused by a HelloRetryRequest,
 * must-staple reports, attach and detach rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <gnutls/abstract.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fake.h"
#include "gnutls_pair.h"
#include "srvocsp/gnutls.h"
#include "testpki.h"

static tp_pki pki;
static manual_clock clk;
static fake_transport fake;
static srvocsp_engine *eng;
static int64_t T;
static gnutls_certificate_credentials_t client_cred;
static gnutls_priority_t tls13, tls12, tls13_p256_first, tls13_p384_only;

static void handler(void *arg, const char *url, fake_reply *out)
{
    tp_resp_opts o;

    (void)arg;
    if (strncmp(url, "http://ica.test/", 16) == 0)
        tp_resp_opts_init(&o, &pki.chain_leaf, &pki.ica, atomic_load(&clk.now));
    else if (strncmp(url, "http://root.test/", 17) == 0)
        tp_resp_opts_init(&o, &pki.ica, &pki.root, atomic_load(&clk.now));
    else {
        out->error = SRVOCSP_E_TRANSPORT; /* http://down.test/ */
        return;
    }
    out->body = tp_response(&o, &out->len);
}

static gnutls_privkey_t key_of(EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    gnutls_privkey_t key = NULL;
    gnutls_datum_t d;
    char *pem;

    assert_true(PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL));
    d.size = (unsigned)BIO_get_mem_data(b, &pem);
    d.data = (unsigned char *)pem;
    assert_int_equal(gnutls_privkey_init(&key), 0);
    assert_int_equal(gnutls_privkey_import_x509_raw(key, &d, GNUTLS_X509_FMT_PEM, NULL, 0), 0);
    BIO_free(b);
    return key;
}

/* A chain of |leaf| and |ica| with |root| as extra, opened on the engine. */
static srvocsp_chain *open_chain(X509 *leaf, X509 *ica, X509 *root)
{
    STACK_OF(X509) *served = sk_X509_new_null(), *extra = sk_X509_new_null();
    srvocsp_params p;
    srvocsp_chain *c;

    sk_X509_push(served, leaf);
    sk_X509_push(served, ica);
    sk_X509_push(extra, root);
    srvocsp_params_init(&p);
    p.engine = eng;
    p.flags = SRVOCSP_OPEN_ASYNC;
    c = srvocsp_chain_open(served, extra, &p);
    sk_X509_free(served);
    sk_X509_free(extra);
    assert_non_null(c);
    assert_int_equal(srvocsp_engine_settle(eng, 10000), SRVOCSP_OK);
    return c;
}

typedef struct server {
    gnutls_certificate_credentials_t cred;
    srvocsp_gnutls *g;
    srvocsp_chain *chain;
} server;

static void server_up(server *s, const tp_cert *leaf, const tp_cert *ica)
{
    assert_int_equal(gnutls_certificate_allocate_credentials(&s->cred), 0);
    assert_int_equal(srvocsp_gnutls_attach(s->cred, &s->g), SRVOCSP_OK);
    s->chain = open_chain(leaf->cert, ica->cert, pki.root.cert);
    assert_int_equal(srvocsp_gnutls_add_chain(s->g, s->chain, key_of(leaf->key)), SRVOCSP_OK);
}

static void server_down(server *s)
{
    gnutls_certificate_free_credentials(s->cred);
    srvocsp_gnutls_free(s->g);
    srvocsp_chain_close(s->chain);
}

/* The DER of the current response of the chain's |i|-th handle (copy). */
static gnutls_datum_t current_der(srvocsp_chain *c, size_t i)
{
    srvocsp_response *r = srvocsp_get1_response(srvocsp_chain_get0_handle(c, i));
    gnutls_datum_t d = {NULL, 0};
    const unsigned char *der;
    size_t len;

    assert_non_null(r);
    der = srvocsp_response_der(r, &len);
    d.data = malloc(len);
    memcpy(d.data, der, len);
    d.size = (unsigned)len;
    srvocsp_response_free(r);
    return d;
}

static void assert_status_is(gp_pair *p, unsigned idx, const gnutls_datum_t *want)
{
    gnutls_datum_t got;

    assert_int_equal(gnutls_ocsp_status_request_get2(p->client.s, idx, &got), 0);
    assert_int_equal(got.size, want->size);
    assert_memory_equal(got.data, want->data, want->size);
}

static void assert_no_status(gp_pair *p, unsigned idx)
{
    gnutls_datum_t got;

    assert_int_not_equal(gnutls_ocsp_status_request_get2(p->client.s, idx, &got), 0);
}

static int setup(void **state)
{
    (void)state;
    manual_clock_set(&clk, T);
    fake_init(&fake, &clk, handler, NULL);
    eng = fake_engine_new(&clk, &fake, 0, 0);
    return eng == NULL;
}

static int teardown(void **state)
{
    (void)state;
    srvocsp_engine_free(eng);
    fake_destroy(&fake);
    return 0;
}

static void test_tls13_both_tls12_leaf(void **state)
{
    server s;
    gp_pair *p = malloc(sizeof(*p));
    gnutls_datum_t leaf, ica;
    srvocsp_gnutls_stats st;

    (void)state;
    server_up(&s, &pki.chain_leaf, &pki.ica);
    leaf = current_der(s.chain, 0);
    ica = current_der(s.chain, 1);

    assert_int_equal(gp_init(p, s.cred, client_cred, tls13, tls13, true), 0);
    assert_int_equal(gp_run(p), 0);
    assert_status_is(p, 0, &leaf);
    assert_status_is(p, 1, &ica);
    gp_deinit(p);
    srvocsp_gnutls_get_stats(s.g, &st);
    assert_int_equal(st.stapled, 1);
    assert_int_equal(st.intermediates_stapled, 1);
    assert_int_equal(st.intermediates_unstapled, 0);

    assert_int_equal(gp_init(p, s.cred, client_cred, tls12, tls12, true), 0);
    assert_int_equal(gp_run(p), 0);
    assert_int_equal(gnutls_protocol_get_version(p->client.s), GNUTLS_TLS1_2);
    assert_status_is(p, 0, &leaf);
    assert_no_status(p, 1);
    gp_deinit(p);
    srvocsp_gnutls_get_stats(s.g, &st);
    assert_int_equal(st.stapled, 2);
    assert_int_equal(st.intermediates_stapled, 1); /* no reference taken in TLS 1.2 */

    /* A client that does not ask gets nothing (GnuTLS sends no staple);
     * the counters count the selection all the same. */
    assert_int_equal(gp_init(p, s.cred, client_cred, tls13, tls13, false), 0);
    assert_int_equal(gp_run(p), 0);
    assert_no_status(p, 0);
    gp_deinit(p);
    srvocsp_gnutls_get_stats(s.g, &st);
    assert_int_equal(st.stapled, 3);

    free(leaf.data);
    free(ica.data);
    free(p);
    server_down(&s);
}

/* HelloRetryRequests the server sent. */
static int retries;
static int on_message(gnutls_session_t session, unsigned htype, unsigned when, unsigned incoming,
                      const gnutls_datum_t *msg)
{
    (void)session;
    (void)when;
    (void)msg;
    if (htype == GNUTLS_HANDSHAKE_HELLO_RETRY_REQUEST && !incoming)
        retries++;
    return 0;
}

/* The server selects its certificate on the first ClientHello and sends a
 * HelloRetryRequest; the engine then replaces both responses and this
 * thread's own references move to the new ones, so only the paused
 * session still holds the old ones.  The handshake completes with the
 * responses selected for it, intact (ASan would see a use after free). */
static void test_hrr_keeps_the_selected_responses(void **state)
{
    server s;
    gp_pair *p = malloc(sizeof(*p));
    gnutls_datum_t old_leaf, old_ica, new_leaf;
    srvocsp_gnutls_stats st;

    (void)state;
    server_up(&s, &pki.chain_leaf, &pki.ica);
    old_leaf = current_der(s.chain, 0);
    old_ica = current_der(s.chain, 1);
    /* the client sends a P-256 key share; the server takes P-384 only: HRR */
    assert_int_equal(gp_init(p, s.cred, client_cred, tls13_p384_only, tls13_p256_first, true),
                     0);
    gnutls_handshake_set_hook_function(p->server.s, GNUTLS_HANDSHAKE_ANY, GNUTLS_HOOK_POST,
                                       on_message);
    assert_int_equal(gp_step_client(p), 1); /* ClientHello */
    assert_int_equal(gp_step_server(p), 1); /* selection, HelloRetryRequest */
    srvocsp_gnutls_get_stats(s.g, &st);
    assert_int_equal(st.stapled, 1);

    manual_clock_set(&clk, T + 13 * 3600); /* past the halfway refresh */
    srvocsp_engine_kick(eng);
    assert_int_equal(srvocsp_engine_settle(eng, 10000), SRVOCSP_OK);
    new_leaf = current_der(s.chain, 0); /* re-points this thread's references */
    free(current_der(s.chain, 1).data);
    assert_true(new_leaf.size != old_leaf.size ||
                memcmp(new_leaf.data, old_leaf.data, old_leaf.size) != 0);

    assert_int_equal(gp_run(p), 0);
    assert_int_equal(retries, 1);
    /* GnuTLS 3.7.9 does not select again after the retry: the session is
     * served what it was given at selection time. */
    srvocsp_gnutls_get_stats(s.g, &st);
    assert_int_equal(st.stapled, 1);
    assert_status_is(p, 0, &old_leaf);
    assert_status_is(p, 1, &old_ica);
    gp_deinit(p); /* releases the old responses */

    /* The next handshake gets the new ones. */
    assert_int_equal(gp_init(p, s.cred, client_cred, tls13, tls13, true), 0);
    assert_int_equal(gp_run(p), 0);
    assert_status_is(p, 0, &new_leaf);
    gp_deinit(p);

    free(old_leaf.data);
    free(old_ica.data);
    free(new_leaf.data);
    free(p);
    server_down(&s);
}

/* No response yet (the responder is down), and a must-staple leaf: the
 * handshake goes on without a staple, counted and reported. */
static int must_reports;
static void on_must(gnutls_session_t session, srvocsp_handle *h, void *arg)
{
    (void)session;
    assert_non_null(h);
    assert_ptr_equal(arg, &must_reports);
    must_reports++;
}

static void test_unstapled_and_must_staple(void **state)
{
    server s;
    gp_pair *p = malloc(sizeof(*p));
    srvocsp_gnutls_stats st;

    (void)state;
    server_up(&s, &pki.muststaple, &pki.ca); /* names http://down.test/ */
    assert_null(srvocsp_chain_get0_handle(s.chain, 1)); /* the CA names no responder */
    srvocsp_gnutls_set_must_staple_cb(s.g, on_must, &must_reports);
    assert_int_equal(gp_init(p, s.cred, client_cred, tls13, tls13, true), 0);
    assert_int_equal(gp_run(p), 0);
    assert_no_status(p, 0);
    gp_deinit(p);
    srvocsp_gnutls_get_stats(s.g, &st);
    assert_int_equal(st.stapled, 0);
    assert_int_equal(st.unstapled_none, 1);
    assert_int_equal(st.must_staple_unstapled, 1);
    assert_int_equal(st.intermediates_unstapled, 0); /* no handle, not counted */
    assert_int_equal(must_reports, 1);
    free(p);
    server_down(&s);
}

static void test_attach_rules(void **state)
{
    gnutls_certificate_credentials_t cred;
    srvocsp_gnutls *g, *g2;
    server s;
    gp_pair *p = malloc(sizeof(*p));

    (void)state;
    assert_int_equal(srvocsp_gnutls_attach(NULL, &g), SRVOCSP_E_INVALID_ARG);
    assert_null(g);
    assert_int_equal(gnutls_certificate_allocate_credentials(&cred), 0);
    assert_int_equal(srvocsp_gnutls_attach(cred, NULL), SRVOCSP_E_INVALID_ARG);
    assert_int_equal(srvocsp_gnutls_attach(cred, &g), SRVOCSP_OK);
    assert_int_equal(srvocsp_gnutls_attach(cred, &g2), SRVOCSP_E_UNSUPPORTED);
    assert_null(g2);
    assert_int_equal(srvocsp_gnutls_add_chain(g, NULL, NULL), SRVOCSP_E_INVALID_ARG);
    assert_int_equal(srvocsp_gnutls_add_pem(g, "/nonexistent.pem", "/nonexistent.key", NULL, NULL),
                     SRVOCSP_E_CERT);
    assert_null(srvocsp_gnutls_get0_chain(g, 0));
    srvocsp_gnutls_free(g);
    /* detached: attach again works (the table slot is reused) */
    assert_int_equal(srvocsp_gnutls_attach(cred, &g), SRVOCSP_OK);
    srvocsp_gnutls_free(g);
    gnutls_certificate_free_credentials(cred);
    srvocsp_gnutls_free(NULL);

    /* A credential whose stapler was freed serves no certificate. */
    server_up(&s, &pki.chain_leaf, &pki.ica);
    srvocsp_gnutls_free(s.g);
    s.g = NULL;
    assert_int_equal(gp_init(p, s.cred, client_cred, tls13, tls13, true), 0);
    assert_true(gp_run(p) < 0);
    gp_deinit(p);
    free(p);
    server_down(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tls13_both_tls12_leaf, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hrr_keeps_the_selected_responses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unstapled_and_must_staple, setup, teardown),
        cmocka_unit_test_setup_teardown(test_attach_rules, setup, teardown),
    };
    unsigned char *root_der = NULL;
    gnutls_datum_t d;
    int rc, len;

    T = (int64_t)time(NULL);
    manual_clock_init(&clk, T);
    if (!tp_pki_make(&pki, "http://down.test/", "http://down.test/", T) ||
        !tp_pki_make_chain(&pki, "http://root.test/", "http://ica.test/", T))
        return 1;
    len = i2d_X509(pki.root.cert, &root_der);
    d.data = root_der;
    d.size = (unsigned)len;
    if (gnutls_certificate_allocate_credentials(&client_cred) != 0 ||
        gnutls_certificate_set_x509_trust_mem(client_cred, &d, GNUTLS_X509_FMT_DER) != 1 ||
        gnutls_priority_init(&tls13, "NORMAL:-VERS-ALL:+VERS-TLS1.3", NULL) != 0 ||
        gnutls_priority_init(&tls12, "NORMAL:-VERS-ALL:+VERS-TLS1.2", NULL) != 0 ||
        gnutls_priority_init(&tls13_p256_first,
                             "NORMAL:-VERS-ALL:+VERS-TLS1.3:-GROUP-ALL:+GROUP-SECP256R1:+GROUP-SECP384R1",
                             NULL) != 0 ||
        gnutls_priority_init(&tls13_p384_only, "NORMAL:-VERS-ALL:+VERS-TLS1.3:-GROUP-ALL:+GROUP-SECP384R1",
                             NULL) != 0)
        return 1;
    OPENSSL_free(root_der);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    gnutls_priority_deinit(tls13);
    gnutls_priority_deinit(tls12);
    gnutls_priority_deinit(tls13_p256_first);
    gnutls_priority_deinit(tls13_p384_only);
    gnutls_certificate_free_credentials(client_cred);
    tp_pki_free(&pki);
    srvocsp_cleanup();
    return rc;
}
