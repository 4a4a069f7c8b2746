/* Chains: which certificates of a served chain get a handle, and each
 * handle verifies its responses against its own issuer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fake.h"
#include "peers.h"
#include "testpki.h"

#define LEAF_URL "http://ica-responder.test/"
#define ROOT_URL "http://root-responder.test/"
#define OVERRIDE_URL "http://configured-responder.test/"

static tp_pki pki;
static manual_clock clk;
static fake_transport fake;
static srvocsp_engine *eng;
static int64_t T;

/* How the root's responder answers about an intermediate. */
enum { ROOT_SIGNS, ICA_SIGNS_ITSELF, ROOT_SAYS_REVOKED };
static _Atomic int root_mode;
static _Atomic int leaf_requests, root_requests, override_requests, other_requests;

static void handler(void *arg, const char *url, fake_reply *out)
{
    tp_resp_opts o;

    (void)arg;
    if (strncmp(url, LEAF_URL, strlen(LEAF_URL)) == 0 ||
        strncmp(url, OVERRIDE_URL, strlen(OVERRIDE_URL)) == 0) {
        atomic_fetch_add(url[7] == 'c' ? &override_requests : &leaf_requests, 1);
        tp_resp_opts_init(&o, &pki.chain_leaf, &pki.ica, atomic_load(&clk.now));
    } else if (strncmp(url, ROOT_URL, strlen(ROOT_URL)) == 0) {
        atomic_fetch_add(&root_requests, 1);
        tp_resp_opts_init(&o, &pki.ica, &pki.root, atomic_load(&clk.now));
        if (atomic_load(&root_mode) == ICA_SIGNS_ITSELF)
            o.signer = &pki.ica; /* not the intermediate's issuer */
        if (atomic_load(&root_mode) == ROOT_SAYS_REVOKED)
            o.status = V_OCSP_CERTSTATUS_REVOKED;
    } else {
        atomic_fetch_add(&other_requests, 1);
        out->error = SRVOCSP_E_TRANSPORT;
        return;
    }
    out->body = tp_response(&o, &out->len);
}

