/* What an entry keeps between verifications, each shown to be what is
 * used: its CertID's parts (matched instead of a CertID computed from the
 * issuer) and the delegate it last found authorized (whose issuer
 * signature is then not checked again, and nothing else is skipped). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <openssl/ocsp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "srvocsp.h"
#include "testpki.h"

static tp_pki pki;
static int64_t now;

static int setup(void **state)
{
    (void)state;
    now = (int64_t)time(NULL);
    return tp_pki_make(&pki, "http://127.0.0.1:9/", "http://127.0.0.1:10/", now) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    tp_pki_free(&pki);
    return 0;
}

/* The kept CertID is what is matched.  A response for the certificate's
 * CertID under our CA, signed by another CA with the same name (a test
 * that the signer is the issuer passes when that other CA is given as
 * the issuer): with the CertID kept from our CA it matches, computed
 * from the CA given it cannot (the key hash differs).  So an entry never
 * recomputes, and what it keeps must be right: test_request checks that
 * against OpenSSL's CertID. */
static void test_kept_certid_is_matched(void **state)
{
    tp_cert twin;
    tp_cert_opts co;
    tp_resp_opts o;
    unsigned char *der;
    size_t len;
    char why[SRVOCSP__REASON_LEN];

    (void)state;
    memset(&co, 0, sizeof(co));
    co.cn = "srvocsp test issuing CA";
    co.serial = 2;
    co.ca = true;
    co.not_before = now - 86400;
    co.not_after = now + 30 * 86400;
    assert_true(tp_cert_make(&twin, &co));
    tp_resp_opts_init(&o, &pki.good, &pki.ca, now);
    o.signer = &twin;
    der = tp_response(&o, &len);
    assert_non_null(der);
    for (int h = 0; h < 2; h++) {
        srvocsp__request req;
        srvocsp__policy pol = {.now = now, .skew_s = 300, .max_age_s = 3600,
                               .max_lifetime_s = SRVOCSP__DEFAULT_MAX_LIFETIME};
        srvocsp_response *r = NULL;

        /* SHA-1 is the hash the response's CertID uses; a kept SHA-256
         * CertID does not match it and the match is computed. */
        assert_int_equal(srvocsp__request_build(pki.good.cert, pki.ca.cert,
                                                h ? SRVOCSP_HASH_SHA256 : SRVOCSP_HASH_SHA1,
                                                "http://127.0.0.1:9/", 0, &req),
                         SRVOCSP_OK);
        pol.certid = &req.id;
        assert_int_equal(srvocsp__verify(der, len, pki.good.cert, twin.cert, &pol, &r, why,
                                         sizeof(why)),
                         h ? SRVOCSP_E_NO_MATCH : SRVOCSP_OK);
        srvocsp_response_free(r);
        r = NULL;
        pol.certid = NULL;
        assert_int_equal(srvocsp__verify(der, len, pki.good.cert, twin.cert, &pol, &r, why,
                                         sizeof(why)),
                         SRVOCSP_E_NO_MATCH);
        srvocsp__request_clear(&req);
    }
    free(der);
    tp_cert_free(&twin);
}

/* The delegate an entry keeps: set only by a delegate found authorized
 * (signed by the issuer, EKU, valid), and then spares the check of the
 * issuer's signature on that same certificate only; its EKU and validity
 * are checked every time, and any other certificate gets the whole check. */
static srvocsp_error verify_with_memo(const tp_cert *signer, srvocsp__delegate_memo *memo,
                                      int64_t at)
{
    srvocsp__policy pol = {.now = at, .skew_s = 300, .max_age_s = 3600,
                           .max_lifetime_s = SRVOCSP__DEFAULT_MAX_LIFETIME, .delegate = memo};
    srvocsp_response *r = NULL;
    char why[SRVOCSP__REASON_LEN];
    tp_resp_opts o;
    unsigned char *der;
    size_t len;
    srvocsp_error err;

    tp_resp_opts_init(&o, &pki.good, &pki.ca, at);
    o.signer = signer;
    o.include_signer = true;
    der = tp_response(&o, &len);
    assert_non_null(der);
    err = srvocsp__verify(der, len, pki.good.cert, pki.ca.cert, &pol, &r, why, sizeof(why));
    print_message("  %-40s -> %s %s\n", X509_NAME_oneline(X509_get_subject_name(signer->cert),
                                                           (char[128]){0}, 128),
                  srvocsp_error_name(err), err ? why : "");
    srvocsp_response_free(r);
    free(der);
    return err;
}

static void preset(srvocsp__delegate_memo *m, const tp_cert *c)
{
    unsigned int n = 0;

    assert_int_equal(X509_digest(c->cert, EVP_sha256(), m->sha256, &n), 1);
    assert_int_equal(n, sizeof(m->sha256));
    m->set = true;
}

static void test_delegate_memo(void **state)
{
    srvocsp__delegate_memo memo = {0}, want = {0};

    /* Refused delegates are never kept. */
    assert_int_equal(verify_with_memo(&pki.delegate_other, &memo, now), SRVOCSP_E_SIGNER);
    assert_int_equal(verify_with_memo(&pki.delegate_noeku, &memo, now), SRVOCSP_E_SIGNER);
    assert_int_equal(verify_with_memo(&pki.delegate_expired, &memo, now),
                     SRVOCSP_E_SIGNER_EXPIRED);
    assert_false(memo.set);
    /* An authorized one is, by its SHA-256 fingerprint, and serves again. */
    assert_int_equal(verify_with_memo(&pki.delegate, &memo, now), SRVOCSP_OK);
    preset(&want, &pki.delegate);
    assert_true(memo.set);
    assert_memory_equal(memo.sha256, want.sha256, sizeof(want.sha256));
    assert_int_equal(verify_with_memo(&pki.delegate, &memo, now), SRVOCSP_OK);
    /* Another delegate gets the whole check: the one of another CA is
     * still refused, and the memo still holds the authorized one. */
    assert_int_equal(verify_with_memo(&pki.delegate_other, &memo, now), SRVOCSP_E_SIGNER);
    assert_memory_equal(memo.sha256, want.sha256, sizeof(want.sha256));

    /* What the memo spares is the issuer's signature and nothing else: a
     * memo claiming the other CA's delegate lets it through that check
     * (which is why only an authorized delegate is ever kept), while the
     * EKU and the validity are still checked on a kept certificate. */
    preset(&memo, &pki.delegate_other);
    assert_int_equal(verify_with_memo(&pki.delegate_other, &memo, now), SRVOCSP_OK);
    preset(&memo, &pki.delegate_noeku);
    assert_int_equal(verify_with_memo(&pki.delegate_noeku, &memo, now), SRVOCSP_E_SIGNER);
    preset(&memo, &pki.delegate_expired);
    assert_int_equal(verify_with_memo(&pki.delegate_expired, &memo, now),
                     SRVOCSP_E_SIGNER_EXPIRED);
    /* A kept delegate is refused once it has expired (it is valid for a
     * year from now). */
    preset(&memo, &pki.delegate);
    assert_int_equal(verify_with_memo(&pki.delegate, &memo, now + 366 * 86400),
                     SRVOCSP_E_SIGNER_EXPIRED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kept_certid_is_matched),
        cmocka_unit_test(test_delegate_memo),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
