/*
 * srvocsp check: what monitoring needs to know about a staple, with the
 * exit codes and the one-line output of monitoring plugins.
 *
 *   srvocsp check --file RESP.der --cert LEAF.pem [--issuer ISSUER.pem]
 *   srvocsp check --connect HOST:PORT [--servername NAME] [--cafile CA.pem]
 *   common: [--warn SECONDS] [--crit SECONDS]
 *
 * 0 OK, 1 WARNING (less than --warn left), 2 CRITICAL (less than --crit
 * left, expired, revoked, unknown, missing, unverifiable, no connection),
 * 3 UNKNOWN (the certificate or --cafile cannot be read).  A usage error
 * exits 2, as for every srvocsp command: a monitoring system shows it as
 * CRITICAL, which a check that cannot run deserves.  A server that staples nothing for a certificate
 * without an OCSP URL is OK (nothing to staple) unless the certificate is
 * must-staple.
 */
#include <getopt.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "tls/staple_rules.h"

enum { CHECK_OK = 0, CHECK_WARNING = 1, CHECK_CRITICAL = 2, CHECK_UNKNOWN = 3 };
/* Usage errors: 2, as for every srvocsp command. */
#define CHECK_USAGE 2

static void check_usage(FILE *f)
{
    fprintf(f,
            "usage: srvocsp check --file RESP.der --cert LEAF.pem [--issuer ISSUER.pem]\n"
            "       srvocsp check --connect HOST:PORT [--servername NAME] [--cafile CA.pem]\n"
            "       common options: [--warn SECONDS] [--crit SECONDS] (defaults 86400, 3600)\n"
            "\n"
            "Reports the status and remaining validity of an OCSP response, from a file or\n"
            "stapled by a live TLS server, verified for the certificate, in the format of\n"
            "monitoring plugins.  Exit: 0 OK, 1 WARNING, 2 CRITICAL (also revoked, unknown,\n"
            "missing, expired, unverifiable, and a usage error), 3 UNKNOWN (the\n"
            "certificate or --cafile cannot be read).\n");
}

static void human(int64_t s, char *buf, size_t len)
{
    if (s < 0)
        snprintf(buf, len, "expired %llds ago", (long long)-s);
    else if (s >= 86400)
        snprintf(buf, len, "%lldd %lldh left", (long long)(s / 86400),
                 (long long)(s % 86400 / 3600));
    else if (s >= 3600)
        snprintf(buf, len, "%lldh %lldm left", (long long)(s / 3600),
                 (long long)(s % 3600 / 60));
    else
        snprintf(buf, len, "%llds left", (long long)s);
}

static int report(int code, const char *what, const char *detail, int64_t left, int64_t warn,
                  int64_t crit)
{
    static const char *const names[] = {"OK", "WARNING", "CRITICAL", "UNKNOWN"};

    printf("OCSP %s - %s%s%s", names[code], what, detail[0] ? ", " : "", detail);
    if (left != INT64_MIN)
        printf(" | seconds_left=%lld;%lld;%lld", (long long)left, (long long)warn,
               (long long)crit);
    printf("\n");
    return code;
}

/* Judges a DER response for leaf/issuer at now. */
static int judge(const unsigned char *der, size_t len, X509 *leaf, X509 *issuer, int64_t warn,
                 int64_t crit, const char *source)
{
    srvocsp_verify_opts vo;
    srvocsp_response *r;
    int64_t left, now = (int64_t)time(NULL);
    char detail[512], left_s[64], nu[32];
    int code;

    srvocsp_verify_opts_init(&vo);
    r = srvocsp_verify_der(der, len, leaf, issuer, &vo);
    if (r == NULL) {
        srvocsp_error e = srvocsp_last_error();

        return report(CHECK_CRITICAL,
                      e == SRVOCSP_E_EXPIRED           ? "expired"
                      : e == SRVOCSP_E_RESPONSE_STATUS ? "no status (an OCSP error answer)"
                                                       : "unverifiable",
                      srvocsp_last_error_text(), INT64_MIN, warn, crit);
    }
    left = srvocsp_response_expires(r) - now;
    human(left, left_s, sizeof(left_s));
    cli_fmt_time(srvocsp_response_expires(r), nu, sizeof(nu));
    snprintf(detail, sizeof(detail), "%s (%s %s) from %s", left_s,
             srvocsp_response_next_update(r) ? "nextUpdate" : "max age ends", nu, source);
    switch (srvocsp_response_status(r)) {
    case SRVOCSP_STATUS_REVOKED:
        code = report(CHECK_CRITICAL, "certificate REVOKED", detail, left, warn, crit);
        break;
    case SRVOCSP_STATUS_UNKNOWN:
        code = report(CHECK_CRITICAL, "responder says unknown", detail, left, warn, crit);
        break;
    default:
        code = left < crit   ? report(CHECK_CRITICAL, "good", detail, left, warn, crit)
               : left < warn ? report(CHECK_WARNING, "good", detail, left, warn, crit)
                             : report(CHECK_OK, "good", detail, left, warn, crit);
    }
    srvocsp_response_free(r);
    return code;
}

/* The server stapled nothing.  Since most public certificates carry no OCSP
 * URL any more, that is only wrong when there was something to staple or
 * the certificate demands a staple. */
