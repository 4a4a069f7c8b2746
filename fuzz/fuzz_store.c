/* The persisted-file loader: the input is what is on disk. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static srvocsp__store *st;
    static char dir[256], name[SRVOCSP__STORE_NAME_LEN + 1], path[512];
    const fuzz_pki *k = fuzz_pki_get();
    srvocsp__policy pol = {.now = k->now, .skew_s = 300, .max_age_s = 3600,
                           .max_lifetime_s = SRVOCSP__DEFAULT_MAX_LIFETIME};
    unsigned char *der = NULL;
    size_t len = 0;
    uint64_t version;
    char why[SRVOCSP__REASON_LEN];
    FILE *f;

    if (st == NULL) {
        snprintf(dir, sizeof(dir), "%s/srvocsp-fuzz-store-%d",
                 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
        st = srvocsp__store_dir_new(dir);
        if (st == NULL || !srvocsp__store_name(k->leaf, k->issuer, name))
            abort();
        snprintf(path, sizeof(path), "%s/%s.der", dir, name);
    }
    f = fopen(path, "wb");
    if (f == NULL)
        return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    if (st->ops->load(st, name, 256 * 1024, &der, &len, &version, why, sizeof(why)) ==
            SRVOCSP_OK &&
        der != NULL) {
        srvocsp_response *r = NULL;

        if (len != size)
            __builtin_trap(); /* never a torn or padded read */
        if (srvocsp__verify(der, len, k->leaf, k->issuer, &pol, &r, why, sizeof(why)) ==
            SRVOCSP_OK)
            srvocsp_response_free(r);
        free(der);
    }
    return 0;
}
