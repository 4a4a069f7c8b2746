/*
 * srvocsp watch: keep <certfile>.ocsp fresh and verified for nginx
 * (ssl_stapling_file) and HAProxy (crt cert.pem loads cert.pem.ocsp), run a
 * hook on each new response, push it to HAProxy's runtime API, log one line
 * per event, keep a status file and serve Prometheus metrics on loopback.
 *
 * What watch writes is what the library serves: after every event, at the
 * last second the served response may be served, and every few seconds,
 * it asks srvocsp_get1_response and makes the file, the nginx snippet, the
 * hook and HAProxy follow -- including when the library stops serving
 * (withdrawn: too close to nextUpdate, unknown, a clock step).  Existing
 * .ocsp files are offered to the library at start, so a restart adopts what
 * the servers already staple.  --once/--wait fetch everything once for a
 * service manager and exit.
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

#include "watch.h"

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
    free(c->snippet_path);
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

static void count(watch *w, bool withdrawal, const char *code)
{
    int *n = withdrawal ? &w->n_withdrawals : &w->n_failures;
    wcount *t = withdrawal ? w->withdrawals : w->failures;
    int i;

    for (i = 0; i < *n; i++)
        if (strcmp(t[i].code, code) == 0)
            break;
    if (i == *n) {
        if (i == MAX_REASONS)
            return;
        snprintf(t[i].code, sizeof(t[i].code), "%s", code);
        (*n)++;
    }
    t[i].n++;
}

static const char *file_name(wfile f)
{
    static const char *const names[] = {"absent", "served", "empty", "kept"};

    return names[f];
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
                ",\"served\":%s,\"status\":\"%s\",\"reason\":\"%s\",\"reason_text\":",
                c->served ? "true" : "false", c->served ? cli_status_name(c->status) : "none",
                c->served ? "" : srvocsp_error_name(c->not_served));
        cli_json_str(f, c->served ? "" : c->not_served_text);
        fprintf(f,
                ",\"file\":\"%s\",\"this_update\":%lld,\"next_update\":%lld,"
                "\"servable_until\":%lld,\"next_refresh\":%lld,\"last_error_code\":\"%s\","
                "\"last_error\":",
                file_name(c->file), (long long)c->this_update, (long long)c->next_update,
                (long long)(c->served ? c->servable_until : 0),
                (long long)srvocsp_handle_next_attempt(c->h), c->last_error_code);
        cli_json_str(f, c->last_error);
        fprintf(f, "}");
    }
    fprintf(f, "\n]}\n");
    if (fclose(f) == 0)
        srvocsp__write_file_atomic(w->status_file, (const unsigned char *)buf, len);
    free(buf);
}

/* ---- what is served, and the servers told so ---- */

/* The last second |r| can be served, by the library's rule: its expiry
 * (nextUpdate, or the maximum age; the library already caps it at the
 * trust horizon after thisUpdate) minus the minimum validity, which
 * --adaptive-min-validity shrinks to a quarter of the window for
 * short-lived responses. */
static int64_t servable_until(const watch *w, const srvocsp_response *r)
{
    int64_t tu = srvocsp_response_this_update(r), exp = srvocsp_response_expires(r);
    int64_t margin = w->min_validity_s ? w->min_validity_s : 600;

    if (w->adaptive && (exp - tu) / 4 < margin)
        margin = (exp - tu) / 4;
    return exp - margin;
}

static void sha256(const unsigned char *d, size_t len, unsigned char *md)
{
    unsigned int n = 0;

    EVP_Digest(d, len, md, &n, EVP_sha256(), NULL);
}

static wwithdraw withdraw_policy(const watch *w)
{
    if (w->withdraw != WITHDRAW_DEFAULT)
        return w->withdraw;
    return w->haproxy_socket ? WITHDRAW_EMPTY : WITHDRAW_KEEP;
}

/* Tells the operator's hook, unless --once/--wait. */
static void hook(watch *w, wcert *c, const char *event, const char *reason)
{
    char why[600];

    if (w->on_update == NULL || w->quiet_outputs)
        return;
    if (!wout_run_hook(w, c, event, reason, why, sizeof(why)))
        log_event(w, "hook-failed", c, why, 0);
}

