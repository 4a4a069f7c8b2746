#define _GNU_SOURCE
#include "apacherun.h"
#include "nginxrun.h"
#include "peers.h"
#include "spawn.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

void ar_init(ar_apache *a, const char *dir, const char *module, const char *preload)
{
    char p[1200];

    memset(a, 0, sizeof(*a));
    snprintf(a->dir, sizeof(a->dir), "%s", dir);
    snprintf(a->conf, sizeof(a->conf), "%s/apache2.conf", dir);
    snprintf(a->errlog, sizeof(a->errlog), "%s/logs/error.log", dir);
    a->module = module;
    a->preload = preload ? preload : "";
    a->mpm = "event";
    for (const char *sub = "logs\0run\0htdocs\0"; *sub; sub += strlen(sub) + 1) {
        snprintf(p, sizeof(p), "%s/%s", dir, sub);
        mkdir(p, 0755);
    }
    /* Where a crashing child (User, not root) leaves its core. */
    snprintf(p, sizeof(p), "%s/cores", dir);
    mkdir(p, 0777);
    chmod(p, 0777);
    snprintf(p, sizeof(p), "%s/htdocs/index.html", dir);
    {
        FILE *f = fopen(p, "w");

        if (f) {
            fputs("ok\n", f);
            fclose(f);
        }
    }
}

bool ar_write_conf(ar_apache *a, int children, const char *body)
{
    FILE *f = fopen(a->conf, "w");
    const char *d = a->dir;
    bool prefork = a->mpm && strcmp(a->mpm, "prefork") == 0;

    if (f == NULL)
        return false;
    fprintf(f,
            "ServerRoot %s\n"
            "ServerName 127.0.0.1\n"
            "DefaultRuntimeDir %s/run\n"
            "PidFile %s/run/apache2.pid\n"
            "ErrorLog %s\n"
            "LogLevel info\n"
            "DocumentRoot %s/htdocs\n"
            "LoadModule mpm_%s_module " AR_MODULES_DIR "/mod_mpm_%s.so\n"
            "LoadModule ssl_module " AR_MODULES_DIR "/mod_ssl.so\n"
            "LoadModule authn_core_module " AR_MODULES_DIR "/mod_authn_core.so\n"
            "LoadModule authz_core_module " AR_MODULES_DIR "/mod_authz_core.so\n"
            "<Directory />\n  Require all granted\n</Directory>\n",
            d, d, d, a->errlog, d, prefork ? "prefork" : "event", prefork ? "prefork" : "event");
    /* A child that crashes leaves a core there, to be told apart from
     * Apache's own crashes (no_crash in the tests). */
    fprintf(f, "CoreDumpDirectory %s/cores\n", d);
    if (a->module)
        fprintf(f, "LoadModule srvocsp_module %s\n", a->module);
    if (a->user)
        fprintf(f, "User %s\nGroup %s\n", a->user, a->user);
    else if (geteuid() == 0)
        fprintf(f, "User www-data\nGroup www-data\n");
    /* Exactly |children| children, none started or stopped by load; after
     * a graceful restart (where StartServers does not apply) the spare
     * minimum brings the new generation back to |children|. */
    if (prefork)
        fprintf(f,
                "StartServers %d\nMinSpareServers %d\nMaxSpareServers %d\nServerLimit %d\n"
                "MaxRequestWorkers %d\nMaxConnectionsPerChild 0\n",
                children, children, children, children, children);
    else
        fprintf(f,
                "StartServers %d\nServerLimit %d\nThreadsPerChild 16\nThreadLimit 16\n"
                "MaxRequestWorkers %d\nMinSpareThreads %d\nMaxSpareThreads %d\n"
                "MaxConnectionsPerChild 0\n",
                children, children, 16 * children, 16 * children, 16 * children + 16);
    fprintf(f, "GracefulShutdownTimeout 5\n%s\n", body);
    return fclose(f) == 0;
}

/* apache2's arguments and environment, made before the fork (spawn.h:
 * the graceful test forks while its handshake threads run). */
