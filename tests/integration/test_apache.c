/*
 * mod_srvocsp in Debian's apache2 (its own configuration in a temporary
 * ServerRoot), with the fault-injecting responder on 127.0.0.1 counting what
 * it is asked: what is stapled.  The lifecycle (restarts, children, stops)
 * is test_apache_life.c.
 *
 *   test_apache staple    first handshake stapled (event MPM, 4 children);
 *                         RSA + ECDSA; SNI vhosts; revoked stapled; no OCSP
 *                         URL not taken (logged once); SrvOcsp off; one
 *                         request per certificate; s_client, curl,
 *                         gnutls-cli; server-status; a graceful restart
 *   test_apache prefork   the same under the prefork MPM
 *   test_apache verify    forged, another certificate's, unknown, tryLater,
 *                         expired, unauthorized: never stapled, the reason
 *                         in the error log; a directory that cannot be made;
 *                         an existing one User cannot write, a file (left
 *                         as they are)
 *   test_apache hang      a hung responder: the handshake completes in well
 *                         under a second, unstapled; a saved response is
 *                         stapled while its refresh hangs
 *   test_apache config    bad directives refused by apache2 -t, named
 *   test_apache store     SrvOcspStore: a URL that cannot be used stops the
 *                         start, named; with a real redis-server a second
 *                         apache2 with the responder down and no directory
 *                         staples its first handshake from the store
 */
#define _GNU_SOURCE
#include <openssl/ocsp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "apache_common.h"
#include "peers.h"
#include "redisd.h"
#include "srvocsp.h"

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
             "LoadModule status_module " AR_MODULES_DIR "/mod_status.so\n"
             "<Location /server-status>\n  SetHandler server-status\n</Location>\n"
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
    rc = run(out, sizeof(out), "curl -sk 'https://127.0.0.1:%d/server-status?auto' 2>&1", port);
    CHECK(rc == 0 && strstr(out, "SrvOcspCertificates: 3\n") &&
              strstr(out, "SrvOcspCertificatesStapled: 3\n") &&
              strstr(out, "SrvOcspHandshakesAsked: "),
          "server-status?auto counts 3 certificates, 3 stapled, and this child's handshakes");
    rc = run(out, sizeof(out), "curl -sk 'https://127.0.0.1:%d/server-status' 2>&1", port);
    CHECK(rc == 0 && strstr(out, "<h2>srvocsp</h2>") &&
              strstr(out, "&quot;CN=revoked.test&quot;") && strstr(out, "REVOKED"),
          "server-status has a section per certificate (revoked shown as REVOKED)");
    CHECK(ar_wait_logged(&a, "the responder says REVOKED", 1, 3000),
          "revoked is reported in the error log");
    {
        long before = evil_requests(e);

        CHECK(ar_graceful(&a, port, 4, 30000), "apache2 -k graceful (%s MPM)", mpm);
        nr_handshake(ecdsa, port, "good.test", &h);
        CHECK(h.ok && h.stapled && verified(&h, &pki.good) && evil_requests(e) == before,
              "the first handshake after it is stapled, without a request");
    }
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


