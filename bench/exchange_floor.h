#ifndef SRVOCSP_BENCH_EXCHANGE_FLOOR_H
#define SRVOCSP_BENCH_EXCHANGE_FLOOR_H

#include <stdbool.h>

/* CPU microseconds of this thread per exchange: |n| GETs of |paths| (each
 * "/fast/..." with the request in it) to the responder on 127.0.0.1:|port|,
 * over |conns| keep-alive connections, each with one request in flight.
 * -1 when a connection or a response failed. */
double bench_exchange_floor_us(int port, char *const *paths, int n, int conns);
/* The same through libcurl's multi interface, each URL |base| + path, with
 * only the options a GET needs; -1 on a failed transfer. */
double bench_exchange_curl_us(const char *base, char *const *paths, int n, int conns);

#endif
