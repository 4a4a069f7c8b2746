/*
 * mod_srvocsp: Apache httpd staples through libsrvocsp.
 *
 * mod_ssl asks modules for staples through httpd's OCSP hooks (http_ssl.h,
 * 2.4.48+): ssl_ocsp_prime_hook once per served certificate at
 * configuration, ssl_ocsp_get_resp_hook on the handshake thread.  They are
 * called with SSLUseStapling off; a certificate this module takes is never
 * fetched by mod_ssl's own (blocking) stapling.
 *
 * How it fits Apache's lifecycle:
 *  - Configuration runs twice at start (and once per restart); the first
 *    pass and "apache2 -t" open nothing.  In a live pass each certificate
 *    gets a handle (its saved, verified response loaded at once from
 *    SrvOcspDirectory), first fetches run side by side, and the parent
 *    waits for them, at most SrvOcspUrlTimeout, before any child is forked:
 *    the first handshake staples.
 *  - A restart (graceful or not) builds the new configuration's handles
 *    while the old ones are still open: libsrvocsp keeps one retrieval per
 *    certificate, so the new ones hold the current response at once; then
 *    the old ones close.  Old children of a graceful restart keep their own
 *    (forked) handles; both generations share the directory and its lease.
 *  - Children are forked with the handles; libsrvocsp parks its thread
 *    across fork and resumes it in the child (made to happen in child_init,
 *    after the switch to User, with signals blocked in the thread).  The
 *    parent, its children and every other process using the directory (or
 *    the fleet's store) cost one request per certificate and refresh.
 *  - The thread is stopped and joined before a child exits (exit() runs
 *    OpenSSL's cleanup) and before the parent exits.  The module is never
 *    unmapped (-z nodelete): its thread and its handles outlive one
 *    configuration, which Apache unloads and reloads on every restart.
 */
#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_main.h"
#include "http_ssl.h"
#include "unixd.h"

#include "apr_strings.h"

#include <srvocsp.h>

#include <grp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mod_srvocsp_certs.h"
#include "mod_srvocsp_log.h"
#include "mod_srvocsp_status.h"

#include "mod_status.h"

#ifndef MOD_SRVOCSP_DEFAULT_DIR
#define MOD_SRVOCSP_DEFAULT_DIR "/var/lib/apache2/srvocsp"
#endif
#define DEFAULT_MIN_VALIDITY_S 600
#define DEFAULT_TIMEOUT_MS 5000
#define MAX_MIN_VALIDITY_S (30 * 86400)
#define MAX_TIMEOUT_MS 3600000

/* The one symbol Apache looks up (the build hides everything else). */
extern module AP_MODULE_DECLARE_DATA srvocsp_module __attribute__((visibility("default")));

typedef struct srv_conf {
    int enable;                 /* SrvOcsp; -1 unset */
    const char *responder;      /* SrvOcspResponderUrl; NULL unset */
    apr_int64_t min_validity_s; /* SrvOcspMinValidity; -1 unset */
    apr_int64_t timeout_ms;     /* SrvOcspUrlTimeout; -1 unset */
    /* Server-wide (main server only), inherited by every vhost. */
    const char *directory;      /* NULL unset, "" none */
    const char *store;          /* SrvOcspStore; NULL none */
} srv_conf;

/* The generation being configured, the one serving, and the one a restart
 * replaced (closed once the new one holds its responses).  malloc'd: they
 * outlive the configuration pools. */
static mod_srvocsp_gen g_building, g_live, g_prev;
static int g_failed;           /* a certificate could not be opened this pass */
static int g_dir_state;        /* this pass's directory: 0 not looked at, 1 usable,
                                * -1 cannot be used (the pass goes without) */
static int g_exit_registered;  /* the process-exit cleanup is registered */
static atomic_int g_stopping;  /* the engine is going: get_resp declines */

