/*
 * The certificates mod_srvocsp staples: one srvocsp handle per certificate
 * mod_ssl primes, found again by mod_ssl's id (the certificate's SHA-1) on
 * every handshake.
 *
 * A generation is the set of handles of one configuration.  The parent
 * builds the next one while the previous one is still open, so the new
 * handles share the running retrievals (libsrvocsp keeps one per
 * certificate) and hold the current responses before the old ones close.
 * Children are forked with the serving generation and only ever read it.
 */
#ifndef MOD_SRVOCSP_CERTS_H
#define MOD_SRVOCSP_CERTS_H

#include "httpd.h"

#include <srvocsp.h>

#define MOD_SRVOCSP_ID_LEN 20 /* SHA-1, as mod_ssl computes it */

typedef struct mod_srvocsp_opts {
    const char *directory;    /* NULL: none */
    const char *responder;    /* NULL: the certificate's AIA */
    const char *store_url;    /* NULL: none */
    uint32_t min_validity_s;
    uint32_t timeout_ms;
} mod_srvocsp_opts;

typedef struct mod_srvocsp_cert {
    unsigned char id[MOD_SRVOCSP_ID_LEN];
    srvocsp_handle *h; /* a reference the generation owns */
    char name[256];
    uint32_t timeout_ms;
    /* What the retrieval was opened with (directory, responder, store,
     * timeout), malloc'd, to tell a restart that it keeps them. */
    char *fetch_opts;
} mod_srvocsp_cert;

typedef struct mod_srvocsp_gen {
    mod_srvocsp_cert *v; /* malloc'd: outlives any Apache pool */
    size_t n, cap;
} mod_srvocsp_gen;

/* The module's engine (made on first use; NULL if that failed). */
srvocsp_engine *mod_srvocsp_engine(void);
/* Stops the engine's thread and frees it with every handle still open on
 * it; the generations' handles are invalid afterwards.  Safe if none. */
void mod_srvocsp_engine_stop(void);

/* Takes the certificate |pem| (the leaf, then its issuer) under |id| into
 * |gen|: opens its handle (asynchronously: first fetches run side by side)
 * or, when |gen| already has it, shares it.  When |prev| (the generation a
 * restart replaces, may be NULL) held the certificate with other fetch
 * settings, a notice says the running retrieval keeps them.  Returns OK when taken,
 * DECLINED when the certificate is not stapled by the module (no OCSP URL,
 * no issuer: logged at info, once per certificate and generation), or
 * HTTP_INTERNAL_SERVER_ERROR after logging an error at emerg (a bad
 * SrvOcspStore, no memory). */
int mod_srvocsp_gen_add(mod_srvocsp_gen *gen, const mod_srvocsp_gen *prev, server_rec *s,
                        const char *id, apr_size_t id_len, const char *pem,
                        const mod_srvocsp_opts *o);

/* Sorts |gen| for mod_srvocsp_gen_find. */
void mod_srvocsp_gen_seal(mod_srvocsp_gen *gen);
/* The handle for |id| in a sealed |gen|, or NULL.  No lock, no allocation. */
srvocsp_handle *mod_srvocsp_gen_find(const mod_srvocsp_gen *gen, const char *id,
                                     apr_size_t id_len);
/* Closes every handle of |gen| and empties it. */
void mod_srvocsp_gen_close(mod_srvocsp_gen *gen);
/* Forgets |gen|'s handles without closing them (after the engine that held
 * them was freed). */
void mod_srvocsp_gen_forget(mod_srvocsp_gen *gen);

/* Waits until every certificate of |gen| has a response or ended its first
 * attempt, at most the largest SrvOcspUrlTimeout among them plus a little,
 * then logs at info what each will staple. */
void mod_srvocsp_gen_first_fetch(mod_srvocsp_gen *gen, server_rec *s);

#endif
