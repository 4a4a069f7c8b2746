/* srvocsp show: decode a response and, given the certificates, verify it
 * with the library's one verification path, optionally as of a past time. */
#include <getopt.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define SHOW_MAX_FILE (16u * 1024u * 1024u)

static void show_usage(FILE *f)
{
    fprintf(f,
            "usage: srvocsp show RESP.der [--cert LEAF.pem [--issuer ISSUER.pem]]\n"
            "                   [--at TIME] [--max-age SECONDS] [--json]\n"
            "\n"
            "Prints the fields of a DER (or PEM \"OCSP RESPONSE\") response.  With --cert it\n"
            "also verifies it for that certificate as of TIME (RFC 3339 or Unix seconds,\n"
            "default now); --max-age bounds responses without nextUpdate (default 3600).\n"
            "Exit: with --cert 0 good, 1 revoked, 2 otherwise; without, 0 if it decodes, 2 if not.\n");
}

static int64_t gt_unix(const ASN1_GENERALIZEDTIME *t)
{
    struct tm tm;

    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
        return 0;
    return (int64_t)timegm(&tm);
}

/* Accepts DER, or PEM with an "OCSP RESPONSE" block. */
static OCSP_RESPONSE *load_response(const unsigned char *buf, size_t len, unsigned char **der,
                                    size_t *der_len)
{
    const unsigned char *p = buf;
    OCSP_RESPONSE *resp = d2i_OCSP_RESPONSE(NULL, &p, (long)len);

    if (resp != NULL && p == buf + len) {
        *der = malloc(len);
        memcpy(*der, buf, len);
        *der_len = len;
        return resp;
    }
    OCSP_RESPONSE_free(resp);
    {
        BIO *b = BIO_new_mem_buf(buf, (int)len);
        char *name = NULL, *header = NULL;
        unsigned char *data = NULL;
        long n;

        resp = NULL;
        while (b && PEM_read_bio(b, &name, &header, &data, &n) == 1) {
            if (strcmp(name, "OCSP RESPONSE") == 0) {
                p = data;
                resp = d2i_OCSP_RESPONSE(NULL, &p, n);
                if (resp != NULL) {
                    *der = malloc((size_t)n);
                    memcpy(*der, data, (size_t)n);
                    *der_len = (size_t)n;
                }
            }
            OPENSSL_free(name);
            OPENSSL_free(header);
            OPENSSL_free(data);
            if (resp != NULL)
                break;
        }
        BIO_free(b);
    }
    return resp;
}

static void print_fields(OCSP_RESPONSE *resp, bool json)
{
    OCSP_BASICRESP *bs = OCSP_response_get1_basic(resp);
    int st = OCSP_response_status(resp), i, n;
    char t[32];

    if (json) {
        printf("{\"response_status\":\"%s\"", OCSP_response_status_str(st));
    } else {
        printf("response status: %s (%d)\n", OCSP_response_status_str(st), st);
    }
    if (bs == NULL) {
        if (json)
            printf(",\"responses\":[]");
        return;
    }
    {
        const ASN1_OCTET_STRING *kid = NULL;
        const X509_NAME *name = NULL;
        char rid[512] = "";

        OCSP_resp_get0_id(bs, &kid, &name);
        if (name)
            X509_NAME_oneline(name, rid, sizeof(rid));
        else if (kid)
            for (i = 0; i < ASN1_STRING_length(kid) && i < 64; i++)
                snprintf(rid + 2 * i, 3, "%02X", ASN1_STRING_get0_data(kid)[i]);
        cli_fmt_time(gt_unix(OCSP_resp_get0_produced_at(bs)), t, sizeof(t));
        if (json) {
            printf(",\"responder_id\":");
            cli_json_str(stdout, rid);
            printf(",\"responder_id_type\":\"%s\",\"produced_at\":\"%s\",\"certs\":%d",
                   name ? "name" : "key", t, sk_X509_num(OCSP_resp_get0_certs(bs)));
            printf(",\"responses\":[");
        } else {
            printf("responder id (%s): %s\nproduced at: %s\ncertificates included: %d\n",
                   name ? "byName" : "byKey", rid, t, sk_X509_num(OCSP_resp_get0_certs(bs)));
        }
    }
    n = OCSP_resp_count(bs);
    for (i = 0; i < n; i++) {
        OCSP_SINGLERESP *s = OCSP_resp_get0(bs, i);
        ASN1_OBJECT *md = NULL;
        ASN1_INTEGER *serial = NULL;
        ASN1_GENERALIZEDTIME *rev = NULL, *tu = NULL, *nu = NULL;
        int reason = -1, cs;
        BIGNUM *bn;
        char *hex, tus[32], nus[32], revs[32];

        OCSP_id_get0_info(NULL, &md, NULL, &serial, (OCSP_CERTID *)OCSP_SINGLERESP_get0_id(s));
        cs = OCSP_single_get0_status(s, &reason, &rev, &tu, &nu);
        bn = ASN1_INTEGER_to_BN(serial, NULL);
        hex = bn ? BN_bn2hex(bn) : NULL;
        cli_fmt_time(gt_unix(tu), tus, sizeof(tus));
        cli_fmt_time(gt_unix(nu), nus, sizeof(nus));
        cli_fmt_time(gt_unix(rev), revs, sizeof(revs));
        if (json) {
            printf("%s{\"hash\":\"%s\",\"serial\":\"%s\",\"status\":\"%s\",\"this_update\":\"%s\","
                   "\"next_update\":\"%s\"",
                   i ? "," : "", OBJ_nid2sn(OBJ_obj2nid(md)), hex ? hex : "?",
                   OCSP_cert_status_str(cs), tus, nus);
            if (cs == V_OCSP_CERTSTATUS_REVOKED)
                printf(",\"revoked_at\":\"%s\",\"reason\":%d", revs, reason);
            printf("}");
        } else {
            printf("response %d: hash %s serial %s status %s thisUpdate %s nextUpdate %s", i,
                   OBJ_nid2sn(OBJ_obj2nid(md)), hex ? hex : "?", OCSP_cert_status_str(cs), tus,
                   nus);
            if (cs == V_OCSP_CERTSTATUS_REVOKED)
                printf(" revoked %s reason %s", revs,
                       reason >= 0 ? OCSP_crl_reason_str(reason) : "-");
            printf("\n");
        }
        OPENSSL_free(hex);
        BN_free(bn);
    }
    if (json)
        printf("]");
    OCSP_BASICRESP_free(bs);
}

