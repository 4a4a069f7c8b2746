/* The signer cache an engine's verifications share: a delegated
 * responder's certificates parsed once and a signature context set up
 * once per key.  What is kept must spare work and change nothing: a kept
 * certificate is still checked (validity, EKU), a response carrying it
 * still needs a good signature, a response that is not DER still takes
 * the whole parse, and threads share it safely (concurrency label: runs
 * under TSan too). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <openssl/ocsp.h>
#include <pthread.h>
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

static unsigned char *response(const tp_cert *signer, size_t *len)
{
    tp_resp_opts o;

    tp_resp_opts_init(&o, &pki.good, &pki.ca, now);
    if (signer != NULL) {
        o.signer = signer;
        o.include_signer = true;
    }
    return tp_response(&o, len);
}

/* srvocsp__verify as an entry runs it, with |sc|; the response's DER kept
 * must be the input's, byte for byte. */
static srvocsp_error verify_at(srvocsp__signer_cache *sc, X509 *issuer, const unsigned char *der,
                               size_t len, int64_t at)
{
    srvocsp__delegate_memo memo = {0};
    srvocsp__policy pol = {.now = at, .skew_s = 300, .max_age_s = 3600,
                           .max_lifetime_s = SRVOCSP__DEFAULT_MAX_LIFETIME, .delegate = &memo,
                           .signers = sc};
    srvocsp_response *r = NULL;
    char why[SRVOCSP__REASON_LEN];
    srvocsp_error err = srvocsp__verify(der, len, pki.good.cert, issuer, &pol, &r, why,
                                        sizeof(why));

    if (err == SRVOCSP_OK) {
        size_t kl;
        const unsigned char *kept = srvocsp_response_der(r, &kl);

        assert_int_equal(kl, len);
        assert_memory_equal(kept, der, len);
        assert_int_equal(srvocsp_response_status(r), SRVOCSP_STATUS_GOOD);
    }
    srvocsp_response_free(r);
    return err;
}

static srvocsp_error verify(srvocsp__signer_cache *sc, const unsigned char *der, size_t len)
{
    return verify_at(sc, pki.ca.cert, der, len, now);
}

/* Another object for the same certificate, as a PEM file read again gives. */
static X509 *copy_of(X509 *x)
{
    unsigned char *enc = NULL;
    const unsigned char *p;
    int n = i2d_X509(x, &enc);
    X509 *copy;

    assert_true(n > 0);
    p = enc;
    copy = d2i_X509(NULL, &p, n);
    assert_non_null(copy);
    assert_ptr_not_equal(copy, x);
    OPENSSL_free(enc);
    return copy;
}

static srvocsp__signer_cache_stats stats(srvocsp__signer_cache *sc)
{
    srvocsp__signer_cache_stats st;

    srvocsp__signer_cache_stats_get(sc, &st);
    return st;
}

/* The delegate's certificate: parsed from the first response, kept, then
 * taken from the cache for the next ones; its key's context is kept once
 * the certificate is (a certificate parsed afresh is not held). */
