/*
 * The OCSP request for one certificate, its identity (CertID) and the
 * responder URLs it is sent to.
 */
#include "internal.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

/* RFC 5019 section 5: a GET request URL must stay within 255 bytes. */
#define GET_URL_MAX 255

X509 *srvocsp__find_issuer(X509 *leaf, STACK_OF(X509) *chain)
{
    int i;

    for (i = 0; chain != NULL && i < sk_X509_num(chain); i++) {
        X509 *c = sk_X509_value(chain, i);

        if (X509_cmp(c, leaf) == 0)
            continue;
        if (X509_check_issued(c, leaf) == X509_V_OK)
            return c;
    }
    return NULL;
}

/* Percent-encodes the characters of base64 that are not URL-safe. */
static size_t url_encode_b64(const char *in, char *out, size_t cap)
{
    size_t n = 0;

    for (; *in; in++) {
        const char *rep = *in == '+' ? "%2B" : *in == '/' ? "%2F" : *in == '=' ? "%3D" : NULL;
        size_t k = rep ? 3 : 1;

        if (n + k >= cap)
            return 0;
        if (rep)
            memcpy(out + n, rep, 3);
        else
            out[n] = *in;
        n += k;
    }
    out[n] = '\0';
    return n;
}

char *srvocsp__get_url(const char *base, const unsigned char *der, size_t len)
{
    char b64[GET_URL_MAX + 4];
    char enc[GET_URL_MAX + 1];
    size_t blen = strlen(base), elen;
    char *url;
    bool slash;

    /* 4/3 growth: anything over ~190 bytes of DER cannot fit in any case. */
    if (len > (GET_URL_MAX / 4) * 3)
        return NULL;
    /* A base URL with a query string or a fragment has no path to append
     * the request to (appending after "?token=abc" makes it part of the
     * query, which responders refuse): such URLs are asked with POST. */
    if (strpbrk(base, "?#") != NULL)
        return NULL;
    if (EVP_EncodeBlock((unsigned char *)b64, der, (int)len) <= 0)
        return NULL;
    elen = url_encode_b64(b64, enc, sizeof(enc));
    if (elen == 0)
        return NULL;
    slash = blen > 0 && base[blen - 1] == '/';
    if (blen + (slash ? 0 : 1) + elen > GET_URL_MAX)
        return NULL;
    url = srvocsp__malloc(blen + 1 + elen + 1);
    if (url == NULL)
        return NULL;
    memcpy(url, base, blen);
    if (!slash)
        url[blen++] = '/';
    memcpy(url + blen, enc, elen + 1);
    return url;
}

static bool url_usable(const char *u)
{
    size_t n = strlen(u);

    return n > 0 && n < SRVOCSP__MAX_URL_LEN &&
           (strncmp(u, "http://", 7) == 0 || strncmp(u, "https://", 8) == 0);
}

void srvocsp__request_clear(srvocsp__request *r)
{
    size_t i;

    for (i = 0; i < r->n_urls; i++) {
        free(r->urls[i]);
        free(r->get_urls[i]);
    }
    OPENSSL_free(r->der);
    OPENSSL_free(r->key);
    memset(r, 0, sizeof(*r));
}

static srvocsp_error add_url(srvocsp__request *r, const char *u)
{
    if (!url_usable(u) || r->n_urls >= SRVOCSP__MAX_URLS)
        return SRVOCSP_OK; /* ignored: ldap://, too long, too many */
    r->urls[r->n_urls] = srvocsp__strdup(u);
    if (r->urls[r->n_urls] == NULL)
        return SRVOCSP_E_NOMEM;
    r->n_urls++;
    return SRVOCSP_OK;
}

