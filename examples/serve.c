/* The example servers' plumbing (serve.h). */
#include "serve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stopping;
static pthread_mutex_t active_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t active_cv = PTHREAD_COND_INITIALIZER;
static int active; /* serving threads still running */

typedef struct {
    void (*serve)(int fd);
    int fd;
} job;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static void *run_job(void *arg)
{
    job j = *(job *)arg;

    free(arg);
    j.serve(j.fd);
    pthread_mutex_lock(&active_mu);
    if (--active == 0)
        pthread_cond_signal(&active_cv);
    pthread_mutex_unlock(&active_mu);
    return NULL;
}

int example_listen(const char *name, int port)
{
    struct sockaddr_in a;
    int lfd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

    if (lfd < 0) {
        fprintf(stderr, "%s: socket: %s\n", name, strerror(errno));
        return -1;
    }
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(lfd, 64) != 0) {
        fprintf(stderr, "%s: cannot listen on 127.0.0.1:%d: %s\n", name, port, strerror(errno));
        close(lfd);
        return -1;
    }
    return lfd;
}

void example_serve(const char *name, int lfd, void (*serve)(int fd))
{
    struct sigaction sa;
    struct timeval io_timeout = {10, 0};

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal; /* no SA_RESTART: accept() returns EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    while (!stopping) {
        int fd = accept(lfd, NULL, NULL);
        job *j;
        pthread_t t;

        if (fd < 0)
            continue;
        /* A client that stops talking cannot hold up the stop for long. */
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &io_timeout, sizeof(io_timeout));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &io_timeout, sizeof(io_timeout));
        j = malloc(sizeof(*j));
        if (j == NULL) {
            close(fd);
            continue;
        }
        j->serve = serve;
        j->fd = fd;
        pthread_mutex_lock(&active_mu);
        active++;
        pthread_mutex_unlock(&active_mu);
        if (pthread_create(&t, NULL, run_job, j) != 0) {
            free(j);
            close(fd);
            pthread_mutex_lock(&active_mu);
            active--;
            pthread_mutex_unlock(&active_mu);
            continue;
        }
        pthread_detach(t);
    }
    fprintf(stderr, "%s: stopping\n", name);
    close(lfd);
    pthread_mutex_lock(&active_mu);
    while (active > 0)
        pthread_cond_wait(&active_cv, &active_mu);
    pthread_mutex_unlock(&active_mu);
}

/* gmtime_r: the engine's callbacks and the serving threads format times at
 * the same moment. */
void example_fmt_utc(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (gmtime_r(&tt, &tm) == NULL || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, len, "-");
}
