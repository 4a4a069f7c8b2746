/*
 * One seed: the world drawn from it and the loop on virtual time; the
 * oracle is in sim_check.c (at every sampled handshake) and sim_world.c
 * (at every publication).
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include "sim_world.h"

#include "engine/engine.h"
#include "sim_keys.h"

#include <openssl/pem.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sim_bounds.h"

#ifdef SRVOCSP_PLANT_DEFECTS
extern int srvocsp__planted;
#endif

/* ---------------------------------------------------------------------
 * The world, drawn from the seed
 * ------------------------------------------------------------------- */

static void add_event(sim_world *w, int64_t at, int type, int a, int64_t b)
{
    w->events = realloc(w->events, (w->n_events + 1) * sizeof(*w->events));
    w->events[w->n_events++] = (sim_event){at, type, a, b};
}

static int by_time(const void *x, const void *y)
{
    const sim_event *a = x, *b = y;

    return a->at < b->at ? -1 : a->at > b->at ? 1 : a->type - b->type;
}

/* A duration between |lo| and |hi| seconds, even on a log scale (minutes
 * to days are all common). */
static int64_t log_span(sim_rng *r, int64_t lo, int64_t hi)
{
    double x = (double)lo, y = (double)hi;

    return (int64_t)(x * __builtin_pow(y / x, sim_unit(r)));
}

/* The fixed key |i| as a tp_cert to hand to tp_cert_make's same_key_as. */
static bool fixed_key(int i, tp_cert *out)
{
    BIO *b = BIO_new_mem_buf(SIM_KEYS[i], -1);

    memset(out, 0, sizeof(*out));
    out->key = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    return out->key != NULL;
}

