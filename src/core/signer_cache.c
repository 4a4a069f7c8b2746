/*
 * What verification keeps between responses, for all the entries of an
 * engine (srvocsp__policy.signers):
 *
 *  - each issuer's hashes, which every request's CertID and every stored
 *    response's file name are made of (request.c, store_dir.c): an open
 *    of 100,000 certificates of one CA hashed its name and key 100,000
 *    times.
 *
 *  - a signature context set up once per key and digest.  Setting one up
 *    (EVP_DigestVerifyInit) fetches the signature and digest algorithms
 *    from OpenSSL's provider store under its locks, 2.5-3.5 us a response
 *    on this machine; copying a ready one costs 0.2.  Only keys that
 *    outlive the call are kept: the issuer's, and those of the
 *    certificates kept below.
 *
 *  - the certificates a delegated responder carries in every response,
 *    parsed once.  OpenSSL 3.0 decodes a certificate's public key through
 *    its decoder framework, about three signature checks' worth of CPU
 *    for each response; a responder's delegate serves for days.  A
 *    response whose certificates field is byte for byte one kept here is
 *    parsed without it, and the kept certificates stand in for it.
 *
 * Both are pure memos: what is kept is a function of the bytes or the key
 * it is found by, so a hit gives what the work would have given.  Nothing
 * here decides whether a signer is authorized; verify.c checks that every
 * time.  Bounded: SLOTS of each, the oldest replaced.
 */
#include "internal.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/ocsp.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <string.h>

#define SLOTS 16
#define MAX_CERTS_FIELD (64u * 1024u) /* a certificates field kept, at most */

typedef struct ctx_slot {
    X509 *cert;        /* whose key; held */
    int md_nid;
    EVP_MD_CTX *tmpl;  /* ready to verify; copied for each use */
} ctx_slot;

typedef struct ids_slot {
    X509 *cert;        /* the issuer; held */
    srvocsp__issuer_ids ids;
} ids_slot;

typedef struct certs_slot {
    unsigned char *field; /* the [0] certificates field, header included */
    size_t len;
    STACK_OF(X509) *certs; /* parsed from it; each held */
} certs_slot;

struct srvocsp__signer_cache {
    pthread_mutex_t mu;
    ctx_slot ctx[SLOTS];
    unsigned ctx_next;
    certs_slot certs[SLOTS];
    unsigned certs_next;
    ids_slot ids[SLOTS];
    unsigned ids_next;
    srvocsp__signer_cache_stats stats;
};

srvocsp__signer_cache *srvocsp__signer_cache_new(void)
{
    srvocsp__signer_cache *sc = srvocsp__calloc(1, sizeof(*sc));

    if (sc != NULL && pthread_mutex_init(&sc->mu, NULL) != 0) {
        free(sc);
        sc = NULL;
    }
    return sc;
}

static void ctx_slot_clear(ctx_slot *s)
{
    EVP_MD_CTX_free(s->tmpl);
    X509_free(s->cert);
    memset(s, 0, sizeof(*s));
}

static void certs_slot_clear(certs_slot *s)
{
    free(s->field);
    sk_X509_pop_free(s->certs, X509_free);
    memset(s, 0, sizeof(*s));
}

void srvocsp__signer_cache_free(srvocsp__signer_cache *sc)
{
    unsigned i;

    if (sc == NULL)
        return;
    for (i = 0; i < SLOTS; i++) {
        ctx_slot_clear(&sc->ctx[i]);
        certs_slot_clear(&sc->certs[i]);
        X509_free(sc->ids[i].cert);
    }
    pthread_mutex_destroy(&sc->mu);
    free(sc);
}

/* Held across a fork, so the child never copies a slot half written (an
 * issuer freed and not yet replaced).  Taken after the engine parked its
 * threads: a verification thread may be waiting for it. */
void srvocsp__signer_cache_fork_prepare(srvocsp__signer_cache *sc)
{
    pthread_mutex_lock(&sc->mu);
}

void srvocsp__signer_cache_fork_parent(srvocsp__signer_cache *sc)
{
    pthread_mutex_unlock(&sc->mu);
}

