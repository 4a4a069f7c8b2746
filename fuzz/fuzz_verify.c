/* Response ingest and verification: any bytes as a DER OCSP response. */
#include "fuzz_common.h"
#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const fuzz_pki *k = fuzz_pki_get();
    srvocsp__policy pol = {.now = k->now, .skew_s = 300, .max_age_s = 3600,
                           .max_lifetime_s = SRVOCSP__DEFAULT_MAX_LIFETIME};
    srvocsp_response *r = NULL;
    char why[SRVOCSP__REASON_LEN];

    if (srvocsp__verify(data, size, k->leaf, k->issuer, &pol, &r, why, sizeof(why)) == SRVOCSP_OK) {
        size_t len;

        /* What the library hands out must be what it verified. */
        if (srvocsp_response_der(r, &len) == NULL || len != size)
            __builtin_trap();
        srvocsp_response_free(r);
    }
    return 0;
}
