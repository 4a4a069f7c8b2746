/*
 * The directory store: one file per certificate, <name>.der.  A save writes
 * a temporary file in the same directory, fsyncs it, renames it over the
 * old one and fsyncs the directory, so a reader (or a crash) sees the old
 * file or the new one, never a part.
 *
 * A writer killed between creating its temporary file and renaming it
 * leaves the temporary behind.  The first store of a process for a
 * directory removes such leftovers: names of the temporary form older than
 * SWEEP_AGE_S (a write takes milliseconds; the age, not a process id, is
 * the test, since the processes sharing a directory may be on other hosts).
 *
 * Processes sharing a directory take a lease (an flock on .<name>.lock)
 * before they ask the responder, so one of them fetches and the others,
 * finding it held, pick up its save a moment later.
 */
#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SWEEP_AGE_S 600
#define SWEPT_MAX 64

typedef struct dir_store {
    srvocsp__store base;
    char *dir;
} dir_store;

bool srvocsp__store_name(X509 *leaf, X509 *issuer, char *out)
{
    unsigned char keyhash[EVP_MAX_MD_SIZE];
    unsigned int klen = 0;

    return X509_pubkey_digest(issuer, EVP_sha256(), keyhash, &klen) == 1 && klen == 32 &&
           srvocsp__store_name_from(keyhash, leaf, out);
}

bool srvocsp__store_name_from(const unsigned char issuer_key_sha256[32], X509 *leaf, char *out)
{
    static const char hex[] = "0123456789abcdef";
    const ASN1_INTEGER *serial = X509_get0_serialNumber(leaf);
    unsigned char buf[32 + 64], md[32];
    unsigned int mlen = 0, i;
    int sl = ASN1_STRING_length(serial);
    EVP_MD_CTX *ctx = NULL;
    bool ok;

    /* SHA-256 of the issuer's key hash and the serial's bytes: one call
     * for the serials of conforming certificates (20 bytes at most). */
    if (sl < 0)
        return false;
    if ((size_t)sl <= sizeof(buf) - 32) {
        memcpy(buf, issuer_key_sha256, 32);
        memcpy(buf + 32, ASN1_STRING_get0_data(serial), (size_t)sl);
        ok = EVP_Digest(buf, 32 + (size_t)sl, md, &mlen, EVP_sha256(), NULL) == 1;
    } else {
        ok = (ctx = EVP_MD_CTX_new()) != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
             EVP_DigestUpdate(ctx, issuer_key_sha256, 32) == 1 &&
             EVP_DigestUpdate(ctx, ASN1_STRING_get0_data(serial), (size_t)sl) == 1 &&
             EVP_DigestFinal_ex(ctx, md, &mlen) == 1;
        EVP_MD_CTX_free(ctx);
    }
    if (!ok || mlen != 32)
        return false;
    for (i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
    return true;
}

static void path_of(const dir_store *d, const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s.der", d->dir, name);
}

/* Size, inode and modification time in nanoseconds, folded: changes when
 * another process renames a new file into place. */
static uint64_t version_of(const struct stat *st)
{
    uint64_t v = (uint64_t)st->st_ino * 0x9E3779B97F4A7C15ULL;

    v ^= (uint64_t)st->st_mtim.tv_sec * 1000000000ULL + (uint64_t)st->st_mtim.tv_nsec;
    v ^= (uint64_t)st->st_size << 40;
    return v ? v : 1;
}

static srvocsp_error dir_load(srvocsp__store *s, const char *name, size_t cap, unsigned char **der,
                              size_t *len, uint64_t *version, char *why, size_t whylen)
{
    dir_store *d = (dir_store *)s;
    char path[4096];
    struct stat st;
    unsigned char *buf = NULL;
    ssize_t n;
    size_t got = 0;
    int fd;

    *der = NULL;
    path_of(d, name, path, sizeof(path));
    /* O_NOFOLLOW: a symlink planted where the file should be is refused. */
    fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0 && errno == ENOENT) {
        *len = 0;
        *version = 0;
        return SRVOCSP_OK; /* nothing stored yet */
    }
    if (fd < 0) {
        srvocsp__fmt(why, whylen, "%s: %s", path,
                     errno == ELOOP ? "is a symbolic link" : strerror(errno));
        return SRVOCSP_E_STORE;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        srvocsp__fmt(why, whylen, "%s: not a regular file", path);
        close(fd);
        return SRVOCSP_E_STORE;
    }
    if (st.st_size <= 0 || (uint64_t)st.st_size > cap) {
        srvocsp__fmt(why, whylen, "%s: size %lld outside 1..%zu bytes", path,
                     (long long)st.st_size, cap);
        close(fd);
        return SRVOCSP_E_STORE;
    }
    buf = srvocsp__malloc((size_t)st.st_size);
    if (buf == NULL) {
        close(fd);
        srvocsp__fmt(why, whylen, "out of memory");
        return SRVOCSP_E_NOMEM;
    }
    while (got < (size_t)st.st_size &&
           ((n = read(fd, buf + got, (size_t)st.st_size - got)) > 0 || (n < 0 && errno == EINTR)))
        if (n > 0)
            got += (size_t)n;
    close(fd);
    if (got != (size_t)st.st_size) {
        free(buf);
        srvocsp__fmt(why, whylen, "%s: short read", path);
        return SRVOCSP_E_STORE;
    }
    *der = buf;
    *len = got;
    *version = version_of(&st);
    return SRVOCSP_OK;
}

static uint64_t dir_version(srvocsp__store *s, const char *name)
{
    char path[4096];
    struct stat st;

    path_of((dir_store *)s, name, path, sizeof(path));
    if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return 0;
    return version_of(&st);
}

