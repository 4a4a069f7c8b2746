/*
 * Verification of an OCSP response for one certificate: the single path
 * every response takes, from the network, the disk or a shared store.
 *
 * Accepted only if all hold:
 *  - a DER OCSPResponse with nothing trailing, status successful, basic type;
 *  - signed by the issuer itself, or by a delegated responder certificate
 *    signed directly by the issuer, carrying id-kp-OCSPSigning and within
 *    its validity at |now|;
 *  - no unhandled critical extension in ResponseData or the SingleResponse;
 *  - a SingleResponse whose CertID matches our certificate, recomputed with
 *    the hash algorithm that SingleResponse uses;
 *  - producedAt within the certificate's validity (with the skew);
 *  - thisUpdate not later than now + skew; nextUpdate (if any) after now and
 *    not before thisUpdate; without nextUpdate, thisUpdate + max age after now;
 *    thisUpdate + the maximum lifetime after now (a trust horizon: a
 *    nextUpdate years ahead is not believed; the snapshot expires at the
 *    earliest of these).
 * What is kept is the DER encoding: outer layers sent in BER are encoded
 * again (the signed bytes do not change).
 */
#include "internal.h"

#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/x509v3.h>
#include <limits.h>
#include <stddef.h>
#include <string.h>

/* Extensions whose meaning we know, so a critical one is not a reason to
 * reject: nonce, CRL references, archive cutoff, service locator, extended
 * revocation (RFC 6960), and the Certificate Transparency SCT list
 * (RFC 6962), which some CAs mark critical. */
static const char *const known_ext_oids[] = {
    "1.3.6.1.5.5.7.48.1.2", "1.3.6.1.5.5.7.48.1.3", "1.3.6.1.5.5.7.48.1.6",
    "1.3.6.1.5.5.7.48.1.7", "1.3.6.1.5.5.7.48.1.9", "1.3.6.1.4.1.11129.2.4.5",
};

static bool ext_known(const X509_EXTENSION *ext)
{
    char oid[80];
    size_t i;

    if (OBJ_obj2txt(oid, sizeof(oid), X509_EXTENSION_get_object((X509_EXTENSION *)ext), 1) <= 0)
        return false;
    for (i = 0; i < sizeof(known_ext_oids) / sizeof(known_ext_oids[0]); i++)
        if (strcmp(oid, known_ext_oids[i]) == 0)
            return true;
    return false;
}

static int64_t gt_to_unix(const ASN1_GENERALIZEDTIME *t, bool *ok)
{
    return srvocsp__asn1_time_to_unix((const ASN1_TIME *)t, ok);
}

/* Whether |cand| matches the ResponderID of |bs|. */
static bool responder_id_matches(const OCSP_BASICRESP *bs, X509 *cand)
{
    const ASN1_OCTET_STRING *key_id = NULL;
    const X509_NAME *name = NULL;

    if (OCSP_resp_get0_id(bs, &key_id, &name) != 1)
        return false;
    if (name != NULL)
        return X509_NAME_cmp(X509_get_subject_name(cand), name) == 0;
    if (key_id != NULL) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int n = 0;

        if (X509_pubkey_digest(cand, EVP_sha1(), md, &n) != 1)
            return false;
        return (int)n == ASN1_STRING_length(key_id) &&
               memcmp(md, ASN1_STRING_get0_data(key_id), n) == 0;
    }
    return false;
}

/* Bytes inside a buffer the caller holds. */
typedef struct der_span {
    const unsigned char *p;
    size_t len;
} der_span;

/* Whether the response signature verifies with |cand|'s key.  |kept|:
 * the caller holds |cand| across responses (the issuer, a kept carried
 * certificate), so the signer cache may keep its context. */
static bool signature_ok(OCSP_BASICRESP *bs, const der_span *tbs, X509 *cand,
                         const srvocsp__policy *pol, bool kept)
{
    STACK_OF(X509) *sk = NULL;
    bool ok = false;
    int r = srvocsp__signer_cache_verify(pol->signers, bs, cand, kept, tbs->p, tbs->len);

    if (r >= 0)
        return r == 1;
    if ((sk = sk_X509_new_null()) == NULL || !sk_X509_push(sk, cand))
        goto out;
    /* NOINTERN: the signer is |cand| and nothing else; NOVERIFY: we do the
     * authorization checks ourselves, against the issuer we were given,
     * not against a trust store. */
    ok = OCSP_basic_verify(bs, sk, NULL, OCSP_NOINTERN | OCSP_NOVERIFY | OCSP_NOEXPLICIT) == 1;
out:
    sk_X509_free(sk);
    ERR_clear_error();
    return ok;
}

