/* srvocsp fetch: one retrieval through the library's engine, verified. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void fetch_usage(FILE *f)
{
    fprintf(f,
            "usage: srvocsp fetch --cert LEAF.pem [--issuer ISSUER.pem] [--url URL]\n"
            "                     [--out RESP.der] [--timeout MS] [--sha256] [--nonce] [--json]\n"
            "\n"
            "Fetches the OCSP response for LEAF from the responder named in its AIA (or URL),\n"
            "verifies it and prints one line: status, thisUpdate, nextUpdate, responder URL.\n"
            "The issuer may be in LEAF.pem after the leaf.\n"
            "Exit: 0 good, 1 revoked, 2 any failure (reason on stderr).\n");
}

typedef struct fetch_state {
    char url[2048];
    char reason[1024];
} fetch_state;

static void on_event(srvocsp_handle *h, const srvocsp_event *ev, void *arg)
{
    fetch_state *st = arg;

    (void)h;
    if (ev->url)
        snprintf(st->url, sizeof(st->url), "%s", ev->url);
    if (ev->type == SRVOCSP_EVENT_FAILED)
        snprintf(st->reason, sizeof(st->reason), "%s: %s", srvocsp_error_name(ev->error),
                 ev->reason);
}

int cmd_fetch(int argc, char **argv)
{
    static const struct option opts[] = {
        {"cert", required_argument, NULL, 'c'},  {"issuer", required_argument, NULL, 'i'},
        {"url", required_argument, NULL, 'u'},   {"out", required_argument, NULL, 'o'},
        {"timeout", required_argument, NULL, 't'}, {"sha256", no_argument, NULL, 's'},
        {"nonce", no_argument, NULL, 'n'},       {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
    };
    const char *cert = NULL, *issuer = NULL, *out = NULL;
    fetch_state st;
    srvocsp_params p;
    srvocsp_engine *eng = NULL;
    srvocsp_handle *h = NULL;
    srvocsp_response *r = NULL;
    bool json = false;
    int c, rc = EXIT_FAIL;

    memset(&st, 0, sizeof(st));
    srvocsp_params_init(&p);
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:i:u:o:t:snjh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': cert = optarg; break;
        case 'i': issuer = optarg; break;
        case 'u': p.responder_url = optarg; break;
        case 'o': out = optarg; break;
        case 't': p.url_timeout_ms = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 's': p.certid_hash = SRVOCSP_HASH_SHA256; break;
        case 'n': p.use_nonce = 1; break;
        case 'j': json = true; break;
        case 'h': fetch_usage(stdout); return 0;
        default: fetch_usage(stderr); return EXIT_FAIL;
        }
    }
    if (cert == NULL || optind != argc) {
        fetch_usage(stderr);
        return EXIT_FAIL;
    }
    eng = srvocsp_engine_new(NULL);
    if (eng == NULL) {
        fprintf(stderr, "srvocsp: %s\n", srvocsp_last_error_text());
        return EXIT_FAIL;
    }
    p.engine = eng;
    p.update_cb = on_event;
    p.update_arg = &st;
    h = srvocsp_open_pem(cert, issuer, &p);
    if (h == NULL) {
        fprintf(stderr, "srvocsp: %s: %s\n", cert, srvocsp_last_error_text());
        goto out;
    }
    srvocsp_engine_settle(eng, 1000); /* let the callback report the URL */
    r = srvocsp_get1_response(h);
    if (r == NULL && srvocsp_handle_last_failure(h, NULL, 0) == SRVOCSP_E_TIMEOUT) {
        srvocsp_engine_stats stats;

        /* A responder that takes the request and never answers a GET is
         * asked with POST next: one more attempt makes that now. */
        srvocsp_engine_get_stats(eng, &stats);
        if (stats.get_unanswered > 0) {
            fprintf(stderr, "srvocsp: %s: the responder never answered the GET; asking again "
                            "with POST\n", cert);
            st.reason[0] = '\0';
            srvocsp_handle_refresh_now(h);
            srvocsp_engine_settle(eng, (p.url_timeout_ms ? p.url_timeout_ms : 15000) + 2000);
            r = srvocsp_get1_response(h);
        }
    }
    if (r == NULL) {
        srvocsp_error why = srvocsp_last_error();
        char reason[1024];

        if (why == SRVOCSP_E_STATUS_UNKNOWN)
            fprintf(stderr, "srvocsp: %s: the responder says the certificate's status is unknown\n",
                    cert);
        else if (srvocsp_handle_last_failure(h, reason, sizeof(reason)) != SRVOCSP_OK)
            fprintf(stderr, "srvocsp: %s: %s\n", cert, st.reason[0] ? st.reason : reason);
        else
            fprintf(stderr, "srvocsp: %s: %s\n", cert, srvocsp_strerror(why));
        goto out;
    }
    {
        char tu[32], nu[32];
        size_t len;
        const unsigned char *der = srvocsp_response_der(r, &len);
        srvocsp_cert_status s = srvocsp_response_status(r);

        cli_fmt_time(srvocsp_response_this_update(r), tu, sizeof(tu));
        cli_fmt_time(srvocsp_response_next_update(r), nu, sizeof(nu));
        if (out != NULL && srvocsp__write_file_atomic(out, der, len) != 0) {
            fprintf(stderr, "srvocsp: cannot write %s\n", out);
            goto out;
        }
        if (json) {
            printf("{\"status\":\"%s\",\"this_update\":\"%s\",\"next_update\":\"%s\",\"url\":",
                   cli_status_name(s), tu, nu);
            cli_json_str(stdout, st.url);
            printf(",\"bytes\":%zu}\n", len);
        } else {
            printf("%s thisUpdate=%s nextUpdate=%s url=%s\n", cli_status_name(s), tu, nu,
                   st.url[0] ? st.url : "-");
        }
        rc = s == SRVOCSP_STATUS_GOOD ? EXIT_GOOD : EXIT_REVOKED;
    }
out:
    srvocsp_response_free(r);
    srvocsp_close(h);
    srvocsp_engine_free(eng);
    return rc;
}
