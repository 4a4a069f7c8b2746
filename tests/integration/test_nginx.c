/*
 * The nginx module in the real nginx (Debian's binary, load_module), with a
 * fault-injecting responder on 127.0.0.1 that counts what it is asked.
 *
 *   test_nginx staple    first handshake stapled; RSA + ECDSA; SNI server
 *                        blocks; revoked stapled; no OCSP URL skipped with a
 *                        notice; s_client, curl, gnutls-cli; reports in the log
 *   test_nginx verify    bad signature, other certificate, unknown, tryLater:
 *                        nothing stapled, the failure logged
 *   test_nginx hang      a hung responder: start-up and handshakes do not wait
 *   test_nginx restart   responder down across a restart: stapled from the
 *                        directory; without one, a bounded start, no staple
 *   test_nginx workers   a killed worker's replacement staples at once; four
 *                        workers and the master cost one fetch per refresh
 *   test_nginx reload    reloads under a handshake load: none lost, all
 *                        stapled, no fetch, nothing leaked by the master
 *   test_nginx config    conflicts and bad values refused by nginx -t, which
 *                        fetches nothing
 *   test_nginx store     srvocsp_store: a bad URL refused at start with the
 *                        reason; a real redis-server gets the first fetch,
 *                        and a second nginx with the responder down and no
 *                        directory staples from it
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <openssl/ocsp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "evil.h"
#include "nginxrun.h"
#include "peers.h"
#include "redisd.h"
#include "srvocsp.h"
#include "testpki.h"

#ifndef SRVOCSP_NGINX_MODULE_SO
#define SRVOCSP_NGINX_MODULE_SO ""
#endif
#ifndef SRVOCSP_NGINX_SKIP_REASON
#define SRVOCSP_NGINX_SKIP_REASON ""
#endif
#ifndef SRVOCSP_NGINX_PRELOAD
#define SRVOCSP_NGINX_PRELOAD ""
#endif
#define NGINX_BIN "/usr/sbin/nginx"

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

    dir = tr_tmpdir("nginx");
    chmod(dir, 0755);
    /* The responder reads the PKI only when asked, after it is made. */
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

/* A fresh nginx prefix under the test directory. */
static void new_nginx(nr_nginx *n, const char *name)
{
    char p[1200];

    snprintf(p, sizeof(p), "%s/%s", dir, name);
    mkdir(p, 0755);
    nr_init(n, p, NGINX_BIN, SRVOCSP_NGINX_MODULE_SO, SRVOCSP_NGINX_PRELOAD);
}

