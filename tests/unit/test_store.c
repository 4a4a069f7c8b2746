/* Persistence: restarts, bad files, write errors, crashes, processes
 * sharing a directory, fork. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <openssl/ocsp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fake.h"
#include "peers.h"
#include "store/store.h"
#include "testpki.h"

#define DAY 86400

static tp_pki pki;
static int64_t T;

enum mode { M_GOOD, M_DOWN };

typedef struct world {
    manual_clock clock;
    fake_transport fake;
    srvocsp_engine *eng;
    pthread_mutex_t mu;
    enum mode mode;
    atomic_bool hold;        /* the handler waits while set (a fetch in progress) */
    const char *count_file; /* appended to on every request, across processes */
    int n_updated, n_failed, n_store_failed;
    int last_store_errno;
    srvocsp_error last_err;
    char last_reason[600];
    char all_reasons[4096];     /* every failure reported, in order */
} world;

static void handler(void *arg, const char *url, fake_reply *out)
{
    world *w = arg;
    tp_resp_opts o;
    int64_t now = atomic_load(&w->clock.now);

    if (w->count_file) {
        int fd = open(w->count_file, O_WRONLY | O_APPEND | O_CREAT, 0644);

        if (fd >= 0) {
            if (write(fd, "r\n", 2) != 2)
                abort();
            close(fd);
        }
    }
    while (atomic_load(&w->hold))
        usleep(1000);
    if (w->mode == M_DOWN) {
        out->error = SRVOCSP_E_TRANSPORT;
        return;
    }
    tp_resp_opts_init(&o, &pki.good, &pki.ca, now);
    out->body = tp_response(&o, &out->len);
}

static void on_event(srvocsp_handle *h, const srvocsp_event *ev, void *arg)
{
    world *w = arg;

    pthread_mutex_lock(&w->mu);
    if (ev->type == SRVOCSP_EVENT_UPDATED) {
        w->n_updated++;
        w->last_store_errno = ev->store_errno;
    } else if (ev->type == SRVOCSP_EVENT_STORE_FAILED) {
        w->n_store_failed++;
    } else if (ev->type == SRVOCSP_EVENT_FAILED) {
        w->n_failed++;
        w->last_err = ev->error;
        snprintf(w->last_reason, sizeof(w->last_reason), "%s", ev->reason);
        strncat(w->all_reasons, ev->reason, sizeof(w->all_reasons) - strlen(w->all_reasons) - 2);
        strcat(w->all_reasons, "\n");
    }
    pthread_mutex_unlock(&w->mu);
}

static world *world_new(int64_t start, uint64_t seed)
{
    world *w = calloc(1, sizeof(*w));

    manual_clock_init(&w->clock, start);
    fake_init(&w->fake, &w->clock, handler, w);
    pthread_mutex_init(&w->mu, NULL);
    w->eng = fake_engine_new(&w->clock, &w->fake, -1, seed);
    return w;
}

