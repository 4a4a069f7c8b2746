/* A manual clock and an in-process transport for engine tests. */
#ifndef SRVOCSP_FAKE_H
#define SRVOCSP_FAKE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "srvocsp.h"

typedef struct manual_clock {
    _Atomic int64_t now;
    _Atomic int64_t mono_ms;     /* with manual_clock_use_monotonic */
    srvocsp_clock clock;
} manual_clock;

/* A wall clock only: every step is time passing. */
void manual_clock_init(manual_clock *c, int64_t start);
void manual_clock_set(manual_clock *c, int64_t t);
/* Gives the clock a monotonic side, so the engine can tell time passing
 * (manual_clock_advance: both move) from the wall clock being stepped
 * (manual_clock_jump: only the wall clock moves). */
void manual_clock_use_monotonic(manual_clock *c);
void manual_clock_advance(manual_clock *c, int64_t secs);
void manual_clock_jump(manual_clock *c, int64_t secs);

typedef struct fake_reply {
    srvocsp_error error;
    long status;
    const char *content_type;
    unsigned char *body; /* malloc'd; freed by the transport */
    size_t len;
} fake_reply;

/* Fills |out| for a request to |url|.  Called on the engine's thread. */
typedef void (*fake_handler)(void *arg, const char *url, fake_reply *out);

typedef struct fake_transport {
    pthread_mutex_t mu;
    fake_handler handler;
    void *arg;
    int requests;
    int64_t times[256];     /* clock time of each request */
    char last_url[2048];
    manual_clock *clock;
    srvocsp_transport transport;
} fake_transport;

void fake_init(fake_transport *t, manual_clock *clock, fake_handler h, void *arg);
int fake_requests(fake_transport *t);
void fake_destroy(fake_transport *t);

/* An engine on |clock| and |t|; |jitter| < 0 keeps the default jitter,
 * |seed| 0 the default seed. */
srvocsp_engine *fake_engine_new(manual_clock *clock, fake_transport *t, int jitter, uint64_t seed);

/* A handler signing, at each request, a fresh good response for |leaf|
 * by the CA of |pki|, valid |validity| seconds from |clock|'s now.  Pass
 * the fake_signer as the handler's argument. */
#include "testpki.h"
typedef struct fake_signer {
    const tp_pki *pki;
    const tp_cert *leaf;
    manual_clock *clock;
    int64_t validity;
} fake_signer;
void fake_sign_good(void *arg, const char *url, fake_reply *out);

/* srvocsp_open for |leaf| with |issuer| as its chain and |p| (NULL: the
 * defaults). */
#include <openssl/x509.h>
srvocsp_handle *fake_open(X509 *leaf, X509 *issuer, const srvocsp_params *p);

#endif