/* Switches the nginx snippet; true when it changed. */
static bool snippet(watch *w, wcert *c, bool on)
{
    char why[300];
    int r;

    if (!w->nginx_snippets)
        return false;
    snprintf(why, sizeof(why), "%s", on ? "" : srvocsp_error_name(c->not_served));
    r = wout_write_snippet(c, on, why);
    if (r < 0) {
        snprintf(why, sizeof(why), "cannot write %s: %s", c->snippet_path, strerror(errno));
        log_event(w, "write-failed", c, why, 0);
        count(w, false, "E_IO");
    }
    return r > 0;
}

/* |r| is what the library now serves for |c| and differs from what was
 * served: file, snippet, hook, HAProxy. */
static void publish(watch *w, wcert *c, srvocsp_response *r, const unsigned char *md)
{
    size_t len;
    const unsigned char *der = srvocsp_response_der(r, &len);
    const char *event = c->status == SRVOCSP_STATUS_REVOKED ? "revoked" : "updated";
    char answer[512];
    bool changed;

    /* The file may already hold it: the server loaded it before watch
     * (re)started and the library adopted it, or it was kept while the
     * library withheld it. */
    bool same = (c->file == WFILE_SERVED || c->file == WFILE_KEPT) &&
                memcmp(md, c->file_md, 32) == 0;

    if (!same) {
        int err_no = srvocsp__write_file_atomic(c->ocsp_path, der, len);

        if (err_no != 0) {
            snprintf(c->last_error, sizeof(c->last_error), "cannot write %s: %s", c->ocsp_path,
                     strerror(err_no));
            snprintf(c->last_error_code, sizeof(c->last_error_code), "E_IO");
            log_event(w, "write-failed", c, c->last_error, srvocsp_handle_next_attempt(c->h));
            count(w, false, "E_IO");
            /* Not delivered: the next look (within 5 s) tries again. */
            memset(c->served_md, 0, sizeof(c->served_md));
            return;
        }
        memcpy(c->file_md, md, 32);
    }
    c->file = WFILE_SERVED;
    changed = snippet(w, c, true);
    /* The status file first: a hook may take a while (a reload). */
    write_status(w);
    log_event(w, same ? "adopted" : event, c, NULL, srvocsp_handle_next_attempt(c->h));
    if (same && !changed)
        return; /* the server already staples exactly this */
    hook(w, c, event, NULL);
    if (!same && w->haproxy_socket && !w->quiet_outputs) {
        bool ok = wout_push_haproxy(w, der, len, answer, sizeof(answer));

        log_event(w, ok ? "haproxy-updated" : "haproxy-failed", c, answer, 0);
    }
}

/* The library serves nothing for |c| (any more): make the file, the
 * snippet and the hook say so, as far as each server allows. */
static void withdraw(watch *w, wcert *c, bool was_served)
{
    char reason[400];
    bool changed = false;

    if (withdraw_policy(w) == WITHDRAW_EMPTY &&
        (c->file == WFILE_SERVED || c->file == WFILE_KEPT)) {
        int err_no = srvocsp__write_file_atomic(c->ocsp_path, (const unsigned char *)"", 0);

        if (err_no == 0) {
            c->file = WFILE_EMPTY;
            changed = true;
        } else {
            snprintf(reason, sizeof(reason), "cannot empty %s: %s", c->ocsp_path,
                     strerror(err_no));
            log_event(w, "write-failed", c, reason, 0);
            count(w, false, "E_IO");
        }
    } else if (c->file == WFILE_SERVED) {
        c->file = WFILE_KEPT;
    }
    changed |= snippet(w, c, false);
    if (!was_served && !changed)
        return;
    snprintf(reason, sizeof(reason), "%s: %s; %s %s", srvocsp_error_name(c->not_served),
             c->not_served_text, c->ocsp_path,
             c->file == WFILE_EMPTY ? "emptied" : c->file == WFILE_KEPT ? "kept" : "absent");
    write_status(w);
    if (was_served) {
        count(w, true, srvocsp_error_name(c->not_served));
        log_event(w, "withdrawn", c, reason, srvocsp_handle_next_attempt(c->h));
        if (w->haproxy_socket && !w->quiet_outputs)
            log_event(w, "haproxy-unchanged", c,
                      "HAProxy's runtime API cannot remove a response; HAProxy stops stapling "
                      "it 300 s before its nextUpdate, and loads the emptied file at restart",
                      0);
    }
    hook(w, c, "withdrawn", srvocsp_error_name(c->not_served));
}

