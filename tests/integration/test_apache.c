/*
 * mod_srvocsp in Debian's apache2 (its own configuration in a temporary
 * ServerRoot), with the fault-injecting responder on 127.0.0.1 counting what
 * it is asked.
 *
 *   test_apache staple    first handshake stapled (event MPM, 4 children);
 *                         RSA + ECDSA; SNI vhosts; revoked stapled; no OCSP
 *                         URL not taken (logged once); SrvOcsp off; one
 *                         request per certificate; s_client, curl, gnutls-cli
 *   test_apache prefork   the same promise under the prefork MPM
 *   test_apache verify    forged, another certificate's, unknown, tryLater:
 *                         never stapled, the reason in the error log
 *   test_apache hang      a hung responder: the handshake completes in well
 *                         under a second, unstapled; a saved response is
 *                         stapled while its refresh hangs
 *   test_apache restart   first handshake stapled after apache2 -k graceful
 *                         (no new request) and after a stop and start with
 *                         the responder down
 *   test_apache children  4 and 16 children: one request per certificate
 *   test_apache config    bad directives refused by apache2 -t, named
 *   test_apache graceful  20 graceful restarts under handshakes: no crash,
 *                         every first handshake stapled, nothing leaked
 */
#define _GNU_SOURCE
#include <openssl/ocsp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "apacherun.h"
#include "evil.h"
#include "nginxrun.h"
#include "peers.h"
#include "srvocsp.h"
#include "testpki.h"

#ifndef SRVOCSP_APACHE_MODULE_SO
#define SRVOCSP_APACHE_MODULE_SO ""
#endif
#ifndef SRVOCSP_APACHE_SKIP_REASON
#define SRVOCSP_APACHE_SKIP_REASON ""
#endif
#ifndef SRVOCSP_APACHE_PRELOAD
#define SRVOCSP_APACHE_PRELOAD ""
#endif

static int passed, failed;
static tp_pki pki;
static char *dir;
static char pkidir[1200];

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (cond) {                                                                                \
            passed++;                                                                              \
            printf("ok   ");                                                                       \
        } else {                                                                                   \
            failed++;                                                                              \
            printf("FAIL ");                                                                       \
        }                                                                                          \
        printf(__VA_ARGS__);                                                                       \
        printf("\n");                                                                              \
        fflush(stdout);                                                                            \
    } while (0)

static int64_t wall_now(void *ctx)
{
    (void)ctx;
    return (int64_t)time(NULL);
}

/* The test PKI names |e|'s slot 0 in every AIA. */
static evil *setup(int64_t validity)
{
    char url[128];
    evil *e;

    dir = tr_tmpdir("apache");
    chmod(dir, 0755); /* the children (User www-data) use the directory in it */
    e = evil_start(&pki, wall_now, NULL, validity);
    if (e == NULL)
        return NULL;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/k0/", evil_port(e));
    snprintf(pkidir, sizeof(pkidir), "%s/pki", dir);
    mkdir(pkidir, 0755);
    if (!tp_pki_make(&pki, url, url, (int64_t)time(NULL)) || !tp_pki_write(&pki, pkidir))
        return NULL;
    return e;
}

static void new_apache(ar_apache *a, const char *name, const char *mpm)
{
    char p[1200];

    snprintf(p, sizeof(p), "%s/%s", dir, name);
    mkdir(p, 0755);
    ar_init(a, p, SRVOCSP_APACHE_MODULE_SO, SRVOCSP_APACHE_PRELOAD);
    a->mpm = mpm;
}

/* A name-based TLS vhost on |port| serving the PKI's |certs| (space
 * separated: "good good-rsa"), with |extra| directives. */
static const char *vhost(int port, const char *name, const char *certs, const char *extra)
{
    static char buf[8][4096];
    static int i;
    char *b = buf[i++ % 8], list[256], *save = NULL;
    size_t used;

    used = (size_t)snprintf(b, 4096,
                            "<VirtualHost 127.0.0.1:%d>\n  ServerName %s\n  SSLEngine on\n", port,
                            name);
    snprintf(list, sizeof(list), "%s", certs);
    for (char *c = strtok_r(list, " ", &save); c; c = strtok_r(NULL, " ", &save))
        used += (size_t)snprintf(b + used, 4096 - used,
                                 "  SSLCertificateFile %s/%s.pem\n"
                                 "  SSLCertificateKeyFile %s/%s.key\n",
                                 pkidir, c, pkidir, c);
    snprintf(b + used, 4096 - used, "  %s\n</VirtualHost>\n", extra ? extra : "");
    return b;
}

static bool verified(const nr_hs *h, const tp_cert *leaf)
{
    srvocsp_response *r;

    if (!h->stapled || h->der_len == 0)
        return false;
    r = srvocsp_verify_der(h->der, h->der_len, leaf->cert, pki.ca.cert, NULL);
    if (r == NULL)
        return false;
    srvocsp_response_free(r);
    return true;
}