/* ssl_certificate + key lines for the PKI's |name| (good, good-rsa, ...). */
static const char *cert_lines(const char *name)
{
    static char buf[8][4096];
    static int i;
    char *b = buf[i++ % 8];

    snprintf(b, 4096, "ssl_certificate %s/%s.pem; ssl_certificate_key %s/%s.key;", pkidir, name,
             pkidir, name);
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

/* Lines of the error log or of start-up's stderr that contain |needle|. */
static int logged(const nr_nginx *n, const char *needle)
{
    char p[1200], line[8192];
    FILE *f;
    int count = nr_log_count(n, needle);

    snprintf(p, sizeof(p), "%s/logs/stderr.log", n->dir);
    f = fopen(p, "r");
    if (f) {
        while (fgets(line, sizeof(line), f))
            count += strstr(line, needle) != NULL;
        fclose(f);
    }
    return count;
}

static bool wait_logged(const nr_nginx *n, const char *needle, int ms)
{
    double until = tr_now_ms() + ms;

    while (tr_now_ms() < until) {
        if (logged(n, needle) > 0)
            return true;
        tr_sleep_ms(20);
    }
    return false;
}

/* ------------------------------------------------------------------ */

static void scenario_staple(void)
{
    evil *e = setup(3600);
    nr_nginx n;
    char body[8192], out[16384];
    int port = tr_free_port(), port2 = tr_free_port();
    SSL_CTX *ecdsa = nr_client_ctx("ECDSA+SHA256", 0), *rsa = nr_client_ctx("RSA-PSS+SHA256:RSA+SHA256", 0);
    SSL_CTX *rsa12 = nr_client_ctx("RSA+SHA256", TLS1_2_VERSION), *any = nr_client_ctx(NULL, 0);
    nr_hs h;
    int rc;

    evil_set_slot(e, 0, EVIL_GOOD);
    evil_set_slot(e, 1, EVIL_REVOKED);
    new_nginx(&n, "ng");
    snprintf(body, sizeof(body),
             "srvocsp on; srvocsp_timeout 3s;\n"
             "server { listen 127.0.0.1:%d ssl; server_name good.test; %s %s\n"
             "         location / { return 200 \"ok\\n\"; } }\n"
             "server { listen 127.0.0.1:%d ssl; server_name revoked.test; %s\n"
             "         srvocsp_responder http://127.0.0.1:%d/k1/; }\n"
             "server { listen 127.0.0.1:%d ssl; server_name noaia.test; %s }\n"
             "server { listen 127.0.0.1:%d ssl; server_name twourls.test; srvocsp off; %s }\n"
             "server { listen 127.0.0.1:%d ssl; server_name revoked.test; %s\n"
             "         srvocsp_responder http://127.0.0.1:%d/k1/; }\n"
             "server { listen 127.0.0.1:%d ssl; server_name other.test; %s\n"
             "         srvocsp_responder http://127.0.0.1:%d/k0/; }\n",
             port, cert_lines("good"), cert_lines("good-rsa"), port, cert_lines("revoked"),
             evil_port(e), port, cert_lines("noaia"), port, cert_lines("twourls"), port2,
             cert_lines("revoked"), evil_port(e), port, cert_lines("revoked"), evil_port(e));
    CHECK(nr_write_conf(&n, 2, body) && nr_start(&n, port, 2), "nginx starts with the module loaded");

    /* The very first handshake after start. */
    nr_handshake(ecdsa, port, "good.test", &h);
    CHECK(h.ok && h.stapled && h.serial == TP_SERIAL_GOOD && verified(&h, &pki.good),
          "first handshake after start: ECDSA certificate's verified staple (serial %lx) %s", h.serial,
          h.err);
    nr_handshake(rsa, port, "good.test", &h);
    CHECK(h.ok && h.serial == TP_SERIAL_GOOD_RSA && verified(&h, &pki.good_rsa),
          "same server, RSA client: the RSA certificate's staple (serial %lx)", h.serial);
    nr_handshake(rsa12, port, "good.test", &h);
    CHECK(h.ok && h.serial == TP_SERIAL_GOOD_RSA && h.cert_status == V_OCSP_CERTSTATUS_GOOD,
          "TLS 1.2 RSA: the RSA staple (serial %lx)", h.serial);
    nr_handshake(any, port, "revoked.test", &h);
    CHECK(h.ok && h.serial == TP_SERIAL_REVOKED && h.cert_status == V_OCSP_CERTSTATUS_REVOKED &&
              verified(&h, &pki.revoked),
          "SNI server block: revoked is stapled, verified (serial %lx, status %d)", h.serial,
          h.cert_status);
    nr_handshake(any, port2, NULL, &h);
    CHECK(h.ok && h.serial == TP_SERIAL_REVOKED, "a second server block with the same certificate staples it");
    nr_handshake(any, port, "other.test", &h);
    CHECK(h.ok && h.cert_status == V_OCSP_CERTSTATUS_REVOKED &&
              logged(&n, "revoked.pem\" (server \"other.test\") is fetched with the srvocsp_responder") == 1,
          "a third block with the same certificate but another responder: the first block's "
          "retrieval, and a notice");
    nr_handshake(any, port, "noaia.test", &h);
    CHECK(h.ok && !h.stapled, "certificate without an OCSP URL: served, no staple");
    CHECK(logged(&n, "noaia.pem\" (server \"noaia.test\") is not stapled") == 1,
          "... and a notice names it");
    nr_handshake(any, port, "twourls.test", &h);
    CHECK(h.ok && !h.stapled, "srvocsp off in one server block: no staple there");
    CHECK(evil_requests(e) == 3,
          "one request per certificate at start (good, good-rsa, revoked; shared by three server blocks): %ld",
          evil_requests(e));
    CHECK(logged(&n, "good.pem\" is stapled from the first handshake") == 1,
          "start-up says what each certificate staples");

    /* Real clients (installed by scripts/deps.sh --test). */
    CHECK(have("openssl") && have("curl") && have("gnutls-cli"),
          "openssl, curl and gnutls-cli are installed");
    {
        run(out, sizeof(out),
            "echo | timeout 10 openssl s_client -connect 127.0.0.1:%d -servername good.test -status "
            "-CAfile %s/root.pem 2>&1",
            port, pkidir);
        CHECK(strstr(out, "Cert Status: good") && strstr(out, "Verify return code: 0 (ok)"),
              "openssl s_client -status: good, chain verifies");
    }
    {
        rc = run(out, sizeof(out),
                 "curl -s --cert-status --cacert %s/root.pem --resolve good.test:%d:127.0.0.1 "
                 "https://good.test:%d/ 2>&1",
                 pkidir, port, port);
        CHECK(rc == 0 && strstr(out, "ok"), "curl --cert-status accepts the staple (rc %d)", rc);
        rc = run(out, sizeof(out),
                 "curl -s --cert-status --cacert %s/root.pem --resolve revoked.test:%d:127.0.0.1 "
                 "https://revoked.test:%d/ 2>&1",
                 pkidir, port, port);
        CHECK(rc == 91, "curl --cert-status refuses the revoked staple (rc %d, want 91)", rc);
    }
    {
        char saved[1300];
        size_t slen = 0;
        unsigned char *sb;

        snprintf(saved, sizeof(saved), "%s/gnutls-staple.der", dir);
        unlink(saved);
        rc = run(out, sizeof(out),
                 "timeout 10 gnutls-cli --ocsp --save-ocsp=%s --x509cafile %s/root.pem -p %d "
                 "127.0.0.1 </dev/null 2>&1",
                 saved, pkidir, port);
        sb = tp_read_file(saved, &slen);
        CHECK(rc == 0 && sb != NULL && slen > 0 && strstr(out, "The certificate is trusted"),
              "gnutls-cli --ocsp receives the staple and accepts it (rc %d, %zu bytes saved)", rc,
              slen);
        free(sb);
    }

    /* Reports reach nginx's error log through the workers' event loop. */
    CHECK(wait_logged(&n, "new OCSP response, good", 3000), "updates appear in nginx's error log");
    CHECK(wait_logged(&n, "the responder says REVOKED", 3000), "revoked is reported in the error log");
    nr_stop(&n);
    SSL_CTX_free(ecdsa);
    SSL_CTX_free(rsa);
    SSL_CTX_free(rsa12);
    SSL_CTX_free(any);
    evil_stop(e);
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
    };
    evil *e = setup(3600);
    SSL_CTX *any = nr_client_ctx(NULL, 0);

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        nr_nginx n;
        char body[4096], name[32];
        int port = tr_free_port();
        long before = evil_requests(e);
        nr_hs h;

        evil_set_slot(e, 0, bad[i].s);
        snprintf(name, sizeof(name), "ng-%zu", i);
        new_nginx(&n, name);
        snprintf(body, sizeof(body),
                 "srvocsp on; srvocsp_timeout 2s;\n"
                 "server { listen 127.0.0.1:%d ssl; %s }\n",
                 port, cert_lines("good"));
        if (!nr_write_conf(&n, 1, body) || !nr_start(&n, port, 1)) {
            CHECK(0, "nginx starts (%s)", evil_name(bad[i].s));
            continue;
        }
        nr_handshake(any, port, NULL, &h);
        CHECK(h.ok && !h.stapled && evil_requests(e) > before,
              "%s: the responder was asked, the handshake completes, nothing is stapled",
              evil_name(bad[i].s));
        CHECK(wait_logged(&n, bad[i].log, 3000), "%s: the log says why (%s)", evil_name(bad[i].s),
              bad[i].log);
        nr_stop(&n);
    }
    SSL_CTX_free(any);
    evil_stop(e);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static void scenario_hang(void)
{
    evil *e = setup(3600);
    nr_nginx n;
    char body[4096], cache[1200];
    int port = tr_free_port(), stapled = 0, ok = 0;
    SSL_CTX *any = nr_client_ctx(NULL, 0);
    double t0, started_ms, lat[40];
    long before;

    snprintf(cache, sizeof(cache), "%s/cache", dir);
    evil_set_slot(e, 0, EVIL_GOOD);
    new_nginx(&n, "ng");
    snprintf(body, sizeof(body),
             "srvocsp on; srvocsp_timeout 20s; srvocsp_directory %s;\n"
             "server { listen 127.0.0.1:%d ssl; %s %s }\n",
             cache, port, cert_lines("good"), cert_lines("good-rsa"));
    CHECK(nr_write_conf(&n, 1, body) && nr_start(&n, port, 1), "nginx starts and saves its responses");
    nr_stop(&n);
    CHECK(nr_age_cache(cache, &pki) == 2, "the saved responses are replaced by older ones, due for refresh");

    /* Now the responder hangs: it takes every request and never answers. */
    evil_set_slot(e, 0, EVIL_HANG);
    before = evil_requests(e);
    t0 = tr_now_ms();
    CHECK(nr_start(&n, port, 1), "nginx starts while the responder hangs");
    started_ms = tr_now_ms() - t0;
    CHECK(started_ms < 10000, "start-up did not wait for the hung responder (%.0f ms; its timeout is 20 s)",
          started_ms);
    for (int i = 0; i < 100 && evil_requests(e) == before; i++)
        tr_sleep_ms(50);
    CHECK(evil_requests(e) > before, "the refresh is in flight at the hung responder");
    for (int i = 0; i < 40; i++) {
        nr_hs h;

        nr_handshake(any, port, NULL, &h);
        lat[i] = h.ms;
        ok += h.ok;
        stapled += h.ok && verified(&h, h.serial == TP_SERIAL_GOOD ? &pki.good : &pki.good_rsa);
        if (!h.ok) {
            /* One stuck worker would make each of the 40 wait its 10 s
             * timeout: say so once and stop. */
            fprintf(stderr, "handshake %d failed after %.0f ms: %s\n", i, h.ms, h.err);
            for (int j = i + 1; j < 40; j++)
                lat[j] = h.ms;
            break;
        }
    }
    qsort(lat, 40, sizeof(lat[0]), cmp_double);
    CHECK(ok == 40 && stapled == 40, "40 handshakes while it hangs: %d completed, %d stapled the held response",
          ok, stapled);
    CHECK(lat[39] < 5000, "no handshake waited for it (20 s): median %.2f ms, slowest %.2f ms", lat[20], lat[39]);
    nr_stop(&n);
    SSL_CTX_free(any);
    evil_stop(e);
}

