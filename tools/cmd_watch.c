/*
 * srvocsp watch: keep <certfile>.ocsp fresh and verified for nginx
 * (ssl_stapling_file) and HAProxy (crt cert.pem loads cert.pem.ocsp), run a
 * hook on each new response, push it to HAProxy's runtime API, log one line
 * per event, keep a status file and serve Prometheus metrics on loopback.
 *
 * Threads: the library's engine calls back on its own thread; the callback
 * only writes the certificate's index into a pipe.  Everything else (files,
 * hooks, HAProxy, logs, metrics) happens on the main thread, so a slow hook
 * never delays the engine.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define MAX_DIRS 16
#define MAX_CERTS 4096
#define MAX_REASONS 32

typedef struct wcert {
    char *path;                  /* certificate file */
    char *ocsp_path;             /* <path>.ocsp */
    unsigned char leaf_md[32];   /* to notice a renewed certificate */
    srvocsp_handle *h;
    bool seen;                   /* during a rescan */
    srvocsp_cert_status status;
    bool served;
    int64_t this_update, next_update;
    char last_error[512];
    char last_error_code[32];
} wcert;

typedef struct watch {
    const char *dirs[MAX_DIRS];
    int n_dirs;
    const char *on_update, *haproxy_socket, *status_file, *metrics, *state_dir;
    const char *store_url, *store_prefix; /* the fleet's shared store (docs/fleet.md) */
    long hook_timeout_s;         /* the hook's process group is killed past it */
    bool json;
    wcert *certs[MAX_CERTS];
    int n_certs;
    int event_pipe[2];
    int metrics_fd;
    /* metrics */
    unsigned long responses[3];  /* by status */
    struct {
        char code[32];
        unsigned long n;
    } failures[MAX_REASONS];
    int n_failures;
} watch;

static volatile sig_atomic_t got_hup, got_term, got_usr1;
static int g_sig_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
    int saved = errno;
    char c = (char)sig;

    if (sig == SIGHUP)
        got_hup = 1;
    else if (sig == SIGUSR1)
        got_usr1 = 1;
    else
        got_term = 1;
    if (g_sig_pipe[1] >= 0 && write(g_sig_pipe[1], &c, 1) < 0) {
        /* the pipe is full: the flag is enough */
    }
    errno = saved;
}

/* ---- logging ---- */

static void log_event(watch *w, const char *event, const wcert *c, const char *reason,
                      int64_t next_attempt)
{
    char now[32], tu[32], nu[32], na[32];

    cli_fmt_time((int64_t)time(NULL), now, sizeof(now));
    cli_fmt_time(c ? c->this_update : 0, tu, sizeof(tu));
    cli_fmt_time(c ? c->next_update : 0, nu, sizeof(nu));
    cli_fmt_time(next_attempt, na, sizeof(na));
    if (w->json) {
        printf("{\"time\":\"%s\",\"event\":\"%s\",\"cert\":", now, event);
        cli_json_str(stdout, c ? c->path : "");
        printf(",\"status\":\"%s\",\"this_update\":\"%s\",\"next_update\":\"%s\","
               "\"next_refresh\":\"%s\",\"reason\":",
               c && c->served ? cli_status_name(c->status) : "none", tu, nu, na);
        cli_json_str(stdout, reason ? reason : "");
        printf("}\n");
    } else {
        printf("%s %s cert=%s status=%s thisUpdate=%s nextUpdate=%s next_refresh=%s%s%s%s\n", now,
               event, c ? c->path : "-", c && c->served ? cli_status_name(c->status) : "none", tu,
               nu, na, reason ? " reason=\"" : "", reason ? reason : "", reason ? "\"" : "");
    }
    fflush(stdout);
}

/* Stops watching slot |i|: logs |event| (unless NULL), closes its handle,
 * frees it. */
static void drop_cert(watch *w, int i, const char *event)
{
    wcert *c = w->certs[i];

    if (c == NULL)
        return;
    if (event != NULL)
        log_event(w, event, c, NULL, 0);
    srvocsp_close(c->h);
    w->certs[i] = NULL;
    free(c->path);
    free(c->ocsp_path);
    free(c);
}

/* ---- the engine's callback: hand the event to the main thread ---- */

typedef struct wire_event {
    int index;
    int type;
    srvocsp_error error;
    char reason[400];
} wire_event;

static watch *g_watch;