/* Checks a delegated responder certificate.  Returns OK or the reason.
 * The issuer's signature on it is checked unless the caller's memo holds
 * this very certificate, found authorized for the same issuer before: a
 * responder's delegate serves for days, and that check would double the
 * cost of every response it signs.  Its validity and EKU are checked
 * every time. */
static srvocsp_error check_delegate(X509 *signer, X509 *issuer, const srvocsp__policy *pol,
                                    char *why, size_t whylen)
{
    EVP_PKEY *ikey = X509_get0_pubkey(issuer);
    bool ok_nb, ok_na, known = srvocsp__delegate_memo_knows(pol->delegate, signer);
    int64_t nb, na;

    if (!known && (X509_check_issued(issuer, signer) != X509_V_OK || ikey == NULL ||
                   X509_verify(signer, ikey) != 1)) {
        ERR_clear_error();
        srvocsp__fmt(why, whylen,
                     "response is signed by a certificate that the issuer did not sign "
                     "directly, so it is not an authorized responder");
        return SRVOCSP_E_SIGNER;
    }
    if (!(X509_get_extension_flags(signer) & EXFLAG_XKUSAGE) ||
        !(X509_get_extended_key_usage(signer) & XKU_OCSP_SIGN)) {
        srvocsp__fmt(why, whylen,
                     "delegated responder certificate lacks extended key usage id-kp-OCSPSigning");
        return SRVOCSP_E_SIGNER;
    }
    nb = srvocsp__asn1_time_to_unix(X509_get0_notBefore(signer), &ok_nb);
    na = srvocsp__asn1_time_to_unix(X509_get0_notAfter(signer), &ok_na);
    if (!ok_nb || !ok_na || pol->now + (int64_t)pol->skew_s < nb || pol->now > na) {
        char a[32], b[32];

        srvocsp__fmt_time(nb, a, sizeof(a));
        srvocsp__fmt_time(na, b, sizeof(b));
        srvocsp__fmt(why, whylen, "delegated responder certificate is valid from %s to %s only", a,
                     b);
        return SRVOCSP_E_SIGNER_EXPIRED;
    }
    if (!known)
        srvocsp__delegate_memo_keep(pol->delegate, signer);
    return SRVOCSP_OK;
}

/* Finds who signed |bs| among the issuer and |certs|, the certificates
 * the response carries (|kept|: from the signer cache), checks the
 * signature and the signer's authority. */
static srvocsp_error check_signer(OCSP_BASICRESP *bs, const der_span *tbs,
                                  const STACK_OF(X509) *certs, bool kept, X509 *issuer,
                                  const srvocsp__policy *pol, char *why, size_t whylen)
{
    bool id_seen = false, signed_seen = false;
    int i, n = certs ? sk_X509_num(certs) : 0;
    srvocsp_error err;

    /* The issuer first: a certificate in the response that merely carries
     * the issuer's name must not take its place. */
    if (responder_id_matches(bs, issuer)) {
        id_seen = true;
        if (signature_ok(bs, tbs, issuer, pol, true))
            return SRVOCSP_OK;
    }
    /* Every carried certificate that names the responder and verifies the
     * signature is a candidate: a responder that renewed its delegate
     * certificate (same name, same key) may carry the expired one and its
     * renewal in either order.  Accepted when any of them is authorized;
     * otherwise the first candidate's reason is reported. */
    err = SRVOCSP_E_SIGNER;
    for (i = 0; i < n; i++) {
        X509 *cand = sk_X509_value(certs, i);
        char cand_why[SRVOCSP__REASON_LEN];
        srvocsp_error cand_err;

        if (!responder_id_matches(bs, cand))
            continue;
        id_seen = true;
        if (!signature_ok(bs, tbs, cand, pol, kept))
            continue;
        if (X509_cmp(cand, issuer) == 0)
            return SRVOCSP_OK;
        cand_err = check_delegate(cand, issuer, pol, cand_why, sizeof(cand_why));
        if (cand_err == SRVOCSP_OK)
            return SRVOCSP_OK;
        if (!signed_seen) {
            signed_seen = true;
            err = cand_err;
            srvocsp__fmt(why, whylen, "%s", cand_why);
        }
    }
    if (signed_seen)
        return err;
    if (id_seen) {
        srvocsp__fmt(why, whylen, "response signature does not verify with the key of the "
                                  "certificate named as responder");
        return SRVOCSP_E_SIGNATURE;
    }
    srvocsp__fmt(why, whylen, "responder certificate is neither the issuer nor included in the "
                              "response");
    return err;
}

