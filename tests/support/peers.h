/* Starting and stopping real peers on 127.0.0.1 for integration tests. */
#ifndef SRVOCSP_PEERS_H
#define SRVOCSP_PEERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A free TCP port on 127.0.0.1 (bound, read, closed). */
/* Milliseconds on CLOCK_MONOTONIC (for measuring), a sleep, and the wall
 * clock in the srvocsp_clock shape (for peers on the true time). */
double tr_now_ms(void);
void tr_sleep_ms(int ms);
int64_t tr_wall_now(void *ctx);

int tr_free_port(void);
/* Sends all |n| bytes of |buf| on the socket |fd| (no SIGPIPE); false when
 * the peer went away or sending failed. */
bool tr_send_all(int fd, const void *buf, size_t n);
/* A fresh temporary directory under $TMPDIR; returns a static-lifetime
 * malloc'd path. */
char *tr_tmpdir(const char *tag);
void tr_rmrf(const char *dir);

typedef struct tr_responder {
    pid_t pid;
    int port;
    char log[1024];
} tr_responder;

/* Starts `openssl ocsp` on 127.0.0.1:|port| answering from |dir|/index.txt,
 * signed by |signer| (|dir|/NAME.pem and NAME.key), CA |dir|/ca.pem,
 * responses valid |nmin| minutes.  Waits for its readiness line. */
bool tr_responder_start(tr_responder *r, int port, const char *dir, const char *signer, int nmin);
/* How many requests it has logged. */
int tr_responder_requests(const tr_responder *r);
void tr_responder_stop(tr_responder *r);

/* Starts argv[0] (found in PATH) with stdout and stderr going to |log| and
 * |env| ("NAME=value", or NULL) set, then waits up to |wait_ms| for a line
 * of the log containing |ready|.  Returns its pid, or 0 when it exited or
 * never got ready (it is then stopped). */
pid_t tr_spawn(const char *log, const char *ready, int wait_ms, const char *env,
               char *const argv[]);
/* SIGTERM, then SIGKILL after 2 s; reaps it.  0 is a no-op. */
void tr_pid_stop(pid_t pid);

/* Path of the openssl binary and of the loopback shim. */
const char *tr_lobind_path(void);
/* Whether every listening socket on PORT is bound to a loopback address. */
bool tr_listens_on_loopback_only(int port);

#endif
