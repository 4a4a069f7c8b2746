/*
 * The certificate status callback.  Per handshake: find the handle of the
 * certificate OpenSSL selected (pointer compare, then the cached digest),
 * take a reference to its snapshot (lock-free), copy the DER into the
 * buffer OpenSSL takes ownership of.  No parsing, no I/O, no lock.
 */
#include "internal.h"
#include "srvocsp/openssl.h"
#include "tls/staple_counters.h"
#include "tls/staple_rules.h"

#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>

#define MAX_ATTACHED 8

typedef struct attached {
    srvocsp_handle *h;
    X509 *leaf;          /* borrowed from the handle */
    /* The context's own object for the same certificate, once a handshake
     * has matched it by content: later handshakes match by pointer, without
     * X509_cmp (which takes the certificate's lock in OpenSSL 3). */
    _Atomic(X509 *) ctx_cert;
    bool must_staple;
} attached;

/* Counters, one shard per handshaking thread (tls/staple_counters.h), so
 * a handshake's count is a plain add on a line only its thread writes
 * (shared, they would pass between cores, with the line of |items| beside
 * them that every handshake reads); get_stats sums them. */
#define STAT_SHARDS SRVOCSP__COUNTER_SHARDS

typedef struct stat_shard {
    atomic_uint_fast64_t stapled, none, expired, unknown, no_handle, must_unstapled;
} __attribute__((aligned(64))) stat_shard;

static atomic_uint_fast64_t *miss_counter(stat_shard *st, srvocsp__staple_miss m)
{
    return m == SRVOCSP__MISS_EXPIRED ? &st->expired
         : m == SRVOCSP__MISS_UNKNOWN ? &st->unknown
                                      : &st->none;
}

typedef struct staple_ctx {
    attached items[MAX_ATTACHED];
    int n;
    /* The context's certificates that matched no handle (one without an
     * OCSP URL, skipped by the server): later handshakes on them return
     * at once instead of comparing with every item again. */
    _Atomic(X509 *) misses[MAX_ATTACHED];
    atomic_uint next_miss;
    srvocsp_must_staple_cb must_cb;
    void *must_arg;
    stat_shard shards[STAT_SHARDS];
} staple_ctx;

static stat_shard *my_shard(staple_ctx *sc)
{
    return &sc->shards[srvocsp__counter_slot()];
}

static int g_index = -1;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void staple_ctx_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                            void *argp)
{
    staple_ctx *sc = ptr;

    if (sc == NULL)
        return;
    for (int i = 0; i < sc->n; i++)
        srvocsp_close(sc->items[i].h);
    free(sc);
}

static void init_index(void)
{
    g_index = SSL_CTX_get_ex_new_index(0, "srvocsp", NULL, NULL, staple_ctx_free);
}

static staple_ctx *get_sc(SSL_CTX *ctx)
{
    pthread_once(&g_once, init_index);
    return g_index < 0 ? NULL : SSL_CTX_get_ex_data(ctx, g_index);
}

int srvocsp_ssl_ctx_attach(SSL_CTX *ctx, srvocsp_handle *h)
{
    staple_ctx *sc;

    if (ctx == NULL || h == NULL) {
        srvocsp__set_error(SRVOCSP_E_INVALID_ARG, "srvocsp_ssl_ctx_attach: %s",
                           ctx ? "no handle" : "no SSL_CTX");
        return 0;
    }
    sc = get_sc(ctx);
    if (g_index < 0) {
        srvocsp__set_error(SRVOCSP_E_INTERNAL, "cannot allocate SSL_CTX ex_data index");
        return 0;
    }
    if (sc == NULL) {
        /* aligned: the counter shards own whole cache lines */
        sc = srvocsp__alloc_should_fail() ? NULL : aligned_alloc(_Alignof(staple_ctx), sizeof(*sc));
        if (sc != NULL)
            memset(sc, 0, sizeof(*sc));
        if (sc == NULL || !SSL_CTX_set_ex_data(ctx, g_index, sc)) {
            free(sc);
            srvocsp__set_error(SRVOCSP_E_NOMEM, NULL);
            return 0;
        }
        SSL_CTX_set_tlsext_status_cb(ctx, srvocsp_ssl_status_cb);
        SSL_CTX_set_tlsext_status_arg(ctx, ctx);
    }
    if (sc->n == MAX_ATTACHED) {
        srvocsp__set_error(SRVOCSP_E_UNSUPPORTED, "at most %d handles per SSL_CTX", MAX_ATTACHED);
        return 0;
    }
    sc->items[sc->n].h = srvocsp_handle_up_ref(h);
    sc->items[sc->n].leaf = srvocsp_handle_get0_leaf(h);
    atomic_init(&sc->items[sc->n].ctx_cert, NULL);
    sc->items[sc->n].must_staple = srvocsp__must_staple(sc->items[sc->n].leaf) == 1;
    for (int i = 0; i < MAX_ATTACHED; i++) /* a certificate missed so far may be this one */
        atomic_store_explicit(&sc->misses[i], NULL, memory_order_relaxed);
    sc->n++;
    return 1;
}

