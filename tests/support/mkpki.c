/* srvocsp-testpki DIR URL [DEAD_URL]: writes a throw-away test PKI. */
#include <openssl/ocsp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "peers.h"
#include "testpki.h"

int main(int argc, char **argv)
{
    tp_pki pki;
    int ok;

    if (argc == 2 && strcmp(argv[1], "--free-port") == 0) {
        printf("%d\n", tr_free_port());
        return 0;
    }
    if (argc >= 6 && strcmp(argv[3], "--chain") == 0) {
        /* DIR OCSP_URL --chain ROOT_URL ICA_URL: the standard PKI and the
         * chain PKI beside it (tp_pki_write_chain). */
        ok = tp_pki_make(&pki, argv[2], "http://127.0.0.1:9/", time(NULL)) &&
             tp_pki_make_chain(&pki, argv[4], argv[5], time(NULL)) &&
             tp_pki_write(&pki, argv[1]) && tp_pki_write_chain(&pki, argv[1]);
        tp_pki_free(&pki);
        if (!ok)
            fprintf(stderr, "cannot write the chain PKI into %s\n", argv[1]);
        return ok ? 0 : 1;
    }
    if (argc < 3) {
        fprintf(stderr, "usage: %s DIR OCSP_URL [DEAD_URL] [--responses] | --free-port\n"
                        "       %s DIR OCSP_URL --chain ROOT_OCSP_URL ICA_OCSP_URL\n"
                        "Writes root.pem, ca.pem/.key, delegate.pem/.key, good/revoked/unknown/\n"
                        "noaia/twourls .pem (leaf + CA) and .key, and an openssl ocsp index;\n"
                        "with --chain also chain*.pem (leaf + intermediate naming ROOT_OCSP_URL),\n"
                        "chain.key, ica.pem/.key, root.key, chain-index.txt, root-index.txt.\n",
                argv[0], argv[0]);
        return 2;
    }
    if (!tp_pki_make(&pki, argv[2],
                     argc > 3 && strncmp(argv[3], "http", 4) == 0 ? argv[3] : "http://127.0.0.1:9/",
                     time(NULL)))
        return 1;
    ok = tp_pki_write(&pki, argv[1]);
    /* --responses: sample responses for good.pem, for check's exit codes. */
    if (ok && argc > 3 && strcmp(argv[argc - 1], "--responses") == 0) {
        static const struct {
            const char *name;
            int status;
            int64_t this_off, next_off;
        } r[] = {
            {"resp-good.der", V_OCSP_CERTSTATUS_GOOD, 0, 2 * 86400},
            {"resp-near.der", V_OCSP_CERTSTATUS_GOOD, -3600, 1800},
            {"resp-expired.der", V_OCSP_CERTSTATUS_GOOD, -3 * 3600, -3600},
            {"resp-revoked.der", V_OCSP_CERTSTATUS_REVOKED, 0, 86400},
            {"resp-unknown.der", V_OCSP_CERTSTATUS_UNKNOWN, 0, 86400},
        };
        int64_t now = (int64_t)time(NULL);

        for (size_t i = 0; ok && i < sizeof(r) / sizeof(r[0]); i++) {
            tp_resp_opts o;
            unsigned char *der;
            size_t len;
            char path[2048];

            tp_resp_opts_init(&o, &pki.good, &pki.ca, now + r[i].this_off);
            o.status = r[i].status;
            o.next_update = now + r[i].next_off;
            der = tp_response(&o, &len);
            snprintf(path, sizeof(path), "%s/%s", argv[1], r[i].name);
            ok = der != NULL && tp_write_file(path, der, len);
            free(der);
        }
    }
    tp_pki_free(&pki);
    if (!ok) {
        fprintf(stderr, "cannot write the PKI into %s\n", argv[1]);
        return 1;
    }
    return 0;
}
