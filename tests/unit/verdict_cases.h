/*
 * The verdict's table (docs/schedule.md, "Keeping"): each row a held
 * response (or none) and a candidate, with times in seconds from "now",
 * and what the one verdict must say.  test_verdict drives it through the
 * pure function; test_store_redis drives the rows whose responses verify
 * through a real redis-server and demands that the shared store ends up
 * holding exactly what the verdict chose.
 *
 * The rule under test: MinValidity 600 s, clock skew 300 s.  The *_exp
 * times are nextUpdate: a response's expiry is what verification makes of
 * it (srvocsp__expiry: never past thisUpdate + the trust horizon of 10
 * days), in test_verdict as in the responses test_store_redis signs.
 */
#ifndef SRVOCSP_VERDICT_CASES_H
#define SRVOCSP_VERDICT_CASES_H

#define VC_G 0 /* good */
#define VC_R 1 /* revoked */
#define VC_U 2 /* unknown */

typedef struct verdict_case {
    const char *name;
    bool held;                   /* false: nothing held */
    int h_status;
    int64_t h_tu, h_prod, h_exp; /* offsets from now */
    int c_status;
    int64_t c_tu, c_prod, c_exp;
    int verdict;                 /* SRVOCSP__V_* */
    srvocsp_error err;           /* on REFUSE */
    bool redis;                  /* both verify at now: also driven through Redis */
} verdict_case;

static const verdict_case VERDICT_CASES[] = {
    {"nothing held, good", false, 0, 0, 0, 0, VC_G, -100, -100, 3600, 0, SRVOCSP_OK, true},
    {"nothing held, good that could never be served", false, 0, 0, 0, 0, VC_G, -100, -100, 300,
     2, SRVOCSP_E_SHORT_VALIDITY, true},
    {"nothing held, unknown", false, 0, 0, 0, 0, VC_U, -100, -100, 3600, 0, SRVOCSP_OK, true},
    {"newer good", true, VC_G, -100, -100, 3600, VC_G, -50, -50, 3600, 0, SRVOCSP_OK, true},
    {"same thisUpdate: unchanged", true, VC_G, -100, -100, 3600, VC_G, -100, -90, 3600, 1,
     SRVOCSP_OK, true},
    {"older good: rollback", true, VC_G, -100, -100, 3600, VC_G, -200, -200, 3600, 2,
     SRVOCSP_E_ROLLBACK, true},
    {"revoked wins a tie", true, VC_G, -100, -100, 3600, VC_R, -100, -100, 3600, 0, SRVOCSP_OK,
     true},
    {"good does not win a tie back", true, VC_R, -100, -100, 3600, VC_G, -100, -50, 3600, 2,
     SRVOCSP_E_ROLLBACK, true},
    {"newer good after revoked", true, VC_R, -100, -100, 3600, VC_G, -50, -50, 3600, 0,
     SRVOCSP_OK, true},
    {"lagging replica's revocation: older, produced later", true, VC_G, -100, -100, 3600, VC_R,
     -101, -10, 3600, 0, SRVOCSP_OK, true},
    {"revoked replay: older, produced before", true, VC_G, -100, -100, 3600, VC_R, -200, -200,
     3600, 2, SRVOCSP_E_ROLLBACK, true},
    {"revoked over a held good that cannot be served", true, VC_G, -3000, -3000, 300, VC_R,
     -3100, -3100, 3600, 0, SRVOCSP_OK, true},
    {"newer good that cannot be served keeps the servable one", true, VC_G, -100, -100, 3600,
     VC_G, -50, -50, 300, 2, SRVOCSP_E_SHORT_VALIDITY, true},
    {"older servable over a held one that cannot be served", true, VC_G, -100, -100, 300, VC_G,
     -200, -200, 3600, 0, SRVOCSP_OK, true},
    {"held from the future (clock went back): older servable replaces", true, VC_G, 1000, 1000,
     9000, VC_G, -200, -200, 3600, 0, SRVOCSP_OK, false},
    {"held thisUpdate at the skew is not from the future", true, VC_G, 300, 300, 9000, VC_G,
     -200, -200, 3600, 2, SRVOCSP_E_ROLLBACK, false},
    {"held thisUpdate past the skew is from the future", true, VC_G, 301, 301, 9000, VC_G, -200,
     -200, 3600, 0, SRVOCSP_OK, false},
    {"held revoked is given up only for revoked", true, VC_R, -100, -100, 300, VC_G, -200, -200,
     3600, 2, SRVOCSP_E_ROLLBACK, true},
    {"older revoked under a held revoked: rollback", true, VC_R, -100, -100, 3600, VC_R, -200,
     -200, 3600, 2, SRVOCSP_E_ROLLBACK, true},
    {"revoked handed back: unchanged", true, VC_R, -100, -100, 3600, VC_R, -100, -50, 3600, 1,
     SRVOCSP_OK, true},
    {"held handed back once it cannot be served: stale", true, VC_G, -100, -100, 300, VC_G,
     -100, -50, 300, 2, SRVOCSP_E_STALE, true},
    {"unknown handed back: still unknown", true, VC_U, -100, -100, 3600, VC_U, -100, -50, 3600,
     2, SRVOCSP_E_STATUS_UNKNOWN, true},
    {"newer unknown replaces good", true, VC_G, -100, -100, 3600, VC_U, -50, -50, 3600, 0,
     SRVOCSP_OK, true},
    {"older servable good over a held unknown", true, VC_U, -100, -100, 3600, VC_G, -200, -200,
     3600, 0, SRVOCSP_OK, true},
    {"lagging revocation produced at the same second as the held: a replay", true, VC_G, -100,
     -100, 3600, VC_R, -101, -100, 3600, 2, SRVOCSP_E_ROLLBACK, true},
    /* A nextUpdate 30 days ahead is not believed: the response expires
     * at thisUpdate + 864000 s, here 300 s from now, under the margin. */
    {"trust horizon: nextUpdate far ahead capped, too short to serve", false, 0, 0, 0, 0, VC_G,
     -864000 + 300, -100, 30 * 86400, 2, SRVOCSP_E_SHORT_VALIDITY, true},
    {"trust horizon: capped at exactly MinValidity left is servable", false, 0, 0, 0, 0, VC_G,
     -864000 + 600, -100, 30 * 86400, 0, SRVOCSP_OK, true},
    {"margin boundary: exactly MinValidity left is servable", false, 0, 0, 0, 0, VC_G, -100,
     -100, 600, 0, SRVOCSP_OK, false},
    {"margin boundary: one second less is not", false, 0, 0, 0, 0, VC_G, -100, -100, 599, 2,
     SRVOCSP_E_SHORT_VALIDITY, false},
};

#define VERDICT_N_CASES (sizeof(VERDICT_CASES) / sizeof(VERDICT_CASES[0]))

#endif
