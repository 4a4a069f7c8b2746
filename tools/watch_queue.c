/*
 * srvocsp watch: the engine's events on their way to the main loop.
 *
 * The engine calls back on its own thread and must never wait for watch
 * (its transfers stall and time out while it does).  So the callback only
 * folds the event into one record per certificate under a short lock: a
 * later event replaces an unread earlier one, the counters still count
 * both, and the record joins a FIFO of certificates with unread news.  A
 * certificate is in the FIFO at most once, so the FIFO never holds more
 * entries than there are slots: bounded without ever refusing an event.
 * The main loop is woken through a pipe whose both ends are non-blocking:
 * a full pipe already means "wake up".
 *
 * The update_arg of a handle carries its slot and the slot's generation:
 * a callback from a handle that was closed (a renewed or removed
 * certificate) is recognised and dropped, never credited to the next
 * certificate in that slot.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "watch.h"

typedef struct wq_slot {
    uint32_t gen;
    bool queued;
    wq_event ev;
} wq_slot;

struct wqueue {
    pthread_mutex_t mu;
    wq_slot *slots;
    int *fifo;                   /* ring of slot numbers, capacity cap */
    int cap, head, count;
    wq_counts counts;
    int wake[2];
};

#define SLOT_BITS 20 /* MAX_CERTS < 2^20 */

static wqueue *g_queue; /* the callback's queue: one watch per process */

wqueue *wq_new(void)
{
    wqueue *q = calloc(1, sizeof(*q));

    if (q == NULL)
        return NULL;
    if (pipe(q->wake) != 0) {
        free(q);
        return NULL;
    }
    for (int i = 0; i < 2; i++) {
        fcntl(q->wake[i], F_SETFL, O_NONBLOCK);
        fcntl(q->wake[i], F_SETFD, FD_CLOEXEC);
    }
    pthread_mutex_init(&q->mu, NULL);
    g_queue = q;
    return q;
}

void wq_free(wqueue *q)
{
    if (q == NULL)
        return;
    if (g_queue == q)
        g_queue = NULL;
    close(q->wake[0]);
    close(q->wake[1]);
    pthread_mutex_destroy(&q->mu);
    free(q->slots);
    free(q->fifo);
    free(q);
}

int wq_fd(const wqueue *q)
{
    return q->wake[0];
}

bool wq_reserve(wqueue *q, int n)
{
    wq_slot *s;
    int *f, i;
    bool ok = false;

    if (n <= q->cap)
        return true;
    if (n > MAX_CERTS)
        return false;
    pthread_mutex_lock(&q->mu);
    s = realloc(q->slots, (size_t)n * sizeof(*s));
    if (s != NULL)
        q->slots = s;
    f = s ? malloc((size_t)n * sizeof(*f)) : NULL;
    if (f != NULL) {
        /* The ring is unrolled into the new array in order. */
        for (i = 0; i < q->count; i++)
            f[i] = q->fifo[(q->head + i) % q->cap];
        memset(q->slots + q->cap, 0, (size_t)(n - q->cap) * sizeof(*s));
        free(q->fifo);
        q->fifo = f;
        q->head = 0;
        q->cap = n;
        ok = true;
    }
    pthread_mutex_unlock(&q->mu);
    return ok;
}

/* Removes |slot| from the ring (rare: a certificate dropped with news). */
static void unqueue(wqueue *q, int slot)
{
    int i, j, n = 0;

    for (i = 0; i < q->count; i++) {
        j = q->fifo[(q->head + i) % q->cap];
        if (j != slot)
            q->fifo[(q->head + n++) % q->cap] = j;
    }
    q->count = n;
    q->slots[slot].queued = false;
}

void *wq_arm(wqueue *q, int slot)
{
    uint32_t gen;

    pthread_mutex_lock(&q->mu);
    if (q->slots[slot].queued)
        unqueue(q, slot);
    gen = ++q->slots[slot].gen & 0xfffffu;
    pthread_mutex_unlock(&q->mu);
    return (void *)(((uintptr_t)gen << SLOT_BITS) | (uintptr_t)slot);
}

