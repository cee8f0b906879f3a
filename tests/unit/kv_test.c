/* kv_test.c - the key-value interface (src/kv/): the SAME conformance
 * tests against both backends (sqlite on a fresh store; redis on a real
 * redis-server this test starts on a free port and stops at the end), GCRA
 * burst and steady rate, get_many, error typing, URL parsing, and pending writes
 * replayed after a (SIGSTOPped) Redis comes back.
 *
 * The redis group is skipped, with a message, when no redis-server binary
 * is found (set REDIS_SERVER to its path to override the search). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "error.h"
#include "kv/kv.h"
#include "kv/kv_int.h"
#include "store/store.h"

struct backend {
    const char *name;         /* "sqlite" / "redis" */
    struct lucy_kv *kv;       /* under test; NULL = skipped */
    struct lucy_store *store; /* the local store (both: pending replays) */
    char dir[64];             /* temp data dir */
    pid_t redis_pid;          /* redis-server child, 0 = none */
    int redis_port;           /* its port */
    const char *skip_reason;  /* why kv is NULL */
};

static struct backend sqlite_be = {.name = "sqlite"};
static struct backend redis_be = {.name = "redis"};
static int key_serial;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A key no earlier test (or earlier run against the same server) used. */
static void fresh_key(char *buf, size_t len, const char *what)
{
    snprintf(buf, len, "test:%s:%d:%d", what, (int)getpid(), ++key_serial);
}

static int open_store(struct backend *b)
{
    snprintf(b->dir, sizeof b->dir, "/tmp/lucy-kv-test-XXXXXX");
    if (!mkdtemp(b->dir))
        return -1;
    char err[256];
    return lucy_store_open(b->dir, &b->store, err, sizeof err);
}

static void remove_dir(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

/* ---- redis-server child --------------------------------------------------- */

static const char *find_redis_server(void)
{
    static char path[512];
    const char *env = getenv("REDIS_SERVER");
    if (env && access(env, X_OK) == 0)
        return env;
    const char *p = getenv("PATH");
    char copy[2048];
    snprintf(copy, sizeof copy, "%s:/usr/bin:/usr/sbin:/usr/local/bin", p ? p : "");
    char *save = NULL;
    for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        snprintf(path, sizeof path, "%s/redis-server", d);
        if (access(path, X_OK) == 0)
            return path;
    }
    return NULL;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static pid_t start_redis(const char *bin, int port, const char *dir)
{
    char portbuf[16];
    snprintf(portbuf, sizeof portbuf, "%d", port);
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) {
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        execl(bin, bin, "--port", portbuf, "--bind", "127.0.0.1", "--save", "", "--appendonly",
              "no", "--dir", dir, "--daemonize", "no", (char *)NULL);
        _exit(127);
    }
    return pid;
}

static int group_setup_sqlite(void **state)
{
    (void)state;
    struct backend *b = &sqlite_be;
    assert_int_equal(open_store(b), 0);
    struct lucy_kv_options o = {.store = b->store};
    struct lucy_kv_error e;
    assert_int_equal(lucy_kv_open(&o, &b->kv, &e), 0);
    assert_string_equal(lucy_kv_name(b->kv), "sqlite");
    return 0;
}

