/*
 * srvocsp watch: the operator's commands, run beside the loop.
 *
 * --on-update CMD runs once per changed certificate, at most --hook-jobs
 * at a time, never two at once for one certificate; a change that arrives
 * while the certificate's command waits to start replaces it (the command
 * reads the latest state anyway), one that arrives while it runs queues one
 * more run.  --on-batch CMD runs once for every certificate that changed
 * since the last run, when no change came for --batch-delay ms (or ten
 * times that after the first change, so a steady stream cannot postpone it
 * for ever), one run at a time: one reload for a whole directory.
 *
 * Every command runs in its own process group (so a timeout reaches what
 * sh started) with the certificate's names in its environment, never
 * spliced into the command.  Past --hook-timeout the group gets SIGTERM,
 * two seconds later SIGKILL.  The loop is never held: commands are started
 * with posix_spawn and reaped when SIGCHLD wakes the loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "watch.h"

extern char **environ;

#define KILL_GRACE_MS 2000
#define BATCH_MAX_FACTOR 10

typedef struct hslot {
    bool queued, running, again;
    bool in_batch;
    char event[16];
    char reason[64];
    char batch_event[16];
} hslot;

typedef struct hjob {
    pid_t pid;
    int slot;                    /* -1: the batch command */
    int64_t deadline_ms;
    int stage;                   /* 0 running, 1 SIGTERM sent, 2 SIGKILL sent */
    char *list_path;             /* the batch's list, removed when it ends */
} hjob;

struct whooks {
    hslot *s;
    int cap;
    int *ring, head, count;      /* certificates waiting for --on-update */
    hjob *jobs;
    int n_jobs;
    int *batch;                  /* certificates changed since the last batch */
    int n_batch;
    int64_t batch_first_ms, batch_last_ms;
    hjob bjob;
    bool brunning;
};

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

whooks *wh_new(void)
{
    return calloc(1, sizeof(whooks));
}

void wh_free(whooks *h)
{
    if (h == NULL)
        return;
    free(h->s);
    free(h->ring);
    free(h->jobs);
    free(h->batch);
    free(h);
}

static bool reserve(whooks *h, int n, long jobs)
{
    hslot *s;
    int *r, *b;

    if (h->jobs == NULL && (h->jobs = calloc((size_t)jobs, sizeof(hjob))) == NULL)
        return false;
    if (n <= h->cap)
        return true;
    n = n < 64 ? 64 : n;
    if ((s = realloc(h->s, (size_t)n * sizeof(*s))) == NULL)
        return false;
    h->s = s;
    memset(s + h->cap, 0, (size_t)(n - h->cap) * sizeof(*s));
    if ((r = malloc((size_t)n * sizeof(*r))) == NULL || (b = realloc(h->batch, (size_t)n * sizeof(*b))) == NULL) {
        free(r);
        return false;
    }
    for (int i = 0; i < h->count; i++)
        r[i] = h->ring[(h->head + i) % h->cap];
    free(h->ring);
    h->ring = r;
    h->head = 0;
    h->batch = b;
    h->cap = n;
    return true;
}

static void push(whooks *h, int slot)
{
    h->ring[(h->head + h->count++) % h->cap] = slot;
    h->s[slot].queued = true;
}

void wh_changed(watch *w, const wcert *c, const char *event, const char *reason)
{
    whooks *h = w->hooks;
    hslot *s;

    if (h == NULL || w->quiet_outputs || !reserve(h, w->cap_certs, w->hook_jobs))
        return;
    s = &h->s[c->slot];
    if (w->on_update) {
        snprintf(s->event, sizeof(s->event), "%s", event);
        snprintf(s->reason, sizeof(s->reason), "%s", reason ? reason : "");
        if (s->running)
            s->again = true;
        else if (!s->queued)
            push(h, c->slot);
    }
    if (w->on_batch) {
        int64_t t = now_ms();

        snprintf(s->batch_event, sizeof(s->batch_event), "%s", event);
        if (!s->in_batch) {
            s->in_batch = true;
            h->batch[h->n_batch++] = c->slot;
        }
        if (h->n_batch == 1)
            h->batch_first_ms = t;
        h->batch_last_ms = t;
    }
}

void wh_forget(watch *w, int slot)
{
    whooks *h = w->hooks;
    int i, n = 0;

    if (h == NULL || slot >= h->cap)
        return;
    if (h->s[slot].queued) {
        for (i = 0; i < h->count; i++) {
            int j = h->ring[(h->head + i) % h->cap];

            if (j != slot)
                h->ring[(h->head + n++) % h->cap] = j;
        }
        h->count = n;
    }
    if (h->s[slot].in_batch) {
        for (i = 0, n = 0; i < h->n_batch; i++)
            if (h->batch[i] != slot)
                h->batch[n++] = h->batch[i];
        h->n_batch = n;
    }
    /* A running command ends on its own; its slot is simply not rerun. */
    h->s[slot].queued = h->s[slot].again = h->s[slot].in_batch = false;
}

