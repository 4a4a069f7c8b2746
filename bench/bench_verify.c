/*
 * The verification of one response, alone: no network, no engine.
 *
 *   bench_verify [--issuer p256|p384|rsa2048] [--delegate] [--json]
 *
 * The one path every response takes (srvocsp__verify, through
 * srvocsp_verify_der) run in a loop on one response of the issuer's
 * algorithm, beside the one step it cannot skip, an EVP_DigestVerify of
 * the same algorithm on the same key over a message of the size of the
 * response's signed part: CPU per verification, per signature check, and
 * their ratio.  With --delegate the response is signed by a delegated
 * responder the issuer certified (two signature checks are then the floor:
 * the response's and the delegate certificate's).  Then the same response
 * as an entry verifies it, with the CertID and the authorized delegate it
 * keeps (srvocsp__verify with the policy's certid and delegate, and the
 * engine's signer cache): after the first response a known delegate's
 * certificate is neither parsed nor checked again, and the signature
 * context is set up once, so the floor there is the one check of the
 * response's signature.  CPU time
 * of this thread, median of 7 batches, so other load on the machine counts
 * less.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "srvocsp.h"
#include "testpki.h"

#define BATCHES 7

static double thread_cpu_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double median7(double *v)
{
    int b, i;
    double t;

    for (b = 1; b < BATCHES; b++) /* insertion sort: the median of 7 */
        for (i = b; i > 0 && v[i - 1] > v[i]; i--) {
            t = v[i];
            v[i] = v[i - 1];
            v[i - 1] = t;
        }
    return v[BATCHES / 2];
}

/* One signature check with SHA-256 on |key| over |msglen| bytes, µs. */
static double sig_check_us(EVP_PKEY *key, EVP_PKEY *pub, size_t msglen, int iters)
{
    unsigned char msg[2048], sig[1024];
    size_t siglen = sizeof(sig);
    double batch[BATCHES], t;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int b, i;

    if (msglen > sizeof(msg))
        msglen = sizeof(msg);
    memset(msg, 0x5a, sizeof(msg));
    if (ctx == NULL || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) != 1 ||
        EVP_DigestSign(ctx, sig, &siglen, msg, msglen) != 1) {
        EVP_MD_CTX_free(ctx);
        return -1;
    }
    for (b = 0; b < BATCHES; b++) {
        t = thread_cpu_s();
        for (i = 0; i < iters; i++) {
            EVP_MD_CTX_reset(ctx);
            if (EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pub) != 1 ||
                EVP_DigestVerify(ctx, sig, siglen, msg, msglen) != 1) {
                EVP_MD_CTX_free(ctx);
                return -1;
            }
        }
        batch[b] = (thread_cpu_s() - t) * 1e6 / iters;
    }
    EVP_MD_CTX_free(ctx);
    return median7(batch);
}

