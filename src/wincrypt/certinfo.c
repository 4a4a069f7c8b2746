/*
 * CERT_INFO decoded from a certificate the way crypt32 fills it: serial
 * number little-endian (the DER content octets reversed, sign byte
 * included), names and algorithm parameters as DER, times as FILETIME
 * (100 ns since 1601), the public key as a bit string, extensions with
 * their DER values.
 */
#include "wincrypt/wincrypt_internal.h"

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct srvocsp__win_arena {
    srvocsp__win_arena *next;
    max_align_t data[];
};

void *srvocsp__win_arena_alloc(srvocsp__win_arena **a, size_t n)
{
    srvocsp__win_arena *b = calloc(1, sizeof(*b) + (n ? n : 1));

    if (b == NULL)
        return NULL;
    b->next = *a;
    *a = b;
    return b->data;
}

void srvocsp__win_arena_free(srvocsp__win_arena *a)
{
    while (a != NULL) {
        srvocsp__win_arena *next = a->next;

        free(a);
        a = next;
    }
}

static BYTE *arena_copy(srvocsp__win_arena **a, const void *p, size_t n)
{
    BYTE *d = srvocsp__win_arena_alloc(a, n);

    if (d != NULL && n > 0)
        memcpy(d, p, n);
    return d;
}

/* 1601-01-01 to 1970-01-01 in seconds. */
#define EPOCH_DIFF_S 11644473600LL

FILETIME srvocsp__win_filetime(int64_t unix_s)
{
    FILETIME ft;
    uint64_t t = unix_s < -EPOCH_DIFF_S ? 0 : (uint64_t)(unix_s + EPOCH_DIFF_S) * 10000000ULL;

    ft.dwLowDateTime = (DWORD)(t & 0xFFFFFFFFu);
    ft.dwHighDateTime = (DWORD)(t >> 32);
    return ft;
}

static FILETIME asn1_filetime(const ASN1_TIME *t)
{
    struct tm tm;

    memset(&tm, 0, sizeof(tm));
    if (t == NULL || !ASN1_TIME_to_tm(t, &tm))
        return srvocsp__win_filetime(0);
    return srvocsp__win_filetime((int64_t)timegm(&tm));
}

/* The content octets of a DER TLV at |p| (|len| bytes available): sets
 * |*content| and |*clen|, returns the TLV's total length or 0. */
static size_t der_tlv(const unsigned char *p, size_t len, const unsigned char **content,
                      size_t *clen)
{
    size_t hdr = 2, n, i;

    if (len < 2)
        return 0;
    n = p[1];
    if (n & 0x80) {
        size_t k = n & 0x7F;

        if (k == 0 || k > 4 || len < 2 + k)
            return 0;
        for (n = 0, i = 0; i < k; i++)
            n = (n << 8) | p[2 + i];
        hdr += k;
    }
    if (n > len - hdr)
        return 0;
    *content = p + hdr;
    *clen = n;
    return hdr + n;
}

bool srvocsp__win_serial_blob(const ASN1_INTEGER *serial, srvocsp__win_arena **arena,
                              CRYPT_INTEGER_BLOB *out)
{
    unsigned char *der = NULL;
    const unsigned char *c;
    size_t clen, i;
    int len = i2d_ASN1_INTEGER(serial, &der);
    bool ok = false;

    memset(out, 0, sizeof(*out));
    if (len > 0 && der_tlv(der, (size_t)len, &c, &clen) != 0 &&
        (out->pbData = srvocsp__win_arena_alloc(arena, clen)) != NULL) {
        for (i = 0; i < clen; i++)
            out->pbData[i] = c[clen - 1 - i]; /* least significant byte first */
        out->cbData = (DWORD)clen;
        ok = true;
    }
    OPENSSL_free(der);
    return ok;
}

bool srvocsp__win_name_blob(const X509_NAME *name, srvocsp__win_arena **arena,
                            CERT_NAME_BLOB *out)
{
    const unsigned char *der = NULL;
    size_t len = 0;

    memset(out, 0, sizeof(*out));
    if (name == NULL || !X509_NAME_get0_der((X509_NAME *)(uintptr_t)name, &der, &len))
        return false;
    out->pbData = arena_copy(arena, der, len);
    out->cbData = (DWORD)len;
    return out->pbData != NULL;
}

static LPSTR oid_string(const ASN1_OBJECT *obj, srvocsp__win_arena **arena)
{
    char buf[128];
    int n = OBJ_obj2txt(buf, sizeof(buf), obj, 1);

    if (n <= 0 || (size_t)n >= sizeof(buf))
        return NULL;
    return (LPSTR)arena_copy(arena, buf, (size_t)n + 1);
}

