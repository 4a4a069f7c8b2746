/* srvocsp watch: what the command keeps per certificate, and the pieces it
 * is made of.  Layers, lowest first: watch_queue (the engine's events),
 * watch_report (log, status file, counters), watch_hooks and watch_out
 * (what is done to the servers), watch_state (what is served, and the
 * servers told so), watch_scan (finding certificates), watch_metrics (the
 * HTTP endpoint), watch_opts (options), cmd_watch (the loop). */
#ifndef SRVOCSP_WATCH_H
#define SRVOCSP_WATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "cli.h"

#define MAX_DIRS 16
#define MAX_CERTS 100000
#define MAX_REASONS 32

/* What <cert>.ocsp holds, as far as watch knows. */
typedef enum wfile {
    WFILE_ABSENT = 0, /* no file */
    WFILE_SERVED,     /* the response the library serves */
    WFILE_EMPTY,      /* empty: HAProxy staples nothing (nginx would refuse it) */
    WFILE_KEPT        /* a response the library does not serve (kept: see docs/watch.md) */
} wfile;

/* What to do with <cert>.ocsp when the library stops serving its response. */
typedef enum wwithdraw {
    WITHDRAW_DEFAULT = 0, /* empty with --haproxy-socket, else keep */
    WITHDRAW_KEEP,
    WITHDRAW_EMPTY
} wwithdraw;

typedef struct wcert {
    char *path;                  /* certificate file */
    char *ocsp_path;             /* <path>.ocsp */
    char *snippet_path;          /* <path>.stapling.conf (with --nginx-snippets) */
    unsigned char leaf_md[32];   /* to notice a renewed certificate */
    srvocsp_handle *h;
    int slot;                    /* index in watch.certs, the queue's key */
    bool seen;                   /* during a rescan */
    /* What the library serves (srvocsp_get1_response), checked after every
     * event, when the served response stops being servable, and every few
     * seconds (a clock step moves that moment). */
    bool served;
    srvocsp_cert_status status;
    int64_t this_update, next_update; /* of the last served response */
    int64_t servable_until;      /* last second the served response can be served */
    int64_t recheck_at;          /* wall-clock second of the next look at it */
    unsigned char served_md[32];
    srvocsp_error not_served;    /* why nothing is served (E_OFFLINE at first) */
    char not_served_text[256];
    /* What the file holds. */
    wfile file;
    unsigned char file_md[32];   /* its SHA-256 when it holds a response */
    bool attempted;              /* a retrieval outcome was reported (--once) */
    char last_error[512];
    char last_error_code[32];
} wcert;

/* Every certificate is looked at this often (ms) whatever else happens. */
#define WATCH_RECHECK_MS 5000
/* Cap on a file watch reads: an existing <cert>.ocsp at start (the library
 * refuses responses over 256 KiB anyway), a certificate or .issuer file. */
#define WATCH_MAX_FILE (1024 * 1024)
#define WATCH_MAX_CHAIN 100 /* certificates read from one certificate file */

typedef struct wcount {
    char code[32];
    unsigned long n;
} wcount;

struct wqueue;
struct whooks;
struct wpush;
struct wmetrics;

typedef struct watch {
    const char *dirs[MAX_DIRS];
    int n_dirs;
    const char *on_update, *on_batch, *haproxy_socket, *status_file, *metrics, *state_dir;
    const char *store_url, *store_prefix; /* the fleet's shared store (docs/fleet.md) */
    long hook_timeout_s;         /* a hook's process group is killed past it */
    long hook_jobs;              /* --on-update commands running at once */
    long batch_delay_ms;         /* --on-batch: quiet time before a run */
    long min_validity_s;         /* 0: the library's default (600) */
    long url_timeout_s;          /* 0: the library's default (15) */
    bool adaptive;               /* --adaptive-min-validity */
    bool nginx_snippets;         /* write <cert>.stapling.conf */
    bool metrics_any_address;    /* --metrics-any-address: a non-loopback bind */
    wwithdraw withdraw;
    bool json;
    bool quiet_outputs;          /* --once/--wait: no hooks, no HAProxy pushes */
    srvocsp_params params;       /* what every handle is opened with */
    wcert **certs;               /* slots; NULL: free */
    int n_certs, cap_certs;
    int free_hint;               /* no free slot below it */
    int64_t next_recheck_ms;     /* earliest recheck_at of any certificate */
    struct wqueue *queue;
    struct whooks *hooks;
    struct wpush *push;
    struct wmetrics *metrics_srv;
    bool status_dirty, metrics_dirty;
    bool backlog;                /* the last pass left engine events waiting */
    /* metrics */
    unsigned long responses[3];  /* by status */
    unsigned long coalesced;     /* engine events folded into a later one */
    unsigned long hook_runs, batch_runs, hook_failures;
    wcount failures[MAX_REASONS], withdrawals[MAX_REASONS];
    int n_failures, n_withdrawals;
    uint64_t fallbacks_logged;   /* srvocsp_method_fallback ids logged so far */
} watch;

/* ---- watch_queue.c: the engine's events, bounded and coalesced ---- */

/* One certificate's latest unread event. */
typedef struct wq_event {
    int slot;
    int type;                    /* srvocsp_event_type */
    srvocsp_error error;
    bool attempted;              /* some retrieval outcome was folded in */
    char reason[400];
} wq_event;

/* What happened since the last take, counted even when events coalesce. */
typedef struct wq_counts {
    unsigned long responses[3];  /* by status */
    unsigned long failures[64];  /* by srvocsp_error */
    unsigned long coalesced;
} wq_counts;

