/* A binary min-heap of entries ordered by their next attempt time. */
#include "engine/engine.h"

#include <stdlib.h>

static void place(srvocsp_engine *e, size_t i, srvocsp__entry *en)
{
    e->heap[i] = en;
    en->heap_idx = i;
}

static void sift_up(srvocsp_engine *e, size_t i)
{
    srvocsp__entry *en = e->heap[i];

    while (i > 0) {
        size_t parent = (i - 1) / 2;

        if (e->heap[parent]->next_at <= en->next_at)
            break;
        place(e, i, e->heap[parent]);
        i = parent;
    }
    place(e, i, en);
}

static void sift_down(srvocsp_engine *e, size_t i)
{
    srvocsp__entry *en = e->heap[i];

    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        int64_t best = en->next_at;

        if (l < e->heap_len && e->heap[l]->next_at < best) {
            m = l;
            best = e->heap[l]->next_at;
        }
        if (r < e->heap_len && e->heap[r]->next_at < best)
            m = r;
        if (m == i)
            break;
        place(e, i, e->heap[m]);
        i = m;
    }
    place(e, i, en);
}

bool srvocsp__heap_reserve(srvocsp_engine *e, size_t n)
{
    size_t cap = e->heap_cap ? e->heap_cap : 64;
    srvocsp__entry **h;

    if (n <= e->heap_cap)
        return true;
    while (cap < n)
        cap *= 2;
    h = srvocsp__realloc(e->heap, cap * sizeof(*h));
    if (h == NULL)
        return false;
    e->heap = h;
    e->heap_cap = cap;
    return true;
}

/* Room was made when the entry was inserted (srvocsp__heap_reserve): an
 * entry is in the heap at most once, so this never needs to allocate. */
static void push(srvocsp_engine *e, srvocsp__entry *en)
{
    place(e, e->heap_len++, en);
    sift_up(e, en->heap_idx);
}

void srvocsp__heap_remove(srvocsp_engine *e, srvocsp__entry *en)
{
    size_t i = en->heap_idx;

    if (i == SIZE_MAX)
        return;
    en->heap_idx = SIZE_MAX;
    if (--e->heap_len == i)
        return;
    place(e, i, e->heap[e->heap_len]);
    sift_up(e, i);
    sift_down(e, e->heap[i]->heap_idx);
}

srvocsp__entry *srvocsp__heap_top(srvocsp_engine *e)
{
    return e->heap_len ? e->heap[0] : NULL;
}

void srvocsp__heap_set(srvocsp_engine *e, srvocsp__entry *en, int64_t at)
{
    if (en->dead)
        return; /* out of service: never scheduled again */
    srvocsp__heap_remove(e, en);
    en->next_at = at;
    push(e, en);
}