static void test_delegate_parsed_once(void **state)
{
    srvocsp__signer_cache *sc = srvocsp__signer_cache_new();
    unsigned char *der;
    size_t len;

    (void)state;
    der = response(&pki.delegate, &len);
    assert_non_null(der);
    assert_int_equal(verify(sc, der, len), SRVOCSP_OK);
    assert_int_equal(stats(sc).certs_kept, 1);
    assert_int_equal(stats(sc).certs_reused, 0);
    assert_int_equal(stats(sc).ctx_made, 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(verify(sc, der, len), SRVOCSP_OK);
    assert_int_equal(stats(sc).certs_kept, 1);
    assert_int_equal(stats(sc).certs_reused, 3);
    assert_int_equal(stats(sc).ctx_made, 1);
    assert_int_equal(stats(sc).ctx_reused, 2);
    free(der);
    /* A newer response of the same delegate: the same certificates field. */
    now += 60;
    der = response(&pki.delegate, &len);
    assert_int_equal(verify(sc, der, len), SRVOCSP_OK);
    now -= 60;
    assert_int_equal(stats(sc).certs_reused, 4);
    free(der);
    srvocsp__signer_cache_free(sc);
}

/* Refused responses keep nothing; a kept certificate is still checked. */
static void test_kept_delegate_still_checked(void **state)
{
    srvocsp__signer_cache *sc = srvocsp__signer_cache_new();
    unsigned char *der, *bad;
    size_t len, i;

    (void)state;
    der = response(&pki.delegate_other, &len);
    assert_int_equal(verify(sc, der, len), SRVOCSP_E_SIGNER);
    free(der);
    der = response(&pki.delegate_expired, &len);
    assert_int_equal(verify(sc, der, len), SRVOCSP_E_SIGNER_EXPIRED);
    free(der);
    assert_int_equal(stats(sc).certs_kept, 0);

    der = response(&pki.delegate, &len);
    assert_int_equal(verify(sc, der, len), SRVOCSP_OK);
    assert_int_equal(stats(sc).certs_kept, 1);
    /* Once the delegate has expired (it is valid for a year). */
    assert_int_equal(verify_at(sc, pki.ca.cert, der, len, now + 366 * 86400),
                     SRVOCSP_E_SIGNER_EXPIRED);
    assert_int_equal(stats(sc).certs_reused, 1);
    /* For another issuer: the kept delegate is not that issuer's. */
    assert_int_equal(verify_at(sc, pki.other_ca.cert, der, len, now), SRVOCSP_E_SIGNER);
    assert_int_equal(stats(sc).certs_reused, 2);
    /* The last byte of the signature changed: the certificates field is
     * the kept one, the signature no longer verifies. */
    bad = malloc(len);
    memcpy(bad, der, len);
    {
        unsigned char *cert = NULL;
        int n = i2d_X509(pki.delegate.cert, &cert);

        /* a0 82 xx xx 30 82 xx xx, then the certificate: the signature's
         * last byte is just before. */
        for (i = 16; i + (size_t)n <= len && memcmp(bad + i, cert, (size_t)n) != 0; i++)
            ;
        assert_true(i + (size_t)n <= len);
        assert_int_equal(bad[i - 8], 0xa0);
        assert_int_equal(bad[i - 4], 0x30);
        bad[i - 9] ^= 0x01;
        OPENSSL_free(cert);
    }
    assert_int_equal(verify(sc, bad, len), SRVOCSP_E_SIGNATURE);
    assert_int_equal(stats(sc).certs_reused, 3);
    /* A byte of the signed data changed (the nonzero serial's last byte
     * of the SingleResponse would not match; the producedAt's seconds
     * digit still parses): the signature does not verify. */
    memcpy(bad, der, len);
    for (i = 0; i + 15 < len; i++)
        if (bad[i] == 0x18 && bad[i + 1] == 0x0f && bad[i + 16] == 'Z')
            break;
    assert_true(i + 15 < len);
    bad[i + 15] = bad[i + 15] == '0' ? '1' : '0';
    assert_int_equal(verify(sc, bad, len), SRVOCSP_E_SIGNATURE);
    assert_int_equal(stats(sc).certs_reused, 4);
    free(bad);
    free(der);
    srvocsp__signer_cache_free(sc);
}

/* A DER header of |n| bytes with |tag| at |p|; returns its size. */
static size_t der_hdr(unsigned char *p, unsigned char tag, size_t n)
{
    p[0] = tag;
    if (n < 0x80) {
        p[1] = (unsigned char)n;
        return 2;
    }
    if (n < 0x100) {
        p[1] = 0x81;
        p[2] = (unsigned char)n;
        return 3;
    }
    p[1] = 0x82;
    p[2] = (unsigned char)(n >> 8);
    p[3] = (unsigned char)n;
    return 4;
}

/* |der| (a delegated response) with the length of its ResponderID (the
 * first member of tbsResponseData) in a long form DER does not allow,
 * every header around it in DER: the BER is inside the signed data,
 * beside the certificates field the cache keeps. */
static unsigned char *rid_long_length(const unsigned char *der, size_t len, size_t *out_len)
{
    static const unsigned char basic_oid[] = {0x06, 0x09, 0x2b, 0x06, 0x01, 0x05,
                                              0x05, 0x07, 0x30, 0x01, 0x01};
    const unsigned char *b = der, *tbs, *rid, *after;
    unsigned char *inner, *w, *out;
    size_t tl, th, rest, bl, il, n;

    while (memcmp(b, basic_oid, sizeof(basic_oid)) != 0)
        b++;
    b += sizeof(basic_oid);
    b += b[1] & 0x80 ? 2 + (b[1] & 0x7f) : 2; /* the OCTET STRING's header */
    tbs = b + (b[1] & 0x80 ? 2 + (b[1] & 0x7f) : 2); /* inside the basic SEQUENCE */
    assert_int_equal(tbs[0], 0x30);
    th = tbs[1] == 0x81 ? 3 : 4;
    tl = tbs[1] == 0x81 ? tbs[2] : ((size_t)tbs[2] << 8 | tbs[3]);
    rid = tbs + th;
    assert_int_equal(rid[0], 0xa1); /* byName, short length */
    assert_true(rid[1] < 0x80);
    after = tbs + th + tl; /* algorithm, signature, certificates */
    rest = len - (size_t)(after - der);
    inner = malloc(len + 16);
    n = der_hdr(inner, 0x30, tl + 1);
    inner[n++] = 0xa1;
    inner[n++] = 0x81;
    inner[n++] = rid[1];
    memcpy(inner + n, rid + 2, tl - 2), n += tl - 2;
    memcpy(inner + n, after, rest), n += rest;
    il = n;
    out = malloc(il + 64);
    /* Inside out: basic SEQUENCE, OCTET STRING, ResponseBytes, [0], outer. */
    {
        unsigned char h[5][8];
        size_t hn[5];

        n = il;

        hn[0] = der_hdr(h[0], 0x30, n), n += hn[0];
        hn[1] = der_hdr(h[1], 0x04, n), n += hn[1];
        bl = n + sizeof(basic_oid);
        hn[2] = der_hdr(h[2], 0x30, bl), bl += hn[2];
        hn[3] = der_hdr(h[3], 0xa0, bl), bl += hn[3] + 3;
        hn[4] = der_hdr(h[4], 0x30, bl);
        w = out;
        memcpy(w, h[4], hn[4]), w += hn[4];
        memcpy(w, "\x0a\x01\x00", 3), w += 3;
        memcpy(w, h[3], hn[3]), w += hn[3];
        memcpy(w, h[2], hn[2]), w += hn[2];
        memcpy(w, basic_oid, sizeof(basic_oid)), w += sizeof(basic_oid);
        memcpy(w, h[1], hn[1]), w += hn[1];
        memcpy(w, h[0], hn[0]), w += hn[0];
        memcpy(w, inner, il), w += il;
    }
    free(inner);
    *out_len = (size_t)(w - out);
    return out;
}

/* |ber| is accepted, not through the cache's parse, and served as |der|. */
static void served_as_der(srvocsp__signer_cache *sc, const unsigned char *ber, size_t ber_len,
                          const unsigned char *der, size_t len)
{
    srvocsp__policy pol = {.now = now, .skew_s = 300, .max_age_s = 3600,
                           .max_lifetime_s = SRVOCSP__DEFAULT_MAX_LIFETIME, .signers = sc};
    unsigned long reused = stats(sc).certs_reused;
    srvocsp_response *r = NULL;
    char why[SRVOCSP__REASON_LEN];
    const unsigned char *kept;
    size_t kl;

    assert_int_equal(srvocsp__verify(ber, ber_len, pki.good.cert, pki.ca.cert, &pol, &r, why,
                                     sizeof(why)),
                     SRVOCSP_OK);
    assert_int_equal(stats(sc).certs_reused, reused);
    kept = srvocsp_response_der(r, &kl);
    assert_int_equal(kl, len);
    assert_memory_equal(kept, der, len);
    srvocsp_response_free(r);
}

/* A DER length written longer than DER allows, outside the basic response
 * or inside it: not the cache's parse (it only takes DER), OpenSSL's whole
 * parse, which the response passes; what is served is the DER. */
static void test_not_der_takes_the_whole_parse(void **state)
{
    srvocsp__signer_cache *sc = srvocsp__signer_cache_new();
    unsigned char *der, *ber;
    size_t len, kl, hl, body;

    (void)state;
    der = response(&pki.delegate, &len);
    assert_int_equal(verify(sc, der, len), SRVOCSP_OK);
    assert_int_equal(stats(sc).certs_kept, 1);
    /* The outer SEQUENCE's length in four bytes instead of two. */
    assert_int_equal(der[0], 0x30);
    assert_int_equal(der[1], 0x82);
    hl = 4;
    body = len - hl;
    ber = malloc(len + 2);
    ber[0] = 0x30;
    ber[1] = 0x84;
    ber[2] = 0;
    ber[3] = 0;
    ber[4] = (unsigned char)(body >> 8);
    ber[5] = (unsigned char)body;
    memcpy(ber + 6, der + hl, body);
    served_as_der(sc, ber, len + 2, der, len);
    free(ber);
    /* Inside: the certificates field is the kept one, and the cache's
     * parse finds the rest is not DER. */
    ber = rid_long_length(der, len, &kl);
    assert_true(kl > len);
    served_as_der(sc, ber, kl, der, len);
    free(ber);
    free(der);
    srvocsp__signer_cache_free(sc);
}

/* The issuer's context: set up once, found again for another copy of the
 * same certificate (an entry opened from a PEM file has its own), and
 * it refuses what the issuer did not sign. */
static void test_issuer_context(void **state)
{
    srvocsp__signer_cache *sc = srvocsp__signer_cache_new();
    unsigned char *der;
    X509 *copy;
    size_t len;

    (void)state;
    der = response(NULL, &len);
    for (int i = 0; i < 4; i++)
        assert_int_equal(verify(sc, der, len), SRVOCSP_OK);
    assert_int_equal(stats(sc).ctx_made, 1);
    assert_int_equal(stats(sc).ctx_reused, 3);
    copy = copy_of(pki.ca.cert);
    assert_int_equal(verify_at(sc, copy, der, len, now), SRVOCSP_OK);
    assert_int_equal(stats(sc).ctx_made, 1);
    assert_int_equal(stats(sc).ctx_reused, 4);
    free(der);
    /* Signed by another key under our CA's name: refused by the kept
     * context of our CA's key. */
    {
        tp_cert forged;
        tp_cert_opts o;

        memset(&o, 0, sizeof(o));
        o.cn = "srvocsp test issuing CA";
        o.serial = 2;
        o.ca = true;
        o.not_before = now - 86400;
        o.not_after = now + 30 * 86400;
        assert_true(tp_cert_make(&forged, &o));
        der = response(NULL, &len);
        free(der);
        {
            tp_resp_opts ro;

            tp_resp_opts_init(&ro, &pki.good, &pki.ca, now);
            ro.signer = &forged;
            der = tp_response(&ro, &len);
        }
        assert_int_equal(verify(sc, der, len), SRVOCSP_E_SIGNATURE);
        assert_int_equal(stats(sc).ctx_made, 1);
        assert_int_equal(stats(sc).ctx_reused, 5);
        tp_cert_free(&forged);
    }
    X509_free(copy);
    free(der);
    srvocsp__signer_cache_free(sc);
}

/* The issuers' hashes every CertID and store name are made of: kept per
 * issuer, found again for another copy of it, never another's. */
static void test_issuer_ids(void **state)
{
    srvocsp__signer_cache *sc = srvocsp__signer_cache_new();
    srvocsp__issuer_ids want, got, other;
    X509 *copy;

    (void)state;
    assert_true(srvocsp__issuer_ids_compute(pki.ca.cert, &want));
    assert_true(srvocsp__issuer_ids_compute(pki.other_ca.cert, &other));
    assert_memory_not_equal(&want, &other, sizeof(want));
    for (int round = 0; round < 3; round++) {
        /* Twenty other issuers between: more than the cache keeps, so ours
         * are put out and computed again. */
        for (int i = 0; i < 20 && round == 1; i++) {
            tp_cert c;
            tp_cert_opts o;
            srvocsp__issuer_ids theirs;

            memset(&o, 0, sizeof(o));
            o.cn = "srvocsp issuer between";
            o.serial = 900 + i;
            o.ca = true;
            o.not_before = now - 86400;
            o.not_after = now + 86400;
            assert_true(tp_cert_make(&c, &o));
            assert_true(srvocsp__signer_cache_issuer_ids(sc, c.cert, &got));
            assert_true(srvocsp__issuer_ids_compute(c.cert, &theirs));
            assert_memory_equal(&got, &theirs, sizeof(got));
            tp_cert_free(&c);
        }
        assert_true(srvocsp__signer_cache_issuer_ids(sc, pki.ca.cert, &got));
        assert_memory_equal(&got, &want, sizeof(want));
        assert_true(srvocsp__signer_cache_issuer_ids(sc, pki.other_ca.cert, &got));
        assert_memory_equal(&got, &other, sizeof(other));
    }
    copy = copy_of(pki.ca.cert);
    assert_true(srvocsp__signer_cache_issuer_ids(sc, copy, &got));
    assert_memory_equal(&got, &want, sizeof(want));
    X509_free(copy);
    srvocsp__signer_cache_free(sc);
}

/* Issuers of every key type the library is measured with. */
static void test_key_types(void **state)
{
    static const tp_key_type types[] = {TP_KEY_EC, TP_KEY_RSA, TP_KEY_EC384};
    srvocsp__signer_cache *sc = srvocsp__signer_cache_new();

    (void)state;
    for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
        tp_cert ca, leaf, signer;
        tp_cert_opts o;
        tp_resp_opts ro;
        unsigned char *der;
        size_t len;

        memset(&o, 0, sizeof(o));
        o.cn = "srvocsp key type CA";
        o.serial = 50 + (long)t;
        o.ca = true;
        o.not_before = now - 86400;
        o.not_after = now + 30 * 86400;
        o.key_type = types[t];
        assert_true(tp_cert_make(&ca, &o));
        o.cn = "leaf.example";
        o.ca = false;
        o.issuer = &ca;
        assert_true(tp_cert_make(&leaf, &o));
        o.cn = "srvocsp key type signer";
        o.serial += 100;
        o.ocsp_signing = true;
        assert_true(tp_cert_make(&signer, &o));
        for (int delegated = 0; delegated < 2; delegated++) {
            srvocsp__policy pol = {.now = now, .skew_s = 300, .max_age_s = 3600,
                                   .max_lifetime_s = SRVOCSP__DEFAULT_MAX_LIFETIME,
                                   .signers = sc};
            srvocsp__signer_cache_stats before = stats(sc);
            char why[SRVOCSP__REASON_LEN];

            tp_resp_opts_init(&ro, &leaf, &ca, now);
            if (delegated) {
                ro.signer = &signer;
                ro.include_signer = true;
            }
            der = tp_response(&ro, &len);
            for (int i = 0; i < 3; i++) {
                srvocsp_response *r = NULL;

                assert_int_equal(srvocsp__verify(der, len, leaf.cert, ca.cert, &pol, &r, why,
                                                 sizeof(why)),
                                 SRVOCSP_OK);
                srvocsp_response_free(r);
            }
            /* Three checks, each through a context of the cache: one made,
             * two copied (delegated: the first check is of a certificate
             * parsed afresh, not kept). */
            assert_int_equal(stats(sc).ctx_made - before.ctx_made, 1);
            assert_int_equal(stats(sc).ctx_reused - before.ctx_reused, delegated ? 1 : 2);
            free(der);
        }
        tp_cert_free(&signer);
        tp_cert_free(&leaf);
        tp_cert_free(&ca);
    }
    srvocsp__signer_cache_free(sc);
}

