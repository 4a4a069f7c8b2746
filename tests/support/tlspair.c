#include "tlspair.h"

#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <string.h>

bool tls_parse_staples = true;

SSL_CTX *tls_server_ctx(const tp_cert *leaf, const tp_cert *issuer)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    if (ctx == NULL || SSL_CTX_use_certificate(ctx, leaf->cert) != 1 ||
        SSL_CTX_use_PrivateKey(ctx, leaf->key) != 1 ||
        SSL_CTX_add1_chain_cert(ctx, issuer->cert) != 1) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx, 0);
    return ctx;
}

SSL_CTX *tls_client_ctx(const tp_cert *root, bool tls13)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), root->cert);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (tls13)
        SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    return ctx;
}

static long serial_of(const unsigned char *der, long len)
{
    const unsigned char *p = der;
    OCSP_RESPONSE *r = d2i_OCSP_RESPONSE(NULL, &p, len);
    OCSP_BASICRESP *bs = r ? OCSP_response_get1_basic(r) : NULL;
    ASN1_INTEGER *serial = NULL;
    long v = -1;

    if (bs && OCSP_resp_count(bs) > 0 &&
        OCSP_id_get0_info(NULL, NULL, NULL, &serial,
                          (OCSP_CERTID *)OCSP_SINGLERESP_get0_id(OCSP_resp_get0(bs, 0))) == 1)
        v = ASN1_INTEGER_get(serial);
    OCSP_BASICRESP_free(bs);
    OCSP_RESPONSE_free(r);
    return v;
}

tls_result tls_handshake(SSL_CTX *server, SSL_CTX *client, const char *sni, bool want_status)
{
    tls_result res = {false, -1, 0};
    SSL *s = SSL_new(server), *c = SSL_new(client);
    BIO *sb = NULL, *cb = NULL;
    int i, rs = 0, rc = 0;

    BIO_new_bio_pair(&sb, 0, &cb, 0);
    SSL_set_bio(s, sb, sb);
    SSL_set_bio(c, cb, cb);
    SSL_set_accept_state(s);
    SSL_set_connect_state(c);
    if (sni)
        SSL_set_tlsext_host_name(c, sni);
    if (want_status)
        SSL_set_tlsext_status_type(c, TLSEXT_STATUSTYPE_ocsp);
    for (i = 0; i < 100 && (rs != 1 || rc != 1); i++) {
        if (rc != 1)
            rc = SSL_do_handshake(c);
        if (rs != 1)
            rs = SSL_do_handshake(s);
    }
    res.ok = rs == 1 && rc == 1;
    if (res.ok && want_status) {
        const unsigned char *der = NULL;
        long len = SSL_get_tlsext_status_ocsp_resp(c, &der);

        if (len > 0 && der != NULL) {
            res.staple_len = (int)len;
            res.staple_serial = tls_parse_staples ? serial_of(der, len) : 0;
        }
    }
    ERR_clear_error();
    SSL_free(s);
    SSL_free(c);
    return res;
}