/* Looks at what the library serves for |c| now and acts on any change.
 * Cheap (the library's get path takes no lock): called after every event,
 * when a served response reaches its last servable second, and every few
 * seconds for every certificate so a clock step is noticed. */
static void reconcile(watch *w, wcert *c)
{
    int64_t now = (int64_t)time(NULL);
    srvocsp_response *r = srvocsp_get1_response(c->h);

    if (r != NULL) {
        unsigned char md[32];
        size_t len;
        const unsigned char *der = srvocsp_response_der(r, &len);

        sha256(der, len, md);
        c->servable_until = servable_until(w, r);
        /* Past the computed moment but still served: look again soon. */
        c->recheck_at = c->servable_until + 1 > now ? c->servable_until + 1 : now + 1;
        if (!c->served || memcmp(md, c->served_md, 32) != 0) {
            c->served = true;
            c->status = srvocsp_response_status(r);
            c->this_update = srvocsp_response_this_update(r);
            c->next_update = srvocsp_response_expires(r);
            memcpy(c->served_md, md, 32);
            c->not_served = SRVOCSP_OK;
            c->not_served_text[0] = '\0';
            publish(w, c, r, md);
            write_status(w);
        }
        srvocsp_response_free(r);
        return;
    }
    c->recheck_at = 0;
    {
        srvocsp_error e = srvocsp_last_error();
        bool was = c->served;

        if (!was && e == c->not_served)
            return;
        c->served = false;
        c->not_served = e;
        snprintf(c->not_served_text, sizeof(c->not_served_text), "%s", srvocsp_strerror(e));
        withdraw(w, c, was);
        write_status(w);
    }
}

/* The library's word on the last retrieval: an adopted file or a repeated
 * (unchanged) answer does not clear an outage, a fresh answer does. */
static void pull_last_failure(wcert *c)
{
    char buf[sizeof(c->last_error)];
    srvocsp_error e = srvocsp_handle_last_failure(c->h, buf, sizeof(buf));

    if (e == SRVOCSP_OK) {
        c->last_error[0] = c->last_error_code[0] = '\0';
        return;
    }
    snprintf(c->last_error_code, sizeof(c->last_error_code), "%s", srvocsp_error_name(e));
    memcpy(c->last_error, buf, sizeof(buf));
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
        c->attempted = true;
        w->responses[we->type == SRVOCSP_EVENT_REVOKED ? SRVOCSP_STATUS_REVOKED
                                                       : SRVOCSP_STATUS_GOOD]++;
        break;
    case SRVOCSP_EVENT_UNKNOWN:
        c->attempted = true;
        w->responses[SRVOCSP_STATUS_UNKNOWN]++;
        log_event(w, "unknown", c, "the responder says unknown",
                  srvocsp_handle_next_attempt(c->h));
        break;
    case SRVOCSP_EVENT_FAILED:
        c->attempted = true;
        count(w, false, srvocsp_error_name(we->error));
        {
            char why[500];

            snprintf(why, sizeof(why), "%s: %s", srvocsp_error_name(we->error), we->reason);
            log_event(w, "failed", c, why, srvocsp_handle_next_attempt(c->h));
        }
        break;
    case SRVOCSP_EVENT_STORE_FAILED:
        log_event(w, "store-failed", c, we->reason, 0);
        count(w, false, srvocsp_error_name(we->error));
        break;
    default:
        break;
    }
    pull_last_failure(c);
    reconcile(w, c);
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

/* What the server may be stapling already: an existing <cert>.ocsp is
 * offered to the library, verified and judged like a responder's answer,
 * so a restart during an outage keeps serving (and reporting) it. */
