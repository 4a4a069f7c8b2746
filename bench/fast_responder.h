#ifndef SRVOCSP_BENCH_FAST_RESPONDER_H
#define SRVOCSP_BENCH_FAST_RESPONDER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "testpki.h"

/* The fast responder (pre-signed responses by serial) in a child process,
 * so its CPU is not the benchmark's, on 127.0.0.1:|port|. */
typedef struct bench_responder {
    pid_t pid;
    int port;
    int to_child, from_child;
} bench_responder;

/* Forks it; call before making what the benchmark measures (below). */
bool bench_responder_start(bench_responder *r, const tp_pki *pki);
/* Serves |der[i]| for serial |serial0| + i from now on, i < |n|; returns
 * once it does. */
bool bench_responder_feed(bench_responder *r, unsigned char **der, const size_t *len, int n,
                          long serial0);
/* Stops it and waits for it. */
void bench_responder_stop(bench_responder *r);

#endif
