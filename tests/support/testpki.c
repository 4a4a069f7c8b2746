/* Test PKI: certificates and OCSP responses made with OpenSSL's API. */
#include "testpki.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ex;
    int ok;

    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    ex = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (ex == NULL)
        return 0;
    ok = X509_add_ext(cert, ex, -1);
    X509_EXTENSION_free(ex);
    return ok;
}

int tp_cert_make(tp_cert *out, const tp_cert_opts *o)
{
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    EVP_PKEY *key;
    X509 *icert;
    EVP_PKEY *ikey;
    char aia[1024] = "";
    int i, ok = 0;

    memset(out, 0, sizeof(*out));
    if (o->same_key_as) {
        key = o->same_key_as->key;
        EVP_PKEY_up_ref(key);
    } else {
        key = o->key_type == TP_KEY_RSA     ? EVP_RSA_gen(2048)
              : o->key_type == TP_KEY_EC384 ? EVP_EC_gen("P-384")
                                            : EVP_EC_gen("P-256");
    }
    if (x == NULL || name == NULL || key == NULL)
        goto out;
    icert = o->issuer ? o->issuer->cert : x;
    ikey = o->issuer ? o->issuer->key : key;
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), o->serial);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"srvocsp test", -1,
                               -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)o->cn, -1, -1, 0);
    X509_set_subject_name(x, name);
    X509_set_issuer_name(x, o->issuer ? X509_get_subject_name(o->issuer->cert) : name);
    ASN1_TIME_set(X509_getm_notBefore(x), (time_t)o->not_before);
    ASN1_TIME_set(X509_getm_notAfter(x), (time_t)o->not_after);
    X509_set_pubkey(x, key);
    if (!add_ext(x, icert, NID_subject_key_identifier, "hash"))
        goto out;
    if (o->issuer && !add_ext(x, icert, NID_authority_key_identifier, "keyid:always"))
        goto out;
    if (o->ca) {
        if (!add_ext(x, icert, NID_basic_constraints, "critical,CA:TRUE") ||
            !add_ext(x, icert, NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature"))
            goto out;
    } else {
        if (!add_ext(x, icert, NID_basic_constraints, "critical,CA:FALSE") ||
            !add_ext(x, icert, NID_key_usage, "critical,digitalSignature,keyEncipherment"))
            goto out;
    }
    if (o->ocsp_signing && !add_ext(x, icert, NID_ext_key_usage, "OCSPSigning"))
        goto out;
    if (o->server_auth) {
        char san[300];

        snprintf(san, sizeof(san), "DNS:%s,DNS:localhost,IP:127.0.0.1", o->cn);
        if (!add_ext(x, icert, NID_ext_key_usage, "serverAuth") ||
            !add_ext(x, icert, NID_subject_alt_name, san))
            goto out;
    }
    if (o->must_staple && !add_ext(x, icert, NID_tlsfeature, "status_request"))
        goto out;
    for (i = 0; i < 4 && o->ocsp_urls[i]; i++) {
        size_t n = strlen(aia);

        snprintf(aia + n, sizeof(aia) - n, "%sOCSP;URI:%s", n ? "," : "", o->ocsp_urls[i]);
    }
    if (aia[0] && !add_ext(x, icert, NID_info_access, aia))
        goto out;
    if (X509_sign(x, ikey, EVP_sha256()) <= 0)
        goto out;
    out->cert = x;
    out->key = key;
    x = NULL;
    key = NULL;
    ok = 1;
out:
    if (!ok)
        ERR_print_errors_fp(stderr);
    X509_NAME_free(name);
    X509_free(x);
    EVP_PKEY_free(key);
    return ok;
}

int tp_leaf_make(tp_cert *out, const tp_cert *issuer, const tp_cert *key_as, const char *prefix,
                 int i, long serial, int64_t now)
{
    tp_cert_opts o;
    char cn[64];

    memset(&o, 0, sizeof(o));
    snprintf(cn, sizeof(cn), "%s%d.test", prefix, i);
    o.cn = cn;
    o.serial = serial;
    o.issuer = issuer;
    o.not_before = now - 86400;
    o.not_after = now + 365 * 86400;
    o.same_key_as = key_as;
    return tp_cert_make(out, &o);
}

void tp_cert_free(tp_cert *c)
{
    X509_free(c->cert);
    EVP_PKEY_free(c->key);
    c->cert = NULL;
    c->key = NULL;
}

void tp_resp_opts_init(tp_resp_opts *o, const tp_cert *leaf, const tp_cert *issuer, int64_t now)
{
    memset(o, 0, sizeof(*o));
    o->leaf = leaf;
    o->issuer = issuer;
    o->status = V_OCSP_CERTSTATUS_GOOD;
    o->this_update = now;
    o->next_update = now + 86400;
    o->reason = -1;
}

static ASN1_GENERALIZEDTIME *gt(int64_t t)
{
    return ASN1_GENERALIZEDTIME_set(NULL, (time_t)t);
}

static X509_EXTENSION *unknown_critical_ext(void)
{
    ASN1_OBJECT *obj = OBJ_txt2obj("1.3.6.1.4.1.55555.1.1", 1);
    ASN1_OCTET_STRING *val = ASN1_OCTET_STRING_new();
    X509_EXTENSION *ext = NULL;
    static const unsigned char der_null[] = {0x05, 0x00};

    if (obj && val && ASN1_OCTET_STRING_set(val, der_null, sizeof(der_null)))
        ext = X509_EXTENSION_create_by_OBJ(NULL, obj, 1, val);
    ASN1_OBJECT_free(obj);
    ASN1_OCTET_STRING_free(val);
    return ext;
}

static OCSP_CERTID *mangled_id(const tp_resp_opts *o, const EVP_MD *md)
{
    OCSP_CERTID *id = OCSP_cert_to_id(md, o->leaf->cert, o->issuer->cert);
    ASN1_OCTET_STRING *nh = NULL, *kh = NULL;
    ASN1_INTEGER *serial = NULL;

    if (id == NULL || o->mangle == TP_MANGLE_NONE)
        return id;
    OCSP_id_get0_info(&nh, NULL, &kh, &serial, id);
    if (o->mangle == TP_MANGLE_SERIAL)
        ASN1_INTEGER_set(serial, ASN1_INTEGER_get(serial) + 77);
    else if (o->mangle == TP_MANGLE_NAME_HASH)
        nh->data[0] ^= 0xff;
    else if (o->mangle == TP_MANGLE_KEY_HASH)
        kh->data[0] ^= 0xff;
    return id;
}

unsigned char *tp_response(const tp_resp_opts *o, size_t *len)
{
    OCSP_RESPONSE *resp = NULL;
    OCSP_BASICRESP *bs = NULL;
    OCSP_CERTID *id = NULL;
    ASN1_GENERALIZEDTIME *tu = NULL, *nu = NULL, *rt = NULL;
    STACK_OF(X509) *extra = NULL;
    const tp_cert *signer = o->signer ? o->signer : o->issuer;
    const EVP_MD *md = o->certid_md ? o->certid_md : EVP_sha1();
    unsigned char *der = NULL, *p;
    OCSP_SINGLERESP *single;
    unsigned long flags = OCSP_NOTIME;
    int n;

    if (o->response_status != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
        resp = OCSP_response_create(o->response_status, NULL);
        goto encode;
    }
    bs = OCSP_BASICRESP_new();
    tu = gt(o->this_update);
    nu = o->next_update ? gt(o->next_update) : NULL;
    rt = o->status == V_OCSP_CERTSTATUS_REVOKED ? gt(o->revoked_at ? o->revoked_at
                                                                   : o->this_update - 3600)
                                                : NULL;
    if (bs == NULL || tu == NULL)
        goto out;
    if (o->other_first) {
        OCSP_CERTID *oid = OCSP_cert_to_id(md, o->other_first->cert, o->issuer->cert);

        if (OCSP_basic_add1_status(bs, oid, V_OCSP_CERTSTATUS_GOOD, 0, NULL, tu, nu) == NULL) {
            OCSP_CERTID_free(oid);
            goto out;
        }
        OCSP_CERTID_free(oid);
    }
    id = mangled_id(o, md);
    single = OCSP_basic_add1_status(bs, id, o->status, o->reason, rt, tu, nu);
    if (single == NULL)
        goto out;
    if (o->critical_ext_single) {
        X509_EXTENSION *ext = unknown_critical_ext();

        OCSP_SINGLERESP_add_ext(single, ext, -1);
        X509_EXTENSION_free(ext);
    }
    if (o->critical_ext_data) {
        X509_EXTENSION *ext = unknown_critical_ext();

        OCSP_BASICRESP_add_ext(bs, ext, -1);
        X509_EXTENSION_free(ext);
    }
    ASN1_GENERALIZEDTIME_set((ASN1_GENERALIZEDTIME *)OCSP_resp_get0_produced_at(bs),
                             (time_t)(o->produced_at ? o->produced_at : o->this_update));
    if (o->by_key)
        flags |= OCSP_RESPID_KEY;
    if (!o->include_signer)
        flags |= OCSP_NOCERTS;
    if (o->carry && ((extra = sk_X509_new_null()) == NULL || !sk_X509_push(extra, o->carry->cert)))
        goto out;
    if (OCSP_basic_sign(bs, signer->cert, signer->key, EVP_sha256(), extra, flags) != 1)
        goto out;
    resp = OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL, bs);
encode:
    if (resp == NULL)
        goto out;
    n = i2d_OCSP_RESPONSE(resp, NULL);
    if (n <= 0 || (der = malloc((size_t)n)) == NULL)
        goto out;
    p = der;
    i2d_OCSP_RESPONSE(resp, &p);
    *len = (size_t)n;
out:
    if (der == NULL)
        ERR_print_errors_fp(stderr);
    OCSP_CERTID_free(id);
    ASN1_GENERALIZEDTIME_free(tu);
    ASN1_GENERALIZEDTIME_free(nu);
    ASN1_GENERALIZEDTIME_free(rt);
    OCSP_BASICRESP_free(bs);
    OCSP_RESPONSE_free(resp);
    sk_X509_free(extra);
    return der;
}

