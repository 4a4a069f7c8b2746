/* The scenarios' shared pieces (see apache_common.h). */
#define _GNU_SOURCE
#include "apache_common.h"

#include <dirent.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "peers.h"
#include "srvocsp.h"

int passed, failed;
tp_pki pki;
char *dir;
char pkidir[1200];


int64_t wall_now(void *ctx)
{
    (void)ctx;
    return (int64_t)time(NULL);
}

/* The test PKI names |e|'s slot 0 in every AIA. */
evil *setup(int64_t validity)
{
    char url[128];
    evil *e;

    dir = tr_tmpdir("apache");
    chmod(dir, 0755); /* the children (User www-data) use the directory in it */
    e = evil_start(&pki, wall_now, NULL, validity);
    if (e == NULL)
        return NULL;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/k0/", evil_port(e));
    snprintf(pkidir, sizeof(pkidir), "%s/pki", dir);
    mkdir(pkidir, 0755);
    if (!tp_pki_make(&pki, url, url, (int64_t)time(NULL)) || !tp_pki_write(&pki, pkidir))
        return NULL;
    return e;
}


void new_apache(ar_apache *a, const char *name, const char *mpm)
{
    char p[1200];

    snprintf(p, sizeof(p), "%s/%s", dir, name);
    mkdir(p, 0755);
    ar_init(a, p, SRVOCSP_APACHE_MODULE_SO, SRVOCSP_APACHE_PRELOAD);
    a->mpm = mpm;
}

/* A name-based TLS vhost on |port| serving the PKI's |certs| (space
 * separated: "good good-rsa"), with |extra| directives. */
const char *vhost(int port, const char *name, const char *certs, const char *extra)
{
    static char buf[8][4096];
    static int i;
    char *b = buf[i++ % 8], list[256], *save = NULL;
    size_t used;

    used = (size_t)snprintf(b, 4096,
                            "<VirtualHost 127.0.0.1:%d>\n  ServerName %s\n  SSLEngine on\n", port,
                            name);
    snprintf(list, sizeof(list), "%s", certs);
    for (char *c = strtok_r(list, " ", &save); c; c = strtok_r(NULL, " ", &save))
        used += (size_t)snprintf(b + used, 4096 - used,
                                 "  SSLCertificateFile %s/%s.pem\n"
                                 "  SSLCertificateKeyFile %s/%s.key\n",
                                 pkidir, c, pkidir, c);
    snprintf(b + used, 4096 - used, "  %s\n</VirtualHost>\n", extra ? extra : "");
    return b;
}


bool verified(const nr_hs *h, const tp_cert *leaf)
{
    srvocsp_response *r;

    if (!h->stapled || h->der_len == 0)
        return false;
    r = srvocsp_verify_der(h->der, h->der_len, leaf->cert, pki.ca.cert, NULL);
    if (r == NULL)
        return false;
    srvocsp_response_free(r);
    return true;
}

/* Runs a shell command; its output (stdout+stderr) in |out|, its status. */
int run(char *out, size_t cap, const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    FILE *p;
    size_t used = 0;
    int status;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    p = popen(cmd, "r");
    if (p == NULL)
        return -1;
    while (used + 1 < cap) {
        size_t r = fread(out + used, 1, cap - used - 1, p);

        if (r == 0)
            break;
        used += r;
    }
    out[used] = '\0';
    status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}


bool have(const char *tool)
{
    char out[256];

    return run(out, sizeof(out), "command -v %s >/dev/null 2>&1", tool) == 0;
}

/* No child died of a signal and nothing crashed, by the error log. */
/* Apache's event MPM has a race of its own at an ungraceful stop: the
 * child's main thread closes the sockets in worker_sockets[]
 * (close_worker_sockets) while a worker releases the connection behind
 * one of them, and reads a freed socket in apr_os_sock_get.  Under ASan
 * (where it shows, being slower) its report names no frame of ours.  Such
 * a report, and the parent's note of that child's abort, are printed and
 * not counted; every other crash is. */
#define MAX_EXCUSED 16

typedef struct crash_scan {
    char pid[32];           /* the ASan report being read, "" if none */
    bool in_apr_sock, in_mpm, ours;
    char excused[MAX_EXCUSED][32];
    int n_excused, crashes;
} crash_scan;

