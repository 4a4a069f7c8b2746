/* Engine internals: entries (one per certificate), handles, the engine. */
#ifndef SRVOCSP_ENGINE_H
#define SRVOCSP_ENGINE_H

#include "core/cell.h"
#include "core/verdict.h"
#include "engine/dirsync.h"
#include "internal.h"
#include "net/transport.h"
#include "store/store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct srvocsp__entry srvocsp__entry;
typedef struct srvocsp__host srvocsp__host;

/* An entry's failure texts (srvocsp__entry.texts). */
typedef enum srvocsp__text {
    SRVOCSP__TEXT_LAST,          /* why the last attempt failed ("" after a success) */
    SRVOCSP__TEXT_ATTEMPT,       /* every URL's reason in the current attempt */
    SRVOCSP__TEXT_NOTE,          /* why the stored response was not used */
    SRVOCSP__TEXT_N
} srvocsp__text;

struct srvocsp__texts {
    char t[SRVOCSP__TEXT_N][SRVOCSP__REASON_LEN];
};

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
    srvocsp__delegate_memo delegate; /* pol.delegate: the last authorized delegate */
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
    /* A response was refused for this host's clock alone
     * (srvocsp__clock_bound): the clock may be wrong.  Look again soon, and
     * at once after the clock is stepped (entries.c). */
    bool clock_refused;
    unsigned clock_looks;
    /* Served from the directory at open while a shared store is attached:
     * the next attempt only looks at the fleet's copy (which may carry a
     * revocation announced while this process was down), no fetch. */
    bool fleet_look;
    uint64_t attempts_done;
    srvocsp_error last_err;
    /* The texts of failures (last_reason, attempt_reasons, note), allocated
     * at an entry's first failure: 1.5 KiB that most entries never need,
     * and half of what 100,000 of them cost.  Read with
     * srvocsp__entry_text, written through srvocsp__entry_text_buf. */
    struct srvocsp__texts *texts;

    srvocsp_handle *handles;     /* list of open handles */
    srvocsp__entry *hash_next;
    srvocsp__entry *ready_next, *ready_prev;
    srvocsp__host *ready_host;   /* whose ready queue it is in */
    srvocsp__entry *note_next;
    bool note_pending;           /* why the stored response was not used */
    srvocsp_error note_err;

    /* The fleet (engine/fleet.c), under eng->mu or on the engine thread. */
    srvocsp__store *fleet;       /* the shared store, borrowed from eng->fleet; NULL if none */
    srvocsp__store *fleet_lease; /* whose lease this entry's fetch holds */
    srvocsp__entry *fleet_next;  /* eng->fleet's table, by store name */
    char fleet_token[SRVOCSP__LEASE_TOKEN_LEN + 1];
    /* An announcement that came while the entry was in flight: judged once
     * its own result is in (engine thread).  |fleet_pending_len| 0 with
     * the flag set: re-read the store. */
    bool fleet_pending;
    unsigned char *fleet_pending_der;
    size_t fleet_pending_len;
};

struct srvocsp_handle {
    atomic_uint refs;            /* the caller's: at zero the handle leaves its entry */
    atomic_uint holds;           /* 1 while refs > 0, plus one per queued callback:
                                  * at zero the handle is freed */
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
typedef struct srvocsp__event srvocsp__event;

#define SRVOCSP__POOL_MAX 4          /* verification threads per engine, at most */

struct srvocsp_engine {
    pthread_mutex_t mu;
    pthread_cond_t wake;         /* the engine thread waits here */
    pthread_cond_t progress;     /* openers, offers, stops and forks wait here */
    pthread_cond_t settled;      /* settle waits here: woken when the thread goes
                                  * idle or ends, not at every completion */
    srvocsp_clock clock;
    srvocsp_transport transport;
    void *curl;                  /* the default transport, if used */
    srvocsp__signer_cache *signers; /* every entry's pol.signers */
    srvocsp_engine_config cfg;