static bool plan_exec(const ar_apache *a, const char *k, tr_exec *p)
{
    const char *argv[10], **v = argv;
    char preload[1200];
    /* apache2 does not free everything at exit by design; the sanitizers
     * still stop it on any memory error of the module.  Apache installs its
     * own SIGSEGV handler (for core dumps), which would hide ASan's report
     * of a crash: ASan keeps its own. */
    const char *set[3] = {"ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:allow_user_segv_handler=0",
                          NULL, NULL};

    *v++ = "apache2", *v++ = "-f", *v++ = a->conf, *v++ = "-d", *v++ = a->dir;
    if (k && strcmp(k, "-t") == 0)
        *v++ = "-t";
    else if (k)
        *v++ = "-k", *v++ = k;
    else
        *v++ = "-DFOREGROUND";
    *v = NULL;
    if (a->preload && *a->preload) {
        snprintf(preload, sizeof(preload), "LD_PRELOAD=%s", a->preload);
        set[1] = preload;
    }
    if (!tr_exec_plan(p, argv, set))
        return false;
    p->core_dumps = true;
    return true;
}

/* Runs apache2 with |k| ("-t", "graceful"): status, output in |out|.  An
 * apache2 that does not finish within a minute is killed and reported. */
static int run_apache(ar_apache *a, const char *k, char *out, size_t cap)
{
    tr_exec plan;
    int rc;

    if (!plan_exec(a, k, &plan))
        return -1;
    rc = tr_exec_run(&plan, AR_APACHE_BIN, out, cap, 60000);
    tr_exec_free(&plan);
    return rc;
}

int ar_test_conf(ar_apache *a, char *out, size_t cap)
{
    return run_apache(a, "-t", out, cap);
}

int ar_children(const ar_apache *a, pid_t *out, int cap)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    int count = 0;

    if (d == NULL)
        return 0;
    while (a->parent > 0 && (de = readdir(d)) != NULL) {
        char cmd[256];
        pid_t pid = (pid_t)atoi(de->d_name);

        /* Exited but not yet reaped children (no command line) are gone. */
        if (pid <= 0 || nr_ppid_of(pid, cmd, sizeof(cmd)) != a->parent || cmd[0] == '\0')
            continue;
        if (out && count < cap)
            out[count] = pid;
        count++;
    }
    closedir(d);
    return count;
}

void ar_log_dump(const ar_apache *a, int last_lines)
{
    char cmd[2600];

    snprintf(cmd, sizeof(cmd), "tail -n %d '%s' '%s/logs/stderr.log' >&2", last_lines, a->errlog,
             a->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "(no error log)\n");
}

int ar_log_count(const ar_apache *a, const char *needle)
{
    char p[1200], line[8192];
    const char *files[2] = {a->errlog, p};
    int count = 0;

    snprintf(p, sizeof(p), "%s/logs/stderr.log", a->dir);
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(files[i], "r");

        if (f == NULL)
            continue;
        while (fgets(line, sizeof(line), f))
            count += strstr(line, needle) != NULL;
        fclose(f);
    }
    return count;
}

bool ar_wait_logged(const ar_apache *a, const char *needle, int count, int ms)
{
    double until = tr_now_ms() + ms;

    for (;;) {
        if (ar_log_count(a, needle) >= count)
            return true;
        if (tr_now_ms() >= until)
            return false;
        tr_sleep_ms(20);
    }
}

#define RESUMING "resuming normal operations"

