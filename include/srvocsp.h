/*
 * srvocsp — keep a verified, time-valid OCSP response ready for every
 * certificate a TLS server presents, so it can be stapled on every handshake
 * without ever blocking.
 *
 * Conventions used throughout this header:
 *  - Functions returning a pointer return NULL on failure and set the
 *    calling thread's last error (srvocsp_last_error, srvocsp_last_error_text).
 *  - Functions returning srvocsp_error return SRVOCSP_OK (0) on success.
 *  - "get" functions borrow; "get1"/"open" return a new reference that the
 *    caller releases with the matching _free/_close.  _free(NULL) and
 *    _close(NULL) do nothing.
 *  - Unless a function says otherwise it is safe to call from any thread.
 */
#ifndef SRVOCSP_H
#define SRVOCSP_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(SRVOCSP_STATIC)
#define SRVOCSP_EXPORT
#elif defined(SRVOCSP_BUILDING)
#define SRVOCSP_EXPORT __attribute__((visibility("default")))
#else
#define SRVOCSP_EXPORT
#endif

/* The version these headers describe.  CMake's project(VERSION) is the one
 * source: the library refuses to compile when these disagree with it, and a
 * test checks debian/changelog against it. */
#define SRVOCSP_VERSION_MAJOR 0
#define SRVOCSP_VERSION_MINOR 1
#define SRVOCSP_VERSION_PATCH 0
/* MAJOR * 10000 + MINOR * 100 + PATCH, for #if comparisons. */
#define SRVOCSP_VERSION_NUMBER \
    (SRVOCSP_VERSION_MAJOR * 10000 + SRVOCSP_VERSION_MINOR * 100 + SRVOCSP_VERSION_PATCH)

/* srvocsp_version returns the version of the library actually loaded, as
 * "MAJOR.MINOR.PATCH" (static storage, never NULL), which may be newer than
 * the headers a program was compiled with.  If |number| is not NULL it
 * receives the same version in the form of SRVOCSP_VERSION_NUMBER.
 * Thread-safe; never fails. */
SRVOCSP_EXPORT const char *srvocsp_version(int *number);

/* ---------------------------------------------------------------------
 * Errors
 *
 * One table: code name, number, category, message.  Numbers are never
 * reused or renumbered; a retired code stays in the table as OBSOLETE.
 * The category tells the engine (and callers) what is worth retrying.
 * ------------------------------------------------------------------- */
typedef enum srvocsp_category {
    SRVOCSP_CAT_NONE = 0,     /* success */
    SRVOCSP_CAT_USAGE = 1,    /* caller error; retrying will not help */
    SRVOCSP_CAT_RESOURCE = 2, /* memory or similar; may succeed later */
    SRVOCSP_CAT_TRANSPORT = 3,/* network, HTTP; retried with backoff */
    SRVOCSP_CAT_RESPONDER = 4,/* responder answered but not usefully; retried */
    SRVOCSP_CAT_VERIFY = 5,   /* response rejected; retried, never served */
    SRVOCSP_CAT_STATE = 6,    /* nothing (valid) to hand out right now */
    SRVOCSP_CAT_IO = 7,       /* local disk or store */
    SRVOCSP_CAT_INTERNAL = 8  /* a bug or an OpenSSL failure we cannot name */
} srvocsp_category;

#define SRVOCSP_ERROR_MAP(X)                                                              \
    X(OK, 0, NONE, "success")                                                             \
    X(E_INVALID_ARG, 1, USAGE, "invalid argument")                                        \
    X(E_NOMEM, 2, RESOURCE, "out of memory")                                              \
    X(E_NO_OCSP_URL, 3, USAGE, "certificate has no OCSP responder URL")                   \
    X(E_OFFLINE, 4, STATE, "no time-valid OCSP response is available")                   \
    X(E_STATUS_UNKNOWN, 5, STATE, "the responder does not know the certificate (unknown)") \
    X(E_CERT, 6, USAGE, "certificate could not be read or parsed")                         \
    X(E_NO_ISSUER, 7, USAGE, "issuer certificate of the leaf not found")                   \
    X(E_TRANSPORT, 8, TRANSPORT, "HTTP transfer to the responder failed")                  \
    X(E_TIMEOUT, 9, TRANSPORT, "responder did not answer within the retrieval timeout")    \
    X(E_HTTP_STATUS, 10, RESPONDER, "responder answered with an HTTP status other than 200") \
    X(E_CONTENT_TYPE, 11, RESPONDER, "responder answer is not application/ocsp-response")  \
    X(E_TOO_LARGE, 12, RESPONDER, "responder answer exceeds the maximum response size")    \
    X(E_PARSE, 13, VERIFY, "response is not a DER OCSPResponse")                           \
    X(E_RESPONSE_STATUS, 14, RESPONDER, "OCSP response status is not successful")          \
    X(E_NOT_BASIC, 15, VERIFY, "response is not a basic OCSP response")                    \
    X(E_SIGNATURE, 16, VERIFY, "response signature does not verify")                       \
    X(E_SIGNER, 17, VERIFY, "response signer is not authorized for this issuer")           \
    X(E_SIGNER_EXPIRED, 18, VERIFY, "delegated responder certificate is outside its validity") \
    X(E_NO_MATCH, 19, VERIFY, "response has no SingleResponse for this certificate")       \
    X(E_NOT_YET_VALID, 20, VERIFY, "response thisUpdate is in the future")                 \
    X(E_EXPIRED, 21, VERIFY, "response is past its nextUpdate or maximum age")             \
    X(E_CRITICAL_EXT, 22, VERIFY, "response has an unhandled critical extension")          \
    X(E_ROLLBACK, 23, VERIFY, "response is not newer than the one held")                   \
    X(E_BAD_PRODUCED_AT, 24, VERIFY, "response producedAt is outside the certificate's validity") \
    X(E_IO, 25, IO, "file or directory operation failed")                                  \
    X(E_SHUTDOWN, 26, STATE, "the engine is shutting down")                                \
    X(E_INTERNAL, 27, INTERNAL, "internal error")                                          \
    X(E_UNSUPPORTED, 28, USAGE, "unsupported option or algorithm")                         \
    X(E_STORE, 29, IO, "response store failed")                                            \
    X(E_STALE, 30, STATE, "the held response has less validity left than the minimum")     \
    X(E_SHORT_VALIDITY, 31, RESPONDER, "response is valid for less than the minimum validity, so it could never be served") \
    X(E_CONTENT_ENCODING, 32, RESPONDER, "responder answer has a Content-Encoding the client did not ask for")

