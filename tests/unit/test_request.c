/* Request building: CertID, URL order, GET (<= 255 bytes) or POST. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "testpki.h"

static tp_pki pki;

static int setup(void **s)
{
    return tp_pki_make(&pki, "http://127.0.0.1:8080/ocsp", "http://127.0.0.1:1/", time(NULL)) ? 0
                                                                                               : -1;
}

static int teardown(void **s)
{
    tp_pki_free(&pki);
    return 0;
}

/* Undoes the URL form: strips the base, percent-decodes, base64-decodes. */
static unsigned char *decode_get(const char *url, const char *base, size_t *len)
{
    const char *p = url + strlen(base);
    char b64[400];
    size_t n = 0;
    unsigned char *out = malloc(400);
    int k;

    if (*p == '/')
        p++;
    while (*p && n < sizeof(b64) - 1) {
        if (*p == '%') {
            unsigned v;
            sscanf(p + 1, "%2x", &v);
            b64[n++] = (char)v;
            p += 3;
        } else {
            b64[n++] = *p++;
        }
    }
    b64[n] = 0;
    k = EVP_DecodeBlock(out, (unsigned char *)b64, (int)n);
    while (n > 0 && b64[n - 1] == '=') {
        k--;
        n--;
    }
    *len = (size_t)k;
    return out;
}

static void test_get_url_roundtrip(void **s)
{
    srvocsp__request r;
    unsigned char *dec;
    size_t len;
    OCSP_REQUEST *req;
    const unsigned char *p;

    assert_int_equal(srvocsp__request_build(pki.good.cert, pki.ca.cert, SRVOCSP_HASH_SHA1, NULL, 0,
                                            &r),
                     SRVOCSP_OK);
    assert_int_equal(r.n_urls, 1);
    assert_string_equal(r.urls[0], "http://127.0.0.1:8080/ocsp");
    assert_non_null(r.get_urls[0]);
    assert_true(strlen(r.get_urls[0]) <= 255);
    assert_true(strncmp(r.get_urls[0], "http://127.0.0.1:8080/ocsp/", 27) == 0);
    assert_null(strchr(r.get_urls[0] + 27, '+'));
    assert_null(strchr(r.get_urls[0] + 27, '/'));
    assert_null(strchr(r.get_urls[0] + 27, '='));
    dec = decode_get(r.get_urls[0], r.urls[0], &len);
    assert_int_equal(len, r.der_len);
    assert_memory_equal(dec, r.der, len);
    /* The request parses and carries exactly one CertID, no extensions. */
    p = r.der;
    req = d2i_OCSP_REQUEST(NULL, &p, (long)r.der_len);
    assert_non_null(req);
    assert_int_equal(OCSP_request_onereq_count(req), 1);
    assert_int_equal(OCSP_REQUEST_get_ext_count(req), 0);
    OCSP_REQUEST_free(req);
    free(dec);
    srvocsp__request_clear(&r);
}

static void test_post_when_long(void **s)
{
    char base[300];
    srvocsp__request r;

    memset(base, 0, sizeof(base));
    strcpy(base, "http://127.0.0.1:8080/");
    memset(base + strlen(base), 'a', 200);
    assert_int_equal(srvocsp__request_build(pki.good.cert, pki.ca.cert, SRVOCSP_HASH_SHA1, base, 0,
                                            &r),
                     SRVOCSP_OK);
    assert_null(r.get_urls[0]); /* would exceed 255 bytes: POST */
    srvocsp__request_clear(&r);
}

/* A URL with a query string: appending the request after the query would
 * hide it from the responder, so such URLs are asked with POST. */
static void test_post_when_query(void **s)
{
    static const char *const urls[] = {"http://127.0.0.1:8080/ocsp/path?token=abc",
                                       "http://127.0.0.1:8080/ocsp#frag"};
    srvocsp__request r;

    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(srvocsp__request_build(pki.good.cert, pki.ca.cert, SRVOCSP_HASH_SHA1,
                                                urls[i], 0, &r),
                         SRVOCSP_OK);
        assert_null(r.get_urls[0]);
        assert_string_equal(r.urls[0], urls[i]);
        srvocsp__request_clear(&r);
    }
}

