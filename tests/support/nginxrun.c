#define _GNU_SOURCE
#include "nginxrun.h"
#include "spawn.h"
#include "peers.h"
#include "testpki.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void nr_init(nr_nginx *n, const char *dir, const char *bin, const char *module, const char *preload)
{
    char p[1200];

    memset(n, 0, sizeof(*n));
    snprintf(n->dir, sizeof(n->dir), "%s", dir);
    snprintf(n->conf, sizeof(n->conf), "%s/nginx.conf", dir);
    snprintf(n->errlog, sizeof(n->errlog), "%s/logs/error.log", dir);
    n->bin = bin;
    n->module = module;
    n->preload = preload ? preload : "";
    snprintf(p, sizeof(p), "%s/logs", dir);
    mkdir(p, 0755);
    snprintf(p, sizeof(p), "%s/tmp", dir);
    mkdir(p, 0755);
}

bool nr_write_conf(nr_nginx *n, int workers, const char *http_body)
{
    FILE *f = fopen(n->conf, "w");
    const char *d = n->dir;

    if (f == NULL)
        return false;
    if (n->module)
        fprintf(f, "load_module %s;\n", n->module);
    /* Root runs the workers as root unless told otherwise, so they can read
     * what the test wrote. */
    if (n->user)
        fprintf(f, "user %s;\n", n->user);
    fprintf(f,
            "%s"
            "worker_processes %d;\n"
            "daemon off;\n"
            "error_log %s notice;\n"
            "pid %s/nginx.pid;\n"
            "events { worker_connections 1024; }\n"
            "http {\n"
            "    access_log off;\n"
            "    client_body_temp_path %s/tmp; proxy_temp_path %s/tmp; fastcgi_temp_path %s/tmp;\n"
            "    uwsgi_temp_path %s/tmp; scgi_temp_path %s/tmp;\n"
            "%s\n"
            "}\n",
            geteuid() == 0 && n->user == NULL ? "user root root;\n" : "", workers, n->errlog, d, d, d, d, d, d,
            http_body);
    return fclose(f) == 0;
}

/* nginx's arguments and environment, made before the fork (spawn.h). */
static bool plan_nginx(const nr_nginx *n, const char *extra, tr_exec *p)
{
    const char *argv[] = {n->bin, "-p", n->dir, "-c", n->conf, extra, NULL};
    char preload[1200];
    /* nginx does not free everything at exit by design; the sanitizers
     * still stop it on any memory error of the module. */
    const char *set[3] = {"ASAN_OPTIONS=detect_leaks=0:abort_on_error=1", NULL, NULL};

    if (n->preload && *n->preload) {
        snprintf(preload, sizeof(preload), "LD_PRELOAD=%s", n->preload);
        set[1] = preload;
    }
    return tr_exec_plan(p, argv, set);
}

int nr_test_conf(nr_nginx *n, char *out, size_t cap)
{
    tr_exec plan;
    int rc;

    if (!plan_nginx(n, "-t", &plan))
        return -1;
    rc = tr_exec_run(&plan, n->bin, out, cap, 60000);
    tr_exec_free(&plan);
    return rc;
}

bool nr_port_accepts(int port)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    bool ok;

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

pid_t nr_ppid_of(pid_t pid, char *cmd, size_t cap)
{
    char path[64], buf[512];
    FILE *f;
    int ppid = -1;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    if (fgets(buf, sizeof(buf), f)) {
        char *rp = strrchr(buf, ')');

        if (rp == NULL || sscanf(rp + 2, "%*c %d", &ppid) != 1)
            ppid = -1;
    }
    fclose(f);
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    f = fopen(path, "r");
    cmd[0] = '\0';
    if (f) {
        size_t r = fread(cmd, 1, cap - 1, f);

        cmd[r] = '\0';
        fclose(f);
    }
    return (pid_t)ppid;
}

int nr_workers(const nr_nginx *n, pid_t *out, int cap, bool include_exiting)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    int count = 0;

    if (d == NULL || n->master <= 0)
        return 0;
    while ((de = readdir(d)) != NULL) {
        char cmd[256];
        pid_t pid = (pid_t)atoi(de->d_name);

        if (pid <= 0 || nr_ppid_of(pid, cmd, sizeof(cmd)) != n->master)
            continue;
        /* An exited worker the master has not reaped yet (a zombie: no
         * command line) still holds its channel in the master. */
        if (strncmp(cmd, "nginx: worker process", 21) != 0 && !(include_exiting && cmd[0] == '\0'))
            continue;
        if (!include_exiting && strstr(cmd, "shutting down") != NULL)
            continue;
        if (out && count < cap)
            out[count] = pid;
        count++;
    }
    closedir(d);
    return count;
}