typedef enum srvocsp_error {
#define SRVOCSP__ENUM(name, num, cat, msg) SRVOCSP_##name = num,
    SRVOCSP_ERROR_MAP(SRVOCSP__ENUM)
#undef SRVOCSP__ENUM
    SRVOCSP__ERROR_END
} srvocsp_error;

/* srvocsp_strerror returns a static English message for |err|, or
 * "unknown error" for a value not in the table.  Never NULL. */
SRVOCSP_EXPORT const char *srvocsp_strerror(srvocsp_error err);
/* srvocsp_error_name returns the code's name ("E_TIMEOUT"), static. */
SRVOCSP_EXPORT const char *srvocsp_error_name(srvocsp_error err);
/* srvocsp_error_category returns the category of |err|. */
SRVOCSP_EXPORT srvocsp_category srvocsp_error_category(srvocsp_error err);

/* srvocsp_last_error returns the code of the last failure on the calling
 * thread (thread-local; calls that succeed do not clear it). */
SRVOCSP_EXPORT srvocsp_error srvocsp_last_error(void);
/* srvocsp_last_error_text returns a readable sentence for the last failure
 * on the calling thread, with detail (OpenSSL's reasons, the URL, the
 * field) where known.  The string is owned by the thread and valid until
 * its next srvocsp call. */
SRVOCSP_EXPORT const char *srvocsp_last_error_text(void);

/* ---------------------------------------------------------------------
 * Response snapshots
 *
 * An immutable, reference-counted copy of one verified DER OCSP response
 * and what was read from it.  A snapshot stays valid after the handle it
 * came from is closed, until its last reference is freed.
 * ------------------------------------------------------------------- */
typedef struct srvocsp_response srvocsp_response;

typedef enum srvocsp_cert_status {
    SRVOCSP_STATUS_GOOD = 0,
    SRVOCSP_STATUS_REVOKED = 1,
    SRVOCSP_STATUS_UNKNOWN = 2
} srvocsp_cert_status;

/* srvocsp_response_up_ref adds a reference and returns |r| (NULL-safe). */
SRVOCSP_EXPORT srvocsp_response *srvocsp_response_up_ref(srvocsp_response *r);
/* srvocsp_response_free drops a reference; the last one frees it.  Never
 * blocks, never takes a lock. NULL is a no-op. */
SRVOCSP_EXPORT void srvocsp_response_free(srvocsp_response *r);
/* srvocsp_response_der returns the DER bytes (borrowed, valid while the
 * caller holds a reference) and stores their length in |*len|. */
SRVOCSP_EXPORT const unsigned char *srvocsp_response_der(const srvocsp_response *r, size_t *len);
/* The getters below read fields fixed when the snapshot was made: no
 * lock, no allocation, any thread, valid while the caller holds a
 * reference; |r| must not be NULL.  srvocsp_response_status returns good,
 * revoked or unknown. */
SRVOCSP_EXPORT srvocsp_cert_status srvocsp_response_status(const srvocsp_response *r);
/* Times are Unix seconds.  next_update is 0 when the response has none. */
SRVOCSP_EXPORT int64_t srvocsp_response_this_update(const srvocsp_response *r);
SRVOCSP_EXPORT int64_t srvocsp_response_next_update(const srvocsp_response *r);
SRVOCSP_EXPORT int64_t srvocsp_response_produced_at(const srvocsp_response *r);
/* srvocsp_response_expires returns the instant after which the response
 * must no longer be used: nextUpdate, or thisUpdate plus the maximum age
 * for a response without nextUpdate, and never later than thisUpdate plus
 * the maximum lifetime (the trust horizon, 10 days by default). */
