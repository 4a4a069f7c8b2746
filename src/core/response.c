/* Immutable, reference-counted response snapshots. */
#include "core/proxy.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

srvocsp_response *srvocsp__response_new(const unsigned char *der, size_t len)
{
    srvocsp_response *r;

    if (len == 0 || len > SRVOCSP__MAX_RESPONSE_CAP)
        return NULL;
    r = srvocsp__calloc(1, sizeof(*r) + len);
    if (r == NULL)
        return NULL;
    atomic_init(&r->refs, 1);
    r->view.pb = (unsigned char *)(r + 1);
    memcpy(r->view.pb, der, len);
    r->len = len;
    r->rev_reason = -1;
    r->view.cb_size = (uint32_t)sizeof(r->view);
    r->view.cb = (uint32_t)len;
    return r;
}

srvocsp_response *srvocsp_response_up_ref(srvocsp_response *r)
{
    if (r != NULL)
        atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
    return r;
}

void srvocsp_response_free(srvocsp_response *r)
{
    srvocsp_response *base;
    bool pooled;

    if (r == NULL || srvocsp__proxy_owner_free(r))
        return;
    /* Read before the decrement: once a pooled proxy's count reaches 0 its
     * set's owner may refill it at once, so its fields are not ours after. */
    base = r->base;
    pooled = r->pooled;
    /* acq_rel: our reads of the snapshot happen before whoever frees it,
     * and the one who frees sees every other holder's reads done.  (Not a
     * release decrement plus an acquire fence: ThreadSanitizer does not
     * model standalone fences.) */
    if (atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (base != NULL)
        srvocsp_response_free(base);
    if (!pooled)
        free(r);
}

const unsigned char *srvocsp_response_der(const srvocsp_response *r, size_t *len)
{
    if (r == NULL) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = r->len;
    return r->view.pb; /* a proxy's bytes are its snapshot's */
}

srvocsp_cert_status srvocsp_response_status(const srvocsp_response *r)
{
    return r ? r->status : SRVOCSP_STATUS_UNKNOWN;
}

int64_t srvocsp_response_this_update(const srvocsp_response *r)
{
    return r ? r->this_update : 0;
}

int64_t srvocsp_response_next_update(const srvocsp_response *r)
{
    return r ? r->next_update : 0;
}

int64_t srvocsp_response_produced_at(const srvocsp_response *r)
{
    return r ? r->produced_at : 0;
}

int64_t srvocsp_response_expires(const srvocsp_response *r)
{
    return r ? r->expires : 0;
}

int64_t srvocsp_response_revocation_time(const srvocsp_response *r)
{
    return r ? r->rev_time : 0;
}

int srvocsp_response_revocation_reason(const srvocsp_response *r)
{
    return r ? r->rev_reason : -1;
}

int64_t srvocsp_response_servable_until(const srvocsp_response *r, const srvocsp_params *params)
{
    uint32_t min_validity = 600;
    bool adaptive = false;

    if (r == NULL || r->status == SRVOCSP_STATUS_UNKNOWN)
        return 0;
    if (params != NULL) {
        min_validity = params->min_validity_s;
        /* A caller built against an older, shorter srvocsp_params. */
        if (params->struct_size >= offsetof(srvocsp_params, adaptive_min_validity) + sizeof(int))
            adaptive = params->adaptive_min_validity != 0;
    }
    return r->expires - srvocsp__margin(r, min_validity, adaptive);
}
