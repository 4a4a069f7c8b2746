/* The process-wide reader slots and phase of the cells (see cell.h). */
#include "core/cell.h"

#include <pthread.h>
#include <sched.h>

srvocsp__reader_slot srvocsp__reader_slots[SRVOCSP__READER_SLOTS];
atomic_uint srvocsp__reader_phase;
_Thread_local int srvocsp__tl_slot __attribute__((tls_model("initial-exec"))) = -1;

static atomic_uint g_next_slot;
static pthread_mutex_t g_writers = PTHREAD_MUTEX_INITIALIZER;

int srvocsp__reader_slot_assign(void)
{
    /* More threads than slots share them: counts are sums, still exact. */
    srvocsp__tl_slot = (int)(atomic_fetch_add(&g_next_slot, 1) % SRVOCSP__READER_SLOTS);
    return srvocsp__tl_slot;
}

void srvocsp__grace_period(void)
{
    unsigned p, spins = 0;
    int i;

    pthread_mutex_lock(&g_writers);
    p = atomic_load(&srvocsp__reader_phase) & 1u;
    atomic_store(&srvocsp__reader_phase, p ^ 1u);
    for (i = 0; i < SRVOCSP__READER_SLOTS; i++) {
        while (atomic_load(&srvocsp__reader_slots[i].n[p]) != 0) {
            /* A reader inside its window was preempted: give it the CPU. */
            if (++spins > 64)
                sched_yield();
        }
    }
    pthread_mutex_unlock(&g_writers);
}

void srvocsp__cells_atfork_prepare(void)
{
    pthread_mutex_lock(&g_writers);
}

void srvocsp__cells_atfork_parent(void)
{
    pthread_mutex_unlock(&g_writers);
}

void srvocsp__cells_atfork_child(void)
{
    int i;

    /* Registrations of parent threads caught inside get: they do not exist
     * here, and the next grace period would wait for them forever. */
    for (i = 0; i < SRVOCSP__READER_SLOTS; i++) {
        atomic_store(&srvocsp__reader_slots[i].n[0], 0);
        atomic_store(&srvocsp__reader_slots[i].n[1], 0);
    }
    pthread_mutex_unlock(&g_writers);
}
