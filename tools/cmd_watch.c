/*
 * srvocsp watch: keep <certfile>.ocsp fresh and verified for nginx
 * (ssl_stapling_file) and HAProxy (crt cert.pem loads cert.pem.ocsp), run
 * the operator's hooks, push to HAProxy's runtime API, log one line per
 * event, keep a status file and serve metrics.  This file is the loop and
 * the signals; docs/watch.md says what the command promises.
 *
 * Nothing beside the loop can stall it, and nothing in it can stall the
 * engine: the engine's callback folds its event into a bounded, coalescing
 * queue (watch_queue.c) and returns; hooks run as child processes reaped
 * on SIGCHLD (watch_hooks.c); HAProxy is pushed to from a thread of its own
 * (watch_push.c); HTTP clients are served by libmicrohttpd's thread from
 * text the loop rendered (watch_metrics.c).  The loop itself does only
 * bounded work per pass: the events that waited, the certificates due for
 * a look, one status file write, one metrics render.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
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
    else if (sig != SIGCHLD)
        got_term = 1;
    if (g_sig_pipe[1] >= 0 && write(g_sig_pipe[1], &c, 1) < 0) {
        /* the pipe is full: the flags are enough */
    }
    errno = saved;
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

#define TAKE_MAX 64        /* events taken from the queue at a time */
#define DRAIN_BUDGET_MS 200 /* then the rest of the pass (hooks, status, metrics) */

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
        wlog(w, "responder-fallback", NULL, why, 0);
    }
}

/* The engine's events that waited, with the counts folded in.  Each event
 * may cost a file write with its fsync: past DRAIN_BUDGET_MS the rest stays
 * in the queue (where it keeps coalescing) until the next pass, so hooks
 * are started, batches run and the status file and metrics follow while
 * thousands of certificates are being written. */
static void drain_events(watch *w)
{
    static wq_event evs[TAKE_MAX];
    int64_t until = mono_ms() + DRAIN_BUDGET_MS;
    wq_counts counts;
    int n;

    do {
        memset(&counts, 0, sizeof(counts));
        n = wq_take(w->queue, evs, TAKE_MAX, &counts);
        for (int i = 0; i < 3; i++)
            w->responses[i] += counts.responses[i];
        for (int i = 0; i < 64; i++)
            if (counts.failures[i])
                wcount_add(w, false, srvocsp_error_name((srvocsp_error)i), counts.failures[i]);
        w->coalesced += counts.coalesced;
        w->metrics_dirty = true;
        for (int i = 0; i < n; i++)
            wstate_event(w, &evs[i]);
    } while (n == TAKE_MAX && mono_ms() < until);
    w->backlog = n == TAKE_MAX;
    log_fallbacks(w);
}

static void on_push_result(void *arg, int slot, bool ok, const char *answer)
{
    watch *w = arg;
    const wcert *c = slot < w->n_certs ? w->certs[slot] : NULL;

    if (c != NULL)
        wlog(w, ok ? "haproxy-updated" : "haproxy-failed", c, answer, 0);
}

