/*
 * How an entry uses its persistence directory: read and write (the
 * default), read-only (another process keeps the files fresh; this one
 * serves them, re-reads them on a sync schedule and never asks the
 * network) or write-only (save, never load).
 */
#ifndef SRVOCSP_DIRSYNC_H
#define SRVOCSP_DIRSYNC_H

#include "internal.h"

typedef struct srvocsp__dirsync {
    unsigned mode;               /* SRVOCSP_DIR_* */
    uint32_t min_s, max_s;       /* read-only: bounds between two looks */
} srvocsp__dirsync;

#define SRVOCSP__MIN_SYNC_DEFAULT_S 5
#define SRVOCSP__MAX_SYNC_DEFAULT_S 3600

/* What is wrong with the directory fields of |p|, or NULL. */
SRVOCSP__HIDDEN const char *srvocsp__dirsync_problem(const srvocsp_params *p);
SRVOCSP__HIDDEN void srvocsp__dirsync_init(srvocsp__dirsync *d, const srvocsp_params *p);

static inline bool srvocsp__dirsync_read_only(const srvocsp__dirsync *d)
{
    return d->mode == SRVOCSP_DIR_READ_ONLY;
}

/* Whether stored responses are loaded (at open and before a refresh). */
static inline bool srvocsp__dirsync_loads(const srvocsp__dirsync *d)
{
    return d->mode != SRVOCSP_DIR_WRITE_ONLY;
}

/* Read-only: when to look at the stored file again, after a look at |now|
 * with |held| (may be NULL) being served.  While |held| is not yet due for
 * refresh by |s| the next look is at its refresh point; once due (or with
 * nothing held) as soon as allowed; always between min_s and max_s from
 * now, so a revocation the writer stores early is seen within max_s. */
SRVOCSP__HIDDEN int64_t srvocsp__dirsync_next(const srvocsp__dirsync *d, const srvocsp__sched *s,
                                             const srvocsp_response *held, int64_t now);

#endif
