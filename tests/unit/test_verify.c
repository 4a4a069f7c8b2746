/* Verification: every acceptance rule and every rejection reason, each
 * also with the CertID an entry keeps (SHA-1 and SHA-256) and with a
 * signer cache, which must change no outcome.  What an entry keeps is
 * tested on its own in test_verify_kept. */
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
static tp_cert forged_ca; /* same name as the CA, another key */
static int64_t now;
static srvocsp__signer_cache *shared; /* one for every case, as an engine's */

static int setup(void **state)
{
    tp_cert_opts o;

    now = (int64_t)time(NULL);
    if (!tp_pki_make(&pki, "http://127.0.0.1:9/", "http://127.0.0.1:10/", now))
        return -1;
    memset(&o, 0, sizeof(o));
    o.cn = "srvocsp test issuing CA";
    o.serial = 2;
    o.ca = true;
    o.not_before = now - 86400;
    o.not_after = now + 86400 * 30;
    shared = srvocsp__signer_cache_new();
    return shared != NULL && tp_cert_make(&forged_ca, &o) ? 0 : -1;
}

static int teardown(void **state)
{
    srvocsp__signer_cache_free(shared);
    tp_pki_free(&pki);
    tp_cert_free(&forged_ca);
    return 0;
}

typedef struct vcase {
    const char *name;
    void (*tweak)(tp_resp_opts *o);
    srvocsp_error want;
    srvocsp_cert_status want_status;
} vcase;

static void t_none(tp_resp_opts *o) { (void)o; }
static void t_revoked(tp_resp_opts *o) { o->status = V_OCSP_CERTSTATUS_REVOKED; o->reason = 1; }
static void t_unknown(tp_resp_opts *o) { o->status = V_OCSP_CERTSTATUS_UNKNOWN; }
static void t_delegate(tp_resp_opts *o) { o->signer = &pki.delegate; o->include_signer = true; }
static void t_delegate_bykey(tp_resp_opts *o) { t_delegate(o); o->by_key = true; }
static void t_issuer_bykey(tp_resp_opts *o) { o->by_key = true; }
static void t_delegate_missing(tp_resp_opts *o) { o->signer = &pki.delegate; }
static void t_noeku(tp_resp_opts *o) { o->signer = &pki.delegate_noeku; o->include_signer = true; }
static void t_other(tp_resp_opts *o) { o->signer = &pki.delegate_other; o->include_signer = true; }
static void t_expired_signer(tp_resp_opts *o) { o->signer = &pki.delegate_expired; o->include_signer = true; }
static void t_wrong_key(tp_resp_opts *o) { o->signer = &forged_ca; }
static void t_wrong_key_included(tp_resp_opts *o) { o->signer = &forged_ca; o->include_signer = true; }
static void t_other_cert(tp_resp_opts *o) { o->leaf = &pki.revoked; }
static void t_serial(tp_resp_opts *o) { o->mangle = TP_MANGLE_SERIAL; }
static void t_namehash(tp_resp_opts *o) { o->mangle = TP_MANGLE_NAME_HASH; }
static void t_keyhash(tp_resp_opts *o) { o->mangle = TP_MANGLE_KEY_HASH; }
static void t_future(tp_resp_opts *o) { o->this_update = now + 3600; o->next_update = now + 90000; }
static void t_within_skew(tp_resp_opts *o) { o->this_update = now + 200; }
static void t_stale(tp_resp_opts *o) { o->this_update = now - 7200; o->next_update = now - 10; }
static void t_no_next(tp_resp_opts *o) { o->next_update = 0; o->this_update = now - 1800; }
static void t_no_next_old(tp_resp_opts *o) { o->next_update = 0; o->this_update = now - 3601; }
static void t_next_before_this(tp_resp_opts *o) { o->this_update = now - 10; o->next_update = now - 20; }
static void t_sha256(tp_resp_opts *o) { o->certid_md = EVP_sha256(); }
static void t_not_first(tp_resp_opts *o) { o->other_first = &pki.revoked; }
static void t_crit_single(tp_resp_opts *o) { o->critical_ext_single = true; }
static void t_crit_data(tp_resp_opts *o) { o->critical_ext_data = true; }
static void t_trylater(tp_resp_opts *o) { o->response_status = OCSP_RESPONSE_STATUS_TRYLATER; }
static void t_malformed(tp_resp_opts *o) { o->response_status = OCSP_RESPONSE_STATUS_MALFORMEDREQUEST; }
static void t_unauthorized(tp_resp_opts *o) { o->response_status = OCSP_RESPONSE_STATUS_UNAUTHORIZED; }
static void t_produced_early(tp_resp_opts *o) { o->produced_at = now - 10 * 86400; }

