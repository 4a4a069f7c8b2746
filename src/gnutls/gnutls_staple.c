/*
 * Stapling for GnuTLS through gnutls_certificate_set_retrieve_function3.
 *
 * Why this callback: in GnuTLS 3.7 (lib/tls13/certificate.c) the status of
 * a certificate other than the leaf is sent only from the array of
 * gnutls_ocsp_data_st that the credential or the retrieve function
 * selected; the OCSP callbacks (..._status_request_function and
 * ..._function2) are asked for index 0 alone.  Setting responses into the
 * credential (gnutls_certificate_set_ocsp_status_request_mem) would
 * replace data that handshakes in flight borrow.  The retrieve function
 * instead gives each handshake its own array, pointing into snapshots it
 * holds references to.
 *
 * Per handshake: one lookup of the credential (lock-free table), one
 * lock-free get per certificate of the chain (per-thread proxies), one
 * small allocation for the session's references.  No lock, no I/O, no
 * parse, no copy of a response.
 *
 * Lifetime: GnuTLS does not free what the callback returns (no
 * GNUTLS_CERT_RETR_DEINIT_ALL: the certificates and the key are ours and
 * shared) and may use the array after the callback returns, even after a
 * HelloRetryRequest round trip.  So the session keeps the references as
 * the private data of a registered extension number (gnutls_ext_set_data),
 * and GnuTLS releases them with the session (gnutls_deinit) or when the
 * next selection on the same session replaces them.  The extension is
 * never sent: its send function adds nothing.
 */
#include "gnutls_internal.h"
#include "tls/staple_counters.h"
#include "tls/staple_rules.h"

#include <gnutls/x509.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* A number of the TLS private-use range (RFC 8446 section 11: first byte
 * 255), only to carry per-session data; nothing is ever sent with it. */
#define STAPLES_EXT_ID 0xff5c

typedef struct item {
    srvocsp_chain *chain;
    size_t n;                         /* certificates sent */
    gnutls_pcert_st pcerts[SRVOCSP_CHAIN_MAX];
    gnutls_privkey_t key;
    gnutls_x509_crt_t leaf_crt;       /* for SNI matching, imported once */
    gnutls_pk_algorithm_t pk;
    bool must_staple;
} item;

#define STAT_SHARDS SRVOCSP__COUNTER_SHARDS

/* Counters, one shard per handshaking thread (tls/staple_counters.h, as
 * on the OpenSSL side): a plain add on a line only that thread writes. */
typedef struct stat_shard {
    atomic_uint_fast64_t stapled, none, expired, unknown, no_handle, must_unstapled, ica_stapled,
        ica_unstapled;
} __attribute__((aligned(64))) stat_shard;

static atomic_uint_fast64_t *miss_counter(stat_shard *st, srvocsp__staple_miss m)
{
    return m == SRVOCSP__MISS_EXPIRED ? &st->expired
         : m == SRVOCSP__MISS_UNKNOWN ? &st->unknown
                                      : &st->none;
}

struct srvocsp_gnutls {
    gnutls_certificate_credentials_t cred;
    item items[SRVOCSP_GNUTLS_MAX_CHAINS];
    size_t n;
    /* Some chain's leaf names other hosts than the first's: only then does
     * the server name decide (an RSA and an ECDSA certificate for the same
     * names, the usual pair, are told apart by the signature algorithms
     * alone, with no name check per handshake). */
    bool names_differ;
    srvocsp_gnutls_must_staple_cb must_cb;
    void *must_arg;
    stat_shard shards[STAT_SHARDS];
};

/* What one session holds: the responses its handshake was given. */
typedef struct held {
    unsigned n;
    gnutls_ocsp_data_st ocsp[SRVOCSP_CHAIN_MAX];
    srvocsp_response *refs[SRVOCSP_CHAIN_MAX];
} held;

static stat_shard *my_shard(srvocsp_gnutls *g)
{
    return &g->shards[srvocsp__counter_slot()];
}

static void count(atomic_uint_fast64_t *c)
{
    srvocsp__counter_add(c); /* in the shard my_shard gave this thread */
}

/* ---- the per-session data, carried by a registered extension ---- */

static void held_free(gnutls_ext_priv_data_t data)
{
    held *h = data;

    for (unsigned i = 0; h != NULL && i < h->n; i++)
        srvocsp_response_free(h->refs[i]);
    free(h);
}