/* Once per pass: the status file, the metrics, then the log. */
static void report(watch *w, int64_t *last_render)
{
    wstatus_write(w);
    if (w->metrics_srv != NULL && (w->metrics_dirty || mono_ms() - *last_render >= 1000)) {
        size_t ml = 0, hl = 0;
        bool healthy = false;
        char *m = wreport_metrics(w, &ml), *h = wreport_health(w, &hl, &healthy);

        wm_publish(w->metrics_srv, m, ml, h, hl, healthy);
        w->metrics_dirty = false;
        *last_render = mono_ms();
    }
    wlog_flush();
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
        struct pollfd pfd = {wq_fd(w->queue), POLLIN, 0};
        int64_t left = until - mono_ms();

        drain_events(w);
        for (i = 0; i < w->n_certs; i++) {
            wcert *c = w->certs[i];

            if (c == NULL)
                continue;
            wstate_reconcile(w, c);
            /* --once: until each is servable (fetched, or adopted from its
             * file) or its first retrieval failed; --wait: until each is
             * servable. */
            if (o->wait_s ? !c->served : !(c->served || c->attempted))
                done = false;
        }
        wlog_flush();
        if (done || left <= 0 || got_term)
            break;
        if (o->wait_s && mono_ms() >= next_retry) {
            for (i = 0; i < w->n_certs; i++)
                if (w->certs[i] && !w->certs[i]->served)
                    srvocsp_handle_refresh_now(w->certs[i]->h);
            next_retry = mono_ms() + 10000;
        }
        poll(&pfd, 1, left > 250 ? 250 : (int)left);
    }
    for (i = 0; i < w->n_certs; i++) {
        wcert *c = w->certs[i];
        char why[1100];

        if (c == NULL)
            continue;
        n++;
        if (c->served) {
            ready++;
            wlog(w, "ready", c, NULL, srvocsp_handle_next_attempt(c->h));
            continue;
        }
        snprintf(why, sizeof(why), "%s: %s%s%s%s%s%s", srvocsp_error_name(c->not_served),
                 c->not_served_text, c->last_error[0] ? "; last retrieval: " : "",
                 c->last_error_code, c->last_error[0] ? ": " : "", c->last_error,
                 c->attempted ? "" : " (no answer within the time allowed)");
        wlog(w, "not-ready", c, why, srvocsp_handle_next_attempt(c->h));
    }
    w->status_dirty = true;
    wstatus_write(w);
    wlog_flush();
    if (n == 0) {
        fprintf(stderr, "srvocsp watch: no certificate with an OCSP responder URL found\n");
        return 2;
    }
    return ready == n ? 0 : 1;
}

/* How long poll may sleep: until the next served response reaches its
 * last servable second, the hooks' next deadline, a second for the
 * metrics' clock, and never longer than WATCH_RECHECK_MS, so a step of the
 * wall clock (which moves those moments) is noticed soon. */
static int poll_timeout(const watch *w, int64_t last_full, long hooks_ms)
{
    int64_t t = last_full + WATCH_RECHECK_MS - mono_ms();

    if (w->next_recheck_ms && w->next_recheck_ms - wall_ms() < t)
        t = w->next_recheck_ms - wall_ms();
    if (hooks_ms >= 0 && hooks_ms < t)
        t = hooks_ms;
    if (w->metrics_srv != NULL && t > 1000)
        t = 1000;
    return t < 0 ? 0 : (int)t;
}

/* Tells systemd (Type=notify) the service is up once every certificate
 * has been tried, as --once waits for (servable, or its first retrieval
 * reported), or at --once's bound, so a hung responder never holds the
 * units ordered after this one.  Returns whether it was told. */
static bool notify_ready(const watch *w, int64_t ready_by)
{
    char msg[160];
    int i, n = 0, served = 0;
    bool all = true;

    for (i = 0; i < w->n_certs; i++) {
        const wcert *c = w->certs[i];

        if (c == NULL)
            continue;
        n++;
        served += c->served;
        if (!(c->served || c->attempted))
            all = false;
    }
    if (!all && mono_ms() < ready_by)
        return false;
    snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%d certificate%s, %d served%s", n,
             n == 1 ? "" : "s", served, all ? "" : " (some not answered in time)");
    wnotify(msg);
    return true;
}