static void scenario_restart(void)
{
    evil *e = setup(3600);
    nr_nginx n, m;
    char body[4096];
    int port = tr_free_port();
    SSL_CTX *any = nr_client_ctx(NULL, 0);
    nr_hs h;
    double t0;

    evil_set_slot(e, 0, EVIL_GOOD);
    new_nginx(&n, "ng");
    snprintf(body, sizeof(body),
             "srvocsp on; srvocsp_timeout 2s; srvocsp_directory %s/cache;\n"
             "server { listen 127.0.0.1:%d ssl; %s }\n",
             dir, port, cert_lines("good"));
    CHECK(nr_write_conf(&n, 2, body) && nr_start(&n, port, 2), "nginx starts with a directory");
    nr_handshake(any, port, NULL, &h);
    CHECK(h.stapled && verified(&h, &pki.good), "stapled");
    nr_stop(&n);
    evil_stop(e); /* the responder is gone: connections are refused */

    CHECK(nr_start(&n, port, 2), "nginx restarts with the responder down");
    nr_handshake(any, port, NULL, &h);
    CHECK(h.ok && h.stapled && verified(&h, &pki.good),
          "the first handshake after the restart is stapled (from the directory)");
    nr_stop(&n);

    /* Without a saved response: the start is bounded, handshakes go on. */
    new_nginx(&m, "ng2");
    snprintf(body, sizeof(body),
             "srvocsp on; srvocsp_timeout 2s;\n"
             "server { listen 127.0.0.1:%d ssl; %s }\n",
             port, cert_lines("good"));
    t0 = tr_now_ms();
    CHECK(nr_write_conf(&m, 1, body) && nr_start(&m, port, 1), "nginx starts with no responder and no directory");
    nr_handshake(any, port, NULL, &h);
    CHECK(h.ok && !h.stapled, "handshakes complete without a staple (%.0f ms after start)", tr_now_ms() - t0);
    CHECK(logged(&m, "has no OCSP response yet") == 1, "start-up says the certificate has no response yet");
    nr_stop(&m);
    SSL_CTX_free(any);
}

