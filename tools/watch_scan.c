/*
 * srvocsp watch: finding the certificates of the watched folders (*.pem,
 * *.crt: the certificate then its chain, or a separate <file>.issuer as
 * HAProxy uses), opening one handle each, and adopting what the servers
 * already staple: an existing <cert>.ocsp is offered to the library,
 * verified and judged like a responder's answer, so a restart during an
 * outage keeps serving (and reporting) it.
 */
#include <dirent.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "watch.h"

/* Which slot holds a certificate file, during one scan: a rescan of 10,000
 * files would otherwise compare every file with every certificate. */
typedef struct pindex {
    int *slot;                   /* -1: empty; open addressing */
    size_t mask, used;
    bool ok;                     /* false: out of memory, search the table */
} pindex;

static size_t path_hash(const char *s)
{
    size_t h = 1469598103934665603u;

    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211u;
    return h;
}

static void pindex_put(pindex *x, const watch *w, int slot)
{
    size_t j = path_hash(w->certs[slot]->path) & x->mask;

    while (x->slot[j] >= 0)
        j = (j + 1) & x->mask;
    x->slot[j] = slot;
    x->used++;
}

/* Indexes every slot in use, with room for at least |more| additions. */
static bool pindex_build(pindex *x, const watch *w, size_t more)
{
    size_t cap = 64;
    int *t;

    while (cap < ((size_t)w->n_certs + more) * 2 + 2)
        cap *= 2;
    if ((t = malloc(cap * sizeof(int))) == NULL)
        return false;
    free(x->slot);
    x->slot = t;
    x->mask = cap - 1;
    x->used = 0;
    for (size_t i = 0; i < cap; i++)
        x->slot[i] = -1;
    for (int i = 0; i < w->n_certs; i++)
        if (w->certs[i] != NULL)
            pindex_put(x, w, i);
    return true;
}

/* Adds the certificate just opened in |slot|; false when the index could
 * not grow (the caller then searches without it). */
static bool pindex_add(pindex *x, const watch *w, int slot)
{
    if ((x->used + 1) * 2 > x->mask + 1 && !pindex_build(x, w, x->used + 64))
        return false;
    pindex_put(x, w, slot);
    return true;
}

/* The slot watching |path|, or -1. */
static int pindex_find(const pindex *x, const watch *w, const char *path)
{
    if (!x->ok) {
        for (int i = 0; i < w->n_certs; i++)
            if (w->certs[i] != NULL && strcmp(w->certs[i]->path, path) == 0)
                return i;
        return -1;
    }
    for (size_t j = path_hash(path) & x->mask; x->slot[j] >= 0; j = (j + 1) & x->mask) {
        const wcert *c = w->certs[x->slot[j]];

        if (c != NULL && strcmp(c->path, path) == 0)
            return x->slot[j];
    }
    return -1;
}

void wscan_drop(watch *w, int slot, const char *event)
{
    wcert *c = w->certs[slot];

    if (c == NULL)
        return;
    if (event != NULL)
        wlog(w, event, c, NULL, 0);
    wq_disarm(w->queue, slot);
    wh_forget(w, slot);
    srvocsp_close(c->h);
    w->certs[slot] = NULL;
    free(c->path);
    free(c->ocsp_path);
    free(c->snippet_path);
    free(c);
    if (slot < w->free_hint)
        w->free_hint = slot;
    w->status_dirty = w->metrics_dirty = true;
}

static bool is_candidate(const char *name)
{
    size_t n = strlen(name);

    if (name[0] == '.')
        return false;
    return (n > 4 && (strcmp(name + n - 4, ".pem") == 0 || strcmp(name + n - 4, ".crt") == 0));
}

static void adopt(watch *w, wcert *c)
{
    size_t len = 0;
    unsigned char *der = cli_read_file(c->ocsp_path, WATCH_MAX_FILE, &len);
    srvocsp_error e;
    char why[600];

    if (der == NULL) {
        if (errno == EFBIG) {
            c->file = WFILE_KEPT;
            memset(c->file_md, 0, 32);
            snprintf(why, sizeof(why), "%s is larger than %d bytes", c->ocsp_path,
                     WATCH_MAX_FILE);
            wlog(w, "not-adopted", c, why, 0);
        }
        wstate_reconcile(w, c);
        return;
    }
    if (len == 0) {
        c->file = WFILE_EMPTY;
        free(der);
        wstate_reconcile(w, c);
        return;
    }
    c->file = WFILE_KEPT;
    {
        unsigned int n = 0;

        EVP_Digest(der, len, c->file_md, &n, EVP_sha256(), NULL);
    }
    e = srvocsp_handle_offer_der(c->h, der, len);
    free(der);
    if (e != SRVOCSP_OK) {
        snprintf(why, sizeof(why), "%s: %s", srvocsp_error_name(e), srvocsp_last_error_text());
        wlog(w, "not-adopted", c, why, srvocsp_handle_next_attempt(c->h));
    }
    wstate_reconcile(w, c);
}

/* Appends the PEM certificates of |path| to |chain|: at most
 * WATCH_MAX_FILE bytes and WATCH_MAX_CHAIN certificates are read (the
 * watched directory may hold anything).  Returns how many. */
