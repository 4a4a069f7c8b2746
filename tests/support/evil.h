/*
 * A fault-injecting OCSP responder for tests: HTTP/1.1 on 127.0.0.1, real
 * responses signed with the test PKI, and every way a responder (or
 * someone in the middle) can go wrong.
 *
 * The scenario comes from the first path segment: a scenario name
 * ("/trylater/<request>") fixes it; "/k<N>/" uses control slot N, which the
 * test switches with evil_set_slot.  "fast" serves pre-signed responses
 * from a cache over keep-alive (for benchmarks).  "cdn-cached" behaves like a
 * CDN in front of a responder: the first answer for a certificate is
 * kept and handed back for every later request.  A query string is cut
 * off the path before it is read (GET data after it is lost, as with real
 * responders); POST bodies are read as they are.  "post-refused-405" and
 * "get-refused-400" are fronts that take only the other method
 * (evil_set_refusal changes how they refuse);
 * "get-hangs" never answers a GET (a POST gets a good response).
 */
#ifndef SRVOCSP_EVIL_H
#define SRVOCSP_EVIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "testpki.h"

#define EVIL_SCENARIOS(X)                                                                          \
    X(GOOD, "good")                                                                                \
    X(FAST, "fast")                                                                                \
    X(HANG, "hang")                                                                                \
    X(SLOW, "slow")                                                                                \
    X(DRIP, "drip")                                                                                \
    X(CLOSE_MID, "close-mid-body")                                                                 \
    X(HTTP404, "http-404")                                                                         \
    X(HTTP500, "http-500")                                                                         \
    X(HTTP503, "http-503")                                                                         \
    X(BAD_CTYPE, "wrong-content-type")                                                             \
    X(EMPTY, "empty-body")                                                                         \
    X(TRUNCATED, "truncated-der")                                                                  \
    X(GARBAGE, "garbage")                                                                          \
    X(TOO_LARGE, "too-large")                                                                      \
    X(REDIRECT, "redirect")                                                                        \
    X(MALFORMED, "malformedRequest")                                                               \
    X(INTERNAL, "internalError")                                                                   \
    X(TRYLATER, "tryLater")                                                                        \
    X(SIGREQUIRED, "sigRequired")                                                                  \
    X(UNAUTHORIZED, "unauthorized")                                                                \
    X(UNKNOWN, "unknown")                                                                          \
    X(REVOKED, "revoked")                                                                          \
    X(OTHER_CERT, "other-certificate")                                                             \
    X(WRONG_SERIAL, "wrong-serial")                                                                \
    X(WRONG_NAME_HASH, "wrong-issuer-name-hash")                                                   \
    X(WRONG_KEY_HASH, "wrong-issuer-key-hash")                                                     \
    X(WRONG_KEY, "signed-by-wrong-key")                                                            \
    X(DELEGATE_NOEKU, "delegate-without-eku")                                                      \
    X(DELEGATE_OTHER_CA, "delegate-of-other-ca")                                                   \
    X(DELEGATE_EXPIRED, "expired-delegate")                                                        \
    X(DELEGATE_OK, "delegate")                                                                     \
    X(FUTURE, "thisupdate-in-future")                                                              \
    X(PAST, "nextupdate-in-past")                                                                  \
    X(NO_NEXT, "no-nextupdate")                                                                    \
    X(ROLLBACK, "rollback")                                                                        \
    X(SHA256, "sha256-certid")                                                                     \
    X(NOT_FIRST, "ours-not-first")                                                                 \
    X(CRITICAL_EXT, "critical-extension")                                                          \
    X(BER, "ber-outer")                                                                            \
    X(GZIP, "gzip-encoded")                                                                        \
    X(CACHED, "cdn-cached")                                                                        \
    X(GOOD_SLOW, "good-after-300ms")                                                              \
    X(NO_POST, "post-refused-405")                                                                 \
    X(NO_GET, "get-refused-400")                                                                   \
    X(GET_HANGS, "get-hangs")

typedef enum evil_scenario {
#define EVIL_ENUM(id, name) EVIL_##id,
    EVIL_SCENARIOS(EVIL_ENUM)
#undef EVIL_ENUM
    EVIL__COUNT
} evil_scenario;

typedef struct evil evil;

const char *evil_name(evil_scenario s);
/* Starts on a free port of 127.0.0.1.  Responses are dated by |now| (so a
 * test's injected clock and the responder agree) and valid |validity_s|. */
evil *evil_start(const tp_pki *pki, int64_t (*now)(void *), void *now_ctx, int64_t validity_s);
int evil_port(const evil *e);
void evil_set_slot(evil *e, int slot, evil_scenario s);
/* How the one-method fronts (get-refused-400, post-refused-405) turn away
 * the method they do not take, for every slot and path: |how| 0 keeps their
 * own (400, and 405 with Allow: GET); an HTTP status (404, 414, 501...) is
 * sent with an empty text/plain body; EVIL_REFUSE_HTML is a 200 text/html
 * page; EVIL_REFUSE_MALFORMED a 200 OCSP malformedRequest. */
#define EVIL_REFUSE_HTML (-1)
#define EVIL_REFUSE_MALFORMED (-2)
void evil_set_refusal(evil *e, int how);
/* For the "fast" scenario: the pre-signed response served for |serial|. */
void evil_add_presigned(evil *e, long serial, const unsigned char *der, size_t len);
/* Requests answered so far. */
long evil_requests(evil *e);
/* TCP connections accepted so far (keep-alive makes it < requests). */
long evil_connections(evil *e);
/* The most requests that were being answered at the same time. */
long evil_max_concurrent(evil *e);
void evil_stop(evil *e);

#endif