void nr_log_dump(const nr_nginx *n, int last_lines)
{
    char cmd[1300];

    snprintf(cmd, sizeof(cmd), "tail -n %d '%s' >&2", last_lines, n->errlog);
    if (system(cmd) != 0)
        fprintf(stderr, "(no error log)\n");
}

bool nr_start(nr_nginx *n, int port, int workers)
{
    double until = tr_now_ms() + 30000;
    char out[1200];
    tr_exec plan;
    pid_t pid;

    /* nginx writes start-up messages to stderr: keep them with the log. */
    snprintf(out, sizeof(out), "%s/logs/stderr.log", n->dir);
    if (!plan_nginx(n, NULL, &plan))
        return false;
    pid = fork();
    if (pid < 0) {
        tr_exec_free(&plan);
        return false;
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        int fd = open(out, O_WRONLY | O_CREAT | O_APPEND, 0644);

        dup2(devnull, 0);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        setpgid(0, 0);
        tr_exec_child(&plan, n->bin);
    }
    tr_exec_free(&plan);
    n->master = pid;
    while (tr_now_ms() < until) {
        int status;

        if (waitpid(pid, &status, WNOHANG) == pid) {
            char cmd[1300];

            fprintf(stderr, "nginx exited at start (status %d):\n", status);
            snprintf(cmd, sizeof(cmd), "cat '%s/logs/stderr.log' >&2", n->dir);
            if (system(cmd) != 0)
                fprintf(stderr, "(no stderr log)\n");
            nr_log_dump(n, 30);
            n->master = 0;
            return false;
        }
        if (nr_workers(n, NULL, 0, false) >= workers && nr_port_accepts(port))
            return true;
        tr_sleep_ms(10);
    }
    fprintf(stderr, "nginx did not start within 30 s\n");
    nr_log_dump(n, 30);
    return false;
}

bool nr_reload(nr_nginx *n, int workers, int timeout_ms)
{
    pid_t old[256], cur[256];
    int n_old = nr_workers(n, old, 256, true), n_cur, i, j;
    double until = tr_now_ms() + timeout_ms;

    /* Never kill(0, ...): that would signal this test's own process group. */
    if (n->master <= 0 || kill(n->master, SIGHUP) != 0)
        return false;
    while (tr_now_ms() < until) {
        bool any_old = false;

        n_cur = nr_workers(n, cur, 256, true);
        for (i = 0; i < n_cur && !any_old; i++)
            for (j = 0; j < n_old; j++)
                if (cur[i] == old[j])
                    any_old = true;
        if (!any_old && n_cur >= workers)
            return true;
        tr_sleep_ms(5);
    }
    return false;
}

void nr_stop(nr_nginx *n)
{
    double until;
    int status;

    if (n->master <= 0)
        return;
    kill(n->master, SIGTERM);
    until = tr_now_ms() + 5000;
    while (tr_now_ms() < until) {
        if (waitpid(n->master, &status, WNOHANG) == n->master) {
            n->master = 0;
            return;
        }
        tr_sleep_ms(10);
    }
    kill(-n->master, SIGKILL); /* its process group: master and workers */
    waitpid(n->master, &status, 0);
    n->master = 0;
}

int nr_log_count(const nr_nginx *n, const char *needle)
{
    FILE *f = fopen(n->errlog, "r");
    char line[8192];
    int count = 0;

    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f))
        if (strstr(line, needle))
            count++;
    fclose(f);
    return count;
}

/* Entries of /proc/<pid>/<what>, -1 when it cannot be read. */
static int proc_entries(pid_t pid, const char *what)
{
    char path[64];
    DIR *d;
    struct dirent *de;
    int count = 0;

    snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, what);
    d = opendir(path);
    if (d == NULL)
        return -1;
    while ((de = readdir(d)) != NULL)
        count += de->d_name[0] != '.';
    closedir(d);
    return count;
}

int nr_proc_fds(pid_t pid)
{
    return proc_entries(pid, "fd");
}

int nr_proc_threads(pid_t pid)
{
    return proc_entries(pid, "task");
}

