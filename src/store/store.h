/*
 * Where accepted responses are kept between runs and shared between
 * processes.  The engine sees only this interface; the directory store is
 * one implementation, a networked one (Redis, for fleets) another.
 *
 * Everything a store returns is untrusted: the engine verifies a loaded
 * response exactly as one from the network.
 */
#ifndef SRVOCSP_STORE_H
#define SRVOCSP_STORE_H

#include "internal.h"

/* Identity of a stored response: hex of SHA-256 over the issuer's key hash
 * (SHA-256) and the serial, independent of the CertID hash algorithm. */
#define SRVOCSP__STORE_NAME_LEN 64

typedef struct srvocsp__store srvocsp__store;

typedef struct srvocsp__store_ops {
    /* Reads the response stored under |name| into a malloc'd buffer.
     * SRVOCSP_OK with |*der| NULL when nothing is stored; E_STORE with a
     * reason when unreadable, not a regular file, or over |cap| bytes.
     * |*version| identifies the stored bytes (changes on every save). */
    srvocsp_error (*load)(srvocsp__store *s, const char *name, size_t cap, unsigned char **der,
                          size_t *len, uint64_t *version, char *why, size_t whylen);
    /* Cheap check: the current version under |name|, 0 if none. */
    uint64_t (*version)(srvocsp__store *s, const char *name);
    /* Replaces the response under |name| atomically; on failure sets
     * |*err_no| and a reason. */
    srvocsp_error (*save)(srvocsp__store *s, const char *name, const unsigned char *der,
                          size_t len, int *err_no, char *why, size_t whylen);
    /* Calls |fn| for every stored name; returns how many. */
    size_t (*list)(srvocsp__store *s, void (*fn)(void *arg, const char *name), void *arg);
    void (*free)(srvocsp__store *s);
    /* Optional (NULL: none).  Takes, without waiting, the right to ask the
     * responder for |name| among the processes sharing the store: 1 with
     * |*token| to give back with unlease (after the save), 0 when another
     * process holds it (it is fetching now: its save will follow), -1 when
     * no lease can be had here (fetch anyway).  A holder that dies gives
     * it back. */
    int (*lease)(srvocsp__store *s, const char *name, int *token);
    void (*unlease)(srvocsp__store *s, int token);
} srvocsp__store_ops;

struct srvocsp__store {
    const srvocsp__store_ops *ops;
};

/* A store on a directory (created 0755 if missing); NULL with the last
 * error set when it cannot be used at all. */
SRVOCSP__HIDDEN srvocsp__store *srvocsp__store_dir_new(const char *dir);
/* Removes temporary files left in |dir| by writers that died before their
 * rename (older than 10 minutes at |now|); returns how many.  The first
 * srvocsp__store_dir_new of a process for a directory does it. */
SRVOCSP__HIDDEN size_t srvocsp__store_dir_sweep(const char *dir, int64_t now);
/* srvocsp_cleanup: forget which directories were swept. */
SRVOCSP__HIDDEN void srvocsp__store_dir_forget_sweeps(void);

/* The store name of |leaf| issued by |issuer| into |out| (65 bytes). */
SRVOCSP__HIDDEN bool srvocsp__store_name(X509 *leaf, X509 *issuer, char *out);

#endif