static int ext_recv(gnutls_session_t session, const unsigned char *data, size_t len)
{
    return 0; /* a peer sending this number is ignored */
}

static int ext_send(gnutls_session_t session, gnutls_buffer_t extdata)
{
    return 0; /* nothing appended: GnuTLS sends no extension */
}

static int g_ext_status = GNUTLS_E_INTERNAL_ERROR;
static pthread_once_t g_ext_once = PTHREAD_ONCE_INIT;

static void register_ext(void)
{
    g_ext_status = gnutls_ext_register("srvocsp-staples", STAPLES_EXT_ID, GNUTLS_EXT_TLS, ext_recv,
                                       ext_send, held_free, NULL, NULL);
}

/* ---- choosing the chain of a handshake ---- */

static bool can_sign(gnutls_session_t session, gnutls_pk_algorithm_t pk)
{
    gnutls_sign_algorithm_t sig;
    bool asked = false;

    for (unsigned i = 0; gnutls_sign_algorithm_get_requested(session, i, &sig) == 0; i++) {
        asked = true;
        if (gnutls_sign_supports_pk_algorithm(sig, pk))
            return true;
    }
    return !asked; /* a client that lists nothing accepts the defaults */
}

static item *choose(srvocsp_gnutls *g, gnutls_session_t session)
{
    char name[256];
    size_t len = sizeof(name);
    unsigned type;
    item *signer = NULL;
    bool sni;

    if (g->n == 1)
        return &g->items[0];
    sni = g->names_differ && gnutls_server_name_get(session, name, &len, &type, 0) == 0 &&
          type == GNUTLS_NAME_DNS && len < sizeof(name);
    for (size_t i = 0; i < g->n; i++) {
        item *it = &g->items[i];

        if (!can_sign(session, it->pk))
            continue;
        if (!sni || gnutls_x509_crt_check_hostname2(it->leaf_crt, name, 0))
            return it;
        if (signer == NULL)
            signer = it;
    }
    return signer != NULL ? signer : g->n > 0 ? &g->items[0] : NULL;
}

/* Takes the current response of the |i|-th certificate into |h|. */
static bool take(held *h, unsigned i, srvocsp_handle *hd)
{
    srvocsp_response *r = hd != NULL ? srvocsp_get1_response(hd) : NULL;
    const unsigned char *der;
    size_t len;

    if (r == NULL)
        return false;
    der = srvocsp_response_der(r, &len);
    h->refs[i] = r;
    /* GnuTLS reads but never writes or frees it (no DEINIT_ALL). */
    h->ocsp[i].response.data = (unsigned char *)(uintptr_t)der;
    h->ocsp[i].response.size = (unsigned)len;
    /* GnuTLS itself refuses to send it past this instant. */
    h->ocsp[i].exptime = (time_t)srvocsp_response_expires(r);
    return true;
}

static void count_leaf_miss(srvocsp_gnutls *g, stat_shard *st, gnutls_session_t session,
                            item *it)
{
    srvocsp_error why = srvocsp_last_error();
    srvocsp_handle *leaf = srvocsp_chain_get0_handle(it->chain, 0);

    count(miss_counter(st, srvocsp__staple_miss_of(why)));
    if (it->must_staple) {
        count(&st->must_unstapled);
        if (g->must_cb)
            g->must_cb(session, leaf, g->must_arg);
    }
}

