/*
 * A fleet on one Redis.
 *
 *   bench_fleet [P (8)] [N (10000)] [--json]
 *
 * P worker processes each open the same N certificates against one fast
 * responder (pre-signed responses over keep-alive, its own process, counting
 * requests) and one redis-server on 127.0.0.1.  Measured:
 *  - cold start, all P together, without Redis: responder requests per
 *    certificate (P, the baseline), time until every process serves all;
 *  - the same with Redis: requests per certificate (goal <= 1.05);
 *  - a refresh round (the responder now has newer responses and every
 *    process asks for all N at once): requests per certificate, and time
 *    until every process serves the new responses;
 *  - a machine joining with Redis warm: time until it serves all N, and the
 *    requests it made;
 *  - a revocation fetched by one process: time until every process serves it;
 *  - get+free in one process with Redis answering, then with Redis stopped
 *    (SIGSTOP) while the engine keeps trying it.
 *
 *   bench_fleet [P] [N] --failover [--json]
 *
 * The fleet on a master, a replica and three Sentinels (redis-sentinel://):
 * cold start, a refresh round, a round with the master SIGKILLed in the
 * middle (when the responder has answered half of it), and the round after:
 * requests per certificate in each (goal <= 1.05 outside the failover
 * round, <= 2 in it), when the Sentinels named the replica, and how long
 * announcements stopped (from the kill until every process is subscribed
 * on the promoted replica again).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "evil.h"
#include "peers.h"
#include "redisd.h"
#include "srvocsp.h"
#include "testpki.h"

#define SERIAL0 0x200000L

static int P = 8, N = 10000;
static tp_pki pki;
static tp_cert *leaves;
static STACK_OF(X509) *chain;
static char rurl[128];
static const char *store_url;

static double mono(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---------------------------------------------------------------------
 * The responder process: commands on a pipe.
 *   'c' -> replies the request count (long)
 *   '2' -> serves the second set (newer thisUpdate)
 *   'r' -> serves a revoked response for the first certificate
 *   'n' -> serves a newer set (thisUpdate one second later than the last
 *          'n' set, the first at t0 - 20), replies that thisUpdate (int64)
 * ------------------------------------------------------------------- */

typedef struct resp_proc {
    pid_t pid;
    int cmd, reply;
} resp_proc;

static unsigned char *sign(int i, int64_t tu, int status, size_t *len)
{
    tp_resp_opts ro;

    tp_resp_opts_init(&ro, &leaves[i], &pki.ca, tu);
    ro.this_update = tu;
    ro.next_update = tu + 7 * 86400;
    ro.status = status;
    if (status == V_OCSP_CERTSTATUS_REVOKED) {
        ro.revoked_at = tu - 60;
        ro.reason = 1;
    }
    return tp_response(&ro, len);
}