int main(int argc, char **argv)
{
    const char *alg = "p256";
    tp_key_type kt = TP_KEY_EC;
    bool json = false, delegate = false;
    int64_t t = (int64_t)time(NULL);
    tp_pki pki;
    tp_cert ca, leaf, resp_signer;
    tp_cert_opts o;
    tp_resp_opts ro;
    unsigned char *der;
    size_t len;
    double batch[BATCHES], verify_us, floor_us, t0, entry_us, one_check_us;
    int b, i, iters;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--delegate") == 0) {
            delegate = true;
        } else if (strcmp(argv[i], "--issuer") == 0 && i + 1 < argc) {
            alg = argv[++i];
            kt = strcmp(alg, "rsa2048") == 0 ? TP_KEY_RSA
                 : strcmp(alg, "p384") == 0  ? TP_KEY_EC384
                 : strcmp(alg, "p256") == 0  ? TP_KEY_EC
                                             : (tp_key_type)-1;
            if ((int)kt < 0) {
                fprintf(stderr, "bench_verify: --issuer takes p256, p384 or rsa2048\n");
                return 2;
            }
        } else {
            fprintf(stderr, "usage: bench_verify [--issuer p256|p384|rsa2048] [--delegate] "
                            "[--json]\n");
            return 2;
        }
    }
    if (!tp_pki_make(&pki, "http://127.0.0.1:9/", "http://127.0.0.1:9/", t))
        return 1;
    memset(&o, 0, sizeof(o));
    o.cn = "Bench Issuing CA";
    o.serial = 0x77;
    o.issuer = &pki.root;
    o.ca = true;
    o.not_before = t - 86400;
    o.not_after = t + 2 * 365 * 86400;
    o.key_type = kt;
    if (!tp_cert_make(&ca, &o))
        return 1;
    memset(&o, 0, sizeof(o));
    o.cn = "host.test";
    o.serial = 0x100000;
    o.issuer = &ca;
    o.not_before = t - 86400;
    o.not_after = t + 365 * 86400;
    o.same_key_as = &pki.good;
    if (!tp_cert_make(&leaf, &o))
        return 1;
    tp_resp_opts_init(&ro, &leaf, &ca, t);
    ro.next_update = t + 7 * 86400;
    if (delegate) {
        memset(&o, 0, sizeof(o));
        o.cn = "Bench OCSP Responder";
        o.serial = 0x78;
        o.issuer = &ca;
        o.not_before = t - 86400;
        o.not_after = t + 30 * 86400;
        o.ocsp_signing = true;
        o.key_type = kt;
        o.same_key_as = &ca;
        if (!tp_cert_make(&resp_signer, &o))
            return 1;
        ro.signer = &resp_signer;
        ro.include_signer = true;
    }
    der = tp_response(&ro, &len);
    if (der == NULL)
        return 1;
    /* About 20 ms per batch whatever the algorithm. */
    t0 = thread_cpu_s();
    for (i = 0; i < 20; i++) {
        srvocsp_response *r = srvocsp_verify_der(der, len, leaf.cert, ca.cert, NULL);

        if (r == NULL) {
            fprintf(stderr, "bench_verify: the response does not verify: %s\n",
                    srvocsp_last_error_text());
            return 1;
        }
        srvocsp_response_free(r);
    }
    iters = (int)(0.02 / ((thread_cpu_s() - t0) / 20 + 1e-9)) + 1;
    for (b = 0; b < BATCHES; b++) {
        t0 = thread_cpu_s();
        for (i = 0; i < iters; i++)
            srvocsp_response_free(srvocsp_verify_der(der, len, leaf.cert, ca.cert, NULL));
        batch[b] = (thread_cpu_s() - t0) * 1e6 / iters;
    }
    verify_us = median7(batch);
    floor_us = sig_check_us(ca.key, X509_get0_pubkey(ca.cert), len, iters) * (delegate ? 2 : 1);

    /* As an entry verifies it. */
    {
        srvocsp__request req;
        srvocsp__delegate_memo memo = {0};
        srvocsp__policy pol = {.now = t, .skew_s = 300, .max_age_s = 3600,
                               .max_lifetime_s = SRVOCSP__DEFAULT_MAX_LIFETIME, .delegate = &memo,
                               .signers = srvocsp__signer_cache_new()};
        char why[SRVOCSP__REASON_LEN];
        srvocsp_response *r = NULL;

        if (srvocsp__request_build(leaf.cert, ca.cert, SRVOCSP_HASH_SHA1, "http://127.0.0.1:9/", 0,
                                   &req) != SRVOCSP_OK)
            return 1;
        pol.certid = &req.id;
        if (srvocsp__verify(der, len, leaf.cert, ca.cert, &pol, &r, why, sizeof(why)) !=
            SRVOCSP_OK) {
            fprintf(stderr, "bench_verify: as an entry: %s\n", why);
            return 1;
        }
        srvocsp_response_free(r);
        for (b = 0; b < BATCHES; b++) {
            t0 = thread_cpu_s();
            for (i = 0; i < iters; i++) {
                r = NULL;
                (void)srvocsp__verify(der, len, leaf.cert, ca.cert, &pol, &r, why, sizeof(why));
                srvocsp_response_free(r);
            }
            batch[b] = (thread_cpu_s() - t0) * 1e6 / iters;
        }
        entry_us = median7(batch);
        srvocsp__signer_cache_free(pol.signers);
        srvocsp__request_clear(&req);
    }
    one_check_us = delegate ? floor_us / 2 : floor_us;
    if (json)
        printf("{\"issuer\":\"%s\",\"delegate\":%s,\"response_bytes\":%zu,\"verify_us\":%.2f,"
               "\"sig_check_us\":%.2f,\"ratio_verify_to_sig_check\":%.2f,"
               "\"entry_verify_us\":%.2f,\"ratio_entry_to_one_check\":%.2f}\n",
               alg, delegate ? "true" : "false", len, verify_us, floor_us, verify_us / floor_us,
               entry_us, entry_us / one_check_us);
    else
        printf("%s issuer%s, %zu-byte response: verification %.2f us, signature check%s %.2f "
               "us, ratio %.2f; as an entry verifies it (kept CertID%s) %.2f us, %.2fx one "
               "check\n",
               alg, delegate ? " (delegated responder)" : "", len, verify_us,
               delegate ? "s (response + delegate)" : "", floor_us, verify_us / floor_us,
               delegate ? ", known delegate" : "", entry_us, entry_us / one_check_us);
    free(der);
    return 0;
}
