/* Engine internals: entries (one per certificate), handles, the engine. */
#ifndef SRVOCSP_ENGINE_H
#define SRVOCSP_ENGINE_H

#include "core/cell.h"
#include "engine/dirsync.h"
#include "internal.h"
#include "store/store.h"

#include <pthread.h>

typedef struct srvocsp__entry srvocsp__entry;
typedef struct srvocsp__host srvocsp__host;

/* Responders we talk to, for per-host concurrency. */
struct srvocsp__host {
    srvocsp__host *next;
    unsigned in_flight;
    srvocsp__entry *ready_head, *ready_tail; /* waiting to start, in order */
    char name[]; /* scheme://host:port */
};

/* One certificate: shared by every handle opened for the same CertID. */
struct srvocsp__entry {
    /* Hot: read by get without any lock. */
    srvocsp__cell cell __attribute__((aligned(64)));

    srvocsp_engine *eng;
    unsigned refs;               /* handles + engine work; under eng->mu */
    X509 *leaf;
    X509 *issuer;
    srvocsp__request req;
    srvocsp__sched sched;
    srvocsp__policy pol;         /* skew and max age; now set per check */
    uint32_t url_timeout_ms;
    size_t max_response_size;
    char *proxy;
    srvocsp__store *store;       /* NULL without a persistence directory */
    char store_name[SRVOCSP__STORE_NAME_LEN + 1];
    uint64_t store_version;      /* version of the stored file we last saw */
    srvocsp__dirsync dirsync;    /* how the directory is used (immutable) */
    int64_t lease_busy_since;    /* another process's lease first found held; 0 = none (engine thread) */

    /* Scheduling, under eng->mu. */
    int64_t next_at;
    size_t heap_idx;             /* SIZE_MAX when not in the heap */
    bool in_flight;
    bool queued;                 /* in its host's ready queue */
    bool dead;                   /* last handle closed */
    size_t url_idx;
    size_t url_tries;            /* URLs tried in the current attempt */
    size_t url_pref;             /* the URL that last answered: tried first */
    srvocsp__host *host;         /* while in flight */
    unsigned failures;
    unsigned unchanged;          /* answers in a row that repeated the held one */
    uint64_t attempts_done;
    srvocsp_error last_err;
    char last_reason[SRVOCSP__REASON_LEN];
    char attempt_reasons[SRVOCSP__REASON_LEN];

    srvocsp_handle *handles;     /* list of open handles */
    srvocsp__entry *hash_next;
    srvocsp__entry *ready_next, *ready_prev;
    srvocsp__host *ready_host;   /* whose ready queue it is in */
    srvocsp__entry *note_next;
    bool note_pending;           /* why the stored response was not used */
    srvocsp_error note_err;
    char note[SRVOCSP__REASON_LEN];

    /* The fleet (engine/fleet.c), under eng->mu or on the engine thread. */
    srvocsp__store *fleet;       /* the shared store, borrowed from eng->fleet; NULL if none */
    srvocsp__store *fleet_lease; /* whose lease this entry's fetch holds */
    srvocsp__entry *fleet_next;  /* eng->fleet's table, by store name */
    char fleet_token[SRVOCSP__LEASE_TOKEN_LEN + 1];
};

struct srvocsp_handle {
    atomic_uint refs;
    srvocsp__entry *entry;
    srvocsp_engine *eng;         /* entry->eng, one load closer for get */
    uint32_t min_validity_s;
    uint32_t skew_s;
    bool adaptive;
    srvocsp_clock clock;         /* copied: no pointer chase on get */
    srvocsp_update_cb cb;
    void *cb_arg;
    void (*cb_arg_free)(void *);
    srvocsp_handle *prev, *next; /* entry's list, under eng->mu */
};

typedef struct srvocsp__completion srvocsp__completion;

struct srvocsp_engine {
    pthread_mutex_t mu;
    pthread_cond_t wake;         /* the engine thread waits here */
    pthread_cond_t progress;     /* openers and settle wait here */
    srvocsp_clock clock;
    srvocsp_transport transport;
    void *curl;                  /* the default transport, if used */
    srvocsp_engine_config cfg;

    pthread_t thread;
    bool running;                /* the scheduler thread is in its loop */
    bool thread_valid;           /* |thread| must still be joined */
    bool joining;
    bool stop;
    bool kicked;
    bool idle;                   /* nothing in flight, nothing due */

    srvocsp__entry **buckets;
    size_t n_buckets;
    size_t n_entries;
    srvocsp__entry **heap;
    size_t heap_len, heap_cap;
    size_t n_ready;              /* entries waiting in the hosts' ready queues */
    srvocsp__completion *done_head, *done_tail;
    srvocsp__entry *notes;        /* entries with a load note to report */
    int64_t clock_offset_ms;     /* wall - monotonic when last looked */
    bool clock_offset_valid;
    srvocsp__host *hosts;
    unsigned in_flight;

    uint64_t rng;
    srvocsp_engine_stats stats;

    struct srvocsp__fleet *fleet; /* engine/fleet.c; NULL without a shared store */

    /* fork(): the thread parks while a fork is under way (fork_hold), so
     * it holds no lock of libcurl's, OpenSSL's or the allocator's that the
     * child would inherit taken; the child restarts the engine on its
     * next call. */
    bool fork_hold;
    bool parked;
    atomic_bool restart_pending;
    srvocsp_engine *reg_next;    /* every engine, for pthread_atfork */
};

