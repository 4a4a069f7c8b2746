/*
 * Certificate stores: memory, a file (PEM certificates or one DER
 * certificate), and the system stores MY, CA, ROOT (any name) under
 * CERT_SYSTEM_STORE_CURRENT_USER and _LOCAL_MACHINE, which are directories
 * of PEM files that the operator configures:
 *
 *   $SRVOCSP_CERT_STORE_DIR (default /etc/srvocsp/certstores)
 *       LocalMachine/ROOT/  LocalMachine/CA/  LocalMachine/MY/
 *       CurrentUser/ROOT/   CurrentUser/CA/   CurrentUser/MY/
 *
 * The store name is upper-cased (Windows store names are case-
 * insensitive).  LocalMachine/ROOT, when that directory does not exist, is
 * the system's OpenSSL trust bundle, as the machine's root store is on
 * Windows.
 *
 * Lifetime as in crypt32: a store handle counts opens (CertOpenStore,
 * CertDuplicateStore, CertCloseStore); each certificate context of the
 * store keeps the store's memory alive, so a context outlives the close.
 */
#include "wincrypt/wincrypt_internal.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define STORE_MAGIC 0x53544f52u /* "STOR" */
#define DEFAULT_STORE_ROOT "/etc/srvocsp/certstores"

enum store_kind { K_MEMORY, K_FILE, K_SYSTEM };

struct srvocsp__win_store {
    uint32_t magic;              /* first: checked before anything else */
    atomic_uint opens;
    atomic_uint mem;             /* 1 while open, +1 per live context */
    pthread_mutex_t mu;
    srvocsp__win_cert **certs;   /* each holds a reference */
    size_t n, cap;
    enum store_kind kind;
    bool readonly;
    bool commit;                 /* file store: write back at close */
    char *path;                  /* file, or system store directory */
};

/* ---- helpers ---- */

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
static int read_cert_file(const char *path, STACK_OF(X509) *sk)
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
            (void)read_cert_file(path, sk); /* files that are not certificates are skipped */
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
static char *system_dir(DWORD location, const char *name)
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
static bool read_system(DWORD location, const char *name, const char *dir, STACK_OF(X509) *sk,
                        bool *exists)
{
    struct stat st;

    *exists = stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
    if (*exists)
        return read_cert_dir(dir, sk);
    if (location == CERT_SYSTEM_STORE_LOCAL_MACHINE && strcasecmp(name, "ROOT") == 0) {
        *exists = read_cert_file(X509_get_default_cert_file(), sk) > 0;
        ERR_clear_error();
    }
    return true;
}

bool srvocsp__win_system_collect(DWORD location, const char *name, STACK_OF(X509) *sk)
{
    char *dir = system_dir(location, name);
    bool exists, ok;

    if (dir == NULL)
        return false;
    ok = read_system(location, name, dir, sk, &exists);
    free(dir);
    return ok;
}

/* ---- the store object ---- */

srvocsp__win_store *srvocsp__win_store_of(HCERTSTORE h)
{
    srvocsp__win_store *s = (srvocsp__win_store *)h;

    return s != NULL && s->magic == STORE_MAGIC ? s : NULL;
}

void srvocsp__win_store_mem_ref(srvocsp__win_store *s)
{
    atomic_fetch_add(&s->mem, 1);
}

void srvocsp__win_store_mem_unref(srvocsp__win_store *s)
{
    if (atomic_fetch_sub(&s->mem, 1) != 1)
        return;
    s->magic = 0;
    pthread_mutex_destroy(&s->mu);
    free(s->certs);
    free(s->path);
    free(s);
}

static srvocsp__win_cert *find_thumbprint_locked(srvocsp__win_store *s, const unsigned char *sha1,
                                                 size_t *idx)
{
    size_t i;

    for (i = 0; i < s->n; i++)
        if (memcmp(s->certs[i]->sha1, sha1, 20) == 0) {
            *idx = i;
            return s->certs[i];
        }
    return NULL;
}

