/*
 * The fleet: processes sharing a store that coordinates (a Redis store,
 * store/store.h) fetch each certificate once between them.  The engine
 * calls these hooks; everything about leases, adoption and notifications
 * lives in fleet.c, and nothing here knows which store it is.
 */
#ifndef SRVOCSP_FLEET_H
#define SRVOCSP_FLEET_H

#include "engine/fleet_table.h"

/* fleet.c: the logic. */
typedef enum srvocsp__fleet_step {
    SRVOCSP__FLEET_FETCH = 0,    /* ask the responder (lease held, or no fleet) */
    SRVOCSP__FLEET_ADOPT = 1,    /* the fleet has a verified response the verdict takes: |*snap| */
    SRVOCSP__FLEET_WAIT = 2,     /* another process is fetching: look again at |*at| */
    SRVOCSP__FLEET_NOTHING = 3   /* a look only, and nothing to take: plan from what is held */
} srvocsp__fleet_step;

/* The engine thread, without the lock, before a scheduled fetch of |en|
 * (holding |held|, may be NULL).  For ADOPT, |*snap| (verified, judged
 * against |held|; the caller owns it) is the answer.  With |look_only|
 * the fleet's copy is read and judged, and never a fetch: ADOPT or
 * NOTHING. */
SRVOCSP__HIDDEN srvocsp__fleet_step srvocsp__fleet_before_fetch(srvocsp_engine *e,
                                                               srvocsp__entry *en,
                                                               const srvocsp_response *held,
                                                               bool look_only,
                                                               srvocsp_response **snap,
                                                               int64_t *at);
/* The engine thread, without the lock, after a response from the network
 * was judged (|snap| when it was published, else NULL): shares it and
 * gives the lease back. */
SRVOCSP__HIDDEN void srvocsp__fleet_after_fetch(srvocsp_engine *e, srvocsp__entry *en,
                                               const srvocsp_response *snap);
/* The engine thread, with the lock held (released inside while talking to
 * the store): adopts what other processes announced, and saves again what
 * this one holds after the store lost it. */
SRVOCSP__HIDDEN void srvocsp__fleet_service_locked(srvocsp_engine *e);
/* The engine thread, with the lock held (released inside): an
 * announcement that came while |en| was in flight is judged now that its
 * own result is in, so one announcement is enough whatever it crossed. */
SRVOCSP__HIDDEN void srvocsp__fleet_pending_locked(srvocsp_engine *e, srvocsp__entry *en);
/* Under e->mu: the descriptors to wait on beside the transfers. */
SRVOCSP__HIDDEN unsigned srvocsp__fleet_fds_locked(srvocsp_engine *e, int *fds, unsigned max);

/* Saves |ours| (a verified response for |leaf| by |issuer|) to the shared
 * store |st| under |name| unless what |st| holds there is what the
 * verdict (with |sched| at pol->now) would keep instead: the store never
 * decides, it only compares and sets the bytes the verdict was computed
 * on, and a value that changed meanwhile is read and judged again.  A
 * stored value that does not verify is replaced.  |seen| (may be NULL) is
 * a response the caller read from |st| and verified a moment ago: found
 * there byte for byte, it is judged without being verified again.
 * |*stored| says whether |ours| was written (and announced).  E_STORE
 * when the store failed. */
SRVOCSP__HIDDEN srvocsp_error srvocsp__fleet_save(srvocsp__store *st, const char *name,
                                                 const srvocsp_response *ours,
                                                 const srvocsp_response *seen, X509 *leaf,
                                                 X509 *issuer, const srvocsp__policy *pol,
                                                 const srvocsp__sched *sched, size_t cap,
                                                 bool *stored, char *why, size_t whylen);

#endif
