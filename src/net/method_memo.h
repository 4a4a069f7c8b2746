/*
 * Which HTTP method each responder answers: RFC 5019 GET unless a
 * responder refused or mishandled it (or POST, the other way round), learnt
 * by the transport (net/curl_transport.c) and kept for the whole process.
 *
 * A responder is named by the scheme, host, port and path of its base URL.
 * An entry is either confirmed (the other method gave an OCSP response) or
 * on trial (GET got no answer at all: the next request tries POST once, and
 * only a POST that works makes it confirmed).  Entries are forgotten
 * SRVOCSP__MEMO_KEEP_MS after they were learnt (the transport learns only
 * from a fallback or a trial, not from a remembered method that works), so
 * a responder that was fixed gets GET again; with every slot taken, the
 * entry nearest to being forgotten makes room.
 *
 * Each finding (learnt, confirmed after a trial, or the method changed)
 * gets an id above every id given before; confirming an entry again with
 * the same method keeps its id, so a reader reports each id once.
 *
 * Times are passed in (milliseconds of a clock that never jumps) so tests
 * can step them.
 */
#ifndef SRVOCSP_METHOD_MEMO_H
#define SRVOCSP_METHOD_MEMO_H

#include "internal.h"

#define SRVOCSP__MEMO_SLOTS 64
#define SRVOCSP__MEMO_KEEP_MS (24LL * 3600 * 1000)
#define SRVOCSP__MEMO_KEY_LEN 256

typedef enum srvocsp__method {
    SRVOCSP__AS_ASKED = 0, /* nothing remembered: the caller's choice */
    SRVOCSP__USE_POST = 1,
    SRVOCSP__USE_GET = 2
} srvocsp__method;

/* Writes "scheme://host:port/path" of |url| (query and fragment dropped,
 * the default port made explicit) into |key|.  Returns false when |url|
 * does not parse or the key would not fit.  The last URL's key is
 * remembered (every request asks; most share a few responders).  Any
 * thread. */
SRVOCSP__HIDDEN bool srvocsp__responder_key(const char *url, char *key, size_t len);
/* The method to use first for |key| at |now_ms|; counts the request
 * against the entry when it is not SRVOCSP__AS_ASKED.  |*trial| (may be
 * NULL) tells whether the entry is only on trial. */
SRVOCSP__HIDDEN srvocsp__method srvocsp__memo_pick(const char *key, int64_t now_ms, bool *trial);
/* |method| gave an OCSP response where the other did not (|why| says what
 * the other did): remembered, or confirmed again, until now + KEEP. */
SRVOCSP__HIDDEN void srvocsp__memo_learn(const char *key, srvocsp__method method,
                                        const char *why, int64_t now_ms);
/* A GET got no answer within the timeout on an accepted connection: the
 * next request tries POST (on trial).  A confirmed entry is left as is. */
SRVOCSP__HIDDEN void srvocsp__memo_suspect_get(const char *key, const char *why, int64_t now_ms);
/* Drops what is remembered for |key| (the method chosen from memory did not
 * work, or the first choice works again). */
SRVOCSP__HIDDEN void srvocsp__memo_forget(const char *key);
/* srvocsp_method_fallbacks at |now_ms|. */
SRVOCSP__HIDDEN size_t srvocsp__memo_list(srvocsp_method_fallback *out, size_t max,
                                         int64_t now_ms);
/* What an answer says about the method it was sent with (every rule of
 * the table in docs/responders.md, kept here).  A GET answered |status|
 * with |body|: whether the responder cannot take this GET (a refusal, a
 * redirect, a 200 that is no OCSP response, malformedRequest), |why|
 * naming what it did. */
SRVOCSP__HIDDEN bool srvocsp__get_refused(long status, const unsigned char *body, size_t len,
                                         char *why, size_t whylen);
/* A POST answered |status|: whether the responder takes no POST. */
SRVOCSP__HIDDEN bool srvocsp__post_refused(long status, char *why, size_t whylen);
/* Whether an answer is one the engine can judge: HTTP 200 carrying an
 * OCSP response that is not malformedRequest. */
SRVOCSP__HIDDEN bool srvocsp__answer_judgeable(long status, const unsigned char *body,
                                              size_t len);
/* Forgets everything (tests). */
SRVOCSP__HIDDEN void srvocsp__memo_reset(void);

#endif
