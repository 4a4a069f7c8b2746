/* The scenarios' shared pieces (see apache_common.h). */
#define _GNU_SOURCE
#include "apache_common.h"

#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "peers.h"
#include "srvocsp.h"

int passed, failed;
tp_pki pki;
char *dir;
char pkidir[1200];


int64_t wall_now(void *ctx)
{
    (void)ctx;
    return (int64_t)time(NULL);
}

/* The test PKI names |e|'s slot 0 in every AIA. */
evil *setup(int64_t validity)
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


void new_apache(ar_apache *a, const char *name, const char *mpm)
{
    char p[1200];

    snprintf(p, sizeof(p), "%s/%s", dir, name);
    mkdir(p, 0755);
    ar_init(a, p, SRVOCSP_APACHE_MODULE_SO, SRVOCSP_APACHE_PRELOAD);
    a->mpm = mpm;
}

/* A name-based TLS vhost on |port| serving the PKI's |certs| (space
 * separated: "good good-rsa"), with |extra| directives. */
const char *vhost(int port, const char *name, const char *certs, const char *extra)
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


bool verified(const nr_hs *h, const tp_cert *leaf)
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
int run(char *out, size_t cap, const char *fmt, ...)
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


bool have(const char *tool)
{
    char out[256];

    return run(out, sizeof(out), "command -v %s >/dev/null 2>&1", tool) == 0;
}

/* No child died of a signal and nothing crashed, by the error log. */
bool no_crash(const ar_apache *a)
{
    return ar_log_count(a, "exit signal") == 0 && ar_log_count(a, "AddressSanitizer") == 0 &&
           ar_log_count(a, "runtime error") == 0 && ar_log_count(a, "Segmentation") == 0;
}

/* One vhost serving good (and good-rsa with |rsa|) on |port|. */
void one_vhost_body(char *body, size_t cap, int port, const char *globals, bool rsa)
{
    snprintf(body, cap, "Listen 127.0.0.1:%d\nSrvOcsp on\n%s\n%s", port, globals,
             vhost(port, "good.test", rsa ? "good good-rsa" : "good", NULL));
}

int at_main(int argc, char **argv, const at_scenario *s, size_t n)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc != 2) {
        fprintf(stderr, "usage: %s SCENARIO\n", argv[0]);
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
    for (size_t i = 0; i < n; i++) {
        if (strcmp(argv[1], s[i].name) != 0)
            continue;
        s[i].fn();
        printf("%d passed, %d failed\n", passed, failed);
        if (failed == 0 && dir)
            tr_rmrf(dir);
        return failed ? 1 : 0;
    }
    fprintf(stderr, "unknown scenario %s\n", argv[1]);
    return 2;
}