static void scenario_verify(void)
{
    static const struct {
        evil_scenario s;
        const char *log;
    } bad[] = {
        {EVIL_WRONG_KEY, "E_SIGNATURE"},
        {EVIL_OTHER_CERT, "E_NO_MATCH"},
        {EVIL_UNKNOWN, "does not know the certificate"},
        {EVIL_TRYLATER, "E_RESPONSE_STATUS"},
        {EVIL_PAST, "E_EXPIRED"},
        {EVIL_DELEGATE_NOEKU, "E_SIGNER"},
    };
    evil *e = setup(3600);
    SSL_CTX *any = nr_client_ctx(NULL, 0);

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ar_apache a;
        char name[32], globals[1400], body[8192];
        int port = tr_free_port();
        nr_hs h;

        evil_set_slot(e, 0, bad[i].s);
        snprintf(name, sizeof(name), "ap%zu", i);
        new_apache(&a, name, "event");
        snprintf(globals, sizeof(globals), "SrvOcspDirectory %s/cache%zu\nSrvOcspUrlTimeout 2", dir, i);
        one_vhost_body(body, sizeof(body), port, globals, false);
        if (!(ar_write_conf(&a, 1, body) && ar_start(&a, port, 1))) {
            CHECK(false, "apache2 starts (%s)", evil_name(bad[i].s));
            continue;
        }
        nr_handshake(any, port, NULL, &h);
        CHECK(h.ok && !h.stapled, "%s: the handshake completes, nothing stapled", evil_name(bad[i].s));
        CHECK(ar_wait_logged(&a, bad[i].log, 1, 3000), "%s: the error log says why (%s)",
              evil_name(bad[i].s), bad[i].log);
        CHECK(ar_stop(&a) == 0 && no_crash(&a), "%s: apache2 stops cleanly", evil_name(bad[i].s));
    }
    {
        /* A directory that cannot be made: said once, and stapling goes on
         * without it. */
        ar_apache a;
        char body[8192];
        int port = tr_free_port();
        nr_hs h;

        evil_set_slot(e, 0, EVIL_GOOD);
        new_apache(&a, "nodir", "event");
        one_vhost_body(body, sizeof(body), port, "SrvOcspDirectory /dev/null/srvocsp", true);
        CHECK(ar_write_conf(&a, 1, body) && ar_start(&a, port, 1),
              "apache2 starts with a SrvOcspDirectory that cannot be created");
        nr_handshake(any, port, NULL, &h);
        CHECK(h.ok && h.stapled && verified(&h, &pki.good) &&
                  ar_log_count(&a, "\"/dev/null/srvocsp\" cannot be created; continuing without") == 1,
              "... stapled all the same, and a warning says so once");
        ar_stop(&a);
    }
    {
        /* A directory that exists and User cannot write (a mistyped path
         * naming one of root's): left as it is, said once, stapling goes
         * on.  Not as root, a read-only one of the test's user. */
        ar_apache a;
        char body[8192], globals[1400], owned[1300], warn[1500];
        int port = tr_free_port();
        struct stat st0, st1;
        nr_hs h;

        snprintf(owned, sizeof(owned), "%s/roots", dir);
        mkdir(owned, 0755);
        if (geteuid() != 0)
            chmod(owned, 0555);
        stat(owned, &st0);
        new_apache(&a, "rootdir", "event");
        snprintf(globals, sizeof(globals), "SrvOcspDirectory %s\nSrvOcspUrlTimeout 2", owned);
        one_vhost_body(body, sizeof(body), port, globals, true);
        CHECK(ar_write_conf(&a, 1, body) && ar_start(&a, port, 1),
              "apache2 starts with an existing SrvOcspDirectory its User cannot write");
        nr_handshake(any, port, NULL, &h);
        CHECK(h.ok && h.stapled && verified(&h, &pki.good), "... stapled all the same");
        CHECK(stat(owned, &st1) == 0 && st1.st_uid == st0.st_uid && st1.st_gid == st0.st_gid &&
                  st1.st_mode == st0.st_mode,
              "... the directory is left as it was: owner %ld:%ld mode %04o, then %ld:%ld %04o",
              (long)st0.st_uid, (long)st0.st_gid, (unsigned)(st0.st_mode & 07777),
              (long)st1.st_uid, (long)st1.st_gid, (unsigned)(st1.st_mode & 07777));
        snprintf(warn, sizeof(warn), "SrvOcspDirectory \"%s\" exists and is not writable by %s",
                 owned, geteuid() == 0 ? "User www-data" : "the user Apache runs as");
        CHECK(ar_log_count(&a, warn) == 1, "... and a warning names it and the user, once: %s",
              warn);
        CHECK(ar_stop(&a) == 0 && no_crash(&a), "apache2 stops cleanly");
    }
    {
        /* A path that names a file: used as none, said once, not changed. */
        ar_apache a;
        char body[8192], globals[1400], file[1300], warn[1500];
        int port = tr_free_port();
        struct stat st0, st1;
        FILE *f;
        nr_hs h;

        snprintf(file, sizeof(file), "%s/a-file", dir);
        f = fopen(file, "w");
        if (f)
            fclose(f);
        stat(file, &st0);
        new_apache(&a, "filedir", "event");
        snprintf(globals, sizeof(globals), "SrvOcspDirectory %s\nSrvOcspUrlTimeout 2", file);
        one_vhost_body(body, sizeof(body), port, globals, true);
        CHECK(ar_write_conf(&a, 1, body) && ar_start(&a, port, 1),
              "apache2 starts with a SrvOcspDirectory that names a file");
        nr_handshake(any, port, NULL, &h);
        snprintf(warn, sizeof(warn), "SrvOcspDirectory \"%s\" exists and is not a directory",
                 file);
        CHECK(h.ok && h.stapled && verified(&h, &pki.good) && ar_log_count(&a, warn) == 1 &&
                  stat(file, &st1) == 0 && st1.st_uid == st0.st_uid && st1.st_size == 0,
              "... stapled without it, the file left as it was, and a warning says so once");
        CHECK(ar_stop(&a) == 0 && no_crash(&a), "apache2 stops cleanly");
    }
    SSL_CTX_free(any);
    evil_stop(e);
}