static int retrieve(gnutls_session_t session, const struct gnutls_cert_retr_st *info,
                    gnutls_pcert_st **pcert, unsigned int *pcert_length,
                    gnutls_ocsp_data_st **ocsp, unsigned int *ocsp_length,
                    gnutls_privkey_t *privkey, unsigned int *flags)
{
    srvocsp_gnutls *g = srvocsp__gnutls_lookup(info->cred);
    stat_shard *st;
    item *it;
    held *h;
    unsigned n;

    *pcert_length = 0;
    *ocsp_length = 0;
    *flags = 0;
    if (g == NULL)
        return 0; /* detached: GnuTLS ends the handshake, no certificate */
    st = my_shard(g);
    it = choose(g, session);
    if (it == NULL) {
        count(&st->no_handle);
        return 0;
    }
    *pcert = it->pcerts;
    *pcert_length = (unsigned)it->n;
    *privkey = it->key;
    /* TLS 1.2 carries the leaf's status only: take no other reference. */
    n = gnutls_protocol_get_version(session) == GNUTLS_TLS1_3 ? (unsigned)it->n : 1;
    /* malloc, not calloc: glibc serves malloc from the thread's cache
     * (calloc bypasses it), and only the first n entries are read. */
    h = malloc(sizeof(*h));
    if (h == NULL) {
        count(&st->none);
        return 0; /* served without staples */
    }
    h->n = n;
    memset(h->ocsp, 0, n * sizeof(h->ocsp[0]));
    memset(h->refs, 0, n * sizeof(h->refs[0]));
    if (take(h, 0, srvocsp_chain_get0_handle(it->chain, 0)))
        count(&st->stapled);
    else
        count_leaf_miss(g, st, session, it);
    for (unsigned i = 1; i < n; i++) {
        srvocsp_handle *hd = srvocsp_chain_get0_handle(it->chain, i);

        if (hd == NULL)
            continue; /* a root, or no OCSP URL: nothing to send */
        count(take(h, i, hd) ? &st->ica_stapled : &st->ica_unstapled);
    }
    /* Frees what an earlier selection on this session held. */
    gnutls_ext_set_data(session, STAPLES_EXT_ID, h);
    *ocsp = h->ocsp;
    *ocsp_length = n;
    return 0;
}

/* ---- attach, add, free ---- */

srvocsp_error srvocsp_gnutls_attach(gnutls_certificate_credentials_t cred, srvocsp_gnutls **out)
{
    srvocsp_gnutls *g;
    srvocsp_error err;

    if (out == NULL)
        return SRVOCSP_E_INVALID_ARG;
    *out = NULL;
    if (cred == NULL)
        return SRVOCSP_E_INVALID_ARG;
    pthread_once(&g_ext_once, register_ext);
    if (g_ext_status < 0)
        return SRVOCSP_E_UNSUPPORTED;
    /* aligned: the counter shards own whole cache lines */
    g = aligned_alloc(_Alignof(srvocsp_gnutls), sizeof(*g));
    if (g == NULL)
        return SRVOCSP_E_NOMEM;
    memset(g, 0, sizeof(*g));
    g->cred = cred;
    err = srvocsp__gnutls_register(cred, g);
    if (err != SRVOCSP_OK) {
        free(g);
        return err;
    }
    gnutls_certificate_set_retrieve_function3(cred, retrieve);
    *out = g;
    return SRVOCSP_OK;
}

static void item_clear(item *it)
{
    for (size_t i = 0; i < it->n; i++)
        gnutls_pcert_deinit(&it->pcerts[i]);
    if (it->leaf_crt != NULL)
        gnutls_x509_crt_deinit(it->leaf_crt);
    gnutls_privkey_deinit(it->key);
    srvocsp_chain_close(it->chain);
    memset(it, 0, sizeof(*it));
}

/* Imports the |i|-th certificate of the chain into |it|. */
static bool import_cert(item *it, size_t i)
{
    X509 *x = srvocsp_chain_get0_cert(it->chain, i);
    unsigned char *der = NULL;
    int len = i2d_X509(x, &der);
    gnutls_datum_t d;
    int ok;

    if (len <= 0)
        return false;
    d.data = der;
    d.size = (unsigned)len;
    ok = gnutls_pcert_import_x509_raw(&it->pcerts[i], &d, GNUTLS_X509_FMT_DER, 0) == 0;
    if (ok)
        it->n = i + 1;
    if (ok && i == 0)
        ok = gnutls_x509_crt_init(&it->leaf_crt) == 0 &&
             gnutls_x509_crt_import(it->leaf_crt, &d, GNUTLS_X509_FMT_DER) == 0;
    OPENSSL_free(der);
    return ok;
}

/* Whether two leaves name the same hosts: the same subject and the same
 * subjectAltName extension. */
static bool same_names(X509 *a, X509 *b)
{
    int ia = X509_get_ext_by_NID(a, NID_subject_alt_name, -1);
    int ib = X509_get_ext_by_NID(b, NID_subject_alt_name, -1);

    if (X509_NAME_cmp(X509_get_subject_name(a), X509_get_subject_name(b)) != 0)
        return false;
    if (ia < 0 || ib < 0)
        return ia < 0 && ib < 0;
    return ASN1_OCTET_STRING_cmp(X509_EXTENSION_get_data(X509_get_ext(a, ia)),
                                 X509_EXTENSION_get_data(X509_get_ext(b, ib))) == 0;
}

