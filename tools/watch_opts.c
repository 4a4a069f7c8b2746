/*
 * srvocsp watch: its options.  One table serves the command line (long and
 * short names) and the configuration file (key = value, the long names):
 * every value goes through the same parser and the same bounds, and a
 * wrong one is refused by name.
 */
#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "watch.h"

typedef enum okind {
    O_STR,       /* a string kept as given */
    O_BOOL,      /* a flag; "yes"/"true"/"1" in the configuration file */
    O_RANGE,     /* a long within [lo, hi] */
    O_DIR,       /* --dir, repeatable */
    O_WITHDRAW,  /* keep | empty */
    O_CONFIG,    /* --config FILE (command line only) */
    O_RUN        /* options of one run, not configuration */
} okind;

typedef struct wopt {
    const char *name;
    char shortname;
    okind kind;
    size_t off;                  /* into watch (O_STR, O_BOOL, O_RANGE) */
    long lo, hi;
    const char *unit;
} wopt;

#define W(f) offsetof(watch, f)
static const wopt table[] = {
    {"dir", 'd', O_DIR, 0, 0, 0, NULL},
    {"config", 'c', O_CONFIG, 0, 0, 0, NULL},
    {"on-update", 'u', O_STR, W(on_update), 0, 0, NULL},
    {"on-batch", 0, O_STR, W(on_batch), 0, 0, NULL},
    {"haproxy-socket", 'H', O_STR, W(haproxy_socket), 0, 0, NULL},
    {"status-file", 's', O_STR, W(status_file), 0, 0, NULL},
    {"metrics", 'm', O_STR, W(metrics), 0, 0, NULL},
    {"state-dir", 'S', O_STR, W(state_dir), 0, 0, NULL},
    {"store", 0, O_STR, W(store_url), 0, 0, NULL},
    {"store-prefix", 0, O_STR, W(store_prefix), 0, 0, NULL},
    {"json", 'j', O_BOOL, W(json), 0, 0, NULL},
    {"adaptive-min-validity", 0, O_BOOL, W(adaptive), 0, 0, NULL},
    {"nginx-snippets", 0, O_BOOL, W(nginx_snippets), 0, 0, NULL},
    {"metrics-any-address", 0, O_BOOL, W(metrics_any_address), 0, 0, NULL},
    {"hook-timeout", 0, O_RANGE, W(hook_timeout_s), 1, 86400, "seconds"},
    {"hook-jobs", 0, O_RANGE, W(hook_jobs), 1, 64, "commands"},
    {"batch-delay", 0, O_RANGE, W(batch_delay_ms), 10, 600000, "milliseconds"},
    {"min-validity", 0, O_RANGE, W(min_validity_s), 1, 86400, "seconds"},
    {"url-timeout", 0, O_RANGE, W(url_timeout_s), 1, 300, "seconds"},
    {"withdrawn-file", 0, O_WITHDRAW, 0, 0, 0, NULL},
    {"once", '1', O_RUN, 0, 0, 0, NULL},
    {"wait", 0, O_RUN, 0, 1, 86400, "seconds"},
    {"status", 'T', O_RUN, 0, 0, 0, NULL},
    {"help", 'h', O_RUN, 0, 0, 0, NULL},
};
#undef W
#define N_OPTS (sizeof(table) / sizeof(table[0]))

static char *trim(char *s)
{
    char *e;

    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
        *--e = '\0';
    return s;
}

static bool parse_range(const char *v, long lo, long hi, long *out)
{
    char *end;
    long n;

    errno = 0;
    n = strtol(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || n < lo || n > hi)
        return false;
    *out = n;
    return true;
}

static bool read_config(watch *w, const char *path);

/* Applies |o| = |v| (NULL for a flag on the command line); |v| is kept.
 * |run| is NULL in a configuration file, where options of one run are not
 * allowed.  Prints what is wrong (prefixed by |where|) and returns false. */