int cmd_show(int argc, char **argv)
{
    static const struct option opts[] = {
        {"cert", required_argument, NULL, 'c'},   {"issuer", required_argument, NULL, 'i'},
        {"at", required_argument, NULL, 'a'},     {"max-age", required_argument, NULL, 'm'},
        {"json", no_argument, NULL, 'j'},         {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cert = NULL, *issuer_path = NULL, *path;
    srvocsp_verify_opts vo;
    unsigned char *buf = NULL, *der = NULL;
    size_t len = 0, der_len = 0;
    OCSP_RESPONSE *resp = NULL;
    X509 *leaf = NULL, *issuer = NULL;
    srvocsp_response *r = NULL;
    bool json = false;
    int c, rc = EXIT_FAIL;
    char *end;

    srvocsp_verify_opts_init(&vo);
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:i:a:m:jh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': cert = optarg; break;
        case 'i': issuer_path = optarg; break;
        case 'a':
            if (!cli_parse_time(optarg, &vo.now)) {
                fprintf(stderr, "srvocsp: --at '%s' is neither RFC 3339 (2017-03-05T00:00:00Z) "
                                "nor Unix seconds\n", optarg);
                return EXIT_FAIL;
            }
            break;
        case 'm':
            vo.max_age_no_next_update_s = (uint32_t)strtoul(optarg, &end, 10);
            if (*end != '\0' || vo.max_age_no_next_update_s == 0) {
                fprintf(stderr, "srvocsp: --max-age '%s' is not a positive number of seconds\n",
                        optarg);
                return EXIT_FAIL;
            }
            break;
        case 'j': json = true; break;
        case 'h': show_usage(stdout); return 0;
        default: show_usage(stderr); return EXIT_FAIL;
        }
    }
    if (optind + 1 != argc) {
        show_usage(stderr);
        return EXIT_FAIL;
    }
    path = argv[optind];
    buf = cli_read_file(path, SHOW_MAX_FILE, &len);
    if (buf == NULL) {
        fprintf(stderr, "srvocsp: cannot read %s\n", path);
        goto out;
    }
    resp = load_response(buf, len, &der, &der_len);
    if (resp == NULL) {
        fprintf(stderr, "srvocsp: %s is not a DER or PEM OCSP response\n", path);
        goto out;
    }
    print_fields(resp, json);
    if (cert == NULL) {
        if (json)
            printf("}\n");
        rc = EXIT_GOOD;
        goto out;
    }
    if (!cli_load_pair(cert, issuer_path, &leaf, &issuer)) {
        if (json)
            printf("}\n");
        goto out;
    }
    r = srvocsp_verify_der(der, der_len, leaf, issuer, &vo);
    if (r == NULL) {
        if (json) {
            printf(",\"verified\":false,\"error\":\"%s\",\"reason\":",
                   srvocsp_error_name(srvocsp_last_error()));
            cli_json_str(stdout, srvocsp_last_error_text());
            printf("}\n");
        } else {
            printf("verification: FAILED (%s)\n", srvocsp_error_name(srvocsp_last_error()));
        }
        fprintf(stderr, "srvocsp: %s: %s\n", path, srvocsp_last_error_text());
        goto out;
    }
    if (json)
        printf(",\"verified\":true,\"cert_status\":\"%s\"}\n",
               cli_status_name(srvocsp_response_status(r)));
    else
        printf("verification: OK, certificate status %s\n",
               cli_status_name(srvocsp_response_status(r)));
    switch (srvocsp_response_status(r)) {
    case SRVOCSP_STATUS_GOOD: rc = EXIT_GOOD; break;
    case SRVOCSP_STATUS_REVOKED: rc = EXIT_REVOKED; break;
    default:
        fprintf(stderr, "srvocsp: %s: the responder says the certificate's status is unknown\n",
                path);
        rc = EXIT_FAIL;
    }
out:
    srvocsp_response_free(r);
    X509_free(leaf);
    X509_free(issuer);
    OCSP_RESPONSE_free(resp);
    free(der);
    free(buf);
    return rc;
}