void srvocsp__signer_cache_fork_child(srvocsp__signer_cache *sc)
{
    pthread_mutex_init(&sc->mu, NULL);
}

void srvocsp__signer_cache_stats_get(srvocsp__signer_cache *sc, srvocsp__signer_cache_stats *out)
{
    pthread_mutex_lock(&sc->mu);
    *out = sc->stats;
    pthread_mutex_unlock(&sc->mu);
}

/* ---- issuers' hashes, for requests ---- */

bool srvocsp__signer_cache_issuer_ids(srvocsp__signer_cache *sc, X509 *issuer,
                                      srvocsp__issuer_ids *out)
{
    unsigned i;
    int pass;
    bool found = false;

    if (sc == NULL)
        return srvocsp__issuer_ids_compute(issuer, out);
    pthread_mutex_lock(&sc->mu);
    /* The same object first (an engine's entries share their chain's),
     * then an equal certificate (one parsed again for each open). */
    for (pass = 0; pass < 2 && !found; pass++)
        for (i = 0; i < SLOTS && !found; i++)
            if (sc->ids[i].cert != NULL &&
                (pass == 0 ? sc->ids[i].cert == issuer : X509_cmp(sc->ids[i].cert, issuer) == 0)) {
                *out = sc->ids[i].ids;
                found = true;
            }
    pthread_mutex_unlock(&sc->mu);
    if (found)
        return true;
    if (!srvocsp__issuer_ids_compute(issuer, out))
        return false;
    pthread_mutex_lock(&sc->mu);
    {
        ids_slot *s = &sc->ids[sc->ids_next];

        sc->ids_next = (sc->ids_next + 1) % SLOTS;
        X509_free(s->cert);
        X509_up_ref(issuer);
        s->cert = issuer;
        s->ids = *out;
    }
    pthread_mutex_unlock(&sc->mu);
    return true;
}

/* ---- signature contexts ---- */

/* The digest of a signature algorithm this file checks itself: ECDSA and
 * RSA PKCS#1 v1.5 with a SHA-1 or SHA-2 digest and no parameters, which
 * is what OCSP responders sign with.  NID_undef for anything else (PSS,
 * EdDSA, parameters): OpenSSL's own check, which knows them all. */
static int plain_digest(const X509_ALGOR *alg, X509 *signer, int *pk_out)
{
    const ASN1_OBJECT *obj = NULL;
    const void *pval = NULL;
    int ptype = V_ASN1_UNDEF, md = NID_undef, pk = NID_undef;

    X509_ALGOR_get0(&obj, &ptype, &pval, alg);
    if (ptype != V_ASN1_UNDEF && ptype != V_ASN1_NULL)
        return NID_undef;
    if (!OBJ_find_sigid_algs(OBJ_obj2nid(obj), &md, &pk))
        return NID_undef;
    if (md != NID_sha1 && md != NID_sha224 && md != NID_sha256 && md != NID_sha384 &&
        md != NID_sha512)
        return NID_undef;
    if (pk != NID_rsaEncryption && pk != NID_X9_62_id_ecPublicKey)
        return NID_undef;
    /* The key must be of the algorithm's type, as OpenSSL requires. */
    if (X509_get0_pubkey(signer) == NULL || !EVP_PKEY_is_a(X509_get0_pubkey(signer), OBJ_nid2sn(pk)))
        return NID_undef;
    *pk_out = pk;
    return md;
}

static bool same_key(X509 *a, X509 *b)
{
    return a == b || X509_PUBKEY_eq(X509_get_X509_PUBKEY(a), X509_get_X509_PUBKEY(b)) == 1;
}

/* A context ready to verify with |signer|'s key and digest |md|: a copy
 * of a kept one, or a new one (kept too when |keep|).  NULL on failure. */
