/*
 * A real redis-server for tests: on 127.0.0.1 (a free port) and/or on a
 * unix socket in a fresh directory, with no persistence, optionally with a
 * password for the default user and an ACL user.  The server dies with
 * the test process (PR_SET_PDEATHSIG) even if the test crashes; tests stop
 * it explicitly too.
 */
#ifndef SRVOCSP_REDISD_H
#define SRVOCSP_REDISD_H

#include <stdbool.h>
#include <sys/types.h>

typedef struct tr_redis_opts {
    bool tcp;                    /* listen on 127.0.0.1:<free port> */
    bool unix_socket;            /* listen on <dir>/redis.sock */
    const char *password;        /* requirepass for the default user, NULL none */
    const char *acl_user;        /* an extra ACL user with every right, NULL none */
    const char *acl_password;
    int replica_of;              /* a replica of 127.0.0.1:<port>, 0 none */
    int sentinel_of;             /* a Sentinel (redis-server --sentinel) watching the
                                    master 127.0.0.1:<port> as |master_name|, quorum 2,
                                    down after 1 s; 0: a data node */
    const char *master_name;
} tr_redis_opts;

typedef struct tr_redis {
    pid_t pid;
    int port;                    /* 0 without TCP */
    bool stopped;                /* SIGSTOPped */
    tr_redis_opts opts;
    char dir[512];
    char sock[600];
    char conf[600];
    char url[1024];              /* redis://[:password@]127.0.0.1:port or unix://... */
} tr_redis;

/* Whether redis-server can be run here (tests skip visibly otherwise). */
bool tr_redis_available(void);
/* Starts a server and waits until it answers PING (up to 5 s). */
bool tr_redis_start(tr_redis *r, const tr_redis_opts *o);
/* Stops it (SIGCONT first if paused, then SIGTERM, then SIGKILL) and
 * removes its directory.  Idempotent. */
void tr_redis_stop(tr_redis *r);
/* SIGKILL, no cleanup of the directory: a crash. */
void tr_redis_kill(tr_redis *r);
/* Starts a new, empty server on the same port and socket after a kill. */
bool tr_redis_restart(tr_redis *r);
/* SIGSTOP / SIGCONT: a hung server (connections accepted, nothing said). */
void tr_redis_pause(tr_redis *r);
void tr_redis_resume(tr_redis *r);
/* Runs one command given as argv against the server (as the default user
 * with its password) and returns the reply's integer, or the length of a
 * string reply, or -1 on error; |out| (may be NULL) gets a string reply. */
long long tr_redis_cmd(tr_redis *r, char *out, size_t outlen, int argc, const char **argv,
                       const size_t *lens);

/* Sentinel |r|: waits up to |ms| until it knows |replicas| healthy
 * replicas and |sentinels| other Sentinels of |name| (then a failover can
 * happen).  false on timeout. */
bool tr_redis_sentinel_ready(tr_redis *r, const char *name, int replicas, int sentinels, int ms);
/* Sentinel |r|: the port of the master it names for |name|, -1 if none. */
int tr_redis_sentinel_master_port(tr_redis *r, const char *name);
/* Data node |r|: "master" or "slave" (ROLE), "" when it does not answer. */
const char *tr_redis_role(tr_redis *r);
/* Data node |r|: how many clients are subscribed to |channel| (PUBSUB
 * NUMSUB), -1 when it does not answer. */
int tr_redis_numsub(tr_redis *r, const char *channel);

#endif
