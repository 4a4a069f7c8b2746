/* Shared pieces of the srvocsp command. */
#ifndef SRVOCSP_CLI_H
#define SRVOCSP_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <openssl/x509.h>

#include "srvocsp.h"

/* Exit codes of fetch and show. */
enum { EXIT_GOOD = 0, EXIT_REVOKED = 1, EXIT_FAIL = 2 };

int cmd_fetch(int argc, char **argv);
int cmd_show(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_watch(int argc, char **argv);

/* Loads the leaf (first certificate of |cert_path|) and its issuer (from
 * the same file or |issuer_path|).  Prints the reason and returns false. */
bool cli_load_pair(const char *cert_path, const char *issuer_path, X509 **leaf, X509 **issuer);
/* Parses RFC 3339 ("2017-03-05T00:00:00Z") or Unix seconds. */
bool cli_parse_time(const char *s, int64_t *out);
void cli_fmt_time(int64_t t, char *buf, size_t len);
const char *cli_status_name(srvocsp_cert_status st);
/* Reads a whole file with a size cap. */
unsigned char *cli_read_file(const char *path, size_t cap, size_t *len);
/* The library's atomic file replacement (temporary file, fsync, rename,
 * fsync of the directory): 0 or an errno. */
int srvocsp__write_file_atomic(const char *path, const unsigned char *data, size_t len);
/* Writes |s| as a JSON string literal. */
void cli_json_str(FILE *f, const char *s);

#endif