static void responder_start(resp_proc *rp, int64_t t0)
{
    int down[2], up[2], port;

    if (pipe(down) != 0 || pipe(up) != 0)
        exit(1);
    rp->pid = fork();
    if (rp->pid == 0) {
        evil *ev = evil_start(&pki, tr_wall_now, NULL, 86400);
        unsigned char **set2 = calloc((size_t)N, sizeof(*set2));
        size_t *len2 = calloc((size_t)N, sizeof(*len2));
        char c;
        int i;

        close(down[1]);
        close(up[0]);
        for (i = 0; i < N; i++) {
            size_t len;
            unsigned char *der = sign(i, t0 - 60, V_OCSP_CERTSTATUS_GOOD, &len);

            evil_add_presigned(ev, SERIAL0 + i, der, len);
            free(der);
            set2[i] = sign(i, t0 - 30, V_OCSP_CERTSTATUS_GOOD, &len2[i]);
        }
        port = evil_port(ev);
        if (write(up[1], &port, sizeof(port)) != sizeof(port))
            _exit(1);
        while (read(down[0], &c, 1) == 1) {
            if (c == 'c') {
                long n = evil_requests(ev);

                if (write(up[1], &n, sizeof(n)) != sizeof(n))
                    break;
            } else if (c == '2') {
                for (i = 0; i < N; i++)
                    evil_add_presigned(ev, SERIAL0 + i, set2[i], len2[i]);
                if (write(up[1], &c, 1) != 1)
                    break;
            } else if (c == 'n') {
                static int64_t gen_tu;

                gen_tu = gen_tu ? gen_tu + 1 : t0 - 20;
                for (i = 0; i < N; i++) {
                    size_t len;
                    unsigned char *der = sign(i, gen_tu, V_OCSP_CERTSTATUS_GOOD, &len);

                    evil_add_presigned(ev, SERIAL0 + i, der, len);
                    free(der);
                }
                if (write(up[1], &gen_tu, sizeof(gen_tu)) != sizeof(gen_tu))
                    break;
            } else if (c == 'r') {
                size_t len;
                unsigned char *der = sign(0, t0 - 10, V_OCSP_CERTSTATUS_REVOKED, &len);

                evil_add_presigned(ev, SERIAL0, der, len);
                free(der);
                if (write(up[1], &c, 1) != 1)
                    break;
            }
        }
        evil_stop(ev);
        _exit(0);
    }
    close(down[0]);
    close(up[1]);
    rp->cmd = down[1];
    rp->reply = up[0];
    if (read(rp->reply, &port, sizeof(port)) != sizeof(port))
        exit(1);
    snprintf(rurl, sizeof(rurl), "http://127.0.0.1:%d/fast/", port);
}

static long responder_requests(resp_proc *rp)
{
    long n = -1;

    if (write(rp->cmd, "c", 1) != 1 || read(rp->reply, &n, sizeof(n)) != sizeof(n))
        return -1;
    return n;
}

/* A newer set at the responder; its thisUpdate. */
static int64_t responder_newer(resp_proc *rp)
{
    int64_t tu;

    if (write(rp->cmd, "n", 1) != 1 || read(rp->reply, &tu, sizeof(tu)) != sizeof(tu))
        exit(1);
    return tu;
}

static void responder_do(resp_proc *rp, char c)
{
    char r;

    if (write(rp->cmd, &c, 1) != 1 || read(rp->reply, &r, 1) != 1)
        exit(1);
}

/* ---------------------------------------------------------------------
 * Workers: commands on a pipe, one line each, answered with one line.
 *   open S      open N handles (S: 1 with the store) and wait until all
 *               serve; answers the monotonic time it was done
 *   refresh T   ask for all N at once, wait until all serve thisUpdate >= T
 *   refresh0    ask for the first certificate now
 *   revoked     wait until the first certificate is served revoked
 *   get ITERS   ns per get+free over ITERS calls
 *   close
 * ------------------------------------------------------------------- */

typedef struct worker {
    pid_t pid;
    FILE *in, *out;
} worker;

static bool all_serve(srvocsp_handle **h, int64_t min_tu, double limit)
{
    double t0 = mono();
    int next = 0;

    while (next < N) {
        srvocsp_response *r = srvocsp_get1_response(h[next]);

        if (r != NULL && srvocsp_response_this_update(r) >= min_tu) {
            srvocsp_response_free(r);
            next++;
            continue;
        }
        srvocsp_response_free(r);
        if (mono() - t0 > limit)
            return false;
        usleep(1000);
    }
    return true;
}

