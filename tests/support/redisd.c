/* A real redis-server for tests (see redisd.h). */
#include "redisd.h"
#include "peers.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define REDIS_BIN "redis-server"

bool tr_redis_available(void)
{
    const char *path = getenv("PATH");
    char dir[4096], bin[4200];

    /* Looked up on PATH, not run: the answer must not depend on the load. */
    while (path != NULL && *path != '\0') {
        size_t n = strcspn(path, ":");

        snprintf(dir, sizeof(dir), "%.*s", (int)n, path);
        snprintf(bin, sizeof(bin), "%s/%s", n ? dir : ".", REDIS_BIN);
        if (access(bin, X_OK) == 0)
            return true;
        path += n;
        if (*path == ':')
            path++;
    }
    return false;
}

static redisContext *connect_admin(tr_redis *r)
{
    struct timeval tv = {1, 0};
    redisContext *c;
    redisReply *rep;

    c = r->opts.tcp ? redisConnectWithTimeout("127.0.0.1", r->port, tv)
                    : redisConnectUnixWithTimeout(r->sock, tv);
    if (c == NULL || c->err) {
        if (c)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    if (r->opts.password) {
        rep = redisCommand(c, "AUTH %s", r->opts.password);
        if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
            if (rep)
                freeReplyObject(rep);
            redisFree(c);
            return NULL;
        }
        freeReplyObject(rep);
    }
    return c;
}

static bool wait_ready(tr_redis *r)
{
    int i;

    for (i = 0; i < 250; i++) {
        redisContext *c = connect_admin(r);

        if (c != NULL) {
            redisReply *rep = redisCommand(c, "PING");
            bool ok = rep && rep->type == REDIS_REPLY_STATUS;

            if (rep)
                freeReplyObject(rep);
            redisFree(c);
            if (ok)
                return true;
        }
        if (waitpid(r->pid, NULL, WNOHANG) == r->pid) {
            r->pid = 0;
            return false;
        }
        tr_sleep_ms(20);
    }
    return false;
}

static bool spawn(tr_redis *r)
{
    pid_t parent = getpid();
    pid_t pid = fork();

    if (pid < 0)
        return false;
    if (pid == 0) {
        char log[700];
        FILE *f;

        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        snprintf(log, sizeof(log), "%s/redis.log", r->dir);
        f = freopen(log, "a", stdout);
        (void)f;
        dup2(1, 2);
        if (r->opts.sentinel_of)
            execlp(REDIS_BIN, REDIS_BIN, r->conf, "--sentinel", (char *)NULL);
        else
            execlp(REDIS_BIN, REDIS_BIN, r->conf, (char *)NULL);
        _exit(127);
    }
    r->pid = pid;
    r->stopped = false;
    return wait_ready(r);
}

bool tr_redis_start(tr_redis *r, const tr_redis_opts *o)
{
    char *dir;
    FILE *f;

    memset(r, 0, sizeof(*r));
    r->opts = *o;
    dir = tr_tmpdir("redis");
    if (dir == NULL)
        return false;
    snprintf(r->dir, sizeof(r->dir), "%s", dir);
    free(dir);
    snprintf(r->sock, sizeof(r->sock), "%s/redis.sock", r->dir);
    snprintf(r->conf, sizeof(r->conf), "%s/redis.conf", r->dir);
    if (o->tcp)
        r->port = tr_free_port();
    f = fopen(r->conf, "w");
    if (f == NULL)
        return false;
    if (o->sentinel_of) {
        /* Sentinel rewrites its file: it lives in the server's directory. */
        fprintf(f, "bind 127.0.0.1\nport %d\nprotected-mode no\ndaemonize no\ndir %s\n"
                   "logfile \"\"\nsentinel monitor %s 127.0.0.1 %d 2\n"
                   "sentinel down-after-milliseconds %s 1000\n"
                   "sentinel failover-timeout %s 5000\n",
                r->port, r->dir, o->master_name, o->sentinel_of, o->master_name, o->master_name);
        fclose(f);
        snprintf(r->url, sizeof(r->url), "redis-sentinel://127.0.0.1:%d#%s", r->port,
                 o->master_name);
        return spawn(r);
    }
    fprintf(f, "bind 127.0.0.1\nport %d\nprotected-mode no\nsave \"\"\nappendonly no\n"
               "daemonize no\ndir %s\nlogfile \"\"\n",
            o->tcp ? r->port : 0, r->dir);
    if (o->replica_of)
        fprintf(f, "replicaof 127.0.0.1 %d\n", o->replica_of);
    if (o->unix_socket)
        fprintf(f, "unixsocket %s\nunixsocketperm 700\n", r->sock);
    if (o->password)
        fprintf(f, "requirepass %s\n", o->password);
    if (o->acl_user)
        fprintf(f, "user %s on >%s ~* &* +@all\n", o->acl_user,
                o->acl_password ? o->acl_password : "");
    fclose(f);
    if (o->tcp)
        snprintf(r->url, sizeof(r->url), "redis://%s%s%s127.0.0.1:%d", o->password ? ":" : "",
                 o->password ? o->password : "", o->password ? "@" : "", r->port);
    else
        snprintf(r->url, sizeof(r->url), "unix://%s%s%s%s", o->password ? ":" : "",
                 o->password ? o->password : "", o->password ? "@" : "", r->sock);
    return spawn(r);
}

