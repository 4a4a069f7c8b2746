/* The error table and the per-thread last error. */
#include "internal.h"

#include <openssl/err.h>
#include <stdio.h>
#include <string.h>

struct error_info {
    const char *name;
    const char *msg;
    srvocsp_category cat;
};

static const struct error_info error_table[] = {
#define SRVOCSP__ROW(name, num, cat, msg) [num] = {#name, msg, SRVOCSP_CAT_##cat},
    SRVOCSP_ERROR_MAP(SRVOCSP__ROW)
#undef SRVOCSP__ROW
};

#define N_ERRORS (sizeof(error_table) / sizeof(error_table[0]))

/* Thread-local state: the code, and either a pointer to a static message
 * (hot path) or the formatted text in |buf|. */
static _Thread_local srvocsp_error tl_code;
static _Thread_local const char *tl_static;
static _Thread_local char tl_buf[SRVOCSP__REASON_LEN];

static const struct error_info *lookup(srvocsp_error err)
{
    if ((unsigned)err >= N_ERRORS || error_table[err].name == NULL)
        return NULL;
    return &error_table[err];
}

const char *srvocsp_strerror(srvocsp_error err)
{
    const struct error_info *e = lookup(err);
    return e ? e->msg : "unknown error";
}

const char *srvocsp_error_name(srvocsp_error err)
{
    const struct error_info *e = lookup(err);
    return e ? e->name : "E_UNKNOWN";
}

srvocsp_category srvocsp_error_category(srvocsp_error err)
{
    const struct error_info *e = lookup(err);
    return e ? e->cat : SRVOCSP_CAT_INTERNAL;
}

srvocsp_error srvocsp_last_error(void)
{
    return tl_code;
}

const char *srvocsp_last_error_text(void)
{
    if (tl_static != NULL)
        return tl_static;
    return tl_buf;
}

void srvocsp__set_error_code(srvocsp_error e)
{
    tl_code = e;
    tl_static = srvocsp_strerror(e);
}

void srvocsp__set_error(srvocsp_error e, const char *fmt, ...)
{
    va_list ap;

    tl_code = e;
    tl_static = NULL;
    if (fmt == NULL) {
        tl_static = srvocsp_strerror(e);
        return;
    }
    va_start(ap, fmt);
    vsnprintf(tl_buf, sizeof(tl_buf), fmt, ap);
    va_end(ap);
}

void srvocsp__fmt(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;

    if (len == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

void srvocsp__drain_ossl(char *buf, size_t len)
{
    unsigned long code;
    size_t used = buf ? strlen(buf) : 0;

    /* Drain the whole queue so a later call does not report our leftovers,
     * but keep only what fits. */
    while ((code = ERR_get_error()) != 0) {
        char reason[160];

        if (buf == NULL || used + 3 >= len)
            continue;
        ERR_error_string_n(code, reason, sizeof(reason));
        snprintf(buf + used, len - used, "; %s", reason);
        used = strlen(buf);
    }
}