SRVOCSP_EXPORT int64_t srvocsp_response_expires(const srvocsp_response *r);
/* For a revoked response: revocation time (Unix s) and CRL reason code
 * (-1 when absent).  0 and -1 otherwise. */
SRVOCSP_EXPORT int64_t srvocsp_response_revocation_time(const srvocsp_response *r);
SRVOCSP_EXPORT int srvocsp_response_revocation_reason(const srvocsp_response *r);

/* ---------------------------------------------------------------------
 * Verification, on its own
 *
 * The one verification path of the library: the engine uses it for every
 * response from the network, the disk or a shared store.
 * ------------------------------------------------------------------- */
typedef struct srvocsp_verify_opts {
    size_t struct_size;           /* sizeof(srvocsp_verify_opts) */
    int64_t now;                  /* Unix seconds to verify at; 0 = current time */
    uint32_t clock_skew_s;        /* tolerated thisUpdate in the future; default 300 */
    uint32_t max_age_no_next_update_s; /* lifetime of a response without nextUpdate; default 3600 */
    uint32_t max_lifetime_s;      /* never valid longer than this after thisUpdate,
                                   * whatever nextUpdate says; default 864000 (10 days,
                                   * as mozilla::pkix) */
} srvocsp_verify_opts;

/* srvocsp_verify_opts_init fills |o| with the defaults. */
SRVOCSP_EXPORT void srvocsp_verify_opts_init(srvocsp_verify_opts *o);

/* srvocsp_verify_der verifies |der| (|len| bytes) as an OCSP response for
 * |leaf| issued by |issuer| and returns a new snapshot on success, whatever
 * the certificate status (good, revoked or unknown).  On rejection it
 * returns NULL and sets the last error to the reason (E_SIGNATURE,
 * E_NO_MATCH, ...).  Inputs are borrowed.  |opts| may be NULL (defaults). */
SRVOCSP_EXPORT srvocsp_response *srvocsp_verify_der(const unsigned char *der, size_t len,
                                                   X509 *leaf, X509 *issuer,
                                                   const srvocsp_verify_opts *opts);

/* ---------------------------------------------------------------------
 * Clock and transport (injectable, for tests and special deployments)
 * ------------------------------------------------------------------- */
/* Structs a caller fills in (srvocsp_clock, srvocsp_http_result) may gain
 * fields at their end: zero them before filling them in ("= {0}" or
 * memset), so a field this library reads that the caller did not set is
 * NULL or 0. */
typedef struct srvocsp_clock {
    /* Returns Unix time in seconds.  Called on the hot path: must be cheap,
     * thread-safe and must not block. */
    int64_t (*now)(void *ctx);
    void *ctx;
    /* Optional: milliseconds of a clock that never jumps (CLOCK_MONOTONIC
     * for the system clock).  The engine compares the two to notice when
     * the wall clock was stepped (NTP, suspend/resume, a restored VM) and
     * then recomputes every schedule from the responses' own times.  NULL
     * for an injected clock: its steps are then taken as time passing. */
    int64_t (*monotonic_ms)(void *ctx);
} srvocsp_clock;

typedef struct srvocsp_http_request {
    const char *url;                /* full URL (GET form includes the request) */
    const unsigned char *body;      /* POST body, NULL for GET */
    size_t body_len;
    uint32_t timeout_ms;
    size_t max_response_size;
    const char *proxy;              /* NULL: environment (http_proxy, no_proxy) */
    /* For a GET, the same request in its POST form (the responder's base
     * URL and the DER OCSPRequest), so a transport can step around a
     * responder that mishandles GET; NULL and 0 when not known.  A
     * transport may ignore them. */
    const char *post_url;
    const unsigned char *der;
    size_t der_len;
} srvocsp_http_request;

typedef struct srvocsp_http_result {
    srvocsp_error error;            /* OK, E_TRANSPORT, E_TIMEOUT, E_TOO_LARGE */
    long http_status;
    const char *content_type;       /* may be NULL */
    const unsigned char *body;
    size_t body_len;
    const char *detail;             /* human detail for failures, may be NULL */
    const char *content_encoding;   /* Content-Encoding of the answer, NULL if none */
} srvocsp_http_result;

/* Called exactly once per started request, from any thread.  The result
 * and everything it points to is borrowed for the duration of the call. */
typedef void (*srvocsp_http_done_fn)(void *done_arg, const srvocsp_http_result *result);

typedef struct srvocsp_transport {
    /* Starts one exchange; must not block for the exchange itself.  Returns
     * SRVOCSP_OK and later calls |done| once, or returns an error and never
     * calls |done|.  |req| is borrowed for the duration of the call. */
    srvocsp_error (*start)(void *ctx, const srvocsp_http_request *req,
                           srvocsp_http_done_fn done, void *done_arg);
    void *ctx;
} srvocsp_transport;

/* ---------------------------------------------------------------------
 * Engine
 *
 * The background machinery (one thread, started on first need, that
 * schedules, drives the HTTP transfers and verifies) shared by all handles
 * opened on it.  Most programs use the process-wide
 * default engine (pass NULL); tests create their own with a manual clock
 * and a fake transport.
 * ------------------------------------------------------------------- */