static int group_setup_redis(void **state)
{
    (void)state;
    struct backend *b = &redis_be;
    const char *bin = find_redis_server();
    if (!bin) {
        b->skip_reason = "no redis-server binary found (apt-get install redis-server, or set "
                         "REDIS_SERVER): skipping the redis half of the conformance tests";
        fprintf(stderr, "kv_test: %s\n", b->skip_reason);
        return 0;
    }
    assert_int_equal(open_store(b), 0);
    b->redis_port = free_port();
    assert_true(b->redis_port > 0);
    b->redis_pid = start_redis(bin, b->redis_port, b->dir);
    assert_true(b->redis_pid > 0);
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/3", b->redis_port);
    struct lucy_kv_options o = {
        .redis_url = url, .timeout_ms = 500, .pool_size = 4, .store = b->store};
    struct lucy_kv_error e;
    assert_int_equal(lucy_kv_open(&o, &b->kv, &e), 0);
    assert_string_equal(lucy_kv_name(b->kv), "redis");
    int64_t deadline = now_ms() + 10000;
    while (lucy_kv_ping(b->kv, 1, 200, &e) != 0) {
        if (now_ms() > deadline) {
            fprintf(stderr, "redis-server did not start: %s\n", e.message);
            return -1;
        }
        sleep_ms(20);
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    struct backend *bs[] = {&sqlite_be, &redis_be};
    for (int i = 0; i < 2; i++) {
        struct backend *b = bs[i];
        if (b->redis_pid > 0) {
            kill(b->redis_pid, SIGCONT);
            kill(b->redis_pid, SIGTERM);
            waitpid(b->redis_pid, NULL, 0);
            b->redis_pid = 0;
        }
        lucy_kv_close(b->kv);
        b->kv = NULL;
        if (b->store) {
            lucy_store_close(b->store);
            b->store = NULL;
            remove_dir(b->dir);
        }
    }
    return 0;
}

/* Each conformance test gets its backend as the initial state. */
static struct backend *backend_of(void **state)
{
    struct backend *b = *state;
    if (!b->kv) {
        fprintf(stderr, "kv_test: %s\n", b->skip_reason ? b->skip_reason : "backend not open");
        skip();
    }
    return b;
}

/* ---- conformance: get / set / del ----------------------------------------- */

static void test_get_set_del(void **state)
{
    struct backend *b = backend_of(state);
    char key[64];
    fresh_key(key, sizeof key, "gsd");
    struct lucy_kv_error e;
    char *v = (char *)1;
    size_t len = 99;
    assert_int_equal(lucy_kv_get(b->kv, key, &v, &len, 0, &e), LUCY_ENOTFOUND);
    assert_null(v);
    static const char bin[] = {'a', 0, 'b', (char)0xff};
    assert_int_equal(lucy_kv_set(b->kv, key, bin, sizeof bin, 0, 0, &e), 0);
    assert_int_equal(lucy_kv_get(b->kv, key, &v, &len, 0, &e), 0);
    assert_int_equal(len, sizeof bin);
    assert_memory_equal(v, bin, sizeof bin);
    free(v);
    assert_int_equal(lucy_kv_set(b->kv, key, "second", 6, 0, 0, &e), 0);
    assert_int_equal(lucy_kv_get(b->kv, key, &v, &len, 0, &e), 0);
    assert_string_equal(v, "second");
    free(v);
    assert_int_equal(lucy_kv_del(b->kv, key, 0, &e), 0);
    assert_int_equal(lucy_kv_get(b->kv, key, &v, &len, 0, &e), LUCY_ENOTFOUND);
    assert_int_equal(lucy_kv_del(b->kv, key, 0, &e), 0); /* absent is fine */
    /* bad arguments are refused by the wrapper, typed INVALID */
    assert_int_equal(lucy_kv_set(b->kv, "", "x", 1, 0, 0, &e), LUCY_EINVAL);
    assert_int_equal(e.kind, LUCY_KV_ERR_INVALID);
}

static void test_get_many(void **state)
{
    struct backend *b = backend_of(state);
    char k1[64], k2[64], missing[64];
    fresh_key(k1, sizeof k1, "many1");
    fresh_key(k2, sizeof k2, "many2");
    fresh_key(missing, sizeof missing, "many-missing");
    struct lucy_kv_error e;
    assert_int_equal(lucy_kv_set(b->kv, k1, "one", 3, 0, 0, &e), 0);
    static const char bin[] = {'t', 0, 'o'};
    assert_int_equal(lucy_kv_set(b->kv, k2, bin, sizeof bin, 0, 0, &e), 0);
    const char *keys[] = {k1, missing, k2, k1};
    char *v[4] = {(char *)1, (char *)1, (char *)1, (char *)1};
    size_t len[4];
    assert_int_equal(lucy_kv_get_many(b->kv, keys, 4, v, len, 0, &e), 0);
    assert_string_equal(v[0], "one");
    assert_int_equal(len[0], 3);
    assert_null(v[1]); /* absent is not an error */
    assert_int_equal(len[1], 0);
    assert_int_equal(len[2], sizeof bin);
    assert_memory_equal(v[2], bin, sizeof bin);
    assert_string_equal(v[3], "one");
    for (int i = 0; i < 4; i++)
        free(v[i]);
    assert_int_equal(lucy_kv_get_many(b->kv, keys, 0, v, NULL, 0, &e), 0);
    const char *bad[] = {k1, ""};
    assert_int_equal(lucy_kv_get_many(b->kv, bad, 2, v, NULL, 0, &e), LUCY_EINVAL);
    assert_null(v[0]);
    assert_int_equal(lucy_kv_del(b->kv, k1, 0, &e), 0);
    assert_int_equal(lucy_kv_del(b->kv, k2, 0, &e), 0);
}

static void test_set_expiry(void **state)
{
    struct backend *b = backend_of(state);
    char key[64];
    fresh_key(key, sizeof key, "ttl");
    char *v;
    size_t len;
    assert_int_equal(lucy_kv_set(b->kv, key, "soon", 4, 200, 0, NULL), 0);
    assert_int_equal(lucy_kv_get(b->kv, key, &v, &len, 0, NULL), 0);
    free(v);
    sleep_ms(400);
    assert_int_equal(lucy_kv_get(b->kv, key, &v, &len, 0, NULL), LUCY_ENOTFOUND);
}

static void test_set_if_absent(void **state)
{
    struct backend *b = backend_of(state);
    char key[64];
    fresh_key(key, sizeof key, "nx");
    int stored = -1;
    struct lucy_kv_error e;
    assert_int_equal(lucy_kv_set_if_absent(b->kv, key, "first", 5, 200, &stored, 0, &e), 0);
    assert_int_equal(stored, 1);
    assert_int_equal(lucy_kv_set_if_absent(b->kv, key, "second", 6, 200, &stored, 0, &e), 0);
    assert_int_equal(stored, 0);
    char *v;
    size_t len;
    assert_int_equal(lucy_kv_get(b->kv, key, &v, &len, 0, &e), 0);
    assert_string_equal(v, "first");
    free(v);
    sleep_ms(400); /* expired: absent again */
    assert_int_equal(lucy_kv_set_if_absent(b->kv, key, "third", 5, 5000, &stored, 0, &e), 0);
    assert_int_equal(stored, 1);
    /* a ttl is required: de-dup keys must not pile up for ever */
    assert_int_equal(lucy_kv_set_if_absent(b->kv, key, "x", 1, 0, &stored, 0, &e), LUCY_EINVAL);
}

struct race {
    struct lucy_kv *kv;
    const char *key;
    int stored;
    int rc;
};

static void *racer(void *arg)
{
    struct race *r = arg;
    r->rc = lucy_kv_set_if_absent(r->kv, r->key, "me", 2, 10000, &r->stored, 0, NULL);
    return NULL;
}

static void test_set_if_absent_race(void **state)
{
    struct backend *b = backend_of(state);
    char key[64];
    fresh_key(key, sizeof key, "race");
    enum { N = 8 };
    struct race r[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        r[i] = (struct race){b->kv, key, 0, -1};
        pthread_create(&t[i], NULL, racer, &r[i]);
    }
    int winners = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(r[i].rc, 0);
        winners += r[i].stored;
    }
    assert_int_equal(winners, 1);
}

