/*
 * A small HTTPS server on GnuTLS that staples the whole chain: the leaf's
 * status (TLS 1.2 and 1.3) and, in TLS 1.3, each intermediate's.  The
 * whole integration is the block marked "stapling" below.  Every page says
 * hello and shows, per certificate of the chain, the staple's status and
 * times, and the stapling counters.
 *
 *   gnutls_server --cert CHAIN.pem --key KEY.pem [--cert CHAIN2.pem --key KEY2.pem]
 *                 [--ca ROOT.pem] [--dir DIR] [--port N] [--tls1.2]
 *
 * Each --cert file holds the leaf, then its intermediates (in order; a
 * root at the end is sent but never asked about).  --ca names the CA that
 * issued the last intermediate when the file does not hold it (so that
 * intermediate can be stapled).  --tls1.2 caps the protocol at TLS 1.2.
 * Listens on 127.0.0.1.
 */
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serve.h"
#include "srvocsp.h"
#include "srvocsp/gnutls.h"

#define MAX_PAIRS 2

static gnutls_certificate_credentials_t cred;
static gnutls_priority_t prio;
static srvocsp_gnutls *stapler;

static const char *subject_of(srvocsp_handle *h, char *buf, size_t len)
{
    X509_NAME_oneline(X509_get_subject_name(srvocsp_handle_get0_leaf(h)), buf, (int)len);
    return buf;
}

static void on_update(srvocsp_handle *h, const srvocsp_event *ev, void *arg)
{
    char tu[32] = "-", nu[32] = "-", subject[256];

    (void)arg;
    if (ev->response) {
        example_fmt_utc(srvocsp_response_this_update(ev->response), tu, sizeof(tu));
        example_fmt_utc(srvocsp_response_next_update(ev->response), nu, sizeof(nu));
    }
    fprintf(stderr, "gnutls_server: %s: %s%s thisUpdate=%s nextUpdate=%s\n",
            subject_of(h, subject, sizeof(subject)),
            ev->type == SRVOCSP_EVENT_UPDATED   ? "new good response"
            : ev->type == SRVOCSP_EVENT_REVOKED ? "REVOKED"
            : ev->type == SRVOCSP_EVENT_UNKNOWN ? "responder says unknown"
                                                : "retrieval failed: ",
            ev->type == SRVOCSP_EVENT_FAILED ? ev->reason : "", tu, nu);
}

static void on_must_staple(gnutls_session_t session, srvocsp_handle *h, void *arg)
{
    (void)session;
    (void)h;
    (void)arg;
    fprintf(stderr, "gnutls_server: WARNING: must-staple certificate served without a staple\n");
}

static void describe(char *buf, size_t len)
{
    srvocsp_gnutls_stats st;
    size_t used = 0;
    srvocsp_chain *c;

    for (size_t k = 0; (c = srvocsp_gnutls_get0_chain(stapler, k)) != NULL; k++) {
        for (size_t i = 0; i < srvocsp_chain_length(c) && used < len; i++) {
            srvocsp_handle *h = srvocsp_chain_get0_handle(c, i);
            srvocsp_response *r = srvocsp_get1_response(h);
            char subject[256] = "?", tu[32], nu[32];

            X509_NAME_oneline(X509_get_subject_name(srvocsp_chain_get0_cert(c, i)), subject,
                              sizeof(subject));
            if (h == NULL) {
                used += (size_t)snprintf(buf + used, len - used, "[%zu] %s: not asked about\n",
                                         i, subject);
            } else if (r) {
                example_fmt_utc(srvocsp_response_this_update(r), tu, sizeof(tu));
                example_fmt_utc(srvocsp_response_next_update(r), nu, sizeof(nu));
                used += (size_t)snprintf(
                    buf + used, len - used, "[%zu] %s: staple %s, thisUpdate %s, nextUpdate %s\n",
                    i, subject,
                    srvocsp_response_status(r) == SRVOCSP_STATUS_GOOD ? "good" : "revoked", tu,
                    nu);
                srvocsp_response_free(r);
            } else {
                used += (size_t)snprintf(buf + used, len - used, "[%zu] %s: no staple (%s)\n", i,
                                         subject, srvocsp_strerror(srvocsp_last_error()));
            }
        }
    }
    if (used >= len)
        return;
    srvocsp_gnutls_get_stats(stapler, &st);
    snprintf(buf + used, len - used,
             "handshakes stapled %llu, without staple: none yet %llu, expired %llu, unknown "
             "%llu; intermediates stapled %llu, without %llu\n",
             (unsigned long long)st.stapled, (unsigned long long)st.unstapled_none,
             (unsigned long long)st.unstapled_expired, (unsigned long long)st.unstapled_unknown,
             (unsigned long long)st.intermediates_stapled,
             (unsigned long long)st.intermediates_unstapled);
}