static void scenario_workers(void)
{
    evil *e = setup(3600), *e2;
    nr_nginx n, m;
    char body[4096];
    int port = tr_free_port(), port2 = tr_free_port(), stapled = 0;
    SSL_CTX *any = nr_client_ctx(NULL, 0);
    pid_t w[8] = {0}, w2[8] = {0};
    long at_start;
    nr_hs h;
    double t0, until;

    /* A killed worker's replacement staples at once, without a fetch. */
    evil_set_slot(e, 0, EVIL_GOOD);
    new_nginx(&n, "ng");
    snprintf(body, sizeof(body),
             "srvocsp on; srvocsp_directory %s/cache1;\n"
             "server { listen 127.0.0.1:%d ssl; %s %s }\n",
             dir, port, cert_lines("good"), cert_lines("good-rsa"));
    CHECK(nr_write_conf(&n, 1, body) && nr_start(&n, port, 1), "nginx starts with one worker");
    at_start = evil_requests(e);
    CHECK(nr_workers(&n, w, 8, false) == 1 && kill(w[0], SIGKILL) == 0, "its worker is killed (SIGKILL)");
    bool respawned = false;

    for (int i = 0; i < 500 && !respawned; i++) {
        respawned = nr_workers(&n, w2, 8, false) == 1 && w2[0] > 0 && w2[0] != w[0];
        if (!respawned)
            tr_sleep_ms(10);
    }
    CHECK(respawned, "the master starts a new worker");
    nr_handshake(any, port, NULL, &h);
    CHECK(h.ok && h.stapled && verified(&h, &pki.good), "the new worker's first handshake is stapled");
    CHECK(evil_requests(e) == at_start, "without a fetch (%ld requests before and after)", at_start);
    nr_stop(&n);

    /* Four workers forked at the same instant, and the master: responses of
     * 300 s, refreshed a quarter in.  Together they fetch once per
     * certificate per refresh. */
    e2 = evil_start(&pki, wall_now, NULL, 300);
    evil_set_slot(e2, 0, EVIL_GOOD);
    new_nginx(&m, "ng4");
    /* As Debian runs it: workers under an unprivileged user, who must be
     * able to save into the directory the master created. */
    if (geteuid() == 0 && getpwnam("nobody") != NULL)
        m.user = "nobody nogroup";
    snprintf(body, sizeof(body),
             "srvocsp on; srvocsp_directory %s/cache4; srvocsp_min_validity 10s;\n"
             "srvocsp_responder http://127.0.0.1:%d/k0/;\n"
             "server { listen 127.0.0.1:%d ssl; %s %s }\n",
             dir, evil_port(e2), port2, cert_lines("good"), cert_lines("good-rsa"));
    t0 = tr_now_ms();
    CHECK(nr_write_conf(&m, 4, body) && nr_start(&m, port2, 4), "nginx starts with four workers");
    CHECK(evil_requests(e2) == 2, "start: one request per certificate for master and workers (%ld)",
          evil_requests(e2));
    for (int i = 0; i < 40; i++) {
        nr_handshake(any, port2, NULL, &h);
        stapled += h.stapled;
    }
    CHECK(stapled == 40, "40 handshakes over four workers: %d stapled", stapled);
    /* The refresh falls 75 s in (less jitter); the next one at least 60 s
     * after it.  Watch until 100 s. */
    until = t0 + 100000;
    while (tr_now_ms() < until)
        tr_sleep_ms(500);
    CHECK(evil_requests(e2) == 4,
          "after one refresh round, 4 requests in all (one per certificate per round; five processes "
          "fetching alone would make 12): %ld",
          evil_requests(e2));
    CHECK(logged(&m, "new OCSP response, good") >= 4, "the refreshes appear in the log");
    if (m.user != NULL) {
        char cache4[1200];
        struct passwd *pw = getpwnam("nobody");
        struct stat st;
        DIR *d;
        struct dirent *de;
        int by_worker = 0;

        snprintf(cache4, sizeof(cache4), "%s/cache4", dir);
        CHECK(stat(cache4, &st) == 0 && st.st_uid == pw->pw_uid,
              "the master gave srvocsp_directory to the workers' user (nobody)");
        d = opendir(cache4);
        while (d && (de = readdir(d)) != NULL) {
            char f[1500];

            snprintf(f, sizeof(f), "%s/%s", cache4, de->d_name);
            if (strstr(de->d_name, ".der") && de->d_name[0] != '.' && stat(f, &st) == 0 &&
                st.st_uid == pw->pw_uid)
                by_worker++;
        }
        if (d)
            closedir(d);
        CHECK(by_worker == 2 && logged(&m, "could not be saved") == 0,
              "the refreshed responses were saved by a worker running as nobody (%d of 2)", by_worker);
    }
    stapled = 0;
    for (int i = 0; i < 40; i++) {
        nr_handshake(any, port2, NULL, &h);
        stapled += h.stapled;
    }
    CHECK(stapled == 40, "after the refresh: %d of 40 stapled", stapled);
    nr_stop(&m);
    evil_stop(e2);
    SSL_CTX_free(any);
    evil_stop(e);
}

