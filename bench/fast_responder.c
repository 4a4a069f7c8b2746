/*
 * The benchmarks' responder process.  It is forked before the leaves and
 * responses exist and gets the responses through a pipe: a page the
 * parent wrote before a fork and writes again while the child lives is
 * copied then, at a fault and a TLB shootdown each, which made a first
 * fetch's srvocsp_open (OpenSSL caching each leaf's extensions in it)
 * cost ten times its own work.
 *
 * One pipe each way: the port, then a byte per batch served, up; batches
 * of (serial, length, DER) records ended by a zero serial down; EOF stops.
 */
#include "fast_responder.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "evil.h"
#include "peers.h"

/* |write| when |out|, else |read|, until all |n| bytes are through. */
static bool all_of(int fd, void *buf, size_t n, bool out)
{
    unsigned char *p = buf;

    while (n > 0) {
        ssize_t k = out ? write(fd, p, n) : read(fd, p, n);

        if (k <= 0)
            return false;
        p += k;
        n -= (size_t)k;
    }
    return true;
}

static void serve(evil *ev, int in, int out)
{
    uint32_t rec[2];
    unsigned char *buf;
    char ack = 1;

    while (all_of(in, rec, sizeof(rec), false)) {
        if (rec[0] == 0) {
            if (write(out, &ack, 1) != 1)
                return;
            continue;
        }
        if ((buf = malloc(rec[1])) == NULL || !all_of(in, buf, rec[1], false)) {
            free(buf);
            return;
        }
        evil_add_presigned(ev, (long)rec[0], buf, rec[1]);
        free(buf);
    }
}

bool bench_responder_start(bench_responder *r, const tp_pki *pki)
{
    int up[2], down[2];

    if (pipe(up) != 0)
        return false;
    if (pipe(down) != 0) {
        close(up[0]);
        close(up[1]);
        return false;
    }
    r->pid = fork();
    if (r->pid == 0) {
        evil *ev = evil_start(pki, tr_wall_now, NULL, 86400);
        int port = ev ? evil_port(ev) : 0;

        close(up[0]);
        close(down[1]);
        if (ev == NULL || write(up[1], &port, sizeof(port)) != sizeof(port))
            _exit(1);
        serve(ev, down[0], up[1]);
        evil_stop(ev);
        _exit(0);
    }
    close(up[1]);
    close(down[0]);
    r->from_child = up[0];
    r->to_child = down[1];
    if (r->pid < 0 || !all_of(r->from_child, &r->port, sizeof(r->port), false)) {
        bench_responder_stop(r);
        return false;
    }
    return true;
}

bool bench_responder_feed(bench_responder *r, unsigned char **der, const size_t *len, int n,
                          long serial0)
{
    uint32_t rec[2];
    char ack;

    for (int i = 0; i < n; i++) {
        rec[0] = (uint32_t)(serial0 + i);
        rec[1] = (uint32_t)len[i];
        if (!all_of(r->to_child, rec, sizeof(rec), true) ||
            !all_of(r->to_child, der[i], len[i], true))
            return false;
    }
    rec[0] = rec[1] = 0;
    return all_of(r->to_child, rec, sizeof(rec), true) && read(r->from_child, &ack, 1) == 1;
}

void bench_responder_stop(bench_responder *r)
{
    close(r->to_child);
    close(r->from_child);
    if (r->pid > 0)
        waitpid(r->pid, NULL, 0);
    r->pid = -1;
}
