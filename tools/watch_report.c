/*
 * srvocsp watch, what it reports: one log line per event, the status file
 * (rewritten once per pass of the loop, however many certificates changed
 * in it), and the text of the metrics and health endpoints.
 *
 * The log is block-buffered and flushed after the status file is written:
 * whoever reads a line in the log finds the status file already saying it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "watch.h"

void wlog(watch *w, const char *event, const wcert *c, const char *reason, int64_t next_attempt)
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
}

void wlog_flush(void)
{
    fflush(stdout);
}

void wcount_add(watch *w, bool withdrawal, const char *code, unsigned long n)
{
    int *cnt = withdrawal ? &w->n_withdrawals : &w->n_failures;
    wcount *t = withdrawal ? w->withdrawals : w->failures;
    int i;

    for (i = 0; i < *cnt; i++)
        if (strcmp(t[i].code, code) == 0)
            break;
    if (i == *cnt) {
        if (i == MAX_REASONS)
            return;
        snprintf(t[i].code, sizeof(t[i].code), "%s", code);
        (*cnt)++;
    }
    t[i].n += n;
    w->metrics_dirty = true;
}

static const char *file_name(wfile f)
{
    static const char *const names[] = {"absent", "served", "empty", "kept"};

    return names[f];
}

void wstatus_write(watch *w)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f;
    int i, n;

    if (w->status_file == NULL || !w->status_dirty)
        return;
    w->status_dirty = false;
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
        fprintf(f, ",\"served\":%s,\"status\":\"%s\",\"reason\":\"%s\",\"reason_text\":",
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
    if (fclose(f) == 0) {
        int err = srvocsp__write_file_atomic(w->status_file, (const unsigned char *)buf, len);

        if (err != 0) {
            char why[600];

            snprintf(why, sizeof(why), "cannot write %s: %s", w->status_file, strerror(err));
            wlog(w, "write-failed", NULL, why, 0);
        }
    }
    free(buf);
}

char *wreport_metrics(const watch *w, size_t *len)
{
    char *body = NULL;
    size_t cap = 0;
    FILE *m = open_memstream(&body, &cap);
    int64_t now = (int64_t)time(NULL);
    int i, n = 0, served = 0;

    if (m == NULL)
        return NULL;
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
        n++;
        served += c->served;
        fprintf(m, "srvocsp_served{cert=");
        cli_json_str(m, c->path); /* a JSON string is a valid label value */
        fprintf(m, "} %d\n", c->served ? 1 : 0);
    }
    fprintf(m, "# HELP srvocsp_seconds_until_expiry Seconds until the served response expires.\n"
               "# TYPE srvocsp_seconds_until_expiry gauge\n");
    for (i = 0; i < w->n_certs; i++) {
        wcert *c = w->certs[i];

        if (c == NULL)
            continue;
        fprintf(m, "srvocsp_seconds_until_expiry{cert=");
        cli_json_str(m, c->path);
        fprintf(m, "} %lld\n", c->served ? (long long)(c->next_update - now) : 0LL);
    }
    fprintf(m,
            "# HELP srvocsp_watch_certificates Certificates watched.\n"
            "# TYPE srvocsp_watch_certificates gauge\n"
            "srvocsp_watch_certificates %d\n"
            "# HELP srvocsp_watch_certificates_served Certificates with a servable response.\n"
            "# TYPE srvocsp_watch_certificates_served gauge\n"
            "srvocsp_watch_certificates_served %d\n"
            "# HELP srvocsp_watch_events_coalesced_total Engine events folded into a later one "
            "for the same certificate before watch read them.\n"
            "# TYPE srvocsp_watch_events_coalesced_total counter\n"
            "srvocsp_watch_events_coalesced_total %lu\n"
            "# HELP srvocsp_watch_hook_runs_total Hook commands started, by kind.\n"
            "# TYPE srvocsp_watch_hook_runs_total counter\n"
            "srvocsp_watch_hook_runs_total{kind=\"update\"} %lu\n"
            "srvocsp_watch_hook_runs_total{kind=\"batch\"} %lu\n"
            "# HELP srvocsp_watch_hook_failures_total Hook commands that failed or timed out.\n"
            "# TYPE srvocsp_watch_hook_failures_total counter\n"
            "srvocsp_watch_hook_failures_total %lu\n",
            n, served, w->coalesced, w->hook_runs, w->batch_runs, w->hook_failures);
    if (fclose(m) != 0) {
        free(body);
        return NULL;
    }
    *len = strlen(body);
    return body;
}

/* At most this many certificates are named in an unhealthy answer. */
#define HEALTH_NAMES 20

char *wreport_health(const watch *w, size_t *len, bool *healthy)
{
    char *body = NULL;
    size_t cap = 0;
    FILE *m = open_memstream(&body, &cap);
    int i, n = 0, served = 0, named = 0;

    if (m == NULL)
        return NULL;
    for (i = 0; i < w->n_certs; i++)
        if (w->certs[i] != NULL) {
            n++;
            served += w->certs[i]->served;
        }
    *healthy = n > 0 && served == n;
    fprintf(m, "%s: %d of %d certificates have a servable response\n",
            *healthy ? "ok" : "unhealthy", served, n);
    for (i = 0; i < w->n_certs && named < HEALTH_NAMES; i++) {
        const wcert *c = w->certs[i];

        if (c == NULL || c->served)
            continue;
        named++;
        fprintf(m, "not served: %s: %s%s%s\n", c->path, srvocsp_error_name(c->not_served),
                c->last_error_code[0] ? "; last retrieval: " : "", c->last_error_code);
    }
    if (n - served > named)
        fprintf(m, "... and %d more\n", n - served - named);
    if (fclose(m) != 0) {
        free(body);
        return NULL;
    }
    *len = strlen(body);
    return body;
}
