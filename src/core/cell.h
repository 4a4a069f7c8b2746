/*
 * A cell publishes one immutable snapshot to any number of lock-free
 * readers while a single writer replaces it.
 *
 * The trap: a reader loads the pointer, the writer swaps it and drops the
 * last reference, and the reader then increments freed memory.  Readers
 * therefore register while they take their reference, and a writer drops
 * the old snapshot's published reference only after every reader that might
 * have loaded it has finished (a minimal form of RCU):
 *
 *   reader: p = phase; slot.n[p]++; if (phase != p) { slot.n[p]--; retry }
 *           s = cell.current; s->refs++; slot.n[p]--
 *   writer: cell.current = new; [mutex] phase = !phase;
 *           wait until every slot's n[old phase] == 0 [/mutex];
 *           drop the old snapshot's published reference.
 *
 * All shared operations are sequentially consistent.  If the writer's read
 * of a slot's n[p] comes before a reader's increment in the single total
 * order, the reader's re-check of |phase| comes later and sees the flip, so
 * it retries and registers in the new phase; a reader that passes the
 * re-check is either seen by the writer's wait, or loads |current| after
 * the writer stored the new snapshot.  Either way no reader touches a
 * snapshot after its published reference is dropped.
 *
 * The registrations live in process-wide slots, one cache line each, a
 * thread always using the same slot: a reader writes only its own line and
 * the snapshot's count, so readers on different cores do not take turns
 * owning the cell.  The phase is process-wide too; writers flip it one at a
 * time and wait only for readers already inside their few instructions.
 */
#ifndef SRVOCSP_CELL_H
#define SRVOCSP_CELL_H

#include "internal.h"

#define SRVOCSP__READER_SLOTS 64

typedef struct srvocsp__reader_slot {
    atomic_size_t n[2];
} __attribute__((aligned(64))) srvocsp__reader_slot;

SRVOCSP__HIDDEN extern srvocsp__reader_slot srvocsp__reader_slots[SRVOCSP__READER_SLOTS];
SRVOCSP__HIDDEN extern atomic_uint srvocsp__reader_phase;
SRVOCSP__HIDDEN extern _Thread_local int srvocsp__tl_slot
    __attribute__((tls_model("initial-exec")));
/* Gives the calling thread its slot (first get on a thread). */
SRVOCSP__HIDDEN int srvocsp__reader_slot_assign(void);
/* Waits until no reader can still hold a pointer loaded before now. */
SRVOCSP__HIDDEN void srvocsp__grace_period(void);
/* fork(): the writers' lock is held across fork; the child also clears
 * registrations of parent threads that do not exist in it. */
SRVOCSP__HIDDEN void srvocsp__cells_atfork_prepare(void);
SRVOCSP__HIDDEN void srvocsp__cells_atfork_parent(void);
SRVOCSP__HIDDEN void srvocsp__cells_atfork_child(void);

typedef struct srvocsp__cell {
    _Atomic(srvocsp_response *) current;
} srvocsp__cell;

static inline void srvocsp__cell_init(srvocsp__cell *c)
{
    atomic_init(&c->current, NULL);
}

/* Returns a new reference to the published snapshot, or NULL. */
static inline srvocsp_response *srvocsp__cell_acquire(srvocsp__cell *c)
{
    int i = srvocsp__tl_slot;
    srvocsp__reader_slot *slot;
    srvocsp_response *s;
    unsigned p;

    if (__builtin_expect(i < 0, 0))
        i = srvocsp__reader_slot_assign();
    slot = &srvocsp__reader_slots[i];
    for (;;) {
        p = atomic_load(&srvocsp__reader_phase) & 1u;
        atomic_fetch_add(&slot->n[p], 1);
        if ((atomic_load(&srvocsp__reader_phase) & 1u) == p)
            break;
        atomic_fetch_sub(&slot->n[p], 1);
    }
    s = atomic_load(&c->current);
    if (s != NULL)
        atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    atomic_fetch_sub(&slot->n[p], 1);
    return s;
}

/* Borrow the published pointer without a reference: only for the writer
 * (who holds the published reference). */
static inline srvocsp_response *srvocsp__cell_peek(srvocsp__cell *c)
{
    return atomic_load_explicit(&c->current, memory_order_acquire);
}

/* Publishes |s| (takes over the caller's reference; may be NULL) and drops
 * the previous snapshot's published reference once no reader can still be
 * about to take one.  Writers of one cell must be serialized by the caller. */
static inline void srvocsp__cell_publish(srvocsp__cell *c, srvocsp_response *s)
{
    srvocsp_response *old = atomic_exchange(&c->current, s);

    if (old != NULL) {
        srvocsp__grace_period();
        srvocsp_response_free(old);
    }
}

#endif
