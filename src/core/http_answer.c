/* What a responder's HTTP answer must be before its body is verified. */
#include "internal.h"

#include <strings.h>

static bool content_type_ok(const char *ct)
{
    static const char want[] = "application/ocsp-response";
    size_t n = sizeof(want) - 1;

    if (ct == NULL)
        return false;
    while (*ct == ' ')
        ct++;
    return strncasecmp(ct, want, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

srvocsp_error srvocsp__accept_http(const srvocsp_http_result *res, X509 *leaf, X509 *issuer,
                                   const srvocsp__policy *pol, srvocsp_response **out, char *why,
                                   size_t whylen)
{
    *out = NULL;
    if (res->error != SRVOCSP_OK) {
        srvocsp__fmt(why, whylen, "%s%s%s", srvocsp_strerror(res->error), res->detail ? ": " : "",
                     res->detail ? res->detail : "");
        return res->error;
    }
    if (res->http_status != 200) {
        srvocsp__fmt(why, whylen, "responder answered HTTP %ld", res->http_status);
        return SRVOCSP_E_HTTP_STATUS;
    }
    if (!content_type_ok(res->content_type)) {
        srvocsp__fmt(why, whylen,
                     "responder answered Content-Type \"%.100s\", not application/ocsp-response",
                     res->content_type ? res->content_type : "(none)");
        return SRVOCSP_E_CONTENT_TYPE;
    }
    if (res->content_encoding != NULL && res->content_encoding[0] != '\0' &&
        strcasecmp(res->content_encoding, "identity") != 0) {
        srvocsp__fmt(why, whylen,
                     "responder answered with Content-Encoding \"%.60s\", which was not asked "
                     "for (the body is not an OCSP response as sent)",
                     res->content_encoding);
        return SRVOCSP_E_CONTENT_ENCODING;
    }
    return srvocsp__verify(res->body, res->body_len, leaf, issuer, pol, out, why, whylen);
}
