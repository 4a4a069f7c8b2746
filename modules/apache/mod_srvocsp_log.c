/* Engine reports in Apache's error log (see mod_srvocsp_log.h). */
#include "mod_srvocsp_log.h"

#include "http_log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

APLOG_USE_MODULE(srvocsp);

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static server_rec *g_server;

void mod_srvocsp_log_set_server(server_rec *s)
{
    pthread_mutex_lock(&g_lock);
    g_server = s;
    pthread_mutex_unlock(&g_lock);
}

void mod_srvocsp_log_after_fork(void)
{
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;

    g_lock = fresh;
}

static void fmt_time(int64_t t, char *buf, size_t cap)
{
    struct tm tm;
    time_t tt = (time_t)t;

    if (t <= 0 || gmtime_r(&tt, &tm) == NULL) {
        snprintf(buf, cap, "-");
        return;
    }
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void mod_srvocsp_log_event(srvocsp_handle *h, const srvocsp_event *ev, void *arg)
{
    const mod_srvocsp_tag *tag = arg;
    char tu[32], nu[32], na[32];
    int level;

    (void)h;
    fmt_time(ev->response ? srvocsp_response_this_update(ev->response) : 0, tu, sizeof(tu));
    fmt_time(ev->response ? srvocsp_response_next_update(ev->response) : 0, nu, sizeof(nu));
    fmt_time(ev->next_attempt, na, sizeof(na));
    pthread_mutex_lock(&g_lock);
    if (g_server == NULL) {
        /* Between configurations: nobody's log to write to. */
        pthread_mutex_unlock(&g_lock);
        return;
    }
    switch (ev->type) {
    case SRVOCSP_EVENT_UPDATED:
        level = APLOG_INFO;
        ap_log_error(APLOG_MARK, level, 0, g_server,
                     "srvocsp: %s: new OCSP response, good, thisUpdate %s, nextUpdate %s, next "
                     "refresh %s (process %d)",
                     tag->name, tu, nu, na, (int)getpid());
        break;
    case SRVOCSP_EVENT_REVOKED:
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, g_server,
                     "srvocsp: %s: the responder says REVOKED; the revoked response is stapled "
                     "(thisUpdate %s) (process %d)",
                     tag->name, tu, (int)getpid());
        break;
    case SRVOCSP_EVENT_UNKNOWN:
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, g_server,
                     "srvocsp: %s: the responder does not know the certificate (unknown); "
                     "nothing is stapled for it (process %d)",
                     tag->name, (int)getpid());
        break;
    case SRVOCSP_EVENT_STORE_FAILED:
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, g_server,
                     "srvocsp: %s: the new response could not be saved in SrvOcspDirectory: %s "
                     "(process %d)",
                     tag->name, ev->reason ? ev->reason : "", (int)getpid());
        break;
    default:
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, g_server,
                     "srvocsp: %s: OCSP retrieval failed (%s): %s; next attempt %s; the last "
                     "verified response, if any, keeps being stapled (process %d)",
                     tag->name, srvocsp_error_name(ev->error), ev->reason ? ev->reason : "", na,
                     (int)getpid());
        break;
    }
    pthread_mutex_unlock(&g_lock);
}

void mod_srvocsp_tag_free(void *arg)
{
    free(arg);
}
