/*
 * Real responders as they are deployed, through the real libcurl
 * transport: CloudFlare's `cfssl ocspserve` serving pre-signed responses (it
 * decodes a GET's path twice and refuses it with 400), and the npm `ocsp`
 * package's server (it takes only POST and never finishes its answer to a
 * GET).  Each proves that a staple is ready anyway, and that the fallback
 * shows in the stats and in srvocsp_method_fallbacks.  The one-method
 * fronts of tests/support/evil.c are in test_method_fronts.
 *
 * cfssl and the npm package are skipped, saying why (the program then
 * exits 77, so CTest shows it skipped rather than passed), where they are not
 * installed (scripts/deps.sh --test installs golang-cfssl, nodejs, npm; the
 * package is installed into the build directory by name).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "methods_common.h"
#include "nginxrun.h"
#include "peers.h"
#include "srvocsp.h"
#include "testpki.h"

#ifndef SRVOCSP_BUILD_DIR
#define SRVOCSP_BUILD_DIR "."
#endif
#ifndef SRVOCSP_SOURCE_DIR
#define SRVOCSP_SOURCE_DIR "."
#endif

/* Cases that could not run their peer: the program then exits 77 (CTest
 * shows it skipped) rather than 0. */
static int skipped;

/* ---- cfssl ocspserve: pre-signed responses from a file ---- */

static bool have(const char *tool)
{
    char cmd[256];

    snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", tool);
    return system(cmd) == 0;
}

/* `cfssl ocspsign` for |leaf| (a PEM with that certificate only), the
 * base64 response appended as one line to |out|. */
static bool cfssl_sign(const char *leaf, const char *extra, const char *out)
{
    char cmd[4096];

    snprintf(cmd, sizeof(cmd),
             "cfssl ocspsign -ca %s/cf-ca.pem -responder %s/cf-ca.pem -responder-key %s/cf-ca.key "
             "-cert %s %s 2>>%s/cfssl-sign.log "
             "| sed -n 's/.*\"ocspResponse\":\"\\([^\"]*\\)\".*/\\1/p' >>%s",
             dir, dir, dir, leaf, extra, dir, out);
    return system(cmd) == 0;
}

