/*
 * mod_srvocsp's section of mod_status's server-status page: what each
 * certificate staples (the same in every process: they share the
 * directory), and the handshakes this child answered.
 */
#ifndef MOD_SRVOCSP_STATUS_H
#define MOD_SRVOCSP_STATUS_H

#include "httpd.h"

#include "mod_srvocsp_certs.h"

/* Counts one answer of get_resp (|stapled|: a response was handed over).
 * No lock, no allocation: safe on the handshake path. */
void mod_srvocsp_status_count(int stapled);
/* In a forked child: its own counts start at zero. */
void mod_srvocsp_status_reset(void);

/* mod_status's status_hook for |gen| (the serving generation); |flags| are
 * mod_status's AP_STATUS_*.  Returns OK. */
int mod_srvocsp_status_write(request_rec *r, int flags, const mod_srvocsp_gen *gen);

#endif