/* AlgorithmIdentifier ::= SEQUENCE { algorithm OID, parameters ANY OPTIONAL } */
bool srvocsp__win_algorithm(const X509_ALGOR *alg, srvocsp__win_arena **arena,
                            CRYPT_ALGORITHM_IDENTIFIER *out)
{
    const ASN1_OBJECT *obj = NULL;
    unsigned char *der = NULL;
    const unsigned char *seq, *oid;
    size_t seqlen, oidlen, used;
    int len;
    bool ok = false;

    memset(out, 0, sizeof(*out));
    if (alg == NULL)
        return false;
    X509_ALGOR_get0(&obj, NULL, NULL, alg);
    if ((out->pszObjId = oid_string(obj, arena)) == NULL)
        return false;
    len = i2d_X509_ALGOR(alg, &der);
    if (len > 0 && der_tlv(der, (size_t)len, &seq, &seqlen) != 0 &&
        (used = der_tlv(seq, seqlen, &oid, &oidlen)) != 0) {
        out->Parameters.cbData = (DWORD)(seqlen - used);
        out->Parameters.pbData = arena_copy(arena, seq + used, seqlen - used);
        ok = out->Parameters.pbData != NULL;
    }
    OPENSSL_free(der);
    return ok;
}

static bool bit_blob(const ASN1_BIT_STRING *bs, srvocsp__win_arena **arena, CRYPT_BIT_BLOB *out)
{
    memset(out, 0, sizeof(*out));
    if (bs == NULL)
        return true;
    out->pbData = arena_copy(arena, ASN1_STRING_get0_data(bs), (size_t)ASN1_STRING_length(bs));
    out->cbData = (DWORD)ASN1_STRING_length(bs);
    /* DER keeps the unused-bit count in the flags of an OpenSSL bit string. */
    out->cUnusedBits = (bs->flags & ASN1_STRING_FLAG_BITS_LEFT) ? (DWORD)(bs->flags & 0x07) : 0;
    return out->pbData != NULL;
}

static bool public_key_info(X509 *x, srvocsp__win_arena **arena, CERT_PUBLIC_KEY_INFO *out)
{
    X509_PUBKEY *pk = X509_get_X509_PUBKEY(x);
    X509_ALGOR *alg = NULL;
    const unsigned char *key = NULL;
    int klen = 0;

    memset(out, 0, sizeof(*out));
    if (pk == NULL || !X509_PUBKEY_get0_param(NULL, &key, &klen, &alg, pk) ||
        !srvocsp__win_algorithm(alg, arena, &out->Algorithm))
        return false;
    out->PublicKey.pbData = arena_copy(arena, key, (size_t)klen);
    out->PublicKey.cbData = (DWORD)klen;
    out->PublicKey.cUnusedBits = 0; /* keys are whole bytes */
    return out->PublicKey.pbData != NULL;
}

static bool extensions(X509 *x, srvocsp__win_arena **arena, CERT_INFO *ci)
{
    int n = X509_get_ext_count(x), i;

    ci->cExtension = 0;
    ci->rgExtension = NULL;
    if (n <= 0)
        return true;
    ci->rgExtension = srvocsp__win_arena_alloc(arena, (size_t)n * sizeof(CERT_EXTENSION));
    if (ci->rgExtension == NULL)
        return false;
    for (i = 0; i < n; i++) {
        X509_EXTENSION *e = X509_get_ext(x, i);
        const ASN1_OCTET_STRING *v = X509_EXTENSION_get_data(e);
        CERT_EXTENSION *ce = &ci->rgExtension[i];

        ce->pszObjId = oid_string(X509_EXTENSION_get_object(e), arena);
        ce->fCritical = X509_EXTENSION_get_critical(e) ? TRUE : FALSE;
        ce->Value.cbData = (DWORD)ASN1_STRING_length(v);
        ce->Value.pbData = arena_copy(arena, ASN1_STRING_get0_data(v), ce->Value.cbData);
        if (ce->pszObjId == NULL || ce->Value.pbData == NULL)
            return false;
    }
    ci->cExtension = (DWORD)n;
    return true;
}

CERT_INFO *srvocsp__win_certinfo_new(X509 *x, srvocsp__win_arena **arena)
{
    CERT_INFO *ci;
    const ASN1_BIT_STRING *iuid = NULL, *suid = NULL;

    *arena = NULL;
    ci = srvocsp__win_arena_alloc(arena, sizeof(*ci));
    if (ci == NULL)
        goto fail;
    ci->dwVersion = (DWORD)X509_get_version(x);
    X509_get0_uids(x, &iuid, &suid);
    if (!srvocsp__win_serial_blob(X509_get0_serialNumber(x), arena, &ci->SerialNumber) ||
        !srvocsp__win_algorithm(X509_get0_tbs_sigalg(x), arena, &ci->SignatureAlgorithm) ||
        !srvocsp__win_name_blob(X509_get_issuer_name(x), arena, &ci->Issuer) ||
        !srvocsp__win_name_blob(X509_get_subject_name(x), arena, &ci->Subject) ||
        !public_key_info(x, arena, &ci->SubjectPublicKeyInfo) ||
        !bit_blob(iuid, arena, &ci->IssuerUniqueId) || !bit_blob(suid, arena, &ci->SubjectUniqueId) ||
        !extensions(x, arena, ci))
        goto fail;
    ci->NotBefore = asn1_filetime(X509_get0_notBefore(x));
    ci->NotAfter = asn1_filetime(X509_get0_notAfter(x));
    ERR_clear_error();
    return ci;
fail:
    ERR_clear_error();
    srvocsp__win_arena_free(*arena);
    *arena = NULL;
    return NULL;
}