static EVP_MD_CTX *ready_ctx(srvocsp__signer_cache *sc, X509 *signer, int md, bool keep)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new(), *tmpl = NULL;
    unsigned i;
    bool found = false;

    if (ctx == NULL)
        return NULL;
    pthread_mutex_lock(&sc->mu);
    for (i = 0; i < SLOTS && !found; i++) {
        ctx_slot *s = &sc->ctx[i];

        if (s->tmpl != NULL && s->md_nid == md && same_key(s->cert, signer)) {
            found = EVP_MD_CTX_copy_ex(ctx, s->tmpl) == 1;
            sc->stats.ctx_reused += found;
        }
    }
    pthread_mutex_unlock(&sc->mu);
    if (found)
        return ctx;
    if (EVP_DigestVerifyInit_ex(ctx, NULL, OBJ_nid2sn(md), NULL, NULL, X509_get0_pubkey(signer),
                                NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        return NULL;
    }
    if (!keep || (tmpl = EVP_MD_CTX_new()) == NULL || EVP_MD_CTX_copy_ex(tmpl, ctx) != 1) {
        EVP_MD_CTX_free(tmpl);
        return ctx;
    }
    pthread_mutex_lock(&sc->mu);
    /* Another thread may have kept the same one meanwhile. */
    for (i = 0; i < SLOTS && !found; i++)
        found = sc->ctx[i].tmpl != NULL && sc->ctx[i].md_nid == md &&
                same_key(sc->ctx[i].cert, signer);
    if (!found) {
        ctx_slot *s = &sc->ctx[sc->ctx_next];

        sc->ctx_next = (sc->ctx_next + 1) % SLOTS;
        ctx_slot_clear(s);
        X509_up_ref(signer);
        s->cert = signer;
        s->md_nid = md;
        s->tmpl = tmpl;
        tmpl = NULL;
        sc->stats.ctx_made++;
    }
    pthread_mutex_unlock(&sc->mu);
    EVP_MD_CTX_free(tmpl);
    return ctx;
}

int srvocsp__signer_cache_verify(srvocsp__signer_cache *sc, OCSP_BASICRESP *bs, X509 *signer,
                                 bool keep, const unsigned char *tbs_der, size_t tbs_len)
{
    const ASN1_OCTET_STRING *sig = OCSP_resp_get0_signature(bs);
    unsigned char *tbs = NULL;
    EVP_MD_CTX *ctx = NULL;
    int md, pk = NID_undef, n, r = -1;

    if (sc == NULL || sig == NULL)
        return -1;
    md = plain_digest(OCSP_resp_get0_tbs_sigalg(bs), signer, &pk);
    /* A BIT STRING with unused bits is refused by OpenSSL's check: left
     * to it, so the reason is its own. */
    if (md == NID_undef || (sig->flags & 0x7) != 0)
        return -1;
    /* The signed bytes as OpenSSL's check takes them: tbsResponseData
     * encoded from what was parsed.  The caller's span is that already:
     * taken from the DER it serves, which is that encoding. */
    if (tbs_der == NULL) {
        n = i2d_OCSP_RESPDATA((OCSP_RESPDATA *)OCSP_resp_get0_respdata(bs), &tbs);
        if (n <= 0)
            goto out;
        tbs_der = tbs;
        tbs_len = (size_t)n;
    }
    ctx = ready_ctx(sc, signer, md, keep);
    if (ctx == NULL)
        goto out;
    r = EVP_DigestVerify(ctx, ASN1_STRING_get0_data(sig), (size_t)ASN1_STRING_length(sig), tbs_der,
                         tbs_len) == 1;
out:
    EVP_MD_CTX_free(ctx);
    OPENSSL_free(tbs);
    ERR_clear_error();
    return r;
}

/* ---- certificates carried in responses ---- */

/* One DER TLV with tag |tag| and a minimal definite length at |*p|, inside
 * [*p, end): its body in |*body|/|*blen|, |*p| moved past it.  False for
 * anything else (BER lengths, another tag, too long), which sends the
 * response down OpenSSL's parse. */
