/*
 * A deterministic simulation of a fleet in the field (see sim/README.md).
 * One thread, virtual time, faults drawn from a seed; the real engine
 * (manual engines: srvocsp__engine_step) against simulated responders and
 * an in-memory shared store with the same interface and compare-and-set
 * rule as the Redis one.
 */
#ifndef SRVOCSP_SIM_H
#define SRVOCSP_SIM_H

#include <stdbool.h>
#include <stdint.h>

#include "srvocsp.h"
#include "store/store.h"
#include "testpki.h"

/* ---- sim_rng.c-free: xorshift64* (deterministic per seed) ---- */
typedef struct sim_rng {
    uint64_t s;
} sim_rng;

static inline uint64_t sim_next(sim_rng *r)
{
    uint64_t x = r->s;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545F4914F6CDD1DULL;
}
/* Uniform in [0, 1). */
static inline double sim_unit(sim_rng *r)
{
    return (double)(sim_next(r) >> 11) / (double)(1ULL << 53);
}
static inline int64_t sim_range(sim_rng *r, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(sim_unit(r) * (double)(hi - lo + 1));
}

/* ---- sim_store.c: the in-memory shared store ---- */
typedef struct sim_store_hub sim_store_hub;
sim_store_hub *sim_hub_new(const int64_t *clock);
void sim_hub_free(sim_store_hub *h);
/* Registers the hub as the store of sim:// URLs (one hub at a time). */
void sim_hub_register(sim_store_hub *h);
/* Faults: a failover loses the last |lost| writes and moves every
 * connection's epoch; a store that is down answers every call with an
 * error (the engine fetches as if alone). */
void sim_hub_failover(sim_store_hub *h, unsigned lost);
void sim_hub_set_down(sim_store_hub *h, bool down);
/* A process that uses |url| forked and its child carries on: what was
 * announced to the parent and not yet read is lost, and the child's
 * connection is a new one (its epoch moves). */
void sim_hub_fork(sim_store_hub *h, const char *url);
bool sim_hub_down(const sim_store_hub *h);
uint64_t sim_hub_saves(const sim_store_hub *h);

/* ---- sim_responder.c: CAs, their responders, the transport ---- */
typedef struct sim_world sim_world;

/* A response the simulated CAs produced: what the oracle knows of bytes
 * it finds stapled (no crypto in the oracle). */
typedef struct sim_issued {
    int cert;                    /* index, -1 for none */
    srvocsp_cert_status status;
    int64_t this_update, next_update, produced_at;
} sim_issued;

/* The bytes' record, or NULL when no CA of the simulation produced them. */
const sim_issued *sim_issued_find(sim_world *w, const unsigned char *der, size_t len);

#endif