static void world_free(world *w)
{
    srvocsp_engine_free(w->eng);
    fake_destroy(&w->fake);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

static srvocsp_handle *open_dir(world *w, const char *dir, unsigned flags)
{
    srvocsp_params p;
    srvocsp_handle *h;

    srvocsp_params_init(&p);
    p.engine = w->eng;
    p.flags = flags;
    p.directory = dir;
    p.update_cb = on_event;
    p.update_arg = w;
    p.url_timeout_ms = 2000;
    h = fake_open(pki.good.cert, pki.ca.cert, &p);
    return h;
}

static void stored_path(const char *dir, char *buf, size_t len)
{
    char name[SRVOCSP__STORE_NAME_LEN + 1];

    assert_true(srvocsp__store_name(pki.good.cert, pki.ca.cert, name));
    snprintf(buf, len, "%s/%s.der", dir, name);
}

/* Stored responses in |dir|: files named "<64 hex>.der", as the
 * directory store writes them (nothing else it writes is named so). */
static int count_stored(const char *dir)
{
    DIR *dh = opendir(dir);
    struct dirent *de;
    int n = 0;

    assert_non_null(dh);
    while ((de = readdir(dh)) != NULL)
        n += strlen(de->d_name) == SRVOCSP__STORE_NAME_LEN + 4 &&
             strspn(de->d_name, "0123456789abcdef") == SRVOCSP__STORE_NAME_LEN &&
             strcmp(de->d_name + SRVOCSP__STORE_NAME_LEN, ".der") == 0;
    closedir(dh);
    return n;
}

static int setup(void **s)
{
    T = (int64_t)time(NULL);
    return tp_pki_make(&pki, "http://127.0.0.1:8080/", "http://127.0.0.1:1/", T) ? 0 : -1;
}

static int teardown(void **s)
{
    tp_pki_free(&pki);
    return 0;
}

static void test_restart_serves_from_disk_without_network(void **s)
{
    char *dir = tr_tmpdir("store"), path[1200];
    world *a = world_new(T, 1), *b;
    srvocsp_handle *h;
    srvocsp_response *r;
    struct stat st;

    h = open_dir(a, dir, 0);
    assert_non_null(h);
    assert_int_equal(fake_requests(&a->fake), 1);
    srvocsp_close(h);
    world_free(a);
    stored_path(dir, path, sizeof(path));
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    {
        /* One response stored, under its name; nothing else is. */
        srvocsp__store *st2 = srvocsp__store_dir_new(dir);
        char name[SRVOCSP__STORE_NAME_LEN + 1];
        unsigned char *none = NULL;
        size_t nlen = 1;
        uint64_t v = 1;
        char why[200];

        assert_int_equal(count_stored(dir), 1);
        assert_true(srvocsp__store_name(pki.good.cert, pki.ca.cert, name));
        assert_non_null(strstr(path, name));
        /* Nothing stored is an outcome, not an error. */
        assert_int_equal(st2->ops->load(st2, "0000", 1024, &none, &nlen, &v, why, sizeof(why)),
                         SRVOCSP_OK);
        assert_null(none);
        assert_int_equal(nlen, 0);
        st2->ops->free(st2);
    }

    /* "Restart" an hour later with the responder down. */
    b = world_new(T + 3600, 2);
    b->mode = M_DOWN;
    h = open_dir(b, dir, SRVOCSP_OPEN_ASYNC);
    r = srvocsp_get1_response(h); /* the very first get */
    assert_non_null(r);
    assert_int_equal(srvocsp_response_this_update(r), T);
    assert_int_equal(fake_requests(&b->fake), 0);
    /* Its refresh is scheduled from the stored response's own times. */
    assert_true(srvocsp_handle_next_attempt(h) <= T + DAY / 2);
    assert_true(srvocsp_handle_next_attempt(h) > T + 3600);
    srvocsp_response_free(r);
    srvocsp_close(h);
    world_free(b);
    tr_rmrf(dir);
    free(dir);
}

static void test_directory_created(void **s)
{
    char *base = tr_tmpdir("store"), dir[1200];
    world *w = world_new(T, 3);
    srvocsp_handle *h;
    struct stat st;

    snprintf(dir, sizeof(dir), "%s/new/sub", base);
    snprintf(dir, sizeof(dir), "%s/new", base);
    h = open_dir(w, dir, 0);
    assert_int_equal(stat(dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0755);
    srvocsp_close(h);
    world_free(w);
    tr_rmrf(base);
    free(base);
}

typedef void (*spoil_fn)(const char *path, const char *dir);

static void write_bytes(const char *path, const void *b, size_t n)
{
    assert_true(tp_write_file(path, b, n));
}

static void spoil_corrupt(const char *path, const char *dir)
{
    write_bytes(path, "this is not DER at all", 22);
}

static void spoil_empty(const char *path, const char *dir)
{
    write_bytes(path, "", 0);
}

/* Signs |o| and writes the first |keep| bytes of it (0: all). */
static void write_response(const char *path, const tp_resp_opts *o, size_t keep)
{
    size_t len;
    unsigned char *der = tp_response(o, &len);

    assert_non_null(der);
    write_bytes(path, der, keep ? keep : len);
    free(der);
}

static void spoil_truncated(const char *path, const char *dir)
{
    tp_resp_opts o;

    tp_resp_opts_init(&o, &pki.good, &pki.ca, T);
    write_response(path, &o, 200);
}

static void spoil_other_cert(const char *path, const char *dir)
{
    tp_resp_opts o;

    tp_resp_opts_init(&o, &pki.revoked, &pki.ca, T);
    write_response(path, &o, 0);
}

static void spoil_expired(const char *path, const char *dir)
{
    tp_resp_opts o;

    tp_resp_opts_init(&o, &pki.good, &pki.ca, T - 20 * 3600);
    o.next_update = T - 3600;
    write_response(path, &o, 0);
}

static void spoil_wrong_key(const char *path, const char *dir)
{
    tp_resp_opts o;

    tp_resp_opts_init(&o, &pki.good, &pki.ca, T);
    o.signer = &pki.delegate_other; /* a responder of another CA */
    o.include_signer = true;
    write_response(path, &o, 0);
}

static void spoil_directory(const char *path, const char *dir)
{
    assert_int_equal(mkdir(path, 0755), 0);
}

static void spoil_symlink(const char *path, const char *dir)
{
    char target[1300];
    tp_resp_opts o;

    /* Even a symlink to a valid response is refused: the file is ours. */
    snprintf(target, sizeof(target), "%s/elsewhere.der", dir);
    tp_resp_opts_init(&o, &pki.good, &pki.ca, T);
    write_response(target, &o, 0);
    assert_int_equal(symlink(target, path), 0);
}

static void test_bad_files_ignored_and_replaced(void **s)
{
    static const struct {
        const char *name;
        spoil_fn fn;
        const char *reason;
    } cases[] = {
        {"corrupt", spoil_corrupt, "E_PARSE"},
        {"empty", spoil_empty, "size 0"},
        {"truncated", spoil_truncated, "E_PARSE"},
        {"other certificate", spoil_other_cert, "E_NO_MATCH"},
        {"expired", spoil_expired, "E_EXPIRED"},
        {"wrong signer", spoil_wrong_key, "E_SIGNER"},
        {"directory", spoil_directory, "not a regular file"},
        {"symlink", spoil_symlink, "symbolic link"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *dir = tr_tmpdir("bad"), path[1200];
        world *w = world_new(T, 10 + i);
        srvocsp_handle *h;
        srvocsp_response *r;
        unsigned char *der;
        size_t len;

        stored_path(dir, path, sizeof(path));
        cases[i].fn(path, dir);
        w->mode = M_DOWN;
        h = open_dir(w, dir, SRVOCSP_OPEN_ASYNC);
        assert_non_null(h);
        assert_int_equal(srvocsp_engine_settle(w->eng, 5000), SRVOCSP_OK);
        assert_null(srvocsp_get1_response(h));
        print_message("  %-18s -> %.150s\n", cases[i].name, w->all_reasons);
        assert_non_null(strstr(w->all_reasons, "stored response ignored"));
        assert_non_null(strstr(w->all_reasons, cases[i].reason));
        /* The next good fetch replaces it. */
        if (strcmp(cases[i].name, "directory") == 0)
            rmdir(path);
        else if (strcmp(cases[i].name, "symlink") == 0)
            unlink(path);
        w->mode = M_GOOD;
        manual_clock_set(&w->clock, srvocsp_handle_next_attempt(h));
        assert_int_equal(srvocsp_engine_settle(w->eng, 5000), SRVOCSP_OK);
        r = srvocsp_get1_response(h);
        assert_non_null(r);
        der = tp_read_file(path, &len);
        assert_non_null(der);
        {
            size_t rl;
            const unsigned char *rd = srvocsp_response_der(r, &rl);

            assert_int_equal(rl, len);
            assert_memory_equal(rd, der, len);
        }
        free(der);
        srvocsp_response_free(r);
        srvocsp_close(h);
        world_free(w);
        tr_rmrf(dir);
        free(dir);
    }
}

static void check_unwritable(const char *dir)
{
    world *w = world_new(T, 30);
    srvocsp_handle *h = open_dir(w, dir, 0);
    srvocsp_response *r;
    char why[600];

    assert_non_null(h);
    r = srvocsp_get1_response(h);
    assert_non_null(r); /* serving goes on from memory */
    srvocsp_response_free(r);
    assert_int_equal(srvocsp_engine_settle(w->eng, 5000), SRVOCSP_OK);
    assert_int_equal(w->n_updated, 1);
    assert_int_not_equal(w->last_store_errno, 0);
    assert_int_equal(w->n_store_failed, 1);
    srvocsp_handle_last_failure(h, why, sizeof(why));
    print_message("  %s: store errno %d (%s)\n", dir, w->last_store_errno,
                  strerror(w->last_store_errno));
    srvocsp_close(h);
    world_free(w);
}

static void test_unwritable_directory(void **s)
{
    char *base = tr_tmpdir("ro"), dir[1200], file[1200];

    /* A path under a regular file: fails for root as well. */
    snprintf(file, sizeof(file), "%s/plainfile", base);
    write_bytes(file, "x", 1);
    snprintf(dir, sizeof(dir), "%s/plainfile/store", base);
    check_unwritable(dir);
    /* A read-only directory (root ignores modes, so only as a user). */
    if (geteuid() != 0) {
        snprintf(dir, sizeof(dir), "%s/ro", base);
        assert_int_equal(mkdir(dir, 0555), 0);
        check_unwritable(dir);
        chmod(dir, 0755);
    }
    tr_rmrf(base);
    free(base);
}

/* Files named like a writer's temporary (".<name>.tmp.XXXXXX"). */
static int count_temporaries(const char *dir)
{
    DIR *dh = opendir(dir);
    struct dirent *de;
    int n = 0;

    assert_non_null(dh);
    while ((de = readdir(dh)) != NULL)
        n += de->d_name[0] == '.' && strstr(de->d_name, SRVOCSP__TMP_INFIX) != NULL;
    closedir(dh);
    return n;
}

static void age_temporaries(const char *dir, int seconds)
{
    DIR *dh = opendir(dir);
    struct dirent *de;

    assert_non_null(dh);
    while ((de = readdir(dh)) != NULL) {
        struct timespec ts[2];

        if (de->d_name[0] != '.' || strstr(de->d_name, SRVOCSP__TMP_INFIX) == NULL)
            continue;
        clock_gettime(CLOCK_REALTIME, &ts[0]);
        ts[0].tv_sec -= seconds;
        ts[1] = ts[0];
        assert_int_equal(utimensat(dirfd(dh), de->d_name, ts, 0), 0);
    }
    closedir(dh);
}

static void test_crash_during_saves(void **s)
{
    enum { N = 6, ROUNDS = 40 };
    char *dir = tr_tmpdir("crash"), path[1200], name[SRVOCSP__STORE_NAME_LEN + 1];
    unsigned char *resp[N];
    size_t len[N];
    int round, i;

    for (i = 0; i < N; i++) {
        tp_resp_opts o;

        tp_resp_opts_init(&o, &pki.good, &pki.ca, T + i);
        o.include_signer = i % 2; /* different sizes */
        resp[i] = tp_response(&o, &len[i]);
    }
    assert_true(srvocsp__store_name(pki.good.cert, pki.ca.cert, name));
    snprintf(path, sizeof(path), "%s/%s.der", dir, name);
    srand((unsigned)T);
    for (round = 0; round < ROUNDS; round++) {
        pid_t pid = fork();
        unsigned char *got;
        size_t gl;
        int status, match = -1;

        if (pid == 0) {
            srvocsp__store *st = srvocsp__store_dir_new(dir);
            char why[300];
            int e;

            for (unsigned k = 0;; k++)
                st->ops->save(st, name, resp[k % N], len[k % N], &e, why, sizeof(why));
        }
        usleep((useconds_t)(1000 + rand() % 20000));
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        got = tp_read_file(path, &gl);
        if (got == NULL)
            continue; /* killed before the first rename: no file, fine */
        for (i = 0; i < N; i++)
            if (gl == len[i] && memcmp(got, resp[i], gl) == 0)
                match = i;
        assert_true(match >= 0); /* a whole response, never a part */
        {
            srvocsp_verify_opts vo;
            srvocsp_response *r;

            srvocsp_verify_opts_init(&vo);
            vo.now = T + 10;
            r = srvocsp_verify_der(got, gl, pki.good.cert, pki.ca.cert, &vo);
            assert_non_null(r);
            srvocsp_response_free(r);
        }
        free(got);
    }
    {
        /* Writers killed between create and rename left temporaries; the
         * first store this process opens on the directory removes those
         * older than 10 minutes, and keeps a fresh one (a live writer's)
         * and the response. */
        int left = count_temporaries(dir), fresh_fd;
        char fresh[1300];
        srvocsp__store *st;

        print_message("  %d rounds: %d temporary files left by killed writers\n", ROUNDS, left);
        age_temporaries(dir, 3600);
        snprintf(fresh, sizeof(fresh), "%s/.%s.der.tmp.AbC123", dir, name);
        fresh_fd = open(fresh, O_WRONLY | O_CREAT | O_EXCL, 0644);
        assert_true(fresh_fd >= 0);
        close(fresh_fd);
        st = srvocsp__store_dir_new(dir);
        assert_non_null(st);
        assert_int_equal(count_temporaries(dir), 1);
        assert_int_equal(access(fresh, F_OK), 0);
        assert_int_equal(count_stored(dir), 1);
        st->ops->free(st);
    }
    for (i = 0; i < N; i++)
        free(resp[i]);
    tr_rmrf(dir);
    free(dir);
}

/* Writers of one file in one process (two engines sharing a directory, or
 * the store and a tool): each has its own temporary, so a reader only ever
 * sees one writer's whole content. */
typedef struct writer_arg {
    const char *path;
    int id;
} writer_arg;

static atomic_int writers_done, write_errors;

static void *writer_main(void *arg)
{
    writer_arg *a = arg;
    size_t n = 3000 + (size_t)a->id * 1000;
    unsigned char *b = malloc(n);
    int k;

    memset(b, 'a' + a->id, n);
    for (k = 0; k < 150; k++)
        if (srvocsp__write_file_atomic(a->path, b, n) != 0)
            atomic_fetch_add(&write_errors, 1);
    free(b);
    atomic_fetch_add(&writers_done, 1);
    return NULL;
}

static void test_writers_of_one_file(void **s)
{
    enum { W = 4 };
    char *dir = tr_tmpdir("writers"), path[1200];
    pthread_t th[W];
    writer_arg args[W];
    long reads = 0, torn = 0;
    int i;

    snprintf(path, sizeof(path), "%s/one.der", dir);
    atomic_store(&writers_done, 0);
    atomic_store(&write_errors, 0);
    for (i = 0; i < W; i++) {
        args[i].path = path;
        args[i].id = i;
        pthread_create(&th[i], NULL, writer_main, &args[i]);
    }
    while (atomic_load(&writers_done) < W) {
        size_t n, j;
        unsigned char *got = tp_read_file(path, &n);

        if (got != NULL) {
            int id = n > 0 ? got[0] - 'a' : -1;
            bool whole = id >= 0 && id < W && n == 3000 + (size_t)id * 1000;

            for (j = 0; whole && j < n; j++)
                whole = got[j] == got[0];
            torn += !whole;
            reads++;
            free(got);
        }
    }
    for (i = 0; i < W; i++)
        pthread_join(th[i], NULL);
    print_message("  %d writers x 150 saves: %ld reads, %ld torn\n", W, reads, torn);
    assert_int_equal(torn, 0);
    assert_int_equal(atomic_load(&write_errors), 0);
    assert_true(reads > 0);
    assert_int_equal(count_temporaries(dir), 0);
    tr_rmrf(dir);
    free(dir);
}

/* Two processes share a directory; the parent drives both clocks. */
static void child_loop(const char *dir, const char *count_file, int in, int out)
{
    world *w = world_new(T, (uint64_t)getpid());
    srvocsp_handle *h;
    int64_t t;

    w->count_file = count_file;
    h = open_dir(w, dir, 0);
    if (write(out, "k", 1) != 1)
        _exit(3);
    while (read(in, &t, sizeof(t)) == sizeof(t)) {
        srvocsp_response *r;
        char ok;

        manual_clock_set(&w->clock, t);
        srvocsp_engine_settle(w->eng, 10000);
        r = srvocsp_get1_response(h);
        ok = r ? 'k' : 'x';
        srvocsp_response_free(r);
        if (write(out, &ok, 1) != 1)
            break;
    }
    srvocsp_close(h);
    world_free(w);
    _exit(0);
}

static int count_lines(const char *path)
{
    size_t len = 0;
    unsigned char *b = tp_read_file(path, &len);
    int n = 0;

    for (size_t i = 0; b && i < len; i++)
        n += b[i] == '\n';
    free(b);
    return n;
}

static void test_processes_share_one_fetch(void **s)
{
    char *dir = tr_tmpdir("share"), count[1200];
    int to[2][2], from[2][2], i, days = 5;
    pid_t pid[2];
    int64_t t;
    char c;

    snprintf(count, sizeof(count), "%s/requests.log", dir);
    for (i = 0; i < 2; i++) {
        assert_int_equal(pipe(to[i]), 0);
        assert_int_equal(pipe(from[i]), 0);
        pid[i] = fork();
        if (pid[i] == 0) {
            /* Only the parent may hold write ends, or EOF never comes. */
            for (int j = 0; j <= i; j++)
                close(to[j][1]);
            child_loop(dir, count, to[i][0], from[i][1]);
        }
        assert_int_equal(read(from[i][0], &c, 1), 1); /* opened */
    }
    /* Ten-minute steps over five days; responses live a day, so each
     * process alone would fetch about twice a day. */
    /* The processes take each step in turn: one is always a little ahead
     * of the other, as real processes are (the refresh jitter spreads them
     * over up to 10 % of the wait); whichever is due first fetches, the
     * other must pick its response up from the directory. */
    for (t = T + 600; t <= T + days * DAY; t += 600) {
        for (i = 0; i < 2; i++) {
            assert_int_equal(write(to[i][1], &t, sizeof(t)), (ssize_t)sizeof(t));
            assert_int_equal(read(from[i][0], &c, 1), 1);
            assert_int_equal(c, 'k'); /* both serve throughout */
        }
    }
    for (i = 0; i < 2; i++) {
        int status;

        close(to[i][1]);
        waitpid(pid[i], &status, 0);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        close(to[i][0]);
        close(from[i][0]);
        close(from[i][1]);
    }
    print_message("  2 processes, %d days: %d requests (each alone would make ~%d)\n", days,
                  count_lines(count), 2 * days + 1);
    /* One first fetch, then one per refresh for both together (a refresh
     * is ~12 h here, jittered up to 10 % earlier per process). */
    assert_true(count_lines(count) <= 2 * days + 2);
    tr_rmrf(dir);
    free(dir);
}

/* |a|, due at |t|, takes the lease and asks its responder, which keeps the
 * answer until a->hold is cleared. */
static void refresh_and_hold(world *a, int64_t t)
{
    atomic_store(&a->hold, true);
    manual_clock_set(&a->clock, t);
    srvocsp_engine_kick(a->eng);
    for (int i = 0; i < 5000 && fake_requests(&a->fake) < 2; i++)
        usleep(1000);
    assert_int_equal(fake_requests(&a->fake), 2);
}

/* Two engines (as two processes would) on one directory, both due for the
 * same refresh: while one is asking the responder, the other finds the
 * lease held and asks nothing; once the first has saved, the other picks
 * its response up. */
static void test_lease_one_fetch_at_a_time(void **s)
{
    char *dir = tr_tmpdir("lease");
    world *a = world_new(T, 1), *b = world_new(T, 2);
    srvocsp_handle *ha, *hb;
    srvocsp_engine_stats st;
    srvocsp_response *r;
    int64_t t = T + DAY / 2 + 600; /* past the refresh point of both */

    ha = open_dir(a, dir, 0);
    assert_non_null(ha);
    assert_int_equal(fake_requests(&a->fake), 1);
    hb = open_dir(b, dir, 0);
    assert_non_null(hb);
    assert_int_equal(fake_requests(&b->fake), 0); /* served from the directory */

    refresh_and_hold(a, t); /* a is fetching, and waits */

    manual_clock_set(&b->clock, t);
    srvocsp_engine_kick(b->eng);
    assert_int_equal(srvocsp_engine_settle(b->eng, 5000), SRVOCSP_OK);
    assert_int_equal(fake_requests(&b->fake), 0); /* the lease is a's: b asked nothing */

    atomic_store(&a->hold, false);
    assert_int_equal(srvocsp_engine_settle(a->eng, 5000), SRVOCSP_OK);
    manual_clock_set(&b->clock, t + SRVOCSP__LEASE_RETRY_S);
    srvocsp_engine_kick(b->eng);
    assert_int_equal(srvocsp_engine_settle(b->eng, 5000), SRVOCSP_OK);
    assert_int_equal(fake_requests(&b->fake), 0);
    srvocsp_engine_get_stats(b->eng, &st);
    assert_int_equal(st.store_pickups, 1);
    r = srvocsp_get1_response(hb);
    assert_non_null(r);
    assert_int_equal(srvocsp_response_this_update(r), t); /* a's new response */
    srvocsp_response_free(r);
    assert_int_equal(b->n_failed, 0); /* waiting for another's fetch is no failure */

    srvocsp_close(ha);
    srvocsp_close(hb);
    world_free(a);
    world_free(b);
    tr_rmrf(dir);
    free(dir);
}

/* A holder that stops (SIGSTOP, a hung process) keeps its flock for as
 * long as it lives.  The others give it one retrieval's time (the URL
 * timeout and a little more), then ask the responder themselves rather
 * than lose their staple. */
static void test_lease_stuck_holder_not_waited_for(void **s)
{
    char *dir = tr_tmpdir("stuck");
    world *a = world_new(T, 1), *b = world_new(T, 2);
    srvocsp_handle *ha, *hb;
    srvocsp_response *r;
    int64_t t = T + DAY / 2 + 600, waited = 0;

    ha = open_dir(a, dir, 0);
    hb = open_dir(b, dir, 0);
    assert_non_null(ha);
    assert_non_null(hb);
    assert_int_equal(fake_requests(&b->fake), 0);

    refresh_and_hold(a, t); /* a takes the lease and never comes back */

    while (fake_requests(&b->fake) == 0 && waited <= 60) {
        manual_clock_set(&b->clock, t + waited);
        srvocsp_engine_kick(b->eng);
        assert_int_equal(srvocsp_engine_settle(b->eng, 5000), SRVOCSP_OK);
        if (fake_requests(&b->fake) == 0)
            waited += SRVOCSP__LEASE_RETRY_S;
    }
    print_message("  b asked the responder itself after waiting %lld s for a stuck holder\n",
                  (long long)waited);
    assert_int_equal(fake_requests(&b->fake), 1);
    assert_true(waited > 2);      /* the holder had its whole retrieval timeout (open_dir: 2 s) */
    assert_true(waited <= 2 + 3); /* and little more */
    r = srvocsp_get1_response(hb);
    assert_non_null(r);
    assert_int_equal(srvocsp_response_this_update(r), t + waited); /* b's own fetch */
    srvocsp_response_free(r);
    assert_int_equal(b->n_failed, 0);

    atomic_store(&a->hold, false);
    assert_int_equal(srvocsp_engine_settle(a->eng, 5000), SRVOCSP_OK);
    srvocsp_close(ha);
    srvocsp_close(hb);
    world_free(a);
    world_free(b);
    tr_rmrf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_restart_serves_from_disk_without_network),
        cmocka_unit_test(test_directory_created),
        cmocka_unit_test(test_bad_files_ignored_and_replaced),
        cmocka_unit_test(test_unwritable_directory),
        cmocka_unit_test(test_crash_during_saves),
        cmocka_unit_test(test_writers_of_one_file),
        cmocka_unit_test(test_processes_share_one_fetch),
        cmocka_unit_test(test_lease_one_fetch_at_a_time),
        cmocka_unit_test(test_lease_stuck_holder_not_waited_for),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