/* environ without our own names, then |add| (NULL-terminated). */
static char **make_env(char **add)
{
    size_t n = 0, k = 0, a = 0;
    char **env;

    while (environ[n])
        n++;
    while (add[a])
        a++;
    env = calloc(n + a + 1, sizeof(*env));
    if (env == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "SRVOCSP_", 8) != 0)
            env[k++] = environ[i];
    for (size_t i = 0; i < a; i++)
        env[k++] = add[i];
    return env;
}

/* Starts `sh -c cmd` in its own process group with |add| in its
 * environment and |stdin_fd| (or /dev/null's fd 0 as inherited) as input. */
static pid_t spawn(const char *cmd, char **add, int stdin_fd, char *why, size_t whylen)
{
    posix_spawnattr_t at;
    posix_spawn_file_actions_t fa;
    sigset_t none, def;
    char **env = make_env(add);
    char *argv[] = {"sh", "-c", (char *)cmd, NULL};
    pid_t pid = -1;
    int err;

    if (env == NULL) {
        snprintf(why, whylen, "%s: out of memory", cmd);
        return -1;
    }
    posix_spawnattr_init(&at);
    posix_spawn_file_actions_init(&fa);
    sigemptyset(&none);
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE); /* watch ignores it; the command should not */
    sigaddset(&def, SIGHUP);
    sigaddset(&def, SIGUSR1);
    sigaddset(&def, SIGTERM);
    sigaddset(&def, SIGINT);
    sigaddset(&def, SIGCHLD);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &def);
    posix_spawnattr_setpgroup(&at, 0);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);
    if (stdin_fd >= 0)
        posix_spawn_file_actions_adddup2(&fa, stdin_fd, 0);
    err = posix_spawn(&pid, "/bin/sh", &fa, &at, argv, env);
    if (err != 0) {
        snprintf(why, whylen, "%s: cannot start: %s", cmd, strerror(err));
        pid = -1;
    }
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    free(env);
    return pid;
}

static void hook_failed(watch *w, const wcert *c, const char *why)
{
    w->hook_failures++;
    w->metrics_dirty = true;
    wlog(w, "hook-failed", c, why, 0);
}

static void start_one(watch *w, whooks *h)
{
    int slot = h->ring[h->head];
    hslot *s = &h->s[slot];
    const wcert *c = w->certs[slot];
    char v[6][4200], *add[7], why[600];
    int n = 0;
    pid_t pid;

    h->head = (h->head + 1) % h->cap;
    h->count--;
    s->queued = false;
    if (c == NULL)
        return;
    snprintf(v[0], sizeof(v[0]), "SRVOCSP_CERT_FILE=%s", c->path);
    snprintf(v[1], sizeof(v[1]), "SRVOCSP_OCSP_FILE=%s", c->ocsp_path);
    snprintf(v[2], sizeof(v[2]), "SRVOCSP_STATUS=%s",
             c->served ? cli_status_name(c->status) : "none");
    snprintf(v[3], sizeof(v[3]), "SRVOCSP_EVENT=%s", s->event);
    snprintf(v[4], sizeof(v[4]), "SRVOCSP_REASON=%s", s->reason);
    for (n = 0; n < 5; n++)
        add[n] = v[n];
    if (c->snippet_path) {
        snprintf(v[5], sizeof(v[5]), "SRVOCSP_SNIPPET_FILE=%s", c->snippet_path);
        add[n++] = v[5];
    }
    add[n] = NULL;
    pid = spawn(w->on_update, add, -1, why, sizeof(why));
    if (pid < 0) {
        hook_failed(w, c, why);
        return;
    }
    w->hook_runs++;
    w->metrics_dirty = true;
    s->running = true;
    h->jobs[h->n_jobs++] = (hjob){pid, slot, now_ms() + w->hook_timeout_s * 1000, 0, NULL};
}