static void adopt(watch *w, wcert *c)
{
    size_t len = 0;
    unsigned char *der = cli_read_file(c->ocsp_path, WATCH_MAX_FILE, &len);
    srvocsp_error e;
    char why[600];

    if (der == NULL) {
        if (errno == EFBIG) {
            c->file = WFILE_KEPT;
            memset(c->file_md, 0, 32);
            snprintf(why, sizeof(why), "%s is larger than %d bytes", c->ocsp_path,
                     WATCH_MAX_FILE);
            log_event(w, "not-adopted", c, why, 0);
        }
        reconcile(w, c);
        return;
    }
    if (len == 0) {
        c->file = WFILE_EMPTY;
        free(der);
        reconcile(w, c);
        return;
    }
    c->file = WFILE_KEPT;
    sha256(der, len, c->file_md);
    e = srvocsp_handle_offer_der(c->h, der, len);
    free(der);
    if (e != SRVOCSP_OK) {
        snprintf(why, sizeof(why), "%s: %s", srvocsp_error_name(e), srvocsp_last_error_text());
        log_event(w, "not-adopted", c, why, srvocsp_handle_next_attempt(c->h));
    }
    reconcile(w, c);
}

/* Appends the PEM certificates of |path| to |chain|: at most
 * WATCH_MAX_FILE bytes and WATCH_MAX_CHAIN certificates are read (the
 * watched directory may hold anything).  Returns how many. */
static int read_pem_certs(const char *path, STACK_OF(X509) *chain)
{
    size_t len = 0;
    unsigned char *b = cli_read_file(path, WATCH_MAX_FILE, &len);
    BIO *bio = b ? BIO_new_mem_buf(b, (int)len) : NULL;
    X509 *x;
    int n = 0;

    while (bio != NULL && n < WATCH_MAX_CHAIN && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
        if (!sk_X509_push(chain, x)) {
            X509_free(x);
            break;
        }
        n++;
    }
    ERR_clear_error();
    BIO_free(bio);
    free(b);
    return n;
}

