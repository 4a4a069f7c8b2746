/*
 * The simulated field: certificates under several CAs, their responders
 * with field behaviour drawn from the seed, server processes (manual
 * engines) sharing the in-memory store, hosts whose clocks step, and the
 * oracle that checks the promise at every sampled handshake.
 */
#include "sim_world.h"
#include "sim_oracle.h"

#include "engine/lifecycle.h"

#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define URL_TIMEOUT_S 5

/* ---------------------------------------------------------------------
 * Trace: the last events, printed with a breach
 * ------------------------------------------------------------------- */

void sim_trace(sim_world *w, const char *fmt, ...)
{
    va_list ap;
    char *slot = w->trace[w->trace_n++ % SIM_TRACE];
    int n = snprintf(slot, SIM_TRACE_LEN, "t=%+lld ", (long long)(w->now - w->t0));

    va_start(ap, fmt);
    vsnprintf(slot + n, (size_t)(SIM_TRACE_LEN - n), fmt, ap);
    va_end(ap);
}

void sim_breach(sim_world *w, const char *fmt, ...)
{
    va_list ap;

    if (w->breached)
        return;
    w->breached = true;
    va_start(ap, fmt);
    vsnprintf(w->breach_why, sizeof(w->breach_why), fmt, ap);
    va_end(ap);
}

void sim_print_breach(sim_world *w, FILE *f)
{
    unsigned i, first = w->trace_n > SIM_TRACE ? w->trace_n - SIM_TRACE : 0;

    fprintf(f, "BREACH seed %llu at t=%+lld s: %s\nthe events that led to it:\n",
            (unsigned long long)w->seed, (long long)(w->now - w->t0), w->breach_why);
    for (i = first; i < w->trace_n; i++)
        fprintf(f, "  %s\n", w->trace[i % SIM_TRACE]);
}

/* ---------------------------------------------------------------------
 * What the CAs produced (the oracle's only knowledge of stapled bytes)
 * ------------------------------------------------------------------- */

static uint64_t der_hash(const unsigned char *d, size_t n)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int l = 0;
    uint64_t h;

    EVP_Digest(d, n, md, &l, EVP_sha256(), NULL);
    memcpy(&h, md, sizeof(h));
    return h | 1;
}

static void issued_add(sim_world *w, const unsigned char *der, size_t len, const sim_issued *rec)
{
    uint64_t h = der_hash(der, len);
    size_t i;

    if (w->n_issued * 2 >= w->cap_issued) {
        size_t cap = w->cap_issued ? w->cap_issued * 2 : 4096, k;
        sim_issued_slot *t = calloc(cap, sizeof(*t));

        for (k = 0; k < w->cap_issued; k++)
            if (w->issued[k].hash) {
                for (i = w->issued[k].hash % cap; t[i].hash; i = (i + 1) % cap)
                    ;
                t[i] = w->issued[k];
            }
        free(w->issued);
        w->issued = t;
        w->cap_issued = cap;
    }
    for (i = h % w->cap_issued; w->issued[i].hash; i = (i + 1) % w->cap_issued)
        if (w->issued[i].hash == h)
            return;
    w->issued[i].hash = h;
    w->issued[i].rec = *rec;
    w->n_issued++;
}

const sim_issued *sim_issued_find(sim_world *w, const unsigned char *der, size_t len)
{
    uint64_t h = der_hash(der, len);
    size_t i;

    if (w->cap_issued == 0)
        return NULL;
    for (i = h % w->cap_issued; w->issued[i].hash; i = (i + 1) % w->cap_issued)
        if (w->issued[i].hash == h)
            return &w->issued[i].rec;
    return NULL;
}

/* ---------------------------------------------------------------------
 * Responders
 * ------------------------------------------------------------------- */

static bool in(const sim_span *s, unsigned n, int64_t t, int *kind)
{
    unsigned i;

    for (i = 0; i < n; i++)
        if (t >= s[i].from && t < s[i].until) {
            if (kind)
                *kind = s[i].kind;
            return true;
        }
    return false;
}

/* The CA's word on |cert| at true time |t| from a replica that knows
 * what happened up to |asof|: the response it signs (a cache keeps
 * pre-signed bytes for their hour, as a CDN hands them out). */
