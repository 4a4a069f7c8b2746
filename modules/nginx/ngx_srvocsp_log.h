/*
 * srvocsp's reports in nginx's error log, written safely.
 *
 * The engine reports updates and failures on its own thread, where nginx's
 * log functions must not run (they share the cycle's log, its buffers and
 * its time cache with the event loop).  The update callback formats one
 * line and writes it into a non-blocking pipe (one write of at most
 * PIPE_BUF bytes: atomic, never interleaved); a timer in every worker
 * drains the pipe and logs the lines from the event loop.  The pipe lives
 * as long as the process, across reloads; workers inherit it from the
 * master, so a line written by any process's engine is logged by a worker.
 */
#ifndef NGX_SRVOCSP_LOG_H_INCLUDED
#define NGX_SRVOCSP_LOG_H_INCLUDED

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include <srvocsp.h>

/* Per certificate: the name used in the log lines.  Owned by the handle
 * (freed through update_arg_free when the handle goes). */
typedef struct {
    char name[512];
} ngx_srvocsp_cert_tag_t;

/* Creates the pipe once per process lifetime.  NGX_OK or NGX_ERROR. */
ngx_int_t ngx_srvocsp_log_init(ngx_log_t *log);

/* The srvocsp_update_cb that queues a line; runs on the engine thread. */
void ngx_srvocsp_log_event(srvocsp_handle *h, const srvocsp_event *ev, void *arg);
void ngx_srvocsp_tag_free(void *arg);

/* Starts the drain timer in a worker (or a single process). */
ngx_int_t ngx_srvocsp_log_start(ngx_cycle_t *cycle);
/* Logs what is queued now (also used at exit). */
void ngx_srvocsp_log_drain(ngx_log_t *log);

#endif
