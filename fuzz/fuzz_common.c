#include "fuzz_common.h"

#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>

static X509 *load(const char *dir, const char *name)
{
    char path[2048];
    FILE *f;
    X509 *x;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "fuzz: cannot open %s (set SRVOCSP_FUZZ_PKI to the pki/ folder written "
                        "by fuzz_make_corpus)\n", path);
        exit(1);
    }
    x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    return x;
}

const fuzz_pki *fuzz_pki_get(void)
{
    static fuzz_pki p;
    const char *dir;
    char path[2048];
    FILE *f;
    long long now = 0;

    if (p.leaf != NULL)
        return &p;
    dir = getenv("SRVOCSP_FUZZ_PKI");
    if (dir == NULL)
        dir = "fuzz-pki";
    p.leaf = load(dir, "good.pem");
    p.issuer = load(dir, "ca.pem");
    snprintf(path, sizeof(path), "%s/now.txt", dir);
    f = fopen(path, "r");
    if (f == NULL || fscanf(f, "%lld", &now) != 1)
        now = 0;
    if (f)
        fclose(f);
    p.now = now;
    return &p;
}