static void test_aia_order_and_override(void **s)
{
    srvocsp__request r;

    assert_int_equal(srvocsp__request_build(pki.twourls.cert, pki.ca.cert, SRVOCSP_HASH_SHA1, NULL,
                                            0, &r),
                     SRVOCSP_OK);
    assert_int_equal(r.n_urls, 2);
    assert_string_equal(r.urls[0], "http://127.0.0.1:1/");
    assert_string_equal(r.urls[1], "http://127.0.0.1:8080/ocsp");
    srvocsp__request_clear(&r);

    assert_int_equal(srvocsp__request_build(pki.noaia.cert, pki.ca.cert, SRVOCSP_HASH_SHA1, NULL, 0,
                                            &r),
                     SRVOCSP_E_NO_OCSP_URL);
    assert_int_equal(srvocsp_last_error(), SRVOCSP_E_NO_OCSP_URL);
    assert_int_equal(srvocsp__request_build(pki.noaia.cert, pki.ca.cert, SRVOCSP_HASH_SHA1,
                                            "http://override.test/", 0, &r),
                     SRVOCSP_OK);
    assert_string_equal(r.urls[0], "http://override.test/");
    srvocsp__request_clear(&r);
    assert_int_equal(srvocsp__request_build(pki.good.cert, pki.ca.cert, SRVOCSP_HASH_SHA1,
                                            "ldap://x/", 0, &r),
                     SRVOCSP_E_INVALID_ARG);
}

static void test_hash_and_nonce(void **s)
{
    srvocsp__request a, b, n;

    assert_int_equal(srvocsp__request_build(pki.good.cert, pki.ca.cert, SRVOCSP_HASH_SHA1, NULL, 0,
                                            &a),
                     SRVOCSP_OK);
    assert_int_equal(srvocsp__request_build(pki.good.cert, pki.ca.cert, SRVOCSP_HASH_SHA256, NULL,
                                            0, &b),
                     SRVOCSP_OK);
    /* Different CertIDs: SHA-256 hashes are longer. */
    assert_true(b.key_len > a.key_len);
    assert_int_equal(srvocsp__request_build(pki.good.cert, pki.ca.cert, SRVOCSP_HASH_SHA1, NULL, 1,
                                            &n),
                     SRVOCSP_OK);
    assert_true(n.der_len > a.der_len); /* the nonce extension */
    assert_int_equal(n.key_len, a.key_len);
    assert_memory_equal(n.key, a.key, a.key_len); /* same certificate identity */
    /* The request with a nonce asks for OpenSSL's CertID of the
     * certificate, once, with the nonce extension. */
    {
        const unsigned char *p = n.der;
        OCSP_REQUEST *req = d2i_OCSP_REQUEST(NULL, &p, (long)n.der_len);
        OCSP_CERTID *want = OCSP_cert_to_id(EVP_sha1(), pki.good.cert, pki.ca.cert);

        assert_non_null(req);
        assert_ptr_equal(p, n.der + n.der_len);
        assert_int_equal(OCSP_request_onereq_count(req), 1);
        assert_int_equal(OCSP_id_cmp(OCSP_onereq_get0_id(OCSP_request_onereq_get0(req, 0)), want),
                         0);
        assert_true(OCSP_REQUEST_get_ext_by_NID(req, NID_id_pkix_OCSP_Nonce, -1) >= 0);
        OCSP_CERTID_free(want);
        OCSP_REQUEST_free(req);
    }
    srvocsp__request_clear(&a);
    srvocsp__request_clear(&b);
    srvocsp__request_clear(&n);
    assert_int_equal(srvocsp__request_build(pki.good.cert, pki.ca.cert, (srvocsp_hash)7, NULL, 0,
                                            &a),
                     SRVOCSP_E_UNSUPPORTED);
}

/* The CertID and the request are written by hand from the issuer's
 * hashes: byte for byte what OpenSSL encodes, for both hashes and for
 * serials of every shape (short, a leading zero needed, long, zero,
 * negative as some old CAs issued them). */