static int no_staple(X509 *leaf, const char *target, int64_t warn, int64_t crit)
{
    STACK_OF(OPENSSL_STRING) *urls = leaf ? X509_get1_ocsp(leaf) : NULL;
    int n_urls = urls ? sk_OPENSSL_STRING_num(urls) : 0;
    int ms = leaf ? srvocsp__must_staple(leaf) : 0;
    char detail[600];

    X509_email_free(urls);
    if (ms != 0) {
        snprintf(detail, sizeof(detail), "%s%s", target,
                 ms < 0 ? " (its TLS Feature extension cannot be read)"
                 : n_urls == 0 ? " (and the certificate has no OCSP responder URL)"
                               : "");
        return report(CHECK_CRITICAL, "must-staple certificate without an OCSP staple", detail,
                      INT64_MIN, warn, crit);
    }
    if (n_urls == 0)
        return report(CHECK_OK, "no OCSP responder URL: nothing to staple", target, INT64_MIN,
                      warn, crit);
    return report(CHECK_CRITICAL, "no OCSP staple", target, INT64_MIN, warn, crit);
}

static int check_connect(const char *target, const char *sni, const char *cafile, int64_t warn,
                         int64_t crit)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    BIO *b = NULL;
    SSL *ssl = NULL;
    const unsigned char *staple = NULL;
    long len;
    X509 *leaf = NULL, *issuer = NULL;
    STACK_OF(X509) *chain;
    char host[256];
    int code = CHECK_CRITICAL, i;

    snprintf(host, sizeof(host), "%s", target);
    if (strchr(host, ':'))
        *strrchr(host, ':') = '\0';
    if (cafile) {
        if (SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1) {
            SSL_CTX_free(ctx);
            return report(CHECK_UNKNOWN, "cannot read --cafile", cafile, INT64_MIN, warn, crit);
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    b = BIO_new_ssl_connect(ctx);
    BIO_get_ssl(b, &ssl);
    BIO_set_conn_hostname(b, target);
    SSL_set_tlsext_host_name(ssl, (char *)(uintptr_t)(sni ? sni : host));
    SSL_set_tlsext_status_type(ssl, TLSEXT_STATUSTYPE_ocsp);
    if (BIO_do_handshake(b) != 1) {
        unsigned long e = ERR_peek_last_error();
        char reason[256];

        ERR_error_string_n(e, reason, sizeof(reason));
        code = report(CHECK_CRITICAL, "TLS connection failed", reason, INT64_MIN, warn, crit);
        goto out;
    }
    len = SSL_get_tlsext_status_ocsp_resp(ssl, &staple);
    chain = SSL_get_peer_cert_chain(ssl); /* client side: the leaf first */
    leaf = SSL_get1_peer_certificate(ssl);
    for (i = 0; chain != NULL && i < sk_X509_num(chain) && issuer == NULL; i++)
        if (X509_check_issued(sk_X509_value(chain, i), leaf) == X509_V_OK)
            issuer = sk_X509_value(chain, i);
    if (len <= 0 || staple == NULL) {
        code = no_staple(leaf, target, warn, crit);
        goto out;
    }
    if (issuer == NULL) {
        code = report(CHECK_CRITICAL, "unverifiable", "the server sent no issuer certificate",
                      INT64_MIN, warn, crit);
        goto out;
    }
    code = judge(staple, (size_t)len, leaf, issuer, warn, crit, target);
out:
    ERR_clear_error();
    X509_free(leaf);
    BIO_free_all(b);
    SSL_CTX_free(ctx);
    return code;
}

int cmd_check(int argc, char **argv)
{
    static const struct option opts[] = {
        {"file", required_argument, NULL, 'f'},       {"cert", required_argument, NULL, 'c'},
        {"issuer", required_argument, NULL, 'i'},     {"connect", required_argument, NULL, 'C'},
        {"servername", required_argument, NULL, 's'}, {"cafile", required_argument, NULL, 'a'},
        {"warn", required_argument, NULL, 'w'},       {"crit", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},             {NULL, 0, NULL, 0},
    };
    const char *file = NULL, *cert = NULL, *issuer_path = NULL, *connect = NULL, *sni = NULL,
               *cafile = NULL;
    int64_t warn = 86400, crit = 3600;
    char *end;
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "f:c:i:C:s:a:w:k:h", opts, NULL)) != -1) {
        switch (c) {
        case 'f': file = optarg; break;
        case 'c': cert = optarg; break;
        case 'i': issuer_path = optarg; break;
        case 'C': connect = optarg; break;
        case 's': sni = optarg; break;
        case 'a': cafile = optarg; break;
        case 'w':
        case 'k': {
            long long v = strtoll(optarg, &end, 10);

            if (*end != '\0' || v < 0) {
                fprintf(stderr, "srvocsp check: --%s '%s' is not a number of seconds\n",
                        c == 'w' ? "warn" : "crit", optarg);
                return CHECK_USAGE;
            }
            *(c == 'w' ? &warn : &crit) = v;
            break;
        }
        case 'h': check_usage(stdout); return CHECK_OK;
        default: check_usage(stderr); return CHECK_USAGE;
        }
    }
    if (optind != argc || (file == NULL) == (connect == NULL) || (file && cert == NULL) ||
        crit > warn) {
        check_usage(stderr);
        if (crit > warn)
            fprintf(stderr, "srvocsp check: --crit must not exceed --warn\n");
        return CHECK_USAGE;
    }
    if (connect)
        return check_connect(connect, sni, cafile, warn, crit);
    {
        X509 *leaf, *issuer;
        size_t len;
        unsigned char *der = cli_read_file(file, 16u << 20, &len);
        int code;

        if (der == NULL)
            return report(CHECK_CRITICAL, "missing", file, INT64_MIN, warn, crit);
        if (!cli_load_pair(cert, issuer_path, &leaf, &issuer)) {
            free(der);
            return report(CHECK_UNKNOWN, "cannot load the certificate and its issuer", cert,
                          INT64_MIN, warn, crit);
        }
        code = judge(der, len, leaf, issuer, warn, crit, file);
        free(der);
        X509_free(leaf);
        X509_free(issuer);
        return code;
    }
}