/* Four threads verify through one cache, as an engine's pool does. */
typedef struct worker_arg {
    srvocsp__signer_cache *sc;
    const unsigned char *der[2];
    size_t len[2];
    int failures;
} worker_arg;

static void *worker(void *p)
{
    worker_arg *a = p;

    for (int i = 0; i < 60; i++)
        a->failures += verify(a->sc, a->der[i % 2], a->len[i % 2]) != SRVOCSP_OK;
    return NULL;
}

static void test_threads(void **state)
{
    srvocsp__signer_cache *sc = srvocsp__signer_cache_new();
    worker_arg args[4];
    pthread_t t[4];
    unsigned char *d0, *d1;
    size_t l0, l1;

    (void)state;
    d0 = response(&pki.delegate, &l0);
    d1 = response(NULL, &l1);
    for (int i = 0; i < 4; i++) {
        args[i] = (worker_arg){.sc = sc, .der = {d0, d1}, .len = {l0, l1}};
        assert_int_equal(pthread_create(&t[i], NULL, worker, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(args[i].failures, 0);
    }
    /* 120 delegated responses: every one but those parsed before the
     * first was kept came from the cache; the certificates were kept once. */
    assert_int_equal(stats(sc).certs_kept, 1);
    assert_true(stats(sc).certs_reused >= 116);
    free(d0);
    free(d1);
    srvocsp__signer_cache_free(sc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_delegate_parsed_once),
        cmocka_unit_test(test_kept_delegate_still_checked),
        cmocka_unit_test(test_not_der_takes_the_whole_parse),
        cmocka_unit_test(test_issuer_context),
        cmocka_unit_test(test_issuer_ids),
        cmocka_unit_test(test_key_types),
        cmocka_unit_test(test_threads),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
