/*
 * Certificates on disk: reading a file (PEM, or one DER certificate) or a
 * directory of them, writing PEM atomically, and where the system stores
 * live:
 *
 *   $SRVOCSP_CERT_STORE_DIR (default /etc/srvocsp/certstores)
 *       LocalMachine/ROOT/  LocalMachine/CA/  LocalMachine/MY/
 *       CurrentUser/ROOT/   CurrentUser/CA/   CurrentUser/MY/
 *
 * The store name is upper-cased (Windows store names are case-
 * insensitive).  LocalMachine/ROOT, when that directory does not exist, is
 * the system's OpenSSL trust bundle, as the machine's root store is on
 * Windows.
 */
#include "wincrypt/wincrypt_internal.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_STORE_ROOT "/etc/srvocsp/certstores"

char *srvocsp__win_wide_to_utf8(const WCHAR *w)
{
    size_t n = wcslen(w), i, o = 0;
    char *out = malloc(4 * n + 1);

    if (out == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        uint32_t c = (uint32_t)w[i];

        if (c >= 0xD800 && c <= 0xDFFF) {
            free(out);
            return NULL;
        }
        if (c < 0x80) {
            out[o++] = (char)c;
        } else if (c < 0x800) {
            out[o++] = (char)(0xC0 | (c >> 6));
            out[o++] = (char)(0x80 | (c & 0x3F));
        } else if (c < 0x10000) {
            out[o++] = (char)(0xE0 | (c >> 12));
            out[o++] = (char)(0x80 | ((c >> 6) & 0x3F));
            out[o++] = (char)(0x80 | (c & 0x3F));
        } else if (c <= 0x10FFFF) {
            out[o++] = (char)(0xF0 | (c >> 18));
            out[o++] = (char)(0x80 | ((c >> 12) & 0x3F));
            out[o++] = (char)(0x80 | ((c >> 6) & 0x3F));
            out[o++] = (char)(0x80 | (c & 0x3F));
        } else {
            free(out);
            return NULL;
        }
    }
    out[o] = '\0';
    return out;
}

/* Reads the certificates of one file (PEM, any number; else one DER) onto
 * |sk|.  Returns how many, 0 when the file holds none, -1 when it cannot
 * be read (errno set) or is over the cap. */
int srvocsp__win_read_cert_file(const char *path, STACK_OF(X509) *sk)
{
    struct stat st;
    BIO *bio = NULL;
    X509 *x;
    int n = 0;

    if (stat(path, &st) != 0)
        return -1;
    if (!S_ISREG(st.st_mode) || st.st_size > (off_t)SRVOCSP__WIN_MAX_FILE) {
        errno = EFBIG;
        return -1;
    }
    bio = BIO_new_file(path, "rb");
    if (bio == NULL) {
        ERR_clear_error();
        return -1;
    }
    while (sk_X509_num(sk) < SRVOCSP__WIN_MAX_STORE_CERTS &&
           (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        if (!sk_X509_push(sk, x)) {
            X509_free(x);
            break;
        }
        n++;
    }
    ERR_clear_error();
    if (n == 0 && BIO_reset(bio) == 0 && (x = d2i_X509_bio(bio, NULL)) != NULL) {
        if (sk_X509_push(sk, x))
            n = 1;
        else
            X509_free(x);
    }
    ERR_clear_error();
    BIO_free(bio);
    return n;
}

/* Every file of a directory, in name order (stable enumeration). */
static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool read_cert_dir(const char *dir, STACK_OF(X509) *sk)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char **names = NULL, path[4096];
    size_t n = 0, cap = 0, i;
    bool ok = true;

    if (d == NULL)
        return errno == ENOENT;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue; /* hidden and temporary files */
        if (n == cap) {
            char **t = realloc(names, (cap = cap ? cap * 2 : 32) * sizeof(*t));

            if (t == NULL) {
                ok = false;
                break;
            }
            names = t;
        }
        if ((names[n] = strdup(de->d_name)) == NULL) {
            ok = false;
            break;
        }
        n++;
    }
    closedir(d);
    if (ok)
        qsort(names, n, sizeof(*names), name_cmp);
    for (i = 0; i < n; i++) {
        if (ok && (size_t)snprintf(path, sizeof(path), "%s/%s", dir, names[i]) < sizeof(path))
            /* files that are not certificates are skipped */
            (void)srvocsp__win_read_cert_file(path, sk);
        free(names[i]);
    }
    free(names);
    return ok;
}

