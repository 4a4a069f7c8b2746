/*
 * The example servers' plumbing, which has nothing to do with stapling: a
 * listening socket on 127.0.0.1, a thread per connection, and a clean stop
 * on SIGTERM or SIGINT that waits for the serving threads (they borrow the
 * TLS context and the handles, freed after example_serve returns).
 */
#ifndef SRVOCSP_EXAMPLE_SERVE_H
#define SRVOCSP_EXAMPLE_SERVE_H

#include <stddef.h>
#include <stdint.h>

/* Listens on 127.0.0.1:|port|.  Returns the socket, or -1 after printing
 * why, prefixed by |name|. */
int example_listen(const char *name, int port);

/* Accepts on |lfd| until SIGTERM or SIGINT, running |serve|(fd) on a thread
 * of its own for each connection (|serve| closes fd).  Returns after the
 * last serving thread ended, with |lfd| closed. */
void example_serve(const char *name, int lfd, void (*serve)(int fd));

/* |t| as RFC 3339 UTC ("-" if it cannot be shown); safe from any thread. */
void example_fmt_utc(int64_t t, char *buf, size_t len);

#endif
