/*
 * Internal declarations shared between the library's source files.
 * Nothing here is part of the public API; non-static names use the
 * srvocsp__ prefix.
 */
#ifndef SRVOCSP_INTERNAL_H
#define SRVOCSP_INTERNAL_H

#ifndef SRVOCSP_BUILDING
#define SRVOCSP_BUILDING 1
#endif
#include "srvocsp.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>

#define SRVOCSP__HIDDEN __attribute__((visibility("hidden")))

/* Planted defects: the simulator (sim/) proves that its oracle catches
 * each kind by taking one rule out of a build of the library made for
 * that alone (SRVOCSP_PLANT_DEFECTS, never set for the library that is
 * shipped, where SRVOCSP__PLANTED is constant false). */
enum {
    SRVOCSP__PLANT_ROLLBACK = 1,     /* core/verdict.c: an older response replaces a newer */
    SRVOCSP__PLANT_REVOKED_TIE = 2,  /* core/verdict.c: revoked does not win a tie */
    SRVOCSP__PLANT_CLOCK_REPLAN = 3, /* engine/loop.c: no replan after a clock jump */
    SRVOCSP__PLANT_FLEET = 4         /* engine/fleet.c: the store keeps the higher thisUpdate */
};
#ifdef SRVOCSP_PLANT_DEFECTS
extern int srvocsp__planted;
#define SRVOCSP__PLANTED(d) (srvocsp__planted == (d))
#else
#define SRVOCSP__PLANTED(d) 0
#endif

/* Hard caps on what we accept from the network or the disk. */
#define SRVOCSP__MAX_RESPONSE_CAP (16u * 1024u * 1024u) /* absolute ceiling */
#define SRVOCSP__DEFAULT_MAX_RESPONSE (256u * 1024u)
#define SRVOCSP__MAX_URLS 8
#define SRVOCSP__MAX_URL_LEN 2048
#define SRVOCSP__REASON_LEN 512