typedef struct srvocsp_engine srvocsp_engine;

typedef struct srvocsp_engine_config {
    size_t struct_size;              /* sizeof(srvocsp_engine_config) */
    const srvocsp_clock *clock;      /* NULL: the system clock */
    const srvocsp_transport *transport; /* NULL: libcurl */
    uint32_t max_concurrent;         /* retrievals in flight, default 32 */
    uint32_t max_per_host;           /* per responder host, default 4 */
    uint32_t jitter_percent;         /* backoff jitter, default 20 */
    uint64_t seed;                   /* jitter PRNG seed, 0 = from the clock */
} srvocsp_engine_config;

/* srvocsp_engine_config_init fills |c| (caller-owned) with the defaults
 * above and sets struct_size.  Cannot fail. */
SRVOCSP_EXPORT void srvocsp_engine_config_init(srvocsp_engine_config *c);
/* srvocsp_engine_new creates an engine; its threads start on first need.
 * |c| may be NULL (the defaults).  Returns NULL with E_INVALID_ARG
 * (struct_size too small, a concurrency limit of 0, jitter_percent above
 * 100) or E_NOMEM.  The config is copied; the clock and transport it
 * points to must outlive the engine.  Thread-safe. */
SRVOCSP_EXPORT srvocsp_engine *srvocsp_engine_new(const srvocsp_engine_config *c);
/* srvocsp_engine_free stops the engine's threads and frees it together with
 * any handles still open on it (a handle pointer is invalid afterwards).
 * Snapshots already handed out stay valid.  From an update callback of the
 * same engine it does nothing and sets the last error to E_INVALID_ARG
 * (the engine thread cannot join itself).  NULL is a no-op. */
SRVOCSP_EXPORT void srvocsp_engine_free(srvocsp_engine *e);
/* srvocsp_engine_kick makes the engine look at its schedule again now; call
 * it after moving an injected clock forward. */
SRVOCSP_EXPORT void srvocsp_engine_kick(srvocsp_engine *e);
/* srvocsp_engine_settle waits (real time, at most |timeout_ms|) until the
 * engine has no retrieval in flight and nothing due at the clock's current
 * time.  Returns SRVOCSP_OK, E_TIMEOUT, or E_INVALID_ARG at once when |e|
 * is NULL or when called from one of |e|'s update callbacks (the engine
 * thread cannot wait for itself).  For tests. */
SRVOCSP_EXPORT srvocsp_error srvocsp_engine_settle(srvocsp_engine *e, uint32_t timeout_ms);

/* An engine's figures.  All are counters that only grow since the engine
 * was created, except handles_open and entries, which say how many there
 * are now. */
typedef struct srvocsp_engine_stats {
    uint64_t requests_started;      /* HTTP exchanges handed to the transport */
    uint64_t responses_accepted;    /* verified and published */
    uint64_t failures;              /* retrievals that ended without a new response */
    uint64_t handles_open;          /* now */
    uint64_t entries;               /* distinct certificates, now */
    uint64_t store_pickups;         /* newer responses taken from the store instead of a fetch */
    uint64_t store_failures;        /* accepted responses that could not be persisted */
    uint64_t unchanged;             /* answers that repeated the held response (a CDN cache) */
    uint64_t clock_jumps;           /* wall-clock steps noticed (schedules recomputed) */
    /* Requests the built-in transport sent with the other HTTP method than
     * the one first chosen, because the responder refused or mishandled
     * it (at once, or remembered from before: srvocsp_method_fallbacks). */
    uint64_t fallbacks_get_to_post; /* POST in place of GET */
    uint64_t fallbacks_post_to_get; /* GET in place of POST */
    uint64_t get_unanswered;        /* GETs that got no answer on an accepted connection:
                                     * the next request to that responder is a POST */
} srvocsp_engine_stats;
/* srvocsp_engine_get_stats copies |e|'s counters into |out| (NULL: the
 * process-wide default engine; all zero when none has been made, and
 * none is made by this call).  Takes the engine lock briefly. */
SRVOCSP_EXPORT void srvocsp_engine_get_stats(srvocsp_engine *e, srvocsp_engine_stats *out);

/* A responder that is asked with the other HTTP method than RFC 5019's
 * choice, because it refused or mishandled that one (docs/responders.md).
 * What is learnt is shared by every engine of the process and forgotten a
 * day after it was learnt, so a responder that was fixed gets GET (which
 * caches better) again. */
typedef struct srvocsp_method_fallback {
    char responder[256];         /* scheme://host:port/path of its base URL */
    char method[8];              /* "POST" or "GET": what it is asked with now */
    char why[160];               /* what the other method did ("GET answered HTTP 400") */
    uint64_t id;                 /* the same while it is remembered as is; each new finding
                                  * (learnt, confirmed, method changed) gets one above every
                                  * id before: report once per id */
    uint64_t requests;           /* requests sent with |method| in place of the other */
    int64_t forget_in_s;         /* seconds until it is forgotten (then the first choice is tried) */
} srvocsp_method_fallback;
/* srvocsp_method_fallbacks copies up to |max| remembered responders into
 * |out| (by id: oldest finding first) and returns how many are remembered (which may be
 * more than |max|).  |out| may be NULL when |max| is 0.  Thread-safe;
 * takes a process-wide lock briefly; never does I/O. */
