/* Generated once with openssl genpkey (P-256); test keys, no secret. */
#ifndef SRVOCSP_SIM_KEYS_H
#define SRVOCSP_SIM_KEYS_H

/* Fixed keys, so that a seed replays exactly (the keys decide the
   CertIDs, and with them the order of the engine's tables). */
static const char *const SIM_KEYS[5] = {
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQga1d71O9/LEMZHuVX\n"
    "j7XyTjX6sksAmuK5Cf3KXg36d4ihRANCAARLFyIqDEcmzDWpOEpqJSNidAbuF71u\n"
    "MDEhfsBBYu2u10N0e3kHcSgwKHq13apm6fX5qmVcpqBSj6VV2MhqFFtQ\n"
    "-----END PRIVATE KEY-----\n",
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgzukmtz+3/vadfRF0\n"
    "DIWx4p9Wi1SVI1E00pTU7R/zy3mhRANCAAS4iAxTcExv3C2dU8csjX8EgTue2Zlh\n"
    "R0yI2bgYEqoCq++hzyn2W5PQEHJ7EedGPP6lQe9CvW+s2/eldjYREzN8\n"
    "-----END PRIVATE KEY-----\n",
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgJYPIW7jrFaKZfklO\n"
    "jJs7YA9xePGWvVe2ngl/sSnB4UyhRANCAAQY7ntu+913OTyZRwqe3nce37NJVY6o\n"
    "m6RKZCWtyFP8h5RgjhWWrUiI8fYgxrj54Cc4aE5cz99fGvxU1NR1Zkij\n"
    "-----END PRIVATE KEY-----\n",
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgxOMWix9VnGJKESuQ\n"
    "kXSNFfDMlzMgDRXCGj2C7eQp16GhRANCAARlFyCrS0LegwM//ekeppcLpnAI9E+j\n"
    "/0Jc81hqO7zaVexxLQhIB3svTygKwxQAHWux3p5XpK48DEZ1NzqkGxSK\n"
    "-----END PRIVATE KEY-----\n",
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgv87q8T8gL0yj6HbP\n"
    "/rhH+y2jTSCw3U03Pu9Py+DuphehRANCAAS96Iu8llBNNFmoMwCpkgw4lLQMqEBJ\n"
    "ttb2OlaCdSXUW2CROk0hXEGlw2OJM3y4m4l3aYj6SV3yRycM+dT7PDuB\n"
    "-----END PRIVATE KEY-----\n",
};

#endif