/* ---- util/error.c ---- */
/* Sets the thread's last error with a formatted detail message. */
SRVOCSP__HIDDEN void srvocsp__set_error(srvocsp_error e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Sets the thread's last error to |e| with the table message; no
 * formatting, no allocation (usable on the hot path). */
SRVOCSP__HIDDEN void srvocsp__set_error_code(srvocsp_error e);
/* Appends OpenSSL's error queue (drained) as "; reason; reason" to |buf|. */
SRVOCSP__HIDDEN void srvocsp__drain_ossl(char *buf, size_t len);
/* snprintf into a fixed buffer; truncates, always terminates. */
SRVOCSP__HIDDEN void srvocsp__fmt(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The DER header of a TLV with |tag| and an |n|-byte body, written to |p|
 * (at most 6 bytes); returns its size. */
static inline size_t srvocsp__der_header(unsigned char *p, unsigned char tag, size_t n)
{
    size_t k = 0, i, m;

    p[0] = tag;
    if (n < 0x80) {
        p[1] = (unsigned char)n;
        return 2;
    }
    for (m = n; m != 0; m >>= 8)
        k++;
    p[1] = (unsigned char)(0x80 | k);
    for (i = 0; i < k; i++)
        p[2 + i] = (unsigned char)(n >> (8 * (k - 1 - i)));
    return 2 + k;
}

/* ---- util/alloc.c ---- */
/* Every allocation of the library goes through these, so tests can make
 * the n-th one fail (srvocsp__alloc_fail_at) and check that nothing
 * crashes or leaks.  Outside such a test they are malloc and friends. */
SRVOCSP__HIDDEN void *srvocsp__malloc(size_t n);
SRVOCSP__HIDDEN void *srvocsp__calloc(size_t n, size_t size);
SRVOCSP__HIDDEN void *srvocsp__realloc(void *p, size_t n);
SRVOCSP__HIDDEN char *srvocsp__strdup(const char *s);
/* Makes the |n|-th allocation from now fail (0 = the next); -1 = never. */
SRVOCSP__HIDDEN void srvocsp__alloc_fail_at(long n);
/* Whether the allocation being made now is the one to fail (counts it). */
SRVOCSP__HIDDEN bool srvocsp__alloc_should_fail(void);
/* Allocations counted since the process started. */
SRVOCSP__HIDDEN unsigned long srvocsp__alloc_count(void);

/* ---- util/fileio.c ---- */
/* Replaces |path| atomically with |len| bytes (mode 0644).  Returns 0, or
 * the errno of what failed (the old file is then untouched). */
#define SRVOCSP__TMP_INFIX ".tmp."
SRVOCSP__HIDDEN int srvocsp__write_file_atomic(const char *path, const unsigned char *data,
                                              size_t len);
/* Appends the PEM certificates of |path| to |sk|, at most
 * SRVOCSP__PEM_CERTS_MAX (a bound for what is read from disk).  Returns
 * SRVOCSP_OK, or E_CERT (cannot open, no certificate) or E_NOMEM with the
 * error set naming the file. */
#define SRVOCSP__PEM_CERTS_MAX 64
SRVOCSP__HIDDEN srvocsp_error srvocsp__read_pem_certs(const char *path, STACK_OF(X509) *sk);

/* ---- util/timeutil.c ---- */
SRVOCSP__HIDDEN int64_t srvocsp__system_now(void *ctx);
SRVOCSP__HIDDEN int64_t srvocsp__system_monotonic_ms(void *ctx);
SRVOCSP__HIDDEN int64_t srvocsp__asn1_time_to_unix(const ASN1_TIME *t, bool *ok);
/* Formats Unix seconds as RFC 3339 UTC into |buf| (>= 21 bytes). */
SRVOCSP__HIDDEN void srvocsp__fmt_time(int64_t t, char *buf, size_t len);
/* |*ts| = CLOCK_MONOTONIC now + |ms|, for pthread_cond_timedwait on
 * condition variables created with CLOCK_MONOTONIC. */
struct timespec;
SRVOCSP__HIDDEN void srvocsp__deadline_ms(struct timespec *ts, uint64_t ms);

/* ---- util/thread.c ---- */
#include <pthread.h>
SRVOCSP__HIDDEN int srvocsp__thread_create(pthread_t *t, void *(*fn)(void *), void *arg);
SRVOCSP__HIDDEN void srvocsp__note_fork_child(void);

/* ---- core/response.c: immutable snapshots ---- */

/* The byte layout crypt32 callers see (CERT_SERVER_OCSP_RESPONSE_CONTEXT):
 * kept inside every snapshot so that the Windows-compatible library can
 * hand out a pointer to it without allocating on its get path (proxies,
 * core/proxy.h, carry one too). */
struct srvocsp__flat_view {
    uint32_t cb_size;
    unsigned char *pb;
    uint32_t cb;
};

struct srvocsp_response {
    atomic_size_t refs;
    /* NULL for a snapshot; for a per-thread proxy (core/proxy.h), the
     * snapshot it stands for and holds a reference to.  A proxy copies the
     * fields below and borrows the snapshot's DER bytes. */
    struct srvocsp_response *base;
    bool pooled; /* a proxy in static storage: its last free frees no memory */
    /* A proxy its owning thread counts (core/proxy.h): the true count is
     * local + refs - SRVOCSP__PROXY_BIAS; |local| is that thread's alone. */
    bool biased;
    size_t local;
    struct srvocsp__flat_view view; /* view.pb: the DER bytes */
    srvocsp_cert_status status;
    int64_t this_update;
    int64_t next_update; /* 0 when absent */
    int64_t produced_at;
    int64_t expires;     /* next_update, or this_update + max age */
    int64_t rev_time;
    int rev_reason;
    size_t len;
    /* A snapshot's DER bytes follow the struct in the same allocation. */
};

SRVOCSP__HIDDEN srvocsp_response *srvocsp__response_new(const unsigned char *der, size_t len);
/* Recovers the snapshot from the flat view pointer handed to callers
 * (inline: the Windows-compatible library uses it without internal symbols). */
static inline srvocsp_response *srvocsp__response_from_view(const struct srvocsp__flat_view *v)
{
    return (srvocsp_response *)(void *)((char *)(uintptr_t)v - offsetof(srvocsp_response, view));
}

/* ---- core/verify.c ---- */
typedef struct srvocsp__policy {
    int64_t now;
    uint32_t skew_s;
    uint32_t max_age_s;
    uint32_t max_lifetime_s;     /* 0: no horizon */
    /* The certificate's CertID when the caller keeps it (an entry's
     * request, computed once): a SingleResponse equal to it matches
     * without recomputing the issuer's hashes.  NULL: computed per
     * response.  Borrowed; it must outlive the call. */
    const struct srvocsp__certid *certid;
    /* Where the caller keeps the delegated responder certificate last
     * found authorized for this certificate (an entry's): the same
     * certificate again skips the check of the issuer's signature on it
     * (its validity and EKU are still checked).  NULL: checked each time.
     * Borrowed; it must outlive the call. */
    struct srvocsp__delegate_memo *delegate;
    /* What verifications share (an engine's): signature contexts ready
     * per key, the certificates responders carry parsed once
     * (core/signer_cache.c).  NULL: everything done afresh.  Borrowed. */
    struct srvocsp__signer_cache *signers;
} srvocsp__policy;

/* core/signer_cache.c: memos that spare verification work between
 * responses, shared by an engine's entries; any thread (locked inside). */
#include <openssl/ocsp.h>
typedef struct srvocsp__signer_cache srvocsp__signer_cache;
typedef struct srvocsp__signer_cache_stats {
    unsigned long ctx_made;      /* signature contexts set up and kept */
    unsigned long ctx_reused;    /* checks that copied a kept context */
    unsigned long certs_kept;    /* certificates fields kept, parsed */
    unsigned long certs_reused;  /* responses parsed without theirs */
} srvocsp__signer_cache_stats;
/* A new, empty cache; NULL when out of memory.  Freed with _free, after
 * every verification that uses it has returned. */
SRVOCSP__HIDDEN srvocsp__signer_cache *srvocsp__signer_cache_new(void);
SRVOCSP__HIDDEN void srvocsp__signer_cache_free(srvocsp__signer_cache *sc);
/* Around fork(): held by the forking thread (prepare), given back in the
 * parent, made anew in the child. */
SRVOCSP__HIDDEN void srvocsp__signer_cache_fork_prepare(srvocsp__signer_cache *sc);
SRVOCSP__HIDDEN void srvocsp__signer_cache_fork_parent(srvocsp__signer_cache *sc);
SRVOCSP__HIDDEN void srvocsp__signer_cache_fork_child(srvocsp__signer_cache *sc);
SRVOCSP__HIDDEN void srvocsp__signer_cache_stats_get(srvocsp__signer_cache *sc,
                                                     srvocsp__signer_cache_stats *out);
struct srvocsp__issuer_ids;
/* |issuer|'s hashes (core/request.c), kept; false when they cannot be
 * computed.  |sc| NULL: computed each time. */
SRVOCSP__HIDDEN bool srvocsp__signer_cache_issuer_ids(srvocsp__signer_cache *sc, X509 *issuer,
                                                      struct srvocsp__issuer_ids *out);
/* Checks |bs|'s signature with |signer|'s key: 1 valid, 0 not, -1 when
 * this cache does not check that algorithm (or |sc| is NULL) and the
 * caller uses OpenSSL's OCSP_basic_verify.  |keep|: |signer| is one the
 * caller holds across responses (an issuer, a kept certificate), so its
 * context is worth keeping.  |tbs|: the DER of |bs|'s tbsResponseData
 * when the caller has it (srvocsp__ocsp_tbs_span), NULL to encode it. */
SRVOCSP__HIDDEN int srvocsp__signer_cache_verify(srvocsp__signer_cache *sc, OCSP_BASICRESP *bs,
                                                 X509 *signer, bool keep,
                                                 const unsigned char *tbs, size_t tbs_len);
/* The tbsResponseData TLV inside the DER OCSPResponse |der| (successful,
 * id-pkix-ocsp-basic), header included: the bytes its signature covers.
 * False when |der| is not laid out so (BER lengths included). */
SRVOCSP__HIDDEN bool srvocsp__ocsp_tbs_span(const unsigned char *der, size_t len,
                                           const unsigned char **tbs, size_t *tbs_len);
/* When the DER OCSPResponse |der| carries a certificates field byte for
 * byte equal to one kept, its BasicOCSPResponse parsed without it, and
 * in |*certs| the kept certificates (the caller frees both); NULL
 * otherwise (then parse the whole response).  The response is then known
 * to be DER throughout. */
SRVOCSP__HIDDEN OCSP_BASICRESP *srvocsp__signer_cache_parse(srvocsp__signer_cache *sc,
                                                            const unsigned char *der, size_t len,
                                                            STACK_OF(X509) **certs);
/* Keeps |certs|, parsed from the certificates field of |der|, which must
 * be DER throughout (a response verify.c serves as it came). */
SRVOCSP__HIDDEN void srvocsp__signer_cache_keep(srvocsp__signer_cache *sc,
                                                const unsigned char *der, size_t len,
                                                const STACK_OF(X509) *certs);

/* The delegate certificate a caller keeps between verifications (see
 * srvocsp__policy.delegate), as its SHA-256 fingerprint: 33 bytes an
 * entry, not a parsed certificate.  Starts zeroed; any thread (verify.c
 * locks it). */
typedef struct srvocsp__delegate_memo {
    bool set;
    unsigned char sha256[32];
} srvocsp__delegate_memo;

/* core/delegate_memo.c: whether |cand| is the delegate |m| keeps (false
 * for a NULL memo); keeping |cand| replaces what |m| held. */
SRVOCSP__HIDDEN bool srvocsp__delegate_memo_knows(srvocsp__delegate_memo *m, X509 *cand);
SRVOCSP__HIDDEN void srvocsp__delegate_memo_keep(srvocsp__delegate_memo *m, X509 *cand);

#define SRVOCSP__DEFAULT_MAX_LIFETIME 864000u /* 10 days, as mozilla::pkix */

/* When a response with these times stops being usable under |pol|: its
 * nextUpdate (|next_up|, 0 for none: thisUpdate + the maximum age), and
 * never later than the trust horizon (max_lifetime_s) after thisUpdate.
 * What srvocsp__verify puts in a snapshot's |expires|. */
SRVOCSP__HIDDEN int64_t srvocsp__expiry(int64_t this_up, int64_t next_up,
                                       const srvocsp__policy *pol);
/* Verifies |der| for |leaf|/|issuer|; on success stores a new snapshot in
 * |*out|.  On failure returns the reason code and a sentence in |why|. */
SRVOCSP__HIDDEN srvocsp_error srvocsp__verify(const unsigned char *der, size_t len, X509 *leaf,
                                             X509 *issuer, const srvocsp__policy *pol,
                                             srvocsp_response **out, char *why, size_t whylen);

/* ---- core/ocsp_status.c ---- */
/* A sentence for a non-successful OCSPResponseStatus ("responder answered
 * unauthorized (6): ..."), into |buf|. */
SRVOCSP__HIDDEN void srvocsp__ocsp_status_text(int status, char *buf, size_t len);

/* ---- core/http_answer.c ---- */
/* Checks a responder's HTTP answer (transport outcome, status 200,
 * Content-Type application/ocsp-response) and verifies its body. */
SRVOCSP__HIDDEN srvocsp_error srvocsp__accept_http(const srvocsp_http_result *res, X509 *leaf,
                                                  X509 *issuer, const srvocsp__policy *pol,
                                                  srvocsp_response **out, char *why,
                                                  size_t whylen);

/* ---- core/request.c ---- */
/* A CertID's parts, as an entry keeps them for verification: no
 * allocation, and the serial is the leaf's own. */
#define SRVOCSP__CERTID_HASH_MAX 32 /* SHA-256, the longest CertID hash we send */
typedef struct srvocsp__certid {
    int md_nid;                  /* NID_undef: none kept */
    unsigned char hash_len;
    unsigned char name_hash[SRVOCSP__CERTID_HASH_MAX];
    unsigned char key_hash[SRVOCSP__CERTID_HASH_MAX];
} srvocsp__certid;

typedef struct srvocsp__request {
    unsigned char *der;           /* encoded OCSPRequest */
    size_t der_len;
    unsigned char *key;           /* identity of the certificate: DER CertID */
    size_t key_len;
    srvocsp__certid id;           /* the same CertID's parts: what verification matches */
    char *urls[SRVOCSP__MAX_URLS];/* responder base URLs, in order */
    char *get_urls[SRVOCSP__MAX_URLS]; /* GET form, or NULL when POST is needed */
    size_t n_urls;
} srvocsp__request;

/* What a CertID takes from its issuer, for each hash a request may use:
 * the hashes of its subject name's DER and of its public key's bits. */
typedef struct srvocsp__issuer_ids {
    unsigned char name_sha1[20], key_sha1[20];
    unsigned char name_sha256[32], key_sha256[32];
} srvocsp__issuer_ids;
/* Computes them; false on failure (OpenSSL's error queue says why). */
SRVOCSP__HIDDEN bool srvocsp__issuer_ids_compute(X509 *issuer, srvocsp__issuer_ids *out);
/* As srvocsp__request_build, with the issuer's hashes when the caller
 * keeps them (NULL: computed here). */
SRVOCSP__HIDDEN srvocsp_error srvocsp__request_build_with(X509 *leaf, X509 *issuer,
                                                         const srvocsp__issuer_ids *ids,
                                                         srvocsp_hash hash,
                                                         const char *override_url, int nonce,
                                                         srvocsp__request *out);
/* Builds the request and URL list.  |override_url| replaces the AIA URLs.
 * E_NO_OCSP_URL when there is no usable URL. */
SRVOCSP__HIDDEN srvocsp_error srvocsp__request_build(X509 *leaf, X509 *issuer, srvocsp_hash hash,
                                                    const char *override_url, int nonce,
                                                    srvocsp__request *out);
SRVOCSP__HIDDEN void srvocsp__request_clear(srvocsp__request *r);
/* RFC 6960 appendix A / RFC 5019 GET URL: base + "/" + url-encoded base64.
 * Returns a malloc'd string, or NULL when it would exceed 255 bytes or on
 * allocation failure. */
SRVOCSP__HIDDEN char *srvocsp__get_url(const char *base, const unsigned char *der, size_t len);
/* Finds the issuer of |leaf| in |chain|; borrowed pointer or NULL. */
SRVOCSP__HIDDEN X509 *srvocsp__find_issuer(X509 *leaf, STACK_OF(X509) *chain);

/* ---- core/schedule.c: when to fetch (pure functions) ---- */
typedef struct srvocsp__sched {
    uint32_t min_validity_s;
    uint32_t max_before_s;
    uint32_t min_before_s;
    uint32_t min_after_s;
    uint32_t skew_s;             /* thisUpdate further ahead: withheld */
    bool adaptive;               /* adaptive_min_validity */
} srvocsp__sched;

#define SRVOCSP__BACKOFF_FIRST_S 60
/* Another process holds a certificate's lease: look for its save this soon. */
#define SRVOCSP__LEASE_RETRY_S 1
#define SRVOCSP__BACKOFF_MAX_S 3600
/* ... while nothing held can be served (schedule.c). */
#define SRVOCSP__BACKOFF_MAX_COLD_S 600

/* The margin a response must keep before its expiry to be handed out:
 * MinValidity, or with the adaptive rule a quarter of the response's
 * validity window when that is smaller.  Inline: the get path uses it. */
static inline int64_t srvocsp__margin(const srvocsp_response *r, uint32_t min_validity,
                                      bool adaptive)
{
    int64_t m = (int64_t)min_validity;

    if (adaptive) {
        int64_t q = (r->expires - r->this_update) / 4;

        if (q < m)
            m = q;
    }
    return m;
}

/* Whether |r| may be handed out at |now|: good or revoked, and
 * expires - now >= the margin. */
static inline bool srvocsp__servable(const srvocsp_response *r, int64_t now, uint32_t min_validity,
                                     bool adaptive)
{
    return r->status != SRVOCSP_STATUS_UNKNOWN &&
           r->expires - now >= srvocsp__margin(r, min_validity, adaptive);
}

static inline bool srvocsp__sched_servable(const srvocsp__sched *p, const srvocsp_response *r,
                                           int64_t now)
{
    return srvocsp__servable(r, now, p->min_validity_s, p->adaptive);
}

/* Whether |r|'s thisUpdate lies further ahead of |now| than the skew (the
 * wall clock went back, or the responder's runs ahead): strict clients
 * refuse such a staple. */
static inline bool srvocsp__from_future(const srvocsp_response *r, int64_t now, uint32_t skew_s)
{
    return r->this_update > now + (int64_t)skew_s;
}

/* The last moment |r| may be handed out. */
SRVOCSP__HIDDEN int64_t srvocsp__sched_last_servable(const srvocsp__sched *p,
                                                    const srvocsp_response *r);
/* Next refresh after a response was accepted (or loaded) at |now|. */
SRVOCSP__HIDDEN int64_t srvocsp__sched_after_success(const srvocsp__sched *p,
                                                    const srvocsp_response *r, int64_t now,
                                                    bool fresh);
/* Next ask after the responder handed back the held response |r| again. */
SRVOCSP__HIDDEN int64_t srvocsp__sched_after_unchanged(const srvocsp__sched *p,
                                                      const srvocsp_response *r, int64_t now);
/* Base backoff before jitter for the |failures|-th consecutive failure. */
SRVOCSP__HIDDEN int64_t srvocsp__backoff_s(unsigned failures);
/* Next attempt after the |failures|-th consecutive failure; |jitter| in
 * [-1, 1] scales the +/- |jitter_percent| spread.  |cur| may be NULL. */
SRVOCSP__HIDDEN int64_t srvocsp__sched_after_failure(const srvocsp__sched *p,
                                                    const srvocsp_response *cur, int64_t now,
                                                    unsigned failures, double jitter,
                                                    unsigned jitter_percent);

#endif
