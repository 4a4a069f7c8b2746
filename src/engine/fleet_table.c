/*
 * The fleet's table: which entries each shared store serves, by store
 * name, so that an announcement finds its entry.  Only data structure;
 * the fleet's logic (engine/fleet.c) stands on it.  Under e->mu.
 */
#include "engine/fleet_table.h"

#include <stdlib.h>
#include <string.h>

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;

    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
    return h;
}

bool srvocsp__fleet_open_store(const srvocsp_params *p, srvocsp__store **out)
{
    *out = NULL;
    if (p->store_url == NULL)
        return true;
    *out = srvocsp__store_open_shared(p->store_url, p->store_prefix);
    return *out != NULL;
}

static bool grow(struct srvocsp__fleet *f)
{
    size_t n = f->n_buckets ? f->n_buckets * 2 : 64, i;
    srvocsp__entry **b = srvocsp__calloc(n, sizeof(*b));

    if (b == NULL)
        return false;
    for (i = 0; i < f->n_buckets; i++) {
        srvocsp__entry *en = f->buckets[i], *next;

        for (; en != NULL; en = next) {
            size_t k = name_hash(en->store_name) % n;

            next = en->fleet_next;
            en->fleet_next = b[k];
            b[k] = en;
        }
    }
    free(f->buckets);
    f->buckets = b;
    f->n_buckets = n;
    return true;
}

void srvocsp__fleet_free(struct srvocsp__fleet *f)
{
    unsigned i;

    for (i = 0; i < f->n_stores; i++)
        f->stores[i].st->ops->free(f->stores[i].st);
    free(f->buckets);
    free(f);
}

bool srvocsp__fleet_attach_locked(srvocsp__entry *en, srvocsp__store **st)
{
    srvocsp_engine *e = en->eng;
    struct srvocsp__fleet *f = e->fleet;
    unsigned i;
    size_t k;

    if (*st == NULL)
        return true;
    if (en->store_name[0] == '\0' && !srvocsp__store_name(en->leaf, en->issuer, en->store_name))
        return false;
    if (f == NULL) {
        f = srvocsp__calloc(1, sizeof(*f));
        if (f == NULL)
            return false;
        e->fleet = f;
    }
    if (f->n + 1 > f->n_buckets && !grow(f))
        return false;
    /* One reference per distinct store, the fleet's: entries borrow it. */
    for (i = 0; i < f->n_stores; i++)
        if (f->stores[i].st == *st)
            break;
    if (i == f->n_stores) {
        if (f->n_stores == SRVOCSP__FLEET_STORES)
            return false;
        f->stores[i].st = *st;
        f->stores[i].epoch = (*st)->ops->epoch ? (*st)->ops->epoch(*st) : 0;
        f->stores[i].fd = -1;
        f->n_stores++;
    } else {
        (*st)->ops->free(*st);
    }
    *st = NULL;
    en->fleet = f->stores[i].st;
    k = name_hash(en->store_name) % f->n_buckets;
    en->fleet_next = f->buckets[k];
    f->buckets[k] = en;
    f->n++;
    return true;
}

void srvocsp__fleet_detach_locked(srvocsp__entry *en)
{
    srvocsp_engine *e = en->eng;
    struct srvocsp__fleet *f = e->fleet;
    srvocsp__entry **pp;

    if (en->fleet == NULL || f == NULL)
        return;
    pp = &f->buckets[name_hash(en->store_name) % f->n_buckets];
    for (; *pp != NULL; pp = &(*pp)->fleet_next)
        if (*pp == en) {
            *pp = en->fleet_next;
            f->n--;
            break;
        }
    en->fleet = NULL;
    if (f->n == 0 && !f->servicing) {
        e->fleet = NULL;
        srvocsp__fleet_free(f);
    }
}

srvocsp__entry *srvocsp__fleet_find_locked(struct srvocsp__fleet *f, srvocsp__store *st,
                                           const char *name)
{
    srvocsp__entry *en;

    if (f->n_buckets == 0)
        return NULL;
    for (en = f->buckets[name_hash(name) % f->n_buckets]; en != NULL; en = en->fleet_next)
        if (en->fleet == st && !en->dead && strcmp(en->store_name, name) == 0)
            return en;
    return NULL;
}
