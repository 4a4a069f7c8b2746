/* The responder's HTTP answer: status, Content-Type and body from the
 * input: [status: 2 bytes][n: 1 byte][Content-Type: n bytes][body]. */
#include <string.h>

#include "fuzz_common.h"
#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const fuzz_pki *k = fuzz_pki_get();
    srvocsp__policy pol = {.now = k->now, .skew_s = 300, .max_age_s = 3600,
                           .max_lifetime_s = SRVOCSP__DEFAULT_MAX_LIFETIME};
    srvocsp_http_result res;
    srvocsp_response *r = NULL;
    char why[SRVOCSP__REASON_LEN], ctype[256];
    size_t n;

    if (size < 3)
        return 0;
    memset(&res, 0, sizeof(res));
    res.http_status = (long)(data[0] << 8 | data[1]) % 1000;
    n = data[2];
    if (3 + n > size)
        return 0;
    memcpy(ctype, data + 3, n);
    ctype[n] = '\0';
    res.content_type = n ? ctype : NULL;
    res.body = data + 3 + n;
    res.body_len = size - 3 - n;
    if (srvocsp__accept_http(&res, k->leaf, k->issuer, &pol, &r, why, sizeof(why)) == SRVOCSP_OK)
        srvocsp_response_free(r);
    else if (strlen(why) == 0)
        __builtin_trap(); /* every rejection says why */
    return 0;
}
