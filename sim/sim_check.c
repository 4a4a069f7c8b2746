/*
 * The oracle at every sampled handshake (and, for revoked certificates, at
 * every step).
 *
 * The oracle's rules (sim/README.md says why each bound is what it is):
 *  - what is stapled are bytes a CA of the simulation produced for that
 *    certificate (the engine verified them; the oracle knows them);
 *  - time-valid by the strictest client, on the host's clock: thisUpdate
 *    not beyond the skew ahead, nextUpdate at least MinValidity ahead,
 *    within the trust horizon; never unknown;
 *  - never good over a revocation it served or was told of (the rollback
 *    rule itself is judged at each publication: sim_world.c, on_update);
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
#include "sim_world.h"

#include "sim_bounds.h"

#include <string.h>

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
                    /* From the publication, or from the certificate's
                     * coming into service when it was revoked before
                     * (nobody could staple it earlier), for a process
                     * that was there. */
                    int64_t from = c->revoked_at > c->issued ? c->revoked_at : c->issued;

                    s->first_revoked = w->now;
                    if (c->revoked_at != 0 && p->started <= from && w->fig.n_prop < 4096)
                        w->fig.prop[w->fig.n_prop++] = (double)(w->now - from);
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

void sim_sample(sim_world *w)
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
void sim_watch_revoked(sim_world *w)
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