static int read_pem_certs(const char *path, STACK_OF(X509) *chain)
{
    size_t len = 0;
    unsigned char *b = cli_read_file(path, WATCH_MAX_FILE, &len);
    BIO *bio = b ? BIO_new_mem_buf(b, (int)len) : NULL;
    X509 *x;
    int n = 0;

    while (bio != NULL && n < WATCH_MAX_CHAIN && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
        if (!sk_X509_push(chain, x)) {
            X509_free(x);
            break;
        }
        n++;
    }
    ERR_clear_error();
    BIO_free(bio);
    free(b);
    return n;
}

/* A free slot, growing the table (and the queue's) when needed; -1. */
static int free_slot(watch *w)
{
    int slot;

    /* Every slot below the hint is taken. */
    for (slot = w->free_hint; slot < w->n_certs && w->certs[slot] != NULL; slot++)
        ;
    w->free_hint = slot;
    if (slot == w->cap_certs) {
        int cap = w->cap_certs ? w->cap_certs * 2 : 256;
        wcert **n;

        if (cap > MAX_CERTS)
            cap = MAX_CERTS;
        if (slot == cap || (n = realloc(w->certs, (size_t)cap * sizeof(*n))) == NULL)
            return -1;
        memset(n + w->cap_certs, 0, (size_t)(cap - w->cap_certs) * sizeof(*n));
        w->certs = n;
        w->cap_certs = cap;
    }
    if (!wq_reserve(w->queue, w->cap_certs))
        return -1;
    return slot;
}

static void open_cert(watch *w, pindex *known, const char *path)
{
    STACK_OF(X509) *chain = sk_X509_new_null();
    char issuer_path[4200];
    srvocsp_params p;
    wcert *c = NULL;
    X509 *x;
    int i, slot;
    unsigned char md[32];
    unsigned int mdlen = 0;

    if (chain == NULL || read_pem_certs(path, chain) == 0)
        goto out; /* unreadable, too large, a key or something else */
    x = sk_X509_value(chain, 0);
    if (X509_check_ca(x) != 0)
        goto out; /* a CA bundle, not a served certificate */
    snprintf(issuer_path, sizeof(issuer_path), "%s.issuer", path);
    read_pem_certs(issuer_path, chain); /* optional */
    X509_digest(x, EVP_sha256(), md, &mdlen);
    if ((i = pindex_find(known, w, path)) >= 0) {
        wcert *o = w->certs[i];

        o->seen = true;
        if (memcmp(o->leaf_md, md, 32) == 0)
            goto out; /* unchanged */
        /* Renewed: close the old handle, open the new certificate. */
        wscan_drop(w, i, "renewed");
    }
    if ((slot = free_slot(w)) < 0) {
        wlog(w, "skipped", NULL, "too many certificates", 0);
        goto out;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL || (c->path = strdup(path)) == NULL ||
        (c->ocsp_path = malloc(strlen(path) + 6)) == NULL ||
        (c->snippet_path = malloc(strlen(path) + 16)) == NULL)
        goto fail;
    sprintf(c->ocsp_path, "%s.ocsp", path);
    sprintf(c->snippet_path, "%s.stapling.conf", path);
    if (!w->nginx_snippets) {
        free(c->snippet_path);
        c->snippet_path = NULL;
    }
    memcpy(c->leaf_md, md, 32);
    c->seen = true;
    c->slot = slot;
    p = w->params;
    p.update_cb = wq_on_update;
    p.update_arg = wq_arm(w->queue, slot);
    c->h = srvocsp_open(x, chain, &p);
    if (c->h == NULL) {
        char why[600];

        snprintf(why, sizeof(why), "%s", srvocsp_last_error_text());
        wlog(w, "skipped", c, why, 0);
        wq_disarm(w->queue, slot);
        goto fail;
    }
    w->certs[slot] = c;
    if (slot == w->n_certs)
        w->n_certs++;
    if (known->ok)
        known->ok = pindex_add(known, w, slot);
    w->status_dirty = w->metrics_dirty = true;
    wlog(w, "watching", c, NULL, srvocsp_handle_next_attempt(c->h));
    adopt(w, c);
    c = NULL;
    goto out;
fail:
    if (c) {
        free(c->path);
        free(c->ocsp_path);
        free(c->snippet_path);
        free(c);
    }
out:
    sk_X509_pop_free(chain, X509_free);
}

void wscan(watch *w)
{
    int d, i;
    pindex known = {NULL, 0, 0, false};

    for (i = 0; i < w->n_certs; i++)
        if (w->certs[i])
            w->certs[i]->seen = false;
    known.ok = pindex_build(&known, w, 0);
    for (d = 0; d < w->n_dirs; d++) {
        DIR *dh = opendir(w->dirs[d]);
        struct dirent *de;

        if (dh == NULL) {
            fprintf(stderr, "srvocsp watch: cannot read %s: %s\n", w->dirs[d], strerror(errno));
            continue;
        }
        while ((de = readdir(dh)) != NULL) {
            char path[4096];
            struct stat st;

            if (!is_candidate(de->d_name))
                continue;
            snprintf(path, sizeof(path), "%s/%s", w->dirs[d], de->d_name);
            if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
                open_cert(w, &known, path);
        }
        closedir(dh);
    }
    for (i = 0; i < w->n_certs; i++) {
        wcert *c = w->certs[i];

        if (c && !c->seen)
            wscan_drop(w, i, "removed");
    }
    free(known.slot);
    w->status_dirty = true;
}
