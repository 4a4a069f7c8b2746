/*
 * What a responder means by each OCSPResponseStatus other than successful
 * (RFC 6960 4.2.1), in words an operator can act on.  The engine retries
 * them all with the failure backoff (docs/responders.md): internalError and
 * tryLater as a transport failure, unauthorized as unknown (a certificate
 * issued minutes ago may not be known yet), each capped at the backoff's
 * ceiling; malformedRequest to a GET is first sent again as POST by the
 * transport.
 */
#include "internal.h"

#include <openssl/ocsp.h>

static const struct {
    int status;
    const char *text;
} g_status[] = {
    {OCSP_RESPONSE_STATUS_MALFORMEDREQUEST,
     "responder answered malformedRequest (1): it could not read the request"},
    {OCSP_RESPONSE_STATUS_INTERNALERROR,
     "responder answered internalError (2): it failed inside and may answer later"},
    {OCSP_RESPONSE_STATUS_TRYLATER,
     "responder answered tryLater (3): it is busy or not ready and asks to be asked later"},
    {OCSP_RESPONSE_STATUS_SIGREQUIRED,
     "responder answered sigRequired (5): it answers only signed requests, which srvocsp "
     "does not send"},
    {OCSP_RESPONSE_STATUS_UNAUTHORIZED,
     "responder answered unauthorized (6): it does not answer for this certificate (not known "
     "to it yet, as soon after issuance, or it is not the responder for this issuer)"},
};

void srvocsp__ocsp_status_text(int status, char *buf, size_t len)
{
    size_t i;

    for (i = 0; i < sizeof(g_status) / sizeof(g_status[0]); i++)
        if (g_status[i].status == status) {
            srvocsp__fmt(buf, len, "%s", g_status[i].text);
            return;
        }
    srvocsp__fmt(buf, len, "responder answered the undefined OCSP response status %d", status);
}