int srvocsp_ssl_ctx_set_must_staple_cb(SSL_CTX *ctx, srvocsp_must_staple_cb cb, void *arg)
{
    staple_ctx *sc = ctx ? get_sc(ctx) : NULL;

    if (sc == NULL)
        return 0;
    sc->must_cb = cb;
    sc->must_arg = arg;
    return 1;
}

void srvocsp_ssl_ctx_get_stats(SSL_CTX *ctx, srvocsp_ssl_stats *out)
{
    staple_ctx *sc = ctx ? get_sc(ctx) : NULL;

    memset(out, 0, sizeof(*out));
    if (sc == NULL)
        return;
    for (int i = 0; i < STAT_SHARDS; i++) {
        stat_shard *sh = &sc->shards[i];

        out->stapled += atomic_load_explicit(&sh->stapled, memory_order_relaxed);
        out->unstapled_none += atomic_load_explicit(&sh->none, memory_order_relaxed);
        out->unstapled_expired += atomic_load_explicit(&sh->expired, memory_order_relaxed);
        out->unstapled_unknown += atomic_load_explicit(&sh->unknown, memory_order_relaxed);
        out->unstapled_no_handle += atomic_load_explicit(&sh->no_handle, memory_order_relaxed);
        out->must_staple_unstapled +=
            atomic_load_explicit(&sh->must_unstapled, memory_order_relaxed);
    }
}

static void count(atomic_uint_fast64_t *c)
{
    srvocsp__counter_add(c); /* in the shard my_shard gave this thread */
}

int srvocsp_ssl_status_cb(SSL *ssl, void *arg)
{
    /* After SNI the handshake may use another context than |arg|. */
    SSL_CTX *ctx = SSL_get_SSL_CTX(ssl);
    staple_ctx *sc = get_sc(ctx ? ctx : arg);
    X509 *cert = SSL_get_certificate(ssl); /* the one selected for this handshake */
    stat_shard *st;
    attached *a = NULL;
    srvocsp_response *r;
    unsigned char *copy;
    const unsigned char *der;
    size_t len;
    int i;

    if (sc == NULL || cert == NULL)
        return SSL_TLSEXT_ERR_NOACK;
    st = my_shard(sc);
    for (i = 0; i < sc->n && a == NULL; i++)
        if (sc->items[i].leaf == cert ||
            atomic_load_explicit(&sc->items[i].ctx_cert, memory_order_relaxed) == cert)
            a = &sc->items[i];
    for (i = 0; i < MAX_ATTACHED && a == NULL; i++)
        if (atomic_load_explicit(&sc->misses[i], memory_order_relaxed) == cert) {
            count(&st->no_handle);
            return SSL_TLSEXT_ERR_NOACK;
        }
    for (i = 0; i < sc->n && a == NULL; i++) {
        if (X509_cmp(sc->items[i].leaf, cert) == 0) { /* first handshake only */
            a = &sc->items[i];
            atomic_store_explicit(&a->ctx_cert, cert, memory_order_relaxed);
        }
    }
    if (a == NULL) {
        unsigned k = atomic_fetch_add_explicit(&sc->next_miss, 1, memory_order_relaxed);

        atomic_store_explicit(&sc->misses[k % MAX_ATTACHED], cert, memory_order_relaxed);
        count(&st->no_handle);
        return SSL_TLSEXT_ERR_NOACK;
    }
    r = srvocsp_get1_response(a->h);
    if (r == NULL) {
        srvocsp_error why = srvocsp_last_error();

        count(miss_counter(st, srvocsp__staple_miss_of(why)));
        if (a->must_staple) {
            count(&st->must_unstapled);
            if (sc->must_cb)
                sc->must_cb(ssl, a->h, sc->must_arg);
        }
        /* Not acknowledged: the handshake goes on without a staple, never
         * with an alert, an expired response or tryLater. */
        return SSL_TLSEXT_ERR_NOACK;
    }
    der = srvocsp_response_der(r, &len);
    copy = len <= LONG_MAX ? OPENSSL_malloc(len) : NULL; /* OpenSSL frees it with the SSL */
    if (copy == NULL) {
        srvocsp_response_free(r);
        count(&st->none);
        return SSL_TLSEXT_ERR_NOACK;
    }
    memcpy(copy, der, len);
    srvocsp_response_free(r);
    if (!SSL_set_tlsext_status_ocsp_resp(ssl, copy, (long)len)) {
        OPENSSL_free(copy);
        count(&st->none);
        return SSL_TLSEXT_ERR_NOACK;
    }
    count(&st->stapled);
    return SSL_TLSEXT_ERR_OK;
}
