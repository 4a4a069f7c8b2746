/*
 * The verdict: whether a verified response may replace the one held for
 * a certificate.  One pure function, called by every source (the network,
 * the persistence directory, a read-only directory, the fleet's store and
 * its announcements, an offer, the stored response at open) and by the
 * fleet's save, so that no two places can disagree (docs/schedule.md,
 * "Keeping").
 */
#ifndef SRVOCSP_VERDICT_H
#define SRVOCSP_VERDICT_H

#include "internal.h"

typedef enum srvocsp__verdict {
    SRVOCSP__V_REPLACE = 0,   /* serve (or, for unknown, hold) the candidate */
    SRVOCSP__V_UNCHANGED = 1, /* the held response again: not news, not a failure */
    SRVOCSP__V_REFUSE = 2     /* keep the held one; |*err| and |why| say why */
} srvocsp__verdict;

/* Judges the verified candidate |cand| against the held response |held|
 * (NULL: nothing held) at |now|, with the serving rule of |p|.  On REFUSE
 * sets |*err| (E_ROLLBACK, E_STALE, E_STATUS_UNKNOWN, E_SHORT_VALIDITY)
 * and a sentence in |why|; otherwise leaves both alone.  Pure: no clock,
 * no lock, no allocation; any thread. */
/* Whether |r|, held under |p|, may be handed out at |now|: what get
 * checks (servable, thisUpdate not ahead beyond the skew). */
SRVOCSP__HIDDEN bool srvocsp__held_servable(const srvocsp__sched *p, const srvocsp_response *r,
                                           int64_t now);
SRVOCSP__HIDDEN srvocsp__verdict srvocsp__verdict_judge(const srvocsp__sched *p,
                                                       const srvocsp_response *held,
                                                       const srvocsp_response *cand, int64_t now,
                                                       srvocsp_error *err, char *why,
                                                       size_t whylen);

#endif