static bool excused_pid(const crash_scan *c, const char *pid)
{
    for (int i = 0; i < c->n_excused; i++)
        if (strcmp(c->excused[i], pid) == 0)
            return true;
    return false;
}

/* The pid in "==PID==" at the start of |line|, into |out|. */
static bool report_pid(const char *line, char *out, size_t cap)
{
    const char *end;

    if (strncmp(line, "==", 2) != 0 || (end = strstr(line + 2, "==")) == NULL ||
        (size_t)(end - line - 2) >= cap)
        return false;
    memcpy(out, line + 2, (size_t)(end - line - 2));
    out[end - line - 2] = '\0';
    return true;
}

/* Pass 0 reads the ASan reports, pass 1 everything else (a parent may
 * log a child's abort before the child's report reaches the file). */
static void scan_line(crash_scan *c, int pass, const char *file, const char *line)
{
    char pid[32];
    const char *p;

    if (c->pid[0] != '\0') { /* inside an ASan report */
        if (pass == 1) {
            if (report_pid(line, pid, sizeof(pid)) && strcmp(pid, c->pid) == 0 &&
                strstr(line, "ABORTING") != NULL)
                c->pid[0] = '\0';
            return;
        }
        fprintf(stderr, "%s: %s", file, line);
        c->in_apr_sock |= strstr(line, "in apr_os_sock_get") != NULL;
        c->in_mpm |= strstr(line, "mod_mpm_event.so") != NULL;
        c->ours |= strstr(line, "srvocsp") != NULL;
        if (report_pid(line, pid, sizeof(pid)) && strcmp(pid, c->pid) == 0 &&
            strstr(line, "ABORTING") != NULL) {
            if (c->in_apr_sock && c->in_mpm && !c->ours && c->n_excused < MAX_EXCUSED) {
                fprintf(stderr, "(the report above is Apache's own race at an ungraceful "
                                "stop, in close_worker_sockets: not counted)\n");
                _Static_assert(sizeof(c->pid) == sizeof(c->excused[0]), "one pid's room");
                memcpy(c->excused[c->n_excused++], c->pid, sizeof(c->pid));
            } else {
                c->crashes++;
            }
            c->pid[0] = '\0';
        }
        return;
    }
    if (strstr(line, "ERROR: AddressSanitizer") != NULL && report_pid(line, pid, sizeof(pid))) {
        if (pass == 0)
            fprintf(stderr, "%s: %s", file, line);
        snprintf(c->pid, sizeof(c->pid), "%s", pid);
        c->in_apr_sock = c->in_mpm = c->ours = false;
        return;
    }
    if (pass == 0)
        return;
    if (strncmp(line, "AddressSanitizer:DEADLYSIGNAL", 29) == 0)
        return; /* the line before a report, which is read as a whole */
    if ((p = strstr(line, "child pid ")) != NULL && strstr(line, "exit signal") != NULL) {
        size_t n = strspn(p + 10, "0123456789");

        if (n > 0 && n < sizeof(pid)) {
            memcpy(pid, p + 10, n);
            pid[n] = '\0';
            if (excused_pid(c, pid))
                return;
        }
    }
    if (strstr(line, "exit signal") != NULL || strstr(line, "AddressSanitizer") != NULL ||
        strstr(line, "LeakSanitizer") != NULL || strstr(line, "runtime error") != NULL ||
        strstr(line, "Segmentation") != NULL) {
        fprintf(stderr, "%s: %s", file, line);
        c->crashes++;
    }
}

/* Without the sanitizers the same race shows as a child's SIGSEGV and
 * nothing more: its core (apacherun.c has children leave one) is read with
 * gdb, and excused when the crashing thread stopped in apr_os_sock_get
 * called from mod_mpm_event.so, Apache's own.  Without gdb, or a core (a
 * core_pattern that pipes them elsewhere), the crash counts. */
/* The line of |out| that starts with |start| (after a newline), in |line|. */
static bool line_of(const char *out, const char *start, char *line, size_t cap)
{
    const char *p = strstr(out, start);
    size_t n;

    if (p == NULL)
        return false;
    p++; /* the newline */
    n = strcspn(p, "\n");
    if (n >= cap)
        n = cap - 1;
    memcpy(line, p, n);
    line[n] = '\0';
    return true;
}