bool srvocsp__issuer_ids_compute(X509 *issuer, srvocsp__issuer_ids *o)
{
    const X509_NAME *nm = X509_get_subject_name(issuer);
    unsigned int a = 0, b = 0, c = 0, d = 0;

    /* What OCSP_cert_to_id hashes: the name's DER, the key's bits. */
    return X509_NAME_digest(nm, EVP_sha1(), o->name_sha1, &a) == 1 && a == 20 &&
           X509_pubkey_digest(issuer, EVP_sha1(), o->key_sha1, &b) == 1 && b == 20 &&
           X509_NAME_digest(nm, EVP_sha256(), o->name_sha256, &c) == 1 && c == 32 &&
           X509_pubkey_digest(issuer, EVP_sha256(), o->key_sha256, &d) == 1 && d == 32;
}

/* The CertID and the OCSPRequest that asks for it alone, written from the
 * issuer's hashes: no OpenSSL object to build and encode for each of
 * 100,000 certificates, and the issuer hashed once (test_request checks
 * the bytes against OpenSSL's encoding).  A request with a nonce gets
 * its extension from OpenSSL around this CertID. */
static srvocsp_error encode_request(X509 *leaf, const srvocsp__issuer_ids *ids, bool sha256,
                                    srvocsp__request *out)
{
    /* AlgorithmIdentifier with NULL parameters, as OCSP_cert_id_new writes it */
    static const unsigned char alg_sha1[] = {0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e,
                                             0x03, 0x02, 0x1a, 0x05, 0x00};
    static const unsigned char alg_sha256[] = {0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                               0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00};
    const unsigned char *alg = sha256 ? alg_sha256 : alg_sha1;
    const unsigned char *nh = sha256 ? ids->name_sha256 : ids->name_sha1;
    const unsigned char *kh = sha256 ? ids->key_sha256 : ids->key_sha1;
    size_t al = sha256 ? sizeof(alg_sha256) : sizeof(alg_sha1), hl = sha256 ? 32 : 20;
    unsigned char *serial = NULL, h[4][8], *w;
    size_t body, cl, n, hn[4], i;
    int sl = i2d_ASN1_INTEGER(X509_get0_serialNumber(leaf), &serial);

    if (sl <= 0)
        return SRVOCSP_E_INTERNAL;
    body = al + 2 + hl + 2 + hl + (size_t)sl;
    cl = srvocsp__der_header(h[0], 0x30, body) + body;
    out->key = OPENSSL_malloc(cl);
    /* Request, requestList, TBSRequest, OCSPRequest: each a SEQUENCE of
     * the one before. */
    for (n = cl, i = 0; i < 4; i++)
        n += hn[i] = srvocsp__der_header(h[i], 0x30, n);
    out->der = OPENSSL_malloc(n);
    if (out->key == NULL || out->der == NULL) {
        OPENSSL_free(serial);
        return SRVOCSP_E_NOMEM;
    }
    w = out->key;
    w += srvocsp__der_header(w, 0x30, body);
    memcpy(w, alg, al), w += al;
    *w++ = 0x04, *w++ = (unsigned char)hl;
    memcpy(w, nh, hl), w += hl;
    *w++ = 0x04, *w++ = (unsigned char)hl;
    memcpy(w, kh, hl), w += hl;
    memcpy(w, serial, (size_t)sl);
    OPENSSL_free(serial);
    out->key_len = cl;
    w = out->der;
    for (i = 4; i-- > 0;)
        memcpy(w, h[i], hn[i]), w += hn[i];
    memcpy(w, out->key, cl);
    out->der_len = n;
    out->id.md_nid = sha256 ? NID_sha256 : NID_sha1;
    out->id.hash_len = (unsigned char)hl;
    memcpy(out->id.name_hash, nh, hl);
    memcpy(out->id.key_hash, kh, hl);
    return SRVOCSP_OK;
}

srvocsp_error srvocsp__request_build(X509 *leaf, X509 *issuer, srvocsp_hash hash,
                                     const char *override_url, int nonce, srvocsp__request *out)
{
    return srvocsp__request_build_with(leaf, issuer, NULL, hash, override_url, nonce, out);
}