static const vcase cases[] = {
    {"good, signed by issuer", t_none, SRVOCSP_OK, SRVOCSP_STATUS_GOOD},
    {"revoked", t_revoked, SRVOCSP_OK, SRVOCSP_STATUS_REVOKED},
    {"unknown is verified (and never served)", t_unknown, SRVOCSP_OK, SRVOCSP_STATUS_UNKNOWN},
    {"delegated signer with EKU", t_delegate, SRVOCSP_OK, SRVOCSP_STATUS_GOOD},
    {"delegated signer, ResponderID byKey", t_delegate_bykey, SRVOCSP_OK, SRVOCSP_STATUS_GOOD},
    {"issuer, ResponderID byKey", t_issuer_bykey, SRVOCSP_OK, SRVOCSP_STATUS_GOOD},
    {"SHA-256 CertID", t_sha256, SRVOCSP_OK, SRVOCSP_STATUS_GOOD},
    {"ours not the first SingleResponse", t_not_first, SRVOCSP_OK, SRVOCSP_STATUS_GOOD},
    {"thisUpdate within the skew", t_within_skew, SRVOCSP_OK, SRVOCSP_STATUS_GOOD},
    {"no nextUpdate, within max age", t_no_next, SRVOCSP_OK, SRVOCSP_STATUS_GOOD},
    {"delegated signer not included", t_delegate_missing, SRVOCSP_E_SIGNER, 0},
    {"delegated signer without EKU", t_noeku, SRVOCSP_E_SIGNER, 0},
    {"delegated signer of another CA", t_other, SRVOCSP_E_SIGNER, 0},
    {"expired delegated signer", t_expired_signer, SRVOCSP_E_SIGNER_EXPIRED, 0},
    {"signed by a wrong key with the issuer's name", t_wrong_key, SRVOCSP_E_SIGNATURE, 0},
    {"forged issuer certificate included", t_wrong_key_included, SRVOCSP_E_SIGNER, 0},
    {"response for another certificate", t_other_cert, SRVOCSP_E_NO_MATCH, 0},
    {"wrong serial", t_serial, SRVOCSP_E_NO_MATCH, 0},
    {"wrong issuer name hash", t_namehash, SRVOCSP_E_NO_MATCH, 0},
    {"wrong issuer key hash", t_keyhash, SRVOCSP_E_NO_MATCH, 0},
    {"thisUpdate in the future", t_future, SRVOCSP_E_NOT_YET_VALID, 0},
    {"nextUpdate in the past", t_stale, SRVOCSP_E_EXPIRED, 0},
    {"nextUpdate before thisUpdate", t_next_before_this, SRVOCSP_E_EXPIRED, 0},
    {"no nextUpdate, older than max age", t_no_next_old, SRVOCSP_E_EXPIRED, 0},
    {"critical unknown extension in SingleResponse", t_crit_single, SRVOCSP_E_CRITICAL_EXT, 0},
    {"critical unknown extension in ResponseData", t_crit_data, SRVOCSP_E_CRITICAL_EXT, 0},
    {"tryLater", t_trylater, SRVOCSP_E_RESPONSE_STATUS, 0},
    {"malformedRequest", t_malformed, SRVOCSP_E_RESPONSE_STATUS, 0},
    {"unauthorized", t_unauthorized, SRVOCSP_E_RESPONSE_STATUS, 0},
    {"producedAt before the certificate existed", t_produced_early, SRVOCSP_E_BAD_PRODUCED_AT, 0},
};

