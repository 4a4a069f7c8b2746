/* Pieces of the oracle that are pure functions, apart so a breach the
 * simulator reported can be replayed as a unit test. */
#ifndef SIM_ORACLE_H
#define SIM_ORACLE_H

#include <stdbool.h>
#include <stdint.h>

#include "srvocsp.h"

/* The strictest client's rule on a host whose clock reads |hc|: thisUpdate
 * at most |skew| ahead, at least |min_validity| left before nextUpdate or
 * the trust horizon (|horizon| after thisUpdate), whichever is first. */
bool sim_servable(int64_t tu, int64_t nu, int64_t hc, int64_t skew, int64_t min_validity,
                  int64_t horizon);

/* Whether publishing a response (|tu|, |status|) over the one published
 * before (|held_tu|, |held_nu|, |held_status|; held_tu 0 for none), at
 * host clock |hc|, rolls back: a good response not newer than a held
 * revoked one (whatever the clock: the verdict's rule 3), or older than a
 * held good one that could still be served (rule 4: an older one may
 * replace one that cannot, after the clock went back or the CA's ran
 * ahead).  A held unknown response is never served and gives way.  Judged
 * at the moment of the replacement: a response the oracle never saw
 * stapled, or one that becomes servable again later, is judged as the
 * engine saw it then. */
bool sim_rollback(int64_t held_tu, int64_t held_nu, srvocsp_cert_status held_status, int64_t tu,
                  srvocsp_cert_status status, int64_t hc, int64_t skew, int64_t min_validity,
                  int64_t horizon);

#endif