int tp_write_cert(const char *path, X509 *a, X509 *b)
{
    FILE *f = fopen(path, "w");
    int ok;

    if (f == NULL)
        return 0;
    ok = PEM_write_X509(f, a) && (b == NULL || PEM_write_X509(f, b));
    return fclose(f) == 0 && ok;
}

int tp_write_key(const char *path, EVP_PKEY *k)
{
    FILE *f = fopen(path, "w");
    int ok;

    if (f == NULL)
        return 0;
    ok = PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
    return fclose(f) == 0 && ok;
}

int tp_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    int ok;

    if (f == NULL)
        return 0;
    ok = fwrite(data, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

unsigned char *tp_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    long n;

    if (f == NULL)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)n + 1)) != NULL) {
        if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        } else {
            *len = (size_t)n;
        }
    }
    fclose(f);
    return buf;
}

int tp_pki_make(tp_pki *p, const char *url, const char *dead_url, int64_t now)
{
    const int64_t day = 86400;
    tp_cert_opts o;

    memset(p, 0, sizeof(*p));
#define MAKE(field, ...)                                                                           \
    do {                                                                                           \
        memset(&o, 0, sizeof(o));                                                                  \
        o.not_before = now - day;                                                                  \
        o.not_after = now + 365 * day;                                                             \
        __VA_ARGS__;                                                                               \
        if (!tp_cert_make(&p->field, &o))                                                          \
            return 0;                                                                              \
    } while (0)
    MAKE(root, o.cn = "srvocsp test root"; o.serial = 1; o.ca = true);
    MAKE(ca, o.cn = "srvocsp test issuing CA"; o.serial = 2; o.ca = true; o.issuer = &p->root);
    MAKE(other_ca, o.cn = "srvocsp other CA"; o.serial = 3; o.ca = true; o.issuer = &p->root);
    MAKE(delegate, o.cn = "srvocsp OCSP signer"; o.serial = 0x100; o.issuer = &p->ca;
         o.ocsp_signing = true);
    MAKE(delegate_noeku, o.cn = "srvocsp signer without EKU"; o.serial = 0x101;
         o.issuer = &p->ca);
    MAKE(delegate_other, o.cn = "srvocsp signer of another CA"; o.serial = 0x102;
         o.issuer = &p->other_ca; o.ocsp_signing = true);
    MAKE(delegate_expired, o.cn = "srvocsp expired signer"; o.serial = 0x103; o.issuer = &p->ca;
         o.ocsp_signing = true; o.not_before = now - 30 * day; o.not_after = now - day);
    MAKE(good, o.cn = "good.test"; o.serial = TP_SERIAL_GOOD; o.issuer = &p->ca;
         o.server_auth = true; o.ocsp_urls[0] = url);
    MAKE(revoked, o.cn = "revoked.test"; o.serial = TP_SERIAL_REVOKED; o.issuer = &p->ca;
         o.server_auth = true; o.ocsp_urls[0] = url);
    MAKE(unknown, o.cn = "unknown.test"; o.serial = TP_SERIAL_UNKNOWN; o.issuer = &p->ca;
         o.server_auth = true; o.ocsp_urls[0] = url);
    MAKE(noaia, o.cn = "noaia.test"; o.serial = TP_SERIAL_NOAIA; o.issuer = &p->ca;
         o.server_auth = true);
    MAKE(twourls, o.cn = "twourls.test"; o.serial = TP_SERIAL_TWOURLS; o.issuer = &p->ca;
         o.server_auth = true; o.ocsp_urls[0] = dead_url; o.ocsp_urls[1] = url);
    MAKE(good_rsa, o.cn = "good.test"; o.serial = TP_SERIAL_GOOD_RSA; o.issuer = &p->ca;
         o.server_auth = true; o.ocsp_urls[0] = url; o.key_type = TP_KEY_RSA);
    MAKE(muststaple, o.cn = "muststaple.test"; o.serial = TP_SERIAL_MUSTSTAPLE; o.issuer = &p->ca;
         o.server_auth = true; o.ocsp_urls[0] = url; o.must_staple = true);
#undef MAKE
    return 1;
}

