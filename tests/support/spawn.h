/* A program to run in a forked child, planned before the fork.
 *
 * The child of a process whose other threads may hold malloc's or the
 * environment's locks (a test's handshake threads, the sanitizers'
 * allocator) must call nothing that takes them between fork and exec:
 * setenv or a format that allocates can hang it there, and the parent
 * waiting for its output waits forever.  So the arguments and the
 * environment are made here, before the fork, and the child only makes
 * system calls and execs. */
#ifndef TR_SPAWN_H
#define TR_SPAWN_H

#include <stdbool.h>
#include <stddef.h>

#define TR_EXEC_MAX_ARGS 16
#define TR_EXEC_MAX_SET 4

typedef struct tr_exec {
    const char *argv[TR_EXEC_MAX_ARGS];
    char **envp;
    char *set[TR_EXEC_MAX_SET];
    bool core_dumps;             /* the child raises its core size limit first */
} tr_exec;

/* |argv|: the program's arguments, NULL-terminated (at most 15).  |set|:
 * "NAME=value" strings replacing or adding those variables in this
 * process's environment, NULL-terminated (at most 4).  False when out of
 * memory or too many. */
bool tr_exec_plan(tr_exec *p, const char *const *argv, const char *const *set);
void tr_exec_free(tr_exec *p);
/* In the child: execs |path| (a path, not searched) as planned; exits 127
 * when it cannot. */
void tr_exec_child(const tr_exec *p, const char *path) __attribute__((noreturn));
/* Runs |path| as planned and waits for it: its exit status (128 when it
 * did not exit, -1 when it could not start), its output and errors in
 * |out| (|cap| bytes, terminated; NULL: dropped).  One that runs longer
 * than |timeout_ms| is killed and said so on stderr. */
int tr_exec_run(const tr_exec *p, const char *path, char *out, size_t cap, int timeout_ms);

#endif
