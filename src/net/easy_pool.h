/*
 * The built-in transport's easy handles, kept between transfers: a handle
 * made and destroyed per refresh cost its allocations (the handle, its
 * download buffer) and the setup of its defaults every time.  Also the
 * two header lists every request sends, built once and shared read-only.
 */
#ifndef SRVOCSP_EASY_POOL_H
#define SRVOCSP_EASY_POOL_H

#include "internal.h"

#include <curl/curl.h>

/* Handles kept at most: the engine's default concurrency is 32. */
#define SRVOCSP__EASY_POOL_MAX 64

typedef struct srvocsp__easy_pool {
    pthread_mutex_t mu; /* guards |idle| and |n_idle| */
    CURL *idle[SRVOCSP__EASY_POOL_MAX];
    unsigned n_idle;
    struct curl_slist *get_headers, *post_headers;
} srvocsp__easy_pool;

/* Builds the header lists; false (nothing to free) when out of memory. */
SRVOCSP__HIDDEN bool srvocsp__easy_pool_init(srvocsp__easy_pool *p);
/* Frees the kept handles (those given back while the transport failed
 * its transfers at shutdown too) and the lists; once nothing else uses
 * |p|. */
SRVOCSP__HIDDEN void srvocsp__easy_pool_free(srvocsp__easy_pool *p);
/* A handle with every option at its default: a kept one, reset, or a new
 * one; NULL when out of memory.  Any thread. */
SRVOCSP__HIDDEN CURL *srvocsp__easy_get(srvocsp__easy_pool *p);
/* Gives a finished handle back (out of every multi handle): kept when
 * there is room, cleaned up otherwise.  Any thread; NULL is ignored. */
SRVOCSP__HIDDEN void srvocsp__easy_put(srvocsp__easy_pool *p, CURL *c);
/* The headers of a request: Accept, and Content-Type for a POST. */
static inline struct curl_slist *srvocsp__easy_headers(const srvocsp__easy_pool *p, bool post)
{
    return post ? p->post_headers : p->get_headers;
}

#endif
