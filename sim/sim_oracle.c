/* See sim_oracle.h. */
#include "sim_oracle.h"

bool sim_servable(int64_t tu, int64_t nu, int64_t hc, int64_t skew, int64_t min_validity,
                  int64_t horizon)
{
    int64_t until = nu < tu + horizon ? nu : tu + horizon;

    return tu <= hc + skew && until - hc >= min_validity;
}

bool sim_rollback(int64_t held_tu, int64_t held_nu, srvocsp_cert_status held_status, int64_t tu,
                  srvocsp_cert_status status, int64_t hc, int64_t skew, int64_t min_validity,
                  int64_t horizon)
{
    if (held_tu == 0 || status != SRVOCSP_STATUS_GOOD)
        return false;
    switch (held_status) {
    case SRVOCSP_STATUS_REVOKED: return tu <= held_tu;
    case SRVOCSP_STATUS_GOOD:
        return tu < held_tu && sim_servable(held_tu, held_nu, hc, skew, min_validity, horizon);
    default: return false;
    }
}