static void test_claim_is_per_instance(void **state)
{
    struct backend *b = backend_of(state);
    char key[64];
    fresh_key(key, sizeof key, "claim");
    int mine = -1;
    struct lucy_kv_error e;
    assert_int_not_equal(lucy_kv_instance_id(b->kv)[0], '\0');
    assert_int_equal(lucy_kv_claim(b->kv, key, 5000, &mine, 0, &e), 0);
    assert_int_equal(mine, 1);
    /* the same instance again (a retry after a crash): still ours */
    assert_int_equal(lucy_kv_claim(b->kv, key, 5000, &mine, 0, &e), 0);
    assert_int_equal(mine, 1);
    /* the instance id survives a reopen of the same store */
    char id[40];
    snprintf(id, sizeof id, "%s", lucy_kv_instance_id(b->kv));
    struct lucy_kv_options o = {.store = b->store};
    char url[64];
    if (b->redis_port) {
        snprintf(url, sizeof url, "redis://127.0.0.1:%d/3", b->redis_port);
        o.redis_url = url;
    }
    struct lucy_kv *again;
    assert_int_equal(lucy_kv_open(&o, &again, &e), 0);
    assert_string_equal(lucy_kv_instance_id(again), id);
    lucy_kv_close(again);
    assert_int_equal((lucy_kv_caps(b->kv) & LUCY_KV_CAP_SHARED) != 0, b->redis_port != 0);
    if (!b->redis_port)
        return;
    /* another instance (its own store) sharing the Redis loses the claim */
    struct backend other = {.name = "other"};
    assert_int_equal(open_store(&other), 0);
    o.store = other.store;
    struct lucy_kv *kv2;
    assert_int_equal(lucy_kv_open(&o, &kv2, &e), 0);
    assert_string_not_equal(lucy_kv_instance_id(kv2), id);
    assert_int_equal(lucy_kv_claim(kv2, key, 5000, &mine, 0, &e), 0);
    assert_int_equal(mine, 0);
    lucy_kv_close(kv2);
    lucy_store_close(other.store);
    remove_dir(other.dir);
}