/* Appends a new context of |s| for |x|; returns it (borrowed) or NULL. */
static srvocsp__win_cert *append_locked(srvocsp__win_store *s, X509 *x)
{
    srvocsp__win_cert *c;

    if (s->n == SRVOCSP__WIN_MAX_STORE_CERTS)
        return NULL;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        srvocsp__win_cert **t = realloc(s->certs, cap * sizeof(*t));

        if (t == NULL)
            return NULL;
        s->certs = t;
        s->cap = cap;
    }
    c = srvocsp__win_cert_wrap(x, s);
    if (c != NULL)
        s->certs[s->n++] = c;
    return c;
}

static void sha1_hex(const unsigned char *sha1, char *out)
{
    static const char hex[] = "0123456789abcdef";
    int i;

    for (i = 0; i < 20; i++) {
        out[2 * i] = hex[sha1[i] >> 4];
        out[2 * i + 1] = hex[sha1[i] & 15];
    }
    out[40] = '\0';
}

/* mkdir -p |dir| (0755). */
static void make_dirs(const char *dir)
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
static DWORD write_pem(const char *path, X509 **certs, size_t n)
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

/* ---- CertOpenStore ---- */

static srvocsp__win_store *store_new(enum store_kind kind, DWORD flags)
{
    srvocsp__win_store *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    s->magic = STORE_MAGIC;
    atomic_init(&s->opens, 1);
    atomic_init(&s->mem, 1);
    pthread_mutex_init(&s->mu, NULL);
    s->kind = kind;
    s->readonly = (flags & CERT_STORE_READONLY_FLAG) != 0;
    return s;
}

/* Fills a new store from |sk| (consumed). */
static bool fill(srvocsp__win_store *s, STACK_OF(X509) *sk)
{
    bool ok = true;
    int i;

    for (i = 0; i < sk_X509_num(sk) && ok; i++) {
        size_t idx;
        unsigned char sha1[20], *der = NULL;
        int len = i2d_X509(sk_X509_value(sk, i), &der);

        /* A certificate present twice (two files) is one entry. */
        ok = len > 0;
        if (ok) {
            SHA1(der, (size_t)len, sha1);
            if (find_thumbprint_locked(s, sha1, &idx) == NULL)
                ok = append_locked(s, sk_X509_value(sk, i)) != NULL;
        }
        OPENSSL_free(der);
    }
    sk_X509_pop_free(sk, X509_free);
    return ok;
}

static char *para_string(const void *pvPara, bool wide)
{
    if (pvPara == NULL)
        return NULL;
    return wide ? srvocsp__win_wide_to_utf8((const WCHAR *)pvPara) : strdup((const char *)pvPara);
}