static void test_table(void **state)
{
    srvocsp__signer_cache_stats st;
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tp_resp_opts o;
        unsigned char *der;
        size_t len = 0;
        srvocsp_verify_opts vo;
        srvocsp_response *r;

        tp_resp_opts_init(&o, &pki.good, &pki.ca, now);
        cases[i].tweak(&o);
        der = tp_response(&o, &len);
        assert_non_null(der);
        srvocsp_verify_opts_init(&vo);
        vo.now = now;
        r = srvocsp_verify_der(der, len, pki.good.cert, pki.ca.cert, &vo);
        print_message("  %-50s -> %s %s\n", cases[i].name,
                      r ? "accepted" : srvocsp_error_name(srvocsp_last_error()),
                      r ? "" : srvocsp_last_error_text());
        if (cases[i].want == SRVOCSP_OK) {
            assert_non_null(r);
            assert_int_equal(srvocsp_response_status(r), cases[i].want_status);
            {
                size_t dl;
                const unsigned char *d = srvocsp_response_der(r, &dl);

                assert_int_equal(dl, len);
                assert_memory_equal(d, der, len);
            }
            assert_int_equal(srvocsp_response_this_update(r), o.this_update);
            assert_int_equal(srvocsp_response_next_update(r), o.next_update);
            assert_int_equal(srvocsp_response_expires(r),
                             o.next_update ? o.next_update : o.this_update + 3600);
        } else {
            assert_null(r);
            assert_int_equal(srvocsp_last_error(), cases[i].want);
            assert_true(strlen(srvocsp_last_error_text()) > 10);
        }
        srvocsp_response_free(r);

        /* The same with the CertID an entry keeps, of either hash: the
         * kept one only spares recomputing a match.  Then twice more with
         * a signer cache shared by every case, as an engine's entries
         * share one: what it keeps from any case changes no outcome. */
        for (int h = 0; h < 4; h++) {
            srvocsp__request req;
            srvocsp__policy pol = {.now = now, .skew_s = 300, .max_age_s = 3600,
                                   .max_lifetime_s = SRVOCSP__DEFAULT_MAX_LIFETIME};
            char why[SRVOCSP__REASON_LEN];
            srvocsp_error err;

            assert_int_equal(srvocsp__request_build(pki.good.cert, pki.ca.cert,
                                                    h % 2 ? SRVOCSP_HASH_SHA256 : SRVOCSP_HASH_SHA1,
                                                    "http://127.0.0.1:9/", 0, &req),
                             SRVOCSP_OK);
            pol.certid = &req.id;
            pol.signers = h >= 2 ? shared : NULL;
            r = NULL;
            err = srvocsp__verify(der, len, pki.good.cert, pki.ca.cert, &pol, &r, why,
                                  sizeof(why));
            assert_int_equal(err, cases[i].want);
            if (err == SRVOCSP_OK) {
                size_t dl;

                assert_int_equal(srvocsp_response_status(r), cases[i].want_status);
                assert_memory_equal(srvocsp_response_der(r, &dl), der, len);
            }
            srvocsp_response_free(r);
            srvocsp__request_clear(&req);
        }
        free(der);
    }
    /* And it was used: the issuer's context and the delegates' certificates. */
    srvocsp__signer_cache_stats_get(shared, &st);
    assert_true(st.ctx_reused > 0 && st.certs_reused > 0);
}

static void test_revocation_details(void **state)
{
    tp_resp_opts o;
    unsigned char *der;
    size_t len;
    srvocsp_response *r;

    tp_resp_opts_init(&o, &pki.good, &pki.ca, now);
    o.status = V_OCSP_CERTSTATUS_REVOKED;
    o.revoked_at = now - 5000;
    o.reason = 1;
    der = tp_response(&o, &len);
    r = srvocsp_verify_der(der, len, pki.good.cert, pki.ca.cert, NULL);
    assert_non_null(r);
    assert_int_equal(srvocsp_response_revocation_time(r), now - 5000);
    assert_int_equal(srvocsp_response_revocation_reason(r), 1);
    srvocsp_response_free(r);
    free(der);
}