static void scenario_hang(void)
{
    evil *e = setup(3600);
    ar_apache a, b;
    char globals[1400], body[8192], cache[1300];
    int port = tr_free_port(), slow = 0, stapled = 0, ok = 0;
    SSL_CTX *any = nr_client_ctx(NULL, 0);
    double t0, worst = 0;
    nr_hs h;

    /* No saved response, the responder takes the request and never answers. */
    evil_set_slot(e, 0, EVIL_HANG);
    new_apache(&a, "ap", "event");
    snprintf(globals, sizeof(globals), "SrvOcspDirectory %s/cache-none\nSrvOcspUrlTimeout 1", dir);
    one_vhost_body(body, sizeof(body), port, globals, false);
    t0 = tr_now_ms();
    CHECK(ar_write_conf(&a, 2, body) && ar_start(&a, port, 2), "apache2 starts while the responder hangs");
    CHECK(tr_now_ms() - t0 < 10000, "... within a bound (%.0f ms; SrvOcspUrlTimeout 1 s)", tr_now_ms() - t0);
    for (int i = 0; i < 20; i++) {
        nr_handshake(any, port, NULL, &h);
        ok += h.ok;
        slow += h.ms >= 1000;
        stapled += h.stapled;
        if (h.ms > worst)
            worst = h.ms;
    }
    CHECK(ok == 20 && slow == 0 && stapled == 0,
          "20 handshakes while it hangs: all complete, none stapled, none took a second "
          "(slowest %.1f ms)",
          worst);
    CHECK(ar_log_count(&a, "has no OCSP response yet") == 1, "start-up says there is no response yet");
    ar_stop(&a);

    /* A saved response due for refresh: stapled while its refresh hangs. */
    evil_set_slot(e, 0, EVIL_GOOD);
    snprintf(cache, sizeof(cache), "%s/cache", dir);
    new_apache(&b, "bp", "event");
    snprintf(globals, sizeof(globals), "SrvOcspDirectory %s\nSrvOcspUrlTimeout 1", cache);
    one_vhost_body(body, sizeof(body), port, globals, false);
    CHECK(ar_write_conf(&b, 2, body) && ar_start(&b, port, 2), "apache2 starts and saves a response");
    ar_stop(&b);
    CHECK(nr_age_cache(cache, &pki) == 1, "the saved response is made due for refresh");
    evil_set_slot(e, 0, EVIL_HANG);
    CHECK(ar_start(&b, port, 2), "apache2 starts again while the responder hangs");
    slow = stapled = ok = 0;
    worst = 0;
    for (int i = 0; i < 40; i++) {
        nr_handshake(any, port, NULL, &h);
        ok += h.ok;
        slow += h.ms >= 1000;
        stapled += h.stapled && verified(&h, &pki.good);
        if (h.ms > worst)
            worst = h.ms;
    }
    CHECK(ok == 40 && stapled == 40 && slow == 0,
          "40 handshakes during the hung refresh: all stapled from the directory (%d), none "
          "took a second (slowest %.1f ms)",
          stapled, worst);
    CHECK(ar_stop(&b) == 0 && no_crash(&b), "apache2 stops cleanly");
    SSL_CTX_free(any);
    evil_stop(e);
}


