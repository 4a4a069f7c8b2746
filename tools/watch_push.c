/*
 * srvocsp watch: pushing responses to HAProxy's runtime API
 * ("set ssl ocsp-response <base64>"), on a thread of its own.
 *
 * The loop only queues: one pending push per certificate, a newer response
 * replacing an unsent one, so the queue never holds more than one entry
 * per certificate.  The thread takes up to PUSH_BATCH of them, opens one
 * connection, switches it to interactive mode ("prompt") and pipelines the
 * commands, reading each answer up to HAProxy's next prompt while it still
 * writes.  A slow or stuck socket costs this thread at most PUSH_STALL_MS
 * without progress, never the loop.  Answers go back to the loop through
 * a pipe, and the loop logs them.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "watch.h"

#define PUSH_BATCH 512
#define PUSH_STALL_MS 10000
#define ANSWER_MAX 320

typedef struct pitem {
    int slot;
    unsigned char *der;
    size_t len;
} pitem;

typedef struct presult {
    int slot;
    bool ok;
    char answer[ANSWER_MAX];
} presult;

struct wpush {
    char *sock;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    pitem *items;                /* pending, in arrival order */
    int n_items, cap_items;
    int *where;                  /* slot -> index in items, or -1 */
    int cap_where;
    presult *results;
    int n_results, cap_results;
    int wake[2];
};

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int wp_fd(const wpush *p)
{
    return p->wake[0];
}

static void add_result(wpush *p, int slot, bool ok, const char *answer)
{
    presult *r;

    pthread_mutex_lock(&p->mu);
    if (p->n_results == p->cap_results) {
        int cap = p->cap_results ? p->cap_results * 2 : 64;

        if ((r = realloc(p->results, (size_t)cap * sizeof(*r))) == NULL) {
            pthread_mutex_unlock(&p->mu);
            return; /* the result is lost, the file was written anyway */
        }
        p->results = r;
        p->cap_results = cap;
    }
    r = &p->results[p->n_results++];
    r->slot = slot;
    r->ok = ok;
    snprintf(r->answer, sizeof(r->answer), "%s", answer);
    pthread_mutex_unlock(&p->mu);
}

