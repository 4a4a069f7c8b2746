/*
 * What the test_apache and test_apache_life scenarios share: the test PKI
 * and its responder, an apache2 per scenario in the test's directory, a
 * virtual host's lines, checks of a staple, and the scenario runner.
 */
#ifndef SRVOCSP_APACHE_COMMON_H
#define SRVOCSP_APACHE_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "apacherun.h"
#include "evil.h"
#include "nginxrun.h"
#include "testpki.h"

#ifndef SRVOCSP_APACHE_MODULE_SO
#define SRVOCSP_APACHE_MODULE_SO ""
#endif
#ifndef SRVOCSP_APACHE_SKIP_REASON
#define SRVOCSP_APACHE_SKIP_REASON ""
#endif
#ifndef SRVOCSP_APACHE_CONF_SNIPPET
#define SRVOCSP_APACHE_CONF_SNIPPET ""
#endif
#ifndef SRVOCSP_APACHE_PRELOAD
#define SRVOCSP_APACHE_PRELOAD ""
#endif

extern int passed, failed;
extern tp_pki pki;
extern char *dir;          /* the scenario's directory (removed when it passed) */
extern char pkidir[1200];

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

int64_t wall_now(void *ctx);
/* The test PKI (written under dir/pki) naming the returned responder's
 * slot 0 in every AIA; responses valid |validity| s. */
evil *setup(int64_t validity);
/* A fresh ServerRoot dir/|name| for the module under |mpm|. */
void new_apache(ar_apache *a, const char *name, const char *mpm);
/* A name-based TLS vhost on |port| serving the PKI's |certs| (space
 * separated: "good good-rsa"), with |extra| directives; a static buffer
 * (eight in turn). */
const char *vhost(int port, const char *name, const char *certs, const char *extra);
/* Listen, SrvOcsp on, |globals|, one vhost serving good (and good-rsa). */
void one_vhost_body(char *body, size_t cap, int port, const char *globals, bool rsa);
/* The staple of |h| verifies for |leaf| under the PKI's CA. */
bool verified(const nr_hs *h, const tp_cert *leaf);
/* Runs a shell command; its output (stdout+stderr) in |out|, its status. */
int run(char *out, size_t cap, const char *fmt, ...);
bool have(const char *tool);
/* No child died of a signal and nothing crashed, by the error log. */
bool no_crash(const ar_apache *a);

typedef struct at_scenario {
    const char *name;
    void (*fn)(void);
} at_scenario;

/* main of a test program: runs the scenario argv[1] of |s|; 77 (skip,
 * saying why) without the module or apache2. */
int at_main(int argc, char **argv, const at_scenario *s, size_t n);

#endif
