/* Allocation with failure injection for tests. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

static atomic_long g_countdown = -1;
static atomic_ulong g_count;

void srvocsp__alloc_fail_at(long n)
{
    atomic_store(&g_countdown, n);
}

unsigned long srvocsp__alloc_count(void)
{
    return atomic_load(&g_count);
}

bool srvocsp__alloc_should_fail(void)
{
    atomic_fetch_add_explicit(&g_count, 1, memory_order_relaxed);
    if (atomic_load_explicit(&g_countdown, memory_order_relaxed) < 0)
        return false;
    /* Exactly one failure: the call that takes the count from 0 to -1. */
    return atomic_fetch_sub(&g_countdown, 1) == 0;
}

void *srvocsp__malloc(size_t n)
{
    return srvocsp__alloc_should_fail() ? NULL : malloc(n);
}

void *srvocsp__calloc(size_t n, size_t size)
{
    return srvocsp__alloc_should_fail() ? NULL : calloc(n, size);
}

void *srvocsp__realloc(void *p, size_t n)
{
    return srvocsp__alloc_should_fail() ? NULL : realloc(p, n);
}

char *srvocsp__strdup(const char *s)
{
    return srvocsp__alloc_should_fail() ? NULL : strdup(s);
}