static bool make_world(sim_world *w, const sim_opts *o)
{
    tp_cert keys[5];
    static const int64_t windows[] = {7 * DAY, 4 * DAY, DAY, 12 * 3600, 2 * 3600};
    tp_cert root;
    tp_cert_opts co;
    int64_t span = o->days * DAY;
    sim_rng kinds, forks;
    int i, k;

    memset(w, 0, sizeof(*w));
    w->seed = o->seed;
    w->rng.s = o->seed * 0x9E3779B97F4A7C15ULL | 1;
    w->t0 = w->now = 1800000000LL;
    w->end = w->t0 + span;
    w->fleet = true;
    w->lag_s = LAG_S;
    w->plant = o->plant;
    w->verbose = o->verbose;
    w->n_cas = o->cas;
    w->n_certs = o->certs;
    w->n_procs = o->procs;

    for (i = 0; i < 5; i++)
        if (!fixed_key(i, &keys[i]))
            return false;
    memset(&co, 0, sizeof(co));
    co.same_key_as = &keys[0];
    co.cn = "Sim Root";
    co.serial = 1;
    co.ca = true;
    co.not_before = w->t0 - 400 * DAY;
    co.not_after = w->t0 + 3000 * DAY;
    if (!tp_cert_make(&root, &co))
        return false;
    for (k = 0; k < w->n_cas; k++) {
        sim_ca *ca = &w->cas[k];
        char cn[32];

        snprintf(cn, sizeof(cn), "Sim CA %d", k);
        co.cn = cn;
        co.serial = 10 + k;
        co.issuer = &root;
        co.same_key_as = &keys[1 + k % 3];
        if (!tp_cert_make(&ca->ca, &co))
            return false;
        ca->window = windows[sim_range(&w->rng, 0, 4)];
        ca->presigned = sim_unit(&w->rng) < 0.5;
        ca->clock_off = sim_unit(&w->rng) < 0.2 ? sim_range(&w->rng, -120, 120) : 0;
        /* Outages of minutes to days: refused, hung, or tryLater. */
        for (i = sim_range(&w->rng, 0, 1 + (int)(o->days / 15)); i > 0; i--) {
            sim_span *f = &ca->faults[ca->n_faults];
            int64_t len = log_span(&w->rng, 300, 3 * DAY);

            if (ca->n_faults == SIM_MAX_SPANS)
                break;
            f->from = w->t0 + sim_range(&w->rng, 0, span);
            f->until = f->from + len;
            f->kind = (int)sim_range(&w->rng, SIM_FAULT_REFUSE, SIM_FAULT_TRYLATER);
            ca->n_faults++;
        }
        /* Periods when a replica lags an hour behind. */
        for (i = sim_range(&w->rng, 0, 1 + (int)(o->days / 5)); i > 0; i--) {
            sim_span *f = &ca->lagging[ca->n_lagging];

            if (ca->n_lagging == SIM_MAX_SPANS)
                break;
            f->from = w->t0 + sim_range(&w->rng, 0, span);
            f->until = f->from + log_span(&w->rng, 3600, 10 * DAY);
            ca->n_lagging++;
        }
        if (w->verbose)
            fprintf(stderr, "CA %d: window %lld s, %s, clock %+lld s, %u outages, %u lagging\n", k,
                    (long long)ca->window, ca->presigned ? "pre-signed (CDN)" : "live",
                    (long long)ca->clock_off, ca->n_faults, ca->n_lagging);
    }
    w->certs = calloc((size_t)w->n_certs, sizeof(*w->certs));
    for (i = 0; i < w->n_certs; i++) {
        sim_cert *c = &w->certs[i];
        char cn[32];

        memset(&co, 0, sizeof(co));
        snprintf(cn, sizeof(cn), "host%d.sim", i);
        c->ca = i % w->n_cas;
        co.cn = cn;
        co.serial = 1000 + i;
        co.issuer = &w->cas[c->ca].ca;
        co.not_before = w->t0 - 30 * DAY;
        co.not_after = w->end + 30 * DAY;
        co.same_key_as = &keys[4];
        if (!tp_cert_make(&c->cert, &co))
            return false;
        c->issued = w->t0 - DAY;
        if (i > 0 && sim_unit(&w->rng) < 0.1) { /* issued during the run: unknown at first */
            c->issued = w->t0 + sim_range(&w->rng, 0, span);
            c->unknown_s = sim_range(&w->rng, 0, 1200);
            add_event(w, c->issued, EV_ISSUE, i, 0);
        }
        if (sim_unit(&w->rng) < 0.15) {
            c->revoked_at = w->t0 + sim_range(&w->rng, 0, span);
            add_event(w, c->revoked_at, EV_REVOKE, i, 0);
        }
    }
    /* Each process keeps its responses in a directory of its own, in
     * memory (tmpfs) when there is one: a year writes it often. */
    snprintf(w->root, sizeof(w->root), "%s/srvocsp-sim-XXXXXX",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm"
             : getenv("TMPDIR") != NULL    ? getenv("TMPDIR")
                                           : "/tmp");
    if (mkdtemp(w->root) == NULL) {
        w->root[0] = '\0';
        return false;
    }
    kinds.s = (o->seed ^ 0x5DEECE66DULL) * 0x9E3779B97F4A7C15ULL | 1;
    forks.s = (o->seed ^ 0xF0F0F0F0ULL) * 0xD6E8FEB86659FD93ULL | 1;
    for (i = 0; i < w->n_procs; i++) {
        int n;

        w->procs[i].id = i;
        snprintf(w->procs[i].dir, sizeof(w->procs[i].dir), "%s/p%d", w->root, i);
        if (mkdir(w->procs[i].dir, 0700) != 0)
            return false;
        w->procs[i].h = calloc((size_t)w->n_certs, sizeof(srvocsp_handle *));
        w->procs[i].seen = calloc((size_t)w->n_certs, sizeof(sim_seen));
        w->procs[i].watch = calloc((size_t)w->n_certs, sizeof(sim_watch));
        w->procs[i].clock_ok_since = w->t0;
        /* Restarts, and wall clocks stepped wrong then set right. */
        /* Restarts: half keep their directory, half lose it (drawn from
         * a stream of their own, so a seed's world is otherwise what it
         * was before directories were simulated: old seeds replay). */
        for (n = sim_range(&w->rng, 0, 1 + (int)(o->days / 10)); n > 0; n--)
            add_event(w, w->t0 + sim_range(&w->rng, 0, span), EV_RESTART, i,
                      sim_unit(&kinds) < 0.5);
        /* Forks (a server's master forking the worker that serves, a
         * daemon leaving its parent): from a stream of their own too. */
        for (n = o->no_forks ? 0 : sim_range(&forks, 0, 1 + (int)(o->days / 10)); n > 0; n--)
            add_event(w, w->t0 + sim_range(&forks, 0, span), EV_FORK, i,
                      (int64_t)(sim_next(&forks) >> 1));
        for (n = sim_range(&w->rng, 1, 1 + (int)(o->days / 5)); n > 0; n--) {
            int64_t at = w->t0 + sim_range(&w->rng, 0, span);
            int64_t by = log_span(&w->rng, 60, 2 * DAY) * (sim_unit(&w->rng) < 0.5 ? -1 : 1);

            add_event(w, at, EV_CLOCK_STEP, i, by);
            add_event(w, at + log_span(&w->rng, 600, 6 * 3600), EV_CLOCK_STEP, i, 0);
        }
    }
    /* The shared store: down for a while, or failed over losing writes. */
    for (i = sim_range(&w->rng, 0, 1 + (int)(o->days / 20)); i > 0; i--) {
        int64_t at = w->t0 + sim_range(&w->rng, 0, span);

        if (sim_unit(&w->rng) < 0.5) {
            int64_t len = log_span(&w->rng, 10, 3600);

            add_event(w, at, EV_STORE_DOWN, 0, 1);
            add_event(w, at + len, EV_STORE_DOWN, 0, 0);
            if (w->n_store_down < SIM_MAX_SPANS)
                w->store_down[w->n_store_down++] = (sim_span){at, at + len, 0};
        } else {
            add_event(w, at, EV_FAILOVER, 0, sim_range(&w->rng, 0, 5));
            if (w->n_store_down < SIM_MAX_SPANS) /* its announcements may be lost */
                w->store_down[w->n_store_down++] = (sim_span){at, at + 1, 0};
        }
    }
    qsort(w->events, w->n_events, sizeof(*w->events), by_time);
    tp_cert_free(&root);
    for (i = 0; i < 5; i++)
        EVP_PKEY_free(keys[i].key);
    w->hub = sim_hub_new(&w->now);
    sim_hub_register(w->hub);
    return true;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* Empties (|keep_top|) or removes a directory tree. */
static void rm_tree(const char *dir, bool keep_top)
{
    if (dir[0] == '\0')
        return;
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    if (keep_top)
        mkdir(dir, 0700);
}

static void free_world(sim_world *w)
{
    int i, k;

    for (i = 0; i < w->n_procs; i++) {
        if (w->procs[i].eng != NULL)
            sim_proc_stop(w, &w->procs[i]);
        free(w->procs[i].h);
        free(w->procs[i].seen);
        free(w->procs[i].watch);
    }
    for (size_t d = 0; d < w->n_deliv; d++)
        free(w->deliv[d].der);
    free(w->deliv);
    for (i = 0; i < w->n_certs; i++) {
        tp_cert_free(&w->certs[i].cert);
        free(w->certs[i].cache_der);
    }
    free(w->certs);
    for (k = 0; k < w->n_cas; k++)
        tp_cert_free(&w->cas[k].ca);
    free(w->events);
    free(w->issued);
    sim_hub_free(w->hub);
    rm_tree(w->root, false);
}

/* ---------------------------------------------------------------------
 * The loop
 * ------------------------------------------------------------------- */

static void apply(sim_world *w, const sim_event *ev)
{
    sim_proc *p = ev->type == EV_CLOCK_STEP || ev->type == EV_RESTART || ev->type == EV_FORK
                      ? &w->procs[ev->a]
                      : NULL;

    switch (ev->type) {
    case EV_CLOCK_STEP:
        p->clock_off = ev->b;
        w->fig.clock_steps += ev->b != 0;
        if (ev->b == 0)
            p->clock_ok_since = w->now;
        sim_trace(w, "process %d: wall clock %s %+lld s", p->id, ev->b ? "stepped to" : "set right",
                  (long long)ev->b);
        break;
    case EV_RESTART:
        sim_trace(w, "process %d restarts %s", p->id,
                  ev->b ? "with its directory" : "without its directory (it starts from the fleet)");
        w->fig.restarts++;
        sim_proc_stop(w, p);
        if (!ev->b)
            rm_tree(p->dir, true);
        memset(p->seen, 0, (size_t)w->n_certs * sizeof(*p->seen));
        sim_proc_start(w, p);
        break;
    case EV_FORK:
        sim_trace(w, "process %d forks; its child carries on", p->id);
        w->fig.forks++;
        sim_proc_fork(w, p, (uint64_t)ev->b);
        break;
    case EV_REVOKE:
        sim_trace(w, "CA %d revokes certificate %d", w->certs[ev->a].ca, ev->a);
        break;
    case EV_ISSUE:
        sim_trace(w, "certificate %d comes into service (unknown for %lld s)", ev->a,
                  (long long)w->certs[ev->a].unknown_s);
        sim_proc_open_new(w, ev->a);
        break;
    case EV_STORE_DOWN:
        sim_trace(w, "shared store %s", ev->b ? "down" : "back");
        w->fig.store_faults += ev->b != 0;
        sim_hub_set_down(w->hub, ev->b != 0);
        break;
    case EV_FAILOVER:
        sim_trace(w, "shared store fails over, %lld writes lost", (long long)ev->b);
        w->fig.store_faults++;
        sim_hub_failover(w->hub, (unsigned)ev->b);
        break;
    }
}

/* Where the requests went: each CA's field, and what its certificates
 * cost their responder (--verbose). */
static void print_per_ca(const sim_world *w, FILE *out)
{
    double days = (double)(w->now - w->t0) / DAY;

    fprintf(out, "\n| CA | window | pre-signed (CDN) | clock | outages | lagging spans | "
                 "requests per certificate per day |\n|---|---|---|---|---|---|---|\n");
    for (int k = 0; k < w->n_cas; k++) {
        uint64_t r = 0;
        int n = 0;

        for (int j = 0; j < w->n_certs; j++)
            if (w->certs[j].ca == k) {
                r += w->certs[j].requests;
                n++;
            }
        fprintf(out, "| %d | %lld s | %s | %+lld s | %u | %u | %.2f |\n", k,
                (long long)w->cas[k].window, w->cas[k].presigned ? "yes" : "no",
                (long long)w->cas[k].clock_off, w->cas[k].n_faults, w->cas[k].n_lagging,
                n > 0 && days > 0 ? (double)r / n / days : 0.0);
    }
}

bool sim_run(const sim_opts *o, sim_figures *fig, FILE *report)
{
    sim_world *w = calloc(1, sizeof(*w));
    int64_t next_sample;
    bool ok;
    int i;

    if (w == NULL || !make_world(w, o)) {
        fprintf(report, "seed %llu: cannot make the world\n", (unsigned long long)o->seed);
        free(w);
        return false;
    }
#ifdef SRVOCSP_PLANT_DEFECTS
    srvocsp__planted = o->plant;
#endif
    for (i = 0; i < w->n_procs; i++)
        sim_proc_start(w, &w->procs[i]);
    next_sample = w->t0 + SAMPLE_S;
    while (w->now < w->end && !w->breached) {
        int64_t next = next_sample;

        while (w->next_event < w->n_events && w->events[w->next_event].at <= w->now)
            apply(w, &w->events[w->next_event++]);
        do {
            sim_deliver_due(w);
            for (i = 0; i < w->n_procs; i++) {
                sim_proc *p = &w->procs[i];
                int64_t due = srvocsp__engine_step(p->eng);

                if (due != INT64_MAX && due - p->clock_off < next)
                    next = due - p->clock_off;
            }
        } while (sim_next_delivery(w) <= w->now);
        sim_watch_revoked(w);
        if (w->now >= next_sample) {
            sim_sample(w);
            next_sample += SAMPLE_S;
            if (next_sample < next)
                next = next_sample;
        }
        if (sim_next_delivery(w) < next)
            next = sim_next_delivery(w);
        if (w->next_event < w->n_events && w->events[w->next_event].at < next)
            next = w->events[w->next_event].at;
        w->now = next > w->now ? next : w->now + 1;
    }
    ok = !w->breached;
    if (!ok)
        sim_print_breach(w, report);
    fig->handshakes += w->fig.handshakes;
    fig->obtainable += w->fig.obtainable;
    fig->served += w->fig.served;
    fig->served_obtainable += w->fig.served_obtainable;
    fig->requests += w->requests;
    fig->restarts += w->fig.restarts;
    fig->forks += w->fig.forks;
    fig->clock_steps += w->fig.clock_steps;
    fig->store_faults += w->fig.store_faults;
    if (w->fig.worst_gap > fig->worst_gap)
        fig->worst_gap = w->fig.worst_gap;
    for (unsigned k = 0; k < w->fig.n_prop && fig->n_prop < 4096; k++)
        fig->prop[fig->n_prop++] = w->fig.prop[k];
    if (w->verbose)
        print_per_ca(w, report);
    free_world(w);
    free(w);
    return ok;
}
