/* What the fallback tests share (methods_common.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "methods_common.h"
#include "peers.h"
#include "testpki.h"

char *dir;
/* Peers started by the current test: a failed assertion leaves the test
 * function early, so the teardown stops them. */
static pid_t peers[2];

pid_t spawn_peer(const char *log, const char *ready, int wait_ms, const char *env,
                 char *const argv[])
{
    pid_t pid = tr_spawn(log, ready, wait_ms, env, argv);

    for (size_t i = 0; i < sizeof(peers) / sizeof(peers[0]); i++)
        if (peers[i] == 0) {
            peers[i] = pid;
            break;
        }
    return pid;
}

int stop_peers(void **s)
{
    (void)s;
    for (size_t i = 0; i < sizeof(peers) / sizeof(peers[0]); i++) {
        tr_pid_stop(peers[i]);
        peers[i] = 0;
    }
    return 0;
}

srvocsp_handle *open_with(srvocsp_engine *eng, const char *pem, const char *url,
                          uint32_t timeout_ms)
{
    srvocsp_params p;

    srvocsp_params_init(&p);
    p.engine = eng;
    p.responder_url = url;
    p.url_timeout_ms = timeout_ms;
    return srvocsp_open_pem(pem, NULL, &p);
}

srvocsp_engine_stats stats_of(srvocsp_engine *eng)
{
    srvocsp_engine_stats st;

    srvocsp_engine_get_stats(eng, &st);
    return st;
}

bool remembered(const char *needle, srvocsp_method_fallback *out)
{
    srvocsp_method_fallback f[64];
    size_t i, n = srvocsp_method_fallbacks(f, 64);

    for (i = 0; i < n && i < 64; i++)
        if (strstr(f[i].responder, needle) != NULL) {
            if (out != NULL)
                *out = f[i];
            return true;
        }
    return false;
}

srvocsp_response *wait_served(srvocsp_handle *h, int ms)
{
    double until = tr_now_ms() + ms;
    srvocsp_response *r;

    while ((r = srvocsp_get1_response(h)) == NULL && tr_now_ms() < until)
        tr_sleep_ms(50);
    return r;
}

void write_pem(const char *name, X509 *a, X509 *b, char *path, size_t len)
{
    snprintf(path, len, "%s/%s", dir, name);
    assert_true(tp_write_cert(path, a, b));
}

int group_setup(void **s)
{
    (void)s;
    dir = tr_tmpdir("methods");
    return dir != NULL ? 0 : -1;
}

int group_teardown(void **s)
{
    (void)s;
    srvocsp_cleanup();
    tr_rmrf(dir);
    free(dir);
    return 0;
}