static void *create_srv_conf(apr_pool_t *p, server_rec *s)
{
    srv_conf *c = apr_pcalloc(p, sizeof(*c));

    (void)s;
    c->enable = -1;
    c->min_validity_s = -1;
    c->timeout_ms = -1;
    return c;
}

static void *merge_srv_conf(apr_pool_t *p, void *basev, void *addv)
{
    const srv_conf *base = basev, *add = addv;
    srv_conf *c = apr_pcalloc(p, sizeof(*c));

    c->enable = add->enable != -1 ? add->enable : base->enable;
    c->responder = add->responder ? add->responder : base->responder;
    c->min_validity_s = add->min_validity_s != -1 ? add->min_validity_s : base->min_validity_s;
    c->timeout_ms = add->timeout_ms != -1 ? add->timeout_ms : base->timeout_ms;
    c->directory = base->directory;
    c->store = base->store;
    return c;
}

static srv_conf *conf_of(server_rec *s)
{
    return ap_get_module_config(s->module_config, &srvocsp_module);
}

/* ---------------------------------------------------------------- */
/* Directives: bad values are refused when the configuration is read, so
 * "apache2 -t" names them. */

static const char *set_enable(cmd_parms *cmd, void *dc, int on)
{
    (void)dc;
    conf_of(cmd->server)->enable = on;
    return NULL;
}

static const char *set_directory(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    (void)dc;
    if (err)
        return err;
    if (*arg == '\0')
        return "SrvOcspDirectory needs a path (or \"none\")";
    if (strcasecmp(arg, "none") == 0) {
        conf_of(cmd->server)->directory = "";
        return NULL;
    }
    conf_of(cmd->server)->directory = ap_server_root_relative(cmd->pool, arg);
    if (conf_of(cmd->server)->directory == NULL)
        return apr_pstrcat(cmd->pool, "SrvOcspDirectory: invalid path \"", arg, "\"", NULL);
    return NULL;
}

static const char *set_store(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    (void)dc;
    if (err)
        return err;
    /* Checked whole when the configuration is read (apache2 -t refuses
     * it), in the library's words, which never hold the password. */
    if (strncmp(arg, "redis://", 8) != 0 && strncmp(arg, "unix://", 7) != 0 &&
        strncmp(arg, "redis-sentinel://", 17) != 0)
        return apr_pstrcat(cmd->pool, "SrvOcspStore: \"", arg,
                           "\" is not a redis://, unix:// or redis-sentinel:// URL", NULL);
    if (srvocsp_store_url_check(arg) != SRVOCSP_OK)
        return apr_pstrcat(cmd->pool, "SrvOcspStore: ", srvocsp_last_error_text(), NULL);
    conf_of(cmd->server)->store = arg;
    return NULL;
}

static const char *set_responder(cmd_parms *cmd, void *dc, const char *arg)
{
    (void)dc;
    if (strncasecmp(arg, "http://", 7) != 0 || arg[7] == '\0')
        return apr_pstrcat(cmd->pool, "SrvOcspResponderUrl must be an http:// URL (OCSP is "
                                      "fetched over plain HTTP), not \"",
                           arg, "\"", NULL);
    conf_of(cmd->server)->responder = arg;
    return NULL;
}

/* "600" (in |unit|s), "600s", "10mi", "1hr", "500ms": a whole number and
 * one of Apache's time units, nothing else (ap_timeout_parameter_parse
 * takes "soon" for 0). */