/* Connects without blocking; -1 with |why|. */
static int dial(const char *path, char *why, size_t whylen)
{
    struct sockaddr_un a;
    int fd;

    memset(&a, 0, sizeof(a));
    a.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(a.sun_path)) {
        snprintf(why, whylen, "socket path too long: %s", path);
        return -1;
    }
    strcpy(a.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(why, whylen, "cannot make a socket: %s", strerror(errno));
        return -1;
    }
    /* A local socket connects at once or says why (EAGAIN: backlog full). */
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        snprintf(why, whylen, "cannot connect to %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* The commands of |items| as one buffer; NULL on allocation failure. */
static char *build(const pitem *items, int n, size_t *len)
{
    size_t cap = 8;
    char *buf;
    size_t used = 0;

    for (int i = 0; i < n; i++)
        cap += 32 + (items[i].len + 2) / 3 * 4;
    if ((buf = malloc(cap)) == NULL)
        return NULL;
    used += (size_t)sprintf(buf, "prompt\n");
    for (int i = 0; i < n; i++) {
        used += (size_t)sprintf(buf + used, "set ssl ocsp-response ");
        used += (size_t)EVP_EncodeBlock((unsigned char *)buf + used, items[i].der,
                                        (int)items[i].len);
        buf[used++] = '\n';
    }
    *len = used;
    return buf;
}

/* One connection for |n| pushes; every item gets a result. */
static void push_batch(wpush *p, pitem *items, int n)
{
    char why[300], in[16384], answer[ANSWER_MAX];
    size_t out_len = 0, sent = 0, alen = 0;
    char *out = build(items, n, &out_len);
    int fd = out ? dial(p->sock, why, sizeof(why)) : -1;
    int prompts = 0, done = 0; /* prompts seen; answers complete */
    int64_t last = mono_ms();
    /* What precedes the k-th "\n> " (k >= 2) answers command k-1. */
    int match = 0;
    static const char delim[] = "\n> ";

    if (out == NULL)
        snprintf(why, sizeof(why), "out of memory");
    while (fd >= 0 && done < n) {
        struct pollfd pfd = {fd, POLLIN | (sent < out_len ? POLLOUT : 0), 0};
        int64_t left = last + PUSH_STALL_MS - mono_ms();
        ssize_t r;

        if (left <= 0) {
            snprintf(why, sizeof(why), "no answer from %s within %d s", p->sock,
                     PUSH_STALL_MS / 1000);
            break;
        }
        if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR)
            break;
        if ((pfd.revents & POLLOUT) && sent < out_len) {
            r = send(fd, out + sent, out_len - sent, MSG_NOSIGNAL);
            if (r > 0) {
                sent += (size_t)r;
                last = mono_ms();
            } else if (r < 0 && errno != EAGAIN && errno != EINTR) {
                snprintf(why, sizeof(why), "write to %s failed: %s", p->sock, strerror(errno));
                break;
            }
        }
        if (!(pfd.revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        r = recv(fd, in, sizeof(in), 0);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
            snprintf(why, sizeof(why), "%s closed the connection", p->sock);
            break;
        }
        if (r < 0)
            continue;
        last = mono_ms();
        for (ssize_t i = 0; i < r && done < n; i++) {
            char ch = in[i];

            if (prompts >= 1 && alen < sizeof(answer) - 1)
                answer[alen++] = ch;
            match = ch == delim[match] ? match + 1 : ch == delim[0] ? 1 : 0;
            if (match < 3)
                continue;
            match = 0;
            if (++prompts >= 2) {
                /* The answer without the delimiter and trailing blanks. */
                alen = alen >= 3 ? alen - 3 : 0;
                while (alen > 0 && (answer[alen - 1] == '\n' || answer[alen - 1] == ' '))
                    alen--;
                answer[alen] = '\0';
                add_result(p, items[done].slot, strstr(answer, "OCSP Response updated") != NULL,
                           answer);
                done++;
            }
            alen = 0;
        }
    }
    for (; done < n; done++)
        add_result(p, items[done].slot, false, why);
    if (fd >= 0)
        close(fd);
    free(out);
    for (int i = 0; i < n; i++)
        free(items[i].der);
    if (write(p->wake[1], "", 1) < 0) {
        /* full: the loop is being woken already */
    }
}

static void *run(void *arg)
{
    wpush *p = arg;
    pitem *batch = malloc(PUSH_BATCH * sizeof(*batch));

    pthread_mutex_lock(&p->mu);
    while (!p->stop && batch != NULL) {
        int n;

        if (p->n_items == 0) {
            pthread_cond_wait(&p->cv, &p->mu);
            continue;
        }
        n = p->n_items < PUSH_BATCH ? p->n_items : PUSH_BATCH;
        memcpy(batch, p->items, (size_t)n * sizeof(*batch));
        memmove(p->items, p->items + n, (size_t)(p->n_items - n) * sizeof(*batch));
        p->n_items -= n;
        for (int i = 0; i < n; i++)
            p->where[batch[i].slot] = -1;
        for (int i = 0; i < p->n_items; i++)
            p->where[p->items[i].slot] = i;
        pthread_mutex_unlock(&p->mu);
        push_batch(p, batch, n);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    free(batch);
    return NULL;
}

wpush *wp_new(const char *socket_path)
{
    wpush *p = calloc(1, sizeof(*p));

    if (p == NULL || (p->sock = strdup(socket_path)) == NULL || pipe(p->wake) != 0) {
        if (p)
            free(p->sock);
        free(p);
        return NULL;
    }
    for (int i = 0; i < 2; i++) {
        fcntl(p->wake[i], F_SETFL, O_NONBLOCK);
        fcntl(p->wake[i], F_SETFD, FD_CLOEXEC);
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (pthread_create(&p->thread, NULL, run, p) != 0) {
        close(p->wake[0]);
        close(p->wake[1]);
        free(p->sock);
        free(p);
        return NULL;
    }
    return p;
}

void wp_free(wpush *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    for (int i = 0; i < p->n_items; i++)
        free(p->items[i].der);
    free(p->items);
    free(p->where);
    free(p->results);
    close(p->wake[0]);
    close(p->wake[1]);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->sock);
    free(p);
}

void wp_queue(wpush *p, int slot, const unsigned char *der, size_t len)
{
    unsigned char *copy = malloc(len);

    if (copy == NULL)
        return;
    memcpy(copy, der, len);
    pthread_mutex_lock(&p->mu);
    if (slot >= p->cap_where) {
        int cap = slot < 256 ? 256 : slot * 2;
        int *w = realloc(p->where, (size_t)cap * sizeof(*w));

        if (w == NULL)
            goto fail;
        for (int i = p->cap_where; i < cap; i++)
            w[i] = -1;
        p->where = w;
        p->cap_where = cap;
    }
    if (p->where[slot] >= 0) { /* unsent: the newer response replaces it */
        pitem *it = &p->items[p->where[slot]];

        free(it->der);
        it->der = copy;
        it->len = len;
        pthread_mutex_unlock(&p->mu);
        return;
    }
    if (p->n_items == p->cap_items) {
        int cap = p->cap_items ? p->cap_items * 2 : 64;
        pitem *n = realloc(p->items, (size_t)cap * sizeof(*n));

        if (n == NULL)
            goto fail;
        p->items = n;
        p->cap_items = cap;
    }
    p->items[p->n_items] = (pitem){slot, copy, len};
    p->where[slot] = p->n_items++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return;
fail:
    pthread_mutex_unlock(&p->mu);
    free(copy);
}

void wp_results(wpush *p, void (*cb)(void *arg, int slot, bool ok, const char *answer),
                void *arg)
{
    char buf[64];
    presult *r;
    int n;

    while (read(p->wake[0], buf, sizeof(buf)) > 0)
        ;
    pthread_mutex_lock(&p->mu);
    r = p->results;
    n = p->n_results;
    p->results = NULL;
    p->n_results = p->cap_results = 0;
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < n; i++)
        cb(arg, r[i].slot, r[i].ok, r[i].answer);
    free(r);
}
