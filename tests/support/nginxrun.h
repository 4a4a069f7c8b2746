/* Running the real nginx with the srvocsp module for tests and benchmarks:
 * configuration, start, reload, stop, its workers, and TLS handshakes that
 * read the staple.  127.0.0.1 only. */
#ifndef SRVOCSP_NGINXRUN_H
#define SRVOCSP_NGINXRUN_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct nr_nginx {
    char dir[1024];          /* prefix: nginx.conf, logs/, tmp/ */
    char conf[1100];
    char errlog[1100];
    const char *bin;         /* the nginx binary */
    const char *module;      /* the module's .so, NULL: no load_module */
    const char *preload;     /* sanitizer runtimes, "" if none */
    const char *user;        /* "user" directive; NULL: root's own when root */
    pid_t master;
} nr_nginx;

/* |dir| must exist; the paths are copied. */
void nr_init(nr_nginx *n, const char *dir, const char *bin, const char *module,
             const char *preload);
/* Writes nginx.conf: load_module, |workers| workers, logs under dir, then
 * "http { |http_body| }". */
bool nr_write_conf(nr_nginx *n, int workers, const char *http_body);
/* nginx -t: its exit status; its output in |out|. */
int nr_test_conf(nr_nginx *n, char *out, size_t cap);
/* Starts the master in the foreground (daemon off) and waits until |port|
 * accepts and |workers| workers run.  False (log printed) on failure. */
bool nr_start(nr_nginx *n, int port, int workers);
/* Sends SIGHUP to the master and waits until |workers| workers of the new
 * configuration run and every worker of the old one has exited (at most
 * |timeout_ms|).  The old workers' pids are those in |old|. */
bool nr_reload(nr_nginx *n, int workers, int timeout_ms);
/* The master's current workers: count, pids; with |include_exiting| also
 * those shutting down and those exited but not yet reaped. */
int nr_workers(const nr_nginx *n, pid_t *out, int cap, bool include_exiting);
/* Stops nginx (SIGTERM, then SIGKILL after 5 s). */
void nr_stop(nr_nginx *n);
/* Lines of the error log that contain |needle|. */
int nr_log_count(const nr_nginx *n, const char *needle);
void nr_log_dump(const nr_nginx *n, int last_lines);

/* Rewrites every saved response (good, good-rsa of |pki|) in |cache| as
 * an older one, still valid but past its refresh point, so a process that
 * loads it fetches at once.  Returns how many were rewritten. */
struct tp_pki;
int nr_age_cache(const char *cache, const struct tp_pki *pki);

/* Whether 127.0.0.1:|port| accepts a connection. */
bool nr_port_accepts(int port);
/* The parent of |pid| (-1 if gone), and its command line (NUL-separated
 * arguments, "" for a zombie) in |cmd|. */
pid_t nr_ppid_of(pid_t pid, char *cmd, size_t cap);

/* Open file descriptors and threads of a process (for leak checks), and
 * its resident memory in KiB. */
int nr_proc_fds(pid_t pid);
int nr_proc_threads(pid_t pid);
long nr_proc_rss_kb(pid_t pid);

typedef struct nr_hs {
    bool ok;                 /* handshake completed */
    bool stapled;
    long serial;             /* of the first SingleResponse, -1 none */
    int cert_status;         /* V_OCSP_CERTSTATUS_*, -1 none */
    double ms;               /* connect + handshake */
    unsigned char der[8192];
    size_t der_len;
    char err[256];
} nr_hs;

/* Whether nr_handshake decodes the staple (serial, status, a copy of the
 * DER); default true.  Benchmarks turn it off so the client's work is the
 * same whether a staple comes or not. */
extern bool nr_parse_staples;

/* A client context (no certificate verification: the tests check the
 * staple themselves); |sigalgs| may be NULL, |max_version| 0 for any. */
SSL_CTX *nr_client_ctx(const char *sigalgs, int max_version);
/* One handshake asking for a staple, with SNI |sni| (may be NULL). */
bool nr_handshake(SSL_CTX *ctx, int port, const char *sni, nr_hs *out);

#endif
