#include "fake.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int64_t manual_now(void *ctx)
{
    return atomic_load(&((manual_clock *)ctx)->now);
}

static int64_t manual_mono(void *ctx)
{
    return atomic_load(&((manual_clock *)ctx)->mono_ms);
}

void manual_clock_init(manual_clock *c, int64_t start)
{
    atomic_init(&c->now, start);
    atomic_init(&c->mono_ms, 0);
    c->clock.now = manual_now;
    c->clock.ctx = c;
    c->clock.monotonic_ms = NULL;
}

void manual_clock_set(manual_clock *c, int64_t t)
{
    atomic_store(&c->now, t);
}

void manual_clock_use_monotonic(manual_clock *c)
{
    c->clock.monotonic_ms = manual_mono;
}

void manual_clock_advance(manual_clock *c, int64_t secs)
{
    atomic_fetch_add(&c->mono_ms, secs * 1000);
    atomic_fetch_add(&c->now, secs);
}

void manual_clock_jump(manual_clock *c, int64_t secs)
{
    atomic_fetch_add(&c->now, secs);
}

static srvocsp_error fake_start(void *ctx, const srvocsp_http_request *req,
                                srvocsp_http_done_fn done, void *arg)
{
    fake_transport *t = ctx;
    fake_reply rep;
    srvocsp_http_result res;

    memset(&rep, 0, sizeof(rep));
    rep.status = 200;
    rep.content_type = "application/ocsp-response";
    pthread_mutex_lock(&t->mu);
    if (t->requests < 256)
        t->times[t->requests] = t->clock ? atomic_load(&t->clock->now) : 0;
    t->requests++;
    snprintf(t->last_url, sizeof(t->last_url), "%s", req->url);
    pthread_mutex_unlock(&t->mu);
    t->handler(t->arg, req->url, &rep);
    memset(&res, 0, sizeof(res));
    res.error = rep.error;
    res.http_status = rep.status;
    res.content_type = rep.content_type;
    res.body = rep.body;
    res.body_len = rep.len;
    res.detail = rep.error ? "fake transport failure" : NULL;
    done(arg, &res);
    free(rep.body);
    return SRVOCSP_OK;
}

void fake_init(fake_transport *t, manual_clock *clock, fake_handler h, void *arg)
{
    memset(t, 0, sizeof(*t));
    pthread_mutex_init(&t->mu, NULL);
    t->handler = h;
    t->arg = arg;
    t->clock = clock;
    t->transport.start = fake_start;
    t->transport.ctx = t;
}

int fake_requests(fake_transport *t)
{
    int n;

    pthread_mutex_lock(&t->mu);
    n = t->requests;
    pthread_mutex_unlock(&t->mu);
    return n;
}

void fake_destroy(fake_transport *t)
{
    pthread_mutex_destroy(&t->mu);
}

srvocsp_handle *fake_open(X509 *leaf, X509 *issuer, const srvocsp_params *p)
{
    STACK_OF(X509) *chain = sk_X509_new_null();
    srvocsp_handle *h = NULL;

    if (chain != NULL && sk_X509_push(chain, issuer))
        h = srvocsp_open(leaf, chain, p);
    sk_X509_free(chain);
    return h;
}

srvocsp_engine *fake_engine_new(manual_clock *clock, fake_transport *t, int jitter, uint64_t seed)
{
    srvocsp_engine_config c;

    srvocsp_engine_config_init(&c);
    c.clock = &clock->clock;
    c.transport = &t->transport;
    if (jitter >= 0)
        c.jitter_percent = (uint32_t)jitter;
    c.seed = seed;
    return srvocsp_engine_new(&c);
}

void fake_sign_good(void *arg, const char *url, fake_reply *out)
{
    const fake_signer *sg = arg;
    int64_t now = atomic_load(&sg->clock->now);
    tp_resp_opts o;

    (void)url;
    tp_resp_opts_init(&o, sg->leaf, &sg->pki->ca, now);
    o.next_update = now + sg->validity;
    out->body = tp_response(&o, &out->len);
}