static const char *parse_interval(cmd_parms *cmd, const char *arg, const char *unit,
                                  apr_int64_t lo_ms, apr_int64_t hi_ms, apr_int64_t *ms)
{
    static const struct {
        const char *name;
        apr_int64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"mi", 60000}, {"hr", 3600000}};
    apr_int64_t v = 0, mult = 0;
    const char *p = arg;

    while (*p >= '0' && *p <= '9' && v <= hi_ms)
        v = v * 10 + (*p++ - '0');
    while (*p >= '0' && *p <= '9')
        p++; /* too large: said below */
    if (*p == '\0')
        p = unit;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strcasecmp(p, units[i].name) == 0)
            mult = units[i].ms;
    if (p == arg || mult == 0)
        return apr_psprintf(cmd->pool, "%s: \"%s\" is not a time (a whole number, optionally "
                                       "followed by ms, s, mi or hr)",
                            cmd->cmd->name, arg);
    *ms = v > hi_ms ? hi_ms + 1 : v * mult;
    if (*ms < lo_ms || *ms > hi_ms)
        return apr_psprintf(cmd->pool, "%s: \"%s\" is out of range (%" APR_INT64_T_FMT " ms to "
                                       "%" APR_INT64_T_FMT " s)",
                            cmd->cmd->name, arg, lo_ms, hi_ms / 1000);
    return NULL;
}

static const char *set_min_validity(cmd_parms *cmd, void *dc, const char *arg)
{
    apr_int64_t ms = 0;
    const char *err = parse_interval(cmd, arg, "s", 0, (apr_int64_t)MAX_MIN_VALIDITY_S * 1000, &ms);

    (void)dc;
    if (err)
        return err;
    conf_of(cmd->server)->min_validity_s = ms / 1000;
    return NULL;
}

static const char *set_timeout(cmd_parms *cmd, void *dc, const char *arg)
{
    apr_int64_t ms = 0;
    const char *err = parse_interval(cmd, arg, "s", 1, MAX_TIMEOUT_MS, &ms);

    (void)dc;
    if (err)
        return err;
    conf_of(cmd->server)->timeout_ms = ms;
    return NULL;
}

static const command_rec commands[] = {
    AP_INIT_FLAG("SrvOcsp", set_enable, NULL, RSRC_CONF,
                 "On: staple this server's certificates through srvocsp (default Off)"),
    AP_INIT_TAKE1("SrvOcspDirectory", set_directory, NULL, RSRC_CONF,
                  "where verified responses are saved and shared by every process, or none "
                  "(server-wide; default " MOD_SRVOCSP_DEFAULT_DIR ")"),
    AP_INIT_TAKE1("SrvOcspStore", set_store, NULL, RSRC_CONF,
                  "the fleet's shared store, redis://host:port[/db], unix:///path or "
                  "redis-sentinel://host[:port][,host[:port]...][/db]#MASTER (server-wide)"),
    AP_INIT_TAKE1("SrvOcspResponderUrl", set_responder, NULL, RSRC_CONF,
                  "an http:// responder URL that replaces the certificates' own"),
    AP_INIT_TAKE1("SrvOcspMinValidity", set_min_validity, NULL, RSRC_CONF,
                  "never staple a response with less validity left (default 600 s)"),
    AP_INIT_TAKE1("SrvOcspUrlTimeout", set_timeout, NULL, RSRC_CONF,
                  "bound on one retrieval, and on the wait for first fetches at start "
                  "(default 5 s; 500ms, 3s, ...)"),
    {NULL}};

/* ---------------------------------------------------------------- */

/* Start-up's second pass, a restart: the configuration that will serve.
 * Not the first pass, not "apache2 -t" or -D DUMP_..., not "-k stop". */
static int live_pass(void)
{
    return ap_state_query(AP_SQ_RUN_MODE) == AP_SQ_RM_NORMAL &&
           ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_CONFIG;
}

static const char *directory_of(const srv_conf *c)
{
    if (c->directory == NULL)
        return MOD_SRVOCSP_DEFAULT_DIR;
    return c->directory[0] ? c->directory : NULL;
}

/* Whether |uid| (primary group |gid|, supplementary groups those of
 * |user|) may create files in the directory |st|, by its owner and mode as
 * the kernel reads them (ACLs are not read: a directory they open is
 * reported when it need not be, never the other way). */