SRVOCSP_EXPORT size_t srvocsp_method_fallbacks(srvocsp_method_fallback *out, size_t max);

/* srvocsp_cleanup stops the default engine and frees everything the library
 * holds, even while handles are still open (they become invalid), and the
 * references the calling thread keeps for fast reads (another thread's go
 * when that thread exits).  For valgrind-clean exits.  Not thread-safe against
 * concurrent srvocsp calls. */
SRVOCSP_EXPORT void srvocsp_cleanup(void);

/* ---------------------------------------------------------------------
 * Handles
 * ------------------------------------------------------------------- */
typedef struct srvocsp_handle srvocsp_handle;

/* Open flags. */
#define SRVOCSP_OPEN_ASYNC 0x1u  /* return at once; first retrieval in background */
/* With SRVOCSP_OPEN_ASYNC and a directory: the stored response is read at
 * open but verified afterwards, on the engine's verification threads (one
 * per core, at most 4), instead of before srvocsp_open returns.  The handle
 * serves it once verified (get returns E_OFFLINE until then, never waits)
 * and nothing is fetched for the certificate before it was judged.  For
 * opening many certificates at once: 100,000 stored responses are then
 * verified on every core instead of on the opening thread.  Without this
 * flag the stored response is served from the first get after the open. */
#define SRVOCSP_OPEN_DEFER_STORED 0x2u

typedef enum srvocsp_hash {
    SRVOCSP_HASH_SHA1 = 0,       /* what every responder supports (RFC 5019) */
    SRVOCSP_HASH_SHA256 = 1
} srvocsp_hash;

typedef enum srvocsp_event_type {
    SRVOCSP_EVENT_UPDATED = 1,   /* a new good response is being served */
    SRVOCSP_EVENT_REVOKED = 2,   /* a new response says revoked; it is being served */
    SRVOCSP_EVENT_UNKNOWN = 3,   /* a new response says unknown; nothing is served */
    SRVOCSP_EVENT_FAILED = 4,    /* a retrieval failed or was rejected (including
                                  * E_SHORT_VALIDITY, E_ROLLBACK); an answer that
                                  * repeats the held response is not a failure
                                  * and raises no event (stats.unchanged) */
    SRVOCSP_EVENT_STORE_FAILED = 5 /* the response just reported could not be persisted */
} srvocsp_event_type;

typedef struct srvocsp_event {
    srvocsp_event_type type;
    srvocsp_response *response;  /* borrowed; the new response, or NULL for FAILED */
    srvocsp_error error;         /* why, for FAILED and STORE_FAILED */
    const char *reason;          /* readable detail; borrowed */
    const char *url;             /* responder URL involved, may be NULL */
    int store_errno;             /* errno of persisting the response, 0 if fine */
    int64_t next_attempt;        /* Unix s of the next scheduled retrieval */
} srvocsp_event;

/* Called on the engine's thread after each retrieval outcome.  |ev| and
 * what it points to are borrowed for the call.  The callback may call any
 * srvocsp function, including closing |h|, with three exceptions that
 * cannot wait for the engine thread they run on: srvocsp_open without
 * SRVOCSP_OPEN_ASYNC behaves as with it (returns at once, retrieval in the
 * background); srvocsp_handle_offer_der queues the offer and returns OK
 * (its verdict follows the callback); srvocsp_engine_settle,
 * srvocsp_engine_free and srvocsp_cleanup on the callback's own engine
 * fail at once with E_INVALID_ARG and change nothing. */
typedef void (*srvocsp_update_cb)(srvocsp_handle *h, const srvocsp_event *ev, void *arg);

