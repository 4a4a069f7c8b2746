/* mod_srvocsp in server-status (see mod_srvocsp_status.h). */
#include "mod_srvocsp_status.h"

#include "apr_strings.h"
#include "http_protocol.h"
#include "mod_status.h"

#include <stdatomic.h>
#include <time.h>

static atomic_ulong g_asked, g_stapled;

void mod_srvocsp_status_count(int stapled)
{
    atomic_fetch_add_explicit(&g_asked, 1, memory_order_relaxed);
    if (stapled)
        atomic_fetch_add_explicit(&g_stapled, 1, memory_order_relaxed);
}

void mod_srvocsp_status_reset(void)
{
    atomic_store(&g_asked, 0);
    atomic_store(&g_stapled, 0);
}

/* What one certificate staples now: |state| and, when there is a
 * response, the seconds it stays valid (else -1). */
static void state_of(srvocsp_handle *h, const char **state, apr_int64_t *left)
{
    srvocsp_response *resp = srvocsp_get1_response(h);

    *left = -1;
    if (resp == NULL) {
        *state = srvocsp_last_error() == SRVOCSP_E_STATUS_UNKNOWN ? "none (unknown)" : "none";
        return;
    }
    *state = srvocsp_response_status(resp) == SRVOCSP_STATUS_REVOKED ? "REVOKED" : "good";
    *left = (apr_int64_t)(srvocsp_response_expires(resp) - (int64_t)time(NULL));
    srvocsp_response_free(resp);
}

int mod_srvocsp_status_write(request_rec *r, int flags, const mod_srvocsp_gen *gen)
{
    size_t taken = 0, stapled = 0;

    for (size_t i = 0; i < gen->n; i++) {
        const char *state;
        apr_int64_t left;

        if (gen->v[i].h == NULL)
            continue;
        taken++;
        state_of(gen->v[i].h, &state, &left);
        stapled += left >= 0;
    }
    if (flags & AP_STATUS_SHORT) {
        ap_rprintf(r, "SrvOcspCertificates: %lu\nSrvOcspCertificatesStapled: %lu\n",
                   (unsigned long)taken, (unsigned long)stapled);
        ap_rprintf(r, "SrvOcspHandshakesAsked: %lu\nSrvOcspHandshakesStapled: %lu\n",
                   atomic_load(&g_asked), atomic_load(&g_stapled));
        return OK;
    }
    ap_rputs("<hr />\n<h2>srvocsp</h2>\n", r);
    ap_rprintf(r,
               "<p>%lu certificates, %lu of them stapled now.  This child answered %lu "
               "handshakes that asked for a staple, %lu with one.</p>\n",
               (unsigned long)taken, (unsigned long)stapled, atomic_load(&g_asked),
               atomic_load(&g_stapled));
    if (flags & AP_STATUS_NOTABLE)
        return OK;
    ap_rputs("<table border=\"0\"><tr><th>certificate</th><th>stapled</th><th>valid for "
             "(s)</th><th>next retrieval in (s)</th><th>last failure</th></tr>\n",
             r);
    for (size_t i = 0; i < gen->n; i++) {
        const mod_srvocsp_cert *c = &gen->v[i];
        const char *state;
        apr_int64_t left, next;
        char why[512];

        if (c->h == NULL)
            continue;
        state_of(c->h, &state, &left);
        next = (apr_int64_t)srvocsp_handle_next_attempt(c->h);
        next = next > 0 ? next - (apr_int64_t)time(NULL) : 0;
        srvocsp_handle_last_failure(c->h, why, sizeof(why));
        ap_rprintf(r,
                   "<tr><td>%s</td><td>%s</td><td>%s</td><td>%" APR_INT64_T_FMT
                   "</td><td>%s</td></tr>\n",
                   ap_escape_html(r->pool, c->name), state,
                   left >= 0 ? apr_psprintf(r->pool, "%" APR_INT64_T_FMT, left) : "-", next,
                   ap_escape_html(r->pool, why));
    }
    ap_rputs("</table>\n", r);
    return OK;
}
