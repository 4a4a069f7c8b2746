/*
 * The other step a refresh cannot skip: one HTTP exchange with the
 * responder.  Measured with the least client there can be: |conns|
 * keep-alive connections to 127.0.0.1, each with one GET in flight, one
 * poll over them, one send per request, reads until the Content-Length is
 * in; no HTTP library, no parse beyond that header, nothing kept.  Its CPU
 * per exchange, beside a signature check, is the floor of a refresh that
 * makes one exchange per certificate, whatever does it.
 *
 * Then the same exchanges through libcurl's multi interface as the
 * engine drives it (perform, read what finished, poll), with only the
 * options a GET needs and nothing else of ours: what libcurl itself costs
 * per exchange, the floor of a refresh made with it.
 */
#include "exchange_floor.h"
#include "peers.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 16
#define RESP_CAP 16384

typedef struct conn {
    int fd;
    size_t got, need; /* need: header + body, once the header is in */
    char buf[RESP_CAP];
} conn;

static double thread_cpu_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int connect_lo(int port)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

    if (fd < 0)
        return -1;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* The Content-Length header's value in the header block [p, end), or NULL. */
static const char *content_length(const char *p, const char *end)
{
    static const char name[] = "\r\ncontent-length:";

    for (; p + sizeof(name) - 1 <= end; p++)
        if (strncasecmp(p, name, sizeof(name) - 1) == 0)
            return p + sizeof(name) - 1;
    return NULL;
}

/* True once |c| holds a whole response (status 200). */
static bool complete(conn *c, bool *bad)
{
    const char *end, *cl;

    if (c->need == 0) {
        c->buf[c->got < RESP_CAP ? c->got : RESP_CAP - 1] = '\0';
        end = strstr(c->buf, "\r\n\r\n");
        if (end == NULL)
            return false;
        cl = content_length(c->buf, end + 2);
        if (strncmp(c->buf, "HTTP/1.1 200", 12) != 0 || cl == NULL) {
            *bad = true;
            return false;
        }
        c->need = (size_t)(end + 4 - c->buf) + strtoul(cl, NULL, 10);
        if (c->need >= RESP_CAP) {
            *bad = true;
            return false;
        }
    }
    return c->got >= c->need;
}

double bench_exchange_floor_us(int port, char *const *paths, int n, int conns)
{
    struct pollfd pfd[MAX_CONNS];
    conn *cs = NULL;
    char req[1024];
    double c0, us = -1;
    int i, next = 0, done = 0, len;
    bool bad = false;

    if (conns < 1 || conns > MAX_CONNS || n < conns ||
        (cs = calloc((size_t)conns, sizeof(*cs))) == NULL)
        return -1;
    for (i = 0; i < conns; i++)
        cs[i].fd = -1;
    for (i = 0; i < conns; i++)
        if ((cs[i].fd = connect_lo(port)) < 0)
            goto out;
    c0 = thread_cpu_us();
    for (i = 0; i < conns; i++, next++) {
        len = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n",
                       paths[next], port);
        if (len >= (int)sizeof(req) || !tr_send_all(cs[i].fd, req, (size_t)len))
            goto out;
    }
    while (done < n) {
        for (i = 0; i < conns; i++) {
            pfd[i].fd = cs[i].fd;
            pfd[i].events = POLLIN;
            pfd[i].revents = 0;
        }
        if (poll(pfd, (nfds_t)conns, 10000) <= 0)
            goto out;
        for (i = 0; i < conns; i++) {
            conn *c = &cs[i];
            ssize_t r;

            if (pfd[i].revents == 0 || c->fd < 0)
                continue;
            r = recv(c->fd, c->buf + c->got, RESP_CAP - 1 - c->got, 0);
            if (r <= 0)
                goto out;
            c->got += (size_t)r;
            if (!complete(c, &bad)) {
                if (bad)
                    goto out;
                continue;
            }
            /* One response per request: anything past it is not expected. */
            done++;
            c->got = c->need = 0;
            if (next < n) {
                len = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n",
                               paths[next++], port);
                if (len >= (int)sizeof(req) || !tr_send_all(c->fd, req, (size_t)len))
                    goto out;
            } else {
                close(c->fd);
                c->fd = -1;
            }
        }
    }
    us = (thread_cpu_us() - c0) / n;
out:
    for (i = 0; i < conns; i++)
        if (cs[i].fd >= 0)
            close(cs[i].fd);
    free(cs);
    return us;
}

static size_t discard(char *data, size_t size, size_t nmemb, void *arg)
{
    (void)data;
    (void)arg;
    return size * nmemb;
}

double bench_exchange_curl_us(const char *base, char *const *paths, int n, int conns)
{
    CURLM *multi = curl_multi_init();
    CURL *easy[MAX_CONNS] = {0};
    char url[1024];
    double c0, us = -1;
    int i, next = 0, done = 0, running = 0, left;
    CURLMsg *msg;

    if (multi == NULL || conns < 1 || conns > MAX_CONNS || n < conns)
        goto out;
    curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)conns);
    c0 = thread_cpu_us();
    for (i = 0; i < conns; i++, next++) {
        if ((easy[i] = curl_easy_init()) == NULL)
            goto out;
        snprintf(url, sizeof(url), "%s%s", base, paths[next]);
        curl_easy_setopt(easy[i], CURLOPT_URL, url);
        curl_easy_setopt(easy[i], CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(easy[i], CURLOPT_WRITEFUNCTION, discard);
        if (curl_multi_add_handle(multi, easy[i]) != CURLM_OK)
            goto out;
    }
    while (done < n) {
        curl_multi_perform(multi, &running);
        while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
            long status = 0;
            CURL *e = msg->easy_handle;

            if (msg->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
            if (msg->data.result != CURLE_OK || status != 200)
                goto out;
            curl_multi_remove_handle(multi, e);
            done++;
            if (next < n) {
                snprintf(url, sizeof(url), "%s%s", base, paths[next++]);
                curl_easy_setopt(e, CURLOPT_URL, url);
                if (curl_multi_add_handle(multi, e) != CURLM_OK)
                    goto out;
            }
        }
        if (done < n)
            curl_multi_poll(multi, NULL, 0, 10000, NULL);
    }
    us = (thread_cpu_us() - c0) / n;
out:
    for (i = 0; i < conns; i++)
        if (easy[i] != NULL) {
            curl_multi_remove_handle(multi, easy[i]);
            curl_easy_cleanup(easy[i]);
        }
    curl_multi_cleanup(multi);
    return us;
}