static bool apply(watch *w, wopts *run, const wopt *o, char *v, const char *where)
{
    char *base = (char *)w;

    switch (o->kind) {
    case O_STR:
        *(const char **)(base + o->off) = v;
        return true;
    case O_BOOL:
        *(bool *)(base + o->off) =
            v == NULL || strcmp(v, "yes") == 0 || strcmp(v, "true") == 0 || strcmp(v, "1") == 0;
        return true;
    case O_RANGE:
        if (!parse_range(v, o->lo, o->hi, (long *)(base + o->off))) {
            fprintf(stderr, "srvocsp watch: %s%s must be %ld to %ld %s, not '%s'\n", where,
                    o->name, o->lo, o->hi, o->unit, v);
            return false;
        }
        return true;
    case O_DIR:
        if (w->n_dirs == MAX_DIRS) {
            fprintf(stderr, "srvocsp watch: %smore than %d folders\n", where, MAX_DIRS);
            return false;
        }
        w->dirs[w->n_dirs++] = v;
        return true;
    case O_WITHDRAW:
        if (strcmp(v, "keep") == 0)
            w->withdraw = WITHDRAW_KEEP;
        else if (strcmp(v, "empty") == 0)
            w->withdraw = WITHDRAW_EMPTY;
        else {
            fprintf(stderr, "srvocsp watch: %swithdrawn-file must be keep or empty, not '%s'\n",
                    where, v);
            return false;
        }
        return true;
    case O_CONFIG:
        if (run == NULL)
            break;
        return read_config(w, v);
    case O_RUN:
        if (run == NULL)
            break;
        if (strcmp(o->name, "wait") == 0) {
            if (!parse_range(v, o->lo, o->hi, &run->wait_s)) {
                fprintf(stderr, "srvocsp watch: %swait must be %ld to %ld %s, not '%s'\n", where,
                        o->lo, o->hi, o->unit, v);
                return false;
            }
        } else if (strcmp(o->name, "once") == 0) {
            run->once = true;
        } else if (strcmp(o->name, "status") == 0) {
            run->status_only = true;
        } else {
            run->help = true;
        }
        return true;
    }
    fprintf(stderr, "srvocsp watch: %s%s is not a configuration key\n", where, o->name);
    return false;
}

static const wopt *find(const char *name)
{
    for (size_t i = 0; i < N_OPTS; i++)
        if (strcmp(table[i].name, name) == 0)
            return &table[i];
    return NULL;
}

static bool read_config(watch *w, const char *path)
{
    FILE *f = fopen(path, "r");
    char line[4096], where[4200];
    int n = 0;
    bool ok = true;

    if (f == NULL) {
        fprintf(stderr, "srvocsp watch: cannot read %s: %s\n", path, strerror(errno));
        return false;
    }
    while (ok && fgets(line, sizeof(line), f)) {
        char *k = trim(line), *eq, *v;
        const wopt *o;

        n++;
        if (*k == '#' || *k == '\0')
            continue;
        snprintf(where, sizeof(where), "%s:%d: ", path, n);
        eq = strchr(k, '=');
        if (eq == NULL) {
            fprintf(stderr, "srvocsp watch: %sexpected key = value\n", where);
            ok = false;
            break;
        }
        *eq = '\0';
        k = trim(k);
        if ((o = find(k)) == NULL) {
            fprintf(stderr, "srvocsp watch: %sunknown key '%s'\n", where, k);
            ok = false;
            break;
        }
        if ((v = strdup(trim(eq + 1))) == NULL) {
            ok = false;
            break;
        }
        /* Options of one run (--once, --wait) are not configuration. */
        ok = apply(w, NULL, o, v, where);
    }
    fclose(f);
    return ok;
}

