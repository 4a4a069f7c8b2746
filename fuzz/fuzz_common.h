/* Shared by the fuzz targets: the fixed PKI their seeds were signed with. */
#ifndef SRVOCSP_FUZZ_COMMON_H
#define SRVOCSP_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/x509.h>

typedef struct fuzz_pki {
    X509 *leaf, *issuer;
    int64_t now; /* when the seeds were made: verification happens "then" */
} fuzz_pki;

/* Loads $SRVOCSP_FUZZ_PKI (written by fuzz_make_corpus); exits if absent. */
const fuzz_pki *fuzz_pki_get(void);

#endif
