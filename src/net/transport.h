/*
 * The built-in transport: libcurl's multi interface, driven by the
 * engine's one thread (no thread of its own).  The engine sees it through
 * srvocsp_transport like any injected transport, plus the wait below.
 */
#ifndef SRVOCSP_TRANSPORT_H
#define SRVOCSP_TRANSPORT_H

#include "internal.h"

SRVOCSP__HIDDEN void *srvocsp__curl_new(const srvocsp_engine_config *cfg);
/* Ends every transfer still queued or running with E_SHUTDOWN (through
 * their done callbacks, on the calling thread) and frees the transport.
 * Only once the engine thread has stopped. */
SRVOCSP__HIDDEN void srvocsp__curl_free(void *t);
/* Queues a transfer; any thread; never blocks on the network.  |driver|
 * says the caller is the thread that drives |t| (srvocsp__curl_drive): it
 * adds what was queued at the start of its next drive, so no wakeup is
 * sent; any other thread's transfer ends the driver's wait. */
SRVOCSP__HIDDEN srvocsp_error srvocsp__curl_start(void *t, const srvocsp_http_request *req,
                                                 srvocsp_http_done_fn done, void *arg,
                                                 bool driver);
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

#endif
