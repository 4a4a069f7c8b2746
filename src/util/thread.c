/* Creating the library's own threads. */
#include "internal.h"

#include <pthread.h>
#include <signal.h>

static atomic_uint g_fork_generation;

void srvocsp__note_fork_child(void)
{
    atomic_fetch_add(&g_fork_generation, 1);
}

int srvocsp__thread_create(pthread_t *t, void *(*fn)(void *), void *arg)
{
    pthread_attr_t attr;
    sigset_t all, old;
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
    /* The library's threads take none of the process's signals: a server
     * that blocks its signals outside sigsuspend (nginx's master) must get
     * them on its own thread, not on ours, or it would not wake for them.
     * The new thread inherits the mask in force at pthread_create. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(t, &attr, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    return rc;
}