static unsigned char *sign_for(sim_world *w, int ci, int64_t t, int64_t asof, bool lagging,
                               size_t *len)
{
    sim_cert *c = &w->certs[ci];
    sim_ca *ca = &w->cas[c->ca];
    int64_t tu, nu;
    srvocsp_cert_status st;
    tp_resp_opts o;
    sim_issued rec;
    unsigned char *der;

    st = c->revoked_at != 0 && asof >= c->revoked_at ? SRVOCSP_STATUS_REVOKED
         : t < c->issued + c->unknown_s           ? SRVOCSP_STATUS_UNKNOWN
                                                  : SRVOCSP_STATUS_GOOD;
    tu = (ca->presigned ? (t / 3600) * 3600 : t) + ca->clock_off;
    if (lagging)
        tu -= w->lag_s; /* its older view, signed afresh (producedAt now) */
    nu = tu + ca->window;
    /* The CDN cache: the same bytes within the hour for the same word. */
    if (ca->presigned && !lagging && c->cache_der != NULL && c->cache_tu == tu &&
        c->cache_status == st) {
        *len = c->cache_len;
        der = malloc(c->cache_len);
        memcpy(der, c->cache_der, c->cache_len);
        return der;
    }
    tp_resp_opts_init(&o, &c->cert, &ca->ca, tu);
    o.this_update = tu;
    o.next_update = nu;
    o.produced_at = t + ca->clock_off;
    o.status = st == SRVOCSP_STATUS_REVOKED  ? V_OCSP_CERTSTATUS_REVOKED
               : st == SRVOCSP_STATUS_UNKNOWN ? V_OCSP_CERTSTATUS_UNKNOWN
                                              : V_OCSP_CERTSTATUS_GOOD;
    if (st == SRVOCSP_STATUS_REVOKED) {
        o.revoked_at = c->revoked_at;
        o.reason = 1;
    }
    der = tp_response(&o, len);
    if (der == NULL)
        return NULL;
    rec.cert = ci;
    rec.status = st;
    rec.this_update = tu;
    rec.next_update = nu;
    rec.produced_at = o.produced_at;
    issued_add(w, der, *len, &rec);
    w->signed_n++;
    if (st != SRVOCSP_STATUS_UNKNOWN && nu > c->best_nu)
        c->best_nu = nu;
    if (ca->presigned && !lagging) {
        free(c->cache_der);
        c->cache_der = malloc(*len);
        memcpy(c->cache_der, der, *len);
        c->cache_len = *len;
        c->cache_tu = tu;
        c->cache_status = st;
    }
    return der;
}

static void deliver_later(sim_world *w, sim_proc *p, int64_t at, srvocsp_http_done_fn done,
                          void *arg, srvocsp_error err, long status, unsigned char *der,
                          size_t len)
{
    sim_delivery *d;

    if (w->n_deliv == w->cap_deliv) {
        w->cap_deliv = w->cap_deliv ? w->cap_deliv * 2 : 256;
        w->deliv = realloc(w->deliv, w->cap_deliv * sizeof(*w->deliv));
    }
    d = &w->deliv[w->n_deliv++];
    d->at = at;
    d->proc = p;
    d->seq = w->deliv_seq++;
    d->done = done;
    d->arg = arg;
    d->err = err;
    d->status = status;
    d->der = der;
    d->len = len;
}

/* The transport of every simulated process: the responder answers now,
 * the answer arrives after the network's latency (or the timeout). */
static srvocsp_error sim_start(void *ctx, const srvocsp_http_request *req,
                               srvocsp_http_done_fn done, void *arg)
{
    sim_proc *p = ctx;
    sim_world *w = p->w;
    const char *c = strstr(req->url, ".sim/c");
    int ci = c ? atoi(c + 6) : -1, kind = 0;
    int64_t t = w->now, lat = sim_range(&w->rng, 0, 100) < 90 ? 0 : sim_range(&w->rng, 1, 3);
    sim_ca *ca;
    unsigned char *der;
    size_t len = 0;

    if (ci < 0 || ci >= w->n_certs)
        return SRVOCSP_E_INVALID_ARG;
    ca = &w->cas[w->certs[ci].ca];
    w->requests++;
    w->certs[ci].requests++;
    if (in(ca->faults, ca->n_faults, t, &kind)) {
        switch (kind) {
        case SIM_FAULT_REFUSE:
            deliver_later(w, p, t, done, arg, SRVOCSP_E_TRANSPORT, 0, NULL, 0);
            return SRVOCSP_OK;
        case SIM_FAULT_HANG:
            deliver_later(w, p, t + URL_TIMEOUT_S, done, arg, SRVOCSP_E_TIMEOUT, 0, NULL, 0);
            return SRVOCSP_OK;
        case SIM_FAULT_TRYLATER: {
            tp_resp_opts o;

            memset(&o, 0, sizeof(o));
            o.response_status = OCSP_RESPONSE_STATUS_TRYLATER;
            der = tp_response(&o, &len);
            deliver_later(w, p, t + lat, done, arg, SRVOCSP_OK, 200, der, len);
            return SRVOCSP_OK;
        }
        default: break;
        }
    }
    /* A lagging replica answers a share of the requests: either with its
     * older view (it learns of a revocation |lag_s| late), or with what is
     * known now on the thisUpdate of its last signing run (a revocation
     * then comes with a thisUpdate older than the good response already
     * handed out, and a newer producedAt). */
    if (in(ca->lagging, ca->n_lagging, t, NULL) && sim_unit(&w->rng) < 0.5)
        der = sign_for(w, (int)ci, t, sim_unit(&w->rng) < 0.5 ? t - w->lag_s : t, true, &len);
    else
        der = sign_for(w, (int)ci, t, t, false, &len);
    deliver_later(w, p, t + lat, done, arg, der ? SRVOCSP_OK : SRVOCSP_E_TRANSPORT, 200, der, len);
    return SRVOCSP_OK;
}