HCERTSTORE WINAPI CertOpenStore(LPCSTR lpszStoreProvider, DWORD dwEncodingType,
                                HCRYPTPROV_LEGACY hCryptProv, DWORD dwFlags, const void *pvPara)
{
    srvocsp__win_store *s = NULL;
    STACK_OF(X509) *sk = NULL;
    char *name = NULL;
    DWORD err = ERROR_SUCCESS;
    uintptr_t prov = (uintptr_t)lpszStoreProvider;
    bool wide = false, exists = false;

    (void)dwEncodingType; /* certificates are X.509 DER/PEM whatever it says */
    (void)hCryptProv;     /* no CSPs here */
    sk = sk_X509_new_null();
    if (sk == NULL) {
        err = ERROR_NOT_ENOUGH_MEMORY;
        goto out;
    }
    /* The provider is a small number cast to LPCSTR, or a name. */
    if (prov >= 0x10000 && strcmp(lpszStoreProvider, sz_CERT_STORE_PROV_MEMORY) == 0)
        prov = (uintptr_t)CERT_STORE_PROV_MEMORY;
    else if (prov >= 0x10000 && strcmp(lpszStoreProvider, sz_CERT_STORE_PROV_FILENAME) == 0)
        prov = (uintptr_t)CERT_STORE_PROV_FILENAME_W;
    else if (prov >= 0x10000 && strcmp(lpszStoreProvider, sz_CERT_STORE_PROV_SYSTEM) == 0)
        prov = (uintptr_t)CERT_STORE_PROV_SYSTEM_W;

    if (prov == (uintptr_t)CERT_STORE_PROV_MEMORY) {
        s = store_new(K_MEMORY, dwFlags);
        if (s == NULL)
            err = ERROR_NOT_ENOUGH_MEMORY;
        goto out;
    }
    if (prov == (uintptr_t)CERT_STORE_PROV_FILENAME_A ||
        prov == (uintptr_t)CERT_STORE_PROV_FILENAME_W) {
        int n;

        wide = prov == (uintptr_t)CERT_STORE_PROV_FILENAME_W;
        name = para_string(pvPara, wide);
        if (name == NULL || name[0] == '\0') {
            err = ERROR_INVALID_PARAMETER;
            goto out;
        }
        n = read_cert_file(name, sk);
        exists = n >= 0 || errno != ENOENT;
        if ((dwFlags & CERT_STORE_OPEN_EXISTING_FLAG) && !exists) {
            err = ERROR_FILE_NOT_FOUND;
        } else if ((dwFlags & CERT_STORE_CREATE_NEW_FLAG) && exists) {
            err = ERROR_FILE_EXISTS;
        } else if (exists && n < 0) {
            err = errno == EACCES ? ERROR_ACCESS_DENIED : ERROR_INVALID_PARAMETER;
        } else if (exists && n == 0) {
            err = CRYPT_E_ASN1_BADTAG; /* a file, but no certificate in it */
        } else if ((s = store_new(K_FILE, dwFlags)) == NULL) {
            err = ERROR_NOT_ENOUGH_MEMORY;
        } else {
            s->commit = (dwFlags & CERT_FILE_STORE_COMMIT_ENABLE_FLAG) != 0 && !s->readonly;
            s->path = name;
            name = NULL;
        }
        goto out;
    }
    if (prov == (uintptr_t)CERT_STORE_PROV_SYSTEM_A || prov == (uintptr_t)CERT_STORE_PROV_SYSTEM_W) {
        DWORD location = dwFlags & CERT_SYSTEM_STORE_LOCATION_MASK;
        char *dir;

        wide = prov == (uintptr_t)CERT_STORE_PROV_SYSTEM_W;
        name = para_string(pvPara, wide);
        dir = name ? system_dir(location, name) : NULL;
        if (dir == NULL) {
            err = name == NULL && pvPara != NULL ? ERROR_NOT_ENOUGH_MEMORY : ERROR_INVALID_PARAMETER;
            goto out;
        }
        if (!read_system(location, name, dir, sk, &exists)) {
            err = ERROR_ACCESS_DENIED;
            free(dir);
        } else if ((dwFlags & CERT_STORE_OPEN_EXISTING_FLAG) && !exists) {
            err = ERROR_FILE_NOT_FOUND;
            free(dir);
        } else if ((s = store_new(K_SYSTEM, dwFlags)) == NULL) {
            err = ERROR_NOT_ENOUGH_MEMORY;
            free(dir);
        } else {
            s->path = dir;
        }
        goto out;
    }
    err = ERROR_NOT_SUPPORTED;
out:
    if (s != NULL && err == ERROR_SUCCESS && !fill(s, sk)) {
        sk = NULL;
        err = ERROR_NOT_ENOUGH_MEMORY;
        CertCloseStore(s, 0);
        s = NULL;
    } else if (s != NULL && err == ERROR_SUCCESS) {
        sk = NULL; /* consumed */
    }
    sk_X509_pop_free(sk, X509_free);
    free(name);
    if (err != ERROR_SUCCESS)
        SetLastError(err);
    return (HCERTSTORE)s;
}

HCERTSTORE WINAPI CertOpenSystemStoreA(HCRYPTPROV_LEGACY hProv, LPCSTR szSubsystemProtocol)
{
    return CertOpenStore(CERT_STORE_PROV_SYSTEM_A, X509_ASN_ENCODING | PKCS_7_ASN_ENCODING, hProv,
                         CERT_SYSTEM_STORE_CURRENT_USER, szSubsystemProtocol);
}