static const char *store_root(void)
{
    const char *r = getenv("SRVOCSP_CERT_STORE_DIR");

    return r != NULL && r[0] != '\0' ? r : DEFAULT_STORE_ROOT;
}

/* The directory of a system store, malloc'd; NULL for an unknown location
 * or a name that is not a plain directory name. */
char *srvocsp__win_system_dir(DWORD location, const char *name)
{
    const char *loc = location == CERT_SYSTEM_STORE_CURRENT_USER    ? "CurrentUser"
                      : location == CERT_SYSTEM_STORE_LOCAL_MACHINE ? "LocalMachine"
                                                                    : NULL;
    size_t len, i;
    char *out;

    if (loc == NULL || name == NULL || name[0] == '\0' || strchr(name, '/') != NULL ||
        strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return NULL;
    len = strlen(store_root()) + strlen(loc) + strlen(name) + 3;
    out = malloc(len);
    if (out == NULL)
        return NULL;
    snprintf(out, len, "%s/%s/", store_root(), loc);
    for (i = strlen(out); *name; name++)
        out[i++] = (char)toupper((unsigned char)*name);
    out[i] = '\0';
    return out;
}

/* The certificates of a system store's directory; LocalMachine ROOT falls
 * back to the OpenSSL trust bundle when its directory does not exist. */
bool srvocsp__win_read_system(DWORD location, const char *name, const char *dir,
                              STACK_OF(X509) *sk, bool *exists)
{
    struct stat st;

    *exists = stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
    if (*exists)
        return read_cert_dir(dir, sk);
    if (location == CERT_SYSTEM_STORE_LOCAL_MACHINE && strcasecmp(name, "ROOT") == 0) {
        *exists = srvocsp__win_read_cert_file(X509_get_default_cert_file(), sk) > 0;
        ERR_clear_error();
    }
    return true;
}

bool srvocsp__win_system_collect(DWORD location, const char *name, STACK_OF(X509) *sk)
{
    char *dir = srvocsp__win_system_dir(location, name);
    bool exists, ok;

    if (dir == NULL)
        return false;
    ok = srvocsp__win_read_system(location, name, dir, sk, &exists);
    free(dir);
    return ok;
}

/* mkdir -p |dir| (0755). */
void srvocsp__win_make_dirs(const char *dir)
{
    char buf[4096];
    size_t i;

    if (strlen(dir) >= sizeof(buf))
        return;
    strcpy(buf, dir);
    for (i = 1; buf[i] != '\0'; i++)
        if (buf[i] == '/') {
            buf[i] = '\0';
            mkdir(buf, 0755);
            buf[i] = '/';
        }
    mkdir(buf, 0755);
}

/* Writes |certs| as PEM to |path| through a temporary file and rename. */
DWORD srvocsp__win_write_pem(const char *path, X509 **certs, size_t n)
{
    char tmp[4200];
    FILE *f;
    size_t i;
    int fd;
    bool ok = true;

    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= sizeof(tmp))
        return ERROR_INVALID_PARAMETER;
    fd = mkstemp(tmp);
    if (fd < 0)
        return errno == EACCES || errno == EPERM ? ERROR_ACCESS_DENIED : ERROR_PATH_NOT_FOUND;
    f = fdopen(fd, "w");
    if (f == NULL) {
        close(fd);
        unlink(tmp);
        return ERROR_WRITE_FAULT;
    }
    for (i = 0; i < n && ok; i++)
        ok = PEM_write_X509(f, certs[i]) == 1;
    ERR_clear_error();
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (fclose(f) != 0 || !ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return ERROR_WRITE_FAULT;
    }
    chmod(path, 0644); /* mkstemp made it 0600; certificates are public */
    return ERROR_SUCCESS;
}
