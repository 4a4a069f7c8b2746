/*
 * Engines' lives (lifecycle.c): the process-wide default engine, and the
 * restart of an engine in a forked child.  For the public API's files
 * (handle.c) only: the engine's own files never call up into lifecycle.c.
 */
#ifndef SRVOCSP_LIFECYCLE_H
#define SRVOCSP_LIFECYCLE_H

#include "engine/engine.h"

SRVOCSP__HIDDEN srvocsp_engine *srvocsp__default_engine(void);
/* Restarts the engine in a forked child (takes the lock). */
SRVOCSP__HIDDEN void srvocsp__engine_restart(srvocsp_engine *e);
/* After fork() the child's engine restarts on its first call: one relaxed
 * load, not taken otherwise. */
static inline void srvocsp__engine_check_fork(srvocsp_engine *e)
{
    if (__builtin_expect(atomic_load_explicit(&e->restart_pending, memory_order_relaxed), 0))
        srvocsp__engine_restart(e);
}

/* The child's side of fork() for one engine, as the atfork handler does it
 * for every engine (with the child's pid as |salt|): transfers the parent
 * started are forgotten, the parent's leases are not ours, the schedule is
 * spread, the thread restarts on the next call.  The simulator calls it
 * for one manual engine to model a process that forked and whose child
 * carries on; nothing else does. */
SRVOCSP__HIDDEN void srvocsp__engine_forked(srvocsp_engine *e, uint64_t salt);

/* An engine without a thread of its own, for deterministic simulation
 * (sim/): its owner moves the injected clock and calls
 * srvocsp__engine_step (loop.c), on one thread.  Opens on it must be
 * ASYNC. */
SRVOCSP__HIDDEN srvocsp_engine *srvocsp__engine_new_manual(const srvocsp_engine_config *cfg);

#endif
