/* Creating the library's own threads. */
#include "internal.h"

#include <pthread.h>

static atomic_uint g_fork_generation;

void srvocsp__note_fork_child(void)
{
    atomic_fetch_add(&g_fork_generation, 1);
}

int srvocsp__thread_create(pthread_t *t, void *(*fn)(void *), void *arg)
{
    pthread_attr_t attr;
    size_t size;
    int rc;

    /* 1 MiB is ample for verification and libcurl.  Each fork generation
     * asks a little more, so that a child never reuses the cached stack
     * (and so the thread id) of a parent thread that died with the fork:
     * glibc reuses only a cached stack at least as large as asked, and
     * ThreadSanitizer aborts on a reused id it still believes running. */
    size = (size_t)1 << 20;
    size += (size_t)(atomic_load(&g_fork_generation) % 64) * 65536u;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, size);
    rc = pthread_create(t, &attr, fn, arg);
    pthread_attr_destroy(&attr);
    return rc;
}