typedef struct load {
    int port;
    atomic_bool stop;
    atomic_long ok, failed, stapled;
    char last_err[256];
} load;

static void *load_main(void *arg)
{
    load *l = arg;
    SSL_CTX *ctx = nr_client_ctx(NULL, 0);

    while (!atomic_load(&l->stop)) {
        nr_hs h;

        if (nr_handshake(ctx, l->port, NULL, &h)) {
            atomic_fetch_add(&l->ok, 1);
            atomic_fetch_add(&l->stapled, h.stapled);
        } else {
            atomic_fetch_add(&l->failed, 1);
            snprintf(l->last_err, sizeof(l->last_err), "%s", h.err);
        }
    }
    SSL_CTX_free(ctx);
    return NULL;
}

static void scenario_reload(void)
{
    evil *e = setup(3600);
    nr_nginx n;
    char body[4096];
    load l;
    pthread_t th[4];
    int fds0, thr0, fds1, thr1, reloads = 0;
    long rss0, rss1, at_start;
    SSL_CTX *any = nr_client_ctx(NULL, 0);
    nr_hs h;

    memset(&l, 0, sizeof(l));
    l.port = tr_free_port();
    evil_set_slot(e, 0, EVIL_GOOD);
    new_nginx(&n, "ng");
    /* No directory: the new configuration's handles share the old ones'. */
    snprintf(body, sizeof(body),
             "srvocsp on;\n"
             "server { listen 127.0.0.1:%d ssl; %s %s }\n",
             l.port, cert_lines("good"), cert_lines("good-rsa"));
    CHECK(nr_write_conf(&n, 2, body) && nr_start(&n, l.port, 2), "nginx starts");
    at_start = evil_requests(e);
    /* A first reload settles what nginx allocates once. */
    CHECK(nr_reload(&n, 2, 20000), "first reload");
    fds0 = nr_proc_fds(n.master);
    thr0 = nr_proc_threads(n.master);
    rss0 = nr_proc_rss_kb(n.master);
    nr_handshake(any, l.port, NULL, &h);
    CHECK(h.stapled && verified(&h, &pki.good), "the first handshake after a reload is stapled");

    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, load_main, &l);
    for (int i = 0; i < 20; i++) {
        reloads += nr_reload(&n, 2, 20000);
        tr_sleep_ms(100);
    }
    atomic_store(&l.stop, true);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    CHECK(reloads == 20, "20 reloads under load, each with the old workers gone: %d", reloads);
    CHECK(atomic_load(&l.failed) == 0 && atomic_load(&l.ok) > 100,
          "no handshake lost: %ld completed, %ld failed %s", atomic_load(&l.ok), atomic_load(&l.failed),
          l.last_err);
    CHECK(atomic_load(&l.stapled) == atomic_load(&l.ok), "every one stapled: %ld of %ld",
          atomic_load(&l.stapled), atomic_load(&l.ok));
    CHECK(evil_requests(e) == at_start, "reloads fetched nothing (%ld requests)", evil_requests(e));
    /* A final reload after the load; then the master's resources. */
    nr_reload(&n, 2, 20000);
    fds1 = nr_proc_fds(n.master);
    thr1 = nr_proc_threads(n.master);
    rss1 = nr_proc_rss_kb(n.master);
    /* (libcurl may have closed an idle keep-alive connection meanwhile.) */
    if (fds1 > fds0) {
        char ls[8192];

        run(ls, sizeof(ls), "ls -l /proc/%d/fd 2>&1 | sed 's/.* -> //'", (int)n.master);
        printf("     the master's descriptors now:\n%s\n", ls);
    }
    CHECK(fds1 <= fds0 && thr1 == thr0,
          "the master gains no file descriptor (%d -> %d) and no thread (%d -> %d)", fds0, fds1,
          thr0, thr1);
    /* Each reload parses the new configuration while the old one is still
     * open: both configurations' handles, never more. */
    CHECK(nr_log_count(&n, "holds 4 handles on 2 certificates") == 22 &&
              nr_log_count(&n, "the process holds") == 22,
          "every reload: the master holds 4 handles (the old and the new configuration's) on 2 "
          "certificates, none left behind (%d of 22 reloads)",
          nr_log_count(&n, "holds 4 handles on 2 certificates"));
    /* A reload with a configuration nginx refuses: the old one keeps
     * stapling, and what the refused one had opened is closed again. */
    {
        char bad[4096];

        snprintf(bad, sizeof(bad),
                 "srvocsp on;\n"
                 "server { listen 127.0.0.1:%d ssl; %s %s }\n"
                 "server { listen 127.0.0.1:%d ssl; server_name x.test; %s ssl_stapling on; }\n",
                 l.port, cert_lines("good"), cert_lines("good-rsa"), l.port, cert_lines("revoked"));
        nr_write_conf(&n, 2, bad);
        if (n.master > 0) /* never kill(0, ...): the test's own process group */
            kill(n.master, SIGHUP);
        CHECK(wait_logged(&n, "are both set for the server", 10000),
              "a reload into a refused configuration is logged");
        nr_handshake(any, l.port, NULL, &h);
        CHECK(h.stapled && verified(&h, &pki.good), "the running configuration keeps stapling");
        nr_write_conf(&n, 2, body);
        CHECK(nr_reload(&n, 2, 20000) && nr_log_count(&n, "holds 4 handles on 2 certificates") == 23 &&
                  nr_log_count(&n, "the process holds") == 23,
              "the next reload finds 4 handles again: the refused configuration's were closed");
    }
    /* A reload keeps each certificate's running retrieval: one that asks
     * for another timeout is told it applies after a restart. */
    {
        char changed[4096];

        snprintf(changed, sizeof(changed),
                 "srvocsp on; srvocsp_timeout 7s;\n"
                 "server { listen 127.0.0.1:%d ssl; %s %s }\n",
                 l.port, cert_lines("good"), cert_lines("good-rsa"));
        nr_write_conf(&n, 2, changed);
        CHECK(nr_reload(&n, 2, 20000) &&
                  nr_log_count(&n, "srvocsp_timeout applies after a restart") == 2,
              "a changed srvocsp_timeout on reload: a notice per certificate (%d)",
              nr_log_count(&n, "srvocsp_timeout applies after a restart"));
        nr_handshake(any, l.port, NULL, &h);
        CHECK(h.stapled && verified(&h, &pki.good), "and the staple goes on");
    }
    if (SRVOCSP_NGINX_PRELOAD[0] == '\0')
        CHECK(rss1 - rss0 < 2048, "the master's memory after 21 reloads: %ld -> %ld KiB", rss0, rss1);
    else /* the sanitizers' quarantine keeps freed memory resident */
        printf("info the master's memory after 21 reloads: %ld -> %ld KiB (sanitized build)\n", rss0, rss1);
    nr_stop(&n);
    SSL_CTX_free(any);
    evil_stop(e);
}