long nr_proc_rss_kb(pid_t pid)
{
    char path[64], line[256];
    FILE *f;
    long kb = -1;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

SSL_CTX *nr_client_ctx(const char *sigalgs, int max_version)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (ctx == NULL)
        return NULL;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    if (sigalgs)
        SSL_CTX_set1_sigalgs_list(ctx, sigalgs);
    if (max_version)
        SSL_CTX_set_max_proto_version(ctx, max_version);
    /* Every handshake full: a resumed one would not carry a staple. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    return ctx;
}

bool nr_parse_staples = true;

static void read_staple(SSL *ssl, nr_hs *out)
{
    const unsigned char *p = NULL, *q;
    long len = SSL_get_tlsext_status_ocsp_resp(ssl, &p);
    OCSP_RESPONSE *resp;
    OCSP_BASICRESP *basic;

    if (len <= 0 || p == NULL)
        return;
    out->stapled = true;
    if (!nr_parse_staples)
        return;
    if ((size_t)len <= sizeof(out->der)) {
        memcpy(out->der, p, (size_t)len);
        out->der_len = (size_t)len;
    }
    q = p;
    resp = d2i_OCSP_RESPONSE(NULL, &q, len);
    basic = resp ? OCSP_response_get1_basic(resp) : NULL;
    if (basic && OCSP_resp_count(basic) > 0) {
        OCSP_SINGLERESP *single = OCSP_resp_get0(basic, 0);
        ASN1_INTEGER *serial = NULL;
        int reason;

        OCSP_id_get0_info(NULL, NULL, NULL, &serial, (OCSP_CERTID *)OCSP_SINGLERESP_get0_id(single));
        out->serial = serial ? ASN1_INTEGER_get(serial) : -1;
        out->cert_status = OCSP_single_get0_status(single, &reason, NULL, NULL, NULL);
    }
    OCSP_BASICRESP_free(basic);
    OCSP_RESPONSE_free(resp);
}

bool nr_handshake(SSL_CTX *ctx, int port, const char *sni, nr_hs *out)
{
    struct sockaddr_in a;
    struct timeval tv = {10, 0};
    double t0 = tr_now_ms();
    int fd, one = 1;
    SSL *ssl = NULL;

    memset(out, 0, sizeof(*out));
    out->serial = -1;
    out->cert_status = -1;
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        snprintf(out->err, sizeof(out->err), "connect: %s", strerror(errno));
        goto out;
    }
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (sni)
        SSL_set_tlsext_host_name(ssl, sni);
    SSL_set_tlsext_status_type(ssl, TLSEXT_STATUSTYPE_ocsp);
    if (SSL_connect(ssl) != 1) {
        unsigned long e = ERR_get_error();

        snprintf(out->err, sizeof(out->err), "handshake: %s",
                 e ? ERR_error_string(e, NULL) : strerror(errno));
        ERR_clear_error();
        goto out;
    }
    out->ok = true;
    read_staple(ssl, out);
    SSL_shutdown(ssl);
out:
    out->ms = tr_now_ms() - t0;
    SSL_free(ssl);
    close(fd);
    return out->ok;
}

/* Rewrites every response in |cache| as an older one, still valid but past
 * its refresh point, so a process that loads it fetches at once. */
int nr_age_cache(const char *cache, const tp_pki *pki)
{
    DIR *d = opendir(cache);
    struct dirent *de;
    int done = 0;
    int64_t now = (int64_t)time(NULL);

    while (d && (de = readdir(d)) != NULL) {
        char path[1700];
        unsigned char *der, *fresh;
        const unsigned char *p;
        size_t len, flen;
        OCSP_RESPONSE *resp;
        OCSP_BASICRESP *basic;
        ASN1_INTEGER *serial = NULL;
        const tp_cert *leaf = NULL;
        tp_resp_opts o;

        if (strstr(de->d_name, ".der") == NULL || de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", cache, de->d_name);
        der = tp_read_file(path, &len);
        p = der;
        resp = der ? d2i_OCSP_RESPONSE(NULL, &p, (long)len) : NULL;
        basic = resp ? OCSP_response_get1_basic(resp) : NULL;
        if (basic && OCSP_resp_count(basic) > 0)
            OCSP_id_get0_info(NULL, NULL, NULL, &serial,
                              (OCSP_CERTID *)OCSP_SINGLERESP_get0_id(OCSP_resp_get0(basic, 0)));
        if (serial && ASN1_INTEGER_get(serial) == TP_SERIAL_GOOD)
            leaf = &pki->good;
        else if (serial && ASN1_INTEGER_get(serial) == TP_SERIAL_GOOD_RSA)
            leaf = &pki->good_rsa;
        if (leaf) {
            tp_resp_opts_init(&o, leaf, &pki->ca, now - 3000);
            o.next_update = now + 1200;
            fresh = tp_response(&o, &flen);
            if (fresh && tp_write_file(path, fresh, flen))
                done++;
            free(fresh);
        }
        OCSP_BASICRESP_free(basic);
        OCSP_RESPONSE_free(resp);
        free(der);
    }
    if (d)
        closedir(d);
    return done;
}