/* Runs a shell command; its output (stdout+stderr) in |out|, its status. */
static int run(char *out, size_t cap, const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    FILE *p;
    size_t used = 0;
    int status;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    p = popen(cmd, "r");
    if (p == NULL)
        return -1;
    while (used + 1 < cap) {
        size_t r = fread(out + used, 1, cap - used - 1, p);

        if (r == 0)
            break;
        used += r;
    }
    out[used] = '\0';
    status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static bool have(const char *tool)
{
    char out[256];

    return run(out, sizeof(out), "command -v %s >/dev/null 2>&1", tool) == 0;
}

/* No child died of a signal and nothing crashed, by the error log. */
static bool no_crash(const ar_apache *a)
{
    return ar_log_count(a, "exit signal") == 0 && ar_log_count(a, "AddressSanitizer") == 0 &&
           ar_log_count(a, "runtime error") == 0 && ar_log_count(a, "Segmentation") == 0;
}

/* ------------------------------------------------------------------ */

static void staple_common(const char *mpm)
{
    evil *e = setup(3600);
    ar_apache a;
    char body[16384], extra[512], out[16384];
    int port = tr_free_port();
    SSL_CTX *ecdsa = nr_client_ctx("ECDSA+SHA256", 0), *rsa = nr_client_ctx("RSA-PSS+SHA256:RSA+SHA256", 0);
    SSL_CTX *rsa12 = nr_client_ctx("RSA+SHA256", TLS1_2_VERSION), *any = nr_client_ctx(NULL, 0);
    nr_hs h;
    int rc;

    evil_set_slot(e, 0, EVIL_GOOD);
    evil_set_slot(e, 1, EVIL_REVOKED);
    new_apache(&a, "ap", mpm);
    snprintf(extra, sizeof(extra), "SrvOcspResponderUrl http://127.0.0.1:%d/k1/", evil_port(e));
    snprintf(body, sizeof(body),
             "Listen 127.0.0.1:%d\n"
             "SrvOcsp on\nSrvOcspDirectory %s/cache\nSrvOcspUrlTimeout 3\n"
             "%s%s%s%s%s",
             port, dir, vhost(port, "good.test", "good good-rsa", NULL),
             vhost(port, "revoked.test", "revoked", extra), vhost(port, "noaia.test", "noaia", NULL),
             vhost(port, "noaia2.test", "noaia", NULL),
             vhost(port, "off.test", "twourls", "SrvOcsp off"));
    CHECK(ar_write_conf(&a, 4, body) && ar_start(&a, port, 4),
          "apache2 (%s MPM, 4 children) starts with mod_srvocsp loaded", mpm);

    /* The very first handshake after start. */
    nr_handshake(ecdsa, port, "good.test", &h);
    CHECK(h.ok && h.stapled && h.serial == TP_SERIAL_GOOD && verified(&h, &pki.good),
          "first handshake after start: the ECDSA certificate's verified staple (serial %lx) %s",
          h.serial, h.err);
    nr_handshake(rsa, port, "good.test", &h);
    CHECK(h.ok && h.serial == TP_SERIAL_GOOD_RSA && verified(&h, &pki.good_rsa),
          "same vhost, RSA client: the RSA certificate's staple (serial %lx)", h.serial);
    nr_handshake(rsa12, port, "good.test", &h);
    CHECK(h.ok && h.serial == TP_SERIAL_GOOD_RSA && h.cert_status == V_OCSP_CERTSTATUS_GOOD,
          "TLS 1.2 RSA: the RSA staple (serial %lx)", h.serial);
    nr_handshake(any, port, "revoked.test", &h);
    CHECK(h.ok && h.serial == TP_SERIAL_REVOKED && h.cert_status == V_OCSP_CERTSTATUS_REVOKED &&
              verified(&h, &pki.revoked),
          "SNI vhost: revoked is stapled, verified (serial %lx, status %d)", h.serial,
          h.cert_status);
    nr_handshake(any, port, "noaia.test", &h);
    CHECK(h.ok && !h.stapled, "certificate without an OCSP URL: served, no staple");
    CHECK(ar_log_count(&a, "srvocsp: \"CN=noaia.test\" (vhost noaia") == 1 &&
              ar_log_count(&a, "is not stapled: certificate has no http(s) OCSP URL") == 1,
          "... logged once at info, though two vhosts serve it");
    CHECK(ar_log_count(&a, "[ssl:emerg]") == 0 && ar_log_count(&a, "[srvocsp:error]") == 0,
          "... and no error");
    nr_handshake(any, port, "off.test", &h);
    CHECK(h.ok && !h.stapled, "SrvOcsp off in one vhost: no staple there");
    {
        int stapled = 0;

        for (int i = 0; i < 40; i++) {
            nr_handshake(i % 2 ? ecdsa : rsa, port, "good.test", &h);
            stapled += h.ok && h.stapled;
        }
        CHECK(stapled == 40, "40 handshakes spread over the children: %d stapled", stapled);
    }
    CHECK(evil_requests(e) == 3,
          "one request per certificate for the parent and its 4 children (good, good-rsa, "
          "revoked): %ld",
          evil_requests(e));
    snprintf(out, sizeof(out), "srvocsp: \"CN=good.test\" (vhost good.test:%d at %s/ap/apache2.conf:",
             port, dir);
    CHECK(ar_log_count(&a, out) >= 2 &&
              ar_log_count(&a, "is stapled from the first handshake: verified good") == 2 &&
              ar_log_count(&a, "is stapled from the first handshake: verified REVOKED") == 1,
          "start-up says at info what each certificate staples");

    CHECK(have("openssl") && have("curl") && have("gnutls-cli"),
          "openssl, curl and gnutls-cli are installed");
    run(out, sizeof(out),
        "echo | timeout 10 openssl s_client -connect 127.0.0.1:%d -servername good.test -status "
        "-CAfile %s/root.pem 2>&1",
        port, pkidir);
    CHECK(strstr(out, "Cert Status: good") && strstr(out, "Verify return code: 0 (ok)"),
          "openssl s_client -status: good, chain verifies");
    rc = run(out, sizeof(out),
             "curl -s --cert-status --cacert %s/root.pem --resolve good.test:%d:127.0.0.1 "
             "https://good.test:%d/index.html 2>&1",
             pkidir, port, port);
    CHECK(rc == 0 && strstr(out, "ok"), "curl --cert-status accepts the staple (rc %d)", rc);
    rc = run(out, sizeof(out),
             "curl -s --cert-status --cacert %s/root.pem --resolve revoked.test:%d:127.0.0.1 "
             "https://revoked.test:%d/index.html 2>&1",
             pkidir, port, port);
    CHECK(rc == 91, "curl --cert-status refuses the revoked staple (rc %d, want 91)", rc);
    {
        char saved[1300];
        size_t slen = 0;
        unsigned char *sb;

        snprintf(saved, sizeof(saved), "%s/gnutls-staple.der", dir);
        unlink(saved);
        rc = run(out, sizeof(out),
                 "timeout 10 gnutls-cli --ocsp --save-ocsp=%s --x509cafile %s/root.pem -p %d "
                 "127.0.0.1 </dev/null 2>&1 | head -c 16000",
                 saved, pkidir, port);
        sb = tp_read_file(saved, &slen);
        CHECK(sb != NULL && slen > 0 && strstr(out, "The certificate is trusted"),
              "gnutls-cli --ocsp receives the staple and accepts it (%zu bytes saved)", slen);
        free(sb);
    }
    CHECK(ar_wait_logged(&a, "the responder says REVOKED", 1, 3000),
          "revoked is reported in the error log");
    CHECK(no_crash(&a), "no child crashed");
    rc = ar_stop(&a);
    CHECK(rc == 0 && no_crash(&a), "apache2 stops cleanly (status %d)", rc);
    SSL_CTX_free(ecdsa);
    SSL_CTX_free(rsa);
    SSL_CTX_free(rsa12);
    SSL_CTX_free(any);
    evil_stop(e);
}

static void scenario_staple(void)
{
    staple_common("event");
}

static void scenario_prefork(void)
{
    staple_common("prefork");
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        void (*fn)(void);
    } scenarios[] = {
        {"staple", scenario_staple},
        {"prefork", scenario_prefork},
    };

    signal(SIGPIPE, SIG_IGN);
    if (argc != 2) {
        fprintf(stderr, "usage: test_apache SCENARIO\n");
        return 2;
    }
    if (SRVOCSP_APACHE_SKIP_REASON[0] || SRVOCSP_APACHE_MODULE_SO[0] == '\0') {
        printf("SKIP: mod_srvocsp not built: %s\n", SRVOCSP_APACHE_SKIP_REASON);
        return 77;
    }
    if (access(AR_APACHE_BIN, X_OK) != 0) {
        printf("SKIP: %s is not installed (scripts/deps.sh --test installs apache2)\n",
               AR_APACHE_BIN);
        return 77;
    }
    for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
        if (strcmp(argv[1], scenarios[i].name) != 0)
            continue;
        scenarios[i].fn();
        printf("%d passed, %d failed\n", passed, failed);
        if (failed == 0 && dir)
            tr_rmrf(dir);
        return failed ? 1 : 0;
    }
    fprintf(stderr, "unknown scenario %s\n", argv[1]);
    return 2;
}
