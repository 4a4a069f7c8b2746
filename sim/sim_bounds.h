/* The oracle's bounds, shared by the loop (sim_run.c) and the checks
 * (sim_check.c); sim/README.md says why each is what it is. */
#ifndef SIM_BOUNDS_H
#define SIM_BOUNDS_H

#define DAY 86400
#define SAMPLE_S 900
#define MIN_VALIDITY SIM_MIN_VALIDITY
#define SKEW SIM_SKEW
#define HORIZON SIM_HORIZON
#define FLEET_BOUND 60
#define GAP_BOUND (2 * 3600 + 2 * SAMPLE_S)
#define LAG_S 3600

#endif
