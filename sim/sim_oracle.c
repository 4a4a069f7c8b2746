/* See sim_oracle.h. */
#include "sim_oracle.h"

void sim_host_clock_range(const sim_event *ev, size_t n, int proc, int64_t from, int64_t to,
                          int64_t *lo, int64_t *hi)
{
    int64_t off = 0; /* every clock starts right */
    size_t i;

    for (i = 0; i < n && ev[i].at <= from; i++)
        if (ev[i].type == EV_CLOCK_STEP && ev[i].a == proc)
            off = ev[i].b;
    *lo = *hi = from + off;
    for (; i < n && ev[i].at <= to; i++) {
        if (ev[i].type != EV_CLOCK_STEP || ev[i].a != proc)
            continue;
        /* The reading just before the step, then the new one. */
        if (ev[i].at - 1 + off > *hi)
            *hi = ev[i].at - 1 + off;
        off = ev[i].b;
        if (ev[i].at + off < *lo)
            *lo = ev[i].at + off;
    }
    if (to + off > *hi)
        *hi = to + off;
    if (to + off < *lo)
        *lo = to + off;
}

bool sim_servable_throughout(int64_t tu, int64_t nu, int64_t lo, int64_t hi, int64_t skew,
                             int64_t min_validity, int64_t horizon)
{
    return tu <= lo + skew && nu - hi >= min_validity && hi <= tu + horizon;
}