static void open_cert(watch *w, const char *path)
{
    STACK_OF(X509) *chain = sk_X509_new_null();
    char issuer_path[4200];
    srvocsp_params p;
    wcert *c = NULL;
    X509 *x;
    int i, slot;
    unsigned char md[32];

    if (chain == NULL || read_pem_certs(path, chain) == 0)
        goto out; /* unreadable, too large, a key or something else */
    x = sk_X509_value(chain, 0);
    if (X509_check_ca(x) != 0)
        goto out; /* a CA bundle, not a served certificate */
    snprintf(issuer_path, sizeof(issuer_path), "%s.issuer", path);
    read_pem_certs(issuer_path, chain); /* optional */
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
    if (c == NULL || (c->path = strdup(path)) == NULL ||
        (c->ocsp_path = malloc(strlen(path) + 6)) == NULL ||
        (c->snippet_path = malloc(strlen(path) + 16)) == NULL)
        goto fail;
    sprintf(c->ocsp_path, "%s.ocsp", path);
    sprintf(c->snippet_path, "%s.stapling.conf", path);
    if (!w->nginx_snippets) {
        free(c->snippet_path);
        c->snippet_path = NULL;
    }
    memcpy(c->leaf_md, md, 32);
    c->seen = true;
    srvocsp_params_init(&p);
    p.flags = SRVOCSP_OPEN_ASYNC;
    p.directory = w->state_dir;
    p.store_url = w->store_url;
    p.store_prefix = w->store_prefix;
    p.update_cb = on_update;
    p.update_arg = (void *)(intptr_t)slot;
    if (w->min_validity_s)
        p.min_validity_s = (uint32_t)w->min_validity_s;
    if (w->url_timeout_s)
        p.url_timeout_ms = (uint32_t)w->url_timeout_s * 1000u;
    p.adaptive_min_validity = w->adaptive;
    c->h = srvocsp_open(x, chain, &p);
    if (c->h == NULL) {
        char why[600];

        snprintf(why, sizeof(why), "%s", srvocsp_last_error_text());
        log_event(w, "skipped", c, why, 0);
        goto fail;
    }
    w->certs[slot] = c;
    if (slot == w->n_certs)
        w->n_certs++;
    log_event(w, "watching", c, NULL, srvocsp_handle_next_attempt(c->h));
    adopt(w, c);
    c = NULL;
    goto out;
fail:
    if (c) {
        free(c->path);
        free(c->ocsp_path);
        free(c->snippet_path);
        free(c);
    }
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
    fprintf(m, "# HELP srvocsp_withdrawals_total Served responses the library stopped serving, by "
               "reason.\n"
               "# TYPE srvocsp_withdrawals_total counter\n");
    for (i = 0; i < w->n_withdrawals; i++)
        fprintf(m, "srvocsp_withdrawals_total{reason=\"%s\"} %lu\n", w->withdrawals[i].code,
                w->withdrawals[i].n);
    {
        srvocsp_engine_stats st;

        srvocsp_engine_get_stats(NULL, &st);
        fprintf(m, "# HELP srvocsp_method_fallbacks_total Requests sent with the other HTTP method "
                   "because the responder refused or mishandled the first.\n"
                   "# TYPE srvocsp_method_fallbacks_total counter\n"
                   "srvocsp_method_fallbacks_total{from=\"GET\",to=\"POST\"} %llu\n"
                   "srvocsp_method_fallbacks_total{from=\"POST\",to=\"GET\"} %llu\n",
                (unsigned long long)st.fallbacks_get_to_post,
                (unsigned long long)st.fallbacks_post_to_get);
    }
    fprintf(m, "# HELP srvocsp_served Whether the library serves a response for the certificate.\n"
               "# TYPE srvocsp_served gauge\n");
    for (i = 0; i < w->n_certs; i++) {
        wcert *c = w->certs[i];

        if (c == NULL)
            continue;
        fprintf(m, "srvocsp_served{cert=");
        cli_json_str(m, c->path);
        fprintf(m, "} %d\n", c->served ? 1 : 0);
    }
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

/* ---- options, from the command line or the configuration file ---- */

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

static bool parse_range(const char *v, long lo, long hi, long *out)
{
    char *end;
    long n;

    errno = 0;
    n = strtol(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || n < lo || n > hi)
        return false;
    *out = n;
    return true;
}

static bool parse_bool(const char *v)
{
    return strcmp(v, "yes") == 0 || strcmp(v, "true") == 0 || strcmp(v, "1") == 0;
}

typedef struct wopts {
    bool once;
    long wait_s;
} wopts;

/* Applies option |key| (the long option's name) = |v|; |v| is kept.
 * Prints what is wrong (prefixed by |where|) and returns false. */
static bool set_option(watch *w, wopts *o, const char *key, char *v, const char *where)
{
    static const struct {
        const char *key;
        long lo, hi;
        size_t off;
        const char *unit;
    } ranges[] = {
        {"hook-timeout", 1, 86400, offsetof(watch, hook_timeout_s), "seconds"},
        {"min-validity", 1, 86400, offsetof(watch, min_validity_s), "seconds"},
        {"url-timeout", 1, 300, offsetof(watch, url_timeout_s), "seconds"},
    };

    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
        if (strcmp(key, ranges[i].key) != 0)
            continue;
        if (!parse_range(v, ranges[i].lo, ranges[i].hi, (long *)((char *)w + ranges[i].off))) {
            fprintf(stderr, "srvocsp watch: %s%s must be %ld to %ld %s, not '%s'\n", where, key,
                    ranges[i].lo, ranges[i].hi, ranges[i].unit, v);
            return false;
        }
        return true;
    }
    if (strcmp(key, "dir") == 0) {
        if (w->n_dirs == MAX_DIRS) {
            fprintf(stderr, "srvocsp watch: %smore than %d folders\n", where, MAX_DIRS);
            return false;
        }
        w->dirs[w->n_dirs++] = v;
    } else if (strcmp(key, "on-update") == 0)
        w->on_update = v;
    else if (strcmp(key, "haproxy-socket") == 0)
        w->haproxy_socket = v;
    else if (strcmp(key, "status-file") == 0)
        w->status_file = v;
    else if (strcmp(key, "metrics") == 0)
        w->metrics = v;
    else if (strcmp(key, "state-dir") == 0)
        w->state_dir = v;
    else if (strcmp(key, "store") == 0)
        w->store_url = v;
    else if (strcmp(key, "store-prefix") == 0)
        w->store_prefix = v;
    else if (strcmp(key, "json") == 0)
        w->json = parse_bool(v);
    else if (strcmp(key, "adaptive-min-validity") == 0)
        w->adaptive = parse_bool(v);
    else if (strcmp(key, "nginx-snippets") == 0)
        w->nginx_snippets = parse_bool(v);
    else if (strcmp(key, "withdrawn-file") == 0) {
        if (strcmp(v, "keep") == 0)
            w->withdraw = WITHDRAW_KEEP;
        else if (strcmp(v, "empty") == 0)
            w->withdraw = WITHDRAW_EMPTY;
        else {
            fprintf(stderr, "srvocsp watch: %swithdrawn-file must be keep or empty, not '%s'\n",
                    where, v);
            return false;
        }
    } else if (strcmp(key, "wait") == 0 && o != NULL) {
        if (!parse_range(v, 1, 86400, &o->wait_s)) {
            fprintf(stderr, "srvocsp watch: %swait must be 1 to 86400 seconds, not '%s'\n", where,
                    v);
            return false;
        }
    } else {
        fprintf(stderr, "srvocsp watch: %sunknown key '%s'\n", where, key);
        return false;
    }
    return true;
}

