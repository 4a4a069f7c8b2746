/* The fleet's shared store: which kind of store a URL names.  The engine
 * asks for "the store at this URL" and never names a backend; Redis
 * (redis://, unix:// and redis-sentinel://) is the kind the library
 * ships, and its constructor says which scheme it does not know.  A
 * simulation may register a store of its own for a scheme (sim/). */
#include "store/store.h"

#include <pthread.h>
#include <string.h>

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
