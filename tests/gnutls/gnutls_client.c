/*
 * srvocsp_gnutls_client PORT ROOT.pem [--tls1.2]: a GnuTLS client that
 * connects to 127.0.0.1:PORT, asks for status, and for every certificate
 * the server sent reads its stapled response (gnutls_ocsp_status_request_get2
 * with the certificate's index) and verifies it on its own: signed by the
 * certificate's issuer (the next certificate sent, or ROOT.pem for the
 * last), about that certificate, and its status.  One line per
 * certificate:
 *
 *   status 0: good (signature ok, certificate matches)
 *   status 1: none
 *
 * Exits 0 when the handshake completed and every response present
 * verified, 1 otherwise (a line says why), 2 on usage errors.
 */
#include <arpa/inet.h>
#include <gnutls/gnutls.h>
#include <gnutls/ocsp.h>
#include <gnutls/x509.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CERTS 8

static const char *status_name(unsigned s)
{
    return s == GNUTLS_OCSP_CERT_GOOD      ? "good"
           : s == GNUTLS_OCSP_CERT_REVOKED ? "revoked"
                                           : "unknown";
}

/* Checks the response |der| for |crt| issued by |issuer|; prints a line. */
static int check_one(unsigned idx, const gnutls_datum_t *der, gnutls_x509_crt_t crt,
                     gnutls_x509_crt_t issuer)
{
    gnutls_ocsp_resp_t resp = NULL;
    unsigned verify = 0, cert_status = 0;
    time_t this_update, next_update;
    int ok = 0;

    if (gnutls_ocsp_resp_init(&resp) != 0 || gnutls_ocsp_resp_import(resp, der) != 0) {
        printf("status %u: not a DER OCSP response\n", idx);
        goto out;
    }
    if (gnutls_ocsp_resp_verify_direct(resp, issuer, &verify, 0) != 0 || verify != 0) {
        printf("status %u: signature does not verify against the issuer (0x%x)\n", idx, verify);
        goto out;
    }
    if (gnutls_ocsp_resp_check_crt(resp, 0, crt) != 0) {
        printf("status %u: response is about another certificate\n", idx);
        goto out;
    }
    if (gnutls_ocsp_resp_get_single(resp, 0, NULL, NULL, NULL, NULL, &cert_status, &this_update,
                                    &next_update, NULL, NULL) != 0) {
        printf("status %u: no single response\n", idx);
        goto out;
    }
    if (next_update != (time_t)-1 && next_update < time(NULL)) {
        printf("status %u: expired\n", idx);
        goto out;
    }
    printf("status %u: %s (signature ok, certificate matches)\n", idx, status_name(cert_status));
    ok = 1;
out:
    gnutls_ocsp_resp_deinit(resp);
    return ok;
}

int main(int argc, char **argv)
{
    gnutls_certificate_credentials_t cred = NULL;
    gnutls_session_t s = NULL;
    gnutls_x509_crt_t crts[MAX_CERTS + 1];
    unsigned n_crts = 0, n_list = 0, i;
    const gnutls_datum_t *list;
    gnutls_datum_t root_pem = {NULL, 0};
    struct sockaddr_in a;
    int fd = -1, ret, rc = 1, ok = 1;

    if (argc < 3) {
        fprintf(stderr, "usage: %s PORT ROOT.pem [--tls1.2]\n", argv[0]);
        return 2;
    }
    memset(crts, 0, sizeof(crts));
    if (gnutls_certificate_allocate_credentials(&cred) != 0 ||
        gnutls_certificate_set_x509_trust_file(cred, argv[2], GNUTLS_X509_FMT_PEM) <= 0 ||
        gnutls_init(&s, GNUTLS_CLIENT) != 0 ||
        gnutls_priority_set_direct(s,
                                   argc > 3 && strcmp(argv[3], "--tls1.2") == 0
                                       ? "NORMAL:-VERS-ALL:+VERS-TLS1.2"
                                       : "NORMAL:-VERS-ALL:+VERS-TLS1.3",
                                   NULL) != 0 ||
        gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred) != 0 ||
        gnutls_ocsp_status_request_enable_client(s, NULL, 0, NULL) != 0) {
        printf("cannot set up GnuTLS\n");
        goto out;
    }
    gnutls_server_name_set(s, GNUTLS_NAME_DNS, "localhost", 9);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)atoi(argv[1]));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        printf("cannot connect to 127.0.0.1:%s\n", argv[1]);
        goto out;
    }
    gnutls_transport_set_int(s, fd);
    gnutls_handshake_set_timeout(s, 10000);
    do {
        ret = gnutls_handshake(s);
    } while (ret < 0 && !gnutls_error_is_fatal(ret));
    if (ret < 0) {
        printf("handshake failed: %s\n", gnutls_strerror(ret));
        goto out;
    }
    printf("protocol %s\n", gnutls_protocol_get_name(gnutls_protocol_get_version(s)));
    list = gnutls_certificate_get_peers(s, &n_list);
    if (list == NULL || n_list == 0 || n_list > MAX_CERTS) {
        printf("no usable certificate list from the server\n");
        goto out;
    }
    printf("certificates %u\n", n_list);
    for (i = 0; i < n_list; i++) {
        if (gnutls_x509_crt_init(&crts[i]) != 0 ||
            gnutls_x509_crt_import(crts[i], &list[i], GNUTLS_X509_FMT_DER) != 0) {
            printf("certificate %u does not parse\n", i);
            goto out;
        }
        n_crts = i + 1;
    }
    /* The issuer of the last certificate sent: the trusted root. */
    if (gnutls_load_file(argv[2], &root_pem) != 0 || gnutls_x509_crt_init(&crts[n_list]) != 0 ||
        gnutls_x509_crt_import(crts[n_list], &root_pem, GNUTLS_X509_FMT_PEM) != 0) {
        printf("cannot read %s\n", argv[2]);
        goto out;
    }
    n_crts = n_list + 1;
    for (i = 0; i < n_list; i++) {
        gnutls_datum_t der;

        if (gnutls_x509_crt_check_issuer(crts[i], crts[i])) {
            printf("status %u: root, not asked about\n", i);
            continue;
        }
        ret = gnutls_ocsp_status_request_get2(s, i, &der);
        if (ret == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE) {
            printf("status %u: none\n", i);
            continue;
        }
        if (ret != 0) {
            printf("status %u: error %s\n", i, gnutls_strerror(ret));
            ok = 0;
            continue;
        }
        ok &= check_one(i, &der, crts[i], crts[i + 1]);
    }
    rc = ok ? 0 : 1;
    gnutls_bye(s, GNUTLS_SHUT_WR);
out:
    for (i = 0; i < n_crts; i++)
        gnutls_x509_crt_deinit(crts[i]);
    gnutls_free(root_pem.data);
    if (s != NULL)
        gnutls_deinit(s);
    if (fd >= 0)
        close(fd);
    gnutls_certificate_free_credentials(cred);
    return rc;
}
