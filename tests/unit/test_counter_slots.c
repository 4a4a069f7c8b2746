/*
 * The TLS bindings' counter slots (src/tls/staple_counters.h): threads
 * alive at once hold distinct slots, those beyond the table share the last
 * shard, slots come back when threads exit and in a forked child, and the
 * counts stay exact through all of it (the plain add of a slot's owner,
 * the atomic add of the shared shard).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tls/staple_counters.h"

enum { THREADS = SRVOCSP__COUNTER_SLOTS + 16, ADDS = 20000 };

static atomic_uint_fast64_t shard_count[SRVOCSP__COUNTER_SHARDS];
static pthread_barrier_t alive, looked;

typedef struct seen {
    int slot;
} seen;

static void *count_and_wait(void *arg)
{
    seen *me = arg;

    me->slot = srvocsp__counter_slot();
    for (int i = 0; i < ADDS; i++)
        srvocsp__counter_add(&shard_count[me->slot]);
    pthread_barrier_wait(&alive);  /* every thread holds its slot */
    pthread_barrier_wait(&looked); /* the main thread has looked */
    return NULL;
}

static uint64_t total(void)
{
    uint64_t n = 0;

    for (int i = 0; i < SRVOCSP__COUNTER_SHARDS; i++)
        n += atomic_load(&shard_count[i]);
    return n;
}

/* One wave of THREADS threads alive at once; returns how many held a
 * slot of their own. */
static int wave(void)
{
    pthread_t th[THREADS];
    seen s[THREADS];
    bool used[SRVOCSP__COUNTER_SLOTS] = {false};
    int own = 0;

    pthread_barrier_init(&alive, NULL, THREADS + 1);
    pthread_barrier_init(&looked, NULL, THREADS + 1);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, count_and_wait, &s[i]), 0);
    pthread_barrier_wait(&alive);
    for (int i = 0; i < THREADS; i++) {
        assert_true(s[i].slot >= 0 && s[i].slot <= SRVOCSP__COUNTER_SLOTS);
        if (s[i].slot == SRVOCSP__COUNTER_SLOTS)
            continue;
        assert_false(used[s[i].slot]); /* never two owners at once */
        used[s[i].slot] = true;
        own++;
    }
    pthread_barrier_wait(&looked);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&alive);
    pthread_barrier_destroy(&looked);
    return own;
}

static void test_slots_and_counts(void **state)
{
    pid_t pid;
    int status;

    /* The main thread holds one slot throughout. */
    int mine = srvocsp__counter_slot();

    assert_true(mine >= 0 && mine < SRVOCSP__COUNTER_SLOTS);
    srvocsp__counter_add(&shard_count[mine]);

    /* Every slot but the main thread's is taken by the first threads; the
     * rest share the last shard. */
    assert_int_equal(wave(), SRVOCSP__COUNTER_SLOTS - 1);
    assert_int_equal(total(), 1 + (uint64_t)THREADS * ADDS);
    /* Those threads exited: the next wave gets the slots again and adds
     * to the counts they left. */
    assert_int_equal(wave(), SRVOCSP__COUNTER_SLOTS - 1);
    assert_int_equal(total(), 1 + 2 * (uint64_t)THREADS * ADDS);
    assert_int_equal(srvocsp__counter_slot(), mine);

    /* A child has only the forking thread: the other slots are free there. */
    {
        pthread_t holder;
        seen s;

        pthread_barrier_init(&alive, NULL, 2);
        pthread_barrier_init(&looked, NULL, 2);
        pthread_create(&holder, NULL, count_and_wait, &s);
        pthread_barrier_wait(&alive); /* holder keeps its slot */
        pid = fork();
        if (pid == 0) {
            int free_slots = 0;

            for (int i = 0; i < SRVOCSP__COUNTER_SLOTS; i++)
                free_slots += !atomic_load(&srvocsp__slot_taken[i]);
            _exit(free_slots == SRVOCSP__COUNTER_SLOTS - 1 && srvocsp__counter_slot() == mine
                      ? 0
                      : 1);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        pthread_barrier_wait(&looked);
        pthread_join(holder, NULL);
        pthread_barrier_destroy(&alive);
        pthread_barrier_destroy(&looked);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slots_and_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
