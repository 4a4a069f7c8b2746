/* The simulated world's state (sim_world.c, sim_run.c). */
#ifndef SRVOCSP_SIM_WORLD_H
#define SRVOCSP_SIM_WORLD_H

#include "sim.h"

#include <stdio.h>

#define SIM_TRACE 48
#define SIM_TRACE_LEN 200
#define SIM_MAX_CAS 4
#define SIM_MAX_PROCS 8
#define SIM_MAX_SPANS 64
/* The strictest client's rule (the engine's defaults), for the oracle. */
#define SIM_MIN_VALIDITY 600
#define SIM_SKEW 300
#define SIM_HORIZON (10 * 86400)

enum { SIM_FAULT_REFUSE = 1, SIM_FAULT_HANG = 2, SIM_FAULT_TRYLATER = 3 };

typedef struct sim_span {
    int64_t from, until;
    int kind;
} sim_span;

typedef struct sim_ca {
    tp_cert ca;
    int64_t window;              /* validity of its responses */
    bool presigned;              /* thisUpdate on the hour, same bytes all hour (a CDN) */
    int64_t clock_off;           /* its clock's error */
    sim_span faults[SIM_MAX_SPANS];
    unsigned n_faults;
    sim_span lagging[SIM_MAX_SPANS];
    unsigned n_lagging;
} sim_ca;

typedef struct sim_cert {
    tp_cert cert;
    int ca;
    int64_t issued;              /* opened by the fleet from then */
    int64_t unknown_s;           /* the responder does not know it that long */
    int64_t revoked_at;          /* 0: never */
    int64_t best_nu;             /* the latest nextUpdate the CA produced */
    unsigned char *cache_der;    /* the CDN's bytes for the hour */
    size_t cache_len;
    int64_t cache_tu;
    srvocsp_cert_status cache_status;
    uint64_t requests;
    int64_t mixed_since;         /* the fleet staples revoked and good since */
} sim_cert;

typedef struct sim_seen {
    int64_t tu;                  /* last served thisUpdate, 0 none */
    int64_t nu;
    srvocsp_cert_status status;
    int64_t revoked_tu;          /* thisUpdate of a revoked response served, 0 none */
    int64_t first_revoked;       /* when it first served revoked */
    int64_t gap_from;            /* start of a gap without a staple while obtainable */
    int64_t recv_revoked_tu;     /* the newest revoked response the responder gave it */
    int64_t recv_revoked_pa;     /* ... the latest producedAt of one */
    int64_t recv_at;             /* when it was first given one */
    int64_t pa;                  /* producedAt of what it serves */
    bool serving;                /* it stapled at the last look */
    /* What the engine last published for it (its update callback). */
    int64_t pub_tu, pub_nu;      /* 0: nothing yet */
    srvocsp_cert_status pub_status;
} sim_seen;

/* The update callback's argument: which process, which certificate. */
typedef struct sim_watch {
    struct sim_proc *p;
    int ci;
} sim_watch;

typedef struct sim_proc {
    struct sim_world *w;
    int id;
    unsigned generation;
    srvocsp_engine *eng;
    srvocsp_clock clock;
    srvocsp_transport transport;
    int64_t clock_off;           /* the host's clock error now */
    int64_t clock_ok_since;      /* its clock right since (true time) */
    int64_t started;             /* this generation's start (true time) */
    char store_url[32];
    char dir[160];               /* its persistence directory (kept over a restart or not) */
    srvocsp_handle **h;
    sim_seen *seen;
    sim_watch *watch;
} sim_proc;

typedef struct sim_delivery {
    int64_t at;
    uint64_t seq;
    sim_proc *proc;
    srvocsp_http_done_fn done;
    void *arg;
    srvocsp_error err;
    long status;
    unsigned char *der;
    size_t len;
} sim_delivery;

typedef struct sim_issued_slot {
    uint64_t hash;
    sim_issued rec;
} sim_issued_slot;

/* What happens when: the timeline drawn from the seed. */
enum {
    EV_CLOCK_STEP = 1,   /* proc a, by b seconds (b = 0: set right again) */
    EV_RESTART,          /* proc a */
    EV_REVOKE,           /* cert a */
    EV_ISSUE,            /* cert a comes into service */
    EV_STORE_DOWN,       /* b = 1 down, 0 up */
    EV_FAILOVER,         /* b writes lost */
    EV_FORK,             /* proc a forks; its child carries on (b: the child's salt) */
};

typedef struct sim_event {
    int64_t at;
    int type;
    int a;
    int64_t b;
} sim_event;

typedef struct sim_figures {
    uint64_t handshakes, obtainable, served, served_obtainable;
    uint64_t requests;
    int64_t worst_gap;
    uint64_t restarts, forks, clock_steps, store_faults; /* the field's events */
    double prop[4096];           /* revocation propagation delays (s) */
    unsigned n_prop;
} sim_figures;

struct sim_world {
    uint64_t seed;
    sim_rng rng;
    int64_t t0, now, end;
    bool fleet;
    char root[128];              /* the processes' directories, removed at the end */
    int64_t lag_s;               /* a lagging replica's delay */
    int plant;                   /* planted defect, for the oracle's own test */
    sim_ca cas[SIM_MAX_CAS];
    int n_cas;
    sim_cert *certs;
    int n_certs;
    sim_proc procs[SIM_MAX_PROCS];
    int n_procs;
    sim_store_hub *hub;
    sim_span store_down[SIM_MAX_SPANS];
    unsigned n_store_down;
    sim_event *events;
    size_t n_events, next_event;
    sim_delivery *deliv;
    size_t n_deliv, cap_deliv;
    uint64_t deliv_seq;
    sim_issued_slot *issued;
    size_t n_issued, cap_issued;
    uint64_t requests, signed_n;
    sim_figures fig;
    bool breached;
    char breach_why[600];
    char trace[SIM_TRACE][SIM_TRACE_LEN];
    unsigned trace_n;
    bool verbose;
};

void sim_trace(sim_world *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sim_print_breach(sim_world *w, FILE *f);
void sim_breach(sim_world *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* sim_check.c: the oracle at a sample (every process, every certificate),
 * and between samples for revoked certificates (fleet agreement). */
void sim_sample(sim_world *w);
void sim_watch_revoked(sim_world *w);
bool sim_deliver_due(sim_world *w);
int64_t sim_next_delivery(const sim_world *w);
void sim_proc_start(sim_world *w, sim_proc *p);
void sim_proc_stop(sim_world *w, sim_proc *p);
void sim_proc_open_new(sim_world *w, int ci);
/* The process forks and its child carries on serving (the parent stops):
 * the library's child side of fork() for its engine, the parent's answers
 * in flight lost, the store's unread announcements lost. */
void sim_proc_fork(sim_world *w, sim_proc *p, uint64_t salt);

/* sim_run.c */
typedef struct sim_opts {
    uint64_t seed;
    int certs, cas, procs;
    int64_t days;
    int plant;                   /* 0: none */
    bool no_forks;
    bool verbose;
} sim_opts;

/* Runs one seed; true when the oracle found no breach.  |fig| gets the
 * figures (added to). */
bool sim_run(const sim_opts *o, sim_figures *fig, FILE *report);

#endif