static void worker_main(FILE *in, FILE *out)
{
    srvocsp_handle **h = calloc((size_t)N, sizeof(*h));
    srvocsp_engine *eng = NULL;
    char line[128];
    long long arg;
    int i, s;
    bool done;

    while (fgets(line, sizeof(line), in) != NULL) {
        if (sscanf(line, "open %d", &s) == 1) {
            srvocsp_params p;

            eng = srvocsp_engine_new(NULL);
            srvocsp_params_init(&p);
            p.engine = eng;
            p.flags = SRVOCSP_OPEN_ASYNC;
            p.responder_url = rurl;
            p.store_url = s ? store_url : NULL;
            for (i = 0; i < N; i++)
                h[i] = srvocsp_open(leaves[i].cert, chain, &p);
            done = all_serve(h, 0, 600); /* before reading the time */
            fprintf(out, "%s %.6f\n", done ? "done" : "timeout", mono());
        } else if (strncmp(line, "refresh ", 8) == 0 && sscanf(line, "refresh %lld", &arg) == 1) {
            for (i = 0; i < N; i++)
                srvocsp_handle_refresh_now(h[i]);
            done = all_serve(h, arg, 600);
            fprintf(out, "%s %.6f\n", done ? "done" : "timeout", mono());
        } else if (strncmp(line, "refreshwait", 11) == 0) {
            for (i = 0; i < N; i++)
                srvocsp_handle_refresh_now(h[i]);
            tr_sleep_ms(100); /* the engine has taken them up */
            done = srvocsp_engine_settle(eng, 600000) == SRVOCSP_OK;
            fprintf(out, "%s %.6f\n", done ? "done" : "timeout", mono());
        } else if (strncmp(line, "refresh0", 8) == 0) {
            srvocsp_handle_refresh_now(h[0]);
            fprintf(out, "ok\n");
        } else if (strncmp(line, "revoked", 7) == 0) {
            double t0 = mono();
            bool seen = false;

            while (!seen && mono() - t0 < 60) {
                srvocsp_response *r = srvocsp_get1_response(h[0]);

                seen = r && srvocsp_response_status(r) == SRVOCSP_STATUS_REVOKED;
                srvocsp_response_free(r);
                if (!seen)
                    usleep(500);
            }
            fprintf(out, "%s %.6f\n", seen ? "done" : "timeout", mono());
        } else if (sscanf(line, "get %lld", &arg) == 1) {
            double t0 = mono();
            long long k, ok = 0;

            for (k = 0; k < arg; k++) {
                srvocsp_response *r = srvocsp_get1_response(h[k % (N < 16 ? N : 16)]);

                ok += r != NULL;
                srvocsp_response_free(r);
            }
            fprintf(out, "%.2f %lld\n", (mono() - t0) * 1e9 / (double)arg, ok);
        } else if (strncmp(line, "close", 5) == 0) {
            for (i = 0; i < N; i++)
                srvocsp_close(h[i]);
            srvocsp_engine_free(eng);
            eng = NULL;
            fprintf(out, "closed\n");
        } else {
            break;
        }
        fflush(out);
    }
    free(h);
}

static void worker_start(worker *w)
{
    int to[2], from[2];

    if (pipe(to) != 0 || pipe(from) != 0)
        exit(1);
    w->pid = fork();
    if (w->pid == 0) {
        FILE *in, *out;
        int fd;

        /* Not the other workers' pipes: they must see EOF when the parent
         * closes them. */
        for (fd = 3; fd < 1024; fd++)
            if (fd != to[0] && fd != from[1])
                close(fd);
        in = fdopen(to[0], "r");
        out = fdopen(from[1], "w");
        worker_main(in, out);
        srvocsp_cleanup();
        _exit(0);
    }
    close(to[0]);
    close(from[1]);
    w->in = fdopen(to[1], "w");
    w->out = fdopen(from[0], "r");
    setvbuf(w->in, NULL, _IOLBF, 0);
}

static void send_all(worker *w, int n, const char *fmt, long long arg)
{
    int i;

    for (i = 0; i < n; i++) {
        fprintf(w[i].in, fmt, arg);
        fflush(w[i].in);
    }
}

/* Reads one "done <time>" per worker; returns the latest time. */
static double latest(worker *w, int n)
{
    double last = 0, t;
    char line[128], word[16];
    int i;

    for (i = 0; i < n; i++) {
        if (fgets(line, sizeof(line), w[i].out) == NULL ||
            sscanf(line, "%15s %lf", word, &t) != 2 || strcmp(word, "done") != 0) {
            fprintf(stderr, "bench_fleet: worker %d said: %s\n", i, line);
            exit(1);
        }
        if (t > last)
            last = t;
    }
    return last;
}