static int dir_writable_by(const struct stat *st, uid_t uid, gid_t gid, const char *user)
{
    const mode_t wx_usr = S_IWUSR | S_IXUSR, wx_grp = S_IWGRP | S_IXGRP,
                 wx_oth = S_IWOTH | S_IXOTH;
    gid_t groups[128];
    int n = (int)(sizeof(groups) / sizeof(groups[0])), in_group = st->st_gid == gid;

    if (uid == 0)
        return 1;
    if (st->st_uid == uid)
        return (st->st_mode & wx_usr) == wx_usr;
    if (!in_group && user != NULL && getgrouplist(user, gid, groups, &n) >= 0)
        for (int i = 0; i < n && !in_group; i++)
            in_group = groups[i] == st->st_gid;
    if (in_group)
        return (st->st_mode & wx_grp) == wx_grp;
    return (st->st_mode & wx_oth) == wx_oth;
}

/* The parent runs as root and its children as User: they must be able to
 * save into the directory and take its leases.  A directory the module
 * creates is given to User; one that exists is never changed (a mistyped
 * SrvOcspDirectory naming /etc/apache2 must not hand it to www-data), only
 * reported when User cannot write there. */
static const char *prepare_directory(server_rec *s, const char *dir)
{
    struct stat st;
    apr_status_t rv;
    int root;

    if (dir == NULL)
        return NULL;
    if (stat(dir, &st) != 0) {
        rv = apr_dir_make_recursive(dir, APR_FPROT_OS_DEFAULT, s->process->pool);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s,
                         "srvocsp: SrvOcspDirectory \"%s\" cannot be created; continuing "
                         "without: responses are not saved (each process fetches its own, and "
                         "a restart starts unstapled)",
                         dir);
            return NULL;
        }
        if (geteuid() == 0 &&
            chown(dir, ap_unixd_config.user_id, ap_unixd_config.group_id) != 0)
            ap_log_error(APLOG_MARK, APLOG_WARNING, errno, s,
                         "srvocsp: chown(\"%s\") to User %s failed; children cannot save "
                         "responses there",
                         dir, ap_unixd_config.user_name);
        return dir;
    }
    if (!S_ISDIR(st.st_mode)) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     "srvocsp: SrvOcspDirectory \"%s\" exists and is not a directory; "
                     "continuing without: responses are not saved",
                     dir);
        return NULL;
    }
    root = geteuid() == 0;
    if (root ? !dir_writable_by(&st, ap_unixd_config.user_id, ap_unixd_config.group_id,
                                ap_unixd_config.user_name)
             : access(dir, W_OK | X_OK) != 0) {
        const char *pre = root ? "User " : "", *who = root ? ap_unixd_config.user_name
                                                          : "the user Apache runs as";

        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     "srvocsp: SrvOcspDirectory \"%s\" exists and is not writable by %s%s "
                     "(owner uid %ld, gid %ld, mode %04o); it is left as it is: the children "
                     "read the responses saved there but cannot save or take leases (each "
                     "fetches its own refreshes). Make it writable by %s%s, or name another "
                     "directory",
                     dir, pre, who, (long)st.st_uid, (long)st.st_gid,
                     (unsigned)(st.st_mode & 07777), pre, who);
    }
    return dir;
}