static void scenario_config(void)
{
    static const struct {
        const char *directive; /* in the main server */
        const char *in_vhost;  /* or in the vhost */
        const char *named;
    } bad[] = {
        {"SrvOcsp maybe", NULL, "SrvOcsp"},
        {"SrvOcspMinValidity soon", NULL, "SrvOcspMinValidity"},
        {"SrvOcspMinValidity 9999999", NULL, "SrvOcspMinValidity"},
        {"SrvOcspUrlTimeout 0", NULL, "SrvOcspUrlTimeout"},
        {"SrvOcspUrlTimeout 2hr", NULL, "SrvOcspUrlTimeout"},
        {"SrvOcspResponderUrl https://ocsp.example/", NULL, "SrvOcspResponderUrl"},
        {"SrvOcspStore memcached://127.0.0.1:11211", NULL, "SrvOcspStore"},
        {"SrvOcspStore redis-sentinel://127.0.0.1:1", NULL, "SrvOcspStore: store URL: no master name"},
        {"SrvOcspStore redis://127.0.0.1:6379/db1", NULL, "SrvOcspStore: store URL: database is not a number"},
        {NULL, "SrvOcspDirectory /tmp/elsewhere", "SrvOcspDirectory"},
        {NULL, "SrvOcspStore redis://127.0.0.1:6379", "SrvOcspStore"},
        {"SrvOcspDirectory", NULL, "SrvOcspDirectory"},
    };
    evil *e = setup(3600);
    ar_apache a;
    char body[8192], out[8192], globals[1400];
    int port = tr_free_port(), rc;
    struct stat st;

    evil_set_slot(e, 0, EVIL_GOOD);
    new_apache(&a, "ap", "event");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(body, sizeof(body), "Listen 127.0.0.1:%d\nSrvOcsp on\n%s\n%s", port,
                 bad[i].directive ? bad[i].directive : "",
                 vhost(port, "good.test", "good", bad[i].in_vhost));
        ar_write_conf(&a, 1, body);
        rc = ar_test_conf(&a, out, sizeof(out));
        CHECK(rc != 0 && strstr(out, bad[i].named) != NULL,
              "apache2 -t refuses \"%s\"%s (rc %d), naming %s: %.200s",
              bad[i].directive ? bad[i].directive : bad[i].in_vhost,
              bad[i].in_vhost ? " in a vhost" : "", rc, bad[i].named, out);
    }
    for (size_t i = 0; i < 2; i++) {
        /* Nothing listens on port 1: apache2 -t connects to nothing. */
        const char *store = i == 0 ? "redis://127.0.0.1:1/0"
                                   : "redis-sentinel://127.0.0.1:1,127.0.0.1:2/0#mymaster";

        snprintf(globals, sizeof(globals),
                 "SrvOcspDirectory %s/cache-t\nSrvOcspMinValidity 10mi\nSrvOcspUrlTimeout 500ms\n"
                 "SrvOcspStore %s",
                 dir, store);
        snprintf(body, sizeof(body), "Listen 127.0.0.1:%d\nSrvOcsp on\n%s\n%s", port, globals,
                 vhost(port, "good.test", "good", "SrvOcspResponderUrl http://127.0.0.1:1/\nSrvOcspMinValidity 300\nSrvOcspUrlTimeout 2"));
        ar_write_conf(&a, 1, body);
        rc = ar_test_conf(&a, out, sizeof(out));
        CHECK(rc == 0 && strstr(out, "Syntax OK"),
              "every directive with a good value (SrvOcspStore %s): Syntax OK (%s)", store, out);
    }
    snprintf(out, sizeof(out), "%s/cache-t", dir);
    CHECK(evil_requests(e) == 0 && stat(out, &st) != 0,
          "apache2 -t fetches nothing and creates no directory");
    /* The srvocsp.conf installed beside srvocsp.load (a2enmod srvocsp). */
    snprintf(body, sizeof(body), "Listen 127.0.0.1:%d\nInclude %s\n%s", port,
             SRVOCSP_APACHE_CONF_SNIPPET, vhost(port, "good.test", "good", "SrvOcsp on"));
    ar_write_conf(&a, 1, body);
    rc = ar_test_conf(&a, out, sizeof(out));
    CHECK(rc == 0 && strstr(out, "Syntax OK"), "the installed srvocsp.conf is accepted (%s)", out);
    evil_stop(e);
}


static long long redis_dbsize(tr_redis *r)
{
    const char *argv[] = {"DBSIZE"};

    return tr_redis_cmd(r, NULL, 0, 1, argv, NULL);
}