/* ---- conformance: GCRA ---------------------------------------------------- */

static void test_gcra_burst(void **state)
{
    struct backend *b = backend_of(state);
    char key[64];
    fresh_key(key, sizeof key, "burst");
    /* 1 per second (T = 1 s, wide enough for a loaded CI machine), 3 at once */
    struct lucy_kv_rate rate = {1, 1000, 3, 0};
    struct lucy_kv_rate_result r;
    struct lucy_kv_error e;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(lucy_kv_ratelimit(b->kv, key, &rate, &r, 0, &e), 0);
        assert_true(r.allowed);
        assert_int_equal(r.from_policy, 0);
        assert_int_equal(r.remaining, 2 - i);
    }
    assert_int_equal(lucy_kv_ratelimit(b->kv, key, &rate, &r, 0, &e), 0);
    assert_false(r.allowed);
    assert_true(r.retry_after_ms > 0 && r.retry_after_ms <= 1000);
    sleep_ms((int)r.retry_after_ms + 30);
    assert_int_equal(lucy_kv_ratelimit(b->kv, key, &rate, &r, 0, &e), 0);
    assert_true(r.allowed);
    assert_int_equal(lucy_kv_ratelimit(b->kv, key, &rate, &r, 0, &e), 0);
    assert_false(r.allowed);
    /* another key has its own budget */
    char other[64];
    fresh_key(other, sizeof other, "burst-other");
    assert_int_equal(lucy_kv_ratelimit(b->kv, other, &rate, &r, 0, &e), 0);
    assert_true(r.allowed);
}

/* Counts the writer connection's prepared statements on kv_ratelimit. */
static int count_ratelimit_stmts(sqlite3 *db, void *arg)
{
    int *n = arg;
    for (sqlite3_stmt *st = sqlite3_next_stmt(db, NULL); st; st = sqlite3_next_stmt(db, st))
        *n += strstr(sqlite3_sql(st), "kv_ratelimit") != NULL;
    return 0;
}

/* The embedded limiter runs once per WhatsApp message: its two statements
 * come from the store's statement cache (prepared once, kept), not
 * prepared and finalized on every step (issue "Part I loose ends"). */
static void test_gcra_uses_the_statement_cache(void **state)
{
    struct backend *b = backend_of(state);
    if (strcmp(b->name, "sqlite") != 0)
        return;
    char key[64];
    fresh_key(key, sizeof key, "cached");
    struct lucy_kv_rate rate = {100, 1000, 100, 0};
    struct lucy_kv_rate_result r;
    struct lucy_kv_error e;
    for (int i = 0; i < 5; i++)
        assert_int_equal(lucy_kv_ratelimit(b->kv, key, &rate, &r, 0, &e), 0);
    int n = 0;
    assert_int_equal(lucy_store_write(b->store, count_ratelimit_stmts, &n, 5000), 0);
    assert_int_equal(n, 2); /* the SELECT and the INSERT OR REPLACE, kept prepared */
}

static void test_gcra_steady(void **state)
{
    struct backend *b = backend_of(state);
    char key[64];
    fresh_key(key, sizeof key, "steady");
    /* 10 per second (T = 100 ms), burst 2: hammering for 1 s lets through
     * the burst plus one per T after the first: 2 + 1000/100 - 1 = 11 (+-1).
     * A slow call (a loaded machine) costs nothing: the burst absorbs it. */
    struct lucy_kv_rate rate = {10, 1000, 2, 0};
    struct lucy_kv_rate_result r;
    int allowed = 0, denied = 0;
    int64_t start = now_ms();
    while (now_ms() - start < 1000) {
        assert_int_equal(lucy_kv_ratelimit(b->kv, key, &rate, &r, 0, NULL), 0);
        if (r.allowed)
            allowed++;
        else
            denied++;
        sleep_ms(2);
    }
    fprintf(stderr, "kv_test[%s]: steady rate: %d allowed, %d denied in 1 s\n", b->name, allowed,
            denied);
    assert_in_range(allowed, 10, 12);
    assert_true(denied > 0);
}