bool wopts_parse(watch *w, wopts *o, int argc, char **argv)
{
    struct option longs[N_OPTS + 1];
    char shorts[2 * N_OPTS + 1];
    size_t i, s = 0;
    int c, idx;

    memset(longs, 0, sizeof(longs));
    for (i = 0; i < N_OPTS; i++) {
        const wopt *t = &table[i];
        bool arg = t->kind != O_BOOL && !(t->kind == O_RUN && strcmp(t->name, "wait") != 0);

        longs[i].name = t->name;
        longs[i].has_arg = arg ? required_argument : no_argument;
        longs[i].val = 256 + (int)i;
        if (t->shortname && t->shortname != '1') {
            shorts[s++] = t->shortname;
            if (arg)
                shorts[s++] = ':';
        }
    }
    shorts[s] = '\0';
    optind = 1;
    while ((c = getopt_long(argc, argv, shorts, longs, &idx)) != -1) {
        const wopt *t = NULL;

        if (c >= 256)
            t = &table[c - 256];
        else
            for (i = 0; i < N_OPTS && t == NULL; i++)
                if (table[i].shortname == c)
                    t = &table[i];
        if (t == NULL) {
            wopts_usage(stderr);
            return false;
        }
        if (!apply(w, o, t, t->kind == O_BOOL ? NULL : optarg, "--"))
            return false;
    }
    if (o->help || o->status_only)
        return true;
    /* Refused now, by name, rather than by every certificate's open. */
    if (w->store_url != NULL && srvocsp_store_url_check(w->store_url) != SRVOCSP_OK) {
        fprintf(stderr, "srvocsp watch: --store: %s\n", srvocsp_last_error_text());
        return false;
    }
    if (w->n_dirs == 0 || optind != argc || (o->once && o->wait_s)) {
        if (o->once && o->wait_s)
            fprintf(stderr, "srvocsp watch: --once and --wait exclude each other\n");
        wopts_usage(stderr);
        return false;
    }
    return true;
}

void wopts_usage(FILE *f)
{
    fprintf(f,
            "usage: srvocsp watch --dir DIR [--dir DIR ...] [--config FILE]\n"
            "                     [--on-update CMD] [--hook-jobs N (4)]\n"
            "                     [--on-batch CMD] [--batch-delay MS (1000)]\n"
            "                     [--hook-timeout SECONDS (30)] [--haproxy-socket PATH]\n"
            "                     [--state-dir DIR] [--status-file FILE] [--json]\n"
            "                     [--metrics [127.0.0.1:]PORT] [--metrics-any-address]\n"
            "                     [--nginx-snippets] [--withdrawn-file keep|empty]\n"
            "                     [--min-validity SECONDS (600)] [--adaptive-min-validity]\n"
            "                     [--url-timeout SECONDS (15)] [--once | --wait SECONDS]\n"
            "                     [--store redis://[user:password@]host:port[/db] | unix:///PATH\n"
            "                      | redis-sentinel://[user:password@]host[:port][,host[:port]...]"
            "[/db]#MASTER]\n"
            "                     [--store-prefix PREFIX (srvocsp:)]\n"
            "       srvocsp watch --status --status-file FILE\n"
            "\n"
            "Finds certificate files (*.pem, *.crt: the certificate then its chain, or a\n"
            "separate <file>.issuer as HAProxy uses) and keeps <file>.ocsp fresh with verified,\n"
            "time-valid responses.  On each new response, and when a response stops being\n"
            "servable: runs CMD with SRVOCSP_EVENT, SRVOCSP_CERT_FILE, SRVOCSP_OCSP_FILE,\n"
            "SRVOCSP_STATUS and SRVOCSP_REASON in its environment (up to --hook-jobs at once),\n"
            "runs the --on-batch CMD once for all files changed within --batch-delay (their\n"
            "list on its input and in SRVOCSP_BATCH_FILE), and/or pushes the response to\n"
            "HAProxy's runtime API.  --metrics serves GET /metrics and GET /healthz.\n"
            "--once fetches every certificate once and exits 0 when each has a servable\n"
            "response, 1 otherwise; --wait SECONDS waits up to that long for all of them.\n"
            "SIGHUP rescans, SIGUSR1 refreshes every certificate now, SIGTERM/SIGINT stop.\n"
            "See docs/watch.md.\n");
}
