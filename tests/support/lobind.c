/*
 * Preloaded into test peers that cannot be told which address to listen on
 * (openssl ocsp -port binds the wildcard address): rewrites a wildcard bind
 * to the loopback address, so nothing a test starts is reachable from
 * outside the machine.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

__attribute__((visibility("default"))) int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    static int (*real_bind)(int, const struct sockaddr *, socklen_t);
    struct sockaddr_in v4;
    struct sockaddr_in6 v6;

    if (real_bind == NULL)
        real_bind = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "bind");
    if (addr != NULL && addr->sa_family == AF_INET && len >= sizeof(v4)) {
        memcpy(&v4, addr, sizeof(v4));
        if (v4.sin_addr.s_addr == htonl(INADDR_ANY)) {
            v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            return real_bind(fd, (struct sockaddr *)&v4, sizeof(v4));
        }
    } else if (addr != NULL && addr->sa_family == AF_INET6 && len >= sizeof(v6)) {
        memcpy(&v6, addr, sizeof(v6));
        if (memcmp(&v6.sin6_addr, &in6addr_any, sizeof(in6addr_any)) == 0) {
            /* ::ffff:127.0.0.1 keeps accepting IPv4 clients on 127.0.0.1. */
            static const unsigned char mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0,
                                                     0, 0, 0xff, 0xff, 127, 0, 0, 1};
            memcpy(&v6.sin6_addr, mapped, 16);
            return real_bind(fd, (struct sockaddr *)&v6, sizeof(v6));
        }
    }
    return real_bind(fd, addr, len);
}
