/*
 * A small HTTPS server that staples: the whole integration is the block
 * marked "stapling" below.  Every page says hello and shows the staple's
 * status and times, and the stapling counters.
 *
 *   https_server --cert CHAIN.pem --key KEY.pem [--cert CHAIN2.pem --key KEY2.pem]
 *                [--dir DIR] [--store redis://host:port | redis-sentinel://h1,h2,h3#MASTER] [--port N]
 *
 * Each --cert file holds the certificate, then its issuer (and further CAs).
 * Two pairs (e.g. RSA and ECDSA) share one context; each client gets the
 * staple of the certificate it negotiated.  With --store, servers of a
 * fleet share one Redis: one fetch per certificate for all of them
 * (docs/fleet.md).  Listens on 127.0.0.1.
 */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "serve.h"
#include "srvocsp.h"
#include "srvocsp/openssl.h"

#define MAX_PAIRS 2

static SSL_CTX *ctx;
static srvocsp_handle *handles[MAX_PAIRS];
static int n_handles;

static void on_update(srvocsp_handle *h, const srvocsp_event *ev, void *arg)
{
    char tu[32] = "-", nu[32] = "-";

    (void)h;
    if (ev->response) {
        example_fmt_utc(srvocsp_response_this_update(ev->response), tu, sizeof(tu));
        example_fmt_utc(srvocsp_response_next_update(ev->response), nu, sizeof(nu));
    }
    fprintf(stderr, "https_server: %s: %s%s%s thisUpdate=%s nextUpdate=%s\n", (const char *)arg,
            ev->type == SRVOCSP_EVENT_UPDATED   ? "new good response"
            : ev->type == SRVOCSP_EVENT_REVOKED ? "REVOKED"
            : ev->type == SRVOCSP_EVENT_UNKNOWN ? "responder says unknown"
                                                : "retrieval failed: ",
            ev->type == SRVOCSP_EVENT_FAILED ? ev->reason : "", "", tu, nu);
}

static void on_must_staple(SSL *ssl, srvocsp_handle *h, void *arg)
{
    (void)ssl;
    (void)h;
    (void)arg;
    fprintf(stderr, "https_server: WARNING: must-staple certificate served without a staple\n");
}

static void describe(char *buf, size_t len)
{
    srvocsp_ssl_stats st;
    size_t used = 0;

    for (int i = 0; i < n_handles; i++) {
        srvocsp_response *r = srvocsp_get1_response(handles[i]);
        char subject[256] = "?";

        X509_NAME_oneline(X509_get_subject_name(srvocsp_handle_get0_leaf(handles[i])), subject,
                          sizeof(subject));
        if (r) {
            char tu[32], nu[32];

            example_fmt_utc(srvocsp_response_this_update(r), tu, sizeof(tu));
            example_fmt_utc(srvocsp_response_next_update(r), nu, sizeof(nu));
            used += (size_t)snprintf(buf + used, len - used,
                                     "%s: staple %s, thisUpdate %s, nextUpdate %s\n", subject,
                                     srvocsp_response_status(r) == SRVOCSP_STATUS_GOOD ? "good"
                                                                                       : "revoked",
                                     tu, nu);
            srvocsp_response_free(r);
        } else {
            used += (size_t)snprintf(buf + used, len - used, "%s: no staple (%s)\n", subject,
                                     srvocsp_strerror(srvocsp_last_error()));
        }
        {
            int64_t next = srvocsp_handle_next_attempt(handles[i]);
            char why[200];
            srvocsp_error err = srvocsp_handle_last_failure(handles[i], why, sizeof(why));

            if (used < len)
                used += (size_t)snprintf(buf + used, len - used,
                                         "  next attempt in %lld s; last failure: %s%s%s\n",
                                         next ? (long long)(next - (int64_t)time(NULL)) : 0LL,
                                         srvocsp_error_name(err), err ? " " : "", err ? why : "");
        }
        if (used >= len)
            return;
    }
    {
        srvocsp_engine_stats es;

        srvocsp_engine_get_stats(NULL, &es);
        used += (size_t)snprintf(buf + used, len - used,
                                 "engine: requests %llu, accepted %llu, unchanged %llu, "
                                 "failures %llu, clock jumps %llu\n",
                                 (unsigned long long)es.requests_started,
                                 (unsigned long long)es.responses_accepted,
                                 (unsigned long long)es.unchanged,
                                 (unsigned long long)es.failures,
                                 (unsigned long long)es.clock_jumps);
        if (used >= len)
            return;
    }
    srvocsp_ssl_ctx_get_stats(ctx, &st);
    snprintf(buf + used, len - used,
             "handshakes stapled %llu, without staple: none yet %llu, expired %llu, unknown %llu\n",
             (unsigned long long)st.stapled, (unsigned long long)st.unstapled_none,
             (unsigned long long)st.unstapled_expired, (unsigned long long)st.unstapled_unknown);
}