/* Delivers every answer due at or before now, in the order sent. */
bool sim_deliver_due(sim_world *w)
{
    bool any = false;

    for (;;) {
        size_t i, best = SIZE_MAX;
        sim_delivery d;
        srvocsp_http_result res;

        for (i = 0; i < w->n_deliv; i++)
            if (w->deliv[i].at <= w->now &&
                (best == SIZE_MAX || w->deliv[i].seq < w->deliv[best].seq))
                best = i;
        if (best == SIZE_MAX)
            return any;
        d = w->deliv[best];
        w->deliv[best] = w->deliv[--w->n_deliv];
        memset(&res, 0, sizeof(res));
        res.error = d.err;
        res.http_status = d.status;
        res.content_type = d.err == SRVOCSP_OK ? "application/ocsp-response" : NULL;
        res.body = d.der;
        res.body_len = d.len;
        res.detail = d.err == SRVOCSP_E_TIMEOUT ? "simulated: no answer" : NULL;
        if (d.der != NULL && d.proc != NULL) {
            const sim_issued *rec = sim_issued_find(w, d.der, d.len);

            if (rec != NULL && w->certs[rec->cert].revoked_at != 0 &&
                w->now >= w->certs[rec->cert].revoked_at - 3600)
                sim_trace(w, "process %d is told %s for certificate %d (thisUpdate %+lld, "
                             "producedAt %+lld)", d.proc->id,
                          rec->status == SRVOCSP_STATUS_REVOKED ? "revoked"
                          : rec->status == SRVOCSP_STATUS_GOOD  ? "good"
                                                                : "unknown",
                          rec->cert, (long long)(rec->this_update - w->t0),
                          (long long)(rec->produced_at - w->t0));

            /* What the process was told: the oracle holds it to it. */
            if (rec != NULL && rec->status == SRVOCSP_STATUS_REVOKED) {
                sim_seen *s = &d.proc->seen[rec->cert];

                if (rec->this_update > s->recv_revoked_tu)
                    s->recv_revoked_tu = rec->this_update;
                if (rec->produced_at > s->recv_revoked_pa)
                    s->recv_revoked_pa = rec->produced_at;
                if (s->recv_at == 0)
                    s->recv_at = w->now;
            }
        }
        d.done(d.arg, &res);
        free(d.der);
        any = true;
    }
}

int64_t sim_next_delivery(const sim_world *w)
{
    int64_t t = INT64_MAX;
    size_t i;

    for (i = 0; i < w->n_deliv; i++)
        if (w->deliv[i].at < t)
            t = w->deliv[i].at;
    return t;
}

/* ---------------------------------------------------------------------
 * Processes
 * ------------------------------------------------------------------- */

static int64_t host_now(void *ctx)
{
    sim_proc *p = ctx;

    return p->w->now + p->clock_off;
}

static int64_t host_mono(void *ctx)
{
    sim_proc *p = ctx;

    return p->w->now * 1000; /* never jumps */
}

/* Every response the engine publishes, as it publishes it: the rollback
 * rule is judged then, on the host's clock of that moment (a sample every
 * 15 minutes would miss a response held between two samples). */
static void on_update(srvocsp_handle *h, const srvocsp_event *ev, void *arg)
{
    sim_watch *wt = arg;
    sim_proc *p = wt->p;
    sim_world *w = p->w;
    sim_seen *s = &p->seen[wt->ci];
    const sim_issued *rec;
    const unsigned char *der;
    size_t len;

    (void)h;
    if (ev->response == NULL)
        return;
    der = srvocsp_response_der(ev->response, &len);
    rec = sim_issued_find(w, der, len);
    if (rec == NULL || rec->cert != wt->ci)
        return; /* the samples report bytes no CA made for it */
    if (sim_rollback(s->pub_tu, s->pub_nu, s->pub_status, rec->this_update, rec->status,
                     w->now + p->clock_off, SIM_SKEW, SIM_MIN_VALIDITY, SIM_HORIZON))
        sim_breach(w, "process %d rolled certificate %d back: it took thisUpdate %lld over "
                      "%lld, which it could still serve (its clock %+lld s)", p->id, wt->ci,
                   (long long)rec->this_update, (long long)s->pub_tu, (long long)p->clock_off);
    s->pub_tu = rec->this_update;
    s->pub_nu = rec->next_update;
    s->pub_status = rec->status;
}