static void loop(watch *w)
{
    int64_t last_full = mono_ms(), last_render = 0;
    int64_t ready_by = mono_ms() + ((w->url_timeout_s ? w->url_timeout_s : 15) + 5) * 1000;
    long hooks_ms = -1;
    bool ready = notify_ready(w, ready_by);

    while (!got_term) {
        struct pollfd pfd[3] = {{wq_fd(w->queue), POLLIN, 0},
                                {g_sig_pipe[0], POLLIN, 0},
                                {w->push ? wp_fd(w->push) : -1, POLLIN, 0}};
        int n = poll(pfd, 3, poll_timeout(w, last_full, hooks_ms));

        if (n < 0 && errno != EINTR)
            break;
        if (n > 0 && (pfd[1].revents & POLLIN)) {
            char buf[64];

            while (read(g_sig_pipe[0], buf, sizeof(buf)) > 0)
                ; /* the flags are what count */
        }
        drain_events(w);
        if (w->push && n > 0 && (pfd[2].revents & POLLIN))
            wp_results(w->push, on_push_result, w);
        /* Responses that reached their last servable second, and every
         * certificate every few seconds (by both clocks: a step of the wall
         * clock either way must not postpone it). */
        if (mono_ms() - last_full >= WATCH_RECHECK_MS) {
            wstate_recheck(w, true);
            last_full = mono_ms();
        } else {
            wstate_recheck(w, false);
        }
        if (got_hup) {
            /* systemctl reload (ExecReload sends SIGHUP): the rescan is the
             * reload, done when wscan returns. */
            got_hup = 0;
            wnotify("RELOADING=1");
            wlog(w, "rescan", NULL, NULL, 0);
            wscan(w);
            if (ready)
                wnotify("READY=1");
        }
        if (got_usr1) {
            got_usr1 = 0;
            wlog(w, "refresh-all", NULL, NULL, 0);
            for (int i = 0; i < w->n_certs; i++)
                if (w->certs[i])
                    srvocsp_handle_refresh_now(w->certs[i]->h);
        }
        hooks_ms = wh_run(w);
        report(w, &last_render);
        if (!ready)
            ready = notify_ready(w, ready_by);
    }
    wnotify("STOPPING=1");
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

static void free_all(watch *w)
{
    for (int i = 0; i < w->n_certs; i++)
        wscan_drop(w, i, NULL);
    /* A closed handle's callback may still be running on the engine's
     * thread: the engine stops before the queue it writes into goes. */
    srvocsp_cleanup();
    wp_free(w->push);
    wm_stop(w->metrics_srv);
    wh_free(w->hooks);
    wq_free(w->queue);
    free(w->certs);
}

int cmd_watch(int argc, char **argv)
{
    watch w;
    wopts o;
    struct sigaction sa;
    int rc = 0;
    char err[600];

    memset(&w, 0, sizeof(w));
    memset(&o, 0, sizeof(o));
    w.hook_timeout_s = 30;
    w.hook_jobs = 4;
    w.batch_delay_ms = 1000;
    if (!wopts_parse(&w, &o, argc, argv))
        return 2;
    if (o.help) {
        wopts_usage(stdout);
        return 0;
    }
    if (o.status_only)
        return w.status_file ? print_status(w.status_file) : (wopts_usage(stderr), 2);
    if (o.once || o.wait_s) {
        /* Before the server starts: nothing to reload or push, no metrics. */
        w.quiet_outputs = true;
        w.metrics = NULL;
    }
    srvocsp_params_init(&w.params);
    w.params.flags = SRVOCSP_OPEN_ASYNC;
    w.params.directory = w.state_dir;
    w.params.store_url = w.store_url;
    w.params.store_prefix = w.store_prefix;
    if (w.min_validity_s)
        w.params.min_validity_s = (uint32_t)w.min_validity_s;
    if (w.url_timeout_s)
        w.params.url_timeout_ms = (uint32_t)w.url_timeout_s * 1000u;
    w.params.adaptive_min_validity = w.adaptive;
    if (w.metrics && (w.metrics_srv = wm_start(w.metrics, w.metrics_any_address, err,
                                               sizeof(err))) == NULL) {
        fprintf(stderr, "srvocsp watch: %s\n", err);
        return 2;
    }
    if ((w.queue = wq_new()) == NULL || (w.hooks = wh_new()) == NULL ||
        (w.haproxy_socket && !w.quiet_outputs && (w.push = wp_new(w.haproxy_socket)) == NULL) ||
        pipe(g_sig_pipe) != 0) {
        fprintf(stderr, "srvocsp watch: cannot start: %s\n", strerror(errno));
        free_all(&w);
        return 2;
    }
    for (int i = 0; i < 2; i++) {
        fcntl(g_sig_pipe[i], F_SETFL, O_NONBLOCK);
        fcntl(g_sig_pipe[i], F_SETFD, FD_CLOEXEC);
    }
    /* The log is flushed once per pass, after the status file. */
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    wscan(&w);
    if (o.once || o.wait_s) {
        rc = run_once(&w, &o);
    } else {
        int64_t last = 0;

        report(&w, &last);
        loop(&w);
        wlog(&w, "stopping", NULL, NULL, 0);
        wh_stop(&w);
        wlog_flush();
    }
    free_all(&w);
    return rc;
}