static void on_update(srvocsp_handle *h, const srvocsp_event *ev, void *arg)
{
    wire_event we;

    (void)h;
    memset(&we, 0, sizeof(we));
    we.index = (int)(intptr_t)arg;
    we.type = ev->type;
    we.error = ev->error;
    snprintf(we.reason, sizeof(we.reason), "%s", ev->reason ? ev->reason : "");
    /* Atomic for writes under PIPE_BUF; the main thread reads whole events. */
    if (write(g_watch->event_pipe[1], &we, sizeof(we)) != (ssize_t)sizeof(we)) {
        /* the main thread is gone or stuck; the status file catches up */
    }
}

/* ---- files, hook, HAProxy ---- */

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

/* Runs the operator's hook; false (with |why|) when it failed or ran past
 * --hook-timeout.  A hook that hangs (a reload that never returns) would
 * otherwise hold up every later delivery: past the timeout its process
 * group gets SIGTERM, two seconds later SIGKILL. */
static bool run_hook(watch *w, const wcert *c, char *why, size_t whylen)
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
        setenv("SRVOCSP_STATUS", cli_status_name(c->status), 1);
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

/* Sends "set ssl ocsp-response <base64>" and checks HAProxy's answer. */
static bool push_haproxy(watch *w, const unsigned char *der, size_t len, char *answer,
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

static void note_failure(watch *w, const char *code)
{
    int i;

    for (i = 0; i < w->n_failures; i++)
        if (strcmp(w->failures[i].code, code) == 0)
            break;
    if (i == w->n_failures) {
        if (i == MAX_REASONS)
            return;
        snprintf(w->failures[i].code, sizeof(w->failures[i].code), "%s", code);
        w->n_failures++;
    }
    w->failures[i].n++;
}

static void write_status(watch *w)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f;
    int i, n;

    if (w->status_file == NULL)
        return;
    /* Built in memory, then replaced with the library's atomic writer. */
    f = open_memstream(&buf, &len);
    if (f == NULL)
        return;
    fprintf(f, "{\"updated\":%lld,\"certificates\":[", (long long)time(NULL));
    for (i = 0, n = 0; i < w->n_certs; i++) {
        wcert *c = w->certs[i];

        if (c == NULL) /* a removed certificate's slot */
            continue;
        fprintf(f, "%s\n {\"cert\":", n++ ? "," : "");
        cli_json_str(f, c->path);
        fprintf(f, ",\"ocsp_file\":");
        cli_json_str(f, c->ocsp_path);
        fprintf(f,
                ",\"served\":%s,\"status\":\"%s\",\"this_update\":%lld,\"next_update\":%lld,"
                "\"next_refresh\":%lld,\"last_error\":",
                c->served ? "true" : "false", c->served ? cli_status_name(c->status) : "none",
                (long long)c->this_update, (long long)c->next_update,
                (long long)srvocsp_handle_next_attempt(c->h));
        cli_json_str(f, c->last_error);
        fprintf(f, "}");
    }
    fprintf(f, "\n]}\n");
    if (fclose(f) == 0)
        srvocsp__write_file_atomic(w->status_file, (const unsigned char *)buf, len);
    free(buf);
}

/* A new response for |c| is being served: file, hook, HAProxy. */
static void deliver(watch *w, wcert *c)
{
    srvocsp_response *r = srvocsp_get1_response(c->h);
    const unsigned char *der;
    size_t len;
    char answer[512];

    if (r == NULL) /* superseded or too old already: nothing to write */
        return;
    der = srvocsp_response_der(r, &len);
    c->served = true;
    c->status = srvocsp_response_status(r);
    c->this_update = srvocsp_response_this_update(r);
    c->next_update = srvocsp_response_expires(r);
    c->last_error[0] = '\0';
    w->responses[c->status]++;
    int err_no = srvocsp__write_file_atomic(c->ocsp_path, der, len);

    if (err_no != 0) {
        snprintf(c->last_error, sizeof(c->last_error), "cannot write %s: %s", c->ocsp_path,
                 strerror(err_no));
        log_event(w, "write-failed", c, c->last_error, srvocsp_handle_next_attempt(c->h));
        note_failure(w, "E_IO");
        srvocsp_response_free(r);
        return;
    }
    log_event(w, c->status == SRVOCSP_STATUS_REVOKED ? "revoked" : "updated", c, NULL,
              srvocsp_handle_next_attempt(c->h));
    if (w->on_update) {
        char why[600];

        if (!run_hook(w, c, why, sizeof(why)))
            log_event(w, "hook-failed", c, why, 0);
    }
    if (w->haproxy_socket) {
        bool ok = push_haproxy(w, der, len, answer, sizeof(answer));

        log_event(w, ok ? "haproxy-updated" : "haproxy-failed", c, answer, 0);
    }
    srvocsp_response_free(r);
}