static void test_gcra_event_time(void **state)
{
    struct backend *b = backend_of(state);
    char key[64];
    fresh_key(key, sizeof key, "at");
    /* a backlog judged by when each event arrived, not when it is processed:
     * 1 per second, burst 1, events 10 minutes ago */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t t0 = (int64_t)ts.tv_sec * 1000 - 600000;
    struct lucy_kv_rate rate = {1, 1000, 1, t0};
    struct lucy_kv_rate_result r;
    static const struct {
        int64_t offset_ms;
        int allowed;
    } events[] = {{0, 1}, {400, 0}, {999, 0}, {1000, 1}, {5000, 1}, {5001, 0}, {7000, 1}};
    for (size_t i = 0; i < sizeof events / sizeof events[0]; i++) {
        rate.at_ms = t0 + events[i].offset_ms;
        assert_int_equal(lucy_kv_ratelimit(b->kv, key, &rate, &r, 0, NULL), 0);
        assert_int_equal(r.allowed, events[i].allowed);
    }
}

/* ---- pure parts ----------------------------------------------------------- */

static void test_error_kinds(void **state)
{
    (void)state;
    static const struct {
        const char *reply;
        enum lucy_kv_err_kind kind;
    } rows[] = {
        {"MISCONF Redis is configured to save RDB snapshots, but it's currently unable to "
         "persist to disk.",
         LUCY_KV_ERR_MISCONF},
        {"-MISCONF Errors writing to the AOF file: No space left on device", LUCY_KV_ERR_MISCONF},
        {"LOADING Redis is loading the dataset in memory", LUCY_KV_ERR_LOADING},
        {"READONLY You can't write against a read only replica.", LUCY_KV_ERR_READONLY},
        {"NOAUTH Authentication required.", LUCY_KV_ERR_NOAUTH},
        {"WRONGPASS invalid username-password pair or user is disabled.", LUCY_KV_ERR_WRONGPASS},
        {"NOPERM this user has no permissions to run the 'config|set' command", LUCY_KV_ERR_NOPERM},
        {"OOM command not allowed when used memory > 'maxmemory'.", LUCY_KV_ERR_OOM},
        {"BUSY Redis is busy running a script.", LUCY_KV_ERR_BUSY},
        {"ERR unknown command 'CONFIG'", LUCY_KV_ERR_SERVER},
        {"MISCONFIGURED not a prefix match", LUCY_KV_ERR_SERVER},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        assert_int_equal(lucy_kv_err_kind_of_reply(rows[i].reply), rows[i].kind);
    for (int k = 0; k < LUCY_KV_ERR_COUNT; k++) {
        assert_non_null(lucy_kv_err_kind_name((enum lucy_kv_err_kind)k));
        assert_non_null(lucy_kv_err_remedy((enum lucy_kv_err_kind)k));
    }
    assert_int_equal(lucy_kv_err_code(LUCY_KV_ERR_TIMEOUT), LUCY_ETIMEDOUT);
    assert_int_equal(lucy_kv_err_code(LUCY_KV_ERR_MISCONF), LUCY_EUNAVAIL);
    assert_non_null(
        strstr(lucy_kv_err_remedy(LUCY_KV_ERR_MISCONF), "stop-writes-on-bgsave-error no"));
}

static void test_url_parse(void **state)
{
    (void)state;
    struct lucy_kv_redis_url u;
    char err[256];
    assert_int_equal(lucy_kv_redis_url_parse("redis://localhost", &u, err, sizeof err), 0);
    assert_string_equal(u.host, "localhost");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 0);
    assert_string_equal(u.password, "");
    assert_int_equal(
        lucy_kv_redis_url_parse("redis://:s3cr%40t@10.0.0.5:6380/2", &u, err, sizeof err), 0);
    assert_string_equal(u.password, "s3cr@t");
    assert_string_equal(u.user, "");
    assert_string_equal(u.host, "10.0.0.5");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 2);
    assert_int_equal(lucy_kv_redis_url_parse("redis://lucy:pw@[::1]:7000/0", &u, err, sizeof err),
                     0);
    assert_string_equal(u.user, "lucy");
    assert_string_equal(u.password, "pw");
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 7000);
    static const char *const bad[] = {"http://x",        "redis://",      "redis://h:0",
                                      "redis://h:99999", "redis://h/abc", "rediss://h",
                                      "redis://:p%4@h"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(lucy_kv_redis_url_parse(bad[i], &u, err, sizeof err), LUCY_EINVAL);
    /* the password never shows up in the message */
    assert_int_equal(lucy_kv_redis_url_parse("redis://:hunter2@h:notaport", &u, err, sizeof err),
                     LUCY_EINVAL);
    assert_null(strstr(err, "hunter2"));
}