static int prime(server_rec *s, apr_pool_t *p, const char *id, apr_size_t id_len, const char *pem)
{
    srv_conf *c = conf_of(s);
    mod_srvocsp_opts o;
    int rv;

    (void)p;
    if (c->enable != 1)
        return DECLINED;
    if (!live_pass())
        return OK; /* the first pass opens nothing */
    o.directory = directory_of(c);
    if (g_dir_state == 0) {
        /* First fetches end before post_config: their reports go to this
         * configuration's main server. */
        mod_srvocsp_log_set_server(ap_server_conf);
        g_dir_state = o.directory == NULL || prepare_directory(s, o.directory) != NULL ? 1 : -1;
    }
    if (g_dir_state < 0)
        o.directory = NULL; /* said once above */
    o.responder = c->responder;
    o.store_url = c->store;
    o.min_validity_s = c->min_validity_s >= 0 ? (uint32_t)c->min_validity_s : DEFAULT_MIN_VALIDITY_S;
    o.timeout_ms = c->timeout_ms > 0 ? (uint32_t)c->timeout_ms : DEFAULT_TIMEOUT_MS;
    rv = mod_srvocsp_gen_add(&g_building, &g_prev, s, id, id_len, pem, &o);
    if (rv != OK && rv != DECLINED) {
        g_failed = 1;
        return DECLINED;
    }
    return rv;
}

static int get_resp(server_rec *s, conn_rec *c, const char *id, apr_size_t id_len,
                    ap_ssl_ocsp_copy_resp *cb, void *userdata)
{
    srvocsp_handle *h;
    srvocsp_response *r;
    size_t len = 0;
    const unsigned char *der;

    (void)c;
    if (conf_of(s)->enable != 1 || atomic_load_explicit(&g_stopping, memory_order_acquire))
        return DECLINED;
    h = mod_srvocsp_gen_find(&g_live, id, id_len);
    if (h == NULL)
        return DECLINED;
    /* No lock, no I/O, no allocation: mod_ssl copies the bytes. */
    r = srvocsp_get1_response(h);
    mod_srvocsp_status_count(r != NULL);
    if (r == NULL) {
        cb(NULL, 0, userdata);
        return OK;
    }
    der = srvocsp_response_der(r, &len);
    cb(der, len, userdata);
    srvocsp_response_free(r);
    return OK;
}

/* Everything stops: the engine's thread is joined, its handles freed. */
static void stop_all(void)
{
    atomic_store_explicit(&g_stopping, 1, memory_order_release);
    mod_srvocsp_log_set_server(NULL);
    /* The engine frees the handles; the tables only forget them.  No
     * handshake runs by now: the MPMs join their workers before a child's
     * pool goes, and get_resp declines once g_stopping is set. */
    mod_srvocsp_gen_forget(&g_live);
    mod_srvocsp_gen_forget(&g_prev);
    mod_srvocsp_gen_forget(&g_building);
    mod_srvocsp_engine_stop();
}

/* The configuration pool goes (a restart, or the exit): its server_rec
 * is no longer logged against, its handles wait for the next generation
 * to share their retrievals. */
static apr_status_t generation_end(void *data)
{
    (void)data;
    mod_srvocsp_log_set_server(NULL);
    mod_srvocsp_gen_close(&g_prev);
    g_prev = g_live;
    memset(&g_live, 0, sizeof(g_live));
    return APR_SUCCESS;
}

static apr_status_t process_end(void *data)
{
    (void)data;
    mod_srvocsp_gen_close(&g_prev);
    mod_srvocsp_gen_close(&g_live);
    mod_srvocsp_gen_close(&g_building);
    stop_all();
    return APR_SUCCESS;
}

static int pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    (void)pconf;
    (void)plog;
    (void)ptemp;
    /* A pass that failed before post_config leaves its handles here. */
    mod_srvocsp_gen_close(&g_building);
    g_failed = 0;
    g_dir_state = 0;
    return OK;
}