bool ar_start(ar_apache *a, int port, int children)
{
    double until = tr_now_ms() + 30000;
    int resumed = ar_log_count(a, RESUMING);
    char p[1200];
    tr_exec plan;
    pid_t pid;

    snprintf(p, sizeof(p), "%s/logs/stderr.log", a->dir);
    if (!plan_exec(a, NULL, &plan))
        return false;
    pid = fork();
    if (pid < 0) {
        tr_exec_free(&plan);
        return false;
    }
    if (pid == 0) {
        int fd = open(p, O_WRONLY | O_CREAT | O_APPEND, 0644);

        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        setpgid(0, 0);
        tr_exec_child(&plan, AR_APACHE_BIN);
    }
    tr_exec_free(&plan);
    a->parent = pid;
    while (tr_now_ms() < until) {
        int status;

        if (waitpid(pid, &status, WNOHANG) == pid) {
            fprintf(stderr, "apache2 exited at start (status %d)\n", status);
            ar_log_dump(a, 30);
            a->parent = 0;
            return false;
        }
        if (ar_log_count(a, RESUMING) > resumed && ar_children(a, NULL, 0) >= children &&
            nr_port_accepts(port))
            return true;
        tr_sleep_ms(20);
    }
    fprintf(stderr, "apache2 did not start within 30 s\n");
    ar_log_dump(a, 30);
    return false;
}

/* "apache2 -k |k|" (graceful or restart): the parent stays, its children
 * are replaced.  Done when the parent said it resumes again, |children|
 * new children run and none of the old ones is left. */
static bool replace_children(ar_apache *a, const char *k, int port, int children, int timeout_ms)
{
    double until = tr_now_ms() + timeout_ms;
    int resumed = ar_log_count(a, RESUMING);
    pid_t old[512];
    int n_old = ar_children(a, old, 512);
    char out[4096];

    if (run_apache(a, k, out, sizeof(out)) != 0) {
        fprintf(stderr, "apache2 -k %s failed: %s\n", k, out);
        return false;
    }
    while (tr_now_ms() < until) {
        pid_t now[512];
        int n = ar_children(a, now, 512), olds = 0, news;

        for (int i = 0; i < n; i++)
            for (int j = 0; j < n_old; j++)
                olds += now[i] == old[j];
        news = n - olds;
        if (ar_log_count(a, RESUMING) > resumed && news >= children && olds == 0 &&
            nr_port_accepts(port))
            return true;
        tr_sleep_ms(20);
    }
    fprintf(stderr, "apache2 -k %s did not complete within %d ms\n", k, timeout_ms);
    ar_log_dump(a, 30);
    return false;
}

bool ar_graceful(ar_apache *a, int port, int children, int timeout_ms)
{
    return replace_children(a, "graceful", port, children, timeout_ms);
}

bool ar_restart(ar_apache *a, int port, int children, int timeout_ms)
{
    return replace_children(a, "restart", port, children, timeout_ms);
}

/* Waits up to |ms| for the parent to exit: its exit status, or -2. */
static int reap_within(ar_apache *a, int ms)
{
    double until = tr_now_ms() + ms;
    int status = 0;

    while (tr_now_ms() < until) {
        if (waitpid(a->parent, &status, WNOHANG) == a->parent) {
            a->parent = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        }
        tr_sleep_ms(20);
    }
    return -2;
}

int ar_stop(ar_apache *a)
{
    double until;
    int status = 0, rc;

    if (a->parent <= 0)
        return -1;
    /* A graceful stop first (SIGWINCH): children finish what they are
     * closing and exit from their main loop.  On SIGTERM a prefork child
     * runs its pools' cleanups from the signal handler, and one caught
     * inside SSL_free of a closing connection crashes in mod_ssl's own
     * cleanup (seen under ASan, whose free is slow enough to be caught
     * there); that is Apache's, not the module's.  SIGTERM still follows
     * when the graceful stop does not end within 5 s. */
    kill(a->parent, SIGWINCH);
    if ((rc = reap_within(a, 5000)) != -2)
        return rc;
    kill(a->parent, SIGTERM);
    until = tr_now_ms() + 10000;
    while (tr_now_ms() < until) {
        if (waitpid(a->parent, &status, WNOHANG) == a->parent) {
            a->parent = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        }
        tr_sleep_ms(20);
    }
    kill(-a->parent, SIGKILL);
    waitpid(a->parent, &status, 0);
    a->parent = 0;
    return -1;
}