static void expect_all(worker *w, int n, const char *what)
{
    char line[128];
    int i;

    for (i = 0; i < n; i++)
        if (fgets(line, sizeof(line), w[i].out) == NULL || strncmp(line, what, strlen(what)) != 0) {
            fprintf(stderr, "bench_fleet: worker %d said: %s\n", i, line);
            exit(1);
        }
}

static void worker_stop(worker *w)
{
    fclose(w->in);
    fclose(w->out);
    waitpid(w->pid, NULL, 0);
}

static double cmp_d(const void *a, const void *b)
{
    return *(const double *)a - *(const double *)b;
}

static int cmp_dbl(const void *a, const void *b)
{
    double d = cmp_d(a, b);

    return d < 0 ? -1 : d > 0;
}

static double get_ns(worker *w, long long iters)
{
    char line[128];
    double v[7];
    int i;

    for (i = 0; i < 7; i++) {
        fprintf(w->in, "get %lld\n", iters);
        fflush(w->in);
        if (fgets(line, sizeof(line), w->out) == NULL || sscanf(line, "%lf", &v[i]) != 1)
            exit(1);
    }
    qsort(v, 7, sizeof(v[0]), cmp_dbl);
    return v[3];
}

/* Subscribers of |channel| on the node at 127.0.0.1:|port|, -1 when it
 * does not answer. */
static long subscribers(int port, const char *channel)
{
    struct timeval tv = {0, 300000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    redisReply *r;
    long n = -1;

    if (c == NULL || c->err) {
        if (c)
            redisFree(c);
        return -1;
    }
    redisSetTimeout(c, tv);
    r = redisCommand(c, "PUBSUB NUMSUB %s", channel);
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[1]->type == REDIS_REPLY_INTEGER)
        n = (long)r->element[1]->integer;
    if (r)
        freeReplyObject(r);
    redisFree(c);
    return n;
}

/* A refresh round to the newest set at the responder: its requests per
 * certificate; |*secs| until every worker serves it.  With |m| not NULL,
 * the master is SIGKILLed once the responder has answered half the round,
 * and |*promoted_s| / |*resumed_s| say when (after the kill) the Sentinel
 * |sen| named |rep| and every worker was subscribed on it again. */
static double round_of(resp_proc *rp, worker *w, double *secs, tr_redis *m, tr_redis *rep,
                       tr_redis *sen, double *promoted_s, double *resumed_s)
{
    int64_t tu = responder_newer(rp);
    long r0 = responder_requests(rp);
    double start = mono();

    send_all(w, P, "refresh %lld\n", (long long)tu);
    if (m != NULL) {
        double kill_at;

        while (responder_requests(rp) - r0 < N / 2 && mono() - start < 600)
            usleep(2000);
        kill_at = mono();
        tr_redis_kill(m);
        *promoted_s = *resumed_s = -1;
        while (mono() - kill_at < 120 && *resumed_s < 0) {
            if (*promoted_s < 0 && tr_redis_sentinel_master_port(sen, "bench") == rep->port)
                *promoted_s = mono() - kill_at;
            if (*promoted_s >= 0 && subscribers(rep->port, "srvocsp:updates") >= P)
                *resumed_s = mono() - kill_at;
            usleep(20000);
        }
    }
    *secs = latest(w, P) - start;
    return (double)(responder_requests(rp) - r0) / N;
}

