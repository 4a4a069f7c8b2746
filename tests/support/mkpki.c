/* srvocsp-testpki DIR URL [DEAD_URL]: writes a throw-away test PKI. */
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "peers.h"
#include "testpki.h"

/* N leaves issued by the PKI's CA, all naming |url|, written as
 * CERTDIR/site-NNNNN.pem (leaf, CA, key: what nginx, HAProxy and watch
 * each read) and added to DIR/index.txt as good.  One key for all: signing
 * is what costs, and watch never looks at the key. */
static int write_many(const tp_pki *pki, const char *dir, const char *url, long n,
                      const char *certdir)
{
    char path[2048], exp[32];
    time_t t = time(NULL) + 365 * 86400;
    struct tm tm;
    FILE *idx;
    int ok = 1;

    snprintf(path, sizeof(path), "%s/index.txt", dir);
    if ((idx = fopen(path, "a")) == NULL)
        return 0;
    gmtime_r(&t, &tm);
    strftime(exp, sizeof(exp), "%y%m%d%H%M%SZ", &tm);
    for (long i = 0; ok && i < n; i++) {
        tp_cert_opts o;
        tp_cert c;
        char cn[64];
        FILE *f;

        memset(&o, 0, sizeof(o));
        snprintf(cn, sizeof(cn), "site-%05ld.test", i);
        o.cn = cn;
        o.issuer = &pki->ca;
        o.serial = 0x100000 + i;
        o.not_before = (int64_t)time(NULL) - 86400;
        o.not_after = (int64_t)time(NULL) + 365 * 86400;
        o.server_auth = true;
        o.ocsp_urls[0] = url;
        o.same_key_as = &pki->good;
        if (!tp_cert_make(&c, &o))
            return 0;
        snprintf(path, sizeof(path), "%s/site-%05ld.pem", certdir, i);
        f = fopen(path, "w");
        ok = f != NULL && PEM_write_X509(f, c.cert) && PEM_write_X509(f, pki->ca.cert) &&
             PEM_write_PrivateKey(f, pki->good.key, NULL, NULL, 0, NULL, NULL);
        ok &= f != NULL && fclose(f) == 0;
        fprintf(idx, "V\t%s\t\t%lX\tunknown\t/O=srvocsp test/CN=%s\n", exp, 0x100000 + i, cn);
        tp_cert_free(&c);
    }
    return fclose(idx) == 0 && ok;
}

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
    if (argc == 6 && strcmp(argv[3], "--many") == 0) {
        /* DIR OCSP_URL --many N CERTDIR: the standard PKI and N leaves. */
        long n = strtol(argv[4], NULL, 10);

        ok = n > 0 && n <= 1000000 && tp_pki_make(&pki, argv[2], "http://127.0.0.1:9/", time(NULL)) &&
             tp_pki_write(&pki, argv[1]) && write_many(&pki, argv[1], argv[2], n, argv[5]);
        tp_pki_free(&pki);
        if (!ok)
            fprintf(stderr, "cannot write %s certificates into %s\n", argv[4], argv[5]);
        return ok ? 0 : 1;
    }
    if (argc < 3) {
        fprintf(stderr, "usage: %s DIR OCSP_URL [DEAD_URL] [--responses] | --free-port\n"
                        "       %s DIR OCSP_URL --chain ROOT_OCSP_URL ICA_OCSP_URL\n"
                        "       %s DIR OCSP_URL --many N CERTDIR\n"
                        "Writes root.pem, ca.pem/.key, delegate.pem/.key, good/revoked/unknown/\n"
                        "noaia/twourls .pem (leaf + CA) and .key, and an openssl ocsp index;\n"
                        "with --chain also chain*.pem (leaf + intermediate naming ROOT_OCSP_URL),\n"
                        "chain.key, ica.pem/.key, root.key, chain-index.txt, root-index.txt;\n"
                        "with --many also CERTDIR/site-NNNNN.pem (leaf, CA, key), good in index.txt.\n",
                argv[0], argv[0], argv[0]);
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
