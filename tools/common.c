#define _XOPEN_SOURCE 700
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static STACK_OF(X509) *read_certs(const char *path)
{
    FILE *f = fopen(path, "r");
    STACK_OF(X509) *sk;
    X509 *x;

    if (f == NULL) {
        fprintf(stderr, "srvocsp: cannot open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    sk = sk_X509_new_null();
    while (sk && (x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL)
        sk_X509_push(sk, x);
    ERR_clear_error();
    fclose(f);
    if (sk != NULL && sk_X509_num(sk) == 0) {
        fprintf(stderr, "srvocsp: %s holds no PEM certificate\n", path);
        sk_X509_free(sk);
        return NULL;
    }
    return sk;
}

bool cli_load_pair(const char *cert_path, const char *issuer_path, X509 **leaf, X509 **issuer)
{
    STACK_OF(X509) *a = read_certs(cert_path), *b = NULL;
    int i;

    *leaf = *issuer = NULL;
    if (a == NULL)
        return false;
    if (issuer_path != NULL && (b = read_certs(issuer_path)) == NULL) {
        sk_X509_pop_free(a, X509_free);
        return false;
    }
    *leaf = sk_X509_shift(a);
    for (i = 0; i < sk_X509_num(b ? b : a) && *issuer == NULL; i++) {
        X509 *c = sk_X509_value(b ? b : a, i);

        if (X509_check_issued(c, *leaf) == X509_V_OK) {
            X509_up_ref(c);
            *issuer = c;
        }
    }
    sk_X509_pop_free(a, X509_free);
    sk_X509_pop_free(b, X509_free);
    if (*issuer == NULL) {
        fprintf(stderr, "srvocsp: no issuer of the certificate in %s%s%s (give --issuer)\n",
                cert_path, issuer_path ? " or " : "", issuer_path ? issuer_path : "");
        X509_free(*leaf);
        *leaf = NULL;
        return false;
    }
    return true;
}

bool cli_parse_time(const char *s, int64_t *out)
{
    struct tm tm;
    char *end;
    long long v;

    if (s == NULL || *s == '\0')
        return false;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (*end == '\0' && errno == 0 && v >= 0) {
        *out = v;
        return true;
    }
    memset(&tm, 0, sizeof(tm));
    end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (end == NULL || (strcmp(end, "Z") != 0 && strcmp(end, "+00:00") != 0))
        return false;
    *out = (int64_t)timegm(&tm);
    return true;
}

void cli_fmt_time(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (t == 0 || gmtime_r(&tt, &tm) == NULL)
        snprintf(buf, len, "-");
    else
        strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

const char *cli_status_name(srvocsp_cert_status st)
{
    return st == SRVOCSP_STATUS_GOOD ? "good" : st == SRVOCSP_STATUS_REVOKED ? "revoked" : "unknown";
}

unsigned char *cli_read_file(const char *path, size_t cap, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf;
    size_t n;

    if (f == NULL)
        return NULL;
    buf = malloc(cap + 1);
    n = buf ? fread(buf, 1, cap + 1, f) : 0;
    fclose(f);
    if (buf == NULL || n > cap) {
        free(buf);
        errno = EFBIG;
        return NULL;
    }
    *len = n;
    return buf;
}

void cli_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}
