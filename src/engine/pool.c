/*
 * Verification beside the engine thread: a few threads (one per core, at
 * most SRVOCSP__POOL_MAX) that verify the bytes of completions, so that
 * bulk work (the stored responses of 100,000 certificates at start, the
 * first fetch of all of them) uses every core instead of the one engine
 * thread.
 *
 * The rules, each kept in one place:
 *  - what is checked is srvocsp__completion_evaluate, the one function the
 *    engine thread also calls inline (complete.c); the pool only decides
 *    on which thread it runs;
 *  - the pool never judges: a verified completion goes back to the engine's
 *    done queue and complete.c applies the verdict there, in the engine's
 *    order, as for any other completion;
 *  - get never waits for it: get reads the published cell and nothing
 *    here holds anything get takes;
 *  - its state is under e->mu; a worker drops the lock only while it
 *    verifies, holding a completion nobody else can see;
 *  - nothing is stranded: work the pool cannot take (a manual engine, a
 *    thread that cannot start, an engine stopping) is verified inline, and
 *    work queued or under way when the pool stops or the process forks goes
 *    back to the done queue unverified, where the next turn hands it to the
 *    pool again or verifies it inline.
 */
#include "engine/engine.h"

#include <string.h>
#include <unistd.h>

/* A deferred open's stored response, read: the text of the note that
 * says why it is not served, as srvocsp_open would write it (handle.c). */
static srvocsp_error read_stored(srvocsp__completion *c, char *why, size_t whylen)
{
    srvocsp__entry *en = c->en;
    unsigned char *der = NULL;
    size_t len = 0;
    uint64_t version = 0;
    char lwhy[SRVOCSP__REASON_LEN];

    if (en->store->ops->load(en->store, en->store_name, en->max_response_size, &der, &len,
                             &version, lwhy, sizeof(lwhy)) != SRVOCSP_OK) {
        srvocsp__fmt(why, whylen, "stored response ignored: %s", lwhy);
        return SRVOCSP_E_STORE;
    }
    c->store_version = version;
    c->has_version = true;
    c->body = der;
    c->body_len = len;
    return SRVOCSP_OK;
}

srvocsp_error srvocsp__completion_evaluate(srvocsp_engine *e, srvocsp__completion *c,
                                           srvocsp_response **out, char *why, size_t whylen)
{
    srvocsp__entry *en = c->en;
    srvocsp__policy pol = en->pol;
    srvocsp_http_result res;
    srvocsp_error err;
    char vwhy[SRVOCSP__REASON_LEN];

    *out = NULL;
    if (c->read_stored) {
        if (c->body == NULL && (err = read_stored(c, why, whylen)) != SRVOCSP_OK)
            return err;
        if (c->body == NULL)
            return SRVOCSP_OK; /* nothing stored: nothing to judge */
    }

    memset(&res, 0, sizeof(res));
    res.error = c->error;
    res.http_status = c->http_status;
    res.content_type = c->content_type;
    res.content_encoding = c->content_encoding;
    res.body = c->body;
    res.body_len = c->body_len;
    res.detail = c->detail[0] ? c->detail : NULL;
    pol.now = srvocsp__engine_now(e);
    if (!c->read_stored)
        return srvocsp__accept_http(&res, en->leaf, en->issuer, &pol, out, why, whylen);
    err = srvocsp__accept_http(&res, en->leaf, en->issuer, &pol, out, vwhy, sizeof(vwhy));
    if (err != SRVOCSP_OK)
        srvocsp__fmt(why, whylen, "stored response ignored (%s): %s", srvocsp_error_name(err),
                     vwhy);
    return err;
}

/* How many threads: one per core, at most SRVOCSP__POOL_MAX.  Asked once:
 * sysconf reads /sys each time, which cost an open 5 %. */
static unsigned g_pool_size;
static pthread_once_t g_pool_size_once = PTHREAD_ONCE_INIT;

static void count_cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    if (n < 1)
        n = 1;
    g_pool_size = n > SRVOCSP__POOL_MAX ? SRVOCSP__POOL_MAX : (unsigned)n;
}

static unsigned pool_size(void)
{
    pthread_once(&g_pool_size_once, count_cores);
    return g_pool_size;
}

/* Verified completions a worker holds back while more work is queued,
 * at most: each push to the done queue while the engine sleeps costs it a
 * wakeup, once per response when 100,000 stored ones are verified at
 * start.  Held back only while the queue is not empty (so the pool counts
 * as busy and the engine as not idle), and never across a fork or a stop. */
#define HOLD_MAX 16