static void scenario_config(void)
{
    evil *e = setup(3600);
    nr_nginx n;
    char body[4096], out[8192];
    int port = tr_free_port(), rc;

    evil_set_slot(e, 0, EVIL_GOOD);
    new_nginx(&n, "ng");
    snprintf(body, sizeof(body),
             "srvocsp on;\n"
             "server { listen 127.0.0.1:%d ssl; %s ssl_stapling on; }\n",
             port, cert_lines("good"));
    nr_write_conf(&n, 1, body);
    rc = nr_test_conf(&n, out, sizeof(out));
    CHECK(rc != 0 && strstr(out, "\"srvocsp on\"") && strstr(out, "\"ssl_stapling on\"") &&
              strstr(out, "turn \"ssl_stapling\" off"),
          "srvocsp and ssl_stapling on one server: refused by nginx -t (rc %d)\n     %s", rc, out);

    snprintf(body, sizeof(body),
             "srvocsp on; srvocsp_responder ftp://127.0.0.1/;\n"
             "server { listen 127.0.0.1:%d ssl; %s }\n",
             port, cert_lines("good"));
    nr_write_conf(&n, 1, body);
    rc = nr_test_conf(&n, out, sizeof(out));
    CHECK(rc != 0 && strstr(out, "must be an http:// URL"), "a responder that is not http:// is refused");

    snprintf(body, sizeof(body),
             "srvocsp on; srvocsp_timeout 0;\n"
             "server { listen 127.0.0.1:%d ssl; %s }\n",
             port, cert_lines("good"));
    nr_write_conf(&n, 1, body);
    rc = nr_test_conf(&n, out, sizeof(out));
    CHECK(rc != 0 && strstr(out, "srvocsp_timeout"), "srvocsp_timeout 0 is refused");

    snprintf(body, sizeof(body),
             "srvocsp on; srvocsp_directory %s/cache; srvocsp_min_validity 5m; srvocsp_timeout 4s;\n"
             "srvocsp_store redis://127.0.0.1:1; srvocsp_store_prefix a:;\n"
             "server { listen 127.0.0.1:%d ssl; %s ssl_stapling off;\n"
             "         srvocsp_store unix:///nonexistent/redis.sock; srvocsp_store_prefix b:; }\n"
             "server { listen 127.0.0.1:%d ssl; server_name other.test; %s ssl_stapling on; srvocsp off; }\n",
             dir, port, cert_lines("good"), port, cert_lines("revoked"));
    nr_write_conf(&n, 1, body);
    rc = nr_test_conf(&n, out, sizeof(out));
    CHECK(rc == 0, "every directive at http and server level; ssl_stapling beside srvocsp off (rc %d)\n     %s",
          rc, out);
    CHECK(evil_requests(e) == 0, "nginx -t fetched nothing (%ld requests)", evil_requests(e));
    evil_stop(e);
}