static void test_written_as_openssl_would(void **s)
{
    static const char *const serials[] = {"1",  "7F",   "80", "FF",
                                          "0",  "-1",   "-80", "80000000",
                                          "7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF",
                                          "FEDCBA9876543210FEDCBA9876543210FEDCBA98"};
    srvocsp__issuer_ids ids;

    (void)s;
    assert_true(srvocsp__issuer_ids_compute(pki.ca.cert, &ids));
    for (size_t i = 0; i < sizeof(serials) / sizeof(serials[0]); i++) {
        X509 *leaf = X509_dup(pki.good.cert);
        BIGNUM *bn = NULL;
        ASN1_INTEGER *ai;

        assert_true(BN_hex2bn(&bn, serials[i]) > 0);
        ai = BN_to_ASN1_INTEGER(bn, NULL);
        assert_int_equal(X509_set_serialNumber(leaf, ai), 1);
        for (int h = 0; h < 2; h++) {
            const EVP_MD *md = h ? EVP_sha256() : EVP_sha1();
            OCSP_CERTID *id = OCSP_cert_to_id(md, leaf, pki.ca.cert);
            OCSP_REQUEST *oreq = OCSP_REQUEST_new();
            unsigned char *key = NULL, *der = NULL;
            int kl = i2d_OCSP_CERTID(id, &key), dl;
            srvocsp__request a, b;

            assert_non_null(OCSP_request_add0_id(oreq, id));
            dl = i2d_OCSP_REQUEST(oreq, &der);
            assert_true(kl > 0 && dl > 0);
            assert_int_equal(srvocsp__request_build_with(leaf, pki.ca.cert, h ? &ids : NULL,
                                                         h ? SRVOCSP_HASH_SHA256
                                                           : SRVOCSP_HASH_SHA1,
                                                         NULL, 0, &a),
                             SRVOCSP_OK);
            assert_int_equal(srvocsp__request_build_with(leaf, pki.ca.cert, h ? NULL : &ids,
                                                         h ? SRVOCSP_HASH_SHA256
                                                           : SRVOCSP_HASH_SHA1,
                                                         NULL, 0, &b),
                             SRVOCSP_OK);
            assert_int_equal(a.key_len, (size_t)kl);
            assert_memory_equal(a.key, key, (size_t)kl);
            assert_int_equal(a.der_len, (size_t)dl);
            assert_memory_equal(a.der, der, (size_t)dl);
            assert_int_equal(b.der_len, a.der_len);
            assert_memory_equal(b.der, a.der, a.der_len);
            /* The parts verification matches against. */
            assert_int_equal(a.id.md_nid, h ? NID_sha256 : NID_sha1);
            assert_int_equal(a.id.hash_len, h ? 32 : 20);
            assert_memory_equal(a.id.name_hash, h ? ids.name_sha256 : ids.name_sha1,
                                a.id.hash_len);
            assert_memory_equal(a.id.key_hash, h ? ids.key_sha256 : ids.key_sha1, a.id.hash_len);
            srvocsp__request_clear(&a);
            srvocsp__request_clear(&b);
            OPENSSL_free(key);
            OPENSSL_free(der);
            OCSP_REQUEST_free(oreq);
        }
        ASN1_INTEGER_free(ai);
        BN_free(bn);
        X509_free(leaf);
    }
}

static void test_find_issuer(void **s)
{
    STACK_OF(X509) *sk = sk_X509_new_null();

    sk_X509_push(sk, pki.good.cert);
    assert_null(srvocsp__find_issuer(pki.good.cert, sk));
    sk_X509_push(sk, pki.root.cert);
    sk_X509_push(sk, pki.ca.cert);
    assert_ptr_equal(srvocsp__find_issuer(pki.good.cert, sk), pki.ca.cert);
    sk_X509_free(sk);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_url_roundtrip), cmocka_unit_test(test_post_when_long),
        cmocka_unit_test(test_post_when_query),
        cmocka_unit_test(test_aia_order_and_override), cmocka_unit_test(test_hash_and_nonce),
        cmocka_unit_test(test_find_issuer), cmocka_unit_test(test_written_as_openssl_would),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