static srvocsp_error check_critical(X509_EXTENSION *(*get)(void *, int), int count, void *obj,
                                    const char *where, char *why, size_t whylen)
{
    int i;

    for (i = 0; i < count; i++) {
        X509_EXTENSION *ext = get(obj, i);

        if (ext != NULL && X509_EXTENSION_get_critical(ext) && !ext_known(ext)) {
            char oid[80] = "?";

            OBJ_obj2txt(oid, sizeof(oid), X509_EXTENSION_get_object(ext), 1);
            srvocsp__fmt(why, whylen, "unhandled critical extension %s in %s", oid, where);
            return SRVOCSP_E_CRITICAL_EXT;
        }
    }
    return SRVOCSP_OK;
}

static X509_EXTENSION *basic_ext(void *o, int i)
{
    return OCSP_BASICRESP_get_ext(o, i);
}

static X509_EXTENSION *single_ext(void *o, int i)
{
    return OCSP_SINGLERESP_get_ext(o, i);
}

/* Severity for picking among several matching SingleResponses. */
/* Whether |cid| is the CertID |k| keeps (hash algorithm, issuer name and
 * key hashes) with the leaf's serial: what OCSP_id_cmp would say of the
 * CertID computed with that hash, without computing it. */
static bool kept_certid_matches(const srvocsp__certid *k, const OCSP_CERTID *cid, X509 *leaf)
{
    ASN1_OCTET_STRING *nh = NULL, *kh = NULL;
    ASN1_OBJECT *md = NULL;
    ASN1_INTEGER *serial = NULL;

    if (k == NULL || k->md_nid == NID_undef ||
        OCSP_id_get0_info(&nh, &md, &kh, &serial, (OCSP_CERTID *)cid) != 1)
        return false;
    return OBJ_obj2nid(md) == k->md_nid && ASN1_STRING_length(nh) == k->hash_len &&
           ASN1_STRING_length(kh) == k->hash_len &&
           memcmp(ASN1_STRING_get0_data(nh), k->name_hash, k->hash_len) == 0 &&
           memcmp(ASN1_STRING_get0_data(kh), k->key_hash, k->hash_len) == 0 &&
           ASN1_INTEGER_cmp(serial, X509_get0_serialNumber(leaf)) == 0;
}

static int status_rank(int st)
{
    return st == V_OCSP_CERTSTATUS_REVOKED ? 2 : st == V_OCSP_CERTSTATUS_UNKNOWN ? 1 : 0;
}

/* Clients refuse a staple that is not DER (a BER indefinite length in the
 * outer layers, a constructed OCTET STRING), and some responders send one.
 * The signature covers the DER of tbsResponseData (OpenSSL verifies over
 * its re-encoding), so encoding the response again from what was parsed
 * yields DER with exactly the signed bytes.  Only the BasicOCSPResponse is
 * encoded by OpenSSL: the layers around it (status successful, type
 * id-pkix-ocsp-basic, the OCTET STRING) have one DER form, written here,
 * which spares building a second OCSPResponse and encoding the basic
 * response into it a second time.  Sets |*canon| only when the result
 * differs from the input; the caller stores that instead. */
