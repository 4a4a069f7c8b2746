/*
 * Completions: finished work (a transfer's answer, a response a store
 * brought, an offer, a look that found nothing) handed to the engine
 * thread, which handles them in order (complete.c).
 */
#include "engine/engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

srvocsp__completion *srvocsp__completion_new_locked(srvocsp__entry *en, srvocsp__source src)
{
    srvocsp__completion *c = srvocsp__calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    c->en = en;
    c->src = src;
    en->refs++;
    return c;
}

void srvocsp__completion_free(srvocsp__completion *c)
{
    if (c->leased) /* after the save: the others now find it */
        c->en->store->ops->unlease(c->en->store, c->lease);
    srvocsp_response_free(c->snap);
    free(c->content_type);
    free(c->content_encoding);
    free(c->body);
    free(c);
}

void srvocsp__done_push_locked(srvocsp_engine *e, srvocsp__completion *c)
{
    c->next = NULL;
    if (e->done_tail)
        e->done_tail->next = c;
    else
        e->done_head = c;
    e->done_tail = c;
    srvocsp__engine_wake_locked(e);
}

void srvocsp__transport_done(void *arg, const srvocsp_http_result *res)
{
    srvocsp__completion *c = arg;
    srvocsp_engine *e = c->en->eng;

    c->error = res->error;
    c->http_status = res->http_status;
    if (res->content_type)
        c->content_type = srvocsp__strdup(res->content_type);
    if (res->content_encoding &&
        (c->content_encoding = srvocsp__strdup(res->content_encoding)) == NULL)
        c->error = SRVOCSP_E_NOMEM;
    if (res->detail)
        snprintf(c->detail, sizeof(c->detail), "%s", res->detail);
    if (res->error == SRVOCSP_OK && res->body_len > 0) {
        c->body = srvocsp__malloc(res->body_len);
        if (c->body == NULL) {
            c->error = SRVOCSP_E_NOMEM;
        } else {
            memcpy(c->body, res->body, res->body_len);
            c->body_len = res->body_len;
        }
    }
    pthread_mutex_lock(&e->mu);
    srvocsp__done_push_locked(e, c);
    pthread_mutex_unlock(&e->mu);
}

void srvocsp__deliver(srvocsp_engine *e, srvocsp__completion *c, srvocsp_response *snap,
                      int64_t at)
{
    c->snap = snap;
    if (snap == NULL) {
        c->wait = true;
        c->wait_at = at;
    }
    pthread_mutex_lock(&e->mu);
    srvocsp__done_push_locked(e, c);
    pthread_mutex_unlock(&e->mu);
}