/* heap.c */
SRVOCSP__HIDDEN bool srvocsp__heap_push(srvocsp_engine *e, srvocsp__entry *en);
SRVOCSP__HIDDEN void srvocsp__heap_remove(srvocsp_engine *e, srvocsp__entry *en);
SRVOCSP__HIDDEN srvocsp__entry *srvocsp__heap_top(srvocsp_engine *e);
/* Sets |en|'s next_at and places it in the heap (adds or moves). */
SRVOCSP__HIDDEN bool srvocsp__heap_set(srvocsp_engine *e, srvocsp__entry *en, int64_t at);

/* engine.c, all under e->mu unless said */
SRVOCSP__HIDDEN srvocsp_engine *srvocsp__default_engine(void);
SRVOCSP__HIDDEN srvocsp_error srvocsp__engine_start_locked(srvocsp_engine *e);
SRVOCSP__HIDDEN srvocsp__entry *srvocsp__entry_find(srvocsp_engine *e, const unsigned char *key,
                                                   size_t len);
SRVOCSP__HIDDEN bool srvocsp__entry_insert(srvocsp_engine *e, srvocsp__entry *en);
SRVOCSP__HIDDEN void srvocsp__entry_unref_locked(srvocsp__entry *en);
SRVOCSP__HIDDEN void srvocsp__entry_retire_locked(srvocsp__entry *en);
/* When |en| should next be fetched at |now|, from its held response's own
 * times and its failure state alone (used on open and after the wall
 * clock jumped). */
SRVOCSP__HIDDEN int64_t srvocsp__entry_plan_locked(srvocsp__entry *en, int64_t now);
/* A new entry takes |snap| loaded from its store (consumes the reference):
 * published unless the verdict rules refuse it (then a note says why). */
SRVOCSP__HIDDEN void srvocsp__entry_adopt_stored_locked(srvocsp__entry *en,
                                                       srvocsp_response *snap);
/* srvocsp_handle_offer_der's work: queued for the engine thread, whose
 * verdict the caller waits for (not from an update callback). */
SRVOCSP__HIDDEN srvocsp_error srvocsp__entry_offer(srvocsp__entry *en, const unsigned char *der,
                                                  size_t len);
SRVOCSP__HIDDEN void srvocsp__entry_add_note_locked(srvocsp__entry *en, srvocsp_error err,
                                                   const char *note);
SRVOCSP__HIDDEN void srvocsp__engine_teardown_locked(srvocsp_engine *e);
/* |at| moved earlier by a random share of up to half the jitter of the
 * wait from |now| (the rule after a success: processes sharing a store
 * spread out, the first due fetches). */
SRVOCSP__HIDDEN int64_t srvocsp__jitter_earlier_locked(srvocsp_engine *e, int64_t at, int64_t now);
/* In a forked child: forget the parent's threads and transfers. */
SRVOCSP__HIDDEN void srvocsp__engine_after_fork_locked(srvocsp_engine *e);
/* Restarts the engine in a forked child (takes the lock). */
SRVOCSP__HIDDEN void srvocsp__engine_restart(srvocsp_engine *e);
static inline void srvocsp__engine_check_fork(srvocsp_engine *e)
{
    if (__builtin_expect(atomic_load_explicit(&e->restart_pending, memory_order_relaxed), 0))
        srvocsp__engine_restart(e);
}

/* net/curl_transport.c: libcurl's multi interface, driven by the engine's
 * one thread (no thread of its own). */
SRVOCSP__HIDDEN void *srvocsp__curl_new(const srvocsp_engine_config *cfg);
/* Ends every transfer still queued or running with E_SHUTDOWN (through
 * their done callbacks, on the calling thread) and frees the transport.
 * Only once the engine thread has stopped. */
SRVOCSP__HIDDEN void srvocsp__curl_free(void *t);
/* Queues a transfer; any thread; never blocks on the network. */
SRVOCSP__HIDDEN srvocsp_error srvocsp__curl_start(void *t, const srvocsp_http_request *req,
                                                 srvocsp_http_done_fn done, void *arg);
/* The engine thread's wait: moves transfers along, delivers the finished
 * ones (done callbacks on this thread), and when none finished waits up to
 * |timeout_ms| for network activity or srvocsp__curl_wakeup. */
SRVOCSP__HIDDEN void srvocsp__curl_drive(void *t, int timeout_ms);
/* The same, and the wait also ends when one of |fds| becomes readable. */
SRVOCSP__HIDDEN void srvocsp__curl_drive_fds(void *t, int timeout_ms, const int *fds, unsigned n);
/* Ends a wait of srvocsp__curl_drive early (or the next one); any thread. */
SRVOCSP__HIDDEN void srvocsp__curl_wakeup(void *t);
/* Adds the transport's counters (method fallbacks) to |out|; any thread. */
SRVOCSP__HIDDEN void srvocsp__curl_stats(void *t, srvocsp_engine_stats *out);

/* Wakes the engine thread, wherever it waits (caller holds e->mu). */
static inline void srvocsp__engine_wake_locked(srvocsp_engine *e)
{
    pthread_cond_signal(&e->wake);
    if (e->curl != NULL)
        srvocsp__curl_wakeup(e->curl);
}

#endif