static void test_cfssl_ocspserve(void **s)
{
    tp_pki pki;
    srvocsp_engine *eng = NULL;
    srvocsp_handle *hg = NULL, *hr = NULL, *hu = NULL;
    srvocsp_response *rg = NULL, *rr = NULL, *again = NULL;
    srvocsp_engine_stats st;
    char url[64], path[1100], good[1100], revoked[1100], unknown[1100], file[1100], log[1100];
    char why[512], port_s[16];
    char *argv[] = {"cfssl", "ocspserve", "-address", "127.0.0.1", "-port", port_s,
                    "-responses", file, NULL};
    size_t la, lb;
    int port = tr_free_port();
    pid_t pid;
    struct stat sb;

    (void)s;
    if (!have("cfssl")) {
        printf("SKIP: cfssl is not installed (Debian package golang-cfssl)\n");
        skipped++;
        skip();
    }
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
    assert_true(tp_pki_make(&pki, url, NULL, (int64_t)time(NULL)));
    write_pem("cf-ca.pem", pki.ca.cert, NULL, path, sizeof(path));
    snprintf(path, sizeof(path), "%s/cf-ca.key", dir);
    assert_true(tp_write_key(path, pki.ca.key));
    /* cfssl reads one certificate per file; srvocsp the chain. */
    write_pem("cf-good-leaf.pem", pki.good.cert, NULL, path, sizeof(path));
    write_pem("cf-revoked-leaf.pem", pki.revoked.cert, NULL, path, sizeof(path));
    write_pem("cf-good.pem", pki.good.cert, pki.ca.cert, good, sizeof(good));
    write_pem("cf-revoked.pem", pki.revoked.cert, pki.ca.cert, revoked, sizeof(revoked));
    write_pem("cf-unknown.pem", pki.unknown.cert, pki.ca.cert, unknown, sizeof(unknown));
    /* Signed ahead (96 h, thisUpdate on the hour) as CAs do; the unknown
     * certificate is left out of the file. */
    snprintf(file, sizeof(file), "%s/cf-responses.txt", dir);
    snprintf(path, sizeof(path), "%s/cf-good-leaf.pem", dir);
    assert_true(cfssl_sign(path, "", file));
    snprintf(path, sizeof(path), "%s/cf-revoked-leaf.pem", dir);
    assert_true(cfssl_sign(path, "-status revoked -reason 1", file));
    assert_int_equal(stat(file, &sb), 0);
    assert_true(sb.st_size > 200);

    snprintf(port_s, sizeof(port_s), "%d", port);
    snprintf(log, sizeof(log), "%s/cfssl-serve.log", dir);
    pid = spawn_peer(log, "Now listening", 10000, NULL, argv);
    if (pid == 0)
        fail_msg("cfssl ocspserve did not start (log %s)", log);
    /* cfssl logs "Now listening" before it binds the port: a first request
     * right after the line was refused once on a loaded machine. */
    for (int waited = 0; !nr_port_accepts(port); waited += 50) {
        if (waited >= 10000)
            fail_msg("cfssl ocspserve never accepted on port %d (log %s)", port, log);
        tr_sleep_ms(50);
    }

    eng = srvocsp_engine_new(NULL);
    hg = open_with(eng, good, NULL, 5000);
    hr = open_with(eng, revoked, NULL, 5000);
    hu = open_with(eng, unknown, NULL, 5000);
    assert_non_null(hg);
    assert_non_null(hr);
    assert_non_null(hu);
    rg = srvocsp_get1_response(hg);
    rr = srvocsp_get1_response(hr);
    assert_non_null(rg);
    assert_non_null(rr);
    assert_int_equal(srvocsp_response_status(rg), SRVOCSP_STATUS_GOOD);
    assert_int_equal(srvocsp_response_status(rr), SRVOCSP_STATUS_REVOKED);
    assert_int_equal(srvocsp_response_revocation_reason(rr), 1); /* keyCompromise */
    assert_int_equal(srvocsp_response_this_update(rg) % 3600, 0);
    /* Not known to it: unauthorized, named as such. */
    assert_null(srvocsp_get1_response(hu));
    assert_int_equal(srvocsp_handle_last_failure(hu, why, sizeof(why)),
                     SRVOCSP_E_RESPONSE_STATUS);
    assert_non_null(strstr(why, "unauthorized"));
    st = stats_of(eng);
    assert_true(st.fallbacks_get_to_post >= 1);
    assert_int_equal(st.failures, 1);
    assert_true(remembered(url + 7, NULL)); /* "127.0.0.1:PORT/" */

    /* A refresh is handed the same pre-signed bytes: unchanged, not a failure. */
    assert_int_equal(srvocsp_handle_refresh_now(hg), SRVOCSP_OK);
    assert_int_equal(srvocsp_engine_settle(eng, 10000), SRVOCSP_OK);
    st = stats_of(eng);
    assert_int_equal(st.unchanged, 1);
    assert_int_equal(st.failures, 1);
    again = srvocsp_get1_response(hg);
    assert_non_null(again);
    {
        const unsigned char *a = srvocsp_response_der(again, &la);
        const unsigned char *b = srvocsp_response_der(rg, &lb);

        assert_int_equal(la, lb);
        assert_memory_equal(a, b, lb); /* the very bytes pre-signed by cfssl */
    }
    printf("cfssl ocspserve: good, revoked (keyCompromise), unauthorized; %llu requests as POST, "
           "%llu unchanged\n",
           (unsigned long long)st.fallbacks_get_to_post, (unsigned long long)st.unchanged);

    srvocsp_response_free(rg);
    srvocsp_response_free(rr);
    srvocsp_response_free(again);
    srvocsp_close(hg);
    srvocsp_close(hr);
    srvocsp_close(hu);
    srvocsp_engine_free(eng);
    stop_peers(NULL);
    tp_pki_free(&pki);
}

/* ---- the npm `ocsp` package's server: POST only, a GET hangs ---- */

/* Installs the package into the build directory (never the repository)
 * unless it is there; the path of its node_modules, or NULL. */
static const char *npm_ocsp(void)
{
    static char mods[1200];
    char probe[1300], cmd[3000];

    snprintf(mods, sizeof(mods), "%s/npm/node_modules", SRVOCSP_BUILD_DIR);
    snprintf(probe, sizeof(probe), "%s/ocsp/lib/ocsp/server.js", mods);
    if (access(probe, R_OK) == 0)
        return mods;
    if (!have("npm"))
        return NULL;
    snprintf(cmd, sizeof(cmd),
             "timeout 180 npm install --no-audit --no-fund --prefix '%s/npm' ocsp@1.2.0 "
             ">'%s/npm-install.log' 2>&1",
             SRVOCSP_BUILD_DIR, dir);
    if (system(cmd) != 0 || access(probe, R_OK) != 0)
        return NULL;
    return mods;
}

