/* Programs run in forked children, planned before the fork (spawn.h). */
#include "spawn.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

bool tr_exec_plan(tr_exec *p, const char *const *argv, const char *const *set)
{
    size_t n = 0, i, j = 0, k, ns = 0;

    memset(p, 0, sizeof(*p));
    for (i = 0; argv[i] != NULL; i++) {
        if (i + 1 >= TR_EXEC_MAX_ARGS)
            return false;
        p->argv[i] = argv[i];
    }
    for (; set != NULL && set[ns] != NULL; ns++)
        if (ns >= TR_EXEC_MAX_SET || (p->set[ns] = strdup(set[ns])) == NULL) {
            tr_exec_free(p);
            return false;
        }
    while (environ[n] != NULL)
        n++;
    if ((p->envp = calloc(n + ns + 1, sizeof(char *))) == NULL) {
        tr_exec_free(p);
        return false;
    }
    for (i = 0; i < n; i++) {
        bool replaced = false;

        for (k = 0; k < ns && !replaced; k++) {
            size_t name = (size_t)(strchr(p->set[k], '=') - p->set[k]) + 1;

            replaced = strncmp(environ[i], p->set[k], name) == 0;
        }
        if (!replaced)
            p->envp[j++] = environ[i];
    }
    for (k = 0; k < ns; k++)
        p->envp[j++] = p->set[k];
    p->envp[j] = NULL;
    return true;
}

void tr_exec_free(tr_exec *p)
{
    for (int k = 0; k < TR_EXEC_MAX_SET; k++)
        free(p->set[k]);
    free(p->envp);
    memset(p, 0, sizeof(*p));
}

void tr_exec_child(const tr_exec *p, const char *path)
{
    execve(path, (char *const *)p->argv, p->envp);
    _exit(127);
}