HCERTSTORE WINAPI CertOpenSystemStoreW(HCRYPTPROV_LEGACY hProv, LPCWSTR szSubsystemProtocol)
{
    return CertOpenStore(CERT_STORE_PROV_SYSTEM_W, X509_ASN_ENCODING | PKCS_7_ASN_ENCODING, hProv,
                         CERT_SYSTEM_STORE_CURRENT_USER, szSubsystemProtocol);
}

HCERTSTORE WINAPI CertDuplicateStore(HCERTSTORE hCertStore)
{
    srvocsp__win_store *s = srvocsp__win_store_of(hCertStore);

    if (s != NULL)
        atomic_fetch_add(&s->opens, 1);
    return hCertStore;
}

BOOL WINAPI CertCloseStore(HCERTSTORE hCertStore, DWORD dwFlags)
{
    srvocsp__win_store *s = srvocsp__win_store_of(hCertStore);
    srvocsp__win_cert **certs;
    DWORD err = ERROR_SUCCESS;
    size_t n, i;
    BOOL ok = TRUE;

    if (hCertStore == NULL)
        return TRUE;
    if (s == NULL) {
        SetLastError(ERROR_INVALID_HANDLE);
        return FALSE;
    }
    if (atomic_fetch_sub(&s->opens, 1) != 1)
        return TRUE;
    pthread_mutex_lock(&s->mu);
    certs = s->certs;
    n = s->n;
    if (s->commit) {
        X509 **xs = n ? calloc(n, sizeof(*xs)) : NULL;

        if (n > 0 && xs == NULL) {
            err = ERROR_NOT_ENOUGH_MEMORY;
        } else {
            for (i = 0; i < n; i++)
                xs[i] = certs[i]->x509;
            err = write_pem(s->path, xs, n);
        }
        free(xs);
    }
    s->certs = NULL;
    s->n = s->cap = 0;
    pthread_mutex_unlock(&s->mu);
    for (i = 0; i < n; i++)
        CertFreeCertificateContext(&certs[i]->pub);
    free(certs);
    if (err != ERROR_SUCCESS) {
        SetLastError(err);
        ok = FALSE;
    } else if ((dwFlags & CERT_CLOSE_STORE_CHECK_FLAG) && atomic_load(&s->mem) > 1) {
        SetLastError(CRYPT_E_PENDING_CLOSE);
        ok = FALSE;
    }
    srvocsp__win_store_mem_unref(s);
    return ok;
}

/* ---- adding and finding ---- */