static void scenario_store(void)
{
    evil *e;
    ar_apache a, b, m;
    tr_redis r;
    tr_redis_opts ro = {.tcp = true};
    char globals[1400], body[8192], url[1200];
    int port = tr_free_port();
    SSL_CTX *any;
    nr_hs h;
    double until;
    long long keys = 0;

    if (!tr_redis_available()) {
        printf("SKIP: redis-server not installed (scripts/deps.sh --test installs it)\n");
        exit(77);
    }
    e = setup(3600);
    any = nr_client_ctx(NULL, 0);
    evil_set_slot(e, 0, EVIL_GOOD);

    /* A URL libsrvocsp cannot use: apache2 does not start and says why,
     * from the configuration's reading on. */
    new_apache(&b, "bad", "event");
    one_vhost_body(body, sizeof(body), port,
                   "SrvOcspDirectory none\nSrvOcspStore redis://127.0.0.1:notaport/0", false);
    CHECK(ar_write_conf(&b, 1, body) && !ar_start(&b, port, 1),
          "apache2 refuses to start with SrvOcspStore redis://127.0.0.1:notaport/0");
    {
        char out[8192];
        int rc = ar_test_conf(&b, out, sizeof(out));

        CHECK(rc != 0 && strstr(out, "SrvOcspStore: store URL: port") != NULL,
              "apache2 -t names the directive and the fault (rc %d): %.300s", rc, out);
    }
    ar_stop(&b);

    if (!tr_redis_start(&r, &ro)) {
        CHECK(false, "redis-server starts");
        goto out;
    }
    /* One fetch, saved into Redis (database 0). */
    new_apache(&a, "ap", "event");
    snprintf(url, sizeof(url), "%s/0", r.url);
    snprintf(globals, sizeof(globals), "SrvOcspDirectory none\nSrvOcspUrlTimeout 2\nSrvOcspStore %s", url);
    one_vhost_body(body, sizeof(body), port, globals, false);
    CHECK(ar_write_conf(&a, 2, body) && ar_start(&a, port, 2), "apache2 starts with SrvOcspStore %s",
          url);
    nr_handshake(any, port, NULL, &h);
    CHECK(h.ok && h.stapled && verified(&h, &pki.good), "the first handshake is stapled");
    until = tr_now_ms() + 5000;
    while (tr_now_ms() < until && (keys = redis_dbsize(&r)) < 1)
        tr_sleep_ms(20);
    CHECK(keys >= 1, "the response is saved in Redis (%lld keys)", keys);
    CHECK(evil_requests(e) == 1,
          "one request at start for the parent and its 2 children, without a directory (%ld)",
          evil_requests(e));
    ar_stop(&a);
    evil_stop(e); /* the responder is gone */

    /* Responder down, no directory: the staple comes from Redis. */
    new_apache(&m, "ap2", "event");
    CHECK(ar_write_conf(&m, 2, body) && ar_start(&m, port, 2),
          "a second apache2 starts with the responder down and no directory");
    nr_handshake(any, port, NULL, &h);
    CHECK(h.ok && h.stapled && verified(&h, &pki.good),
          "its first handshake is stapled with the response from Redis");
    ar_stop(&m);

    /* Another database holds nothing: the staple above came from the
     * store, not from anywhere else. */
    new_apache(&m, "ap3", "event");
    snprintf(globals, sizeof(globals), "SrvOcspDirectory none\nSrvOcspUrlTimeout 1\nSrvOcspStore %s/1",
             r.url);
    one_vhost_body(body, sizeof(body), port, globals, false);
    CHECK(ar_write_conf(&m, 1, body) && ar_start(&m, port, 1), "apache2 starts with database 1");
    nr_handshake(any, port, NULL, &h);
    CHECK(h.ok && !h.stapled, "with another database nothing is stapled");
    CHECK(ar_stop(&m) == 0 && no_crash(&m), "apache2 stops cleanly");
    tr_redis_stop(&r);
out:
    SSL_CTX_free(any);
}

int main(int argc, char **argv)
{
    static const at_scenario s[] = {
        {"staple", scenario_staple}, {"prefork", scenario_prefork}, {"verify", scenario_verify},
        {"hang", scenario_hang},     {"config", scenario_config},   {"store", scenario_store},
    };

    return at_main(argc, argv, s, sizeof(s) / sizeof(s[0]));
}