void wq_disarm(wqueue *q, int slot)
{
    pthread_mutex_lock(&q->mu);
    if (q->slots[slot].queued)
        unqueue(q, slot);
    q->slots[slot].gen++;
    pthread_mutex_unlock(&q->mu);
}

void wq_on_update(srvocsp_handle *h, const srvocsp_event *ev, void *arg)
{
    wqueue *q = g_queue;
    uintptr_t tag = (uintptr_t)arg;
    int slot = (int)(tag & ((1u << SLOT_BITS) - 1));
    uint32_t gen = (uint32_t)(tag >> SLOT_BITS);
    bool wake = false;
    wq_slot *s;

    (void)h;
    if (q == NULL)
        return;
    pthread_mutex_lock(&q->mu);
    if (slot >= q->cap || (q->slots[slot].gen & 0xfffffu) != gen)
        goto out; /* a closed handle's last word */
    s = &q->slots[slot];
    switch (ev->type) {
    case SRVOCSP_EVENT_UPDATED: q->counts.responses[SRVOCSP_STATUS_GOOD]++; break;
    case SRVOCSP_EVENT_REVOKED: q->counts.responses[SRVOCSP_STATUS_REVOKED]++; break;
    case SRVOCSP_EVENT_UNKNOWN: q->counts.responses[SRVOCSP_STATUS_UNKNOWN]++; break;
    case SRVOCSP_EVENT_FAILED:
    case SRVOCSP_EVENT_STORE_FAILED:
        q->counts.failures[(unsigned)ev->error < 64 ? (unsigned)ev->error : 63]++;
        break;
    default: break;
    }
    if (s->queued) {
        q->counts.coalesced++;
    } else {
        memset(&s->ev, 0, sizeof(s->ev));
        s->ev.slot = slot;
        s->queued = true;
        q->fifo[(q->head + q->count++) % q->cap] = slot;
        wake = q->count == 1;
    }
    /* A store failure does not replace news of a retrieval. */
    if (ev->type != SRVOCSP_EVENT_STORE_FAILED || s->ev.type == 0 ||
        s->ev.type == SRVOCSP_EVENT_STORE_FAILED) {
        s->ev.type = ev->type;
        s->ev.error = ev->error;
        snprintf(s->ev.reason, sizeof(s->ev.reason), "%s", ev->reason ? ev->reason : "");
    }
    if (ev->type != SRVOCSP_EVENT_STORE_FAILED)
        s->ev.attempted = true;
out:
    pthread_mutex_unlock(&q->mu);
    if (wake && write(q->wake[1], "", 1) < 0) {
        /* full: the loop is being woken already */
    }
}

int wq_take(wqueue *q, wq_event *out, int max, wq_counts *counts)
{
    char buf[256];
    int n = 0;

    while (read(q->wake[0], buf, sizeof(buf)) > 0)
        ;
    pthread_mutex_lock(&q->mu);
    while (n < max && q->count > 0) {
        int slot = q->fifo[q->head];

        q->head = (q->head + 1) % q->cap;
        q->count--;
        q->slots[slot].queued = false;
        out[n++] = q->slots[slot].ev;
    }
    if (counts != NULL) {
        for (int i = 0; i < 3; i++)
            counts->responses[i] += q->counts.responses[i];
        for (int i = 0; i < 64; i++)
            counts->failures[i] += q->counts.failures[i];
        counts->coalesced += q->counts.coalesced;
        memset(&q->counts, 0, sizeof(q->counts));
    }
    /* More than |max| waited: make sure the loop comes back at once. */
    if (q->count > 0 && write(q->wake[1], "", 1) < 0) {
        /* already awake */
    }
    pthread_mutex_unlock(&q->mu);
    return n;
}
