/*
 * srvocsp-sim: a simulated fleet in the field, seed by seed.
 *
 *   srvocsp-sim [--seed S] [--seeds N] [--days D] [--certs N] [--cas N]
 *               [--procs N] [--plant rollback|revoked-tie|clock-replan|fleet]
 *               [--no-forks] [--verbose]
 *
 * Runs seeds S .. S+N-1; stops at the first breach of the promise and
 * prints its seed and the events that led to it (the same seed replays
 * it exactly).  Prints the figures over all seeds as a table.  With
 * --plant (only in the build with planted defects), a defect is taken
 * into the engine and the run must catch it: exit 0 when a seed did.
 * Exit status: 0 no breach (or the planted defect caught), 3 a breach,
 * 1 a planted defect not caught, 2 usage.  --no-forks draws no forks: the
 * worlds of the seeds found before forks were simulated, as they were.
 */
#include "sim_world.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double pct(double *v, unsigned n, double p)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof(*v), cmp_double);
    return v[(unsigned)((n - 1) * p)];
}

static int usage(void)
{
    fprintf(stderr, "usage: srvocsp-sim [--seed S] [--seeds N] [--days D] [--certs N] [--cas N] "
                    "[--procs N] [--plant rollback|revoked-tie|clock-replan|fleet] [--no-forks] "
                    "[--verbose]\n");
    return 2;
}

int main(int argc, char **argv)
{
    static const char *const plants[] = {"", "rollback", "revoked-tie", "clock-replan", "fleet"};
    sim_opts o = {.seed = 1, .certs = 40, .cas = 3, .procs = 4, .days = 30};
    sim_figures *fig = calloc(1, sizeof(*fig));
    unsigned long seeds = 10, s, ran = 0;
    double t0 = (double)clock() / CLOCKS_PER_SEC;
    bool breached = false;
    int i;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(a, "--verbose") == 0) {
            o.verbose = true;
            continue;
        }
        if (strcmp(a, "--no-forks") == 0) {
            o.no_forks = true;
            continue;
        }
        if (v == NULL)
            return usage();
        i++;
        if (strcmp(a, "--seed") == 0)
            o.seed = strtoull(v, NULL, 10);
        else if (strcmp(a, "--seeds") == 0)
            seeds = strtoul(v, NULL, 10);
        else if (strcmp(a, "--days") == 0)
            o.days = atoll(v);
        else if (strcmp(a, "--certs") == 0)
            o.certs = atoi(v);
        else if (strcmp(a, "--cas") == 0)
            o.cas = atoi(v);
        else if (strcmp(a, "--procs") == 0)
            o.procs = atoi(v);
        else if (strcmp(a, "--plant") == 0) {
            for (o.plant = 1; o.plant < 5 && strcmp(v, plants[o.plant]) != 0; o.plant++)
                ;
            if (o.plant == 5)
                return usage();
#ifndef SRVOCSP_PLANT_DEFECTS
            fprintf(stderr, "srvocsp-sim: --plant needs srvocsp-sim-planted\n");
            return 2;
#endif
        } else
            return usage();
    }
    if (o.certs < 1 || o.cas < 1 || o.cas > SIM_MAX_CAS || o.procs < 1 ||
        o.procs > SIM_MAX_PROCS || o.days < 1)
        return usage();
    for (s = 0; s < seeds; s++) {
        sim_opts so = o;

        so.seed = o.seed + s;
        ran++;
        if (!sim_run(&so, fig, stdout)) {
            breached = true;
            break;
        }
    }
    printf("\n%lu seeds x %lld days, %d certificates under %d CAs, %d processes%s%s "
           "(%.1f s CPU)\n\n",
           ran, (long long)o.days, o.certs, o.cas, o.procs, o.plant ? ", planted: " : "",
           plants[o.plant], (double)clock() / CLOCKS_PER_SEC - t0);
    printf("| figure | value |\n|---|---|\n");
    printf("| handshakes sampled | %llu |\n", (unsigned long long)fig->handshakes);
    printf("| stapled, of all handshakes | %.4f %% |\n",
           fig->handshakes ? 100.0 * (double)fig->served / (double)fig->handshakes : 0);
    printf("| availability: stapled where a servable response was obtainable | %.4f %% |\n",
           fig->obtainable ? 100.0 * (double)fig->served_obtainable / (double)fig->obtainable : 0);
    printf("| revocation propagation to each process, p50 / p99 / max | %.0f / %.0f / %.0f s |\n",
           pct(fig->prop, fig->n_prop, 0.5), pct(fig->prop, fig->n_prop, 0.99),
           pct(fig->prop, fig->n_prop, 1.0));
    printf("| responder requests per certificate per day | %.2f |\n",
           (double)fig->requests / (double)o.certs / (double)o.days / (double)ran);
    printf("| worst gap without a staple while one was obtainable | %lld s |\n",
           (long long)fig->worst_gap);
    printf("| field events: restarts / forks / wall clock steps / store outages and failovers "
           "| %llu / %llu / %llu / %llu |\n",
           (unsigned long long)fig->restarts, (unsigned long long)fig->forks,
           (unsigned long long)fig->clock_steps, (unsigned long long)fig->store_faults);
    free(fig);
    srvocsp_cleanup();
    if (o.plant)
        return breached ? 0 : 1;
    return breached ? 3 : 0;
}
