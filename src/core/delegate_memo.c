/*
 * The delegated responder an entry keeps between verifications
 * (srvocsp__policy.delegate): the SHA-256 fingerprint of the certificate
 * last found authorized for the entry's issuer, so that verify.c checks
 * the issuer's signature on that certificate once, not on every response
 * it signs.  Only verify.c decides what is kept; this file keeps it safe
 * to read and write from the engine's and the pool's threads.
 */
#include "internal.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <string.h>

/* The memos' locks, striped: a lock per memo would cost every entry a
 * mutex, and a memo is touched once per delegated response. */
#define MEMO_LOCKS 16
static pthread_mutex_t g_memo_locks[MEMO_LOCKS] = {
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
    PTHREAD_MUTEX_INITIALIZER};

static pthread_once_t g_memo_once = PTHREAD_ONCE_INIT;

/* A thread that forked while another held a stripe leaves it locked in
 * the child, whose copy of that thread never unlocks it. */
static void memo_locks_after_fork(void)
{
    for (int i = 0; i < MEMO_LOCKS; i++)
        pthread_mutex_init(&g_memo_locks[i], NULL);
}

static void memo_locks_register(void)
{
    (void)pthread_atfork(NULL, NULL, memo_locks_after_fork);
}

static pthread_mutex_t *memo_lock(const srvocsp__delegate_memo *m)
{
    pthread_once(&g_memo_once, memo_locks_register);
    return &g_memo_locks[((uintptr_t)m >> 6) % MEMO_LOCKS];
}

/* |cand|'s SHA-256 fingerprint: the identity a memo keeps (SHA-1, the
 * fingerprint OpenSSL caches, is not collision-resistant enough to stand
 * for a certificate whose signature is then not checked). */
static bool fingerprint(X509 *cand, unsigned char fp[32])
{
    unsigned int n = 0;

    return X509_digest(cand, EVP_sha256(), fp, &n) == 1 && n == 32;
}

bool srvocsp__delegate_memo_knows(srvocsp__delegate_memo *m, X509 *cand)
{
    unsigned char fp[32];
    bool known;

    if (m == NULL || !fingerprint(cand, fp))
        return false;
    pthread_mutex_lock(memo_lock(m));
    known = m->set && memcmp(m->sha256, fp, sizeof(fp)) == 0;
    pthread_mutex_unlock(memo_lock(m));
    return known;
}

void srvocsp__delegate_memo_keep(srvocsp__delegate_memo *m, X509 *cand)
{
    unsigned char fp[32];

    if (m == NULL || !fingerprint(cand, fp))
        return;
    pthread_mutex_lock(memo_lock(m));
    memcpy(m->sha256, fp, sizeof(fp));
    m->set = true;
    pthread_mutex_unlock(memo_lock(m));
}
