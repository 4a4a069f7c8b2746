/*
 * The simulation's shared store: the interface of store/store.h with the
 * rules of the Redis store (a lease with a time to live, compare-and-set
 * on the bytes the caller judged, an announcement to every other
 * connection, an epoch that moves when saves may have been lost), kept in
 * memory on virtual time.  Faults: down (every call fails, as a dead or
 * unreachable Redis), failover (the last writes are lost, the epoch moves).
 * One connection per URL, as the Redis store shares one per process.
 */
#include "sim.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_KEYS 4096
#define WRITE_LOG 64

typedef struct value {
    char name[SRVOCSP__STORE_NAME_LEN + 1];
    unsigned char *der;
    size_t len;
    char sha[41];
    int64_t expires;
    char lease[SRVOCSP__LEASE_TOKEN_LEN + 1];
    int64_t lease_until;
} value;

typedef struct announce {
    struct announce *next;
    char name[SRVOCSP__STORE_NAME_LEN + 1];
    unsigned char *der;
    size_t len;
} announce;

typedef struct conn {
    srvocsp__store base;
    sim_store_hub *hub;
    struct conn *next;
    char url[128];
    unsigned refs;
    announce *head, *tail;
    uint64_t reconnects;         /* a forked child's connection is its own */
} conn;

typedef struct undo {
    int key;
    unsigned char *der;          /* the value before the write (NULL: none) */
    size_t len;
    char sha[41];
    int64_t expires;
} undo;

struct sim_store_hub {
    const int64_t *clock;
    value keys[MAX_KEYS];
    int n_keys;
    conn *conns;
    bool down;
    uint64_t epoch, saves, tokens;
    undo log[WRITE_LOG];
    unsigned log_n;
};

static sim_store_hub *g_hub;