static void *worker(void *arg)
{
    srvocsp_engine *e = arg;
    srvocsp__completion *held = NULL, **held_tail = &held;
    unsigned n_held = 0;

    pthread_mutex_lock(&e->mu);
    for (;;) {
        srvocsp__completion *c;
        srvocsp_response *snap = NULL;
        char why[SRVOCSP__REASON_LEN];
        srvocsp_error err;
        unsigned slot;

        /* A fork under way: wait here, outside OpenSSL (lifecycle.c). */
        while (!e->pool_stop && (e->pool_head == NULL || e->fork_hold))
            pthread_cond_wait(&e->pool_cv, &e->mu);
        if (e->pool_stop)
            break;
        c = e->pool_head;
        e->pool_head = c->next;
        if (e->pool_head == NULL)
            e->pool_tail = NULL;
        for (slot = 0; e->pool_active[slot] != NULL; slot++)
            ; /* a free one exists: no more under way than threads */
        e->pool_active[slot] = c;
        pthread_mutex_unlock(&e->mu);

        why[0] = '\0';
        err = srvocsp__completion_evaluate(e, c, &snap, why, sizeof(why));

        pthread_mutex_lock(&e->mu);
        e->pool_active[slot] = NULL;
        c->evaluated = true;
        c->eval_err = err;
        c->snap = snap;
        memcpy(c->eval_why, why, sizeof(c->eval_why));
        c->next = NULL;
        *held_tail = c;
        held_tail = &c->next;
        if (++n_held < HOLD_MAX && e->pool_head != NULL && !e->fork_hold && !e->pool_stop)
            continue;
        while ((c = held) != NULL) {
            held = c->next;
            srvocsp__done_push_locked(e, c);
        }
        held_tail = &held;
        n_held = 0;
        if (e->fork_hold || e->pool_stop)
            pthread_cond_broadcast(&e->progress); /* a fork or a stop waits for this */
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

/* Work under way or queued goes back to the done queue, unverified. */
static void requeue_locked(srvocsp_engine *e)
{
    unsigned i;

    for (i = 0; i < SRVOCSP__POOL_MAX; i++)
        if (e->pool_active[i] != NULL) {
            srvocsp__done_push_locked(e, e->pool_active[i]);
            e->pool_active[i] = NULL;
        }
    while (e->pool_head != NULL) {
        srvocsp__completion *c = e->pool_head;

        e->pool_head = c->next;
        srvocsp__done_push_locked(e, c);
    }
    e->pool_tail = NULL;
}

bool srvocsp__pool_busy_locked(const srvocsp_engine *e)
{
    unsigned i;

    if (e->pool_head != NULL)
        return true;
    for (i = 0; i < SRVOCSP__POOL_MAX; i++)
        if (e->pool_active[i] != NULL)
            return true;
    return false;
}

/* Whether |en| has a staple for the handshakes now: then nobody waits
 * for its next response. */
static bool serving(srvocsp_engine *e, srvocsp__entry *en)
{
    srvocsp_response *cur = srvocsp__cell_peek(&en->cell);

    return cur != NULL && srvocsp__held_servable(&en->sched, cur, srvocsp__engine_now(e));
}

bool srvocsp__pool_take_locked(srvocsp_engine *e, srvocsp__completion *c)
{
    unsigned want;

    if (e->manual || e->pool_stop || e->exited || e->pool_failed)
        return false;
    /* Only bulk work that someone waits for goes to the pool; handing an
     * answer over costs a wakeup each way and the response's cache lines
     * moving to another core.  So these are verified inline:
     *  - one answer with nothing else going on, where the pool would gain
     *    no time;
     *  - any refresh of an entry whose response get still hands out (the
     *    rule verdict.c judges by): the handshakes have their staple, and a refresh round verified on
     *    the engine thread took 8-13 us of CPU less per certificate
     *    (bench_scale, 10,000 at once), in about 1.4 times the time.
     * What is verified here is the same either way (evaluate). */
    if (c->src != SRVOCSP__SRC_OPEN &&
        ((e->in_flight == 0 && e->done_head == NULL && !srvocsp__pool_busy_locked(e)) ||
         serving(e, c->en)))
        return false;
    want = e->pool_n > 0 ? e->pool_n : pool_size();
    while (e->pool_n < want) {
        if (srvocsp__thread_create(&e->pool_threads[e->pool_n], worker, e) != 0) {
            /* With none at all, verification stays on the engine thread. */
            e->pool_failed = e->pool_n == 0;
            break;
        }
        e->pool_n++;
    }
    if (e->pool_n == 0)
        return false;
    c->next = NULL;
    if (e->pool_tail)
        e->pool_tail->next = c;
    else
        e->pool_head = c;
    e->pool_tail = c;
    e->pool_taken++;
    pthread_cond_signal(&e->pool_cv);
    return true;
}

uint64_t srvocsp__pool_taken(srvocsp_engine *e)
{
    uint64_t n;

    pthread_mutex_lock(&e->mu);
    n = e->pool_taken;
    pthread_mutex_unlock(&e->mu);
    return n;
}

void srvocsp__pool_park_locked(srvocsp_engine *e, const struct timespec *deadline)
{
    unsigned i;
    bool busy = true;

    /* fork_hold is set: workers finish what they verify and then wait. */
    while (busy) {
        busy = false;
        for (i = 0; i < SRVOCSP__POOL_MAX; i++)
            busy |= e->pool_active[i] != NULL;
        if (busy && pthread_cond_timedwait(&e->progress, &e->mu, deadline) != 0)
            break;
    }
}

void srvocsp__pool_after_fork_locked(srvocsp_engine *e)
{
    pthread_condattr_t ca;

    /* The parent's workers do not exist here; their work is done again. */
    requeue_locked(e);
    e->pool_n = 0;
    e->pool_failed = false;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&e->pool_cv, &ca);
    pthread_condattr_destroy(&ca);
}

void srvocsp__pool_stop(srvocsp_engine *e)
{
    pthread_t t[SRVOCSP__POOL_MAX];
    unsigned i, n;

    pthread_mutex_lock(&e->mu);
    e->pool_stop = true;
    pthread_cond_broadcast(&e->pool_cv);
    n = e->pool_n;
    memcpy(t, e->pool_threads, sizeof(t));
    e->pool_n = 0;
    pthread_mutex_unlock(&e->mu);
    for (i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    pthread_mutex_lock(&e->mu);
    requeue_locked(e);
    pthread_mutex_unlock(&e->mu);
}