static void test_garbage(void **state)
{
    static const unsigned char junk[] = {0x30, 0x03, 0x0a, 0x01, 0x00, 0xff};
    tp_resp_opts o;
    unsigned char *der, *longer;
    size_t len;

    assert_null(srvocsp_verify_der(junk, 0, pki.good.cert, pki.ca.cert, NULL));
    assert_int_equal(srvocsp_last_error(), SRVOCSP_E_PARSE);
    assert_null(srvocsp_verify_der((const unsigned char *)"hello world", 11, pki.good.cert,
                                   pki.ca.cert, NULL));
    assert_int_equal(srvocsp_last_error(), SRVOCSP_E_PARSE);
    /* A successful status without a body. */
    assert_null(srvocsp_verify_der(junk, 5, pki.good.cert, pki.ca.cert, NULL));
    assert_int_not_equal(srvocsp_last_error(), SRVOCSP_OK);

    tp_resp_opts_init(&o, &pki.good, &pki.ca, now);
    der = tp_response(&o, &len);
    /* Truncated anywhere: rejected. */
    for (size_t cut = 1; cut < len; cut += 7)
        assert_null(srvocsp_verify_der(der, cut, pki.good.cert, pki.ca.cert, NULL));
    /* Trailing bytes: rejected. */
    longer = malloc(len + 1);
    memcpy(longer, der, len);
    longer[len] = 0;
    assert_null(srvocsp_verify_der(longer, len + 1, pki.good.cert, pki.ca.cert, NULL));
    assert_int_equal(srvocsp_last_error(), SRVOCSP_E_PARSE);
    /* One flipped bit in the signed data: rejected. */
    memcpy(longer, der, len);
    longer[len - 80] ^= 1;
    assert_null(srvocsp_verify_der(longer, len, pki.good.cert, pki.ca.cert, NULL));
    free(longer);
    free(der);
}

static void test_skew_and_time_options(void **state)
{
    tp_resp_opts o;
    unsigned char *der;
    size_t len;
    srvocsp_verify_opts vo;
    srvocsp_response *r;

    tp_resp_opts_init(&o, &pki.good, &pki.ca, now);
    o.this_update = now + 200;
    der = tp_response(&o, &len);
    srvocsp_verify_opts_init(&vo);
    vo.now = now;
    vo.clock_skew_s = 100;
    assert_null(srvocsp_verify_der(der, len, pki.good.cert, pki.ca.cert, &vo));
    assert_int_equal(srvocsp_last_error(), SRVOCSP_E_NOT_YET_VALID);
    vo.clock_skew_s = 300;
    r = srvocsp_verify_der(der, len, pki.good.cert, pki.ca.cert, &vo);
    assert_non_null(r);
    srvocsp_response_free(r);
    /* Verifying "as of" a later time: past nextUpdate. */
    vo.now = now + 2 * 86400;
    assert_null(srvocsp_verify_der(der, len, pki.good.cert, pki.ca.cert, &vo));
    assert_int_equal(srvocsp_last_error(), SRVOCSP_E_EXPIRED);
    free(der);

    /* No nextUpdate: the max age is configurable. */
    tp_resp_opts_init(&o, &pki.good, &pki.ca, now);
    o.next_update = 0;
    o.this_update = now - 7200;
    der = tp_response(&o, &len);
    vo.now = now;
    vo.max_age_no_next_update_s = 3600;
    assert_null(srvocsp_verify_der(der, len, pki.good.cert, pki.ca.cert, &vo));
    vo.max_age_no_next_update_s = 86400;
    r = srvocsp_verify_der(der, len, pki.good.cert, pki.ca.cert, &vo);
    assert_non_null(r);
    assert_int_equal(srvocsp_response_expires(r), now - 7200 + 86400);
    srvocsp_response_free(r);
    free(der);
}

/* A responder renewed its delegated signing certificate (same name, same
 * key) and carries both, the expired one and its renewal, in either order:
 * accepted when any carried certificate is an authorized signer. */
static void test_renewed_delegate_any_order(void **state)
{
    tp_cert renewed;
    tp_cert_opts co;
    tp_resp_opts o;
    srvocsp_verify_opts vo;
    srvocsp_response *r;
    unsigned char *der;
    size_t len;

    memset(&co, 0, sizeof(co));
    co.cn = "srvocsp expired signer";
    co.serial = 0x1103;
    co.issuer = &pki.ca;
    co.ocsp_signing = true;
    co.not_before = now - 86400;
    co.not_after = now + 30 * 86400;
    co.same_key_as = &pki.delegate_expired;
    assert_true(tp_cert_make(&renewed, &co));
    srvocsp_verify_opts_init(&vo);
    vo.now = now;
    for (int order = 0; order < 2; order++) {
        tp_resp_opts_init(&o, &pki.good, &pki.ca, now);
        o.signer = order == 0 ? &pki.delegate_expired : &renewed;
        o.include_signer = true;
        o.carry = order == 0 ? &renewed : &pki.delegate_expired;
        der = tp_response(&o, &len);
        r = srvocsp_verify_der(der, len, pki.good.cert, pki.ca.cert, &vo);
        print_message("  expired delegate %s its renewal: %s\n", order == 0 ? "before" : "after",
                      r ? "accepted" : srvocsp_last_error_text());
        assert_non_null(r);
        srvocsp_response_free(r);
        free(der);
    }
    /* Only the expired one: still refused, with its reason. */
    tp_resp_opts_init(&o, &pki.good, &pki.ca, now);
    o.signer = &pki.delegate_expired;
    o.include_signer = true;
    der = tp_response(&o, &len);
    assert_null(srvocsp_verify_der(der, len, pki.good.cert, pki.ca.cert, &vo));
    assert_int_equal(srvocsp_last_error(), SRVOCSP_E_SIGNER_EXPIRED);
    free(der);
    tp_cert_free(&renewed);
}