static int failover_run(resp_proc *rp, bool json)
{
    tr_redis m, rep, sen[3];
    tr_redis_opts om = {.tcp = true}, orep = {.tcp = true}, osen = {.tcp = true};
    static char url[512];
    worker *w;
    double start, cold_s, a_s, b_s, c_s, promoted = -1, resumed = -1;
    double cold_req, a_req, b_req, c_req;
    long r0;
    int i;

    if (!tr_redis_start(&m, &om))
        return 1;
    orep.replica_of = m.port;
    if (!tr_redis_start(&rep, &orep))
        return 1;
    osen.sentinel_of = m.port;
    osen.master_name = "bench";
    for (i = 0; i < 3; i++)
        if (!tr_redis_start(&sen[i], &osen))
            return 1;
    for (i = 0; i < 3; i++)
        if (!tr_redis_sentinel_ready(&sen[i], "bench", 1, 2, 60000)) {
            fprintf(stderr, "bench_fleet: the Sentinels never saw each other and the replica\n");
            return 1;
        }
    snprintf(url, sizeof(url), "redis-sentinel://127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d#bench",
             sen[0].port, sen[1].port, sen[2].port);
    store_url = url; /* before the workers fork */
    fprintf(stderr, "bench_fleet: %d processes x %d certificates, Sentinel failover\n", P, N);
    w = calloc((size_t)P, sizeof(*w));
    for (i = 0; i < P; i++)
        worker_start(&w[i]);

    r0 = responder_requests(rp);
    start = mono();
    send_all(w, P, "open %lld\n", 1);
    cold_s = latest(w, P) - start;
    cold_req = (double)(responder_requests(rp) - r0) / N;
    fprintf(stderr, "  cold: %.4f req/cert, %.2f s\n", cold_req, cold_s);
    a_req = round_of(rp, w, &a_s, NULL, NULL, NULL, NULL, NULL);
    fprintf(stderr, "  round before: %.4f req/cert, %.2f s\n", a_req, a_s);
    b_req = round_of(rp, w, &b_s, &m, &rep, &sen[0], &promoted, &resumed);
    fprintf(stderr, "  failover round: %.4f req/cert, %.2f s; replica named after %.2f s, "
                    "announcements back after %.2f s\n", b_req, b_s, promoted, resumed);
    c_req = round_of(rp, w, &c_s, NULL, NULL, NULL, NULL, NULL);
    fprintf(stderr, "  round after: %.4f req/cert, %.2f s\n", c_req, c_s);

    send_all(w, P, "close\n", 0);
    expect_all(w, P, "closed");
    for (i = 0; i < P; i++)
        worker_stop(&w[i]);
    free(w);
    for (i = 0; i < 3; i++)
        tr_redis_stop(&sen[i]);
    tr_redis_stop(&rep);
    tr_redis_stop(&m);
    if (json) {
        printf("{\"bench\":\"fleet_failover\",\"processes\":%d,\"certificates\":%d,"
               "\"req_per_cert_cold\":%.4f,\"cold_s\":%.3f,\"req_per_cert_round_before\":%.4f,"
               "\"round_before_s\":%.3f,\"req_per_cert_failover_round\":%.4f,"
               "\"failover_round_s\":%.3f,\"replica_named_after_s\":%.3f,"
               "\"announcements_stopped_s\":%.3f,\"req_per_cert_round_after\":%.4f,"
               "\"round_after_s\":%.3f}\n",
               P, N, cold_req, cold_s, a_req, a_s, b_req, b_s, promoted, resumed, c_req, c_s);
    } else {
        printf("| measure (%d processes x %d certificates, Sentinel) | result | goal |\n"
               "|---|---|---|\n", P, N);
        printf("| requests per certificate, cold | %.4f | <= 1.05 |\n", cold_req);
        printf("| requests per certificate, round before the failover | %.4f | <= 1.05 |\n", a_req);
        printf("| requests per certificate, round with the master SIGKILLed | %.4f | <= 2 |\n",
               b_req);
        printf("| requests per certificate, round after the failover | %.4f | <= 1.05 |\n", c_req);
        printf("| rounds before / with / after: every process serving after "
               "| %.2f / %.2f / %.2f s | |\n",
               a_s, b_s, c_s);
        printf("| the Sentinels named the replica after the kill | %.2f s | |\n", promoted);
        printf("| announcements stopped (kill until every process subscribed again) | %.2f s | |\n",
               resumed);
    }
    return b_req <= 2 && a_req <= 1.05 && c_req <= 1.05 && resumed >= 0 ? 0 : 3;
}

