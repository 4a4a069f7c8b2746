#include "gnutls_pair.h"

#include <errno.h>
#include <string.h>

static ssize_t push(gnutls_transport_ptr_t ptr, const void *data, size_t len)
{
    gp_end *e = ptr;

    if (e->out->len + len > GP_BUF_MAX) {
        gnutls_transport_set_errno(e->s, EAGAIN);
        return -1;
    }
    memcpy(e->out->data + e->out->len, data, len);
    e->out->len += len;
    return (ssize_t)len;
}

static ssize_t pull(gnutls_transport_ptr_t ptr, void *data, size_t len)
{
    gp_end *e = ptr;
    size_t n = e->in->len - e->in->off;

    if (n == 0) {
        gnutls_transport_set_errno(e->s, EAGAIN);
        return -1;
    }
    if (n > len)
        n = len;
    memcpy(data, e->in->data + e->in->off, n);
    e->in->off += n;
    if (e->in->off == e->in->len)
        e->in->off = e->in->len = 0;
    return (ssize_t)n;
}

static int setup_end(gp_end *e, unsigned flags, gnutls_certificate_credentials_t cred,
                     gnutls_priority_t prio)
{
    int ret = gnutls_init(&e->s, flags);

    if (ret == 0)
        ret = gnutls_priority_set(e->s, prio);
    if (ret == 0)
        ret = gnutls_credentials_set(e->s, GNUTLS_CRD_CERTIFICATE, cred);
    if (ret != 0)
        return ret;
    gnutls_transport_set_ptr(e->s, e);
    gnutls_transport_set_push_function(e->s, push);
    gnutls_transport_set_pull_function(e->s, pull);
    e->state = 1;
    return 0;
}

int gp_init(gp_pair *p, gnutls_certificate_credentials_t server_cred,
            gnutls_certificate_credentials_t client_cred, gnutls_priority_t server_prio,
            gnutls_priority_t client_prio, bool ask)
{
    int ret;

    memset(p, 0, sizeof(*p));
    p->client.in = &p->s2c;
    p->client.out = &p->c2s;
    p->server.in = &p->c2s;
    p->server.out = &p->s2c;
    ret = setup_end(&p->client, GNUTLS_CLIENT | (ask ? 0 : GNUTLS_NO_EXTENSIONS), client_cred,
                    client_prio);
    if (ret == 0)
        ret = setup_end(&p->server, GNUTLS_SERVER, server_cred, server_prio);
    if (ret == 0 && ask)
        ret = gnutls_ocsp_status_request_enable_client(p->client.s, NULL, 0, NULL);
    return ret;
}

static int step(gp_end *e)
{
    int ret;

    if (e->state != 1)
        return e->state;
    ret = gnutls_handshake(e->s);
    if (ret == 0)
        e->state = 0;
    else if (gnutls_error_is_fatal(ret))
        e->state = ret;
    return e->state;
}

int gp_step_client(gp_pair *p)
{
    return step(&p->client);
}

int gp_step_server(gp_pair *p)
{
    return step(&p->server);
}

int gp_run(gp_pair *p)
{
    for (int i = 0; i < 100 && (p->client.state == 1 || p->server.state == 1); i++) {
        gp_step_client(p);
        gp_step_server(p);
    }
    if (p->client.state < 0)
        return p->client.state;
    if (p->server.state < 0)
        return p->server.state;
    return p->client.state == 0 && p->server.state == 0 ? 0 : GNUTLS_E_TIMEDOUT;
}

void gp_deinit(gp_pair *p)
{
    if (p->client.s != NULL)
        gnutls_deinit(p->client.s);
    if (p->server.s != NULL)
        gnutls_deinit(p->server.s);
    p->client.s = p->server.s = NULL;
}