/* Outer layers in BER (indefinite lengths): accepted, and what is kept is
 * DER with the same signed bytes. */
static void test_ber_outer_reencoded(void **state)
{
    tp_resp_opts o;
    srvocsp_verify_opts vo;
    srvocsp_response *r;
    unsigned char *der, *ber;
    const unsigned char *kept;
    size_t len, hl, kl;

    tp_resp_opts_init(&o, &pki.good, &pki.ca, now);
    der = tp_response(&o, &len);
    hl = der[1] & 0x80 ? 2 + (size_t)(der[1] & 0x7f) : 2;
    ber = malloc(len - hl + 4);
    ber[0] = 0x30;
    ber[1] = 0x80;
    memcpy(ber + 2, der + hl, len - hl);
    ber[len - hl + 2] = 0;
    ber[len - hl + 3] = 0;
    srvocsp_verify_opts_init(&vo);
    vo.now = now;
    r = srvocsp_verify_der(ber, len - hl + 4, pki.good.cert, pki.ca.cert, &vo);
    assert_non_null(r);
    kept = srvocsp_response_der(r, &kl);
    assert_int_equal(kl, len);
    assert_memory_equal(kept, der, len);
    srvocsp_response_free(r);
    /* DER input is kept byte for byte. */
    r = srvocsp_verify_der(der, len, pki.good.cert, pki.ca.cert, &vo);
    kept = srvocsp_response_der(r, &kl);
    assert_int_equal(kl, len);
    assert_memory_equal(kept, der, len);
    srvocsp_response_free(r);
    free(ber);
    free(der);
}

/* A DER length of |n| bytes written in |k| > minimal bytes (BER allows
 * it, DER does not); returns the header size. */
static size_t long_len(unsigned char *p, unsigned char tag, size_t n, size_t k)
{
    size_t i;

    p[0] = tag;
    p[1] = (unsigned char)(0x80 | k);
    for (i = 0; i < k; i++)
        p[2 + i] = (unsigned char)(n >> (8 * (k - 1 - i)));
    return 2 + k;
}

/* Every outer layer, down to the OCTET STRING that wraps the basic
 * response, with its length in a longer form than DER's: accepted, and
 * what is kept is the DER, byte for byte what the responder would have
 * sent in DER (the layers around the basic response are written by
 * verify.c itself, so this checks them against OpenSSL's encoding). */