static void open_cert(sim_proc *p, int ci)
{
    sim_world *w = p->w;
    srvocsp_params prm;
    STACK_OF(X509) *chain = sk_X509_new_null();
    char url[64];

    sk_X509_push(chain, w->cas[w->certs[ci].ca].ca.cert);
    srvocsp_params_init(&prm);
    prm.engine = p->eng;
    prm.flags = SRVOCSP_OPEN_ASYNC;
    prm.url_timeout_ms = URL_TIMEOUT_S * 1000;
    snprintf(url, sizeof(url), "http://ca%d.sim/c%d", w->certs[ci].ca, ci);
    prm.responder_url = url;
    if (w->fleet)
        prm.store_url = p->store_url;
    prm.directory = p->dir;
    p->watch[ci].p = p;
    p->watch[ci].ci = ci;
    prm.update_cb = on_update;
    prm.update_arg = &p->watch[ci];
    p->h[ci] = srvocsp_open(w->certs[ci].cert.cert, chain, &prm);
    sk_X509_free(chain);
    /* What it serves from its directory at once (no callback says so)
     * counts as published, for the rollback rule. */
    if (p->h[ci] != NULL) {
        srvocsp_response *r = srvocsp_get1_response(p->h[ci]);

        if (r != NULL) {
            size_t len;
            const unsigned char *der = srvocsp_response_der(r, &len);
            const sim_issued *rec = sim_issued_find(w, der, len);

            if (rec != NULL && rec->cert == ci) {
                p->seen[ci].pub_tu = rec->this_update;
                p->seen[ci].pub_nu = rec->next_update;
                p->seen[ci].pub_status = rec->status;
            }
            srvocsp_response_free(r);
        }
    }
}

void sim_proc_start(sim_world *w, sim_proc *p)
{
    srvocsp_engine_config cfg;
    int i;

    p->w = w;
    p->started = w->now;
    p->clock.now = host_now;
    p->clock.monotonic_ms = host_mono;
    p->clock.ctx = p;
    p->transport.start = sim_start;
    p->transport.ctx = p;
    srvocsp_engine_config_init(&cfg);
    cfg.clock = &p->clock;
    cfg.transport = &p->transport;
    cfg.seed = sim_next(&w->rng) | 1;
    p->eng = srvocsp__engine_new_manual(&cfg);
    snprintf(p->store_url, sizeof(p->store_url), "sim://p%d.%u", p->id, p->generation++);
    for (i = 0; i < w->n_certs; i++)
        if (w->certs[i].issued <= w->now)
            open_cert(p, i);
}

void sim_proc_stop(sim_world *w, sim_proc *p)
{
    int i;

    for (i = 0; i < w->n_certs; i++) {
        srvocsp_close(p->h[i]);
        p->h[i] = NULL;
    }
    /* Answers still in flight end now (the process dies before they
     * arrive): the engine's teardown takes them. */
    for (size_t k = 0; k < w->n_deliv;) {
        if (w->deliv[k].proc == p) {
            sim_delivery d = w->deliv[k];
            srvocsp_http_result res;

            w->deliv[k] = w->deliv[--w->n_deliv];
            memset(&res, 0, sizeof(res));
            res.error = SRVOCSP_E_SHUTDOWN;
            d.done(d.arg, &res);
            free(d.der);
        } else {
            k++;
        }
    }
    srvocsp_engine_free(p->eng);
    p->eng = NULL;
}

void sim_proc_fork(sim_world *w, sim_proc *p, uint64_t salt)
{
    /* The answers to the parent's requests go to the parent: the child
     * never sees them.  Their completions are the parent's memory, freed
     * here so that a leak check keeps its meaning; a directory lease one
     * holds stays taken, as the child's inherited copy of the descriptor
     * keeps an flock after the parent is gone. */
    for (size_t k = 0; k < w->n_deliv;) {
        if (w->deliv[k].proc == p) {
            srvocsp__completion *c = w->deliv[k].arg;

            free(w->deliv[k].der);
            w->deliv[k] = w->deliv[--w->n_deliv];
            c->leased = false;
            srvocsp__completion_free(c);
        } else {
            k++;
        }
    }
    sim_hub_fork(w->hub, p->store_url);
    srvocsp__engine_forked(p->eng, salt);
}

void sim_proc_open_new(sim_world *w, int ci)
{
    int p;

    for (p = 0; p < w->n_procs; p++)
        if (w->procs[p].eng != NULL && w->procs[p].h[ci] == NULL)
            open_cert(&w->procs[p], ci);
}
