/* Pieces of the oracle that are pure functions of the timeline, apart so
 * a breach the simulator reported can be replayed as a unit test. */
#ifndef SIM_ORACLE_H
#define SIM_ORACLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sim_world.h"

/* The lowest and highest reading of process |proc|'s wall clock over the
 * true times [from, to], from the clock steps in |ev| (sorted by time; a
 * step's b is the clock's error from then on, 0 when set right). */
void sim_host_clock_range(const sim_event *ev, size_t n, int proc, int64_t from, int64_t to,
                          int64_t *lo, int64_t *hi);

/* Whether a response with |tu| and |nu| could be stapled at every host
 * clock reading in [lo, hi]: thisUpdate at most |skew| ahead, at least
 * |min_validity| left, within |horizon| of thisUpdate.  A process that
 * replaced it with an older one when this was false at some moment did
 * what docs/schedule.md allows (rule 4 of the verdict). */
bool sim_servable_throughout(int64_t tu, int64_t nu, int64_t lo, int64_t hi, int64_t skew,
                             int64_t min_validity, int64_t horizon);

#endif