int main(int argc, char **argv)
{
    bool json = false, failover = false;
    int64_t t0 = (int64_t)time(NULL);
    resp_proc rp;
    tr_redis rd;
    tr_redis_opts ro = {.tcp = true};
    worker *w, late;
    double start, base_cold, fleet_cold, round_time, join_time, revoke_time, get_ok, get_hung, hung_refresh;
    long r0, base_req, fleet_req, round_req, join_req, revoke_req;
    int i, pos = 0;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = true;
        else if (strcmp(argv[i], "--failover") == 0)
            failover = true;
        else if (pos++ == 0)
            P = atoi(argv[i]);
        else
            N = atoi(argv[i]);
    }
    if (P < 1 || N < 1)
        return 2;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!tr_redis_available()) {
        fprintf(stderr, "bench_fleet: redis-server is not installed\n");
        return 77;
    }
    if (!tp_pki_make(&pki, "http://127.0.0.1:9/", "http://127.0.0.1:9/", t0))
        return 1;
    leaves = calloc((size_t)N, sizeof(*leaves));
    for (i = 0; i < N; i++)
        if (!tp_leaf_make(&leaves[i], &pki.ca, &pki.good, "fleet", i, SERIAL0 + i, t0))
            return 1;
    chain = sk_X509_new_null();
    sk_X509_push(chain, pki.ca.cert);
    responder_start(&rp, t0);
    if (failover) {
        int rc = failover_run(&rp, json);

        close(rp.cmd);
        waitpid(rp.pid, NULL, 0);
        for (i = 0; i < N; i++)
            tp_cert_free(&leaves[i]);
        free(leaves);
        sk_X509_free(chain);
        tp_pki_free(&pki);
        return rc;
    }
    if (!tr_redis_start(&rd, &ro)) {
        fprintf(stderr, "bench_fleet: cannot start redis-server\n");
        return 1;
    }
    store_url = rd.url;
    fprintf(stderr, "bench_fleet: %d processes x %d certificates\n", P, N);

    w = calloc((size_t)P, sizeof(*w));
    for (i = 0; i < P; i++)
        worker_start(&w[i]);

    /* Without Redis: every process fetches every certificate. */
    r0 = responder_requests(&rp);
    start = mono();
    send_all(w, P, "open %lld\n", 0);
    base_cold = latest(w, P) - start;
    base_req = responder_requests(&rp) - r0;
    send_all(w, P, "close\n", 0);
    expect_all(w, P, "closed");
    fprintf(stderr, "  without Redis: %.2f req/cert, %.2f s\n", (double)base_req / N, base_cold);

    /* With Redis, all together from cold. */
    r0 = responder_requests(&rp);
    start = mono();
    send_all(w, P, "open %lld\n", 1);
    fleet_cold = latest(w, P) - start;
    fleet_req = responder_requests(&rp) - r0;
    fprintf(stderr, "  with Redis, cold: %.3f req/cert, %.2f s\n", (double)fleet_req / N,
            fleet_cold);

    /* A refresh round: newer responses at the responder, everyone asks. */
    responder_do(&rp, '2');
    r0 = responder_requests(&rp);
    start = mono();
    send_all(w, P, "refresh %lld\n", (long long)(t0 - 30));
    round_time = latest(w, P) - start;
    round_req = responder_requests(&rp) - r0;
    fprintf(stderr, "  refresh round: %.3f req/cert, %.2f s\n", (double)round_req / N, round_time);

    /* A machine joining, Redis warm. */
    worker_start(&late);
    r0 = responder_requests(&rp);
    start = mono();
    send_all(&late, 1, "open %lld\n", 1);
    join_time = latest(&late, 1) - start;
    join_req = responder_requests(&rp) - r0;
    fprintf(stderr, "  join: %.2f s, %ld requests\n", join_time, join_req);
    send_all(&late, 1, "close\n", 0);
    expect_all(&late, 1, "closed");
    worker_stop(&late);

    /* A revocation. */
    responder_do(&rp, 'r');
    r0 = responder_requests(&rp);
    send_all(w + 1, P - 1, "revoked\n", 0);
    tr_sleep_ms(200); /* they are watching */
    start = mono();
    send_all(w, 1, "refresh0\n", 0);
    expect_all(w, 1, "ok");
    send_all(w, 1, "revoked\n", 0);
    revoke_time = latest(w, 1) - start;
    {
        double t = latest(w + 1, P - 1) - start;

        if (t > revoke_time)
            revoke_time = t;
    }
    revoke_req = responder_requests(&rp) - r0;
    fprintf(stderr, "  revocation: %.3f s to all, %ld requests\n", revoke_time, revoke_req);

    /* get+free with Redis answering, then hung. */
    get_ok = get_ns(&w[0], 2000000);
    /* Redis hung: one process asks for all N (each before-fetch look meets
     * the hung Redis: one timeout, then the backoff), then gets run. */
    tr_redis_pause(&rd);
    start = mono();
    send_all(w, 1, "refreshwait\n", 0);
    hung_refresh = latest(w, 1) - start;
    get_hung = get_ns(&w[0], 2000000);
    tr_redis_resume(&rd);
    fprintf(stderr, "  get+free: %.1f ns, Redis hung %.1f ns; refresh of all with Redis hung %.2f s\n",
            get_ok, get_hung, hung_refresh);

    send_all(w, P, "close\n", 0);
    expect_all(w, P, "closed");
    for (i = 0; i < P; i++)
        worker_stop(&w[i]);
    tr_redis_stop(&rd);
    close(rp.cmd);
    waitpid(rp.pid, NULL, 0);

    if (json) {
        printf("{\"bench\":\"fleet\",\"processes\":%d,\"certificates\":%d,"
               "\"req_per_cert_without_redis\":%.3f,\"cold_without_redis_s\":%.3f,"
               "\"req_per_cert_cold\":%.4f,\"cold_with_redis_s\":%.3f,"
               "\"req_per_cert_refresh_round\":%.4f,\"refresh_round_s\":%.3f,"
               "\"join_warm_s\":%.3f,\"join_requests\":%ld,\"revocation_to_all_s\":%.4f,"
               "\"revocation_requests\":%ld,\"get_ns\":%.2f,\"get_ns_redis_hung\":%.2f,"
               "\"refresh_all_redis_hung_s\":%.3f}\n",
               P, N, (double)base_req / N, base_cold, (double)fleet_req / N, fleet_cold,
               (double)round_req / N, round_time, join_time, join_req, revoke_time, revoke_req,
               get_ok, get_hung, hung_refresh);
    } else {
        printf("| measure (%d processes x %d certificates) | result |\n|---|---|\n", P, N);
        printf("| responder requests per certificate, cold, without Redis | %.3f |\n",
               (double)base_req / N);
        printf("| responder requests per certificate, cold, with Redis | %.4f |\n",
               (double)fleet_req / N);
        printf("| responder requests per certificate, refresh round, with Redis | %.4f |\n",
               (double)round_req / N);
        printf("| all serving from cold, without / with Redis | %.2f s / %.2f s |\n", base_cold,
               fleet_cold);
        printf("| refresh round: all serving the new responses | %.2f s |\n", round_time);
        printf("| a process joining with Redis warm: all serving after | %.2f s (%ld requests) |\n",
               join_time, join_req);
        printf("| revocation fetched by one: served by every process after | %.3f s (%ld request) |\n",
               revoke_time, revoke_req);
        printf("| get+free, Redis answering / Redis hung (SIGSTOP) | %.1f ns / %.1f ns |\n",
               get_ok, get_hung);
        printf("| one process refreshing all %d with Redis hung: settled after | %.2f s |\n", N,
               hung_refresh);
    }
    for (i = 0; i < N; i++)
        tp_cert_free(&leaves[i]);
    free(leaves);
    free(w);
    sk_X509_free(chain);
    tp_pki_free(&pki);
    return 0;
}