static srvocsp_error dir_save(srvocsp__store *s, const char *name, const unsigned char *der,
                              size_t len, int *err_no, char *why, size_t whylen)
{
    dir_store *d = (dir_store *)s;
    char path[4096];

    path_of(d, name, path, sizeof(path));
    *err_no = srvocsp__write_file_atomic(path, der, len);
    if (*err_no == ENOENT && mkdir(d->dir, 0755) == 0) /* removed meanwhile */
        *err_no = srvocsp__write_file_atomic(path, der, len);
    if (*err_no == 0)
        return SRVOCSP_OK;
    srvocsp__fmt(why, whylen, "cannot write %s: %s", path, strerror(*err_no));
    return SRVOCSP_E_STORE;
}

static void dir_free(srvocsp__store *s)
{
    dir_store *d = (dir_store *)s;

    if (d == NULL)
        return;
    free(d->dir);
    free(d);
}

/* The lease is an flock on ".<name>.lock" beside the response: held by an
 * open file description, given back explicitly (a forked child's copy of
 * the descriptor then holds nothing) or by the kernel when the holder dies. */
static int dir_lease(srvocsp__store *s, const char *name, int *token)
{
    const dir_store *d = (const dir_store *)s;
    char path[4096];
    int fd, busy;

    if ((size_t)snprintf(path, sizeof(path), "%s/.%s.lock", d->dir, name) >= sizeof(path))
        return -1;
    /* Read-only is enough for flock, and lets processes of another user
     * (a server's workers) use a lock file its master created. */
    fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return -1;
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
        *token = fd;
        return 1;
    }
    busy = errno == EWOULDBLOCK;
    close(fd);
    return busy ? 0 : -1;
}

static void dir_unlease(srvocsp__store *s, int token)
{
    (void)s;
    flock(token, LOCK_UN);
    close(token);
}

static const srvocsp__store_ops dir_ops = {
    .load = dir_load,
    .version = dir_version,
    .save = dir_save,
    .free = dir_free,
    .lease = dir_lease,
    .unlease = dir_unlease,
};

/* Directories already swept by this process; opening 10,000 handles on
 * one directory sweeps it once.  Past SWEPT_MAX directories, no more
 * sweeps (leftovers are harmless, only untidy). */
static pthread_mutex_t g_swept_mu = PTHREAD_MUTEX_INITIALIZER;
static char *g_swept[SWEPT_MAX];
static int g_n_swept;

static pthread_once_t g_atfork_once = PTHREAD_ONCE_INIT;

static void swept_lock(void)
{
    pthread_mutex_lock(&g_swept_mu);
}

static void swept_unlock(void)
{
    pthread_mutex_unlock(&g_swept_mu);
}

/* A fork while another thread holds the lock must not leave it locked in
 * the child. */
static void register_atfork(void)
{
    (void)pthread_atfork(swept_lock, swept_unlock, swept_unlock);
}

/* Whether |dir| is new to this process (and is now remembered). */
static bool first_visit(const char *dir)
{
    bool first = false;
    char *copy;
    int i;

    pthread_once(&g_atfork_once, register_atfork);
    pthread_mutex_lock(&g_swept_mu);
    for (i = 0; i < g_n_swept; i++)
        if (strcmp(g_swept[i], dir) == 0)
            break;
    if (i == g_n_swept && g_n_swept < SWEPT_MAX && (copy = strdup(dir)) != NULL) {
        g_swept[g_n_swept++] = copy;
        first = true;
    }
    pthread_mutex_unlock(&g_swept_mu);
    return first;
}

size_t srvocsp__store_dir_sweep(const char *dir, int64_t now)
{
    DIR *dh = opendir(dir);
    struct dirent *de;
    size_t removed = 0;

    if (dh == NULL)
        return 0;
    while ((de = readdir(dh)) != NULL) {
        const char *infix = strstr(de->d_name, SRVOCSP__TMP_INFIX);
        struct stat st;

        if (de->d_name[0] != '.' || infix == NULL ||
            strlen(infix) != strlen(SRVOCSP__TMP_INFIX) + 6 ||
            fstatat(dirfd(dh), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode) ||
            now - (int64_t)st.st_mtime < SWEEP_AGE_S)
            continue;
        if (unlinkat(dirfd(dh), de->d_name, 0) == 0)
            removed++;
    }
    closedir(dh);
    return removed;
}

void srvocsp__store_dir_forget_sweeps(void)
{
    int i;

    pthread_mutex_lock(&g_swept_mu);
    for (i = 0; i < g_n_swept; i++)
        free(g_swept[i]);
    g_n_swept = 0;
    pthread_mutex_unlock(&g_swept_mu);
}

srvocsp__store *srvocsp__store_dir_new(const char *dir)
{
    dir_store *d;

    if (dir == NULL || *dir == '\0' || strlen(dir) > 3000) {
        srvocsp__set_error(SRVOCSP_E_INVALID_ARG, "persistence directory name is empty or too long");
        return NULL;
    }
    /* A directory that cannot be created now is not fatal: serving goes on
     * from memory and every save reports why it failed.  Made or found
     * (and swept) at the first open of a process only: a save that finds
     * it removed since makes it again (dir_save), and 100,000 opens spare
     * a mkdir each.  A new directory has nothing to sweep. */
    if (first_visit(dir) && mkdir(dir, 0755) != 0)
        (void)srvocsp__store_dir_sweep(dir, (int64_t)time(NULL));
    d = srvocsp__calloc(1, sizeof(*d));
    if (d == NULL || (d->dir = srvocsp__strdup(dir)) == NULL) {
        free(d);
        srvocsp__set_error(SRVOCSP_E_NOMEM, NULL);
        return NULL;
    }
    d->base.ops = &dir_ops;
    return &d->base;
}