BOOL WINAPI CertAddCertificateContextToStore(HCERTSTORE hCertStore, PCCERT_CONTEXT pCertContext,
                                             DWORD dwAddDisposition,
                                             PCCERT_CONTEXT *ppStoreContext)
{
    srvocsp__win_store *s = srvocsp__win_store_of(hCertStore);
    srvocsp__win_cert *have, *added = NULL;
    X509 *x;
    unsigned char sha1[20];
    size_t idx = 0;
    DWORD err = ERROR_SUCCESS;

    if (ppStoreContext != NULL)
        *ppStoreContext = NULL;
    if (s == NULL || dwAddDisposition < CERT_STORE_ADD_NEW ||
        dwAddDisposition > CERT_STORE_ADD_NEWER_INHERIT_PROPERTIES ||
        (x = srvocsp__win_cert_x509(pCertContext)) == NULL) {
        SetLastError(s == NULL ? ERROR_INVALID_HANDLE : ERROR_INVALID_PARAMETER);
        return FALSE;
    }
    if (s->readonly) {
        X509_free(x);
        SetLastError(ERROR_ACCESS_DENIED);
        return FALSE;
    }
    SHA1(pCertContext->pbCertEncoded, pCertContext->cbCertEncoded, sha1);
    pthread_mutex_lock(&s->mu);
    have = find_thumbprint_locked(s, sha1, &idx);
    if (have != NULL) {
        switch (dwAddDisposition) {
        case CERT_STORE_ADD_NEW:
            err = CRYPT_E_EXISTS;
            break;
        case CERT_STORE_ADD_ALWAYS:
            added = append_locked(s, x);
            err = added ? ERROR_SUCCESS : ERROR_NOT_ENOUGH_MEMORY;
            break;
        case CERT_STORE_ADD_NEWER:
        case CERT_STORE_ADD_NEWER_INHERIT_PROPERTIES:
            /* The same thumbprint is the same certificate: not newer. */
            err = CRYPT_E_EXISTS;
            break;
        default: /* USE_EXISTING, REPLACE_EXISTING(_INHERIT_PROPERTIES): same bytes */
            added = have;
        }
    } else {
        added = append_locked(s, x);
        err = added ? ERROR_SUCCESS : ERROR_NOT_ENOUGH_MEMORY;
        if (added != NULL && s->kind == K_SYSTEM) {
            char hex[41], path[4200];

            sha1_hex(sha1, hex);
            make_dirs(s->path);
            if ((size_t)snprintf(path, sizeof(path), "%s/%s.pem", s->path, hex) >= sizeof(path))
                err = ERROR_INVALID_PARAMETER;
            else
                err = write_pem(path, &x, 1);
            if (err != ERROR_SUCCESS) {
                s->n--; /* not kept in memory either */
                CertFreeCertificateContext(&added->pub);
                added = NULL;
            }
        }
    }
    if (added != NULL && ppStoreContext != NULL)
        *ppStoreContext = CertDuplicateCertificateContext(&added->pub);
    pthread_mutex_unlock(&s->mu);
    X509_free(x);
    if (err != ERROR_SUCCESS) {
        SetLastError(err);
        return FALSE;
    }
    return TRUE;
}

typedef struct find_para {
    DWORD type;
    const void *para;
    char *str;                   /* the _STR_ types, UTF-8 */
} find_para;

static bool contains_nocase(const unsigned char *hay, size_t hlen, const char *needle)
{
    size_t nlen = strlen(needle), i, j;

    if (nlen == 0)
        return true;
    for (i = 0; i + nlen <= hlen; i++) {
        for (j = 0; j < nlen; j++)
            if (tolower(hay[i + j]) != tolower((unsigned char)needle[j]))
                break;
        if (j == nlen)
            return true;
    }
    return false;
}

/* Windows' NAME_STR match: the string within one of the attribute values. */
static bool name_has(const X509_NAME *name, const char *s)
{
    int i;

    for (i = 0; i < X509_NAME_entry_count(name); i++) {
        ASN1_STRING *v = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
        unsigned char *utf8 = NULL;
        int n = ASN1_STRING_to_UTF8(&utf8, v);
        bool hit = n >= 0 && contains_nocase(utf8, (size_t)n, s);

        OPENSSL_free(utf8);
        if (hit)
            return true;
    }
    ERR_clear_error();
    return false;
}

static bool blob_eq(const CERT_NAME_BLOB *a, const CERT_NAME_BLOB *b)
{
    return a->cbData == b->cbData && (a->cbData == 0 || memcmp(a->pbData, b->pbData, a->cbData) == 0);
}

static bool matches(const srvocsp__win_cert *c, const find_para *f)
{
    const CRYPT_HASH_BLOB *h;

    switch (f->type) {
    case CERT_FIND_ANY:
        return true;
    case CERT_FIND_SHA1_HASH:
        h = f->para;
        return h->cbData == 20 && memcmp(h->pbData, c->sha1, 20) == 0;
    case CERT_FIND_SUBJECT_STR_A:
    case CERT_FIND_SUBJECT_STR_W:
        return name_has(X509_get_subject_name(c->x509), f->str);
    case CERT_FIND_ISSUER_STR_A:
    case CERT_FIND_ISSUER_STR_W:
        return name_has(X509_get_issuer_name(c->x509), f->str);
    case CERT_FIND_SUBJECT_NAME:
        return blob_eq(&c->pub.pCertInfo->Subject, f->para);
    case CERT_FIND_ISSUER_NAME:
        return blob_eq(&c->pub.pCertInfo->Issuer, f->para);
    default:
        return false;
    }
}

