/*
 * When to fetch: pure functions of the held response, the clock and the
 * failure count, so that tests can check every rule by stepping time.
 *
 * After a success the refresh point is the halfway point of the validity
 * window, or the Windows prefetch point (nextUpdate - MaxBeforeNextUpdate)
 * if that is earlier.  For windows shorter than MaxBeforeNextUpdate the
 * prefetch point lies before thisUpdate; it is then raised to a quarter
 * into the window, so that a short-lived response is refreshed a few times
 * per window instead of in a loop.  Whatever the window, the refresh comes
 * early enough before the last moment the response may be served
 * (nextUpdate - MinValidity) to leave room for retries: half of what is
 * left, up to an hour.  Without that, a 700 s response with a 600 s
 * minimum would be refreshed at +175 s although it can only be served for
 * 100 s.
 *
 * After a failure: 1 min doubling to 1 h (to 10 min while nothing held can
 * be served), +/- jitter, but never later than one last try a minute
 * before the held response drops below MinValidity.
 *
 * After an unchanged answer (the held response handed back again, as a CDN
 * cache does): a fraction of the time the held response can still be
 * served, so a new response is picked up soon after it is published and
 * the number of asks stays bounded.
 *
 * Near nextUpdate (closer than MinBeforeNextUpdate) the responder is likely
 * to answer with the response we already hold, so as Windows does we wait
 * until MinAfterNextUpdate past it.
 */
#include "internal.h"

/* Never refetch sooner than this after a response was accepted. */
#define MIN_INTERVAL_S 60
/* The last try before a held response stops being served. */
#define LAST_CHANCE_S 60

static int64_t apply_next_update_rule(const srvocsp__sched *p, const srvocsp_response *r,
                                      int64_t t)
{
    if (r != NULL && r->next_update != 0 && t < r->next_update &&
        t > r->next_update - (int64_t)p->min_before_s)
        return r->next_update + (int64_t)p->min_after_s;
    return t;
}

/* Room left for retries between the refresh and the last servable
 * moment: half of the servable span, at most this. */
#define RETRY_ROOM_MAX_S 3600
/* After an unchanged answer: ask again after 1/UNCHANGED_DIV of the time
 * the held response can still be served, but not sooner than this. */
#define UNCHANGED_DIV 8
#define UNCHANGED_MIN_S 60

int64_t srvocsp__sched_last_servable(const srvocsp__sched *p, const srvocsp_response *r)
{
    return r->expires - srvocsp__margin(r, p->min_validity_s, p->adaptive);
}

int64_t srvocsp__sched_after_success(const srvocsp__sched *p, const srvocsp_response *r,
                                     int64_t now, bool fresh)
{
    int64_t window = r->expires - r->this_update;
    int64_t half = r->this_update + window / 2;
    int64_t prefetch = r->expires - (int64_t)p->max_before_s;
    int64_t quarter = r->this_update + window / 4;
    int64_t until = srvocsp__sched_last_servable(p, r);
    int64_t span = until - r->this_update;
    int64_t t;

    if (prefetch < quarter)
        prefetch = quarter;
    t = half < prefetch ? half : prefetch;
    if (span > 0) {
        int64_t room = span / 2 < RETRY_ROOM_MAX_S ? span / 2 : RETRY_ROOM_MAX_S;

        if (t > until - room)
            t = until - room;
    }
    /* A response just fetched is as new as the responder has: asking again
     * at once would only return it again. One loaded from disk may be
     * past its refresh point: then fetch now. */
    if (fresh && t < now + MIN_INTERVAL_S)
        t = now + MIN_INTERVAL_S;
    if (t < now)
        t = now;
    return apply_next_update_rule(p, r, t);
}

int64_t srvocsp__sched_after_unchanged(const srvocsp__sched *p, const srvocsp_response *r,
                                       int64_t now)
{
    int64_t planned = srvocsp__sched_after_success(p, r, now, false);
    int64_t until = srvocsp__sched_last_servable(p, r);
    int64_t d, t, last;

    /* Asked before the refresh point (refresh_now, a restart): the normal
     * plan stands. */
    if (planned > now)
        return planned;
    d = (until - now) / UNCHANGED_DIV;
    if (d < UNCHANGED_MIN_S)
        d = UNCHANGED_MIN_S;
    t = now + d;
    last = until - LAST_CHANCE_S;
    if (t > last && last > now)
        t = last;
    return apply_next_update_rule(p, r, t);
}

int64_t srvocsp__backoff_s(unsigned failures)
{
    int64_t b = SRVOCSP__BACKOFF_FIRST_S;

    if (failures == 0)
        return 0;
    while (--failures > 0 && b < SRVOCSP__BACKOFF_MAX_S)
        b *= 2;
    return b < SRVOCSP__BACKOFF_MAX_S ? b : SRVOCSP__BACKOFF_MAX_S;
}

int64_t srvocsp__sched_after_failure(const srvocsp__sched *p, const srvocsp_response *cur,
                                     int64_t now, unsigned failures, double jitter,
                                     unsigned jitter_percent)
{
    int64_t b = srvocsp__backoff_s(failures);
    int64_t t;

    /* With nothing that can be served, every minute without a staple
     * counts: after an outage ends the first handshakes are stapled
     * within minutes, not within the hour of a full backoff. */
    if ((cur == NULL || !srvocsp__sched_servable(p, cur, now)) && b > SRVOCSP__BACKOFF_MAX_COLD_S)
        b = SRVOCSP__BACKOFF_MAX_COLD_S;
    if (jitter < -1.0)
        jitter = -1.0;
    if (jitter > 1.0)
        jitter = 1.0;
    b += (int64_t)((double)b * jitter * (double)jitter_percent / 100.0);
    if (b < 1)
        b = 1;
    t = now + b;

    if (cur != NULL && srvocsp__sched_servable(p, cur, now)) {
        /* Last moment the held response may be served. */
        int64_t deadline = srvocsp__sched_last_servable(p, cur);
        int64_t last = deadline - LAST_CHANCE_S;

        if (last <= now)
            last = now + (deadline - now) / 2;
        if (t > last && last > now)
            t = last;
    }
    return apply_next_update_rule(p, cur, t);
}
