/*
 * srvocsp watch, what it does to the servers: the operator's hook, HAProxy's
 * runtime API, and the nginx snippet that turns stapling on or off.
 * Everything here runs on watch's main thread.
 */
#include <errno.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "watch.h"

/* Waits up to |ms| for |pid|; true with |*status| when it ended. */
static bool wait_for(pid_t pid, int *status, long ms)
{
    struct timespec nap = {0, 10 * 1000000L};

    for (long waited = 0;; waited += 10) {
        pid_t r = waitpid(pid, status, WNOHANG);

        if (r == pid)
            return true;
        if (r < 0 && errno != EINTR)
            return true; /* not our child any more: nothing to wait for */
        if (waited >= ms)
            return false;
        nanosleep(&nap, NULL);
    }
}

/* A hook that hangs (a reload that never returns) would otherwise hold up
 * every later delivery: past the timeout its process group gets SIGTERM,
 * two seconds later SIGKILL. */
bool wout_run_hook(const watch *w, const wcert *c, const char *event, const char *reason,
                   char *why, size_t whylen)
{
    pid_t pid;
    int status = 0;

    if (w->on_update == NULL)
        return true;
    pid = fork();
    if (pid < 0) {
        snprintf(why, whylen, "%s: cannot fork: %s", w->on_update, strerror(errno));
        return false;
    }
    if (pid == 0) {
        /* Its own process group, so a timeout reaches what sh started. */
        setpgid(0, 0);
        /* The operator's command runs as written; the certificate's names
         * reach it only through the environment, never spliced into it. */
        setenv("SRVOCSP_CERT_FILE", c->path, 1);
        setenv("SRVOCSP_OCSP_FILE", c->ocsp_path, 1);
        setenv("SRVOCSP_STATUS", c->served ? cli_status_name(c->status) : "none", 1);
        setenv("SRVOCSP_EVENT", event, 1);
        setenv("SRVOCSP_REASON", reason ? reason : "", 1);
        if (c->snippet_path)
            setenv("SRVOCSP_SNIPPET_FILE", c->snippet_path, 1);
        execl("/bin/sh", "sh", "-c", w->on_update, (char *)NULL);
        _exit(127);
    }
    setpgid(pid, pid); /* also here: whichever runs first */
    if (!wait_for(pid, &status, w->hook_timeout_s * 1000)) {
        kill(-pid, SIGTERM);
        if (!wait_for(pid, &status, 2000)) {
            kill(-pid, SIGKILL);
            wait_for(pid, &status, 60000);
        }
        snprintf(why, whylen, "%s: still running after %ld s, stopped", w->on_update,
                 w->hook_timeout_s);
        return false;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return true;
    if (WIFEXITED(status))
        snprintf(why, whylen, "%s: exit status %d", w->on_update, WEXITSTATUS(status));
    else
        snprintf(why, whylen, "%s: killed by signal %d", w->on_update,
                 WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    return false;
}

bool wout_push_haproxy(const watch *w, const unsigned char *der, size_t len, char *answer,
                       size_t alen)
{
    struct sockaddr_un a;
    char *cmd;
    int fd, n, used = 0;
    bool ok = false;

    answer[0] = '\0';
    if (strlen(w->haproxy_socket) >= sizeof(a.sun_path)) {
        snprintf(answer, alen, "socket path too long");
        return false;
    }
    cmd = malloc(len * 2 + 64);
    if (cmd == NULL)
        return false;
    n = snprintf(cmd, 64, "set ssl ocsp-response ");
    n += EVP_EncodeBlock((unsigned char *)cmd + n, der, (int)len);
    cmd[n++] = '\n';
    memset(&a, 0, sizeof(a));
    a.sun_family = AF_UNIX;
    strcpy(a.sun_path, w->haproxy_socket);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        snprintf(answer, alen, "cannot connect to %s: %s", w->haproxy_socket, strerror(errno));
        goto out;
    }
    if (write(fd, cmd, (size_t)n) != n) {
        snprintf(answer, alen, "write to %s failed", w->haproxy_socket);
        goto out;
    }
    while (used < (int)alen - 1 && (n = (int)read(fd, answer + used, alen - 1 - (size_t)used)) > 0)
        used += n;
    answer[used] = '\0';
    while (used > 0 && (answer[used - 1] == '\n' || answer[used - 1] == ' '))
        answer[--used] = '\0';
    ok = strstr(answer, "OCSP Response updated") != NULL;
out:
    if (fd >= 0)
        close(fd);
    free(cmd);
    return ok;
}

/* nginx loads ssl_stapling_file at (re)load and staples whatever it holds
 * until the next one; an empty or missing file makes the (re)load fail.
 * The only way to make it staple nothing is a configuration without the
 * file: this snippet, included in the server block, is that switch. */
/* |s| as an nginx quoted string: false when it cannot be one (a line break
 * would end the comment or directive it sits in). */
static bool nginx_quote(const char *s, char *out, size_t cap)
{
    size_t n = 0;

    if (cap < 3)
        return false;
    out[n++] = '"';
    for (; *s; s++) {
        if (*s == '\n' || *s == '\r' || n + 4 >= cap)
            return false;
        if (*s == '"' || *s == '\\')
            out[n++] = '\\';
        out[n++] = *s;
    }
    out[n++] = '"';
    out[n] = '\0';
    return true;
}

int wout_write_snippet(const wcert *c, bool on, const char *why)
{
    char text[9000], quoted[8300], *old;
    size_t old_len = 0;
    int n, err;

    if (!nginx_quote(c->ocsp_path, quoted, sizeof(quoted)) || strpbrk(c->path, "\r\n")) {
        errno = EINVAL; /* a file name nginx cannot be given */
        return -1;
    }
    if (on)
        n = snprintf(text, sizeof(text),
                     "# written by srvocsp watch: %s has a servable OCSP response\n"
                     "ssl_stapling on;\nssl_stapling_file %s;\n",
                     c->path, quoted);
    else
        n = snprintf(text, sizeof(text),
                     "# written by srvocsp watch: no servable OCSP response for %s (%s)\n"
                     "ssl_stapling off;\n",
                     c->path, why ? why : "none yet");
    if (n < 0 || (size_t)n >= sizeof(text)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    old = (char *)cli_read_file(c->snippet_path, 64 * 1024, &old_len);
    /* The comment carries the reason; only a change of directive matters. */
    if (old != NULL) {
        const char *d_old, *d_new = strstr(text, "\nssl_stapling");

        old[old_len] = '\0'; /* cli_read_file leaves room for it */
        d_old = strstr(old, "\nssl_stapling");
        if (d_old && strcmp(d_old, d_new) == 0) {
            free(old);
            return 0;
        }
    }
    free(old);
    err = srvocsp__write_file_atomic(c->snippet_path, (const unsigned char *)text, (size_t)n);
    if (err != 0) {
        errno = err;
        return -1;
    }
    return 1;
}