typedef struct srvocsp_params {
    size_t struct_size;          /* sizeof(srvocsp_params) */
    unsigned flags;              /* SRVOCSP_OPEN_* */
    srvocsp_engine *engine;      /* NULL: the process-wide default engine */

    /* The Windows knobs, with the Windows defaults. */
    uint32_t min_validity_s;          /* SrvOcspRespMinValiditySeconds, 600 */
    uint32_t url_timeout_ms;          /* SrvOcspRespUrlRetrievalTimeoutMilliseconds, 15000 */
    uint32_t max_before_next_update_s;/* SrvOcspRespMaxBeforeNextUpdateSeconds, 14400 */
    uint32_t min_before_next_update_s;/* SrvOcspRespMinBeforeNextUpdateSeconds, 120 */
    uint32_t min_after_next_update_s; /* SrvOcspRespMinAfterNextUpdateSeconds, 60 */

    srvocsp_hash certid_hash;    /* SHA-1 */
    const char *responder_url;   /* overrides the AIA URLs; NULL = AIA */
    const char *proxy;           /* NULL: http_proxy/no_proxy from the environment */
    size_t max_response_size;    /* 256 KiB */
    uint32_t clock_skew_s;       /* 300 */
    uint32_t max_age_no_next_update_s; /* 3600 */
    int use_nonce;               /* 0: no nonce, so responses stay cacheable */
    const char *directory;       /* persistence directory, NULL = none */

    srvocsp_update_cb update_cb; /* may be NULL */
    void *update_arg;
    /* Called once with update_arg when the handle is finally freed, after
     * its last callback has returned (so update_arg may be freed there).
     * May be NULL. */
    void (*update_arg_free)(void *update_arg);

    /* Trust horizon: a response is never served, nor trusted for
     * scheduling, longer than this after its thisUpdate, whatever its
     * nextUpdate says.  864000 (10 days, as mozilla::pkix). */
    uint32_t max_lifetime_s;
    /* 0 (default): min_validity_s is a fixed margin, as on Windows.  1: the
     * margin shrinks for short-lived responses to a quarter of the
     * response's validity window when that is smaller, so a responder that
     * only issues 5-minute responses is still stapled (nginx and Apache
     * staple those too).  See docs/schedule.md for the measurements. */
    int adaptive_min_validity;
    /* How |directory| is used (SRVOCSP_DIR_*; crypt32's open para READ and
     * WRITE flags), and, read-only, how often the stored file is looked at
     * again: never sooner than min_sync_s after the last look, never later
     * than max_sync_s (see docs/persistence.md). */
    unsigned directory_mode;     /* SRVOCSP_DIR_READ_WRITE */
    uint32_t min_sync_s;         /* SrvOcspRespMinSyncCertFileSeconds, 5 */
    uint32_t max_sync_s;         /* SrvOcspRespMaxSyncCertFileSeconds, 3600 */

    /* The fleet's shared store (docs/fleet.md), beside |directory| (the
     * local copy): redis://[user:password@]host:port[/db],
     * unix:///path/to/redis.sock[?db=N] or
     * redis-sentinel://[user:password@]host[:port][,host[:port]...][/db]#MASTER
     * (srvocsp_store_url_check checks one beforehand).  NULL = none.  Copied at open;
     * open fails with E_INVALID_ARG for a bad URL or unknown scheme and
     * with E_STORE when Redis refuses AUTH or SELECT; a Redis that does not
     * answer is no error (the responders are asked as without it). */
    const char *store_url;
    const char *store_prefix;    /* key prefix, NULL = "srvocsp:" */
} srvocsp_params;

/* directory_mode values. */
/* Load the stored response at open and before each refresh, fetch from
 * the responder, save what was accepted (the default). */
#define SRVOCSP_DIR_READ_WRITE 0u
/* Another process keeps the directory fresh: serve what is stored, re-read
 * it on the sync schedule, never ask the responder, never write. */
#define SRVOCSP_DIR_READ_ONLY 1u
/* Save every accepted response; never load one from the directory. */
#define SRVOCSP_DIR_WRITE_ONLY 2u

/* srvocsp_params_init fills |p| with the defaults listed above. */
SRVOCSP_EXPORT void srvocsp_params_init(srvocsp_params *p);

/* srvocsp_store_url_check says whether |url| is a store URL srvocsp_open
 * would accept as srvocsp_params.store_url, without connecting to
 * anything, so that a configuration can be refused when it is read.
 * Returns SRVOCSP_OK, or E_INVALID_ARG with srvocsp_last_error_text()
 * naming the fault (unknown scheme, no host, no master name...; never the
 * password).  Nothing is kept; |url| is only read during the call.
 * Thread-safe. */
SRVOCSP_EXPORT srvocsp_error srvocsp_store_url_check(const char *url);

/* srvocsp_open opens a handle for |leaf| issued by a certificate found in
 * |chain| (which may also hold the leaf and further CAs).  Inputs are
 * borrowed (the handle keeps its own references).  |params| may be NULL.
 *
 * Without SRVOCSP_OPEN_ASYNC it tries the first retrieval before returning,
 * bounded by url_timeout_ms, and returns a handle even if that failed.
 * With it, it returns at once.  Handles for the same certificate share one
 * retrieval and one snapshot, and so the first opener's settings for
 * fetching, verifying and judging responses (URL, timeouts, directory,
 * max_lifetime_s, and the min_validity_s, clock_skew_s and
 * adaptive_min_validity the schedule and the verdicts use) until the last of
 * them closes; what get hands out is judged by each handle's own
 * min_validity_s, clock_skew_s and adaptive_min_validity.
 *
 * Returns NULL with E_INVALID_ARG (no leaf, no chain, a bad parameter,
 * named in the error text), E_NO_ISSUER, E_NO_OCSP_URL (no OCSP URL in the
 * AIA and none configured), E_STORE (store_url names a store that refused
 * us: AUTH, SELECT), E_SHUTDOWN (the engine is being freed), E_INTERNAL
 * (the engine thread could not start) or E_NOMEM.  The handle is the
 * caller's (srvocsp_close); it lives until its last reference is dropped
 * or its engine is freed.  Thread-safe. */
SRVOCSP_EXPORT srvocsp_handle *srvocsp_open(X509 *leaf, STACK_OF(X509) *chain,
                                            const srvocsp_params *params);
