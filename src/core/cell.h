/*
 * A cell publishes one immutable snapshot to any number of lock-free
 * readers while a single writer replaces it.
 *
 * The trap: a reader loads the pointer, the writer swaps it and drops the
 * last reference, and the reader then increments freed memory.  A cell rules
 * this out with two reader counters and a phase (a minimal form of
 * sleepable RCU):
 *
 *   reader: p = phase; readers[p]++; if (phase != p) { readers[p]--; retry }
 *           s = current; s->refs++; readers[p]--
 *   writer: current = new; phase = !phase; wait until readers[old phase] == 0;
 *           drop the old snapshot's published reference.
 *
 * All four shared operations are sequentially consistent.  If the writer's
 * wait reads readers[p] == 0 before a reader's increment, the reader's
 * re-check of |phase| comes later in the single total order and sees the
 * flip, so it retries and registers in the new phase; a reader that passes
 * the re-check is therefore either counted by the writer's wait, or loads
 * |current| after the writer stored the new snapshot.  Either way no reader
 * touches a snapshot after its published reference is dropped.  Readers
 * never wait; the writer waits only for readers already inside their few
 * instructions.  Writers must be serialized by the caller.
 */
#ifndef SRVOCSP_CELL_H
#define SRVOCSP_CELL_H

#include "internal.h"

#include <sched.h>

typedef struct srvocsp__cell {
    _Atomic(srvocsp_response *) current;
    atomic_uint phase;
    atomic_size_t readers[2];
} srvocsp__cell;

static inline void srvocsp__cell_init(srvocsp__cell *c)
{
    atomic_init(&c->current, NULL);
    atomic_init(&c->phase, 0);
    atomic_init(&c->readers[0], 0);
    atomic_init(&c->readers[1], 0);
}

/* Returns a new reference to the published snapshot, or NULL. */
static inline srvocsp_response *srvocsp__cell_acquire(srvocsp__cell *c)
{
    srvocsp_response *s;
    unsigned p;

    for (;;) {
        p = atomic_load(&c->phase) & 1u;
        atomic_fetch_add(&c->readers[p], 1);
        if ((atomic_load(&c->phase) & 1u) == p)
            break;
        atomic_fetch_sub(&c->readers[p], 1);
    }
    s = atomic_load(&c->current);
    if (s != NULL)
        atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    atomic_fetch_sub(&c->readers[p], 1);
    return s;
}

/* Borrow the published pointer without a reference: only for the writer
 * (who holds the published reference) . */
static inline srvocsp_response *srvocsp__cell_peek(srvocsp__cell *c)
{
    return atomic_load_explicit(&c->current, memory_order_acquire);
}

/* Publishes |s| (takes over the caller's reference; may be NULL) and drops
 * the previous snapshot's published reference once no reader can still be
 * about to take one. */
static inline void srvocsp__cell_publish(srvocsp__cell *c, srvocsp_response *s)
{
    srvocsp_response *old = atomic_exchange(&c->current, s);
    unsigned p = atomic_load(&c->phase) & 1u;
    unsigned spins = 0;

    atomic_store(&c->phase, p ^ 1u);
    while (atomic_load(&c->readers[p]) != 0) {
        /* A reader inside its window was preempted: give it the CPU. */
        if (++spins > 64)
            sched_yield();
    }
    srvocsp_response_free(old);
}

#endif
