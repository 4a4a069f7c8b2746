/* Running Debian's apache2 with mod_srvocsp for tests and benchmarks: a
 * configuration of its own in a temporary ServerRoot (never /etc/apache2),
 * start, graceful and plain restarts, stop, its children.  127.0.0.1 only.
 * Handshakes: nr_handshake (nginxrun.h). */
#ifndef SRVOCSP_APACHERUN_H
#define SRVOCSP_APACHERUN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define AR_APACHE_BIN "/usr/sbin/apache2"
#define AR_MODULES_DIR "/usr/lib/apache2/modules"

typedef struct ar_apache {
    char dir[1024];      /* ServerRoot: apache2.conf, logs/, run/, htdocs/, cores/ */
    char conf[1100];
    char errlog[1100];
    const char *module;  /* mod_srvocsp.so, NULL: not loaded */
    const char *preload; /* sanitizer runtimes, "" if none */
    const char *mpm;     /* "event" (default) or "prefork" */
    const char *user;    /* User/Group; NULL: www-data when root */
    pid_t parent;
} ar_apache;

/* |dir| must exist; the paths are copied, the strings borrowed. */
void ar_init(ar_apache *a, const char *dir, const char *module, const char *preload);
/* Writes apache2.conf: modules, the MPM with exactly |children| children,
 * LogLevel info, cores in dir/cores (where the kernel writes them to the
 * crashing process's directory), then |body| (Listen lines and virtual
 * hosts). */
bool ar_write_conf(ar_apache *a, int children, const char *body);
/* apache2 -t: its exit status; its output in |out|. */
int ar_test_conf(ar_apache *a, char *out, size_t cap);
/* Starts apache2 in the foreground (-DFOREGROUND) and waits until |port|
 * accepts and |children| children run.  False (log printed) on failure. */
bool ar_start(ar_apache *a, int port, int children);
/* "apache2 -k graceful"; waits until the new generation said it resumes,
 * |children| children of it run and every old child has exited (at most
 * |timeout_ms|). */
bool ar_graceful(ar_apache *a, int port, int children, int timeout_ms);
/* "apache2 -k restart" (not graceful: the old children are stopped at
 * once, connections cut); waits as ar_graceful does. */
bool ar_restart(ar_apache *a, int port, int children, int timeout_ms);
/* The parent's children (pids in |out|). */
int ar_children(const ar_apache *a, pid_t *out, int cap);
/* Stops apache2: a graceful stop (SIGWINCH), then SIGTERM after 5 s and
 * SIGKILL after 10 more; its exit status, or -1 if it died of a signal,
 * or was killed. */
int ar_stop(ar_apache *a);
/* Lines of the error log (and of start-up's stderr) containing |needle|. */
int ar_log_count(const ar_apache *a, const char *needle);
bool ar_wait_logged(const ar_apache *a, const char *needle, int count, int ms);
void ar_log_dump(const ar_apache *a, int last_lines);

#endif