typedef struct wqueue wqueue;
wqueue *wq_new(void);
void wq_free(wqueue *q);
/* The read end of the queue's wake-up pipe (readable when events wait). */
int wq_fd(const wqueue *q);
/* Room for slots 0..|n|-1.  Main thread; false when out of memory. */
bool wq_reserve(wqueue *q, int n);
/* Starts a new life of |slot|: returns the update_arg its handle must be
 * opened with; events of any earlier handle in that slot are dropped. */
void *wq_arm(wqueue *q, int slot);
/* Forgets |slot|'s unread event and ignores its handle from now on. */
void wq_disarm(wqueue *q, int slot);
/* The update callback (engine thread): never blocks beyond a short lock. */
void wq_on_update(srvocsp_handle *h, const srvocsp_event *ev, void *arg);
/* Takes up to |max| unread events, oldest certificate first, and adds the
 * counts since the last take to |counts|.  Returns how many. */
int wq_take(wqueue *q, wq_event *out, int max, wq_counts *counts);

/* ---- watch_report.c: log lines, the status file, counters ---- */

void wlog(watch *w, const char *event, const wcert *c, const char *reason, int64_t next_attempt);
/* Flushes the log; called after the status file is written, so a line in
 * the log is never ahead of the status file. */
void wlog_flush(void);
void wcount_add(watch *w, bool withdrawal, const char *code, unsigned long n);
/* Rewrites the status file when something changed since the last write. */
void wstatus_write(watch *w);
/* The Prometheus text and the health answer, malloc'd (NULL on failure). */
char *wreport_metrics(const watch *w, size_t *len);
char *wreport_health(const watch *w, size_t *len, bool *healthy);

/* ---- watch_hooks.c: --on-update and --on-batch, beside the loop ---- */

typedef struct whooks whooks;
whooks *wh_new(void);
void wh_free(whooks *h);
/* |c| changed (|event|: updated, revoked, withdrawn): queues the per-file
 * hook (replacing one not yet started for |c|) and adds |c| to the batch. */
void wh_changed(watch *w, const wcert *c, const char *event, const char *reason);
/* |slot|'s certificate is gone: nothing more is run for it. */
void wh_forget(watch *w, int slot);
/* Reaps, times out and starts hooks; returns ms until it wants to run
 * again (-1: nothing pending). */
long wh_run(watch *w);
/* Stops: waits a moment for running hooks, then ends their process groups. */
void wh_stop(watch *w);

/* ---- watch_push.c: HAProxy's runtime API, beside the loop ---- */

typedef struct wpush wpush;
/* Starts the pushing thread for HAProxy's stats socket |socket_path|. */
wpush *wp_new(const char *socket_path);
/* Stops it; pushes not yet sent are dropped. */
void wp_free(wpush *p);
/* Readable when results wait. */
int wp_fd(const wpush *p);
/* Queues "set ssl ocsp-response" for |slot| (a newer one replaces it). */
void wp_queue(wpush *p, int slot, const unsigned char *der, size_t len);
/* Results since the last call: |cb| per certificate with HAProxy's answer. */
void wp_results(wpush *p, void (*cb)(void *arg, int slot, bool ok, const char *answer),
                void *arg);

/* ---- watch_out.c: what watch writes for the servers ---- */

/* Makes <cert>.stapling.conf say "ssl_stapling on; ssl_stapling_file ...;"
 * (|on|) or "ssl_stapling off;" with |why| as a comment.  Returns 1 when the
 * file changed, 0 when it already said that, -1 with errno on failure. */
int wout_write_snippet(const wcert *c, bool on, const char *why);

/* ---- watch_state.c: what is served, and the servers told so ---- */

/* The decision of one look at a certificate (pure: see watch_state.c). */
typedef enum wstep {
    WSTEP_NONE = 0,  /* nothing changed */
    WSTEP_PUBLISH,   /* a new response is served: write it, tell the servers */
    WSTEP_WITHDRAW,  /* the served response stopped being served */
    WSTEP_NOTE       /* still nothing served, for another reason */
} wstep;
wstep wstate_decide(const wcert *c, bool served_now, const unsigned char *md,
                    srvocsp_error why);
void wstate_reconcile(watch *w, wcert *c);
void wstate_event(watch *w, const wq_event *ev);
/* Every certificate due for a look (or all of them with |all|). */
void wstate_recheck(watch *w, bool all);

/* ---- watch_scan.c: finding certificates ---- */

void wscan(watch *w);
void wscan_drop(watch *w, int slot, const char *event);

/* ---- watch_metrics.c: the HTTP endpoint (libmicrohttpd) ---- */

typedef struct wmetrics wmetrics;
/* Listens on |spec| (HOST:PORT or PORT; loopback unless |any_address|).
 * NULL with the reason in |err|. */
wmetrics *wm_start(const char *spec, bool any_address, char *err, size_t errlen);
/* Replaces what the endpoint answers; takes |metrics| and |health|. */
void wm_publish(wmetrics *m, char *metrics, size_t mlen, char *health, size_t hlen,
                bool healthy);
void wm_stop(wmetrics *m);

/* ---- watch_notify.c: systemd readiness (Type=notify) ---- */

/* Sends |state| ("READY=1", "RELOADING=1", "STOPPING=1", "STATUS=...",
 * newline-separated) to $NOTIFY_SOCKET; nothing without one.  0 or an
 * errno; never blocks (a datagram to the service manager). */
int wnotify(const char *state);

/* ---- watch_opts.c: the options, one table ---- */

typedef struct wopts {
    bool once;
    long wait_s;
    bool status_only;
    bool help;
} wopts;
/* Parses the command line (and --config files); false after printing why. */
bool wopts_parse(watch *w, wopts *o, int argc, char **argv);
void wopts_usage(FILE *f);

#endif