/* srvocsp_open_pem is srvocsp_open with the leaf and chain read from PEM
 * files: |cert_path| holds the leaf first and may hold its issuer;
 * |issuer_path| (may be NULL) holds more CA certificates. E_CERT when a file
 * cannot be read. */
SRVOCSP_EXPORT srvocsp_handle *srvocsp_open_pem(const char *cert_path, const char *issuer_path,
                                                const srvocsp_params *params);
/* srvocsp_handle_up_ref adds a reference; returns |h|. */
SRVOCSP_EXPORT srvocsp_handle *srvocsp_handle_up_ref(srvocsp_handle *h);
/* srvocsp_close drops a reference; at zero the handle leaves its
 * certificate at once and the background refresh stops (if no other handle
 * shares the certificate): an open for the same certificate right after
 * starts afresh, with its own settings.  A callback already queued for the
 * handle may still run once after the close returns (|h| stays usable in
 * it); update_arg_free runs after the last one.  Snapshots handed out stay
 * valid.  NULL is a no-op.  Thread-safe. */
SRVOCSP_EXPORT void srvocsp_close(srvocsp_handle *h);

/* srvocsp_get1_response returns a new reference to the current response if
 * it is time valid (nextUpdate - now >= min_validity) and its status is good
 * or revoked.  Never blocks, does no I/O, no allocation, no lock: safe on a
 * TLS handshake path from any number of threads.  The reference may be a
 * per-thread stand-in for the response (same bytes and fields), so threads
 * do not share a reference count; it is an ordinary srvocsp_response that
 * any thread may up-ref or free.  A reading thread keeps the last response
 * it read for a certificate until it reads a newer one or exits (64 threads
 * at a time get stand-ins; others share the response's count).  Returns
 * NULL with E_OFFLINE (no response yet), E_STALE (the held one has less than
 * min_validity left), E_NOT_YET_VALID (the wall clock went back: the held
 * one's thisUpdate is further ahead than clock_skew_s; the engine refetches
 * at once) or E_STATUS_UNKNOWN. */
SRVOCSP_EXPORT srvocsp_response *srvocsp_get1_response(srvocsp_handle *h);

/* srvocsp_handle_get0_leaf / _issuer return the handle's certificates,
 * borrowed: valid while the caller holds a reference to |h|; do not free.
 * NULL when |h| is NULL.  No lock; any thread. */
SRVOCSP_EXPORT X509 *srvocsp_handle_get0_leaf(const srvocsp_handle *h);
SRVOCSP_EXPORT X509 *srvocsp_handle_get0_issuer(const srvocsp_handle *h);

/* srvocsp_handle_last_failure copies into |buf| the reason of the last
 * failed retrieval for the handle's certificate ("" if none) and returns
 * its code (SRVOCSP_OK if none).  Takes the engine lock: not for hot paths. */
SRVOCSP_EXPORT srvocsp_error srvocsp_handle_last_failure(srvocsp_handle *h, char *buf, size_t len);

/* srvocsp_handle_refresh_now asks the engine to retrieve a new response
 * for the handle's certificate at once (the next backoff step is kept if
 * it fails).  The answer is judged by the usual rules (docs/schedule.md):
 * an older one is a rollback unless the held one can no longer be served,
 * the same one again is "unchanged".  Returns SRVOCSP_OK or E_INVALID_ARG.
 * Thread-safe. */
SRVOCSP_EXPORT srvocsp_error srvocsp_handle_refresh_now(srvocsp_handle *h);

/* srvocsp_handle_offer_der hands the engine a response obtained elsewhere
 * (the .ocsp file a server already staples, another tool's fetch).  It is
 * verified exactly like an answer from the responder and judged by the
 * same rules (no rollback, revoked wins a tie, a response that cannot be
 * served never displaces one that can).  |der| is copied.  Returns
 * SRVOCSP_OK when it is now the held response (or is the held response
 * already), otherwise the reason it was not taken (the held response is
 * untouched, and the handle's last failure is not changed: an offer is not
 * a retrieval).  When it is taken it is treated like a fetched response:
 * saved to the persistence directory, reported to the handle's callbacks
 * (UPDATED/REVOKED, on the engine thread), the schedule recomputed from its
 * times.  The verdict is reached on the engine thread, in order with every
 * other outcome, and waited for; called from an update callback it cannot
 * be waited for: it is then queued and SRVOCSP_OK returned.  Thread-safe;
 * does no network I/O. */
SRVOCSP_EXPORT srvocsp_error srvocsp_handle_offer_der(srvocsp_handle *h, const unsigned char *der,
                                                     size_t len);

/* srvocsp_handle_next_attempt returns the Unix time of the next scheduled
 * retrieval for the handle's certificate (0 if one is in flight). */
SRVOCSP_EXPORT int64_t srvocsp_handle_next_attempt(srvocsp_handle *h);