void tp_pki_free(tp_pki *p)
{
    tp_cert *all[] = {&p->root,     &p->ca,           &p->other_ca,       &p->delegate,
                      &p->delegate_noeku, &p->delegate_other, &p->delegate_expired, &p->good,
                      &p->revoked,  &p->unknown,      &p->noaia,          &p->twourls, &p->good_rsa, &p->muststaple,
                      &p->ica, &p->ica_revoked, &p->ica_unknown, &p->ica_noaia, &p->chain_leaf};
    size_t i;

    for (i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        tp_cert_free(all[i]);
}

static void asn1_index_time(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;

    gmtime_r(&tt, &tm);
    strftime(buf, len, "%y%m%d%H%M%SZ", &tm);
}

int tp_pki_write(const tp_pki *p, const char *dir)
{
    char path[1024], exp[32], rev[32];
    FILE *f;
    int ok = 1;
    int64_t now = (int64_t)time(NULL);
    static const struct {
        const char *name;
        size_t off;
    } leaves[] = {
        {"good", offsetof(tp_pki, good)},       {"revoked", offsetof(tp_pki, revoked)},
        {"unknown", offsetof(tp_pki, unknown)}, {"noaia", offsetof(tp_pki, noaia)},
        {"twourls", offsetof(tp_pki, twourls)}, {"good-rsa", offsetof(tp_pki, good_rsa)},
        {"muststaple", offsetof(tp_pki, muststaple)},
    };
    size_t i;

#define W(name, cert, chain)                                                                       \
    (snprintf(path, sizeof(path), "%s/%s", dir, name), tp_write_cert(path, cert, chain))
#define WK(name, key) (snprintf(path, sizeof(path), "%s/%s", dir, name), tp_write_key(path, key))
    ok &= W("root.pem", p->root.cert, NULL);
    ok &= W("ca.pem", p->ca.cert, NULL);
    ok &= WK("ca.key", p->ca.key);
    ok &= W("delegate.pem", p->delegate.cert, NULL);
    ok &= WK("delegate.key", p->delegate.key);
    for (i = 0; i < sizeof(leaves) / sizeof(leaves[0]); i++) {
        const tp_cert *c = (const tp_cert *)((const char *)p + leaves[i].off);
        char n[64];

        snprintf(n, sizeof(n), "%s.pem", leaves[i].name);
        ok &= W(n, c->cert, p->ca.cert);
        snprintf(n, sizeof(n), "%s.key", leaves[i].name);
        ok &= WK(n, c->key);
    }
#undef W
#undef WK
    /* The openssl ocsp index: good and revoked are known, unknown is not. */
    snprintf(path, sizeof(path), "%s/index.txt", dir);
    f = fopen(path, "w");
    if (f == NULL)
        return 0;
    asn1_index_time(now + 365 * 86400, exp, sizeof(exp));
    asn1_index_time(now - 3600, rev, sizeof(rev));
    fprintf(f, "V\t%s\t\t%X\tunknown\t/O=srvocsp test/CN=good.test\n", exp, TP_SERIAL_GOOD);
    fprintf(f, "R\t%s\t%s,keyCompromise\t%X\tunknown\t/O=srvocsp test/CN=revoked.test\n", exp, rev,
            TP_SERIAL_REVOKED);
    fprintf(f, "V\t%s\t\t%X\tunknown\t/O=srvocsp test/CN=noaia.test\n", exp, TP_SERIAL_NOAIA);
    fprintf(f, "V\t%s\t\t%X\tunknown\t/O=srvocsp test/CN=twourls.test\n", exp, TP_SERIAL_TWOURLS);
    fprintf(f, "V\t%s\t\t%X\tunknown\t/O=srvocsp test/CN=good.test\n", exp, TP_SERIAL_GOOD_RSA);
    fprintf(f, "V\t%s\t\t%X\tunknown\t/O=srvocsp test/CN=muststaple.test\n", exp,
            TP_SERIAL_MUSTSTAPLE);
    ok &= fclose(f) == 0;
    snprintf(path, sizeof(path), "%s/index.txt.attr", dir);
    ok &= tp_write_file(path, "unique_subject = no\n", 20);
    return ok;
}

int tp_pki_make_chain(tp_pki *p, const char *root_url, const char *ica_url, int64_t now)
{
    const int64_t day = 86400;
    static const struct {
        size_t off;
        long serial;
        bool aia;
    } icas[] = {
        {offsetof(tp_pki, ica), TP_SERIAL_ICA, true},
        {offsetof(tp_pki, ica_revoked), TP_SERIAL_ICA_REVOKED, true},
        {offsetof(tp_pki, ica_unknown), TP_SERIAL_ICA_UNKNOWN, true},
        {offsetof(tp_pki, ica_noaia), TP_SERIAL_ICA_NOAIA, false},
    };
    tp_cert_opts o;

    for (size_t i = 0; i < sizeof(icas) / sizeof(icas[0]); i++) {
        memset(&o, 0, sizeof(o));
        o.cn = "srvocsp test intermediate CA";
        o.serial = icas[i].serial;
        o.issuer = &p->root;
        o.ca = true;
        o.not_before = now - day;
        o.not_after = now + 365 * day;
        o.ocsp_urls[0] = icas[i].aia ? root_url : NULL;
        o.same_key_as = i > 0 ? &p->ica : NULL;
        if (!tp_cert_make((tp_cert *)((char *)p + icas[i].off), &o))
            return 0;
    }
    memset(&o, 0, sizeof(o));
    o.cn = "chain.test";
    o.serial = TP_SERIAL_CHAIN_LEAF;
    o.issuer = &p->ica;
    o.server_auth = true;
    o.not_before = now - day;
    o.not_after = now + 365 * day;
    o.ocsp_urls[0] = ica_url;
    return tp_cert_make(&p->chain_leaf, &o);
}

/* Writes an openssl-ocsp index: |lines| formatted with the expiry and
 * revocation times, and the attr file beside it. */
static int write_index(const char *dir, const char *name, const char *const *lines, size_t n)
{
    char path[1024], exp[32], rev[32];
    int64_t now = (int64_t)time(NULL);
    FILE *f;
    int ok;

    asn1_index_time(now + 365 * 86400, exp, sizeof(exp));
    asn1_index_time(now - 3600, rev, sizeof(rev));
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    if (f == NULL)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (lines[i][0] == 'R')
            fprintf(f, "R\t%s\t%s,keyCompromise\t%s\n", exp, rev, lines[i] + 2);
        else
            fprintf(f, "V\t%s\t\t%s\n", exp, lines[i] + 2);
    }
    ok = fclose(f) == 0;
    snprintf(path, sizeof(path), "%s/%s.attr", dir, name);
    return ok && tp_write_file(path, "unique_subject = no\n", 20);
}