srvocsp_error srvocsp_gnutls_add_chain(srvocsp_gnutls *g, srvocsp_chain *chain,
                                       gnutls_privkey_t key)
{
    item *it;

    if (g == NULL || chain == NULL || key == NULL || srvocsp_chain_length(chain) == 0)
        return SRVOCSP_E_INVALID_ARG;
    if (g->n == SRVOCSP_GNUTLS_MAX_CHAINS)
        return SRVOCSP_E_UNSUPPORTED;
    it = &g->items[g->n];
    memset(it, 0, sizeof(*it));
    it->chain = srvocsp_chain_up_ref(chain);
    for (size_t i = 0; i < srvocsp_chain_length(chain); i++) {
        if (!import_cert(it, i)) {
            item_clear(it); /* key still the caller's: not set yet */
            return SRVOCSP_E_CERT;
        }
    }
    it->pk = gnutls_pubkey_get_pk_algorithm(it->pcerts[0].pubkey, NULL);
    it->must_staple = srvocsp__must_staple(srvocsp_chain_get0_cert(chain, 0)) == 1;
    it->key = key;
    if (g->n > 0 && !same_names(srvocsp_chain_get0_cert(g->items[0].chain, 0),
                                srvocsp_chain_get0_cert(chain, 0)))
        g->names_differ = true;
    g->n++;
    return SRVOCSP_OK;
}

srvocsp_error srvocsp_gnutls_add_pem(srvocsp_gnutls *g, const char *chain_path,
                                     const char *key_path, const char *extra_path,
                                     const srvocsp_params *params)
{
    srvocsp_chain *chain = NULL;
    gnutls_privkey_t key = NULL;
    gnutls_datum_t pem = {NULL, 0};
    srvocsp_error err;

    if (g == NULL || chain_path == NULL || key_path == NULL)
        return SRVOCSP_E_INVALID_ARG;
    chain = srvocsp_chain_open_pem(chain_path, extra_path, params);
    if (chain == NULL)
        return srvocsp_last_error();
    err = SRVOCSP_E_CERT;
    if (gnutls_load_file(key_path, &pem) != 0 || gnutls_privkey_init(&key) != 0 ||
        gnutls_privkey_import_x509_raw(key, &pem, GNUTLS_X509_FMT_PEM, NULL, 0) != 0)
        goto out;
    err = srvocsp_gnutls_add_chain(g, chain, key);
    if (err == SRVOCSP_OK)
        key = NULL; /* g owns it */
out:
    gnutls_free(pem.data);
    gnutls_privkey_deinit(key);
    srvocsp_chain_close(chain); /* g keeps its own reference */
    return err;
}

srvocsp_chain *srvocsp_gnutls_get0_chain(const srvocsp_gnutls *g, size_t i)
{
    return g != NULL && i < g->n ? g->items[i].chain : NULL;
}

void srvocsp_gnutls_set_must_staple_cb(srvocsp_gnutls *g, srvocsp_gnutls_must_staple_cb cb,
                                       void *arg)
{
    if (g == NULL)
        return;
    g->must_cb = cb;
    g->must_arg = arg;
}

void srvocsp_gnutls_get_stats(const srvocsp_gnutls *g, srvocsp_gnutls_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (g == NULL)
        return;
    for (int i = 0; i < STAT_SHARDS; i++) {
        const stat_shard *sh = &g->shards[i];

#define SUM(field, name) out->field += atomic_load_explicit(&sh->name, memory_order_relaxed)
        SUM(stapled, stapled);
        SUM(unstapled_none, none);
        SUM(unstapled_expired, expired);
        SUM(unstapled_unknown, unknown);
        SUM(unstapled_no_handle, no_handle);
        SUM(must_staple_unstapled, must_unstapled);
        SUM(intermediates_stapled, ica_stapled);
        SUM(intermediates_unstapled, ica_unstapled);
#undef SUM
    }
}

void srvocsp_gnutls_free(srvocsp_gnutls *g)
{
    if (g == NULL)
        return;
    srvocsp__gnutls_unregister(g->cred);
    for (size_t i = 0; i < g->n; i++)
        item_clear(&g->items[i]);
    free(g);
}