static int post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s)
{
    srvocsp_engine_stats st;

    (void)plog;
    (void)ptemp;
    if (!live_pass())
        return OK;
    if (g_failed) {
        mod_srvocsp_gen_close(&g_building);
        return HTTP_INTERNAL_SERVER_ERROR; /* the emerg above says why */
    }
    mod_srvocsp_log_set_server(s);
    mod_srvocsp_gen_seal(&g_building);
    mod_srvocsp_gen_first_fetch(&g_building, s);
    /* The new generation holds the current responses: the old one goes. */
    mod_srvocsp_gen_close(&g_prev);
    g_live = g_building;
    memset(&g_building, 0, sizeof(g_building));
    apr_pool_cleanup_register(pconf, NULL, generation_end, apr_pool_cleanup_null);
    if (!g_exit_registered) {
        apr_pool_cleanup_register(s->process->pool, NULL, process_end, apr_pool_cleanup_null);
        g_exit_registered = 1;
    }
    if (g_live.n > 0) {
        size_t taken = 0;

        for (size_t i = 0; i < g_live.n; i++)
            taken += g_live.v[i].h != NULL;
        srvocsp_engine_get_stats(mod_srvocsp_engine(), &st);
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                     "srvocsp: this configuration staples %" APR_SIZE_T_FMT " certificates; the "
                     "process holds %" APR_UINT64_T_FMT " handles on %" APR_UINT64_T_FMT
                     " certificates",
                     (apr_size_t)taken, (apr_uint64_t)st.handles_open, (apr_uint64_t)st.entries);
    }
    return OK;
}

/* Before an exiting child runs OpenSSL's exit-time cleanup. */
static apr_status_t child_end(void *data)
{
    (void)data;
    stop_all();
    return APR_SUCCESS;
}

static void child_init(apr_pool_t *pchild, server_rec *s)
{
    sigset_t stop, old;
    int any = 0;

    mod_srvocsp_log_after_fork();
    mod_srvocsp_status_reset();
    for (size_t i = 0; i < g_live.n; i++)
        any |= g_live.v[i].h != NULL;
    if (!any)
        return;
    /* A child told to stop while it starts runs its pool's cleanups from
     * the signal handler: hold the signals until the engine is resumed and
     * its stop is registered, so the thread never outlives the child and
     * is never stopped half resumed. */
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGHUP);
    sigaddset(&stop, SIGUSR1);
    sigaddset(&stop, SIGWINCH);
    pthread_sigmask(SIG_BLOCK, &stop, &old);
    mod_srvocsp_log_set_server(s);
    apr_pool_cleanup_register(pchild, NULL, child_end, apr_pool_cleanup_null);
    /* The first library call in the child resumes the engine: here, not in
     * the first handshake. */
    for (size_t i = 0; i < g_live.n; i++)
        if (g_live.v[i].h != NULL)
            srvocsp_response_free(srvocsp_get1_response(g_live.v[i].h));
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static int status_hook(request_rec *r, int flags)
{
    if (g_live.n == 0 || atomic_load_explicit(&g_stopping, memory_order_acquire))
        return OK;
    return mod_srvocsp_status_write(r, flags, &g_live);
}

static void register_hooks(apr_pool_t *p)
{
    static const char *const after_ssl[] = {"mod_ssl.c", NULL};

    (void)p;
    ap_hook_pre_config(pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(post_config, after_ssl, NULL, APR_HOOK_LAST);
    ap_hook_child_init(child_init, NULL, NULL, APR_HOOK_MIDDLE);
    /* Asked before mod_md's (MDStapling): in a vhost with SrvOcsp on, this
     * module staples; elsewhere it declines and mod_md may. */
    ap_hook_ssl_ocsp_prime_hook(prime, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_ssl_ocsp_get_resp_hook(get_resp, NULL, NULL, APR_HOOK_FIRST);
    /* A section in mod_status's server-status, when mod_status is loaded. */
    APR_OPTIONAL_HOOK(ap, status_hook, status_hook, NULL, NULL, APR_HOOK_MIDDLE);
}

AP_DECLARE_MODULE(srvocsp) = {
    STANDARD20_MODULE_STUFF,
    NULL,            /* per-directory config */
    NULL,            /* merge per-directory */
    create_srv_conf, /* per-server config */
    merge_srv_conf,  /* merge per-server */
    commands,
    register_hooks,
    AP_MODULE_FLAG_NONE
};