/* PEM of |a|, then |b| and |c| when not NULL. */
static int write_chain(const char *dir, const char *name, X509 *a, X509 *b, X509 *c)
{
    char path[1024];
    FILE *f;
    int ok;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    if (f == NULL)
        return 0;
    ok = PEM_write_X509(f, a) && (b == NULL || PEM_write_X509(f, b)) &&
         (c == NULL || PEM_write_X509(f, c));
    return fclose(f) == 0 && ok;
}

int tp_pki_write_chain(const tp_pki *p, const char *dir)
{
    char path[1024];
    int ok = 1;
    static const char *const leaf_index[] = {
        "V 2001\tunknown\t/O=srvocsp test/CN=chain.test",
    };
    static const char *const root_index[] = {
        "V 20\tunknown\t/O=srvocsp test/CN=srvocsp test intermediate CA",
        "R 21\tunknown\t/O=srvocsp test/CN=srvocsp test intermediate CA",
        "V 23\tunknown\t/O=srvocsp test/CN=srvocsp test intermediate CA",
    };

    if (p->chain_leaf.cert == NULL)
        return 0;
    snprintf(path, sizeof(path), "%s/root.key", dir);
    ok &= tp_write_key(path, p->root.key);
    snprintf(path, sizeof(path), "%s/ica.key", dir);
    ok &= tp_write_key(path, p->ica.key);
    snprintf(path, sizeof(path), "%s/chain.key", dir);
    ok &= tp_write_key(path, p->chain_leaf.key);
    ok &= write_chain(dir, "ica.pem", p->ica.cert, NULL, NULL);
    ok &= write_chain(dir, "chain.pem", p->chain_leaf.cert, p->ica.cert, NULL);
    ok &= write_chain(dir, "chain-root.pem", p->chain_leaf.cert, p->ica.cert, p->root.cert);
    ok &= write_chain(dir, "chain-ica-revoked.pem", p->chain_leaf.cert, p->ica_revoked.cert, NULL);
    ok &= write_chain(dir, "chain-ica-unknown.pem", p->chain_leaf.cert, p->ica_unknown.cert, NULL);
    ok &= write_chain(dir, "chain-ica-noaia.pem", p->chain_leaf.cert, p->ica_noaia.cert, NULL);
    ok &= write_index(dir, "chain-index.txt", leaf_index, 1);
    ok &= write_index(dir, "root-index.txt", root_index, 3);
    return ok;
}

unsigned char *tp_response_at(const tp_cert *leaf, const tp_cert *issuer, int status,
                              int64_t this_update, int64_t produced_at, int64_t next_update,
                              size_t *len)
{
    tp_resp_opts o;

    tp_resp_opts_init(&o, leaf, issuer, this_update);
    o.status = status;
    o.this_update = this_update;
    o.produced_at = produced_at;
    o.next_update = next_update;
    if (status == V_OCSP_CERTSTATUS_REVOKED) {
        o.revoked_at = this_update - 10;
        o.reason = 1;
    }
    return tp_response(&o, len);
}