/* ---- redis only: failures, typing, pending replays ------------------------ */

static struct backend *redis_only(void)
{
    if (!redis_be.kv) {
        fprintf(stderr, "kv_test: %s\n", redis_be.skip_reason);
        skip();
    }
    return &redis_be;
}

static void test_redis_down_fails_fast(void **state)
{
    (void)state;
    struct backend *b = redis_only();
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", free_port()); /* nobody listens */
    struct lucy_kv_options o = {.redis_url = url, .timeout_ms = 300, .store = b->store};
    struct lucy_kv *kv;
    struct lucy_kv_error e;
    assert_int_equal(lucy_kv_open(&o, &kv, &e), 0); /* opens; connects lazily */
    assert_int_equal(lucy_kv_ping(kv, 1, 0, &e), LUCY_EUNAVAIL);
    assert_int_equal(e.kind, LUCY_KV_ERR_CONN);
    /* inside the backoff window: fails at once, says so */
    char *v;
    size_t len;
    assert_int_equal(lucy_kv_get(kv, "k", &v, &len, 0, &e), LUCY_EUNAVAIL);
    assert_non_null(strstr(e.message, "not retried"));
    /* get_many fails as a whole, with nothing half-filled */
    const char *keys[] = {"k", "l"};
    char *vals[2] = {(char *)1, (char *)1};
    assert_int_equal(lucy_kv_get_many(kv, keys, 2, vals, NULL, 0, &e), LUCY_EUNAVAIL);
    assert_null(vals[0]);
    assert_null(vals[1]);
    /* rate limiting falls back to the policy (default allow) */
    struct lucy_kv_rate rate = {1, 1000, 1, 0};
    struct lucy_kv_rate_result r;
    assert_int_not_equal(lucy_kv_ratelimit(kv, "k", &rate, &r, 0, &e), 0);
    assert_true(r.allowed);
    assert_true(r.from_policy);
    struct lucy_kv_stats s;
    lucy_kv_stats(kv, &s);
    assert_false(s.up);
    assert_true(s.errors[LUCY_KV_ERR_CONN] >= 2);
    lucy_kv_close(kv);

    o.rate_limit_deny = 1;
    assert_int_equal(lucy_kv_open(&o, &kv, &e), 0);
    lucy_kv_ratelimit(kv, "k", &rate, &r, 0, &e);
    assert_false(r.allowed);
    assert_true(r.from_policy);
    lucy_kv_close(kv);
}

static void test_redis_auth_errors(void **state)
{
    (void)state;
    struct backend *b = redis_only();
    struct lucy_kv_error e;
    assert_int_equal(lucy_kv_config_set(b->kv, "requirepass", "pw-kv-test", 0, &e), 0);
    char url[96];
    struct lucy_kv *kv;
    /* no password: NOAUTH on the first command */
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", b->redis_port);
    struct lucy_kv_options o = {.redis_url = url, .timeout_ms = 500};
    assert_int_equal(lucy_kv_open(&o, &kv, &e), 0);
    assert_int_equal(lucy_kv_set(kv, "k", "v", 1, 0, 0, &e), LUCY_EPERM);
    assert_int_equal(e.kind, LUCY_KV_ERR_NOAUTH);
    lucy_kv_close(kv);
    /* wrong password: WRONGPASS, and the password is not in the message */
    snprintf(url, sizeof url, "redis://:wrong-pw-xyz@127.0.0.1:%d", b->redis_port);
    assert_int_equal(lucy_kv_open(&o, &kv, &e), 0);
    assert_int_equal(lucy_kv_ping(kv, 1, 0, &e), LUCY_EPERM);
    assert_int_equal(e.kind, LUCY_KV_ERR_WRONGPASS);
    assert_null(strstr(e.message, "wrong-pw-xyz"));
    lucy_kv_close(kv);
    /* right password, other db */
    snprintf(url, sizeof url, "redis://:pw-kv-test@127.0.0.1:%d/5", b->redis_port);
    assert_int_equal(lucy_kv_open(&o, &kv, &e), 0);
    assert_int_equal(lucy_kv_set(kv, "authed", "yes", 3, 0, 0, &e), 0);
    assert_int_equal(lucy_kv_config_set(kv, "requirepass", "", 0, &e), 0);
    lucy_kv_close(kv);
    /* db 5 is not db 3 */
    char *v;
    size_t len;
    assert_int_equal(lucy_kv_get(b->kv, "authed", &v, &len, 0, &e), LUCY_ENOTFOUND);
}