static void sha1_hex(const unsigned char *d, size_t n, char out[41])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int l = 0, i;

    EVP_Digest(d, n, md, &l, EVP_sha1(), NULL);
    for (i = 0; i < l && i < 20; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static value *find(sim_store_hub *h, const char *name, bool make)
{
    int i;

    for (i = 0; i < h->n_keys; i++)
        if (strcmp(h->keys[i].name, name) == 0)
            return &h->keys[i];
    if (!make || h->n_keys == MAX_KEYS)
        return NULL;
    memset(&h->keys[h->n_keys], 0, sizeof(value));
    snprintf(h->keys[h->n_keys].name, sizeof(h->keys[0].name), "%s", name);
    return &h->keys[h->n_keys++];
}

/* A value past its expiry is gone, as Redis expires it. */
static void expire(sim_store_hub *h, value *v)
{
    if (v->der != NULL && v->expires <= *h->clock) {
        free(v->der);
        v->der = NULL;
        v->len = 0;
        v->sha[0] = '\0';
    }
}

static srvocsp_error s_load(srvocsp__store *s, const char *name, size_t cap, unsigned char **der,
                            size_t *len, uint64_t *version, char *why, size_t whylen)
{
    conn *c = (conn *)s;
    value *v;

    *der = NULL;
    *len = 0;
    *version = 0;
    if (c->hub->down) {
        srvocsp__fmt(why, whylen, "sim store down");
        return SRVOCSP_E_STORE;
    }
    v = find(c->hub, name, false);
    if (v == NULL)
        return SRVOCSP_OK;
    expire(c->hub, v);
    if (v->der == NULL)
        return SRVOCSP_OK;
    if (v->len > cap) {
        srvocsp__fmt(why, whylen, "sim store: %zu bytes over the cap", v->len);
        return SRVOCSP_E_STORE;
    }
    *der = malloc(v->len);
    memcpy(*der, v->der, v->len);
    *len = v->len;
    *version = 1;
    return SRVOCSP_OK;
}

static uint64_t s_version(srvocsp__store *s, const char *name)
{
    (void)s;
    (void)name;
    return 0;
}

static srvocsp__lease s_lease_acquire(srvocsp__store *s, const char *name, uint32_t ttl_ms,
                                      char token[SRVOCSP__LEASE_TOKEN_LEN + 1],
                                      int64_t *ttl_left_ms, char *why, size_t whylen)
{
    conn *c = (conn *)s;
    value *v;
    int64_t now = *c->hub->clock;

    *ttl_left_ms = -1;
    if (c->hub->down || (v = find(c->hub, name, true)) == NULL) {
        srvocsp__fmt(why, whylen, "sim store down");
        return SRVOCSP__LEASE_ERROR;
    }
    if (v->lease[0] != '\0' && v->lease_until > now) {
        *ttl_left_ms = (v->lease_until - now) * 1000;
        return SRVOCSP__LEASE_BUSY;
    }
    snprintf(token, SRVOCSP__LEASE_TOKEN_LEN + 1, "%032llx", (unsigned long long)++c->hub->tokens);
    memcpy(v->lease, token, SRVOCSP__LEASE_TOKEN_LEN + 1);
    v->lease_until = now + (ttl_ms + 999) / 1000;
    return SRVOCSP__LEASE_HELD;
}

static void s_lease_release(srvocsp__store *s, const char *name, const char *token)
{
    conn *c = (conn *)s;
    value *v;

    if (c->hub->down || (v = find(c->hub, name, false)) == NULL)
        return;
    if (strcmp(v->lease, token) == 0)
        v->lease[0] = '\0';
}

static void log_write(sim_store_hub *h, int key, const value *before)
{
    undo *u;

    if (h->log_n == WRITE_LOG) { /* forget the oldest */
        free(h->log[0].der);
        memmove(h->log, h->log + 1, sizeof(h->log[0]) * (WRITE_LOG - 1));
        h->log_n--;
    }
    u = &h->log[h->log_n++];
    u->key = key;
    u->der = NULL;
    u->len = before->len;
    u->expires = before->expires;
    memcpy(u->sha, before->sha, sizeof(u->sha));
    if (before->der != NULL) {
        u->der = malloc(before->len);
        memcpy(u->der, before->der, before->len);
    }
}

static srvocsp_error s_save_if(srvocsp__store *s, const char *name, const unsigned char *der,
                               size_t len, int64_t this_update, int64_t expires, bool revoked,
                               const char *expect, bool *stored, char *why, size_t whylen)
{
    conn *c = (conn *)s, *o;
    sim_store_hub *h = c->hub;
    value *v;

    (void)this_update;
    (void)revoked;
    *stored = false;
    if (h->down || (v = find(h, name, true)) == NULL) {
        srvocsp__fmt(why, whylen, "sim store down");
        return SRVOCSP_E_STORE;
    }
    if (expires <= *h->clock)
        return SRVOCSP_OK;
    expire(h, v);
    if (strcmp(v->der != NULL ? v->sha : "", expect != NULL ? expect : "") != 0)
        return SRVOCSP_OK; /* moved since the caller looked */
    log_write(h, (int)(v - h->keys), v);
    free(v->der);
    v->der = malloc(len);
    memcpy(v->der, der, len);
    v->len = len;
    v->expires = expires;
    sha1_hex(der, len, v->sha);
    h->saves++;
    *stored = true;
    for (o = h->conns; o != NULL; o = o->next) {
        announce *a;

        if (o == c)
            continue; /* a writer does not hear its own saves */
        a = calloc(1, sizeof(*a));
        snprintf(a->name, sizeof(a->name), "%s", name);
        a->der = malloc(len);
        memcpy(a->der, der, len);
        a->len = len;
        if (o->tail)
            o->tail->next = a;
        else
            o->head = a;
        o->tail = a;
    }
    return SRVOCSP_OK;
}

static int s_notify_fd(srvocsp__store *s)
{
    (void)s;
    return -1; /* the engine drains every turn anyway */
}

static size_t s_notify_drain(srvocsp__store *s, srvocsp__notify_fn fn, void *arg)
{
    conn *c = (conn *)s;
    size_t n = 0;

    if (c->hub->down)
        return 0;
    while (c->head != NULL) {
        announce *a = c->head;

        c->head = a->next;
        if (c->head == NULL)
            c->tail = NULL;
        fn(arg, a->name, a->der, a->len);
        free(a->der);
        free(a);
        n++;
    }
    return n;
}

static void s_discard(srvocsp__store *s, const char *name, const unsigned char *der, size_t len)
{
    conn *c = (conn *)s;
    value *v;
    char sha[41];

    if (c->hub->down || (v = find(c->hub, name, false)) == NULL || v->der == NULL)
        return;
    if (der == NULL) {
        if (v->len == 0 || v->len > len) {
            free(v->der);
            v->der = NULL;
        }
        return;
    }
    sha1_hex(der, len, sha);
    if (strcmp(sha, v->sha) == 0) {
        free(v->der);
        v->der = NULL;
        v->len = 0;
        v->sha[0] = '\0';
    }
}

static uint64_t s_epoch(srvocsp__store *s)
{
    const conn *c = (const conn *)s;

    return c->hub->epoch + c->reconnects;
}

static void drop_announcements(conn *c)
{
    while (c->head != NULL) {
        announce *a = c->head;

        c->head = a->next;
        free(a->der);
        free(a);
    }
    c->tail = NULL;
}

static void s_free(srvocsp__store *s)
{
    conn *c = (conn *)s, **pp;

    if (--c->refs > 0)
        return;
    for (pp = &c->hub->conns; *pp != NULL; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    drop_announcements(c);
    free(c);
}

static const srvocsp__store_ops g_ops = {
    .load = s_load,
    .version = s_version,
    .free = s_free,
    .lease_acquire = s_lease_acquire,
    .lease_release = s_lease_release,
    .save_if = s_save_if,
    .notify_fd = s_notify_fd,
    .notify_drain = s_notify_drain,
    .discard = s_discard,
    .epoch = s_epoch,
};

static srvocsp__store *open_conn(const char *url, const char *prefix, void *arg)
{
    sim_store_hub *h = arg;
    conn *c;

    (void)prefix;
    for (c = h->conns; c != NULL; c = c->next)
        if (strcmp(c->url, url) == 0) {
            c->refs++;
            return &c->base;
        }
    c = calloc(1, sizeof(*c));
    c->base.ops = &g_ops;
    c->hub = h;
    c->refs = 1;
    snprintf(c->url, sizeof(c->url), "%s", url);
    c->next = h->conns;
    h->conns = c;
    return &c->base;
}

sim_store_hub *sim_hub_new(const int64_t *clock)
{
    sim_store_hub *h = calloc(1, sizeof(*h));

    h->clock = clock;
    h->epoch = 1;
    return h;
}

void sim_hub_register(sim_store_hub *h)
{
    g_hub = h;
    srvocsp__store_register("sim", h ? open_conn : NULL, h);
}

void sim_hub_free(sim_store_hub *h)
{
    int i;
    unsigned k;

    if (h == NULL)
        return;
    if (g_hub == h)
        sim_hub_register(NULL);
    for (i = 0; i < h->n_keys; i++)
        free(h->keys[i].der);
    for (k = 0; k < h->log_n; k++)
        free(h->log[k].der);
    free(h);
}

void sim_hub_failover(sim_store_hub *h, unsigned lost)
{
    /* The replica that takes over missed the last writes: undone, newest
     * first. */
    while (lost-- > 0 && h->log_n > 0) {
        undo *u = &h->log[--h->log_n];
        value *v = &h->keys[u->key];

        free(v->der);
        v->der = u->der;
        v->len = u->len;
        v->expires = u->expires;
        memcpy(v->sha, u->sha, sizeof(v->sha));
        v->lease[0] = '\0'; /* leases live on the old master */
    }
    h->epoch++;
}

void sim_hub_fork(sim_store_hub *h, const char *url)
{
    for (conn *c = h->conns; c != NULL; c = c->next) {
        if (strcmp(c->url, url) != 0)
            continue;
        /* Announcements not yet read were in the parent's socket: the
         * child never reads them, and its own connection is new. */
        drop_announcements(c);
        c->reconnects++;
    }
}

void sim_hub_set_down(sim_store_hub *h, bool down)
{
    if (h->down && !down)
        h->epoch++; /* back: what was saved meanwhile may be missing */
    h->down = down;
}

bool sim_hub_down(const sim_store_hub *h)
{
    return h->down;
}

uint64_t sim_hub_saves(const sim_store_hub *h)
{
    return h->saves;
}
