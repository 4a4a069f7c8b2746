/* Directory modes and the read-only sync schedule (pure functions). */
#include "engine/dirsync.h"

const char *srvocsp__dirsync_problem(const srvocsp_params *p)
{
    if (p->directory_mode > SRVOCSP_DIR_WRITE_ONLY)
        return "directory_mode must be SRVOCSP_DIR_READ_WRITE, _READ_ONLY or _WRITE_ONLY";
    if (p->directory_mode != SRVOCSP_DIR_READ_WRITE && p->directory == NULL)
        return "directory_mode read-only or write-only needs a directory";
    if (p->min_sync_s == 0)
        return "min_sync_s must be > 0";
    if (p->max_sync_s < p->min_sync_s)
        return "max_sync_s must be >= min_sync_s";
    return NULL;
}

void srvocsp__dirsync_init(srvocsp__dirsync *d, const srvocsp_params *p)
{
    d->mode = p->directory_mode;
    d->min_s = p->min_sync_s;
    d->max_s = p->max_sync_s;
}

int64_t srvocsp__dirsync_next(const srvocsp__dirsync *d, const srvocsp__sched *s,
                              const srvocsp_response *held, int64_t now)
{
    int64_t wait = d->min_s;

    if (held != NULL) {
        int64_t due = srvocsp__sched_after_success(s, held, now, false);

        if (due - now > wait)
            wait = due - now;
    }
    if (wait > (int64_t)d->max_s)
        wait = d->max_s;
    return now + wait;
}