static bool tlv(const unsigned char **p, const unsigned char *end, unsigned char tag,
                const unsigned char **body, size_t *blen)
{
    const unsigned char *q = *p;
    size_t n, k, i;

    if (end - q < 2 || q[0] != tag)
        return false;
    if (q[1] < 0x80) {
        n = q[1];
        q += 2;
    } else {
        k = q[1] & 0x7f;
        if (k == 0 || k > 4 || (size_t)(end - q) < 2 + k || q[2] == 0)
            return false;
        for (n = 0, i = 0; i < k; i++)
            n = (n << 8) | q[2 + i];
        if (n < 0x80)
            return false; /* the short form was required */
        q += 2 + k;
    }
    if ((size_t)(end - q) < n)
        return false;
    *body = q;
    *blen = n;
    *p = q + n;
    return true;
}

/* The parts of a DER OCSPResponse (successful, id-pkix-ocsp-basic) with a
 * certificates field: the BasicOCSPResponse's three signed-over members
 * as one span, and the certificates field, header included. */
typedef struct parts {
    const unsigned char *signed_part;
    size_t signed_len;
    const unsigned char *field;
    size_t field_len;
} parts;

/* Enters the one TLV with |tag| that fills [*p, *end) exactly: [*p, *end)
 * becomes its body. */
static bool enter(const unsigned char **p, const unsigned char **end, unsigned char tag)
{
    const unsigned char *b;
    size_t bl;

    if (!tlv(p, *end, tag, &b, &bl) || *p != *end)
        return false;
    *p = b;
    *end = b + bl;
    return true;
}

/* Walks |der| down to the BasicOCSPResponse's members: |out|'s signed
 * part and, when there is one, its certificates field (NULL otherwise). */
static bool walk(const unsigned char *der, size_t len, parts *out)
{
    static const unsigned char basic_oid[] = {0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x01};
    const unsigned char *p = der, *end = der + len, *x;
    size_t xl;

    /* OCSPResponse { successful, [0] { ResponseBytes { id-pkix-ocsp-basic,
     * OCTET STRING { BasicOCSPResponse } } } } */
    if (!enter(&p, &end, 0x30) || !tlv(&p, end, 0x0a, &x, &xl) || xl != 1 || x[0] != 0 ||
        !enter(&p, &end, 0xa0) || !enter(&p, &end, 0x30) || !tlv(&p, end, 0x06, &x, &xl) ||
        xl != sizeof(basic_oid) || memcmp(x, basic_oid, xl) != 0 || !enter(&p, &end, 0x04) ||
        !enter(&p, &end, 0x30))
        return false;
    /* tbsResponseData, signatureAlgorithm, signature, then [0] certs */
    out->signed_part = p;
    if (!tlv(&p, end, 0x30, &x, &xl) || !tlv(&p, end, 0x30, &x, &xl) ||
        !tlv(&p, end, 0x03, &x, &xl))
        return false;
    out->signed_len = (size_t)(p - out->signed_part);
    out->field = NULL;
    out->field_len = 0;
    if (p == end)
        return true;
    out->field = p;
    if (!tlv(&p, end, 0xa0, &x, &xl) || p != end)
        return false;
    out->field_len = (size_t)(p - out->field);
    return true;
}

/* A response with a certificates field worth keeping. */
static bool split(const unsigned char *der, size_t len, parts *out)
{
    return walk(der, len, out) && out->field != NULL && out->field_len <= MAX_CERTS_FIELD;
}

bool srvocsp__ocsp_tbs_span(const unsigned char *der, size_t len, const unsigned char **tbs,
                            size_t *tbs_len)
{
    const unsigned char *p, *x;
    size_t xl;
    parts pt;

    if (!walk(der, len, &pt))
        return false;
    p = pt.signed_part;
    if (!tlv(&p, pt.signed_part + pt.signed_len, 0x30, &x, &xl))
        return false;
    *tbs = pt.signed_part;
    *tbs_len = (size_t)(p - pt.signed_part);
    return true;
}

