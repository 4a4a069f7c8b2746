/* The fleet's shared store: which kind of store a URL names.  The engine
 * asks for "the store at this URL" and never names a backend; Redis
 * (redis://, unix:// and redis-sentinel://) is the kind the library
 * ships, and its constructor says which scheme it does not know.  A
 * simulation may register a store of its own for a scheme (sim/). */
#include "store/store.h"
#include "store/redis_url.h"

#include <pthread.h>
#include <string.h>

#include <openssl/crypto.h>

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static char g_scheme[16];
static srvocsp__store_opener g_opener;
static void *g_arg;

void srvocsp__store_register(const char *scheme, srvocsp__store_opener fn, void *arg)
{
    pthread_mutex_lock(&g_mu);
    g_scheme[0] = '\0';
    if (scheme != NULL && fn != NULL && strlen(scheme) < sizeof(g_scheme))
        strcpy(g_scheme, scheme);
    g_opener = fn;
    g_arg = arg;
    pthread_mutex_unlock(&g_mu);
}

/* Whether |url| is a scheme registered by a simulation. */
static bool registered(const char *url)
{
    size_t n;
    bool yes;

    pthread_mutex_lock(&g_mu);
    n = strlen(g_scheme);
    yes = n > 0 && strncmp(url, g_scheme, n) == 0 && strncmp(url + n, "://", 3) == 0;
    pthread_mutex_unlock(&g_mu);
    return yes;
}

srvocsp_error srvocsp_store_url_check(const char *url)
{
    srvocsp__redis_url u;
    char why[300];
    bool ok;

    if (url == NULL) {
        srvocsp__set_error(SRVOCSP_E_INVALID_ARG, "store URL: none given");
        return SRVOCSP_E_INVALID_ARG;
    }
    if (registered(url))
        return SRVOCSP_OK;
    /* The very parser srvocsp__store_redis_new uses, so that what is
     * accepted here opens, with the same words for what is not. */
    ok = srvocsp__redis_url_parse(url, &u, why, sizeof(why));
    OPENSSL_cleanse(&u, sizeof(u));
    if (!ok) {
        srvocsp__set_error(SRVOCSP_E_INVALID_ARG, "store URL: %s", why);
        return SRVOCSP_E_INVALID_ARG;
    }
    return SRVOCSP_OK;
}

srvocsp__store *srvocsp__store_open_shared(const char *url, const char *prefix)
{
    srvocsp__store_opener fn = NULL;
    void *arg = NULL;
    size_t n;

    pthread_mutex_lock(&g_mu);
    n = strlen(g_scheme);
    if (n > 0 && strncmp(url, g_scheme, n) == 0 && strncmp(url + n, "://", 3) == 0) {
        fn = g_opener;
        arg = g_arg;
    }
    pthread_mutex_unlock(&g_mu);
    if (fn != NULL)
        return fn(url, prefix, arg);
    return srvocsp__store_redis_new(url, prefix);
}