    pthread_t thread;
    bool running;                /* the scheduler thread is in its loop */
    bool thread_valid;           /* |thread| must still be joined */
    bool joining;
    bool stop;
    bool exited;                 /* the process is exiting: no thread starts again */
    bool kicked;
    bool idle;                   /* nothing in flight, nothing due */
    bool wake_sent;              /* a transport wakeup is pending since the last turn began */

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
    bool manual;                 /* no thread: stepped by srvocsp__engine_step */

    /* pool.c: threads that verify completions beside the engine thread;
     * under mu. */
    pthread_cond_t pool_cv;      /* workers wait here */
    pthread_t pool_threads[SRVOCSP__POOL_MAX];
    unsigned pool_n;             /* threads started */
    srvocsp__completion *pool_active[SRVOCSP__POOL_MAX]; /* being verified */
    srvocsp__completion *pool_head, *pool_tail;          /* waiting */
    bool pool_stop;
    bool pool_failed;            /* no thread could start: verify inline */
    uint64_t pool_taken;         /* completions handed to the pool, ever */

    atomic_bool restart_pending;
    srvocsp_engine *reg_next;    /* every engine, for pthread_atfork */
};


/* ---------------------------------------------------------------------
 * The engine's files, each calling only those listed before it
 * (src/engine/README.md):
 *   heap.c, dirsync.c, fleet_table.c, entries.c, events.c, outcome.c,
 *   queue.c, pool.c, fleet.c, complete.c, sources.c, loop.c, lifecycle.c,
 *   handle.c, chain.c
 * ------------------------------------------------------------------- */

static inline int64_t srvocsp__engine_now(srvocsp_engine *e)
{
    return e->clock.now(e->clock.ctx);
}

/* The engine whose loop this thread runs, if any (set by loop.c). */
SRVOCSP__HIDDEN extern _Thread_local const srvocsp_engine *srvocsp__tl_engine;

/* Whether the caller is the thread running |e|'s loop: an update callback,
 * a transfer finishing inside its wait, the transport's start.  The one
 * test of it; needs no lock. */
static inline bool srvocsp__engine_thread_is_self(const srvocsp_engine *e)
{
    return srvocsp__tl_engine == e;
}

/* Wakes the engine thread, wherever it waits (caller holds e->mu).  The
 * transport's wakeup is a system call, and 10,000 opens in a row would
 * make one each: one is enough until the thread begins its next turn,
 * which clears |wake_sent| under this lock before it looks at anything,
 * and a wakeup not yet consumed stays pending in the transport (its next
 * wait returns at once), so none is lost.  The condition variable is
 * signalled every time: a signal nobody waits for is not remembered.
 * The engine thread itself (a transfer finishing inside its wait, an
 * update callback) needs no system call: it is awake, and |kicked| makes
 * it turn again before it waits; a wakeup sent to itself cost one
 * failing send per refresh and a wait that returned at once. */
static inline void srvocsp__engine_wake_locked(srvocsp_engine *e)
{
    if (srvocsp__engine_thread_is_self(e)) {
        e->kicked = true;
        return;
    }
    pthread_cond_signal(&e->wake);
    if (e->curl != NULL && !e->wake_sent) {
        e->wake_sent = true;
        srvocsp__curl_wakeup(e->curl);
    }
}

/* An entry's text |which| (under e->mu): "" when none was written. */
static inline const char *srvocsp__entry_text(const srvocsp__entry *en, srvocsp__text which)
{
    return en->texts != NULL ? en->texts->t[which] : "";
}

/* The buffer of an entry's text |which| (SRVOCSP__REASON_LEN bytes, under
 * e->mu), allocated with the others at the first use; NULL when that
 * allocation fails (the text is then lost, nothing else). */
static inline char *srvocsp__entry_text_buf(srvocsp__entry *en, srvocsp__text which)
{
    if (en->texts == NULL && (en->texts = calloc(1, sizeof(*en->texts))) == NULL)
        return NULL;
    return en->texts->t[which];
}

/* Writes an entry's text |which| (under e->mu). */
static inline void srvocsp__entry_set_text(srvocsp__entry *en, srvocsp__text which,
                                           const char *text)
{
    char *b;

    if (text[0] == '\0' && en->texts == NULL)
        return; /* "" already */
    if ((b = srvocsp__entry_text_buf(en, which)) != NULL)
        snprintf(b, SRVOCSP__REASON_LEN, "%s", text);
}

/* heap.c: entries by next attempt.  The heap has room for every entry
 * (srvocsp__heap_reserve when one is added), so placing one never fails
 * and no entry is ever left unscheduled. */
SRVOCSP__HIDDEN bool srvocsp__heap_reserve(srvocsp_engine *e, size_t n);
SRVOCSP__HIDDEN void srvocsp__heap_remove(srvocsp_engine *e, srvocsp__entry *en);
SRVOCSP__HIDDEN srvocsp__entry *srvocsp__heap_top(srvocsp_engine *e);
/* Sets |en|'s next_at and places it in the heap (adds or moves). */
SRVOCSP__HIDDEN void srvocsp__heap_set(srvocsp_engine *e, srvocsp__entry *en, int64_t at);

/* entries.c: the entry table, the hosts' ready queues, entry and handle
 * lifetimes, jitter.  All under e->mu. */
SRVOCSP__HIDDEN srvocsp__entry *srvocsp__entry_find(srvocsp_engine *e, const unsigned char *key,
                                                   size_t len);
/* Adds |en| to the table and makes room for it in the heap; false when
 * out of memory (nothing changed). */
SRVOCSP__HIDDEN bool srvocsp__entry_insert(srvocsp_engine *e, srvocsp__entry *en);
SRVOCSP__HIDDEN void srvocsp__entry_unref_locked(srvocsp__entry *en);
/* Takes a certificate out of service (its last handle closed); a
 * retrieval in flight finishes and is discarded. */
SRVOCSP__HIDDEN void srvocsp__entry_retire_locked(srvocsp__entry *en);
/* Frees |en| whatever its count (engine teardown). */
SRVOCSP__HIDDEN void srvocsp__entry_free(srvocsp__entry *en);
/* Queues |en| at the host of its current URL, to start when a slot is
 * free. */
SRVOCSP__HIDDEN void srvocsp__ready_push(srvocsp_engine *e, srvocsp__entry *en);
SRVOCSP__HIDDEN void srvocsp__ready_remove(srvocsp_engine *e, srvocsp__entry *en);
/* The entry's transfer slot (its host's and the engine's) goes back. */
SRVOCSP__HIDDEN void srvocsp__slot_release_locked(srvocsp_engine *e, srvocsp__entry *en);
/* Drops one of the caller's references to |h|; the last one takes the
 * handle out of its entry at once (retiring the entry with its last
 * handle, so a new open gets a fresh one) and drops the caller's hold.
 * Takes e->mu itself. */
SRVOCSP__HIDDEN void srvocsp__handle_release(srvocsp_handle *h);
/* Drops one hold on |h| (a queued callback's, or the caller's side): the
 * last frees it, with update_arg_free called without the lock after the
 * last callback returned.  Takes e->mu itself. */
SRVOCSP__HIDDEN void srvocsp__handle_unhold(srvocsp_handle *h);
/* A uniform number in [-1, 1) from the engine's generator (jitter only). */
SRVOCSP__HIDDEN double srvocsp__rand_unit_locked(srvocsp_engine *e);
/* |at| moved earlier by a random share of up to half the jitter of the
 * wait from |now| (the rule after a success: processes sharing a store
 * spread out, the first due fetches). */
SRVOCSP__HIDDEN int64_t srvocsp__jitter_earlier_locked(srvocsp_engine *e, int64_t at, int64_t now);
/* When |en| should next be fetched at |now|, from its held response's own
 * times and its failure state alone (on open, after the wall clock
 * jumped, after a look at a store that brought nothing). */
SRVOCSP__HIDDEN int64_t srvocsp__entry_plan_locked(srvocsp__entry *en, int64_t now);
/* Refusals that depend on this host's clock alone: from the future
 * (behind), expired or too short (ahead).  Right for a host whose clock is
 * right, so a stored copy refused for them stays in the store, and the
 * entry looks again once the clock may be right. */
static inline bool srvocsp__clock_bound(srvocsp_error err)
{
    return err == SRVOCSP_E_NOT_YET_VALID || err == SRVOCSP_E_EXPIRED ||
           err == SRVOCSP_E_SHORT_VALIDITY;
}
/* A response for |en| was refused for this host's clock alone
 * (srvocsp__clock_bound): it is looked for again after the failure
 * backoff (or at once when the clock is stepped), and never removed from
 * a store for it: the clock may be what is wrong. */
SRVOCSP__HIDDEN void srvocsp__entry_clock_refused_locked(srvocsp_engine *e, srvocsp__entry *en,
                                                      int64_t now);
/* A response was taken or confirmed: the clock agrees again. */
SRVOCSP__HIDDEN void srvocsp__entry_clock_clear_locked(srvocsp__entry *en);

/* events.c: callbacks, run by the engine thread once the lock is down.
 * Events never call the public API. */
SRVOCSP__HIDDEN void srvocsp__events_queue(srvocsp__entry *en, srvocsp_event_type type,
                                          srvocsp_response *resp, srvocsp_error err,
                                          const char *reason, const char *url, int store_errno,
                                          srvocsp__event **list);
/* Runs |list| in the order the events happened, then frees it.  Without
 * the lock. */
SRVOCSP__HIDDEN void srvocsp__events_run(srvocsp__event *list);
/* Records why a stored or shared response was not used, for the engine
 * thread to report through the callbacks (openers and store readers call
 * no callback). */
SRVOCSP__HIDDEN void srvocsp__entry_add_note_locked(srvocsp__entry *en, srvocsp_error err,
                                                   const char *note);
/* The engine thread: turns the pending notes into FAILED events. */
SRVOCSP__HIDDEN void srvocsp__events_from_notes_locked(srvocsp_engine *e, srvocsp__event **list);
/* Teardown: forgets the pending notes. */
SRVOCSP__HIDDEN void srvocsp__notes_drop_locked(srvocsp_engine *e);

/* outcome.c: where a response comes from decides what happens to it
 * besides the verdict (a small table, srvocsp__sources). */
typedef enum srvocsp__source {
    SRVOCSP__SRC_NETWORK = 0,    /* the responder's answer */
    SRVOCSP__SRC_DIRECTORY = 1,  /* another process's save, found before asking */
    SRVOCSP__SRC_READ_ONLY = 2,  /* a read-only directory's file, looked at on schedule */
    SRVOCSP__SRC_FLEET = 3,      /* the shared store, read before asking */
    SRVOCSP__SRC_ANNOUNCE = 4,   /* the shared store's announcement */
    SRVOCSP__SRC_OFFER = 5,      /* srvocsp_handle_offer_der */
    SRVOCSP__SRC_OPEN = 6,       /* the directory's response, loaded at open */
    SRVOCSP__SRC_N
} srvocsp__source;

typedef struct srvocsp__source_policy {
    const char *label;           /* names the source in events (NULL: the URL) */
    bool save;                   /* written to the persistence directory */
    bool share;                  /* saved to the fleet's store (which announces it), and
                                  * the fetch's fleet lease goes back */
    bool attempt;                /* the entry's scheduled work: holds it in flight while
                                  * queued and ends an attempt (counts attempts_done);
                                  * otherwise it arrives beside the schedule */
    bool next_url;               /* the responder's answer, by URL: refused, the next URL
                                  * of the attempt, then back off; a repeat of what is
                                  * held is "unchanged"; the URL that answers is asked
                                  * first */
    bool report;                 /* refused: reported (a FAILED event, or a note) */
    bool fetch;                  /* a look before a fetch: refused, the fetch goes on */
    bool events;                 /* the callbacks hear of it (else the opener's: served
                                  * or noted, never saved, planned by the opener) */
    bool pickup;                 /* read from a store: counts as a store pickup when
                                  * taken, and a look that found nothing ends the attempt */
} srvocsp__source_policy;

SRVOCSP__HIDDEN extern const srvocsp__source_policy srvocsp__sources[SRVOCSP__SRC_N];

/* Judges the verified |snap| from |src| against what |en| holds and acts
 * on the verdict: publishes (and saves) it, notes it as unchanged, or
 * reports the refusal as the source's policy says; schedules |en| (except
 * for SRC_OPEN, whose opener plans it).  Returns the verdict, with |*err|
 * and |why| set on REFUSE.  Called and returns with e->mu held; drops it
 * while writing the directory.  |events| may be NULL for SRC_OPEN. */
SRVOCSP__HIDDEN srvocsp__verdict srvocsp__outcome_take_locked(srvocsp_engine *e,
                                                             srvocsp__entry *en,
                                                             srvocsp__source src,
                                                             srvocsp_response *snap,
                                                             const char *url,
                                                             srvocsp__event **events,
                                                             srvocsp_error *err, char *why,
                                                             size_t whylen);
/* One URL of a network attempt gave no usable answer: the next URL at
 * once, or the attempt has failed (backoff, FAILED event). */
SRVOCSP__HIDDEN void srvocsp__outcome_url_failed_locked(srvocsp_engine *e, srvocsp__entry *en,
                                                       srvocsp_error err, const char *why,
                                                       const char *url, srvocsp__event **events);
/* A look that brought nothing to judge: the entry is planned again, with
 * a FAILED event when |why| is not NULL (read-only directory). */
SRVOCSP__HIDDEN void srvocsp__outcome_nothing_locked(srvocsp_engine *e, srvocsp__entry *en,
                                                    int64_t at, srvocsp_error err,
                                                    const char *why, srvocsp__event **events);

/* queue.c: finished work handed to the engine thread. */
struct offer_wait;
struct srvocsp__completion {
    srvocsp__completion *next;
    srvocsp__entry *en;          /* holds a reference */
    srvocsp__source src;
    const char *url;             /* entry-owned or static */
    bool slot;                   /* holds a transfer slot (picked by the loop) */
    /* The bytes as they arrived (network, offer): verified by complete. */
    srvocsp_error error;
    long http_status;
    char *content_type;
    char *content_encoding;
    unsigned char *body;
    size_t body_len;
    /* A store's response, verified where it was read. */
    srvocsp_response *snap;
    uint64_t store_version;      /* with has_version: the stored version it was */
    bool has_version;
    /* Nothing to judge: look again at |wait_at|, and with |fail| report
     * |detail| as a FAILED event. */
    bool wait;
    int64_t wait_at;
    bool fail;
    srvocsp_error fail_err;
    char detail[SRVOCSP__REASON_LEN];
    struct offer_wait *offer;    /* the offering thread's, while it waits */
    /* The directory's response of a deferred open: read by whoever
     * verifies it (srvocsp__completion_evaluate), into |body|. */
    bool read_stored;
    /* Verified by the pool (pool.c): the result, |snap| when accepted. */
    bool evaluated;
    srvocsp_error eval_err;
    char eval_why[SRVOCSP__REASON_LEN];
    bool leased;                 /* holds the directory's lease (|lease|) */
    int lease;
};

/* A zeroed completion for |en| (takes a reference to it) from |src|;
 * NULL when out of memory.  Under e->mu. */
SRVOCSP__HIDDEN srvocsp__completion *srvocsp__completion_new_locked(srvocsp__entry *en,
                                                                   srvocsp__source src);
/* Gives the directory lease back and frees |c| (not the entry's reference). */
SRVOCSP__HIDDEN void srvocsp__completion_free(srvocsp__completion *c);
/* Hands |c| to the engine thread (under e->mu). */
SRVOCSP__HIDDEN void srvocsp__done_push_locked(srvocsp_engine *e, srvocsp__completion *c);
/* The transport's done callback (srvocsp_http_done_fn): copies the
 * answer into the completion and queues it.  Any thread, no lock held. */
SRVOCSP__HIDDEN void srvocsp__transport_done(void *arg, const srvocsp_http_result *res);
/* Queues |c| (without the lock) with |snap| verified where it was read
 * (consumed), or with nothing found (|snap| NULL: look again at |at|). */
SRVOCSP__HIDDEN void srvocsp__deliver(srvocsp_engine *e, srvocsp__completion *c,
                                     srvocsp_response *snap, int64_t at);

/* pool.c: verification beside the engine thread. */
/* Verifies the bytes |c| carries (an HTTP answer, an offer, a stored file
 * read at open) for its entry: the one check, wherever it runs.  Without
 * the lock: reads only the entry's immutable fields. */
SRVOCSP__HIDDEN srvocsp_error srvocsp__completion_evaluate(srvocsp_engine *e,
                                                          srvocsp__completion *c,
                                                          srvocsp_response **out, char *why,
                                                          size_t whylen);
/* Takes |c| to be verified by a pool thread (started on first use), after
 * which it comes back to the done queue with |evaluated| set.  False when
 * the pool cannot take it: the caller verifies inline. */
SRVOCSP__HIDDEN bool srvocsp__pool_take_locked(srvocsp_engine *e, srvocsp__completion *c);
/* Whether completions are waiting for the pool or being verified. */
SRVOCSP__HIDDEN bool srvocsp__pool_busy_locked(const srvocsp_engine *e);
/* How many completions the pool was handed so far (takes the lock). */
SRVOCSP__HIDDEN uint64_t srvocsp__pool_taken(srvocsp_engine *e);
/* With fork_hold set: waits (until |deadline|) for the workers to leave
 * OpenSSL. */
SRVOCSP__HIDDEN void srvocsp__pool_park_locked(srvocsp_engine *e, const struct timespec *deadline);
/* In a forked child: the work of the parent's workers goes back to the
 * done queue; threads start again on the next use. */
SRVOCSP__HIDDEN void srvocsp__pool_after_fork_locked(srvocsp_engine *e);
/* Stops and joins the workers (no lock held); the work they had goes
 * back to the done queue.  The pool takes nothing afterwards. */
SRVOCSP__HIDDEN void srvocsp__pool_stop(srvocsp_engine *e);

/* complete.c: the engine thread's handling of one completion, and the
 * offer's entry point. */
SRVOCSP__HIDDEN void srvocsp__complete_locked(srvocsp_engine *e, srvocsp__completion *c,
                                             srvocsp__event **events);
/* srvocsp_handle_offer_der's work: queued for the engine thread, whose
 * verdict the caller waits for (from an update callback: queued, OK). */
SRVOCSP__HIDDEN srvocsp_error srvocsp__entry_offer(srvocsp__entry *en, const unsigned char *der,
                                                  size_t len);

/* sources.c: before a transfer, the stores may hold the answer. */
typedef struct srvocsp__start_item {
    srvocsp__completion *c;
    srvocsp_http_request req;
    bool check_store;            /* look for another process's newer save first */
    bool fleet_look_only;        /* only look at the fleet's copy (entry's fleet_look) */
    uint64_t known_version;
    srvocsp_response *held;      /* the response held when picked (a reference), or NULL */
} srvocsp__start_item;
/* Starts the picked items: each becomes a store pickup, a wait for
 * another process, or a transfer.  Without the lock, engine thread. */
SRVOCSP__HIDDEN void srvocsp__sources_start(srvocsp_engine *e, srvocsp__start_item *items,
                                           size_t n);

/* loop.c: the engine thread. */
SRVOCSP__HIDDEN srvocsp_error srvocsp__engine_start_locked(srvocsp_engine *e);
SRVOCSP__HIDDEN void srvocsp__engine_teardown_locked(srvocsp_engine *e);
/* In a forked child: forget the parent's threads and transfers. */
SRVOCSP__HIDDEN void srvocsp__engine_after_fork_locked(srvocsp_engine *e);
/* A manual engine (lifecycle.h): runs the loop's turns at the clock's
 * current time until nothing is left to do now (completions handled, due
 * entries started, callbacks run); returns the next due time (INT64_MAX:
 * none).  On its owner's one thread. */
SRVOCSP__HIDDEN int64_t srvocsp__engine_step(srvocsp_engine *e);

#endif
