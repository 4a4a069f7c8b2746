/* Time conversions and the default clock. */
#include "internal.h"

#include <stdio.h>
#include <time.h>

int64_t srvocsp__system_monotonic_ms(void *ctx)
{
    struct timespec ts;

    (void)ctx;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t srvocsp__system_now(void *ctx)
{
    struct timespec ts;

    (void)ctx;
    /* The coarse clock is read from the vDSO without a syscall; a few
     * milliseconds of resolution is plenty for validity in seconds. */
#ifdef CLOCK_REALTIME_COARSE
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
#else
    clock_gettime(CLOCK_REALTIME, &ts);
#endif
    return (int64_t)ts.tv_sec;
}

void srvocsp__deadline_ms(struct timespec *ts, uint64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

int64_t srvocsp__asn1_time_to_unix(const ASN1_TIME *t, bool *ok)
{
    struct tm tm;
    int64_t days = 0;
    int y, m;

    *ok = false;
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
        return 0;
    /* Days from civil (H. Hinnant), independent of the process time zone. */
    y = tm.tm_year + 1900;
    m = tm.tm_mon + 1;
    y -= m <= 2;
    {
        int64_t era = (y >= 0 ? y : y - 399) / 400;
        int64_t yoe = y - era * 400;
        int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + tm.tm_mday - 1;
        int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        days = era * 146097 + doe - 719468;
    }
    *ok = true;
    return days * 86400 + tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec;
}

void srvocsp__fmt_time(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (t == 0 || gmtime_r(&tt, &tm) == NULL) {
        snprintf(buf, len, "-");
        return;
    }
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