static srvocsp_error canonical_der(OCSP_BASICRESP *bs, const unsigned char *der, size_t len,
                                   unsigned char **canon, size_t *canon_len, char *why,
                                   size_t whylen)
{
    /* successful (ENUMERATED 0), then id-pkix-ocsp-basic 1.3.6.1.5.5.7.48.1.1 */
    static const unsigned char status[] = {0x0a, 0x01, 0x00};
    static const unsigned char basic_oid[] = {0x06, 0x09, 0x2b, 0x06, 0x01, 0x05,
                                              0x05, 0x07, 0x30, 0x01, 0x01};
    unsigned char hdr[64], oct[8], seq[8], tag0[8], outer[8], *buf = NULL, *w;
    size_t n_oct, n_seq, n_tag0, n_outer, body, total, hlen;
    int n;

    *canon = NULL;
    *canon_len = 0;
    n = i2d_OCSP_BASICRESP(bs, &buf);
    if (n <= 0) {
        srvocsp__fmt(why, whylen, "cannot encode the response as DER");
        srvocsp__drain_ossl(why, whylen);
        return SRVOCSP_E_NOMEM;
    }
    n_oct = srvocsp__der_header(oct, 0x04, (size_t)n);
    body = sizeof(basic_oid) + n_oct + (size_t)n;
    n_seq = srvocsp__der_header(seq, 0x30, body);
    body += n_seq;
    n_tag0 = srvocsp__der_header(tag0, 0xa0, body);
    body += n_tag0 + sizeof(status);
    n_outer = srvocsp__der_header(outer, 0x30, body);
    total = n_outer + body;
    w = hdr;
    memcpy(w, outer, n_outer), w += n_outer;
    memcpy(w, status, sizeof(status)), w += sizeof(status);
    memcpy(w, tag0, n_tag0), w += n_tag0;
    memcpy(w, seq, n_seq), w += n_seq;
    memcpy(w, basic_oid, sizeof(basic_oid)), w += sizeof(basic_oid);
    memcpy(w, oct, n_oct), w += n_oct;
    hlen = (size_t)(w - hdr);
    if (total == len && memcmp(der, hdr, hlen) == 0 && memcmp(der + hlen, buf, (size_t)n) == 0) {
        OPENSSL_free(buf);
        return SRVOCSP_OK;
    }
    *canon = OPENSSL_malloc(total);
    if (*canon == NULL) {
        OPENSSL_free(buf);
        srvocsp__fmt(why, whylen, "out of memory");
        return SRVOCSP_E_NOMEM;
    }
    memcpy(*canon, hdr, hlen);
    memcpy(*canon + hlen, buf, (size_t)n);
    *canon_len = total;
    OPENSSL_free(buf);
    return SRVOCSP_OK;
}

int64_t srvocsp__expiry(int64_t this_up, int64_t next_up, const srvocsp__policy *pol)
{
    int64_t exp = next_up ? next_up : this_up + (int64_t)pol->max_age_s;

    if (pol->max_lifetime_s > 0 && exp > this_up + (int64_t)pol->max_lifetime_s)
        exp = this_up + (int64_t)pol->max_lifetime_s;
    return exp;
}

