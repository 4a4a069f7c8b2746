/* srvocsp-testpki DIR URL [DEAD_URL]: writes a throw-away test PKI. */
#include <stdio.h>
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
    if (argc < 3) {
        fprintf(stderr, "usage: %s DIR OCSP_URL [DEAD_URL] | --free-port\n"
                        "Writes root.pem, ca.pem/.key, delegate.pem/.key, good/revoked/unknown/\n"
                        "noaia/twourls .pem (leaf + CA) and .key, and an openssl ocsp index.\n",
                argv[0]);
        return 2;
    }
    if (!tp_pki_make(&pki, argv[2], argc > 3 ? argv[3] : "http://127.0.0.1:9/", time(NULL)))
        return 1;
    ok = tp_pki_write(&pki, argv[1]);
    tp_pki_free(&pki);
    if (!ok) {
        fprintf(stderr, "cannot write the PKI into %s\n", argv[1]);
        return 1;
    }
    return 0;
}
