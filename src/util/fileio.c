/* Replacing a file so that a reader or a crash sees the old or the new
 * content, never a part: temporary file in the same directory, fsync,
 * rename over the old one, fsync of the directory. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int srvocsp__write_file_atomic(const char *path, const unsigned char *data, size_t len)
{
    char tmp[4200], dir[4096];
    const char *slash = strrchr(path, '/');
    size_t done = 0;
    int fd, dfd, err = 0;

    if (slash != NULL)
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    else
        snprintf(dir, sizeof(dir), ".");
    if (slash == path)
        snprintf(dir, sizeof(dir), "/");
    snprintf(tmp, sizeof(tmp), "%s/.%s.%ld.tmp", dir, slash ? slash + 1 : path, (long)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return errno;
    while (done < len) {
        ssize_t n = write(fd, data + done, len - done);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            err = n == 0 ? EIO : errno;
            break;
        }
        done += (size_t)n;
    }
    if (err == 0 && fsync(fd) != 0)
        err = errno;
    if (close(fd) != 0 && err == 0)
        err = errno;
    if (err == 0 && rename(tmp, path) != 0)
        err = errno;
    if (err != 0) {
        unlink(tmp);
        return err;
    }
    /* The rename itself must survive a crash too. */
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}
