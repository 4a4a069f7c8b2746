#include "net/easy_pool.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

bool srvocsp__easy_pool_init(srvocsp__easy_pool *p)
{
    struct curl_slist *h;

    memset(p, 0, sizeof(*p));
    p->get_headers = curl_slist_append(NULL, "Accept: application/ocsp-response");
    p->post_headers = curl_slist_append(NULL, "Accept: application/ocsp-response");
    if (p->get_headers == NULL || p->post_headers == NULL)
        goto fail;
    h = curl_slist_append(p->post_headers, "Content-Type: application/ocsp-request");
    if (h == NULL)
        goto fail;
    pthread_mutex_init(&p->mu, NULL);
    return true;
fail:
    curl_slist_free_all(p->get_headers);
    curl_slist_free_all(p->post_headers);
    memset(p, 0, sizeof(*p));
    return false;
}

void srvocsp__easy_pool_free(srvocsp__easy_pool *p)
{
    while (p->n_idle > 0)
        curl_easy_cleanup(p->idle[--p->n_idle]);
    curl_slist_free_all(p->get_headers);
    curl_slist_free_all(p->post_headers);
    pthread_mutex_destroy(&p->mu);
}

CURL *srvocsp__easy_get(srvocsp__easy_pool *p)
{
    CURL *c = NULL;

    pthread_mutex_lock(&p->mu);
    if (p->n_idle > 0)
        c = p->idle[--p->n_idle];
    pthread_mutex_unlock(&p->mu);
    if (c == NULL)
        return curl_easy_init();
    curl_easy_reset(c);
    return c;
}

void srvocsp__easy_put(srvocsp__easy_pool *p, CURL *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    if (p->n_idle < SRVOCSP__EASY_POOL_MAX) {
        p->idle[p->n_idle++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&p->mu);
    curl_easy_cleanup(c); /* no room: a no-op for a kept one (NULL) */
}