static void test_ber_lengths_reencoded(void **state)
{
    static const unsigned char basic_oid[] = {0x06, 0x09, 0x2b, 0x06, 0x01, 0x05,
                                              0x05, 0x07, 0x30, 0x01, 0x01};
    tp_resp_opts o;
    srvocsp_verify_opts vo;
    srvocsp_response *r;
    unsigned char *der, *ber, *w;
    const unsigned char *kept, *basic;
    size_t len, kl, bl, body;
    int k;

    (void)state;
    srvocsp_verify_opts_init(&vo);
    vo.now = now;
    for (k = 0; k < 2; k++) {
        /* A small response and one carrying a delegate certificate: lengths
         * under 256 and over. */
        tp_resp_opts_init(&o, &pki.good, &pki.ca, now);
        if (k == 1) {
            o.signer = &pki.delegate;
            o.include_signer = true;
        }
        der = tp_response(&o, &len);
        assert_non_null(der);
        /* The basic response: after the last header of the outer layers. */
        for (basic = der; basic + sizeof(basic_oid) < der + len; basic++)
            if (memcmp(basic, basic_oid, sizeof(basic_oid)) == 0)
                break;
        assert_true(basic + sizeof(basic_oid) < der + len);
        basic += sizeof(basic_oid);
        assert_int_equal(basic[0], 0x04);
        basic += basic[1] & 0x80 ? 2 + (basic[1] & 0x7f) : 2;
        bl = len - (size_t)(basic - der);
        ber = malloc(len + 32);
        /* 30 [4] { 0a 01 00, a0 [4] { 30 [4] { oid, 04 [4] basic } } } */
        body = 3 + 6 + 6 + sizeof(basic_oid) + 6 + bl;
        w = ber;
        w += long_len(w, 0x30, body, 4);
        memcpy(w, "\x0a\x01\x00", 3), w += 3;
        w += long_len(w, 0xa0, body - 3 - 6, 4);
        w += long_len(w, 0x30, body - 3 - 12, 4);
        memcpy(w, basic_oid, sizeof(basic_oid)), w += sizeof(basic_oid);
        w += long_len(w, 0x04, bl, 4);
        memcpy(w, basic, bl), w += bl;
        r = srvocsp_verify_der(ber, (size_t)(w - ber), pki.good.cert, pki.ca.cert, &vo);
        assert_non_null(r);
        kept = srvocsp_response_der(r, &kl);
        assert_int_equal(kl, len);
        assert_memory_equal(kept, der, len);
        srvocsp_response_free(r);
        free(ber);
        free(der);
    }
}

/* The trust horizon: nextUpdate years ahead is not believed past the
 * maximum lifetime; a thisUpdate older than it is refused. */
static void test_max_lifetime(void **state)
{
    tp_resp_opts o;
    srvocsp_verify_opts vo;
    srvocsp_response *r;
    unsigned char *der;
    size_t len;

    tp_resp_opts_init(&o, &pki.good, &pki.ca, now);
    o.next_update = now + 3650LL * 86400;
    der = tp_response(&o, &len);
    srvocsp_verify_opts_init(&vo);
    vo.now = now;
    assert_int_equal(vo.max_lifetime_s, 864000);
    r = srvocsp_verify_der(der, len, pki.good.cert, pki.ca.cert, &vo);
    assert_non_null(r);
    assert_int_equal(srvocsp_response_expires(r), now + 864000);
    srvocsp_response_free(r);
    vo.now = now + 864000;
    assert_null(srvocsp_verify_der(der, len, pki.good.cert, pki.ca.cert, &vo));
    assert_int_equal(srvocsp_last_error(), SRVOCSP_E_EXPIRED);
    vo.max_lifetime_s = 0; /* no horizon: nextUpdate rules */
    r = srvocsp_verify_der(der, len, pki.good.cert, pki.ca.cert, &vo);
    assert_non_null(r);
    assert_int_equal(srvocsp_response_expires(r), now + 3650LL * 86400);
    srvocsp_response_free(r);
    free(der);
}

static void test_errors_table(void **state)
{
    assert_string_equal(srvocsp_strerror(SRVOCSP_OK), "success");
    assert_string_equal(srvocsp_error_name(SRVOCSP_E_TIMEOUT), "E_TIMEOUT");
    assert_int_equal(srvocsp_error_category(SRVOCSP_E_TIMEOUT), SRVOCSP_CAT_TRANSPORT);
    assert_int_equal(srvocsp_error_category(SRVOCSP_E_SIGNATURE), SRVOCSP_CAT_VERIFY);
    assert_string_equal(srvocsp_strerror((srvocsp_error)9999), "unknown error");
    /* The numbers are part of the ABI. */
    assert_int_equal(SRVOCSP_E_OFFLINE, 4);
    assert_int_equal(SRVOCSP_E_ROLLBACK, 23);
    assert_int_equal(SRVOCSP_E_SHORT_VALIDITY, 31);
    assert_int_equal(SRVOCSP_E_CONTENT_ENCODING, 32);
    for (int i = 0; i < SRVOCSP__ERROR_END; i++)
        assert_true(strlen(srvocsp_strerror((srvocsp_error)i)) > 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_revocation_details),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_skew_and_time_options),
        cmocka_unit_test(test_renewed_delegate_any_order),
        cmocka_unit_test(test_ber_outer_reencoded),
        cmocka_unit_test(test_ber_lengths_reencoded),
        cmocka_unit_test(test_max_lifetime),
        cmocka_unit_test(test_errors_table),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
