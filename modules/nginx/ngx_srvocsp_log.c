/* srvocsp's reports: queued by the engine thread, logged by the event loop. */
#include "ngx_srvocsp_log.h"

#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#define DRAIN_INTERVAL_MS 200
/* One line, level digit first; at most PIPE_BUF so each write is atomic. */
#define LINE_MAX_BYTES 1024

static int g_pipe[2] = {-1, -1};
static atomic_ulong g_dropped;   /* lines lost to a full pipe */
static ngx_event_t g_drain_ev;
static ngx_connection_t g_dummy; /* timers need ev->data */
static char g_carry[LINE_MAX_BYTES];
static size_t g_carry_len;

ngx_int_t ngx_srvocsp_log_init(ngx_log_t *log)
{
    if (g_pipe[0] != -1)
        return NGX_OK;
    if (pipe2(g_pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
        ngx_log_error(NGX_LOG_EMERG, log, ngx_errno, "srvocsp: pipe2() for the log queue failed");
        return NGX_ERROR;
    }
    return NGX_OK;
}

static void fmt_time(int64_t t, char *buf, size_t len)
{
    struct tm tm;
    time_t tt = (time_t)t;

    if (t == 0 || gmtime_r(&tt, &tm) == NULL || strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
        snprintf(buf, len, "-");
}

void ngx_srvocsp_log_event(srvocsp_handle *h, const srvocsp_event *ev, void *arg)
{
    const ngx_srvocsp_cert_tag_t *tag = arg;
    char line[LINE_MAX_BYTES], tu[40], nu[40], na[40];
    ngx_uint_t level = NGX_LOG_NOTICE;
    int n;

    (void)h;
    if (g_pipe[1] == -1)
        return;
    fmt_time(ev->response ? srvocsp_response_this_update(ev->response) : 0, tu, sizeof(tu));
    fmt_time(ev->response ? srvocsp_response_next_update(ev->response) : 0, nu, sizeof(nu));
    fmt_time(ev->next_attempt, na, sizeof(na));
    switch (ev->type) {
    case SRVOCSP_EVENT_UPDATED:
        n = snprintf(line, sizeof(line),
                     "srvocsp: \"%s\": new OCSP response, good, thisUpdate %s, nextUpdate %s, "
                     "next refresh %s (process %d)",
                     tag->name, tu, nu, na, (int)getpid());
        break;
    case SRVOCSP_EVENT_REVOKED:
        level = NGX_LOG_WARN;
        n = snprintf(line, sizeof(line),
                     "srvocsp: \"%s\": the responder says REVOKED; the revoked response is "
                     "stapled (thisUpdate %s) (process %d)",
                     tag->name, tu, (int)getpid());
        break;
    case SRVOCSP_EVENT_UNKNOWN:
        level = NGX_LOG_WARN;
        n = snprintf(line, sizeof(line),
                     "srvocsp: \"%s\": the responder does not know the certificate (unknown); "
                     "nothing is stapled for it (process %d)",
                     tag->name, (int)getpid());
        break;
    case SRVOCSP_EVENT_STORE_FAILED:
        level = NGX_LOG_WARN;
        n = snprintf(line, sizeof(line),
                     "srvocsp: \"%s\": the new response could not be saved in srvocsp_directory: "
                     "%s (process %d)",
                     tag->name, ev->reason ? ev->reason : "", (int)getpid());
        break;
    default:
        level = NGX_LOG_WARN;
        n = snprintf(line, sizeof(line),
                     "srvocsp: \"%s\": OCSP retrieval failed (%s): %s; next attempt %s; the "
                     "last verified response, if any, keeps being stapled (process %d)",
                     tag->name, srvocsp_error_name(ev->error), ev->reason ? ev->reason : "", na,
                     (int)getpid());
        break;
    }
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(line) - 2)
        n = (int)sizeof(line) - 3;
    /* The level travels as the first byte; no newline inside a line. */
    memmove(line + 1, line, (size_t)n);
    line[0] = (char)('0' + level);
    for (int i = 1; i <= n; i++)
        if (line[i] == '\n')
            line[i] = ' ';
    line[n + 1] = '\n';
    if (write(g_pipe[1], line, (size_t)n + 2) != n + 2)
        atomic_fetch_add(&g_dropped, 1);
}

void ngx_srvocsp_tag_free(void *arg)
{
    free(arg);
}

static void log_line(ngx_log_t *log, char *s, size_t len)
{
    ngx_uint_t level = NGX_LOG_NOTICE;

    if (len > 0 && s[0] >= '0' && s[0] <= '8') {
        level = (ngx_uint_t)(s[0] - '0');
        s++;
        len--;
    }
    ngx_log_error(level, log, 0, "%*s", len, s);
}

void ngx_srvocsp_log_drain(ngx_log_t *log)
{
    char buf[16384];
    unsigned long dropped;
    ssize_t n;

    if (g_pipe[0] == -1)
        return;
    while ((n = read(g_pipe[0], buf, sizeof(buf))) > 0) {
        size_t i, start = 0;

        for (i = 0; i < (size_t)n; i++) {
            if (buf[i] != '\n')
                continue;
            if (g_carry_len > 0) {
                size_t take = i - start;

                if (take > sizeof(g_carry) - g_carry_len)
                    take = sizeof(g_carry) - g_carry_len;
                memcpy(g_carry + g_carry_len, buf + start, take);
                log_line(log, g_carry, g_carry_len + take);
                g_carry_len = 0;
            } else {
                log_line(log, buf + start, i - start);
            }
            start = i + 1;
        }
        /* A line cut by the read: keep its start for the next one. */
        if (start < (size_t)n) {
            size_t rest = (size_t)n - start;

            if (rest > sizeof(g_carry) - g_carry_len)
                rest = sizeof(g_carry) - g_carry_len;
            memcpy(g_carry + g_carry_len, buf + start, rest);
            g_carry_len += rest;
        }
    }
    dropped = atomic_exchange(&g_dropped, 0);
    if (dropped > 0)
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "srvocsp: %lu report lines were dropped (the log queue was full)", dropped);
}

static void drain_handler(ngx_event_t *ev)
{
    ngx_srvocsp_log_drain(ev->log);
    if (!ngx_exiting && !ngx_terminate && !ngx_quit)
        ngx_add_timer(ev, DRAIN_INTERVAL_MS);
}

ngx_int_t ngx_srvocsp_log_start(ngx_cycle_t *cycle)
{
    if (g_pipe[0] == -1)
        return NGX_OK;
    ngx_memzero(&g_drain_ev, sizeof(g_drain_ev));
    ngx_memzero(&g_dummy, sizeof(g_dummy));
    g_dummy.fd = (ngx_socket_t)-1;
    g_drain_ev.handler = drain_handler;
    g_drain_ev.log = cycle->log;
    g_drain_ev.data = &g_dummy;
    g_drain_ev.cancelable = 1; /* does not hold up a graceful exit */
    g_carry_len = 0;
    ngx_add_timer(&g_drain_ev, DRAIN_INTERVAL_MS);
    return NGX_OK;
}