static void test_redis_hung_then_replay(void **state)
{
    (void)state;
    struct backend *b = redis_only();
    char key[64];
    fresh_key(key, sizeof key, "alias");
    struct lucy_kv_error e;
    int queued = -1;
    assert_int_equal(lucy_kv_set_or_queue(b->kv, key, "v1", 2, &queued, 0, &e), 0);
    assert_int_equal(queued, 0);

    kill(b->redis_pid, SIGSTOP);
    int64_t t0 = now_ms();
    assert_int_equal(lucy_kv_set_or_queue(b->kv, key, "v2", 2, &queued, 300, &e), 0);
    int64_t took = now_ms() - t0;
    assert_int_equal(queued, 1);
    assert_int_equal(e.kind, LUCY_KV_ERR_TIMEOUT);
    assert_true(took < 5000); /* bounded by the timeout, not for ever */
    /* newer writes of the same key queue behind, newest wins */
    assert_int_equal(lucy_kv_set_or_queue(b->kv, key, "v3", 2, &queued, 300, &e), 0);
    assert_int_equal(queued, 1);
    struct lucy_kv_stats s;
    lucy_kv_stats(b->kv, &s);
    assert_int_equal(s.pending, 1);
    assert_true(lucy_kv_replay(b->kv, 0, 300, &e) < 0); /* still hung */

    kill(b->redis_pid, SIGCONT);
    int64_t deadline = now_ms() + 10000;
    int n;
    while ((n = lucy_kv_replay(b->kv, 0, 500, &e)) <= 0) {
        assert_true(now_ms() < deadline);
        sleep_ms(100);
    }
    assert_int_equal(n, 1);
    lucy_kv_stats(b->kv, &s);
    assert_int_equal(s.pending, 0);
    assert_int_equal(s.replayed, 1);
    char *v;
    size_t len;
    assert_int_equal(lucy_kv_get(b->kv, key, &v, &len, 0, &e), 0);
    assert_string_equal(v, "v3");
    free(v);
    /* with nothing pending, writes go straight through again */
    assert_int_equal(lucy_kv_set_or_queue(b->kv, key, "v4", 2, &queued, 0, &e), 0);
    assert_int_equal(queued, 0);
}

static void test_redis_persistence_info(void **state)
{
    (void)state;
    struct backend *b = redis_only();
    struct lucy_kv_persistence p;
    struct lucy_kv_error e;
    assert_int_equal(lucy_kv_persistence(b->kv, &p, 0, &e), 0);
    assert_true(p.rdb_last_bgsave_ok);
    assert_false(p.misconf);
    assert_true(p.stop_writes_on_bgsave_error == 0 || p.stop_writes_on_bgsave_error == 1);
    char where[64];
    lucy_kv_describe(b->kv, where, sizeof where);
    assert_non_null(strstr(where, "127.0.0.1:"));
}

/* -OOM: the write probe sees it (PING does not), nothing is written, and
 * the memory level says FULL; it goes with the limit. */
static void test_redis_persistence_oom_probe(void **state)
{
    (void)state;
    struct backend *b = redis_only();
    struct lucy_kv_persistence p;
    struct lucy_kv_error e;
    assert_int_equal(lucy_kv_config_set(b->kv, "maxmemory", "1", 0, &e), 0);
    int rc = lucy_kv_persistence(b->kv, &p, 0, &e);
    int ping = lucy_kv_ping(b->kv, 1, 0, &e);
    int set = lucy_kv_set(b->kv, "oom-probe-test", "v", 1, 0, 0, &e);
    enum lucy_kv_err_kind set_kind = e.kind;
    assert_int_equal(lucy_kv_config_set(b->kv, "maxmemory", "0", 0, &e), 0);
    assert_int_equal(rc, 0);
    assert_true(p.oom);
    assert_non_null(strstr(p.oom_message, "OOM"));
    assert_int_equal(lucy_kv_memory_level(&p, NULL), LUCY_KV_MEMORY_FULL);
    assert_int_equal(ping, 0);
    assert_int_not_equal(set, 0);
    assert_int_equal(set_kind, LUCY_KV_ERR_OOM);
    assert_int_equal(lucy_kv_persistence(b->kv, &p, 0, &e), 0);
    assert_false(p.oom);
    assert_int_equal(lucy_kv_memory_level(&p, NULL), LUCY_KV_MEMORY_OK);
    char *v = NULL;
    size_t len;
    assert_int_equal(lucy_kv_get(b->kv, "probe:oom", &v, &len, 0, &e), LUCY_ENOTFOUND);
}

