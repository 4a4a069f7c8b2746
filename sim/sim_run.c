/*
 * One seed: the world drawn from it, the loop on virtual time, and the
 * oracle at every sampled handshake.
 *
 * The oracle's rules (sim/README.md says why each bound is what it is):
 *  - what is stapled are bytes a CA of the simulation produced for that
 *    certificate (the engine verified them; the oracle knows them);
 *  - time-valid by the strictest client, on the host's clock: thisUpdate
 *    not beyond the skew ahead, nextUpdate at least MinValidity ahead,
 *    within the trust horizon; never unknown;
 *  - no rollback: never a good response older than one the process
 *    served that could still be served, and never good over a revocation
 *    it served;
 *  - fleet agreement: once one process staples revoked, the others do
 *    within FLEET_BOUND (their clocks right, the store up meanwhile),
 *    watched at every step for revoked certificates;
 *  - revocation propagation: every process staples revoked within the
 *    derived bound after the CA published it (responder, store and clock
 *    healthy meanwhile);
 *  - no gap without a staple longer than GAP_BOUND while a servable
 *    response was obtainable and the responder, the host's clock and the
 *    process were healthy all along.
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

#define DAY 86400
#define SAMPLE_S 900
#define MIN_VALIDITY SIM_MIN_VALIDITY
#define SKEW SIM_SKEW
#define HORIZON SIM_HORIZON
#define FLEET_BOUND 60
#define GAP_BOUND (2 * 3600 + 2 * SAMPLE_S)
#define LAG_S 3600

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
    sim_rng kinds;
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
 * The oracle
 * ------------------------------------------------------------------- */

static bool overlaps(const sim_span *s, unsigned n, int64_t from, int64_t until)
{
    unsigned i;

    for (i = 0; i < n; i++)
        if (s[i].from < until && s[i].until > from)
            return true;
    return false;
}

/* Whether a servable response for |c| could be had at |t| at all: the
 * CA answers normally and knows it, or something it produced earlier is
 * still servable. */
static bool obtainable(sim_world *w, sim_cert *c, int64_t t)
{
    sim_ca *ca = &w->cas[c->ca];

    if (t < c->issued)
        return false;
    if (c->best_nu - t >= MIN_VALIDITY)
        return true;
    return !overlaps(ca->faults, ca->n_faults, t, t + 1) && t >= c->issued + c->unknown_s &&
           ca->window > MIN_VALIDITY + SAMPLE_S;
}

/* On a host whose clock is wrong, what its CA signs now may not be
 * servable on that clock (days ahead: already expired; behind: from the
 * future), and nothing else can be had: |can| (true time) holds there
 * only if the CA's current response is servable on the host's clock.  A
 * response the process does serve was obtainable, whatever the clock
 * (the oracle checks it is servable). */
static bool obtainable_on_host(const sim_world *w, const sim_cert *c, const sim_proc *p, bool can)
{
    const sim_ca *ca = &w->cas[c->ca];
    int64_t hc = w->now + p->clock_off, tu = w->now + ca->clock_off;

    if (!can || p->clock_off == 0)
        return can;
    return tu <= hc + SKEW && tu + ca->window - hc >= MIN_VALIDITY;
}

