/*
 * The TLS bindings' per-handshake counters, without a locked instruction.
 *
 * Every handshake counts one or two events.  A counter line shared by
 * handshaking threads would pass between their cores on every handshake,
 * and even a line only one thread writes costs a locked add (about a third
 * of a status callback).  So a thread claims a slot of its own, and each
 * context keeps one shard of counters per slot: the slot's owner is the
 * only writer of its shard and adds with a plain load and store.  Threads
 * beyond SRVOCSP__COUNTER_SLOTS share one more shard with atomic adds.
 * Readers (get_stats) sum every shard with relaxed loads.
 *
 * A slot comes back when its thread exits (a pthread key destructor: the
 * library must not be unloaded while such threads run, as for the proxies
 * of core/proxy.h) and in a forked child for the threads it does not have.
 * Its counts stay in each shard and its next owner adds to them, ordered
 * after the last owner's stores by the claim.
 *
 * Header-only, like staple_rules.h: libsrvocsp-gnutls links the shared
 * library and cannot see its internal symbols, so each binding keeps its
 * own table of slots.
 */
#ifndef SRVOCSP_TLS_STAPLE_COUNTERS_H
#define SRVOCSP_TLS_STAPLE_COUNTERS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define SRVOCSP__COUNTER_SLOTS 64
/* Shards per context: one per slot, and the shared one. */
#define SRVOCSP__COUNTER_SHARDS (SRVOCSP__COUNTER_SLOTS + 1)

static atomic_bool srvocsp__slot_taken[SRVOCSP__COUNTER_SLOTS];
static pthread_key_t srvocsp__slot_key;
static pthread_once_t srvocsp__slot_once = PTHREAD_ONCE_INIT;
static bool srvocsp__slot_key_ok;
/* -1: none claimed yet; SRVOCSP__COUNTER_SLOTS: the shared shard. */
static _Thread_local int srvocsp__tl_slot __attribute__((tls_model("initial-exec"))) = -1;

static void srvocsp__slot_release(void *arg)
{
    srvocsp__tl_slot = SRVOCSP__COUNTER_SLOTS; /* later counts on this thread: shared */
    atomic_store_explicit(&srvocsp__slot_taken[(intptr_t)arg - 1], false, memory_order_release);
}

static void srvocsp__slot_atfork_child(void)
{
    for (int i = 0; i < SRVOCSP__COUNTER_SLOTS; i++)
        if (i != srvocsp__tl_slot)
            atomic_store_explicit(&srvocsp__slot_taken[i], false, memory_order_relaxed);
}

static void srvocsp__slot_make_key(void)
{
    srvocsp__slot_key_ok = pthread_key_create(&srvocsp__slot_key, srvocsp__slot_release) == 0 &&
                           pthread_atfork(NULL, NULL, srvocsp__slot_atfork_child) == 0;
}

static int srvocsp__slot_claim(void)
{
    pthread_once(&srvocsp__slot_once, srvocsp__slot_make_key);
    srvocsp__tl_slot = SRVOCSP__COUNTER_SLOTS;
    if (!srvocsp__slot_key_ok)
        return srvocsp__tl_slot; /* it could not be given back */
    for (int i = 0; i < SRVOCSP__COUNTER_SLOTS; i++) {
        bool no = false;

        if (atomic_load_explicit(&srvocsp__slot_taken[i], memory_order_relaxed) ||
            !atomic_compare_exchange_strong_explicit(&srvocsp__slot_taken[i], &no, true,
                                                     memory_order_acquire, memory_order_relaxed))
            continue;
        if (pthread_setspecific(srvocsp__slot_key, (void *)(intptr_t)(i + 1)) != 0) {
            atomic_store_explicit(&srvocsp__slot_taken[i], false, memory_order_release);
            return srvocsp__tl_slot;
        }
        return srvocsp__tl_slot = i;
    }
    return srvocsp__tl_slot;
}

/* The calling thread's shard index, 0..SRVOCSP__COUNTER_SHARDS - 1. */
static inline int srvocsp__counter_slot(void)
{
    int s = srvocsp__tl_slot;

    return __builtin_expect(s >= 0, 1) ? s : srvocsp__slot_claim();
}

/* Adds one to |c|, a counter in the calling thread's shard. */
static inline void srvocsp__counter_add(atomic_uint_fast64_t *c)
{
    if (__builtin_expect(srvocsp__tl_slot < SRVOCSP__COUNTER_SLOTS, 1))
        atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                              memory_order_relaxed);
    else
        atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

#endif