static void handle_event(watch *w, const wire_event *we)
{
    wcert *c;

    if (we->index < 0 || we->index >= w->n_certs || w->certs[we->index] == NULL)
        return;
    c = w->certs[we->index];
    switch (we->type) {
    case SRVOCSP_EVENT_UPDATED:
    case SRVOCSP_EVENT_REVOKED:
        deliver(w, c);
        break;
    case SRVOCSP_EVENT_UNKNOWN:
        c->served = false;
        snprintf(c->last_error, sizeof(c->last_error), "the responder says unknown");
        w->responses[SRVOCSP_STATUS_UNKNOWN]++;
        log_event(w, "unknown", c, c->last_error, srvocsp_handle_next_attempt(c->h));
        break;
    case SRVOCSP_EVENT_FAILED:
        snprintf(c->last_error, sizeof(c->last_error), "%s", we->reason);
        snprintf(c->last_error_code, sizeof(c->last_error_code), "%s",
                 srvocsp_error_name(we->error));
        note_failure(w, srvocsp_error_name(we->error));
        log_event(w, "failed", c, we->reason, srvocsp_handle_next_attempt(c->h));
        break;
    default:
        break;
    }
    write_status(w);
}

/* ---- finding certificates ---- */

static bool leaf_digest(X509 *x, unsigned char *md)
{
    unsigned int n = 0;

    return X509_digest(x, EVP_sha256(), md, &n) == 1;
}

static bool is_candidate(const char *name)
{
    size_t n = strlen(name);

    if (name[0] == '.')
        return false;
    return (n > 4 && (strcmp(name + n - 4, ".pem") == 0 || strcmp(name + n - 4, ".crt") == 0));
}

