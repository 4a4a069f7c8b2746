/* Internals of libsrvocsp-gnutls. */
#ifndef SRVOCSP_GNUTLS_INTERNAL_H
#define SRVOCSP_GNUTLS_INTERNAL_H

#ifndef SRVOCSP_BUILDING
#define SRVOCSP_BUILDING 1
#endif
#include "srvocsp/gnutls.h"

#define SRVOCSP__GNUTLS_HIDDEN __attribute__((visibility("hidden")))

/* ---- registry.c: credential -> srvocsp_gnutls ---- */
/* The object attached to |cred|, or NULL.  Lock-free, for handshakes. */
SRVOCSP__GNUTLS_HIDDEN srvocsp_gnutls *srvocsp__gnutls_lookup(const void *cred);
/* SRVOCSP_OK, E_UNSUPPORTED (|cred| has one), E_NOMEM (table full). */
SRVOCSP__GNUTLS_HIDDEN srvocsp_error srvocsp__gnutls_register(const void *cred,
                                                              srvocsp_gnutls *g);
SRVOCSP__GNUTLS_HIDDEN void srvocsp__gnutls_unregister(const void *cred);

#endif
