/*
 * Reports of srvocsp's engine thread in Apache's error log.
 *
 * The engine calls back on its own thread, outside any request or
 * connection; the server_rec it may log against belongs to a configuration
 * pool that a restart destroys.  The server to log against is published
 * under a mutex: set when a configuration (or a child) starts serving,
 * withdrawn before its pool goes, so a report never touches a freed
 * server_rec (it is dropped instead).
 */
#ifndef MOD_SRVOCSP_LOG_H
#define MOD_SRVOCSP_LOG_H

#include "httpd.h"

#include <srvocsp.h>

/* The per-certificate argument of the update callback. */
typedef struct mod_srvocsp_tag {
    char name[256]; /* "CN=site.test" (vhost site.test:443), for messages */
} mod_srvocsp_tag;

/* The server that engine reports go to; NULL withdraws it (reports are
 * dropped until the next call).  Called on Apache's main thread. */
void mod_srvocsp_log_set_server(server_rec *s);
/* In a forked child, before any thread: the mutex as if newly made (the
 * parent's engine thread may have held it at fork). */
void mod_srvocsp_log_after_fork(void);

/* srvocsp_update_cb: one line per event, on the engine thread; |arg| is a
 * mod_srvocsp_tag. */
void mod_srvocsp_log_event(srvocsp_handle *h, const srvocsp_event *ev, void *arg);
/* update_arg_free for a mod_srvocsp_tag. */
void mod_srvocsp_tag_free(void *arg);

#endif
