/*
 * The public verification entry (srvocsp.h): a caller's options turned
 * into the policy the one check takes (verify.c), and its reason made the
 * thread's last error.
 */
#include "internal.h"

#include <stddef.h>
#include <string.h>

void srvocsp_verify_opts_init(srvocsp_verify_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->struct_size = sizeof(*o);
    o->clock_skew_s = 300;
    o->max_age_no_next_update_s = 3600;
    o->max_lifetime_s = SRVOCSP__DEFAULT_MAX_LIFETIME;
}

srvocsp_response *srvocsp_verify_der(const unsigned char *der, size_t len, X509 *leaf,
                                     X509 *issuer, const srvocsp_verify_opts *opts)
{
    srvocsp_verify_opts def;
    srvocsp__policy pol = {0};
    srvocsp_response *r = NULL;
    char why[SRVOCSP__REASON_LEN];
    srvocsp_error err;

    if (opts == NULL) {
        srvocsp_verify_opts_init(&def);
        opts = &def;
    }
    /* A caller built before max_lifetime_s existed passes the older size:
     * it gets the default horizon. */
    if (leaf == NULL || issuer == NULL ||
        opts->struct_size < offsetof(srvocsp_verify_opts, max_lifetime_s)) {
        srvocsp__set_error(SRVOCSP_E_INVALID_ARG, "srvocsp_verify_der: %s",
                           leaf == NULL ? "no certificate" : issuer == NULL ? "no issuer"
                                                                            : "bad struct_size");
        return NULL;
    }
    pol.now = opts->now ? opts->now : srvocsp__system_now(NULL);
    pol.skew_s = opts->clock_skew_s;
    pol.max_age_s = opts->max_age_no_next_update_s;
    pol.max_lifetime_s = opts->struct_size >= sizeof(*opts) ? opts->max_lifetime_s
                                                            : SRVOCSP__DEFAULT_MAX_LIFETIME;
    err = srvocsp__verify(der, len, leaf, issuer, &pol, &r, why, sizeof(why));
    if (err != SRVOCSP_OK) {
        srvocsp__set_error(err, "%s", why[0] ? why : srvocsp_strerror(err));
        return NULL;
    }
    return r;
}
