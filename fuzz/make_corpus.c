/* fuzz_make_corpus DIR: a fixed PKI in DIR/pki and seed corpora in
 * DIR/verify, DIR/http, DIR/store, made from the test PKI. */
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "testpki.h"

static void put(const char *dir, const char *sub, int i, const unsigned char *d, size_t n)
{
    char path[2048];

    snprintf(path, sizeof(path), "%s/%s/seed-%02d", dir, sub, i);
    if (!tp_write_file(path, d, n))
        exit(1);
}

int main(int argc, char **argv)
{
    tp_pki pki;
    int64_t now = (int64_t)time(NULL);
    char path[2048];
    FILE *f;
    int i;

    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    for (i = 0; i < 4; i++) {
        static const char *const subs[] = {"pki", "verify", "http", "store"};

        snprintf(path, sizeof(path), "%s/%s", argv[1], subs[i]);
        mkdir(argv[1], 0755);
        mkdir(path, 0755);
    }
    if (!tp_pki_make(&pki, "http://127.0.0.1:9/", "http://127.0.0.1:10/", now))
        return 1;
    snprintf(path, sizeof(path), "%s/pki", argv[1]);
    if (!tp_pki_write(&pki, path))
        return 1;
    snprintf(path, sizeof(path), "%s/pki/now.txt", argv[1]);
    f = fopen(path, "w");
    fprintf(f, "%lld\n", (long long)now);
    fclose(f);

    for (i = 0; i < 12; i++) {
        tp_resp_opts o;
        unsigned char *der, *http;
        size_t len;
        static const char ct[] = "application/ocsp-response";

        tp_resp_opts_init(&o, &pki.good, &pki.ca, now);
        switch (i) {
        case 1: o.status = V_OCSP_CERTSTATUS_REVOKED; o.reason = 1; break;
        case 2: o.status = V_OCSP_CERTSTATUS_UNKNOWN; break;
        case 3: o.signer = &pki.delegate; o.include_signer = true; break;
        case 4: o.signer = &pki.delegate; o.include_signer = true; o.by_key = true; break;
        case 5: o.certid_md = EVP_sha256(); break;
        case 6: o.next_update = 0; break;
        case 7: o.other_first = &pki.revoked; break;
        case 8: o.critical_ext_single = true; break;
        case 9: o.response_status = OCSP_RESPONSE_STATUS_TRYLATER; break;
        case 10: o.signer = &pki.delegate_noeku; o.include_signer = true; break;
        case 11: o.critical_ext_data = true; break;
        default: break;
        }
        der = tp_response(&o, &len);
        put(argv[1], "verify", i, der, len);
        put(argv[1], "store", i, der, len);
        http = malloc(len + 3 + sizeof(ct));
        http[0] = 0;
        http[1] = 200;
        http[2] = (unsigned char)(sizeof(ct) - 1);
        memcpy(http + 3, ct, sizeof(ct) - 1);
        memcpy(http + 3 + sizeof(ct) - 1, der, len);
        put(argv[1], "http", i, http, len + 2 + sizeof(ct));
        free(http);
        free(der);
    }
    tp_pki_free(&pki);
    return 0;
}
