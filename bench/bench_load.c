/*
 * Responder load at default settings: one certificate, a simulated week in
 * one-minute steps of the injected clock, a responder that signs a fresh
 * response on each request (thisUpdate = now), for several validity
 * windows.  Requests per certificate per day, against HAProxy's hourly
 * update (24/day) and nginx's refresh of min(nextUpdate - 5 min, 1 h)
 * (up to 24/day per worker process).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fake.h"
#include "srvocsp.h"
#include "testpki.h"

static tp_pki pki;
static manual_clock clk;
static int64_t validity;

static void handler(void *arg, const char *url, fake_reply *out)
{
    tp_resp_opts o;
    int64_t now = atomic_load(&clk.now);

    tp_resp_opts_init(&o, &pki.good, &pki.ca, now);
    o.next_update = now + validity;
    out->body = tp_response(&o, &out->len);
}

int main(int argc, char **argv)
{
    static const int64_t windows[] = {4 * 3600, 86400, 4 * 86400, 7 * 86400};
    bool json = argc > 1 && strcmp(argv[1], "--json") == 0;
    int64_t t0 = (int64_t)time(NULL);
    const int days = 7;

    if (!tp_pki_make(&pki, "http://127.0.0.1:8080/", "http://127.0.0.1:1/", t0))
        return 1;
    if (json)
        printf("[");
    for (size_t k = 0; k < sizeof(windows) / sizeof(windows[0]); k++) {
        fake_transport fake;
        srvocsp_engine *eng;
        srvocsp_params p;
        srvocsp_handle *h;
        int64_t t, unserved = 0;

        validity = windows[k];
        manual_clock_init(&clk, t0);
        fake_init(&fake, &clk, handler, NULL);
        eng = fake_engine_new(&clk, &fake, -1, 7 + k);
        srvocsp_params_init(&p);
        p.engine = eng;
        h = fake_open(pki.good.cert, pki.ca.cert, &p);
        for (t = t0; t < t0 + days * 86400; t += 60) {
            srvocsp_response *r;

            manual_clock_set(&clk, t);
            srvocsp_engine_settle(eng, 5000);
            r = srvocsp_get1_response(h);
            unserved += r == NULL;
            srvocsp_response_free(r);
        }
        if (json)
            printf("%s{\"validity_s\":%lld,\"requests_per_day\":%.2f,\"minutes_unserved\":%lld}",
                   k ? "," : "", (long long)validity, fake_requests(&fake) / (double)days,
                   (long long)unserved);
        else
            printf("validity %6.1f h: %5.2f requests per certificate per day (HAProxy 24, nginx "
                   "up to 24 per worker); minutes without a servable response: %lld\n",
                   validity / 3600.0, fake_requests(&fake) / (double)days, (long long)unserved);
        srvocsp_close(h);
        srvocsp_engine_free(eng);
        fake_destroy(&fake);
    }
    if (json)
        printf("]\n");
    tp_pki_free(&pki);
    return 0;
}
