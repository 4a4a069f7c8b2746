/*
 * Chains: one handle per certificate of a served chain that can be asked
 * about.  Built only on the public handle API (srvocsp_open), so every
 * handle of a chain is an ordinary handle: same engine, schedule,
 * verification against its own issuer, persistence and sharing.
 */
#include "internal.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A PEM file of a chain or of CA certificates never holds more than this
 * (a cap on what is read from disk). */

struct srvocsp_chain {
    atomic_uint refs;
    size_t n;
    X509 *certs[SRVOCSP_CHAIN_MAX];
    srvocsp_handle *handles[SRVOCSP_CHAIN_MAX];
};

static bool self_signed(X509 *x)
{
    return X509_check_issued(x, x) == X509_V_OK;
}

static bool on_path(const srvocsp_chain *c, X509 *x)
{
    for (size_t i = 0; i < c->n; i++)
        if (X509_cmp(c->certs[i], x) == 0)
            return true;
    return false;
}

/* The issuer of |x| among |served|, not already on the path (a served
 * chain with a loop ends where the loop starts). */
static X509 *served_issuer(const srvocsp_chain *c, X509 *x, STACK_OF(X509) *served)
{
    for (int i = 0; i < sk_X509_num(served); i++) {
        X509 *cand = sk_X509_value(served, i);

        if (!on_path(c, cand) && X509_check_issued(cand, x) == X509_V_OK)
            return cand;
    }
    return NULL;
}

/* Fills the path: the leaf, then each issuer found in |served|, until a
 * self-signed certificate or an issuer that is not served. */
static srvocsp_error build_path(srvocsp_chain *c, STACK_OF(X509) *served)
{
    X509 *x = sk_X509_value(served, 0);

    while (x != NULL) {
        if (c->n == SRVOCSP_CHAIN_MAX) {
            srvocsp__set_error(SRVOCSP_E_UNSUPPORTED,
                               "srvocsp_chain_open: the chain is longer than %d certificates",
                               SRVOCSP_CHAIN_MAX);
            return SRVOCSP_E_UNSUPPORTED;
        }
        X509_up_ref(x);
        c->certs[c->n++] = x;
        x = self_signed(x) ? NULL : served_issuer(c, x, served);
    }
    return SRVOCSP_OK;
}

/* Opens the handle of the |i|-th certificate, or leaves it NULL when that
 * certificate is not to be asked about.  |all| holds the path and extra. */
static srvocsp_error open_one(srvocsp_chain *c, size_t i, STACK_OF(X509) *all,
                              const srvocsp_params *params)
{
    srvocsp_params p;
    X509 *x = c->certs[i];

    if (i > 0) {
        if (self_signed(x))
            return SRVOCSP_OK; /* a root is never asked about */
        p = *params;
        p.responder_url = NULL; /* the leaf's responder, not this CA's */
        params = &p;
    }
    c->handles[i] = srvocsp_open(x, all, params);
    if (c->handles[i] != NULL)
        return SRVOCSP_OK;
    /* An intermediate is asked about only when srvocsp_open finds a
     * responder it can ask (no ldap:// only) and its issuer: the one rule,
     * in srvocsp_open. */
    if (i > 0 && (srvocsp_last_error() == SRVOCSP_E_NO_OCSP_URL ||
                  srvocsp_last_error() == SRVOCSP_E_NO_ISSUER))
        return SRVOCSP_OK;
    return srvocsp_last_error();
}

srvocsp_chain *srvocsp_chain_open(STACK_OF(X509) *served, STACK_OF(X509) *extra,
                                  const srvocsp_params *params)
{
    srvocsp_chain *c = NULL;
    STACK_OF(X509) *all = NULL;
    srvocsp_params def;
    srvocsp_error err;
    size_t i;

    if (served == NULL || sk_X509_num(served) == 0) {
        srvocsp__set_error(SRVOCSP_E_INVALID_ARG, "srvocsp_chain_open: no certificate");
        return NULL;
    }
    if (params == NULL) {
        srvocsp_params_init(&def);
        params = &def;
    }
    c = srvocsp__calloc(1, sizeof(*c));
    all = sk_X509_new_null();
    if (c == NULL || all == NULL)
        goto nomem;
    atomic_init(&c->refs, 1);
    if (build_path(c, served) != SRVOCSP_OK)
        goto fail;
    for (i = 0; i < c->n; i++)
        if (!sk_X509_push(all, c->certs[i]))
            goto nomem;
    for (int k = 0; extra != NULL && k < sk_X509_num(extra); k++)
        if (!sk_X509_push(all, sk_X509_value(extra, k)))
            goto nomem;
    for (i = 0; i < c->n; i++) {
        err = open_one(c, i, all, params);
        if (err != SRVOCSP_OK) {
            if (i > 0) {
                char subject[256];

                X509_NAME_oneline(X509_get_subject_name(c->certs[i]), subject, sizeof(subject));
                srvocsp__set_error(err, "srvocsp_chain_open: intermediate %s: %s", subject,
                                   srvocsp_strerror(err));
            }
            goto fail;
        }
    }
    sk_X509_free(all); /* the stack only; its certificates are borrowed */
    return c;

nomem:
    srvocsp__set_error(SRVOCSP_E_NOMEM, NULL);
fail:
    sk_X509_free(all);
    srvocsp_chain_close(c); /* sets no error: the reason stays */
    return NULL;
}

srvocsp_chain *srvocsp_chain_open_pem(const char *chain_path, const char *extra_path,
                                      const srvocsp_params *params)
{
    STACK_OF(X509) *served = NULL, *extra = NULL;
    srvocsp_chain *c = NULL;

    if (chain_path == NULL) {
        srvocsp__set_error(SRVOCSP_E_INVALID_ARG, "srvocsp_chain_open_pem: no chain file");
        return NULL;
    }
    served = sk_X509_new_null();
    extra = sk_X509_new_null();
    if (served == NULL || extra == NULL) {
        srvocsp__set_error(SRVOCSP_E_NOMEM, NULL);
        goto out;
    }
    if (srvocsp__read_pem_certs(chain_path, served) != SRVOCSP_OK ||
        (extra_path != NULL && srvocsp__read_pem_certs(extra_path, extra) != SRVOCSP_OK))
        goto out;
    c = srvocsp_chain_open(served, extra, params);
out:
    sk_X509_pop_free(served, X509_free);
    sk_X509_pop_free(extra, X509_free);
    return c;
}

srvocsp_chain *srvocsp_chain_up_ref(srvocsp_chain *c)
{
    if (c != NULL)
        atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

void srvocsp_chain_close(srvocsp_chain *c)
{
    if (c == NULL || atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    for (size_t i = 0; i < c->n; i++) {
        srvocsp_close(c->handles[i]);
        X509_free(c->certs[i]);
    }
    free(c);
}

size_t srvocsp_chain_length(const srvocsp_chain *c)
{
    return c != NULL ? c->n : 0;
}

X509 *srvocsp_chain_get0_cert(const srvocsp_chain *c, size_t i)
{
    return c != NULL && i < c->n ? c->certs[i] : NULL;
}

srvocsp_handle *srvocsp_chain_get0_handle(const srvocsp_chain *c, size_t i)
{
    return c != NULL && i < c->n ? c->handles[i] : NULL;
}