/* The one rule for redis:memory and `lucy doctor`. */
static void test_memory_level(void **state)
{
    (void)state;
    static const struct {
        long long used, max;
        const char *policy;
        int oom;
        enum lucy_kv_memory want;
    } rows[] = {
        {100, 0, "noeviction", 0, LUCY_KV_MEMORY_OK},      /* no limit */
        {89, 100, "noeviction", 0, LUCY_KV_MEMORY_OK},     /* room left */
        {90, 100, "noeviction", 0, LUCY_KV_MEMORY_NEAR},   /* at the warn line */
        {95, 100, "volatile-lru", 0, LUCY_KV_MEMORY_NEAR}, /* may find no TTL key */
        {150, 100, "allkeys-lru", 0, LUCY_KV_MEMORY_OK},   /* can always evict */
        {10, 100, "allkeys-lru", 1, LUCY_KV_MEMORY_FULL},  /* the probe decides */
        {-1, -1, "", 1, LUCY_KV_MEMORY_FULL},              /* INFO unknown, refused */
        {-1, 100, "noeviction", 0, LUCY_KV_MEMORY_OK},     /* used unknown */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct lucy_kv_persistence p = {
            .used_memory_bytes = rows[i].used, .maxmemory_bytes = rows[i].max, .oom = rows[i].oom};
        snprintf(p.maxmemory_policy, sizeof p.maxmemory_policy, "%s", rows[i].policy);
        double pct = -1;
        if (lucy_kv_memory_level(&p, &pct) != rows[i].want)
            fail_msg("row %zu: level %d, want %d", i, lucy_kv_memory_level(&p, NULL), rows[i].want);
        assert_true(pct >= 0);
    }
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* hiredis writes with write(2) */
#define CONFORMANCE(be)                                                                            \
    cmocka_unit_test_prestate(test_get_set_del, &be),                                              \
        cmocka_unit_test_prestate(test_get_many, &be),                                             \
        cmocka_unit_test_prestate(test_set_expiry, &be),                                           \
        cmocka_unit_test_prestate(test_set_if_absent, &be),                                        \
        cmocka_unit_test_prestate(test_set_if_absent_race, &be),                                   \
        cmocka_unit_test_prestate(test_claim_is_per_instance, &be),                                \
        cmocka_unit_test_prestate(test_gcra_burst, &be),                                           \
        cmocka_unit_test_prestate(test_gcra_steady, &be),                                          \
        cmocka_unit_test_prestate(test_gcra_uses_the_statement_cache, &be),                        \
        cmocka_unit_test_prestate(test_gcra_event_time, &be)
    const struct CMUnitTest pure[] = {
        cmocka_unit_test(test_error_kinds),
        cmocka_unit_test(test_url_parse),
    };
    const struct CMUnitTest sqlite_tests[] = {CONFORMANCE(sqlite_be)};
    const struct CMUnitTest redis_tests[] = {
        CONFORMANCE(redis_be),
        cmocka_unit_test(test_redis_persistence_info),
        cmocka_unit_test(test_redis_persistence_oom_probe),
        cmocka_unit_test(test_memory_level),
        cmocka_unit_test(test_redis_down_fails_fast),
        cmocka_unit_test(test_redis_auth_errors),
        cmocka_unit_test(test_redis_hung_then_replay),
    };
    int failed = cmocka_run_group_tests_name("kv pure", pure, NULL, NULL);
    failed +=
        cmocka_run_group_tests_name("kv sqlite", sqlite_tests, group_setup_sqlite, group_teardown);
    failed +=
        cmocka_run_group_tests_name("kv redis", redis_tests, group_setup_redis, group_teardown);
    return failed;
}