/* The batch list: one line per certificate, "EVENT<TAB>CERT<TAB>OCSP". */
static void start_batch(watch *w, whooks *h)
{
    const char *tmp = getenv("TMPDIR");
    char path[4200], count[64], file[4300], why[4800], *add[4];
    FILE *f;
    int fd, n = 0;
    pid_t pid;

    snprintf(path, sizeof(path), "%s/srvocsp-batch-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    fd = mkstemp(path);
    if (fd < 0 || (f = fdopen(fd, "w+")) == NULL) {
        snprintf(why, sizeof(why), "%s: cannot write its list in %s: %s", w->on_batch, path,
                 strerror(errno));
        if (fd >= 0)
            close(fd);
        hook_failed(w, NULL, why);
        /* Tried again after a full delay, not at every pass. */
        h->batch_first_ms = h->batch_last_ms = now_ms();
        return;
    }
    for (int i = 0; i < h->n_batch; i++) {
        hslot *s = &h->s[h->batch[i]];
        const wcert *c = w->certs[h->batch[i]];

        s->in_batch = false;
        if (c == NULL)
            continue;
        fprintf(f, "%s\t%s\t%s\n", s->batch_event, c->path, c->ocsp_path);
        n++;
    }
    h->n_batch = 0;
    h->batch_first_ms = h->batch_last_ms = 0;
    fflush(f);
    lseek(fd, 0, SEEK_SET);
    snprintf(count, sizeof(count), "SRVOCSP_BATCH_COUNT=%d", n);
    snprintf(file, sizeof(file), "SRVOCSP_BATCH_FILE=%s", path);
    add[0] = "SRVOCSP_EVENT=batch";
    add[1] = count;
    add[2] = file;
    add[3] = NULL;
    pid = spawn(w->on_batch, add, fd, why, sizeof(why));
    fclose(f);
    if (pid < 0) {
        unlink(path);
        hook_failed(w, NULL, why);
        return;
    }
    w->batch_runs++;
    w->metrics_dirty = true;
    h->brunning = true;
    h->bjob = (hjob){pid, -1, now_ms() + w->hook_timeout_s * 1000, 0, strdup(path)};
}

/* true when |j| ended (reaped and reported). */
static bool tend(watch *w, hjob *j, int64_t t)
{
    const char *cmd = j->slot < 0 ? w->on_batch : w->on_update;
    const wcert *c = j->slot >= 0 ? w->certs[j->slot] : NULL;
    char why[600];
    int status = 0;
    pid_t r = waitpid(j->pid, &status, WNOHANG);

    if (r == 0) {
        if (t < j->deadline_ms)
            return false;
        /* Past its time: TERM, then KILL, to the whole group. */
        kill(-j->pid, j->stage == 0 ? SIGTERM : SIGKILL);
        if (j->stage < 2)
            j->stage++;
        j->deadline_ms = t + KILL_GRACE_MS;
        return false;
    }
    if (j->stage > 0) {
        kill(-j->pid, SIGKILL); /* what the shell started and left behind */
        snprintf(why, sizeof(why), "%s: still running after %ld s, stopped", cmd,
                 w->hook_timeout_s);
        hook_failed(w, c, why);
    } else if (r > 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        if (WIFEXITED(status))
            snprintf(why, sizeof(why), "%s: exit status %d", cmd, WEXITSTATUS(status));
        else
            snprintf(why, sizeof(why), "%s: killed by signal %d", cmd,
                     WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        hook_failed(w, c, why);
    }
    if (j->list_path) {
        unlink(j->list_path);
        free(j->list_path);
        j->list_path = NULL;
    }
    return true;
}

long wh_run(watch *w)
{
    whooks *h = w->hooks;
    int64_t t = now_ms(), next = -1;
    int i, n;

    if (h == NULL)
        return -1;
    for (i = 0, n = 0; i < h->n_jobs; i++) {
        hjob *j = &h->jobs[i];

        if (tend(w, j, t)) {
            hslot *s = &h->s[j->slot];

            s->running = false;
            if (s->again) {
                s->again = false;
                push(h, j->slot);
            }
            continue;
        }
        h->jobs[n++] = *j;
    }
    h->n_jobs = n;
    /* Files first: while engine events wait, one command starts per pass
     * (each start costs the loop a process creation), so thousands of
     * hooks cannot hold up the files they are about; they still move. */
    for (int started = 0; h->count > 0 && h->n_jobs < w->hook_jobs &&
                          !(w->backlog && started > 0);
         started++)
        start_one(w, h);
    if (h->brunning && tend(w, &h->bjob, t))
        h->brunning = false;
    if (!h->brunning && h->n_batch > 0) {
        int64_t due = h->batch_last_ms + w->batch_delay_ms;
        int64_t cap = h->batch_first_ms + BATCH_MAX_FACTOR * w->batch_delay_ms;

        if (cap < due)
            due = cap;
        if (t >= due)
            start_batch(w, h);
        else
            next = due - t;
    }
    /* Deadlines of what runs; its end arrives as SIGCHLD on its own. */
    for (i = 0; i < h->n_jobs; i++)
        if (next < 0 || h->jobs[i].deadline_ms - t < next)
            next = h->jobs[i].deadline_ms - t;
    if (h->brunning && (next < 0 || h->bjob.deadline_ms - t < next))
        next = h->bjob.deadline_ms - t;
    return next < 0 ? -1 : next < 1 ? 1 : (long)next;
}

void wh_stop(watch *w)
{
    whooks *h = w->hooks;
    struct timespec nap = {0, 20 * 1000000L};
    int64_t until = now_ms() + KILL_GRACE_MS;

    if (h == NULL)
        return;
    h->count = 0;
    h->n_batch = 0;
    /* Running commands get a moment to finish, then their groups are ended. */
    while ((h->n_jobs > 0 || h->brunning) && now_ms() < until + 2 * KILL_GRACE_MS) {
        if (now_ms() >= until) {
            for (int i = 0; i < h->n_jobs; i++)
                if (h->jobs[i].stage == 0)
                    h->jobs[i].deadline_ms = 0;
            if (h->brunning && h->bjob.stage == 0)
                h->bjob.deadline_ms = 0;
        }
        wh_run(w);
        if (h->n_jobs > 0 || h->brunning)
            nanosleep(&nap, NULL);
    }
}