static void reap(tr_redis *r, int sig)
{
    int i;

    if (r->pid <= 0)
        return;
    if (r->stopped)
        kill(r->pid, SIGCONT);
    kill(r->pid, sig);
    for (i = 0; i < 300; i++) {
        if (waitpid(r->pid, NULL, WNOHANG) == r->pid) {
            r->pid = 0;
            return;
        }
        tr_sleep_ms(10);
    }
    kill(r->pid, SIGKILL);
    waitpid(r->pid, NULL, 0);
    r->pid = 0;
}

void tr_redis_kill(tr_redis *r)
{
    reap(r, SIGKILL);
    r->stopped = false;
}

bool tr_redis_restart(tr_redis *r)
{
    tr_redis_kill(r);
    unlink(r->sock);
    return spawn(r);
}

void tr_redis_pause(tr_redis *r)
{
    if (r->pid > 0 && !r->stopped && kill(r->pid, SIGSTOP) == 0)
        r->stopped = true;
}

void tr_redis_resume(tr_redis *r)
{
    if (r->pid > 0 && r->stopped && kill(r->pid, SIGCONT) == 0)
        r->stopped = false;
}

void tr_redis_stop(tr_redis *r)
{
    reap(r, SIGTERM);
    if (r->dir[0] != '\0')
        tr_rmrf(r->dir);
    r->dir[0] = '\0';
}

long long tr_redis_cmd(tr_redis *r, char *out, size_t outlen, int argc, const char **argv,
                       const size_t *lens)
{
    redisContext *c = connect_admin(r);
    redisReply *rep;
    long long v = -1;

    if (out && outlen)
        out[0] = '\0';
    if (c == NULL)
        return -1;
    rep = redisCommandArgv(c, argc, argv, lens);
    if (rep != NULL) {
        if (rep->type == REDIS_REPLY_INTEGER) {
            v = rep->integer;
        } else if (rep->type == REDIS_REPLY_STRING || rep->type == REDIS_REPLY_STATUS) {
            v = (long long)rep->len;
            if (out && outlen)
                snprintf(out, outlen, "%.*s", (int)rep->len, rep->str);
        } else if (rep->type == REDIS_REPLY_NIL) {
            v = 0;
        }
        freeReplyObject(rep);
    }
    redisFree(c);
    return v;
}

/* The entries of a SENTINEL reply (a list of flat field/value arrays)
 * whose "flags" field is exactly |flags|. */
static int count_flagged(redisReply *rep, const char *flags)
{
    size_t i, k;
    int n = 0;

    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY)
        return -1;
    for (i = 0; i < rep->elements; i++) {
        redisReply *e = rep->element[i];

        for (k = 0; e->type == REDIS_REPLY_ARRAY && k + 1 < e->elements; k += 2)
            if (e->element[k]->type == REDIS_REPLY_STRING &&
                strcmp(e->element[k]->str, "flags") == 0 &&
                e->element[k + 1]->type == REDIS_REPLY_STRING &&
                strcmp(e->element[k + 1]->str, flags) == 0)
                n++;
    }
    return n;
}

bool tr_redis_sentinel_ready(tr_redis *r, const char *name, int replicas, int sentinels, int ms)
{
    double end = tr_now_ms() + ms;

    while (tr_now_ms() < end) {
        redisContext *c = connect_admin(r);
        int nr = -1, ns = -1;

        if (c != NULL) {
            redisReply *rep = redisCommand(c, "SENTINEL replicas %s", name);

            nr = count_flagged(rep, "slave");
            if (rep)
                freeReplyObject(rep);
            rep = redisCommand(c, "SENTINEL sentinels %s", name);
            ns = count_flagged(rep, "sentinel");
            if (rep)
                freeReplyObject(rep);
            redisFree(c);
        }
        if (nr >= replicas && ns >= sentinels)
            return true;
        tr_sleep_ms(100);
    }
    return false;
}

int tr_redis_sentinel_master_port(tr_redis *r, const char *name)
{
    redisContext *c = connect_admin(r);
    redisReply *rep;
    int port = -1;

    if (c == NULL)
        return -1;
    rep = redisCommand(c, "SENTINEL get-master-addr-by-name %s", name);
    if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
        rep->element[1]->type == REDIS_REPLY_STRING)
        port = atoi(rep->element[1]->str);
    if (rep)
        freeReplyObject(rep);
    redisFree(c);
    return port;
}

const char *tr_redis_role(tr_redis *r)
{
    redisContext *c = connect_admin(r);
    redisReply *rep;
    const char *role = "";

    if (c == NULL)
        return role;
    rep = redisCommand(c, "ROLE");
    if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 &&
        rep->element[0]->type == REDIS_REPLY_STRING)
        role = strcmp(rep->element[0]->str, "master") == 0 ? "master" : "slave";
    if (rep)
        freeReplyObject(rep);
    redisFree(c);
    return role;
}

int tr_redis_numsub(tr_redis *r, const char *channel)
{
    redisContext *c = connect_admin(r);
    redisReply *rep;
    int n = -1;

    if (c == NULL)
        return -1;
    rep = redisCommand(c, "PUBSUB NUMSUB %s", channel);
    if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
        rep->element[1]->type == REDIS_REPLY_INTEGER)
        n = (int)rep->element[1]->integer;
    if (rep)
        freeReplyObject(rep);
    redisFree(c);
    return n;
}