/* ---------------------------------------------------------------------
 * Chains: one handle per certificate of a served chain
 *
 * TLS 1.3 carries a status for every certificate the server sends (RFC
 * 8446 section 4.4.2.1), not only the leaf's.  A chain opens one ordinary
 * handle for each certificate of the chain a server presents that has an
 * OCSP URL: the leaf (checked against the certificate that issued it) and
 * each intermediate (checked against the next certificate up).  The
 * handles share the engine, the schedule, verification, persistence and
 * sharing with every other handle; a response for an intermediate is
 * verified against the intermediate's own issuer.
 *
 * Who gets a handle:
 *  - the leaf always (it must have an OCSP URL or params->responder_url,
 *    as for srvocsp_open);
 *  - an intermediate when its AIA names an OCSP URL and its issuer is in
 *    the served chain or in |extra|; params->responder_url is the leaf's
 *    responder and is not used for intermediates;
 *  - a self-signed certificate (a root) never: nobody asks about a root.
 * An intermediate without OCSP URL, or whose issuer was not given, simply
 * gets no handle (it is not stapled); that is not an error.
 * ------------------------------------------------------------------- */
typedef struct srvocsp_chain srvocsp_chain;

/* Most certificates a chain may hold (leaf included). */
#define SRVOCSP_CHAIN_MAX 8

/* srvocsp_chain_open opens the handles of the chain a server presents.
 * |served| holds the leaf first, then the certificates sent with it in any
 * order; the chain is the path from the leaf up through certificates of
 * |served| (certificates of |served| that are not on that path are
 * ignored).  |extra| (may be NULL) holds more CA certificates, used only
 * to find the issuer of the last certificate of the path (typically the
 * root that servers do not send).  Inputs are borrowed; the chain keeps
 * its own references.  |params| (may be NULL) is used for every handle,
 * except responder_url (leaf only).  Without SRVOCSP_OPEN_ASYNC the
 * handles are opened one after the other, each trying its first
 * retrieval (bounded by url_timeout_ms) before the next.
 *
 * Returns a chain with one reference, or NULL with the error of opening
 * the leaf (E_INVALID_ARG, E_NO_ISSUER, E_NO_OCSP_URL, ...), E_UNSUPPORTED
 * when the path is longer than SRVOCSP_CHAIN_MAX, or the error of opening
 * an intermediate that has an OCSP URL (E_NOMEM, ...).  Thread-safe. */
SRVOCSP_EXPORT srvocsp_chain *srvocsp_chain_open(STACK_OF(X509) *served, STACK_OF(X509) *extra,
                                                 const srvocsp_params *params);
/* srvocsp_chain_open_pem is srvocsp_chain_open with |served| read from the
 * PEM file |chain_path| (leaf first, as TLS servers load it) and |extra|
 * from |extra_path| (may be NULL).  E_CERT when a file cannot be read. */
SRVOCSP_EXPORT srvocsp_chain *srvocsp_chain_open_pem(const char *chain_path,
                                                     const char *extra_path,
                                                     const srvocsp_params *params);
/* srvocsp_chain_up_ref adds a reference and returns |c| (NULL-safe). */
SRVOCSP_EXPORT srvocsp_chain *srvocsp_chain_up_ref(srvocsp_chain *c);
/* srvocsp_chain_close drops a reference; the last one closes every handle
 * of the chain (srvocsp_close) and frees it.  Handles the caller took its
 * own reference on, and snapshots handed out, stay valid.  NULL is a
 * no-op.  Thread-safe. */
SRVOCSP_EXPORT void srvocsp_chain_close(srvocsp_chain *c);
/* srvocsp_chain_length returns how many certificates the chain's path
 * holds (1 for a lone leaf), 0 for NULL. */
SRVOCSP_EXPORT size_t srvocsp_chain_length(const srvocsp_chain *c);
/* srvocsp_chain_get0_cert borrows the |i|-th certificate of the path (0 is
 * the leaf, then each issuer, in the order a server sends them), valid
 * while the chain is; NULL when |i| is out of range. */
SRVOCSP_EXPORT X509 *srvocsp_chain_get0_cert(const srvocsp_chain *c, size_t i);
/* srvocsp_chain_get0_handle borrows the handle of the |i|-th certificate,
 * valid while the chain is (take srvocsp_handle_up_ref to keep it
 * longer); NULL when that certificate has no handle (a root, no OCSP URL,
 * issuer not given) or |i| is out of range.  Never blocks, no lock. */
SRVOCSP_EXPORT srvocsp_handle *srvocsp_chain_get0_handle(const srvocsp_chain *c, size_t i);

/* srvocsp_response_servable_until returns the last Unix second at which
 * |r| may still be handed out under |params| (their min_validity_s and
 * adaptive_min_validity; NULL: the defaults): its expiry
 * (srvocsp_response_expires) minus the margin the get path keeps, which
 * is min_validity_s, or with the adaptive rule a quarter of the response's
 * validity window when that is smaller.  It is the rule srvocsp_get1_response
 * applies, so a caller can tell when a served response will stop being
 * served.  0 for NULL or an unknown response (never served).  Pure: no
 * lock, no I/O, thread-safe; |r| and |params| are borrowed for the call. */
SRVOCSP_EXPORT int64_t srvocsp_response_servable_until(const srvocsp_response *r,
                                                       const srvocsp_params *params);

#ifdef __cplusplus
}
#endif
#endif /* SRVOCSP_H */