static bool read_config(watch *w, const char *path)
{
    FILE *f = fopen(path, "r");
    char line[4096], where[4200];
    int n = 0;

    if (f == NULL) {
        fprintf(stderr, "srvocsp watch: cannot read %s: %s\n", path, strerror(errno));
        return false;
    }
    while (fgets(line, sizeof(line), f)) {
        char *k = trim(line), *eq;

        n++;
        if (*k == '#' || *k == '\0')
            continue;
        snprintf(where, sizeof(where), "%s:%d: ", path, n);
        eq = strchr(k, '=');
        if (eq == NULL) {
            fprintf(stderr, "srvocsp watch: %sexpected key = value\n", where);
            fclose(f);
            return false;
        }
        *eq = '\0';
        k = trim(k);
        /* Options of one run (--once, --wait) are not configuration. */
        if (!set_option(w, NULL, k, strdup(trim(eq + 1)), where)) {
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
            "                     [--hook-timeout SECONDS (30)] [--nginx-snippets]\n"
            "                     [--withdrawn-file keep|empty] [--min-validity SECONDS (600)]\n"
            "                     [--adaptive-min-validity] [--url-timeout SECONDS (15)]\n"
            "                     [--once | --wait SECONDS]\n"
            "                     [--store redis://[user:password@]host:port[/db] | unix:///PATH\n"
            "                              | redis-sentinel://host[:port][,host[:port]...][/db]#MASTER]\n"
            "                     [--store-prefix PREFIX (srvocsp:)]\n"
            "       srvocsp watch --status --status-file FILE\n"
            "\n"
            "Finds certificate files (*.pem, *.crt: the certificate then its chain, or a\n"
            "separate <file>.issuer as HAProxy uses) and keeps <file>.ocsp fresh with verified,\n"
            "time-valid responses.  On each new response, and when a response stops being\n"
            "servable: runs CMD with SRVOCSP_EVENT, SRVOCSP_CERT_FILE, SRVOCSP_OCSP_FILE,\n"
            "SRVOCSP_STATUS and SRVOCSP_REASON in its environment, and/or pushes the response to\n"
            "HAProxy's runtime API.  --once fetches every certificate once and exits 0 when\n"
            "each has a servable response, 1 otherwise; --wait SECONDS waits up to that long\n"
            "for all of them.  SIGHUP rescans, SIGUSR1 refreshes every certificate now,\n"
            "SIGTERM/SIGINT stop.  See docs/watch.md.\n");
}

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* How long poll may sleep: until the next served response reaches its
 * last servable second, and never longer than WATCH_RECHECK_MS, so a
 * step of the wall clock (which moves those moments) is noticed soon. */
static int poll_timeout(const watch *w)
{
    int64_t next = wall_ms() + WATCH_RECHECK_MS, now = wall_ms();

    for (int i = 0; i < w->n_certs; i++) {
        const wcert *c = w->certs[i];

        if (c && c->recheck_at && c->recheck_at * 1000 < next)
            next = c->recheck_at * 1000;
    }
    return next <= now ? 0 : (int)(next - now);
}

/* A responder that needed the other HTTP method is logged once (while the
 * library remembers it), so an operator can tell its CA. */
static void log_fallbacks(watch *w)
{
    srvocsp_method_fallback f[64];
    size_t i, n = srvocsp_method_fallbacks(f, 64);

    for (i = 0; i < n && i < 64; i++) {
        char why[640];

        if (f[i].id <= w->fallbacks_logged)
            continue;
        w->fallbacks_logged = f[i].id;
        snprintf(why, sizeof(why), "%.255s is asked with %.7s from now on: %.159s", f[i].responder,
                 f[i].method, f[i].why);
        log_event(w, "responder-fallback", NULL, why, 0);
    }
}

static void drain_events(watch *w)
{
    wire_event we;

    while (read(w->event_pipe[0], &we, sizeof(we)) == (ssize_t)sizeof(we))
        handle_event(w, &we);
    log_fallbacks(w);
}

/* --once / --wait: every certificate fetched (and verified, and written)
 * before the server starts.  One log line per certificate; 0 when every
 * one has a servable response. */
static int run_once(watch *w, const wopts *o)
{
    int64_t until = mono_ms() + (o->wait_s ? o->wait_s : (w->url_timeout_s ? w->url_timeout_s
                                                                            : 15) + 5) * 1000;
    int64_t next_retry = mono_ms() + 10000;
    int i, n = 0, ready = 0;

    for (;;) {
        bool done = true;
        struct pollfd pfd = {w->event_pipe[0], POLLIN, 0};
        int64_t left = until - mono_ms();

        for (i = 0; i < w->n_certs; i++) {
            wcert *c = w->certs[i];

            if (c == NULL)
                continue;
            reconcile(w, c);
            /* --once: until each is servable (fetched, or adopted from its
             * file) or its first retrieval failed; --wait: until each is
             * servable. */
            if (o->wait_s ? !c->served : !(c->served || c->attempted))
                done = false;
        }
        if (done || left <= 0 || got_term)
            break;
        if (o->wait_s && mono_ms() >= next_retry) {
            for (i = 0; i < w->n_certs; i++)
                if (w->certs[i] && !w->certs[i]->served)
                    srvocsp_handle_refresh_now(w->certs[i]->h);
            next_retry = mono_ms() + 10000;
        }
        if (poll(&pfd, 1, left > 250 ? 250 : (int)left) > 0)
            drain_events(w);
    }
    for (i = 0; i < w->n_certs; i++) {
        wcert *c = w->certs[i];
        char why[1100];

        if (c == NULL)
            continue;
        n++;
        if (c->served) {
            ready++;
            log_event(w, "ready", c, NULL, srvocsp_handle_next_attempt(c->h));
            continue;
        }
        snprintf(why, sizeof(why), "%s: %s%s%s%s%s%s", srvocsp_error_name(c->not_served),
                 c->not_served_text, c->last_error[0] ? "; last retrieval: " : "",
                 c->last_error_code, c->last_error[0] ? ": " : "", c->last_error,
                 c->attempted ? "" : " (no answer within the time allowed)");
        log_event(w, "not-ready", c, why, srvocsp_handle_next_attempt(c->h));
    }
    write_status(w);
    if (n == 0) {
        fprintf(stderr, "srvocsp watch: no certificate with an OCSP responder URL found\n");
        return 2;
    }
    return ready == n ? 0 : 1;
}

int cmd_watch(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dir", required_argument, NULL, 'd'},
        {"config", required_argument, NULL, 'c'},
        {"on-update", required_argument, NULL, 'u'},
        {"haproxy-socket", required_argument, NULL, 'H'},
        {"status-file", required_argument, NULL, 's'},
        {"metrics", required_argument, NULL, 'm'},
        {"state-dir", required_argument, NULL, 'S'},
        {"json", no_argument, NULL, 'j'},
        {"status", no_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {"hook-timeout", required_argument, NULL, 'o'},
        {"min-validity", required_argument, NULL, 'o'},
        {"url-timeout", required_argument, NULL, 'o'},
        {"withdrawn-file", required_argument, NULL, 'o'},
        {"wait", required_argument, NULL, 'o'},
        {"store", required_argument, NULL, 'o'},
        {"store-prefix", required_argument, NULL, 'o'},
        {"adaptive-min-validity", no_argument, NULL, 'b'},
        {"nginx-snippets", no_argument, NULL, 'b'},
        {"once", no_argument, NULL, '1'},
        {NULL, 0, NULL, 0},
    };
    watch w;
    wopts o = {false, 0};
    bool status_only = false;
    struct sigaction sa;
    int c, i, idx, rc = 0;
    int64_t last_full = 0;
    static char yes[] = "yes";

    memset(&w, 0, sizeof(w));
    w.metrics_fd = -1;
    w.hook_timeout_s = 30;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:c:u:H:s:m:S:jTh", opts, &idx)) != -1) {
        switch (c) {
        case 'd':
            if (!set_option(&w, &o, "dir", optarg, "--"))
                return 2;
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
        case 'j': w.json = true; break;
        case 'o':
            if (!set_option(&w, &o, opts[idx].name, optarg, "--"))
                return 2;
            break;
        case 'b':
            set_option(&w, &o, opts[idx].name, yes, "--");
            break;
        case '1': o.once = true; break;
        case 'T': status_only = true; break;
        case 'h': watch_usage(stdout); return 0;
        default: watch_usage(stderr); return 2;
        }
    }
    if (status_only)
        return w.status_file ? print_status(w.status_file) : (watch_usage(stderr), 2);
    if (w.n_dirs == 0 || optind != argc || (o.once && o.wait_s)) {
        if (o.once && o.wait_s)
            fprintf(stderr, "srvocsp watch: --once and --wait exclude each other\n");
        watch_usage(stderr);
        return 2;
    }
    if (o.once || o.wait_s) {
        /* Before the server starts: nothing to reload or push, no metrics. */
        w.quiet_outputs = true;
        w.metrics = NULL;
    }
    if (w.metrics && (w.metrics_fd = open_metrics(w.metrics)) < 0)
        return 2;
    if (pipe(w.event_pipe) != 0 || pipe(g_sig_pipe) != 0)
        return 2;
    fcntl(g_sig_pipe[1], F_SETFL, O_NONBLOCK);
    fcntl(w.event_pipe[0], F_SETFL, O_NONBLOCK);
    g_watch = &w;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    scan(&w);
    if (o.once || o.wait_s) {
        rc = run_once(&w, &o);
        got_term = 1;
    }
    while (!got_term) {
        struct pollfd pfd[3] = {{w.event_pipe[0], POLLIN, 0}, {g_sig_pipe[0], POLLIN, 0},
                                {w.metrics_fd, POLLIN, 0}};
        int n = poll(pfd, w.metrics_fd >= 0 ? 3 : 2, poll_timeout(&w));
        int64_t now_ms = wall_ms();

        if (n < 0 && errno != EINTR)
            break;
        if (n > 0 && (pfd[0].revents & POLLIN))
            drain_events(&w);
        if (n > 0 && (pfd[1].revents & POLLIN)) {
            char buf[16];

            if (read(g_sig_pipe[0], buf, sizeof(buf)) < 0) {
                /* flags below are what count */
            }
        }
        if (n > 0 && w.metrics_fd >= 0 && (pfd[2].revents & POLLIN))
            serve_metrics(&w);
        /* Responses that reached their last servable second, and every
         * certificate every few seconds (by both clocks: a step of the wall
         * clock either way must not postpone it). */
        {
            bool full = mono_ms() - last_full >= WATCH_RECHECK_MS;

            for (i = 0; i < w.n_certs; i++) {
                wcert *wc = w.certs[i];

                if (wc && (full || (wc->recheck_at && wc->recheck_at * 1000 <= now_ms)))
                    reconcile(&w, wc);
            }
            if (full)
                last_full = mono_ms();
        }
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
    if (!(o.once || o.wait_s))
        log_event(&w, "stopping", NULL, NULL, 0);
    for (i = 0; i < w.n_certs; i++)
        drop_cert(&w, i, NULL);
    if (w.metrics_fd >= 0)
        close(w.metrics_fd);
    return rc;
}
