/* A GnuTLS client and server in one process, over in-memory buffers, run
 * step by step (for tests that act between handshake messages) or to the
 * end.  Used by test_gnutls_staple and bench_gnutls. */
#ifndef SRVOCSP_GNUTLS_PAIR_H
#define SRVOCSP_GNUTLS_PAIR_H

#include <gnutls/gnutls.h>
#include <stdbool.h>
#include <stddef.h>

#define GP_BUF_MAX (64 * 1024)

typedef struct gp_buf {
    unsigned char data[GP_BUF_MAX];
    size_t len, off;
} gp_buf;

typedef struct gp_end {
    gnutls_session_t s;
    gp_buf *in, *out;
    int state; /* 1 while the handshake goes on, 0 when done, < 0 failed */
} gp_end;

typedef struct gp_pair {
    gp_buf c2s, s2c;
    gp_end client, server;
} gp_pair;

/* Sets up both sessions.  |ask|: the client asks for status (GnuTLS 3.7
 * clients ask by default; false sets GNUTLS_NO_EXTENSIONS).  Returns 0 or a
 * GnuTLS error. */
int gp_init(gp_pair *p, gnutls_certificate_credentials_t server_cred,
            gnutls_certificate_credentials_t client_cred, gnutls_priority_t server_prio,
            gnutls_priority_t client_prio, bool ask);
/* One gnutls_handshake call on the client / the server (nothing once its
 * handshake is done or failed).  Returns its state. */
int gp_step_client(gp_pair *p);
int gp_step_server(gp_pair *p);
/* Steps both until done; returns 0, or the first fatal error. */
int gp_run(gp_pair *p);
void gp_deinit(gp_pair *p);

#endif
