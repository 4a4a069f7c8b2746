/*
 * The one rule for replacing a held response.  In order:
 *  1. Revoked is news when its thisUpdate is not older than the held
 *     response's, or when it was produced after the held one (a lagging
 *     replica that signs its older view afresh knows something the held
 *     answer did not), or when the held one can no longer be served: it
 *     then displaces a good (or unknown) response, servable or not.  An
 *     older revoked response also produced before the held one is a
 *     replay, refused: a replay cannot carry a newer producedAt, it is
 *     signed.
 *  2. The same thisUpdate with the same status is "unchanged" while the
 *     held one can be served; handed back once it cannot, it is refused
 *     (E_STALE, or E_STATUS_UNKNOWN for an unknown one).
 *  3. Revoked wins a tie, and is only ever given up for another revoked
 *     response: a good or unknown one with a thisUpdate not newer than a
 *     held revoked one is refused.
 *  4. A strictly older thisUpdate is a rollback, unless what is held can
 *     no longer be served (the clock went back, the responder's clock ran
 *     ahead) and the candidate can: then the host is not locked onto a
 *     response it cannot staple.
 *  5. A good response that cannot be served (less validity left than the
 *     margin, or beyond the trust horizon, which verification already
 *     folded into its expiry) never displaces anything and is not kept
 *     when nothing is held.
 * Unknown passes rule 5: a newer unknown is the responder's current word
 * and is held (never served); being unservable, it gives way to an older
 * good response that can be served (rule 4), as any unservable one does.
 */
#include "core/verdict.h"

#ifdef SRVOCSP_PLANT_DEFECTS
int srvocsp__planted;
#endif

bool srvocsp__held_servable(const srvocsp__sched *p, const srvocsp_response *r, int64_t now)
{
    return srvocsp__sched_servable(p, r, now) && !srvocsp__from_future(r, now, p->skew_s);
}

srvocsp__verdict srvocsp__verdict_judge(const srvocsp__sched *p, const srvocsp_response *held,
                                        const srvocsp_response *cand, int64_t now,
                                        srvocsp_error *err, char *why, size_t whylen)
{
    bool held_ok = held != NULL && srvocsp__held_servable(p, held, now);
    bool cand_ok = srvocsp__sched_servable(p, cand, now);
    char a[32], b[32], c[32];

    /* 1 */
    if (held != NULL && cand->status == SRVOCSP_STATUS_REVOKED &&
        held->status != SRVOCSP_STATUS_REVOKED) {
        if (SRVOCSP__PLANTED(SRVOCSP__PLANT_REVOKED_TIE) &&
            cand->this_update == held->this_update)
            return SRVOCSP__V_UNCHANGED;
        if (cand->this_update >= held->this_update || cand->produced_at > held->produced_at ||
            !held_ok)
            return SRVOCSP__V_REPLACE;
        srvocsp__fmt_time(cand->this_update, a, sizeof(a));
        srvocsp__fmt_time(cand->produced_at, b, sizeof(b));
        srvocsp__fmt_time(held->produced_at, c, sizeof(c));
        srvocsp__fmt(why, whylen,
                     "revoked response with an older thisUpdate (%s) was also produced (%s) "
                     "before the held good response (%s): a replay, not news",
                     a, b, c);
        *err = SRVOCSP_E_ROLLBACK;
        return SRVOCSP__V_REFUSE;
    }
    if (held != NULL && cand->this_update <= held->this_update) {
        bool tie = cand->this_update == held->this_update;

        srvocsp__fmt_time(cand->this_update, a, sizeof(a));
        srvocsp__fmt_time(held->this_update, b, sizeof(b));
        /* 2 */
        if (tie && cand->status == held->status) {
            if (held_ok)
                return SRVOCSP__V_UNCHANGED;
            if (held->status == SRVOCSP_STATUS_UNKNOWN) {
                srvocsp__fmt(why, whylen,
                             "the responder still does not know the certificate (unknown)");
                *err = SRVOCSP_E_STATUS_UNKNOWN;
                return SRVOCSP__V_REFUSE;
            }
            srvocsp__fmt_time(held->expires, c, sizeof(c));
            srvocsp__fmt(why, whylen,
                         "the responder handed back the held response (thisUpdate %s), which "
                         "can no longer be served (it expires %s)",
                         a, c);
            *err = SRVOCSP_E_STALE;
            return SRVOCSP__V_REFUSE;
        }
        /* 3 */
        if (held->status == SRVOCSP_STATUS_REVOKED && cand->status != SRVOCSP_STATUS_REVOKED) {
            srvocsp__fmt(why, whylen,
                         "response thisUpdate %s is %s the held revoked response's %s (revoked "
                         "wins)",
                         a, tie ? "the same as" : "older than", b);
            *err = SRVOCSP_E_ROLLBACK;
            return SRVOCSP__V_REFUSE;
        }
        /* 4 */
        if ((held_ok || !cand_ok) && !SRVOCSP__PLANTED(SRVOCSP__PLANT_ROLLBACK)) {
            srvocsp__fmt(why, whylen, "response thisUpdate %s is %s the held response's %s", a,
                         tie ? "not newer than" : "older than", b);
            *err = SRVOCSP_E_ROLLBACK;
            return SRVOCSP__V_REFUSE;
        }
    }
    /* 5 */
    if (cand->status == SRVOCSP_STATUS_GOOD && !cand_ok) {
        srvocsp__fmt_time(cand->expires, a, sizeof(a));
        srvocsp__fmt(why, whylen,
                     "response is valid until %s, %lld s from now, less than the minimum "
                     "validity of %lld s: it could never be served",
                     a, (long long)(cand->expires - now),
                     (long long)srvocsp__margin(cand, p->min_validity_s, p->adaptive));
        *err = SRVOCSP_E_SHORT_VALIDITY;
        return SRVOCSP__V_REFUSE;
    }
    return SRVOCSP__V_REPLACE;
}
