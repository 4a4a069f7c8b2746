/* Replacing a file so that a reader or a crash sees the old or the new
 * content, never a part: temporary file in the same directory, fsync,
 * rename over the old one, fsync of the directory.  The temporary name is
 * unique per writer (mkostemp), so two writers of one file in one process,
 * or in two sharing a directory, never write into each other's; one
 * complete file wins.  Temporary names are ".<file>.tmp.XXXXXX"
 * (SRVOCSP__TMP_INFIX): a crash between create and rename leaves one
 * behind, which the directory store sweeps (store_dir.c). */
#define _GNU_SOURCE /* mkostemp */
#include "internal.h"

#include <openssl/err.h>
#include <openssl/pem.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s/.%s" SRVOCSP__TMP_INFIX "XXXXXX", dir,
                         slash ? slash + 1 : path) >= sizeof(tmp))
        return ENAMETOOLONG;
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return errno;
    /* mkostemp creates 0600; the file is meant to be readable like any
     * file the server would read. */
    if (fchmod(fd, 0644) != 0) {
        err = errno;
        close(fd);
        unlink(tmp);
        return err;
    }
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

srvocsp_error srvocsp__read_pem_certs(const char *path, STACK_OF(X509) *sk)
{
    FILE *f = fopen(path, "r");
    X509 *x;
    int n = 0;

    if (f == NULL) {
        srvocsp__set_error(SRVOCSP_E_CERT, "%s: cannot open the file", path);
        return SRVOCSP_E_CERT;
    }
    while (n < SRVOCSP__PEM_CERTS_MAX && (x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
        if (!sk_X509_push(sk, x)) {
            X509_free(x);
            fclose(f);
            srvocsp__set_error(SRVOCSP_E_NOMEM, NULL);
            return SRVOCSP_E_NOMEM;
        }
        n++;
    }
    ERR_clear_error();
    fclose(f);
    if (n == 0) {
        srvocsp__set_error(SRVOCSP_E_CERT, "%s: no PEM certificate in the file", path);
        return SRVOCSP_E_CERT;
    }
    return SRVOCSP_OK;
}
