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

/* Lease tokens: hex of 16 random bytes. */
#define SRVOCSP__LEASE_TOKEN_LEN 32

typedef enum srvocsp__lease {
    SRVOCSP__LEASE_HELD = 0,  /* ours until released or expired */
    SRVOCSP__LEASE_BUSY = 1,  /* another process holds it */
    SRVOCSP__LEASE_ERROR = 2  /* the store could not say */
} srvocsp__lease;

typedef void (*srvocsp__notify_fn)(void *arg, const char *name, const unsigned char *der,
                                   size_t len);

typedef struct srvocsp__store_ops {
    /* Reads the response stored under |name| into a malloc'd buffer.
     * SRVOCSP_OK with |*der| NULL when nothing is stored; E_STORE with a
     * reason when unreadable, not a regular file, or over |cap| bytes.
     * |*version| identifies the stored bytes (changes on every save). */
    srvocsp_error (*load)(srvocsp__store *s, const char *name, size_t cap, unsigned char **der,
                          size_t *len, uint64_t *version, char *why, size_t whylen);
    /* The next two are the local store's (the directory), which the
     * engine reads and writes as its own; the fleet's store leaves them
     * NULL (the engine uses save_if and the notifications below). */
    /* Cheap check: the current version under |name|, 0 if none. */
    uint64_t (*version)(srvocsp__store *s, const char *name);
    /* Replaces the response under |name| atomically; on failure sets
     * |*err_no| and a reason.  NULL for a store shared across machines,
     * which is written only through save_if below. */
    srvocsp_error (*save)(srvocsp__store *s, const char *name, const unsigned char *der,
                          size_t len, int *err_no, char *why, size_t whylen);
    void (*free)(srvocsp__store *s);
    /* Optional (NULL: none).  Takes, without waiting, the right to ask the
     * responder for |name| among the processes sharing the store: 1 with
     * |*token| to give back with unlease (after the save), 0 when another
     * process holds it (it is fetching now: its save will follow), -1 when
     * no lease can be had here (fetch anyway).  A holder that dies gives
     * it back. */
    int (*lease)(srvocsp__store *s, const char *name, int *token);
    void (*unlease)(srvocsp__store *s, int token);

    /* Coordination of processes on several machines (a networked store;
     * the engine's fleet logic, engine/fleet.c).  Every member below may be
     * NULL.  Unlike |lease| above, held by a descriptor that dies with its
     * process, this lease is a token with a time to live: a holder that
     * dies, hangs or loses the network keeps it only until it expires. */

    /* Takes the short per-certificate lease that says "I am fetching this
     * one": HELD (|token| filled, release it with lease_release), BUSY
     * (another holder; |*ttl_left_ms| how long it has left, -1 unknown) or
     * ERROR (store unreachable: the caller fetches as if alone). */
    srvocsp__lease (*lease_acquire)(srvocsp__store *s, const char *name, uint32_t ttl_ms,
                                    char token[SRVOCSP__LEASE_TOKEN_LEN + 1],
                                    int64_t *ttl_left_ms, char *why, size_t whylen);
    /* Gives the lease back if |token| still holds it (compare-and-delete:
     * a lease that expired and was taken by another is left alone). */
    void (*lease_release)(srvocsp__store *s, const char *name, const char *token);
    /* Saves |der| if the response stored under |name| is still the one the
     * caller judged: |expect| is the hex SHA-1 of its bytes, or NULL for
     * nothing stored (a value of another type counts as nothing).  The
     * store decides nothing else: whether |der| should replace what is
     * there is the verdict's (core/verdict.c), computed by the caller on
     * what it loaded (engine/fleet.c, srvocsp__fleet_save).  |this_update|
     * and |revoked| are kept beside the bytes for readers; |expires| (Unix
     * s) ends the stored entry's life (an expired response is not saved).
     * |*stored| false: the value moved since the caller loaded it.  Other
     * processes are told through the notification below. */
    srvocsp_error (*save_if)(srvocsp__store *s, const char *name, const unsigned char *der,
                             size_t len, int64_t this_update, int64_t expires, bool revoked,
                             const char *expect, bool *stored, char *why, size_t whylen);
    /* The descriptor to poll for change notifications (-1 when there is
     * none right now; may change after a reconnect). */
    int (*notify_fd)(srvocsp__store *s);
    /* Without blocking, calls |fn| for every response another process
     * saved since the last call, with its name and, when the announcement
     * carried them, its bytes (|der| NULL otherwise: load it); returns how
     * many.  |der| is borrowed for the call and untrusted like any load. */
    size_t (*notify_drain)(srvocsp__store *s, srvocsp__notify_fn fn, void *arg);
    /* Deletes what is stored under |name| if it is still exactly |der|, so
     * that a reader that rejected it lets the next good save through.  With
     * |der| NULL: deletes a value that cannot be read as a response at all
     * (wrong type, empty, or more than |len| bytes). */
    void (*discard)(srvocsp__store *s, const char *name, const unsigned char *der, size_t len);
    /* A number that moves whenever the store may have lost saves or
     * notifications (a reconnect, a restarted server): then it is worth
     * saving again what one holds. */
    uint64_t (*epoch)(srvocsp__store *s);
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

/* The fleet's shared store at |url| (store_shared.c picks the kind from
 * the scheme; today every kind is Redis, below), keys under |prefix|.
 * NULL with the last error set, as srvocsp__store_redis_new. */
SRVOCSP__HIDDEN srvocsp__store *srvocsp__store_open_shared(const char *url, const char *prefix);
/* Makes srvocsp__store_open_shared open URLs of |scheme| ("sim" for
 * sim://...) with |fn| (a new reference, or NULL with the last error set)
 * instead of Redis; NULL |fn| forgets it.  For simulations. */
typedef srvocsp__store *(*srvocsp__store_opener)(const char *url, const char *prefix, void *arg);
SRVOCSP__HIDDEN void srvocsp__store_register(const char *scheme, srvocsp__store_opener fn,
                                            void *arg);

/* A store on Redis: |url| is redis://[user:password@]host:port[/db],
 * unix:///path/to/redis.sock[?db=N] or
 * redis-sentinel://[user:password@]host[:port][,host[:port]...][/db]#MASTER
 * (redis_url.h has the options); every key starts with |prefix| (NULL:
 * "srvocsp:").  Stores of one process with the same URL and prefix share
 * one connection (and one subscription); each call returns a new reference
 * that ->free drops.  NULL with the last error set (E_INVALID_ARG naming
 * the fault of a bad URL or unknown scheme, E_STORE for a refused AUTH or
 * SELECT).  A Redis that cannot be reached is not an error: the store
 * reports errors per call and tries again after a backoff. */
SRVOCSP__HIDDEN srvocsp__store *srvocsp__store_redis_new(const char *url, const char *prefix);

/* The store name of |leaf| issued by |issuer| into |out| (65 bytes). */
SRVOCSP__HIDDEN bool srvocsp__store_name(X509 *leaf, X509 *issuer, char *out);
/* The same name from the SHA-256 of the issuer's public key bits (an
 * issuer's hashes kept: srvocsp__issuer_ids.key_sha256). */
SRVOCSP__HIDDEN bool srvocsp__store_name_from(const unsigned char issuer_key_sha256[32], X509 *leaf,
                                             char *out);

#endif