static void serve(int fd)
{
    int ret;
    gnutls_session_t s = NULL;
    char req[2048], body[4096], resp[5000];
    ssize_t n;

    if (gnutls_init(&s, GNUTLS_SERVER) != 0)
        goto out;
    gnutls_priority_set(s, prio);
    gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred);
    gnutls_transport_set_int(s, fd);
    gnutls_handshake_set_timeout(s, 10000);
    gnutls_record_set_timeout(s, 10000);
    do {
        ret = gnutls_handshake(s);
    } while (ret < 0 && !gnutls_error_is_fatal(ret));
    if (ret < 0)
        goto out;
    do {
        n = gnutls_record_recv(s, req, sizeof(req) - 1);
    } while (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED);
    if (n > 0) {
        int m;

        describe(body, sizeof(body));
        m = snprintf(resp, sizeof(resp),
                     "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\nhello from srvocsp's GnuTLS example server\n%s",
                     strlen(body) + 43, body);
        gnutls_record_send(s, resp, (size_t)m);
    }
    gnutls_bye(s, GNUTLS_SHUT_WR);
out:
    gnutls_deinit(s); /* releases the staples this session held */
    close(fd);
}

int main(int argc, char **argv)
{
    const char *certs[MAX_PAIRS], *keys[MAX_PAIRS], *dir = NULL, *ca = NULL;
    int n_certs = 0, n_keys = 0, port = 8443, lfd, i, tls12 = 0;
    srvocsp_params p;
    srvocsp_error err;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--cert") == 0 && i + 1 < argc && n_certs < MAX_PAIRS)
            certs[n_certs++] = argv[++i];
        else if (strcmp(argv[i], "--key") == 0 && i + 1 < argc && n_keys < MAX_PAIRS)
            keys[n_keys++] = argv[++i];
        else if (strcmp(argv[i], "--ca") == 0 && i + 1 < argc)
            ca = argv[++i];
        else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            dir = argv[++i];
        else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--tls1.2") == 0)
            tls12 = 1;
        else {
            fprintf(stderr, "usage: %s --cert CHAIN.pem --key KEY.pem [--cert CHAIN2.pem --key "
                            "KEY2.pem] [--ca ROOT.pem] [--dir DIR] [--port N] [--tls1.2]\n",
                    argv[0]);
            return 2;
        }
    }
    if (n_certs == 0 || n_certs != n_keys) {
        fprintf(stderr, "gnutls_server: give --cert and --key in pairs\n");
        return 2;
    }
    if (gnutls_certificate_allocate_credentials(&cred) != 0 ||
        gnutls_priority_init(&prio,
                             tls12 ? "NORMAL:-VERS-ALL:+VERS-TLS1.2" : "NORMAL:-VERS-ALL:"
                                                                       "+VERS-TLS1.3:+VERS-TLS1.2",
                             NULL) != 0) {
        fprintf(stderr, "gnutls_server: cannot set up GnuTLS\n");
        return 1;
    }

    /* ---- stapling: a chain per certificate, attached to the credential ---- */
    err = srvocsp_gnutls_attach(cred, &stapler);
    if (err != SRVOCSP_OK) {
        fprintf(stderr, "gnutls_server: cannot attach: %s\n", srvocsp_strerror(err));
        return 1;
    }
    srvocsp_params_init(&p);
    p.directory = dir;            /* staple from the first handshake after a restart */
    p.flags = SRVOCSP_OPEN_ASYNC; /* never delay start-up on the responders */
    p.update_cb = on_update;
    for (i = 0; i < n_certs; i++) {
        err = srvocsp_gnutls_add_pem(stapler, certs[i], keys[i], ca, &p);
        if (err != SRVOCSP_OK) {
            fprintf(stderr, "gnutls_server: %s: %s\n", certs[i],
                    err == SRVOCSP_E_CERT ? "cannot load the chain or the key"
                                          : srvocsp_last_error_text());
            return 1;
        }
    }
    srvocsp_gnutls_set_must_staple_cb(stapler, on_must_staple, NULL);
    /* ---- end of stapling ---- */

    lfd = example_listen("gnutls_server", port);
    if (lfd < 0)
        return 1;
    fprintf(stderr, "gnutls_server: listening on 127.0.0.1:%d\n", port);
    /* Returns after the last session ended: sessions borrow the
     * credential's chains. */
    example_serve("gnutls_server", lfd, serve);
    gnutls_certificate_free_credentials(cred);
    gnutls_priority_deinit(prio);
    srvocsp_gnutls_free(stapler);
    srvocsp_cleanup();
    return 0;
}
