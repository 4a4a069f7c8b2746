/* In-process TLS handshakes over a memory BIO pair. */
#ifndef SRVOCSP_TLSPAIR_H
#define SRVOCSP_TLSPAIR_H

#include <openssl/ssl.h>
#include <stdbool.h>

#include "testpki.h"

/* A server context with |leaf| (+ |issuer| as chain). */
SSL_CTX *tls_server_ctx(const tp_cert *leaf, const tp_cert *issuer);
/* A client context trusting |root|, TLS 1.3 only if |tls13|. */
SSL_CTX *tls_client_ctx(const tp_cert *root, bool tls13);

typedef struct tls_result {
    bool ok;                 /* handshake completed */
    long staple_serial;      /* serial in the stapled response, -1 if none */
    int staple_len;
} tls_result;

/* Whether tls_handshake decodes the staple for its serial (default true;
 * benchmarks turn it off so only the TLS work is timed). */
extern bool tls_parse_staples;

/* One full handshake; |sni| may be NULL; asks for a staple if |want_status|. */
tls_result tls_handshake(SSL_CTX *server, SSL_CTX *client, const char *sni, bool want_status);

#endif