static void check_one(sim_world *w, sim_proc *p, int ci, bool count)
{
    sim_cert *c = &w->certs[ci];
    sim_seen *s = &p->seen[ci];
    sim_ca *ca = &w->cas[c->ca];
    int64_t hc = w->now + p->clock_off;
    bool ok_clock = p->clock_off == 0, can = obtainable(w, c, w->now);
    srvocsp_response *r = srvocsp_get1_response(p->h[ci]);

    if (count) {
        bool here = r != NULL || obtainable_on_host(w, c, p, can);

        w->fig.handshakes++;
        w->fig.obtainable += here;
        if (here && r == NULL && w->verbose) {
            char why[SRVOCSP__REASON_LEN];

            srvocsp_handle_last_failure(p->h[ci], why, sizeof(why));
            fprintf(stderr, "t=%+lld process %d has no staple for certificate %d (CA %d, clock "
                            "%+lld s, started %+lld): %s\n", (long long)(w->now - w->t0), p->id,
                    ci, c->ca, (long long)p->clock_off, (long long)(p->started - w->t0),
                    why[0] ? why : "no failure");
        }
    }
    s->serving = r != NULL;
    if (r != NULL) {
        size_t len;
        const unsigned char *der = srvocsp_response_der(r, &len);
        const sim_issued *rec = sim_issued_find(w, der, len);

        if (count) {
            w->fig.served++;
            w->fig.served_obtainable++; /* it was obtainable: here it is */
        }
        if (rec == NULL || rec->cert != ci) {
            sim_breach(w, "process %d stapled for certificate %d bytes no CA produced for it", p->id,
                       ci);
        } else if (rec->status == SRVOCSP_STATUS_UNKNOWN) {
            sim_breach(w, "process %d stapled unknown for certificate %d", p->id, ci);
        } else if (rec->this_update > hc + SKEW) {
            sim_breach(w, "process %d stapled for certificate %d a response from the future "
                          "(thisUpdate %+lld s on its clock)", p->id, ci,
                       (long long)(rec->this_update - hc));
        } else if (rec->next_update - hc < MIN_VALIDITY || hc > rec->this_update + HORIZON) {
            sim_breach(w, "process %d stapled for certificate %d a response with %lld s left",
                       p->id, ci, (long long)(rec->next_update - hc));
        } else if (rec->status == SRVOCSP_STATUS_GOOD && s->recv_at != 0 && ok_clock &&
                   p->clock_ok_since <= s->recv_at && w->now - s->recv_at > SAMPLE_S &&
                   (rec->this_update <= s->recv_revoked_tu ||
                    rec->produced_at < s->recv_revoked_pa)) {
            /* It was told of the revocation (as new as this, or produced
             * after it) and still staples good. */
            sim_breach(w, "process %d staples good for certificate %d (thisUpdate %lld) after "
                          "its responder told it revoked (thisUpdate %lld, producedAt later)",
                       p->id, ci, (long long)rec->this_update, (long long)s->recv_revoked_tu);
        } else if (rec->status == SRVOCSP_STATUS_GOOD && s->revoked_tu != 0 &&
                   rec->this_update <= s->revoked_tu) {
            sim_breach(w, "process %d stapled good for certificate %d after it had stapled "
                          "revoked (thisUpdate %lld <= %lld)", p->id, ci,
                       (long long)rec->this_update, (long long)s->revoked_tu);
        }
        if (rec != NULL && rec->cert == ci) {
            s->tu = rec->this_update;
            s->nu = rec->next_update;
            s->status = rec->status;
            if (rec->status == SRVOCSP_STATUS_REVOKED) {
                if (s->revoked_tu < rec->this_update)
                    s->revoked_tu = rec->this_update;
                if (s->first_revoked == 0) {
                    s->first_revoked = w->now;
                    /* From the publication, for a process that was there. */
                    if (c->revoked_at != 0 && p->started <= c->revoked_at &&
                        w->fig.n_prop < 4096)
                        w->fig.prop[w->fig.n_prop++] = (double)(w->now - c->revoked_at);
                }
            }
        }
        s->gap_from = 0;
        srvocsp_response_free(r);
    } else if (!count) {
        /* between samples: gaps are measured at the samples only */
    } else if (!can || !ok_clock) {
        s->gap_from = 0;
    } else {
        int64_t gap;

        if (s->gap_from == 0)
            s->gap_from = w->now;
        gap = w->now - s->gap_from;
        if (gap > w->fig.worst_gap)
            w->fig.worst_gap = gap;
        if (gap > GAP_BOUND && p->clock_ok_since <= s->gap_from &&
            !overlaps(ca->faults, ca->n_faults, s->gap_from - 3600, w->now)) {
            char why[300];

            srvocsp_handle_last_failure(p->h[ci], why, sizeof(why));
            sim_breach(w, "process %d had no staple for certificate %d for %lld s while one was "
                          "obtainable and its responder answered (its last failure: %s)", p->id,
                       ci, (long long)gap, why[0] ? why : "none");
        }
    }
    /* Revocation propagation, from the CA's publication. */
    if (c->revoked_at != 0 && s->first_revoked == 0 && ok_clock) {
        int64_t bound = ca->window / 2 + (ca->presigned ? 3600 : 0) + w->lag_s + 1800 +
                        2 * SAMPLE_S;

        if (w->now - c->revoked_at > bound && p->clock_ok_since <= c->revoked_at &&
            p->started <= c->revoked_at &&
            !overlaps(ca->faults, ca->n_faults, c->revoked_at - 3600, w->now) &&
            p->seen[ci].tu != 0)
            sim_breach(w, "process %d still does not staple revoked for certificate %d %lld s "
                          "after its CA published it (bound %lld s)", p->id, ci,
                       (long long)(w->now - c->revoked_at), (long long)bound);
    }
}