/* The store's next context after |prev| matching |f| (a new reference),
 * or NULL.  |prev| is freed, as crypt32 does. */
static PCCERT_CONTEXT next_match(HCERTSTORE hCertStore, PCCERT_CONTEXT prev, const find_para *f)
{
    srvocsp__win_store *s = srvocsp__win_store_of(hCertStore);
    PCCERT_CONTEXT found = NULL;
    size_t i = 0;

    if (s == NULL) {
        CertFreeCertificateContext(prev);
        SetLastError(ERROR_INVALID_HANDLE);
        return NULL;
    }
    pthread_mutex_lock(&s->mu);
    if (prev != NULL) {
        for (i = 0; i < s->n && &s->certs[i]->pub != prev; i++)
            ;
        i++; /* after it; a context not in the store ends the walk */
    }
    for (; i < s->n; i++)
        if (matches(s->certs[i], f)) {
            found = CertDuplicateCertificateContext(&s->certs[i]->pub);
            break;
        }
    pthread_mutex_unlock(&s->mu);
    CertFreeCertificateContext(prev);
    if (found == NULL)
        SetLastError(CRYPT_E_NOT_FOUND);
    return found;
}

PCCERT_CONTEXT WINAPI CertEnumCertificatesInStore(HCERTSTORE hCertStore,
                                                  PCCERT_CONTEXT pPrevCertContext)
{
    find_para f = {CERT_FIND_ANY, NULL, NULL};

    return next_match(hCertStore, pPrevCertContext, &f);
}

PCCERT_CONTEXT WINAPI CertFindCertificateInStore(HCERTSTORE hCertStore, DWORD dwCertEncodingType,
                                                 DWORD dwFindFlags, DWORD dwFindType,
                                                 const void *pvFindPara,
                                                 PCCERT_CONTEXT pPrevCertContext)
{
    find_para f = {dwFindType, pvFindPara, NULL};
    PCCERT_CONTEXT found;

    (void)dwCertEncodingType;
    (void)dwFindFlags; /* only meaningful for find types not offered here */
    switch (dwFindType) {
    case CERT_FIND_ANY:
        break;
    case CERT_FIND_SHA1_HASH:
    case CERT_FIND_SUBJECT_NAME:
    case CERT_FIND_ISSUER_NAME:
        if (pvFindPara == NULL)
            goto invalid;
        break;
    case CERT_FIND_SUBJECT_STR_A:
    case CERT_FIND_ISSUER_STR_A:
    case CERT_FIND_SUBJECT_STR_W:
    case CERT_FIND_ISSUER_STR_W:
        if (pvFindPara == NULL)
            goto invalid;
        f.str = para_string(pvFindPara, dwFindType == CERT_FIND_SUBJECT_STR_W ||
                                            dwFindType == CERT_FIND_ISSUER_STR_W);
        if (f.str == NULL)
            goto invalid;
        break;
    default:
        goto invalid;
    }
    found = next_match(hCertStore, pPrevCertContext, &f);
    free(f.str);
    return found;
invalid:
    CertFreeCertificateContext(pPrevCertContext);
    SetLastError(E_INVALIDARG);
    return NULL;
}

bool srvocsp__win_store_collect(srvocsp__win_store *s, STACK_OF(X509) *sk)
{
    bool ok = true;
    size_t i;

    pthread_mutex_lock(&s->mu);
    for (i = 0; i < s->n && ok; i++) {
        X509_up_ref(s->certs[i]->x509);
        ok = sk_X509_push(sk, s->certs[i]->x509) > 0;
        if (!ok)
            X509_free(s->certs[i]->x509);
    }
    pthread_mutex_unlock(&s->mu);
    return ok;
}