OCSP_BASICRESP *srvocsp__signer_cache_parse(srvocsp__signer_cache *sc, const unsigned char *der,
                                            size_t len, STACK_OF(X509) **certs)
{
    OCSP_BASICRESP *bs = NULL;
    STACK_OF(X509) *kept = NULL;
    unsigned char *buf = NULL, *again = NULL;
    const unsigned char *q;
    size_t h, i;
    parts pt;
    int n;

    *certs = NULL;
    if (sc == NULL || !split(der, len, &pt))
        return NULL;
    pthread_mutex_lock(&sc->mu);
    for (i = 0; i < SLOTS && kept == NULL; i++) {
        certs_slot *s = &sc->certs[i];

        if (s->field != NULL && s->len == pt.field_len &&
            memcmp(s->field, pt.field, pt.field_len) == 0 && (kept = sk_X509_dup(s->certs)) != NULL)
            for (int j = 0; j < sk_X509_num(kept); j++)
                X509_up_ref(sk_X509_value(kept, j));
    }
    pthread_mutex_unlock(&sc->mu);
    if (kept == NULL)
        return NULL;
    /* The BasicOCSPResponse without its certificates field, parsed; then
     * encoded again, which must give the same bytes: the response was DER,
     * so verify.c serves it as it came (the kept field was DER when kept). */
    if ((buf = OPENSSL_malloc(pt.signed_len + 6)) == NULL)
        goto fail;
    h = srvocsp__der_header(buf, 0x30, pt.signed_len);
    memcpy(buf + h, pt.signed_part, pt.signed_len);
    q = buf;
    bs = d2i_OCSP_BASICRESP(NULL, &q, (long)(h + pt.signed_len));
    if (bs == NULL || q != buf + h + pt.signed_len)
        goto fail;
    n = i2d_OCSP_BASICRESP(bs, &again);
    if (n <= 0 || (size_t)n != h + pt.signed_len || memcmp(again, buf, (size_t)n) != 0)
        goto fail;
    OPENSSL_free(buf);
    OPENSSL_free(again);
    pthread_mutex_lock(&sc->mu);
    sc->stats.certs_reused++;
    pthread_mutex_unlock(&sc->mu);
    *certs = kept;
    return bs;
fail:
    OCSP_BASICRESP_free(bs);
    OPENSSL_free(buf);
    OPENSSL_free(again);
    sk_X509_pop_free(kept, X509_free);
    ERR_clear_error();
    return NULL;
}

void srvocsp__signer_cache_keep(srvocsp__signer_cache *sc, const unsigned char *der, size_t len,
                                const STACK_OF(X509) *certs)
{
    certs_slot fresh = {0};
    parts pt;
    unsigned i;
    bool known = false;

    if (sc == NULL || certs == NULL || sk_X509_num(certs) == 0 || !split(der, len, &pt))
        return;
    pthread_mutex_lock(&sc->mu);
    for (i = 0; i < SLOTS && !known; i++)
        known = sc->certs[i].field != NULL && sc->certs[i].len == pt.field_len &&
                memcmp(sc->certs[i].field, pt.field, pt.field_len) == 0;
    pthread_mutex_unlock(&sc->mu);
    if (known)
        return;
    fresh.field = srvocsp__malloc(pt.field_len);
    fresh.certs = sk_X509_dup(certs);
    if (fresh.field == NULL || fresh.certs == NULL) {
        free(fresh.field);
        sk_X509_free(fresh.certs);
        return;
    }
    memcpy(fresh.field, pt.field, pt.field_len);
    fresh.len = pt.field_len;
    for (i = 0; i < (unsigned)sk_X509_num(fresh.certs); i++)
        X509_up_ref(sk_X509_value(fresh.certs, (int)i));
    pthread_mutex_lock(&sc->mu);
    for (i = 0; i < SLOTS && !known; i++)
        known = sc->certs[i].field != NULL && sc->certs[i].len == fresh.len &&
                memcmp(sc->certs[i].field, fresh.field, fresh.len) == 0;
    if (!known) {
        certs_slot *s = &sc->certs[sc->certs_next];

        sc->certs_next = (sc->certs_next + 1) % SLOTS;
        certs_slot_clear(s);
        *s = fresh;
        fresh.field = NULL;
        fresh.certs = NULL;
        sc->stats.certs_kept++;
    }
    pthread_mutex_unlock(&sc->mu);
    certs_slot_clear(&fresh);
}