static int setup(void **state)
{
    (void)state;
    atomic_store(&root_mode, ROOT_SIGNS);
    atomic_store(&leaf_requests, 0);
    atomic_store(&root_requests, 0);
    atomic_store(&override_requests, 0);
    atomic_store(&other_requests, 0);
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

static STACK_OF(X509) *stack(X509 *a, X509 *b, X509 *c)
{
    STACK_OF(X509) *sk = sk_X509_new_null();

    assert_non_null(sk);
    if (a)
        assert_true(sk_X509_push(sk, a) > 0);
    if (b)
        assert_true(sk_X509_push(sk, b) > 0);
    if (c)
        assert_true(sk_X509_push(sk, c) > 0);
    return sk;
}

static srvocsp_chain *open_chain(STACK_OF(X509) *served, STACK_OF(X509) *extra)
{
    srvocsp_params p;
    srvocsp_chain *c;

    srvocsp_params_init(&p);
    p.engine = eng;
    p.flags = SRVOCSP_OPEN_ASYNC;
    c = srvocsp_chain_open(served, extra, &p);
    sk_X509_free(served);
    sk_X509_free(extra);
    return c;
}

static void settle(void)
{
    assert_int_equal(srvocsp_engine_settle(eng, 10000), SRVOCSP_OK);
}

static void assert_serves(srvocsp_handle *h, srvocsp_cert_status want)
{
    srvocsp_response *r = srvocsp_get1_response(h);

    assert_non_null(r);
    assert_int_equal(srvocsp_response_status(r), want);
    srvocsp_response_free(r);
}

/* Leaf + intermediate + root: handles for the leaf and the intermediate,
 * none for the root; each answered by its own issuer's responder. */
static void test_leaf_intermediate_root(void **state)
{
    srvocsp_chain *c = open_chain(stack(pki.chain_leaf.cert, pki.ica.cert, pki.root.cert), NULL);
    srvocsp_engine_stats st;

    (void)state;
    assert_non_null(c);
    assert_int_equal(srvocsp_chain_length(c), 3);
    assert_int_equal(X509_cmp(srvocsp_chain_get0_cert(c, 0), pki.chain_leaf.cert), 0);
    assert_int_equal(X509_cmp(srvocsp_chain_get0_cert(c, 1), pki.ica.cert), 0);
    assert_int_equal(X509_cmp(srvocsp_chain_get0_cert(c, 2), pki.root.cert), 0);
    assert_null(srvocsp_chain_get0_cert(c, 3));
    assert_non_null(srvocsp_chain_get0_handle(c, 0));
    assert_non_null(srvocsp_chain_get0_handle(c, 1));
    assert_null(srvocsp_chain_get0_handle(c, 2)); /* a root is never asked about */
    assert_null(srvocsp_chain_get0_handle(c, 3));
    /* each handle's issuer is the next certificate up */
    assert_int_equal(X509_cmp(srvocsp_handle_get0_issuer(srvocsp_chain_get0_handle(c, 0)),
                              pki.ica.cert), 0);
    assert_int_equal(X509_cmp(srvocsp_handle_get0_issuer(srvocsp_chain_get0_handle(c, 1)),
                              pki.root.cert), 0);
    settle();
    assert_serves(srvocsp_chain_get0_handle(c, 0), SRVOCSP_STATUS_GOOD);
    assert_serves(srvocsp_chain_get0_handle(c, 1), SRVOCSP_STATUS_GOOD);
    assert_int_equal(atomic_load(&leaf_requests), 1);
    assert_int_equal(atomic_load(&root_requests), 1);
    assert_int_equal(atomic_load(&other_requests), 0);
    srvocsp_engine_get_stats(eng, &st);
    assert_int_equal(st.handles_open, 2);
    srvocsp_chain_close(c);
    srvocsp_engine_get_stats(eng, &st);
    assert_int_equal(st.handles_open, 0);
}

/* Served in another order: the path still goes leaf, intermediate, root. */
static void test_order_of_served(void **state)
{
    srvocsp_chain *c = open_chain(stack(pki.chain_leaf.cert, pki.root.cert, pki.ica.cert), NULL);

    (void)state;
    assert_non_null(c);
    assert_int_equal(srvocsp_chain_length(c), 3);
    assert_int_equal(X509_cmp(srvocsp_chain_get0_cert(c, 1), pki.ica.cert), 0);
    assert_int_equal(X509_cmp(srvocsp_chain_get0_cert(c, 2), pki.root.cert), 0);
    srvocsp_chain_close(c);
}

/* The usual served chain (no root): the intermediate gets a handle only
 * when its issuer is given in extra. */
static void test_issuer_of_last_from_extra(void **state)
{
    srvocsp_chain *c = open_chain(stack(pki.chain_leaf.cert, pki.ica.cert, NULL), NULL);

    (void)state;
    assert_non_null(c);
    assert_int_equal(srvocsp_chain_length(c), 2);
    assert_non_null(srvocsp_chain_get0_handle(c, 0));
    assert_null(srvocsp_chain_get0_handle(c, 1));
    srvocsp_chain_close(c);

    c = open_chain(stack(pki.chain_leaf.cert, pki.ica.cert, NULL), stack(pki.root.cert, NULL, NULL));
    assert_non_null(c);
    assert_int_equal(srvocsp_chain_length(c), 2); /* extra is not sent */
    assert_non_null(srvocsp_chain_get0_handle(c, 1));
    settle();
    assert_serves(srvocsp_chain_get0_handle(c, 1), SRVOCSP_STATUS_GOOD);
    srvocsp_chain_close(c);
}

/* An intermediate without OCSP URL: not stapled, no error. */
static void test_intermediate_without_url(void **state)
{
    srvocsp_chain *c =
        open_chain(stack(pki.chain_leaf.cert, pki.ica_noaia.cert, pki.root.cert), NULL);

    (void)state;
    assert_non_null(c);
    assert_int_equal(srvocsp_chain_length(c), 3);
    assert_non_null(srvocsp_chain_get0_handle(c, 0));
    assert_null(srvocsp_chain_get0_handle(c, 1));
    assert_null(srvocsp_chain_get0_handle(c, 2));
    settle();
    assert_int_equal(atomic_load(&root_requests), 0);
    srvocsp_chain_close(c);
}

/* An intermediate whose only OCSP URL cannot be asked (ldap://, as some
 * enterprise CAs publish) gets no handle, like one with no URL; the
 * chain still opens and the leaf is stapled. */
static void test_intermediate_with_only_an_ldap_url(void **state)
{
    tp_cert ica_ldap;
    tp_cert_opts o;
    srvocsp_chain *c;

    (void)state;
    memset(&o, 0, sizeof(o));
    o.cn = "srvocsp test intermediate CA"; /* the leaf's issuer: same name, same key */
    o.same_key_as = &pki.ica;
    o.serial = 9901;
    o.issuer = &pki.root;
    o.ca = true;
    o.not_before = T - 86400;
    o.not_after = T + 365 * 86400;
    o.ocsp_urls[0] = "ldap://directory.test/cn=root%20CA?ocspResponder";
    assert_true(tp_cert_make(&ica_ldap, &o));
    c = open_chain(stack(pki.chain_leaf.cert, ica_ldap.cert, pki.root.cert), NULL);
    assert_non_null(c);
    assert_int_equal(srvocsp_chain_length(c), 3);
    assert_non_null(srvocsp_chain_get0_handle(c, 0));
    assert_null(srvocsp_chain_get0_handle(c, 1));
    settle();
    assert_serves(srvocsp_chain_get0_handle(c, 0), SRVOCSP_STATUS_GOOD);
    assert_int_equal(atomic_load(&root_requests), 0);
    assert_int_equal(atomic_load(&other_requests), 0);
    srvocsp_chain_close(c);
    tp_cert_free(&ica_ldap);
}

/* The intermediate's responses are verified against the root: one signed
 * by the intermediate itself is refused; a revoked one is served. */
static void test_intermediate_verified_against_its_issuer(void **state)
{
    srvocsp_chain *c;
    char why[256];

    (void)state;
    atomic_store(&root_mode, ICA_SIGNS_ITSELF);
    c = open_chain(stack(pki.chain_leaf.cert, pki.ica.cert, pki.root.cert), NULL);
    assert_non_null(c);
    settle();
    assert_serves(srvocsp_chain_get0_handle(c, 0), SRVOCSP_STATUS_GOOD);
    assert_null(srvocsp_get1_response(srvocsp_chain_get0_handle(c, 1)));
    assert_int_equal(srvocsp_last_error(), SRVOCSP_E_OFFLINE);
    assert_int_equal(srvocsp_handle_last_failure(srvocsp_chain_get0_handle(c, 1), why, sizeof(why)),
                     SRVOCSP_E_SIGNER);
    srvocsp_chain_close(c);

    atomic_store(&root_mode, ROOT_SAYS_REVOKED);
    c = open_chain(stack(pki.chain_leaf.cert, pki.ica.cert, pki.root.cert), NULL);
    assert_non_null(c);
    settle();
    assert_serves(srvocsp_chain_get0_handle(c, 1), SRVOCSP_STATUS_REVOKED);
    srvocsp_chain_close(c);
}

/* responder_url is the leaf's; intermediates keep their AIA. */
static void test_responder_url_is_the_leafs(void **state)
{
    STACK_OF(X509) *served = stack(pki.chain_leaf.cert, pki.ica.cert, pki.root.cert);
    srvocsp_params p;
    srvocsp_chain *c;

    (void)state;
    srvocsp_params_init(&p);
    p.engine = eng;
    p.flags = SRVOCSP_OPEN_ASYNC;
    p.responder_url = OVERRIDE_URL;
    c = srvocsp_chain_open(served, NULL, &p);
    sk_X509_free(served);
    assert_non_null(c);
    settle();
    assert_int_equal(atomic_load(&override_requests), 1);
    assert_int_equal(atomic_load(&leaf_requests), 0);
    assert_int_equal(atomic_load(&root_requests), 1);
    assert_serves(srvocsp_chain_get0_handle(c, 1), SRVOCSP_STATUS_GOOD);
    srvocsp_chain_close(c);
}

/* Handles of a chain are ordinary handles: shared with srvocsp_open. */
static void test_shared_with_plain_handles(void **state)
{
    srvocsp_chain *c = open_chain(stack(pki.chain_leaf.cert, pki.ica.cert, pki.root.cert), NULL);
    srvocsp_params p;
    srvocsp_handle *h;
    srvocsp_engine_stats st;

    (void)state;
    srvocsp_params_init(&p);
    p.engine = eng;
    p.flags = SRVOCSP_OPEN_ASYNC;
    h = fake_open(pki.ica.cert, pki.root.cert, &p);
    assert_non_null(h);
    settle();
    srvocsp_engine_get_stats(eng, &st);
    assert_int_equal(st.entries, 2);
    assert_int_equal(atomic_load(&root_requests), 1);
    srvocsp_chain_close(c);
    assert_serves(h, SRVOCSP_STATUS_GOOD); /* still served */
    srvocsp_close(h);
}

static void test_bad_inputs(void **state)
{
    STACK_OF(X509) *sk;
    srvocsp_params p;

    (void)state;
    srvocsp_params_init(&p);
    p.engine = eng;
    p.flags = SRVOCSP_OPEN_ASYNC;
    assert_null(srvocsp_chain_open(NULL, NULL, &p));
    assert_int_equal(srvocsp_last_error(), SRVOCSP_E_INVALID_ARG);
    sk = stack(NULL, NULL, NULL);
    assert_null(srvocsp_chain_open(sk, NULL, &p));
    assert_int_equal(srvocsp_last_error(), SRVOCSP_E_INVALID_ARG);
    sk_X509_free(sk);
    /* the leaf follows srvocsp_open: no URL, no issuer */
    sk = stack(pki.noaia.cert, pki.ca.cert, NULL);
    assert_null(srvocsp_chain_open(sk, NULL, &p));
    assert_int_equal(srvocsp_last_error(), SRVOCSP_E_NO_OCSP_URL);
    sk_X509_free(sk);
    sk = stack(pki.chain_leaf.cert, pki.ca.cert, NULL);
    assert_null(srvocsp_chain_open(sk, NULL, &p));
    assert_int_equal(srvocsp_last_error(), SRVOCSP_E_NO_ISSUER);
    sk_X509_free(sk);
    assert_int_equal(srvocsp_chain_length(NULL), 0);
    assert_null(srvocsp_chain_get0_handle(NULL, 0));
    srvocsp_chain_close(NULL);
    assert_null(srvocsp_chain_open_pem("/nonexistent/chain.pem", NULL, &p));
    assert_int_equal(srvocsp_last_error(), SRVOCSP_E_CERT);
}

/* From PEM files, as a server loads them; the root in a separate file. */
static void test_open_pem(void **state)
{
    char *dir = tr_tmpdir("chain");
    char chain[1100], root[1100];
    srvocsp_params p;
    srvocsp_chain *c;

    (void)state;
    snprintf(chain, sizeof(chain), "%s/chain.pem", dir);
    snprintf(root, sizeof(root), "%s/root.pem", dir);
    assert_true(tp_write_cert(chain, pki.chain_leaf.cert, pki.ica.cert));
    assert_true(tp_write_cert(root, pki.root.cert, NULL));
    srvocsp_params_init(&p);
    p.engine = eng;
    p.flags = SRVOCSP_OPEN_ASYNC;
    c = srvocsp_chain_open_pem(chain, root, &p);
    assert_non_null(c);
    assert_int_equal(srvocsp_chain_length(c), 2);
    assert_non_null(srvocsp_chain_get0_handle(c, 1));
    assert_ptr_equal(srvocsp_chain_up_ref(c), c);
    srvocsp_chain_close(c);
    assert_non_null(srvocsp_chain_get0_handle(c, 0)); /* one reference left */
    srvocsp_chain_close(c);
    tr_rmrf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_leaf_intermediate_root, setup, teardown),
        cmocka_unit_test_setup_teardown(test_order_of_served, setup, teardown),
        cmocka_unit_test_setup_teardown(test_issuer_of_last_from_extra, setup, teardown),
        cmocka_unit_test_setup_teardown(test_intermediate_without_url, setup, teardown),
        cmocka_unit_test_setup_teardown(test_intermediate_with_only_an_ldap_url, setup, teardown),
        cmocka_unit_test_setup_teardown(test_intermediate_verified_against_its_issuer, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_responder_url_is_the_leafs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_with_plain_handles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_inputs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_pem, setup, teardown),
    };
    int rc;

    T = (int64_t)time(NULL);
    manual_clock_init(&clk, T);
    if (!tp_pki_make(&pki, "http://127.0.0.1:9/", "http://127.0.0.1:1/", T) ||
        !tp_pki_make_chain(&pki, ROOT_URL, LEAF_URL, T))
        return 1;
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    tp_pki_free(&pki);
    srvocsp_cleanup();
    return rc;
}
