#include "peers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SRVOCSP_TEST_LOBIND
#define SRVOCSP_TEST_LOBIND ""
#endif

const char *tr_lobind_path(void)
{
    return SRVOCSP_TEST_LOBIND;
}

int tr_free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

bool tr_send_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;

    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

char *tr_tmpdir(const char *tag)
{
    const char *base = getenv("TMPDIR");
    char *path = malloc(1024);

    snprintf(path, 1024, "%s/srvocsp-%s-XXXXXX", base && *base ? base : "/tmp", tag);
    if (mkdtemp(path) == NULL) {
        perror("mkdtemp");
        exit(1);
    }
    return path;
}

void tr_rmrf(const char *dir)
{
    char cmd[1200];

    if (dir == NULL || strlen(dir) < 8 || getenv("SRVOCSP_KEEP_TMP"))
        return;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

static int count_in_file(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    char line[4096];
    int n = 0;

    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f))
        if (strstr(line, needle))
            n++;
    fclose(f);
    return n;
}

bool tr_responder_start(tr_responder *r, int port, const char *dir, const char *signer, int nmin)
{
    char index[1024], ca[1024], rsigner[1024], rkey[1024], ports[16], nmins[16];
    int i;

    memset(r, 0, sizeof(r[0]));
    r->port = port;
    snprintf(index, sizeof(index), "%s/index.txt", dir);
    snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
    snprintf(rsigner, sizeof(rsigner), "%s/%s.pem", dir, signer);
    snprintf(rkey, sizeof(rkey), "%s/%s.key", dir, signer);
    snprintf(r->log, sizeof(r->log), "%s/responder-%d.log", dir, port);
    snprintf(ports, sizeof(ports), "%d", port);
    snprintf(nmins, sizeof(nmins), "%d", nmin);
    r->pid = fork();
    if (r->pid < 0)
        return false;
    if (r->pid == 0) {
        int fd = open(r->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);

        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        setenv("LD_PRELOAD", tr_lobind_path(), 1);
        execlp("openssl", "openssl", "ocsp", "-index", index, "-port", ports, "-rsigner", rsigner,
               "-rkey", rkey, "-CA", ca, "-nmin", nmins, "-ignore_err", (char *)NULL);
        _exit(127);
    }
    /* A probe that connects without a request would send this responder
     * into a busy loop: wait for its log line instead. */
    for (i = 0; i < 200; i++) {
        int status;

        if (count_in_file(r->log, "waiting for OCSP client connections") > 0)
            return true;
        if (waitpid(r->pid, &status, WNOHANG) == r->pid) {
            r->pid = 0;
            return false;
        }
        usleep(50 * 1000);
    }
    tr_responder_stop(r);
    return false;
}

int tr_responder_requests(const tr_responder *r)
{
    return count_in_file(r->log, "Received request");
}

void tr_pid_stop(pid_t pid)
{
    int status;

    if (pid <= 0)
        return;
    kill(pid, SIGTERM);
    for (int i = 0; i < 100; i++) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return;
        usleep(20 * 1000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
}

void tr_responder_stop(tr_responder *r)
{
    tr_pid_stop(r->pid);
    r->pid = 0;
}

pid_t tr_spawn(const char *log, const char *ready, int wait_ms, const char *env,
               char *const argv[])
{
    pid_t pid = fork();
    int i;

    if (pid < 0)
        return 0;
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);

        /* A test that dies (a crash, a debugger ending it) takes its peer
         * with it. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        if (env != NULL)
            putenv((char *)env);
        execvp(argv[0], argv);
        _exit(127);
    }
    for (i = 0; i * 50 < wait_ms; i++) {
        int status;

        if (count_in_file(log, ready) > 0)
            return pid;
        if (waitpid(pid, &status, WNOHANG) == pid)
            return 0;
        usleep(50 * 1000);
    }
    tr_pid_stop(pid);
    return 0;
}

bool tr_listens_on_loopback_only(int port)
{
    char cmd[128], line[512];
    FILE *p;
    int seen = 0, bad = 0;

    snprintf(cmd, sizeof(cmd), "ss -Hltn 'sport = :%d' 2>/dev/null", port);
    p = popen(cmd, "r");
    if (p == NULL)
        return false;
    while (fgets(line, sizeof(line), p)) {
        seen++;
        if (strstr(line, "127.0.0.1:") == NULL && strstr(line, "127.0.0.1]:") == NULL &&
            strstr(line, "[::1]:") == NULL)
            bad++;
    }
    pclose(p);
    return seen > 0 && bad == 0;
}

double tr_now_ms(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

void tr_sleep_ms(int ms)
{
    struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&t, NULL);
}

int64_t tr_wall_now(void *ctx)
{
    (void)ctx;
    return (int64_t)time(NULL);
}
