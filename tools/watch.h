/* srvocsp watch: what the command keeps per certificate, and what it does
 * to the servers (files, nginx snippets, hooks, HAProxy's runtime API). */
#ifndef SRVOCSP_WATCH_H
#define SRVOCSP_WATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "cli.h"

#define MAX_DIRS 16
#define MAX_CERTS 4096
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

typedef struct watch {
    const char *dirs[MAX_DIRS];
    int n_dirs;
    const char *on_update, *haproxy_socket, *status_file, *metrics, *state_dir;
    const char *store_url, *store_prefix; /* the fleet's shared store (docs/fleet.md) */
    long hook_timeout_s;         /* the hook's process group is killed past it */
    long min_validity_s;         /* 0: the library's default (600) */
    long url_timeout_s;          /* 0: the library's default (15) */
    bool adaptive;               /* --adaptive-min-validity */
    bool nginx_snippets;         /* write <cert>.stapling.conf */
    wwithdraw withdraw;
    bool json;
    bool quiet_outputs;          /* --once/--wait: no hooks, no HAProxy pushes */
    wcert *certs[MAX_CERTS];
    int n_certs;
    int event_pipe[2];
    int metrics_fd;
    /* metrics */
    unsigned long responses[3];  /* by status */
    wcount failures[MAX_REASONS], withdrawals[MAX_REASONS];
    int n_failures, n_withdrawals;
    uint64_t fallbacks_logged;   /* srvocsp_method_fallback ids logged so far */
} watch;

/* ---- watch_out.c: what watch does to the servers ---- */

/* Runs the --on-update hook for |c| with SRVOCSP_EVENT=|event| (updated,
 * revoked, withdrawn) and SRVOCSP_REASON=|reason| in its environment;
 * false with |why| when it failed or ran past --hook-timeout. */
bool wout_run_hook(const watch *w, const wcert *c, const char *event, const char *reason,
                   char *why, size_t whylen);
/* Sends "set ssl ocsp-response <base64>" and checks HAProxy's answer. */
bool wout_push_haproxy(const watch *w, const unsigned char *der, size_t len, char *answer,
                       size_t alen);
/* Makes <cert>.stapling.conf say "ssl_stapling on; ssl_stapling_file ...;"
 * (|on|) or "ssl_stapling off;" with |why| as a comment.  Returns 1 when the
 * file changed, 0 when it already said that, -1 with errno on failure. */
int wout_write_snippet(const wcert *c, bool on, const char *why);

#endif