static void excuse_cores(crash_scan *c, const ar_apache *a)
{
    char cores[1200], out[16384], f0[512], f1[512], cur[256];
    DIR *d;
    struct dirent *de;

    snprintf(cores, sizeof(cores), "%s/cores", a->dir);
    d = opendir(cores);
    if (d == NULL)
        return;
    while ((de = readdir(d)) != NULL && c->n_excused < MAX_EXCUSED) {
        const char *lwp;
        long pid;

        if (strncmp(de->d_name, "core", 4) != 0 || !have("gdb"))
            continue;
        /* bt: the crashing thread's stack only. */
        run(out, sizeof(out), "gdb -q -batch -ex bt '%s' '%s/%s' 2>&1", AR_APACHE_BIN, cores,
            de->d_name);
        if (!line_of(out, "\n[Current thread is 1 ", cur, sizeof(cur)) ||
            (lwp = strstr(cur, "(LWP ")) == NULL || (pid = strtol(lwp + 5, NULL, 10)) <= 0 ||
            !line_of(out, "\n#0 ", f0, sizeof(f0)) || !line_of(out, "\n#1 ", f1, sizeof(f1)))
            continue;
        if (strstr(f0, " in apr_os_sock_get (") == NULL || strstr(f1, "/mod_mpm_event.so") == NULL)
            continue;
        fprintf(stderr, "%s/%s: child %ld: %s\n  %s\n(Apache's own race at an ungraceful stop, "
                        "in close_worker_sockets: not counted)\n",
                cores, de->d_name, pid, f0, f1);
        snprintf(c->excused[c->n_excused++], sizeof(c->excused[0]), "%ld", pid);
    }
    closedir(d);
}

/* A crash shows in the logs: its lines are printed so a failure can be
 * read without the server's directory (which the test removes). */
bool no_crash(const ar_apache *a)
{
    char p[1200], line[8192];
    const char *files[2] = {a->errlog, p};
    crash_scan c;

    memset(&c, 0, sizeof(c));
    excuse_cores(&c, a);
    snprintf(p, sizeof(p), "%s/logs/stderr.log", a->dir);
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < 2; i++) {
            FILE *f = fopen(files[i], "r");

            if (f == NULL)
                continue;
            while (fgets(line, sizeof(line), f))
                scan_line(&c, pass, files[i], line);
            fclose(f);
            if (c.pid[0] != '\0') { /* a report cut short counts */
                c.crashes += pass == 0;
                c.pid[0] = '\0';
            }
        }
    return c.crashes == 0;
}

/* One vhost serving good (and good-rsa with |rsa|) on |port|. */
void one_vhost_body(char *body, size_t cap, int port, const char *globals, bool rsa)
{
    snprintf(body, cap, "Listen 127.0.0.1:%d\nSrvOcsp on\n%s\n%s", port, globals,
             vhost(port, "good.test", rsa ? "good good-rsa" : "good", NULL));
}

int at_main(int argc, char **argv, const at_scenario *s, size_t n)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc != 2) {
        fprintf(stderr, "usage: %s SCENARIO\n", argv[0]);
        return 2;
    }
    if (SRVOCSP_APACHE_SKIP_REASON[0] || SRVOCSP_APACHE_MODULE_SO[0] == '\0') {
        printf("SKIP: mod_srvocsp not built: %s\n", SRVOCSP_APACHE_SKIP_REASON);
        return 77;
    }
    if (access(AR_APACHE_BIN, X_OK) != 0) {
        printf("SKIP: %s is not installed (scripts/deps.sh --test installs apache2)\n",
               AR_APACHE_BIN);
        return 77;
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(argv[1], s[i].name) != 0)
            continue;
        s[i].fn();
        printf("%d passed, %d failed\n", passed, failed);
        if (failed == 0 && dir)
            tr_rmrf(dir);
        return failed ? 1 : 0;
    }
    fprintf(stderr, "unknown scenario %s\n", argv[1]);
    return 2;
}