srvocsp_error srvocsp__verify(const unsigned char *der, size_t len, X509 *leaf, X509 *issuer,
                              const srvocsp__policy *pol, srvocsp_response **out, char *why,
                              size_t whylen)
{
    OCSP_RESPONSE *resp = NULL;
    OCSP_BASICRESP *bs = NULL;
    OCSP_CERTID *ours = NULL;
    const EVP_MD *ours_md = NULL;
    srvocsp_response *snap = NULL;
    const unsigned char *p = der;
    srvocsp_error err = SRVOCSP_E_INTERNAL;
    OCSP_SINGLERESP *best = NULL;
    int best_status = -1, best_reason = -1, i, n, st;
    int64_t this_up = 0, next_up = 0, produced = 0, rev_time = 0;
    unsigned char *canon = NULL;
    size_t canon_len = 0;
    STACK_OF(X509) *kept_certs = NULL;
    der_span tbs = {NULL, 0};
    bool ok;

    *out = NULL;
    why[0] = '\0';
    ERR_clear_error();
    if (der == NULL || len == 0) {
        srvocsp__fmt(why, whylen, "response is empty");
        err = SRVOCSP_E_PARSE;
        goto out;
    }
    if (len > SRVOCSP__MAX_RESPONSE_CAP || len > LONG_MAX) {
        srvocsp__fmt(why, whylen, "response of %zu bytes exceeds the hard cap", len);
        err = SRVOCSP_E_TOO_LARGE;
        goto out;
    }
    /* A delegated responder's certificate, carried by every response it
     * signs, is parsed once (signer_cache.c); the rest of the response
     * always is. */
    bs = srvocsp__signer_cache_parse(pol->signers, der, len, &kept_certs);
    if (bs != NULL)
        goto parsed;
    resp = d2i_OCSP_RESPONSE(NULL, &p, (long)len);
    if (resp == NULL || p != der + len) {
        srvocsp__fmt(why, whylen, "%s", resp == NULL ? "response is not a DER OCSPResponse"
                                                     : "response has trailing bytes after the DER");
        srvocsp__drain_ossl(why, whylen);
        err = SRVOCSP_E_PARSE;
        goto out;
    }
    st = OCSP_response_status(resp);
    if (st != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
        srvocsp__ocsp_status_text(st, why, whylen);
        err = SRVOCSP_E_RESPONSE_STATUS;
        goto out;
    }
    bs = OCSP_response_get1_basic(resp);
    if (bs == NULL) {
        srvocsp__fmt(why, whylen, "response type is not id-pkix-ocsp-basic or its body does not parse");
        srvocsp__drain_ossl(why, whylen);
        err = SRVOCSP_E_NOT_BASIC;
        goto out;
    }

    /* Made DER first: the signature is then checked over the very bytes
     * served, taken from them in place (OpenSSL's check would encode them
     * once more).  Parsed with kept certificates, it was DER already. */
    err = canonical_der(bs, der, len, &canon, &canon_len, why, whylen);
    if (err != SRVOCSP_OK)
        goto out;

parsed:
    if (!srvocsp__ocsp_tbs_span(canon ? canon : der, canon ? canon_len : len, &tbs.p, &tbs.len))
        tbs.p = NULL, tbs.len = 0; /* not expected: encoded by the check itself */
    err = check_signer(bs, &tbs, kept_certs ? kept_certs : OCSP_resp_get0_certs(bs),
                       kept_certs != NULL, issuer, pol, why, whylen);
    if (err != SRVOCSP_OK)
        goto out;
    err = check_critical(basic_ext, OCSP_BASICRESP_get_ext_count(bs), bs, "ResponseData", why,
                         whylen);
    if (err != SRVOCSP_OK)
        goto out;

    /* Every SingleResponse for our certificate counts, each compared with
     * a CertID recomputed with its own hash algorithm; the most severe
     * status wins (a revoked beside a good is revoked). */
    n = OCSP_resp_count(bs);
    for (i = 0; i < n; i++) {
        OCSP_SINGLERESP *single = OCSP_resp_get0(bs, i);
        const OCSP_CERTID *cid = OCSP_SINGLERESP_get0_id(single);
        ASN1_OBJECT *md_obj = NULL;
        const EVP_MD *md;
        int sst, reason = -1;
        ASN1_GENERALIZEDTIME *rev = NULL, *tu = NULL, *nu = NULL;

        /* Equal to the CertID the caller keeps (same hash, issuer
         * hashes and serial): ours, without computing it again. */
        if (!kept_certid_matches(pol->certid, cid, leaf)) {
            if (OCSP_id_get0_info(NULL, &md_obj, NULL, NULL, (OCSP_CERTID *)cid) != 1)
                continue;
            md = EVP_get_digestbyobj(md_obj);
            if (md == NULL)
                continue;
            /* Responses use one hash throughout: one CertID serves them all. */
            if (ours == NULL || md != ours_md) {
                OCSP_CERTID_free(ours);
                ours_md = md;
                ours = OCSP_cert_to_id(md, leaf, issuer);
                if (ours == NULL) {
                    srvocsp__fmt(why, whylen, "cannot compute CertID of the certificate");
                    srvocsp__drain_ossl(why, whylen);
                    err = SRVOCSP_E_INTERNAL;
                    goto out;
                }
            }
            if (OCSP_id_cmp(ours, cid) != 0)
                continue;
        }
        err = check_critical(single_ext, OCSP_SINGLERESP_get_ext_count(single), single,
                             "SingleResponse", why, whylen);
        if (err != SRVOCSP_OK)
            goto out;
        sst = OCSP_single_get0_status(single, &reason, &rev, &tu, &nu);
        if (sst < 0)
            continue;
        if (best == NULL || status_rank(sst) > status_rank(best_status)) {
            best = single;
            best_status = sst;
            best_reason = reason;
            rev_time = rev ? gt_to_unix(rev, &ok) : 0;
        }
    }
    if (best == NULL) {
        srvocsp__fmt(why, whylen, "no SingleResponse in the response matches the certificate's "
                                  "CertID (issuer name hash, issuer key hash, serial)");
        err = SRVOCSP_E_NO_MATCH;
        goto out;
    }

    {
        ASN1_GENERALIZEDTIME *tu = NULL, *nu = NULL;
        const ASN1_GENERALIZEDTIME *pa = OCSP_resp_get0_produced_at(bs);
        bool ok_tu, ok_nu = true, ok_pa, ok_nb, ok_na;
        int64_t nb, na;
        char a[32], b[32];

        OCSP_single_get0_status(best, NULL, NULL, &tu, &nu);
        this_up = gt_to_unix(tu, &ok_tu);
        next_up = nu ? gt_to_unix(nu, &ok_nu) : 0;
        produced = gt_to_unix(pa, &ok_pa);
        if (!ok_tu || !ok_nu || !ok_pa) {
            srvocsp__fmt(why, whylen, "response has an unreadable time field");
            err = SRVOCSP_E_PARSE;
            goto out;
        }
        nb = srvocsp__asn1_time_to_unix(X509_get0_notBefore(leaf), &ok_nb);
        na = srvocsp__asn1_time_to_unix(X509_get0_notAfter(leaf), &ok_na);
        if (ok_nb && ok_na &&
            (produced + (int64_t)pol->skew_s < nb || produced > na + (int64_t)pol->skew_s)) {
            srvocsp__fmt_time(produced, a, sizeof(a));
            srvocsp__fmt(why, whylen, "producedAt %s is outside the certificate's validity", a);
            err = SRVOCSP_E_BAD_PRODUCED_AT;
            goto out;
        }
        if (this_up > pol->now + (int64_t)pol->skew_s) {
            srvocsp__fmt_time(this_up, a, sizeof(a));
            srvocsp__fmt_time(pol->now, b, sizeof(b));
            srvocsp__fmt(why, whylen, "thisUpdate %s is in the future (now %s)", a, b);
            err = SRVOCSP_E_NOT_YET_VALID;
            goto out;
        }
        if (nu != NULL && next_up < this_up) {
            srvocsp__fmt(why, whylen, "nextUpdate is before thisUpdate");
            err = SRVOCSP_E_EXPIRED;
            goto out;
        }
        if (srvocsp__expiry(this_up, next_up, pol) <= pol->now) {
            /* Say which bound it was: nextUpdate, the maximum age without
             * one, or the trust horizon. */
            if (nu != NULL && next_up <= pol->now) {
                srvocsp__fmt_time(next_up, a, sizeof(a));
                srvocsp__fmt_time(pol->now, b, sizeof(b));
                srvocsp__fmt(why, whylen, "nextUpdate %s has passed (now %s)", a, b);
            } else if (nu == NULL && this_up + (int64_t)pol->max_age_s <= pol->now) {
                srvocsp__fmt_time(this_up, a, sizeof(a));
                srvocsp__fmt(why, whylen,
                             "response has no nextUpdate and its thisUpdate %s is older than the "
                             "maximum age of %u s",
                             a, pol->max_age_s);
            } else {
                srvocsp__fmt_time(this_up, a, sizeof(a));
                srvocsp__fmt(why, whylen,
                             "thisUpdate %s is more than the maximum lifetime of %u s ago, "
                             "whatever nextUpdate says",
                             a, pol->max_lifetime_s);
            }
            err = SRVOCSP_E_EXPIRED;
            goto out;
        }
    }

    /* Verified and DER as it came: what it carries is worth keeping
     * parsed (unless that is where it came from). */
    if (kept_certs == NULL && canon == NULL)
        srvocsp__signer_cache_keep(pol->signers, der, len, OCSP_resp_get0_certs(bs));

    snap = canon ? srvocsp__response_new(canon, canon_len) : srvocsp__response_new(der, len);
    if (snap == NULL) {
        srvocsp__fmt(why, whylen, "out of memory");
        err = SRVOCSP_E_NOMEM;
        goto out;
    }
    snap->status = best_status == V_OCSP_CERTSTATUS_GOOD      ? SRVOCSP_STATUS_GOOD
                   : best_status == V_OCSP_CERTSTATUS_REVOKED ? SRVOCSP_STATUS_REVOKED
                                                              : SRVOCSP_STATUS_UNKNOWN;
    snap->this_update = this_up;
    snap->next_update = next_up;
    snap->produced_at = produced;
    snap->expires = srvocsp__expiry(this_up, next_up, pol);
    snap->rev_time = snap->status == SRVOCSP_STATUS_REVOKED ? rev_time : 0;
    snap->rev_reason = snap->status == SRVOCSP_STATUS_REVOKED ? best_reason : -1;
    *out = snap;
    snap = NULL;
    err = SRVOCSP_OK;
out:
    OPENSSL_free(canon);
    sk_X509_pop_free(kept_certs, X509_free);
    srvocsp_response_free(snap);
    OCSP_CERTID_free(ours);
    OCSP_BASICRESP_free(bs);
    OCSP_RESPONSE_free(resp);
    ERR_clear_error();
    return err;
}