static void serve(int fd)
{
    SSL *ssl = SSL_new(ctx);
    char req[2048], body[4096], resp[5000];
    int n;

    SSL_set_fd(ssl, fd);
    if (SSL_accept(ssl) == 1) {
        n = SSL_read(ssl, req, sizeof(req) - 1);
        if (n > 0) {
            describe(body, sizeof(body));
            n = snprintf(resp, sizeof(resp),
                         "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                         "Connection: close\r\n\r\nhello from srvocsp's example server\n%s",
                         strlen(body) + 36, body);
            SSL_write(ssl, resp, n);
        }
        SSL_shutdown(ssl);
    }
    ERR_clear_error();
    SSL_free(ssl);
    close(fd);
}

int main(int argc, char **argv)
{
    const char *certs[MAX_PAIRS], *keys[MAX_PAIRS], *dir = NULL, *store = NULL;
    int n_certs = 0, n_keys = 0, port = 8443, lfd, i;
    srvocsp_params p;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--cert") == 0 && i + 1 < argc && n_certs < MAX_PAIRS)
            certs[n_certs++] = argv[++i];
        else if (strcmp(argv[i], "--key") == 0 && i + 1 < argc && n_keys < MAX_PAIRS)
            keys[n_keys++] = argv[++i];
        else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            dir = argv[++i];
        else if (strcmp(argv[i], "--store") == 0 && i + 1 < argc)
            store = argv[++i];
        else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s --cert CHAIN.pem --key KEY.pem [--cert CHAIN2.pem --key "
                            "KEY2.pem] [--dir DIR] [--store URL] [--port N]\n",
                    argv[0]);
            return 2;
        }
    }
    if (n_certs == 0 || n_certs != n_keys) {
        fprintf(stderr, "https_server: give --cert and --key in pairs\n");
        return 2;
    }
    ctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);

    /* ---- stapling: one handle per certificate, attached to the context ---- */
    srvocsp_params_init(&p);
    p.directory = dir;          /* staple from the first handshake after a restart */
    p.store_url = store;        /* the fleet's Redis: one fetch for all servers */
    p.flags = SRVOCSP_OPEN_ASYNC; /* never delay start-up on the responder */
    p.update_cb = on_update;
    for (i = 0; i < n_certs; i++) {
        if (SSL_CTX_use_certificate_chain_file(ctx, certs[i]) != 1 ||
            SSL_CTX_use_PrivateKey_file(ctx, keys[i], SSL_FILETYPE_PEM) != 1) {
            fprintf(stderr, "https_server: cannot load %s / %s\n", certs[i], keys[i]);
            ERR_print_errors_fp(stderr);
            return 1;
        }
        p.update_arg = (void *)certs[i];
        handles[i] = srvocsp_open_pem(certs[i], NULL, &p);
        if (handles[i] == NULL) {
            fprintf(stderr, "https_server: %s: %s (serving without stapling)\n", certs[i],
                    srvocsp_last_error_text());
            continue;
        }
        srvocsp_ssl_ctx_attach(ctx, handles[i]);
        handles[n_handles++] = handles[i];
    }
    srvocsp_ssl_ctx_set_must_staple_cb(ctx, on_must_staple, NULL);
    /* ---- end of stapling ---- */

    lfd = example_listen("https_server", port);
    if (lfd < 0)
        return 1;
    fprintf(stderr, "https_server: listening on 127.0.0.1:%d\n", port);
    example_serve("https_server", lfd, serve);
    for (i = 0; i < n_handles; i++)
        srvocsp_close(handles[i]);
    SSL_CTX_free(ctx);
    srvocsp_cleanup();
    return 0;
}
