/*
 * The fleet's table (fleet_table.c): which entries each shared store
 * serves, by store name.  Only data structure, below the entries; the
 * fleet's logic is engine/fleet.h.
 */
#ifndef SRVOCSP_FLEET_TABLE_H
#define SRVOCSP_FLEET_TABLE_H

#include "engine/engine.h"

/* srvocsp_open, before the engine lock: the shared store named by the
 * params (*out NULL when none).  False with the last error set when the
 * URL is bad or the store refused us. */
SRVOCSP__HIDDEN bool srvocsp__fleet_open_store(const srvocsp_params *p, srvocsp__store **out);
/* Under e->mu, for a new entry: takes |*st| (sets it NULL).  False when
 * out of memory (the entry then simply does without the fleet). */
SRVOCSP__HIDDEN bool srvocsp__fleet_attach_locked(srvocsp__entry *en, srvocsp__store **st);
/* Under e->mu, when the entry is freed. */
SRVOCSP__HIDDEN void srvocsp__fleet_detach_locked(srvocsp__entry *en);

/* fleet_table.c: which entries each shared store serves. */
#define SRVOCSP__FLEET_STORES 8

typedef struct srvocsp__fleet_store {
    srvocsp__store *st;         /* the fleet's reference */
    uint64_t epoch;
    int fd;
} srvocsp__fleet_store;

struct srvocsp__fleet {
    srvocsp__entry **buckets;   /* by store name, chained through fleet_next */
    size_t n_buckets, n;
    srvocsp__fleet_store stores[SRVOCSP__FLEET_STORES];
    unsigned n_stores;
    bool servicing;             /* the engine thread is in service (lock dropped) */
};

/* Under e->mu: the live entry of |f| kept under |name| in |st|, or NULL. */
SRVOCSP__HIDDEN srvocsp__entry *srvocsp__fleet_find_locked(struct srvocsp__fleet *f,
                                                          srvocsp__store *st, const char *name);
/* Frees |f| and its stores' references. */
SRVOCSP__HIDDEN void srvocsp__fleet_free(struct srvocsp__fleet *f);

#endif