static void test_npm_ocsp_server(void **s)
{
    tp_cert ca, leaf;
    tp_cert_opts o;
    srvocsp_engine *eng = NULL;
    srvocsp_handle *h = NULL;
    srvocsp_response *r = NULL;
    srvocsp_method_fallback f;
    const char *mods;
    int64_t now = (int64_t)time(NULL);
    int port = tr_free_port();
    char url[64], key[32], ca_pem[1100], ca_key[1100], chain[1100], log[1100], script[1200];
    char env[1300], port_s[16], why[512];
    char *argv[] = {"node", script, ca_pem, ca_key, port_s, "2a01:good", NULL};
    pid_t pid;
    double t0, first;

    (void)s;
    if (!have("node")) {
        printf("SKIP: node is not installed (Debian package nodejs)\n");
        skipped++;
        skip();
    }
    if ((mods = npm_ocsp()) == NULL) {
        printf("SKIP: the npm package ocsp could not be installed (see %s/npm-install.log)\n", dir);
        skipped++;
        skip();
    }
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
    snprintf(key, sizeof(key), ":%d/", port);
    /* It signs with the issuing CA's own RSA key. */
    memset(&o, 0, sizeof(o));
    o.cn = "npm ocsp test CA";
    o.serial = 0x50;
    o.not_before = now - 86400;
    o.not_after = now + 30 * 86400;
    o.ca = true;
    o.key_type = TP_KEY_RSA;
    assert_true(tp_cert_make(&ca, &o));
    memset(&o, 0, sizeof(o));
    o.cn = "localhost";
    o.issuer = &ca;
    o.serial = 0x2a01;
    o.not_before = now - 86400;
    o.not_after = now + 10 * 86400;
    o.server_auth = true;
    o.ocsp_urls[0] = url;
    o.key_type = TP_KEY_RSA;
    assert_true(tp_cert_make(&leaf, &o));
    write_pem("npm-ca.pem", ca.cert, NULL, ca_pem, sizeof(ca_pem));
    write_pem("npm-chain.pem", leaf.cert, ca.cert, chain, sizeof(chain));
    snprintf(ca_key, sizeof(ca_key), "%s/npm-ca.key", dir);
    assert_true(tp_write_key(ca_key, ca.key));

    snprintf(script, sizeof(script), "%s/tests/support/npm_ocsp_server.js", SRVOCSP_SOURCE_DIR);
    snprintf(env, sizeof(env), "NODE_PATH=%s", mods);
    snprintf(port_s, sizeof(port_s), "%d", port);
    snprintf(log, sizeof(log), "%s/npm-ocsp.log", dir);
    pid = spawn_peer(log, "listening on", 15000, env, argv);
    if (pid == 0)
        fail_msg("the npm ocsp server did not start (log %s)", log);

    /* The GET is never answered: the first attempt ends at its timeout. */
    eng = srvocsp_engine_new(NULL);
    t0 = tr_now_ms();
    h = open_with(eng, chain, NULL, 2000);
    first = tr_now_ms() - t0;
    assert_non_null(h);
    assert_int_equal(srvocsp_engine_settle(eng, 10000), SRVOCSP_OK);
    assert_null(srvocsp_get1_response(h));
    assert_int_equal(srvocsp_handle_last_failure(h, why, sizeof(why)), SRVOCSP_E_TIMEOUT);
    /* The next attempt is a POST: a staple arrives. */
    t0 = tr_now_ms();
    assert_int_equal(srvocsp_handle_refresh_now(h), SRVOCSP_OK);
    r = wait_served(h, 10000);
    assert_non_null(r);
    assert_int_equal(srvocsp_response_status(r), SRVOCSP_STATUS_GOOD);
    assert_int_equal(stats_of(eng).fallbacks_get_to_post, 1);
    assert_int_equal(stats_of(eng).get_unanswered, 1);
    assert_true(remembered(key, &f));
    assert_string_equal(f.method, "POST");
    printf("npm ocsp server: first attempt timed out after %.0f ms (GET never answered); "
           "the next one, as POST, served good %.0f ms after it was asked for\n",
           first, tr_now_ms() - t0);

    /* srvocsp fetch makes the second attempt itself. */
    {
        char cmd[2600], out[4096];
        size_t n;
        FILE *pf;
        int rc;

        snprintf(cmd, sizeof(cmd), "'%s' fetch --cert '%s' --timeout 2000 2>&1", SRVOCSP_CLI,
                 chain);
        pf = popen(cmd, "r");
        assert_non_null(pf);
        n = fread(out, 1, sizeof(out) - 1, pf);
        out[n] = '\0';
        rc = pclose(pf);
        printf("srvocsp fetch against it: %s", out);
        assert_int_equal(WEXITSTATUS(rc), 0);
        assert_non_null(strstr(out, "never answered the GET; asking again with POST"));
        assert_non_null(strstr(out, "good thisUpdate="));
    }

    srvocsp_response_free(r);
    srvocsp_close(h);
    srvocsp_engine_free(eng);
    stop_peers(NULL);
    tp_cert_free(&leaf);
    tp_cert_free(&ca);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_cfssl_ocspserve, stop_peers),
        cmocka_unit_test_teardown(test_npm_ocsp_server, stop_peers),
    };
    int rc;

    setvbuf(stdout, NULL, _IOLBF, 0);
    rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
    if (rc == 0 && skipped > 0) {
        printf("SKIP: %d case(s) could not run their responder (see above)\n", skipped);
        return 77;
    }
    return rc;
}
