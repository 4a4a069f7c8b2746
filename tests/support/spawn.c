/* Programs run in forked children, planned before the fork (spawn.h). */
#include "spawn.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

bool tr_exec_plan(tr_exec *p, const char *const *argv, const char *const *set)
{
    size_t n = 0, i, j = 0, k, ns = 0;

    memset(p, 0, sizeof(*p));
    for (i = 0; argv[i] != NULL; i++) {
        if (i + 1 >= TR_EXEC_MAX_ARGS)
            return false;
        p->argv[i] = argv[i];
    }
    for (; set != NULL && set[ns] != NULL; ns++)
        if (ns >= TR_EXEC_MAX_SET || (p->set[ns] = strdup(set[ns])) == NULL) {
            tr_exec_free(p);
            return false;
        }
    while (environ[n] != NULL)
        n++;
    if ((p->envp = calloc(n + ns + 1, sizeof(char *))) == NULL) {
        tr_exec_free(p);
        return false;
    }
    for (i = 0; i < n; i++) {
        bool replaced = false;

        for (k = 0; k < ns && !replaced; k++) {
            size_t name = (size_t)(strchr(p->set[k], '=') - p->set[k]) + 1;

            replaced = strncmp(environ[i], p->set[k], name) == 0;
        }
        if (!replaced)
            p->envp[j++] = environ[i];
    }
    for (k = 0; k < ns; k++)
        p->envp[j++] = p->set[k];
    p->envp[j] = NULL;
    return true;
}

void tr_exec_free(tr_exec *p)
{
    for (int k = 0; k < TR_EXEC_MAX_SET; k++)
        free(p->set[k]);
    free(p->envp);
    memset(p, 0, sizeof(*p));
}

void tr_exec_child(const tr_exec *p, const char *path)
{
    struct rlimit core;

    if (p->core_dumps && getrlimit(RLIMIT_CORE, &core) == 0) {
        core.rlim_cur = core.rlim_max;
        setrlimit(RLIMIT_CORE, &core);
    }
    execve(path, (char *const *)p->argv, p->envp);
    _exit(127);
}

int tr_exec_run(const tr_exec *p, const char *path, char *out, size_t cap, int timeout_ms)
{
    struct timespec t0, t;
    int fds[2], status = 0;
    size_t used = 0;
    char sink[512];
    pid_t pid;

    if (pipe(fds) != 0)
        return -1;
    pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        /* Only 1 and 2 lead to the pipe: a program that closes them (a
         * daemon detaching) ends the output. */
        if (fds[1] > 2)
            close(fds[1]);
        tr_exec_child(p, path);
    }
    close(fds[1]);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* Its output until the end, then its exit, both within the limit: a
     * program that closes its output and runs on is killed too. */
    for (bool eof = false;;) {
        struct pollfd pf = {.fd = fds[0], .events = POLLIN};
        bool room = out != NULL && cap > 0 && used + 1 < cap;
        ssize_t r;
        long left;

        clock_gettime(CLOCK_MONOTONIC, &t);
        left = timeout_ms - ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
        if (eof) {
            if (waitpid(pid, &status, WNOHANG) == pid)
                break;
            if (left > 0) {
                poll(NULL, 0, left < 10 ? (int)left : 10);
                continue;
            }
        }
        if (left <= 0 || (!eof && poll(&pf, 1, (int)left) == 0)) {
            fprintf(stderr, "%s did not finish within %d ms: killed\n", p->argv[0], timeout_ms);
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            break;
        }
        r = room ? read(fds[0], out + used, cap - used - 1) : read(fds[0], sink, sizeof(sink));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            eof = true;
        else if (room)
            used += (size_t)r;
    }
    if (out != NULL && cap > 0)
        out[used] = '\0';
    close(fds[0]);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}
