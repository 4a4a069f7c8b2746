/*
 * systemd's readiness protocol for `srvocsp watch` under Type=notify: one
 * datagram per state change to $NOTIFY_SOCKET.  libsystemd's sd_notify when
 * the build found it, else the protocol itself (a datagram of "KEY=value"
 * lines on an AF_UNIX socket; a leading '@' names an abstract socket), which
 * is all sd_notify does for these messages.  Without $NOTIFY_SOCKET (not
 * started by systemd, or Type=simple) nothing is sent.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "watch.h"

#ifdef SRVOCSP_HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>

int wnotify(const char *state)
{
    /* 0 keeps $NOTIFY_SOCKET for the later READY/RELOADING/STOPPING. */
    int r = sd_notify(0, state);

    return r < 0 ? -r : 0;
}
#else
int wnotify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa;
    size_t n;
    socklen_t salen;
    int fd, rc = 0;

    if (path == NULL || path[0] == '\0')
        return 0;
    n = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || n >= sizeof(sa.sun_path))
        return EINVAL;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, n);
    if (path[0] == '@')
        sa.sun_path[0] = '\0'; /* abstract namespace: no terminating NUL counted */
    salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (path[0] == '/'));
    if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
        return errno;
    if (sendto(fd, state, strlen(state), MSG_NOSIGNAL | MSG_DONTWAIT, (struct sockaddr *)&sa, salen) < 0)
        rc = errno;
    close(fd);
    return rc;
}
#endif