static long long redis_dbsize(tr_redis *r)
{
    const char *argv[] = {"DBSIZE"};
    const size_t lens[] = {6};

    return tr_redis_cmd(r, NULL, 0, 1, argv, lens);
}

static void scenario_store(void)
{
    evil *e;
    nr_nginx n, m, b;
    tr_redis r;
    tr_redis_opts ro = {.tcp = true};
    char body[4096];
    int port = tr_free_port();
    SSL_CTX *any;
    nr_hs h;
    double until;
    long long keys = 0;
    long asked;

    if (!tr_redis_available()) {
        printf("SKIP: redis-server not installed (apt-get install redis-server)\n");
        exit(77);
    }
    e = setup(3600);
    any = nr_client_ctx(NULL, 0);
    evil_set_slot(e, 0, EVIL_GOOD);

    /* An unknown scheme: nginx does not start and says why. */
    new_nginx(&b, "bad");
    snprintf(body, sizeof(body),
             "srvocsp on; srvocsp_timeout 2s; srvocsp_store memcached://127.0.0.1:11211;\n"
             "server { listen 127.0.0.1:%d ssl; %s }\n",
             port, cert_lines("good"));
    CHECK(nr_write_conf(&b, 1, body) && !nr_start(&b, port, 1),
          "nginx refuses to start with srvocsp_store memcached://");
    CHECK(logged(&b, "[emerg]") > 0 && logged(&b, "srvocsp_store: ") > 0 &&
              logged(&b, "unknown scheme \"memcached\"") > 0 && logged(&b, "nginx.conf:") > 0,
          "the error log names the directive, the unknown scheme, the file and line");
    nr_stop(&b);

    /* A URL with a password is never written to the log, whatever is wrong
     * with it. */
    new_nginx(&b, "bad-password");
    snprintf(body, sizeof(body),
             "srvocsp on; srvocsp_timeout 2s; srvocsp_store redis://u:s3cr3t@127.0.0.1:1/x;\n"
             "server { listen 127.0.0.1:%d ssl; %s }\n",
             port, cert_lines("good"));
    CHECK(nr_write_conf(&b, 1, body) && !nr_start(&b, port, 1) &&
              logged(&b, "srvocsp_store: ") > 0 && logged(&b, "s3cr3t") == 0,
          "a bad srvocsp_store with a password: refused, the password not in the log");
    nr_stop(&b);

    /* The Sentinel form: without its master name nginx does not start and
     * says why; with one it starts, no Sentinel answering being no error,
     * and staples from the responder. */
    new_nginx(&b, "sentinel-bad");
    snprintf(body, sizeof(body),
             "srvocsp on; srvocsp_timeout 2s; srvocsp_store redis-sentinel://127.0.0.1:1;\n"
             "server { listen 127.0.0.1:%d ssl; %s }\n",
             port, cert_lines("good"));
    CHECK(nr_write_conf(&b, 1, body) && !nr_start(&b, port, 1) &&
              logged(&b, "no master name") > 0,
          "nginx refuses srvocsp_store redis-sentinel:// without #MASTER, naming the fault");
    nr_stop(&b);
    new_nginx(&b, "sentinel");
    snprintf(body, sizeof(body),
             "srvocsp on; srvocsp_timeout 2s;\n"
             "srvocsp_store redis-sentinel://127.0.0.1:%d,127.0.0.1:%d?connect_timeout=100ms#fleet;\n"
             "server { listen 127.0.0.1:%d ssl; %s }\n",
             tr_free_port(), tr_free_port(), port, cert_lines("good"));
    CHECK(nr_write_conf(&b, 1, body) && nr_start(&b, port, 1),
          "nginx starts with srvocsp_store redis-sentinel://... (no Sentinel answering)");
    nr_handshake(any, port, NULL, &h);
    CHECK(h.ok && h.stapled && verified(&h, &pki.good), "and staples from the responder");
    nr_stop(&b);

    if (!tr_redis_start(&r, &ro)) {
        CHECK(false, "redis-server starts");
        goto out_evil;
    }
    /* One fetch, saved into Redis. */
    new_nginx(&n, "ng");
    snprintf(body, sizeof(body),
             "srvocsp_store %s; srvocsp_store_prefix ngxtest:;\n"
             "server { listen 127.0.0.1:%d ssl; %s srvocsp on; srvocsp_timeout 2s; }\n",
             r.url, port, cert_lines("good"));
    CHECK(nr_write_conf(&n, 2, body) && nr_start(&n, port, 2),
          "nginx starts with srvocsp_store %s (server level: on, timeout; http level: store)", r.url);
    nr_handshake(any, port, NULL, &h);
    CHECK(h.ok && h.stapled && verified(&h, &pki.good), "the first handshake is stapled");
    until = tr_now_ms() + 5000;
    while (tr_now_ms() < until && (keys = redis_dbsize(&r)) < 1)
        tr_sleep_ms(20);
    CHECK(keys >= 1, "the response is saved in Redis (%lld keys)", keys);
    asked = evil_requests(e);
    CHECK(asked >= 1, "the responder was asked (%ld requests)", asked);

    /* A reload keeps the running retrieval, store and all; two blocks
     * with one certificate and different stores: the first block's. */
    snprintf(body, sizeof(body),
             "srvocsp_store %s; srvocsp_store_prefix ngxtest2:;\n"
             "server { listen 127.0.0.1:%d ssl; %s srvocsp on; srvocsp_timeout 2s; }\n"
             "server { listen 127.0.0.1:%d ssl; server_name two.test; %s srvocsp on;\n"
             "         srvocsp_timeout 2s; srvocsp_store_prefix ngxtest3:; }\n",
             r.url, port, cert_lines("good"), port, cert_lines("good"));
    CHECK(nr_write_conf(&n, 2, body) && nr_reload(&n, 2, 20000), "reload with another prefix");
    CHECK(wait_logged(&n, "srvocsp_store_prefix or srvocsp_timeout applies after a restart", 3000),
          "the reload says the new store prefix applies after a restart");
    CHECK(logged(&n, "srvocsp_store_prefix and srvocsp_timeout of the first server block") > 0,
          "a certificate in two blocks with different prefixes: the first block's, with a notice");
    nr_handshake(any, port, NULL, &h);
    CHECK(h.ok && h.stapled && verified(&h, &pki.good), "stapled after the reload");
    CHECK(evil_requests(e) == asked, "the reload fetched nothing (%ld requests)", evil_requests(e));
    nr_stop(&n);
    evil_stop(e); /* the responder is gone */
    e = NULL;

    /* Responder down, no directory: the staple comes from Redis. */
    new_nginx(&m, "ng2");
    snprintf(body, sizeof(body),
             "srvocsp on; srvocsp_timeout 2s; srvocsp_store %s; srvocsp_store_prefix ngxtest:;\n"
             "server { listen 127.0.0.1:%d ssl; %s }\n",
             r.url, port, cert_lines("good"));
    CHECK(nr_write_conf(&m, 2, body) && nr_start(&m, port, 2),
          "a second nginx starts with the responder down and no directory");
    nr_handshake(any, port, NULL, &h);
    CHECK(h.ok && h.stapled && verified(&h, &pki.good),
          "its first handshake is stapled with the response from Redis");
    nr_stop(&m);

    /* Another prefix finds nothing there: the staple above came from the
     * store, not from anywhere else. */
    new_nginx(&m, "ng3");
    snprintf(body, sizeof(body),
             "srvocsp on; srvocsp_timeout 1s; srvocsp_store %s; srvocsp_store_prefix other:;\n"
             "server { listen 127.0.0.1:%d ssl; %s }\n",
             r.url, port, cert_lines("good"));
    CHECK(nr_write_conf(&m, 1, body) && nr_start(&m, port, 1), "nginx starts with another prefix");
    nr_handshake(any, port, NULL, &h);
    CHECK(h.ok && !h.stapled, "with another srvocsp_store_prefix nothing is stapled");
    nr_stop(&m);
    tr_redis_stop(&r);
out_evil:
    if (e != NULL)
        evil_stop(e);
    SSL_CTX_free(any);
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        void (*fn)(void);
    } all[] = {{"staple", scenario_staple},   {"verify", scenario_verify},
               {"hang", scenario_hang},       {"restart", scenario_restart},
               {"workers", scenario_workers}, {"reload", scenario_reload},
               {"config", scenario_config},   {"store", scenario_store}};
    size_t i;

    if (argc != 2) {
        fprintf(stderr, "usage: %s staple|verify|hang|restart|workers|reload|config|store\n", argv[0]);
        return 2;
    }
    if (SRVOCSP_NGINX_SKIP_REASON[0]) {
        printf("SKIP: the nginx module is not built here: %s\n", SRVOCSP_NGINX_SKIP_REASON);
        return 77;
    }
    if (access(NGINX_BIN, X_OK) != 0) {
        printf("SKIP: %s not installed (apt-get install nginx)\n", NGINX_BIN);
        return 77;
    }
    signal(SIGPIPE, SIG_IGN);
    for (i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (strcmp(argv[1], all[i].name) == 0)
            break;
    if (i == sizeof(all) / sizeof(all[0])) {
        fprintf(stderr, "unknown scenario %s\n", argv[1]);
        return 2;
    }
    all[i].fn();
    tp_pki_free(&pki);
    tr_rmrf(dir);
    free(dir);
    srvocsp_cleanup();
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 && passed > 0 ? 0 : 1;
}