srvocsp_error srvocsp__request_build_with(X509 *leaf, X509 *issuer, const srvocsp__issuer_ids *ids,
                                          srvocsp_hash hash, const char *override_url, int nonce,
                                          srvocsp__request *out)
{
    STACK_OF(OPENSSL_STRING) *aia = NULL;
    OCSP_REQUEST *req = NULL;
    OCSP_CERTID *id = NULL;
    srvocsp__issuer_ids mine;
    srvocsp_error err = SRVOCSP_E_INTERNAL;
    int len, i;

    memset(out, 0, sizeof(*out));
    if (hash != SRVOCSP_HASH_SHA256 && hash != SRVOCSP_HASH_SHA1) {
        srvocsp__set_error(SRVOCSP_E_UNSUPPORTED, "CertID hash %d is not supported", (int)hash);
        return SRVOCSP_E_UNSUPPORTED;
    }

    if (override_url != NULL) {
        if (!url_usable(override_url)) {
            srvocsp__set_error(SRVOCSP_E_INVALID_ARG,
                               "responder URL \"%.200s\" is not an http:// or https:// URL",
                               override_url);
            err = SRVOCSP_E_INVALID_ARG;
            goto out;
        }
        if ((err = add_url(out, override_url)) != SRVOCSP_OK)
            goto nomem;
    } else {
        aia = X509_get1_ocsp(leaf);
        for (i = 0; aia != NULL && i < sk_OPENSSL_STRING_num(aia); i++)
            if ((err = add_url(out, sk_OPENSSL_STRING_value(aia, i))) != SRVOCSP_OK)
                goto nomem;
    }
    if (out->n_urls == 0) {
        srvocsp__set_error(SRVOCSP_E_NO_OCSP_URL,
                           "certificate has no http(s) OCSP URL in its Authority Information "
                           "Access extension and none is configured");
        err = SRVOCSP_E_NO_OCSP_URL;
        goto out;
    }

    /* The CertID is written from the issuer's hashes, one way for every
     * request (encode_request).  A nonce asks for an extension: OpenSSL
     * writes that request around the same CertID, read back. */
    if (ids == NULL && !srvocsp__issuer_ids_compute(issuer, &mine))
        goto ossl;
    err = encode_request(leaf, ids ? ids : &mine, hash == SRVOCSP_HASH_SHA256, out);
    if (err == SRVOCSP_E_NOMEM)
        goto nomem;
    if (err != SRVOCSP_OK)
        goto ossl;
    if (nonce) {
        const unsigned char *p = out->key;

        id = d2i_OCSP_CERTID(NULL, &p, (long)out->key_len);
        req = OCSP_REQUEST_new();
        if (id == NULL || req == NULL || OCSP_request_add0_id(req, id) == NULL)
            goto ossl;
        id = NULL; /* owned by |req| now */
        OPENSSL_free(out->der);
        out->der = NULL;
        if (OCSP_request_add1_nonce(req, NULL, -1) != 1 ||
            (len = i2d_OCSP_REQUEST(req, &out->der)) <= 0)
            goto ossl;
        out->der_len = (size_t)len;
    }

    for (i = 0; (size_t)i < out->n_urls; i++)
        out->get_urls[i] = srvocsp__get_url(out->urls[i], out->der, out->der_len);
    err = SRVOCSP_OK;
    goto out;

ossl:
    {
        char msg[SRVOCSP__REASON_LEN] = "cannot build the OCSP request";

        srvocsp__drain_ossl(msg, sizeof(msg));
        srvocsp__set_error(SRVOCSP_E_INTERNAL, "%s", msg);
        err = SRVOCSP_E_INTERNAL;
        goto out;
    }
nomem:
    srvocsp__set_error(SRVOCSP_E_NOMEM, NULL);
    err = SRVOCSP_E_NOMEM;
out:
    if (err != SRVOCSP_OK)
        srvocsp__request_clear(out);
    OCSP_CERTID_free(id);
    OCSP_REQUEST_free(req);
    X509_email_free(aia);
    return err;
}
