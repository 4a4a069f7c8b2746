/*
 * Which srvocsp_gnutls serves a credential.  GnuTLS's retrieve function
 * gets the credential but no pointer of ours, so handshakes look it up
 * here: a fixed open-addressed table of atomic slots, read without a lock
 * (attach and free are rare and take a mutex between themselves).
 */
#include "gnutls_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#define SLOTS 1024 /* credentials attached at once in one process */

typedef struct slot {
    _Atomic(const void *) cred;   /* NULL: never used; TOMB: freed */
    _Atomic(srvocsp_gnutls *) g;
} slot;

static slot table[SLOTS];
static pthread_mutex_t writers = PTHREAD_MUTEX_INITIALIZER;
static const char tomb_mark;
#define TOMB ((const void *)&tomb_mark)

static size_t home(const void *cred)
{
    uintptr_t v = (uintptr_t)cred;

    v ^= v >> 17;
    v *= (uintptr_t)0x9E3779B97F4A7C15ull;
    return (size_t)(v >> 7) % SLOTS;
}

srvocsp_gnutls *srvocsp__gnutls_lookup(const void *cred)
{
    size_t i = home(cred);

    for (size_t n = 0; n < SLOTS; n++, i = (i + 1) % SLOTS) {
        const void *c = atomic_load_explicit(&table[i].cred, memory_order_acquire);

        if (c == cred)
            return atomic_load_explicit(&table[i].g, memory_order_relaxed);
        if (c == NULL)
            return NULL;
    }
    return NULL;
}

srvocsp_error srvocsp__gnutls_register(const void *cred, srvocsp_gnutls *g)
{
    srvocsp_error err = SRVOCSP_E_NOMEM; /* table full */
    size_t i = home(cred), free_at = SLOTS;

    pthread_mutex_lock(&writers);
    for (size_t n = 0; n < SLOTS; n++, i = (i + 1) % SLOTS) {
        const void *c = atomic_load_explicit(&table[i].cred, memory_order_relaxed);

        if (c == cred) {
            err = SRVOCSP_E_UNSUPPORTED; /* attached already */
            free_at = SLOTS;
            break;
        }
        if (c == TOMB && free_at == SLOTS)
            free_at = i;
        if (c == NULL) {
            if (free_at == SLOTS)
                free_at = i;
            break;
        }
    }
    if (free_at < SLOTS) {
        /* g before the key: a reader that sees the key sees g */
        atomic_store_explicit(&table[free_at].g, g, memory_order_relaxed);
        atomic_store_explicit(&table[free_at].cred, cred, memory_order_release);
        err = SRVOCSP_OK;
    }
    pthread_mutex_unlock(&writers);
    return err;
}

void srvocsp__gnutls_unregister(const void *cred)
{
    size_t i = home(cred);

    pthread_mutex_lock(&writers);
    for (size_t n = 0; n < SLOTS; n++, i = (i + 1) % SLOTS) {
        const void *c = atomic_load_explicit(&table[i].cred, memory_order_relaxed);

        if (c == NULL)
            break;
        if (c == cred) {
            /* A tombstone keeps the probe sequences of later keys whole. */
            atomic_store_explicit(&table[i].cred, TOMB, memory_order_release);
            atomic_store_explicit(&table[i].g, NULL, memory_order_relaxed);
            break;
        }
    }
    pthread_mutex_unlock(&writers);
}