/* Fleet agreement: while one process staples revoked and another good,
 * the fleet disagrees; it must not last longer than FLEET_BOUND (the
 * store's announcement is adopted on the next engine step), unless the
 * store was down or failed over meanwhile.  Only processes whose clock is
 * right count. */
static void check_fleet(sim_world *w, int ci)
{
    sim_cert *c = &w->certs[ci];
    int i, rev = -1, good = -1;

    for (i = 0; i < w->n_procs; i++) {
        sim_proc *p = &w->procs[i];
        sim_seen *s = &p->seen[ci];

        if (p->eng == NULL || p->h[ci] == NULL || p->clock_off != 0 || !s->serving ||
            (c->mixed_since != 0 && p->clock_ok_since > c->mixed_since))
            continue;
        if (s->status == SRVOCSP_STATUS_REVOKED)
            rev = i;
        else if (s->status == SRVOCSP_STATUS_GOOD)
            good = i;
    }
    if (rev < 0 || good < 0) {
        c->mixed_since = 0;
        return;
    }
    if (c->mixed_since == 0) {
        c->mixed_since = w->now;
        return;
    }
    if (w->now - c->mixed_since > FLEET_BOUND &&
        !overlaps(w->store_down, w->n_store_down, c->mixed_since - FLEET_BOUND, w->now))
        sim_breach(w, "fleet disagreement on certificate %d for %lld s: process %d staples "
                      "revoked, process %d good", ci, (long long)(w->now - c->mixed_since), rev,
                   good);
}

static void sample(sim_world *w)
{
    int i, p;

    for (i = 0; i < w->n_certs && !w->breached; i++) {
        for (p = 0; p < w->n_procs; p++)
            if (w->procs[p].eng != NULL && w->procs[p].h[i] != NULL)
                check_one(w, &w->procs[p], i, true);
        check_fleet(w, i);
    }
}

/* Between samples, the revoked certificates are watched at every step:
 * the fleet must agree within FLEET_BOUND, which sampling every 15
 * minutes could not see. */
static void watch_revoked(sim_world *w)
{
    int i, p;

    for (i = 0; i < w->n_certs && !w->breached; i++) {
        if (w->certs[i].revoked_at == 0 || w->now < w->certs[i].revoked_at)
            continue;
        for (p = 0; p < w->n_procs; p++)
            if (w->procs[p].eng != NULL && w->procs[p].h[i] != NULL)
                check_one(w, &w->procs[p], i, false);
        check_fleet(w, i);
    }
}

/* ---------------------------------------------------------------------
 * The loop
 * ------------------------------------------------------------------- */

static void apply(sim_world *w, const sim_event *ev)
{
    sim_proc *p = ev->type == EV_CLOCK_STEP || ev->type == EV_RESTART ? &w->procs[ev->a] : NULL;

    switch (ev->type) {
    case EV_CLOCK_STEP:
        p->clock_off = ev->b;
        if (ev->b == 0)
            p->clock_ok_since = w->now;
        sim_trace(w, "process %d: wall clock %s %+lld s", p->id, ev->b ? "stepped to" : "set right",
                  (long long)ev->b);
        break;
    case EV_RESTART:
        sim_trace(w, "process %d restarts %s", p->id,
                  ev->b ? "with its directory" : "without its directory (it starts from the fleet)");
        sim_proc_stop(w, p);
        if (!ev->b)
            rm_tree(p->dir, true);
        memset(p->seen, 0, (size_t)w->n_certs * sizeof(*p->seen));
        sim_proc_start(w, p);
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
        sim_hub_set_down(w->hub, ev->b != 0);
        break;
    case EV_FAILOVER:
        sim_trace(w, "shared store fails over, %lld writes lost", (long long)ev->b);
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
        watch_revoked(w);
        if (w->now >= next_sample) {
            sample(w);
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
