/*
 * What test_method_fronts and test_methods share: the test's directory,
 * peers stopped by the teardown, handles on an engine with a chosen URL,
 * and what the process remembers of responders.
 */
#ifndef SRVOCSP_METHODS_COMMON_H
#define SRVOCSP_METHODS_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/x509.h>

#include "srvocsp.h"

extern char *dir; /* made by group_setup, removed by group_teardown */

/* tr_spawn, the peer stopped by stop_peers (two at a time at most). */
pid_t spawn_peer(const char *log, const char *ready, int wait_ms, const char *env,
                 char *const argv[]);
/* A cmocka teardown: a failed assertion leaves a test early. */
int stop_peers(void **s);
srvocsp_handle *open_with(srvocsp_engine *eng, const char *pem, const char *url,
                          uint32_t timeout_ms);
srvocsp_engine_stats stats_of(srvocsp_engine *eng);
/* The remembered responder whose key contains |needle|, or false. */
bool remembered(const char *needle, srvocsp_method_fallback *out);
/* Waits (real time, generous) until |h| serves a response. */
srvocsp_response *wait_served(srvocsp_handle *h, int ms);
/* |a| (and |b|, may be NULL) as PEM in dir/|name|, the path in |path|. */
void write_pem(const char *name, X509 *a, X509 *b, char *path, size_t len);
int group_setup(void **s);
int group_teardown(void **s);

#endif
