/*
 * srvocsp watch: what the library serves for each certificate, and the
 * servers told so.
 *
 * What watch writes is what the library serves: after every event, at the
 * last second the served response may be served (the library's own rule,
 * srvocsp_response_servable_until), and every few seconds, it asks
 * srvocsp_get1_response and makes the file, the nginx snippet, the hooks
 * and HAProxy follow -- including when the library stops serving
 * (withdrawn: too close to nextUpdate, unknown, a clock step).
 *
 * The decision is wstate_decide, pure, over what watch last saw and what
 * the library says now; the rest carries it out.
 */
#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "watch.h"

wstep wstate_decide(const wcert *c, bool served_now, const unsigned char *md, srvocsp_error why)
{
    if (served_now)
        return !c->served || memcmp(md, c->served_md, 32) != 0 ? WSTEP_PUBLISH : WSTEP_NONE;
    if (c->served)
        return WSTEP_WITHDRAW;
    return why == c->not_served ? WSTEP_NONE : WSTEP_NOTE;
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
        wlog(w, "write-failed", c, why, 0);
        wcount_add(w, false, "E_IO", 1);
    }
    return r > 0;
}

/* |r| is what the library now serves for |c| and differs from what was
 * served: file, snippet, hooks, HAProxy. */
static void publish(watch *w, wcert *c, srvocsp_response *r, const unsigned char *md)
{
    size_t len;
    const unsigned char *der = srvocsp_response_der(r, &len);
    const char *event = c->status == SRVOCSP_STATUS_REVOKED ? "revoked" : "updated";
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
            wlog(w, "write-failed", c, c->last_error, srvocsp_handle_next_attempt(c->h));
            wcount_add(w, false, "E_IO", 1);
            /* Not delivered: the next look (within 5 s) tries again. */
            memset(c->served_md, 0, sizeof(c->served_md));
            return;
        }
        memcpy(c->file_md, md, 32);
    }
    c->file = WFILE_SERVED;
    changed = snippet(w, c, true);
    wlog(w, same ? "adopted" : event, c, NULL, srvocsp_handle_next_attempt(c->h));
    if (same && !changed)
        return; /* the server already staples exactly this */
    wh_changed(w, c, event, NULL);
    if (!same && w->push != NULL && !w->quiet_outputs)
        wp_queue(w->push, c->slot, der, len);
}

/* The library serves nothing for |c| (any more): make the file, the
 * snippet and the hooks say so, as far as each server allows. */
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
            wlog(w, "write-failed", c, reason, 0);
            wcount_add(w, false, "E_IO", 1);
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
    if (was_served) {
        wcount_add(w, true, srvocsp_error_name(c->not_served), 1);
        wlog(w, "withdrawn", c, reason, srvocsp_handle_next_attempt(c->h));
        if (w->haproxy_socket && !w->quiet_outputs)
            wlog(w, "haproxy-unchanged", c,
                 "HAProxy's runtime API cannot remove a response; HAProxy stops stapling "
                 "it 300 s before its nextUpdate, and loads the emptied file at restart",
                 0);
    }
    wh_changed(w, c, "withdrawn", srvocsp_error_name(c->not_served));
}

/* The earliest moment any certificate wants a look. */
static void note_recheck(watch *w, int64_t at_s)
{
    if (at_s && (w->next_recheck_ms == 0 || at_s * 1000 < w->next_recheck_ms))
        w->next_recheck_ms = at_s * 1000;
}

void wstate_reconcile(watch *w, wcert *c)
{
    int64_t now = (int64_t)time(NULL);
    srvocsp_response *r = srvocsp_get1_response(c->h);
    srvocsp_error e = r ? SRVOCSP_OK : srvocsp_last_error();
    unsigned char md[32];
    bool was = c->served;

    if (r != NULL) {
        size_t len;
        const unsigned char *der = srvocsp_response_der(r, &len);

        sha256(der, len, md);
        c->servable_until = srvocsp_response_servable_until(r, &w->params);
        /* Past the computed moment but still served: look again soon. */
        c->recheck_at = c->servable_until + 1 > now ? c->servable_until + 1 : now + 1;
        note_recheck(w, c->recheck_at);
    } else {
        c->recheck_at = 0;
    }
    switch (wstate_decide(c, r != NULL, md, e)) {
    case WSTEP_NONE:
        break;
    case WSTEP_PUBLISH:
        c->served = true;
        c->status = srvocsp_response_status(r);
        c->this_update = srvocsp_response_this_update(r);
        c->next_update = srvocsp_response_expires(r);
        memcpy(c->served_md, md, 32);
        c->not_served = SRVOCSP_OK;
        c->not_served_text[0] = '\0';
        publish(w, c, r, md);
        w->status_dirty = w->metrics_dirty = true;
        break;
    case WSTEP_WITHDRAW:
    case WSTEP_NOTE:
        c->served = false;
        c->not_served = e;
        snprintf(c->not_served_text, sizeof(c->not_served_text), "%s", srvocsp_strerror(e));
        withdraw(w, c, was);
        w->status_dirty = w->metrics_dirty = true;
        break;
    }
    srvocsp_response_free(r);
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

void wstate_event(watch *w, const wq_event *ev)
{
    wcert *c;
    char why[500];

    if (ev->slot < 0 || ev->slot >= w->n_certs || (c = w->certs[ev->slot]) == NULL)
        return;
    if (ev->attempted)
        c->attempted = true;
    switch (ev->type) {
    case SRVOCSP_EVENT_UNKNOWN:
        wlog(w, "unknown", c, "the responder says unknown", srvocsp_handle_next_attempt(c->h));
        break;
    case SRVOCSP_EVENT_FAILED:
        snprintf(why, sizeof(why), "%s: %s", srvocsp_error_name(ev->error), ev->reason);
        wlog(w, "failed", c, why, srvocsp_handle_next_attempt(c->h));
        break;
    case SRVOCSP_EVENT_STORE_FAILED:
        wlog(w, "store-failed", c, ev->reason, 0);
        break;
    default:
        break;
    }
    pull_last_failure(c);
    wstate_reconcile(w, c);
    w->status_dirty = true;
}

void wstate_recheck(watch *w, bool all)
{
    int64_t now_ms = (int64_t)time(NULL) * 1000;

    if (!all && (w->next_recheck_ms == 0 || w->next_recheck_ms > now_ms))
        return;
    w->next_recheck_ms = 0;
    for (int i = 0; i < w->n_certs; i++) {
        wcert *c = w->certs[i];

        if (c == NULL)
            continue;
        if (all || (c->recheck_at && c->recheck_at * 1000 <= now_ms))
            wstate_reconcile(w, c);
        else
            note_recheck(w, c->recheck_at);
    }
}