static void open_cert(watch *w, const char *path)
{
    STACK_OF(X509) *chain = sk_X509_new_null();
    char issuer_path[4200];
    srvocsp_params p;
    wcert *c = NULL;
    FILE *f;
    X509 *x;
    int i, slot;
    unsigned char md[32];

    f = fopen(path, "r");
    if (f == NULL)
        goto out;
    while ((x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL)
        sk_X509_push(chain, x);
    fclose(f);
    ERR_clear_error();
    if (sk_X509_num(chain) == 0)
        goto out; /* a key or something else */
    x = sk_X509_value(chain, 0);
    if (X509_check_ca(x) != 0)
        goto out; /* a CA bundle, not a served certificate */
    snprintf(issuer_path, sizeof(issuer_path), "%s.issuer", path);
    if ((f = fopen(issuer_path, "r")) != NULL) {
        X509 *y;

        while ((y = PEM_read_X509(f, NULL, NULL, NULL)) != NULL)
            sk_X509_push(chain, y);
        fclose(f);
        ERR_clear_error();
    }
    leaf_digest(x, md);
    for (i = 0; i < w->n_certs; i++) {
        wcert *o = w->certs[i];

        if (o && strcmp(o->path, path) == 0) {
            o->seen = true;
            if (memcmp(o->leaf_md, md, 32) == 0)
                goto out; /* unchanged */
            /* Renewed: close the old handle, open the new certificate. */
            drop_cert(w, i, "renewed");
        }
    }
    for (slot = 0; slot < w->n_certs && w->certs[slot] != NULL; slot++)
        ;
    if (slot == MAX_CERTS)
        goto out;
    c = calloc(1, sizeof(*c));
    c->path = strdup(path);
    c->ocsp_path = malloc(strlen(path) + 6);
    sprintf(c->ocsp_path, "%s.ocsp", path);
    memcpy(c->leaf_md, md, 32);
    c->seen = true;
    srvocsp_params_init(&p);
    p.flags = SRVOCSP_OPEN_ASYNC;
    p.directory = w->state_dir;
    p.store_url = w->store_url;
    p.store_prefix = w->store_prefix;
    p.update_cb = on_update;
    p.update_arg = (void *)(intptr_t)slot;
    c->h = srvocsp_open(x, chain, &p);
    if (c->h == NULL) {
        char why[600];

        snprintf(why, sizeof(why), "%s", srvocsp_last_error_text());
        log_event(w, "skipped", c, why, 0);
        free(c->path);
        free(c->ocsp_path);
        free(c);
        goto out;
    }
    w->certs[slot] = c;
    if (slot == w->n_certs)
        w->n_certs++;
    log_event(w, "watching", c, NULL, srvocsp_handle_next_attempt(c->h));
out:
    sk_X509_pop_free(chain, X509_free);
}

static void scan(watch *w)
{
    int d, i;

    for (i = 0; i < w->n_certs; i++)
        if (w->certs[i])
            w->certs[i]->seen = false;
    for (d = 0; d < w->n_dirs; d++) {
        DIR *dh = opendir(w->dirs[d]);
        struct dirent *de;

        if (dh == NULL) {
            fprintf(stderr, "srvocsp watch: cannot read %s: %s\n", w->dirs[d], strerror(errno));
            continue;
        }
        while ((de = readdir(dh)) != NULL) {
            char path[4096];
            struct stat st;

            if (!is_candidate(de->d_name))
                continue;
            snprintf(path, sizeof(path), "%s/%s", w->dirs[d], de->d_name);
            if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
                open_cert(w, path);
        }
        closedir(dh);
    }
    for (i = 0; i < w->n_certs; i++) {
        wcert *c = w->certs[i];

        if (c && !c->seen)
            drop_cert(w, i, "removed");
    }
    write_status(w);
}

/* ---- metrics (Prometheus text, loopback only) ---- */

static int open_metrics(const char *spec)
{
    char host[64];
    const char *colon = strrchr(spec, ':');
    struct sockaddr_in a;
    int fd, one = 1;

    if (colon == NULL || (size_t)(colon - spec) >= sizeof(host))
        return -1;
    snprintf(host, sizeof(host), "%.*s", (int)(colon - spec), spec);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, strcmp(host, "localhost") == 0 ? "127.0.0.1" : host, &a.sin_addr) != 1 ||
        (ntohl(a.sin_addr.s_addr) >> 24) != 127) {
        fprintf(stderr, "srvocsp watch: --metrics must be a loopback address:port\n");
        return -1;
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 16) != 0) {
        fprintf(stderr, "srvocsp watch: cannot listen on %s: %s\n", spec, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static void serve_metrics(watch *w)
{
    char req[2048], *body = NULL, head[256];
    size_t cap = 0, used = 0;
    FILE *m = open_memstream(&body, &cap);
    int fd = accept(w->metrics_fd, NULL, NULL), i;
    int64_t now = (int64_t)time(NULL);

    if (fd < 0 || m == NULL) {
        if (m)
            fclose(m);
        free(body);
        if (fd >= 0)
            close(fd);
        return;
    }
    if (read(fd, req, sizeof(req)) < 0) {
        /* answer anyway */
    }
    fprintf(m, "# HELP srvocsp_responses_total Verified responses accepted, by certificate status.\n"
               "# TYPE srvocsp_responses_total counter\n");
    for (i = 0; i < 3; i++)
        fprintf(m, "srvocsp_responses_total{status=\"%s\"} %lu\n",
                cli_status_name((srvocsp_cert_status)i), w->responses[i]);
    fprintf(m, "# HELP srvocsp_failures_total Failed retrievals, by reason.\n"
               "# TYPE srvocsp_failures_total counter\n");
    for (i = 0; i < w->n_failures; i++)
        fprintf(m, "srvocsp_failures_total{reason=\"%s\"} %lu\n", w->failures[i].code,
                w->failures[i].n);
    fprintf(m, "# HELP srvocsp_seconds_until_expiry Seconds until the served response expires.\n"
               "# TYPE srvocsp_seconds_until_expiry gauge\n");
    for (i = 0; i < w->n_certs; i++) {
        wcert *c = w->certs[i];

        if (c == NULL)
            continue;
        fprintf(m, "srvocsp_seconds_until_expiry{cert=");
        cli_json_str(m, c->path); /* a JSON string is a valid label value */
        fprintf(m, "} %lld\n", c->served ? (long long)(c->next_update - now) : 0LL);
    }
    fclose(m);
    used = strlen(body);
    snprintf(head, sizeof(head),
             "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
             "Content-Length: %zu\r\nConnection: close\r\n\r\n",
             used);
    if (write(fd, head, strlen(head)) < 0 || write(fd, body, used) < 0) {
        /* the scraper went away */
    }
    close(fd);
    free(body);
}

/* ---- configuration file: "key = value" lines, # comments ---- */

static char *trim(char *s)
{
    char *e;

    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
        *--e = '\0';
    return s;
}

static bool parse_seconds(const char *v, long *out)
{
    char *end;
    long n;

    errno = 0;
    n = strtol(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || n < 1 || n > 86400)
        return false;
    *out = n;
    return true;
}

static bool read_config(watch *w, const char *path)
{
    FILE *f = fopen(path, "r");
    char line[4096];
    int n = 0;

    if (f == NULL) {
        fprintf(stderr, "srvocsp watch: cannot read %s: %s\n", path, strerror(errno));
        return false;
    }
    while (fgets(line, sizeof(line), f)) {
        char *k = trim(line), *eq, *v;

        n++;
        if (*k == '#' || *k == '\0')
            continue;
        eq = strchr(k, '=');
        if (eq == NULL) {
            fprintf(stderr, "srvocsp watch: %s:%d: expected key = value\n", path, n);
            fclose(f);
            return false;
        }
        *eq = '\0';
        k = trim(k);
        v = strdup(trim(eq + 1));
        if (strcmp(k, "dir") == 0 && w->n_dirs < MAX_DIRS)
            w->dirs[w->n_dirs++] = v;
        else if (strcmp(k, "on-update") == 0)
            w->on_update = v;
        else if (strcmp(k, "haproxy-socket") == 0)
            w->haproxy_socket = v;
        else if (strcmp(k, "status-file") == 0)
            w->status_file = v;
        else if (strcmp(k, "metrics") == 0)
            w->metrics = v;
        else if (strcmp(k, "state-dir") == 0)
            w->state_dir = v;
        else if (strcmp(k, "store") == 0)
            w->store_url = v;
        else if (strcmp(k, "store-prefix") == 0)
            w->store_prefix = v;
        else if (strcmp(k, "hook-timeout") == 0) {
            if (!parse_seconds(v, &w->hook_timeout_s)) {
                fprintf(stderr, "srvocsp watch: %s:%d: hook-timeout must be 1 to 86400 seconds\n",
                        path, n);
                fclose(f);
                return false;
            }
        }
        else if (strcmp(k, "json") == 0)
            w->json = strcmp(v, "yes") == 0 || strcmp(v, "true") == 0 || strcmp(v, "1") == 0;
        else {
            fprintf(stderr, "srvocsp watch: %s:%d: unknown key '%s'\n", path, n, k);
            fclose(f);
            return false;
        }
    }
    fclose(f);
    return true;
}

static int print_status(const char *path)
{
    size_t len;
    unsigned char *b = cli_read_file(path, 16u << 20, &len);

    if (b == NULL) {
        fprintf(stderr, "srvocsp watch: no status file at %s (is the service running with "
                        "--status-file?)\n",
                path);
        return 2;
    }
    fwrite(b, 1, len, stdout);
    free(b);
    return 0;
}

static void watch_usage(FILE *f)
{
    fprintf(f,
            "usage: srvocsp watch --dir DIR [--dir DIR ...] [--config FILE]\n"
            "                     [--on-update CMD] [--haproxy-socket PATH] [--state-dir DIR]\n"
            "                     [--status-file FILE] [--metrics 127.0.0.1:PORT] [--json]\n"
            "                     [--hook-timeout SECONDS (30)]\n"
            "                     [--store redis://[user:password@]host:port[/db] | unix:///PATH]\n"
            "                     [--store-prefix PREFIX (srvocsp:)]\n"
            "       srvocsp watch --status --status-file FILE\n"
            "\n"
            "Finds certificate files (*.pem, *.crt: the certificate then its chain, or a\n"
            "separate <file>.issuer as HAProxy uses) and keeps <file>.ocsp fresh with verified,\n"
            "time-valid responses.  On each new response: runs CMD with SRVOCSP_CERT_FILE,\n"
            "SRVOCSP_OCSP_FILE and SRVOCSP_STATUS in its environment, and/or pushes the response\n"
            "to HAProxy's runtime API.  SIGHUP rescans, SIGUSR1 refreshes every certificate now,\n"
            "SIGTERM/SIGINT stop.  See docs/watch.md.\n");
}

int cmd_watch(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dir", required_argument, NULL, 'd'},         {"config", required_argument, NULL, 'c'},
        {"on-update", required_argument, NULL, 'u'},   {"haproxy-socket", required_argument, NULL, 'H'},
        {"status-file", required_argument, NULL, 's'}, {"metrics", required_argument, NULL, 'm'},
        {"state-dir", required_argument, NULL, 'S'},   {"json", no_argument, NULL, 'j'},
        {"status", no_argument, NULL, 'T'},            {"help", no_argument, NULL, 'h'},
        {"hook-timeout", required_argument, NULL, 't'},
        {"store", required_argument, NULL, 'R'},       {"store-prefix", required_argument, NULL, 'P'},
        {NULL, 0, NULL, 0},
    };
    watch w;
    bool status_only = false;
    struct sigaction sa;
    int c, i;

    memset(&w, 0, sizeof(w));
    w.metrics_fd = -1;
    w.hook_timeout_s = 30;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:c:u:H:s:m:S:jTht:R:P:", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            if (w.n_dirs < MAX_DIRS)
                w.dirs[w.n_dirs++] = optarg;
            break;
        case 'c':
            if (!read_config(&w, optarg))
                return 2;
            break;
        case 'u': w.on_update = optarg; break;
        case 'H': w.haproxy_socket = optarg; break;
        case 's': w.status_file = optarg; break;
        case 'm': w.metrics = optarg; break;
        case 'S': w.state_dir = optarg; break;
        case 'R': w.store_url = optarg; break;
        case 'P': w.store_prefix = optarg; break;
        case 'j': w.json = true; break;
        case 't':
            if (!parse_seconds(optarg, &w.hook_timeout_s)) {
                fprintf(stderr, "srvocsp watch: --hook-timeout must be 1 to 86400 seconds, not "
                                "'%s'\n",
                        optarg);
                return 2;
            }
            break;
        case 'T': status_only = true; break;
        case 'h': watch_usage(stdout); return 0;
        default: watch_usage(stderr); return 2;
        }
    }
    if (status_only)
        return w.status_file ? print_status(w.status_file) : (watch_usage(stderr), 2);
    if (w.n_dirs == 0 || optind != argc) {
        watch_usage(stderr);
        return 2;
    }
    if (w.metrics && (w.metrics_fd = open_metrics(w.metrics)) < 0)
        return 2;
    if (pipe(w.event_pipe) != 0 || pipe(g_sig_pipe) != 0)
        return 2;
    fcntl(g_sig_pipe[1], F_SETFL, O_NONBLOCK);
    g_watch = &w;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    scan(&w);
    while (!got_term) {
        struct pollfd pfd[3] = {{w.event_pipe[0], POLLIN, 0}, {g_sig_pipe[0], POLLIN, 0},
                                {w.metrics_fd, POLLIN, 0}};
        int n = poll(pfd, w.metrics_fd >= 0 ? 3 : 2, 1000);

        if (n < 0 && errno != EINTR)
            break;
        if (n > 0 && (pfd[0].revents & POLLIN)) {
            wire_event we;

            if (read(w.event_pipe[0], &we, sizeof(we)) == (ssize_t)sizeof(we))
                handle_event(&w, &we);
        }
        if (n > 0 && (pfd[1].revents & POLLIN)) {
            char buf[16];

            if (read(g_sig_pipe[0], buf, sizeof(buf)) < 0) {
                /* flags below are what count */
            }
        }
        if (n > 0 && w.metrics_fd >= 0 && (pfd[2].revents & POLLIN))
            serve_metrics(&w);
        if (got_hup) {
            got_hup = 0;
            log_event(&w, "rescan", NULL, NULL, 0);
            scan(&w);
        }
        if (got_usr1) {
            got_usr1 = 0;
            log_event(&w, "refresh-all", NULL, NULL, 0);
            for (i = 0; i < w.n_certs; i++)
                if (w.certs[i])
                    srvocsp_handle_refresh_now(w.certs[i]->h);
        }
    }
    log_event(&w, "stopping", NULL, NULL, 0);
    for (i = 0; i < w.n_certs; i++)
        drop_cert(&w, i, NULL);
    if (w.metrics_fd >= 0)
        close(w.metrics_fd);
    return 0;
}
