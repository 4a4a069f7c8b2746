/*
 * The fleet: processes sharing a store that coordinates (a Redis store,
 * store/store.h) fetch each certificate once between them.  The engine
 * calls these hooks; everything about leases, adoption and notifications
 * lives in fleet.c, and nothing here knows which store it is.
 */
#ifndef SRVOCSP_FLEET_H
#define SRVOCSP_FLEET_H

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

typedef enum srvocsp__fleet_step {
    SRVOCSP__FLEET_FETCH = 0,    /* ask the responder (lease held, or no fleet) */
    SRVOCSP__FLEET_ADOPT = 1,    /* the fleet has a newer verified response: |*der| */
    SRVOCSP__FLEET_WAIT = 2      /* another process is fetching: look again at |*at| */
} srvocsp__fleet_step;

/* The engine thread, without the lock, before a scheduled fetch of |en|
 * from the responder.  For ADOPT, |*der| (malloc'd, the caller frees) is
 * to be delivered as a response from the store. */
SRVOCSP__HIDDEN srvocsp__fleet_step srvocsp__fleet_before_fetch(srvocsp_engine *e,
                                                               srvocsp__entry *en,
                                                               unsigned char **der, size_t *len,
                                                               int64_t *at);
/* The engine thread, without the lock, after a response from the network
 * was published: shares it and gives the lease back. */
SRVOCSP__HIDDEN void srvocsp__fleet_after_fetch(srvocsp_engine *e, srvocsp__entry *en,
                                               const srvocsp_response *snap);
/* The engine thread, with the lock held (released inside while talking to
 * the store): adopts what other processes announced, and saves again what
 * this one holds after the store lost it. */
SRVOCSP__HIDDEN void srvocsp__fleet_service_locked(srvocsp_engine *e);
/* Under e->mu: the descriptors to wait on beside the transfers. */
SRVOCSP__HIDDEN unsigned srvocsp__fleet_fds_locked(srvocsp_engine *e, int *fds, unsigned max);

/* engine.c: hands a verified candidate from the fleet to the engine, as a
 * completion from the store (verified again and compared there); an entry
 * waiting for a transfer slot leaves the queue.  Under e->mu; false when
 * the entry is in flight or dead. */
SRVOCSP__HIDDEN bool srvocsp__engine_adopt_locked(srvocsp__entry *en, const unsigned char *der,
                                                 size_t len);

#endif
