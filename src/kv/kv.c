/*
 * kv.c - the key-value wrappers, error kinds, pending replays and the
 * daemon's shared kv instance (see kv.h for the contract).
 *
 * The wrappers check arguments, fill the default timeout, call the
 * backend's slot, and count the call and any error by kind. Transitions
 * between "backend reachable" and "not" are logged once each (WARNING /
 * INFO), so a Redis outage writes two lines, not one per call.
 *
 * Pending replays live in the local store's kv_pending table: one row per
 * key (newest value wins, seq bumps on every change). While any row is
 * pending, new lucy_kv_set_or_queue() writes queue behind it so that an
 * old value can never overwrite a newer one. lucy_kv_replay() applies rows
 * oldest first and deletes each applied row only if its seq is unchanged.
 */
#define _GNU_SOURCE
#include <assert.h>
#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "../error.h"
#include "../log.h"
#include "../lucy.h"
#include "../store/store.h"
#include "kv.h"
#include "kv_int.h"

#define DEFAULT_SQLITE_TIMEOUT_MS 5000
#define DEFAULT_REDIS_TIMEOUT_MS  500
#define REPLAY_BATCH_MAX          256

/* ---- error kinds ---------------------------------------------------------- */

static const struct {
    const char *name;   /* metrics label, log field */
    const char *prefix; /* Redis error reply prefix, NULL = none */
    int code;           /* LUCY_E* */
    const char *remedy; /* what to do */
} kinds[LUCY_KV_ERR_COUNT] = {
    [LUCY_KV_ERR_NONE] = {"none", NULL, 0, "nothing to do"},
    [LUCY_KV_ERR_MISCONF] = {"misconf", "MISCONF", LUCY_EUNAVAIL,
                             "Redis cannot write its snapshot (usually a full disk) and refuses "
                             "writes and PING: free disk space in Redis's dir (`CONFIG GET dir`), "
                             "then `BGSAVE`; or temporarily `CONFIG SET "
                             "stop-writes-on-bgsave-error no` (LUCY_REDIS_AUTOHEAL=1 does this) "
                             "and restore `yes` after a good save; see docs/operations.md (Redis)"},
    [LUCY_KV_ERR_LOADING] = {"loading", "LOADING", LUCY_EUNAVAIL,
                             "Redis is loading its dataset after a restart; wait until INFO "
                             "persistence shows loading:0"},
    [LUCY_KV_ERR_READONLY] = {"readonly", "READONLY", LUCY_EUNAVAIL,
                              "REDIS_URL points at a read-only replica; point it at the primary"},
    [LUCY_KV_ERR_NOAUTH] = {"noauth", "NOAUTH", LUCY_EPERM,
                            "Redis requires a password: set REDIS_URL to "
                            "redis://:PASSWORD@host:port"},
    [LUCY_KV_ERR_WRONGPASS] = {"wrongpass", "WRONGPASS", LUCY_EPERM,
                               "the user or password in REDIS_URL is wrong: compare it with "
                               "Redis's requirepass or ACL users"},
    [LUCY_KV_ERR_NOPERM] = {"noperm", "NOPERM", LUCY_EPERM,
                            "the Redis ACL user in REDIS_URL may not run this command: grant it "
                            "(ACL SETUSER) or use another user"},
    [LUCY_KV_ERR_OOM] = {"oom", "OOM", LUCY_EUNAVAIL,
                         "Redis reached maxmemory and refuses writes: raise maxmemory, set an "
                         "eviction policy (maxmemory-policy allkeys-lru) or free memory"},
    [LUCY_KV_ERR_BUSY] = {"busy", "BUSY", LUCY_EUNAVAIL,
                          "Redis is busy running a long script: wait, or `SCRIPT KILL`"},
    [LUCY_KV_ERR_CONN] = {"connection", NULL, LUCY_EUNAVAIL,
                          "cannot reach Redis: check that it runs and that REDIS_URL's host and "
                          "port are right; lucy reconnects by itself with backoff"},
    [LUCY_KV_ERR_TIMEOUT] = {"timeout", NULL, LUCY_ETIMEDOUT,
                             "Redis did not answer within LUCY_REDIS_TIMEOUT_MS: it may be hung "
                             "(stopped, swapping, a slow command); check the process and "
                             "`redis-cli --latency`"},
    [LUCY_KV_ERR_SERVER] = {"server", NULL, LUCY_EIO,
                            "Redis answered with an error; see the message"},
    [LUCY_KV_ERR_PROTOCOL] = {"protocol", NULL, LUCY_EIO,
                              "Redis answered something lucy does not understand; check that "
                              "REDIS_URL points at Redis 6 or later"},
    [LUCY_KV_ERR_STORE] = {"store", NULL, LUCY_EIO,
                           "the local SQLite store failed; see the store:writable check"},
    [LUCY_KV_ERR_INVALID] = {"invalid", NULL, LUCY_EINVAL, "fix the argument or configuration"},
    [LUCY_KV_ERR_NOMEM] = {"nomem", NULL, LUCY_ENOMEM, "lucy ran out of memory"},
};

const char *lucy_kv_err_kind_name(enum lucy_kv_err_kind kind)
{
    return (unsigned)kind < LUCY_KV_ERR_COUNT ? kinds[kind].name : "unknown";
}

const char *lucy_kv_err_remedy(enum lucy_kv_err_kind kind)
{
    return (unsigned)kind < LUCY_KV_ERR_COUNT ? kinds[kind].remedy : "see the log";
}

int lucy_kv_err_code(enum lucy_kv_err_kind kind)
{
    return (unsigned)kind < LUCY_KV_ERR_COUNT ? kinds[kind].code : LUCY_EIO;
}

enum lucy_kv_err_kind lucy_kv_err_kind_of_reply(const char *reply)
{
    if (!reply)
        return LUCY_KV_ERR_SERVER;
    if (*reply == '-')
        reply++;
    for (int k = 0; k < LUCY_KV_ERR_COUNT; k++) {
        const char *p = kinds[k].prefix;
        if (!p)
            continue;
        size_t n = strlen(p);
        if (strncmp(reply, p, n) == 0 && (reply[n] == ' ' || reply[n] == '\0'))
            return (enum lucy_kv_err_kind)k;
    }
    return LUCY_KV_ERR_SERVER;
}

int lucy_kv_err_set(struct lucy_kv_error *err, enum lucy_kv_err_kind kind, const char *fmt, ...)
{
    int code = lucy_kv_err_code(kind);
    if (err) {
        err->kind = kind;
        err->code = code;
        err->message[0] = '\0';
        if (fmt) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(err->message, sizeof err->message, fmt, ap);
            va_end(ap);
        }
    }
    return code;
}

static void err_clear(struct lucy_kv_error *err)
{
    if (err) {
        err->kind = LUCY_KV_ERR_NONE;
        err->code = 0;
        err->message[0] = '\0';
    }
}

/* ---- clocks and GCRA ------------------------------------------------------ */

int64_t kv_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t kv_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t kv_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t kv_gcra_interval_us(const struct lucy_kv_rate *rate)
{
    int64_t t = rate->period_ms * 1000 / rate->count;
    return t > 0 ? t : 1;
}

int64_t kv_gcra(int64_t tat_us, int64_t now_us, const struct lucy_kv_rate *rate,
                struct lucy_kv_rate_result *out)
{
    int64_t t = kv_gcra_interval_us(rate);
    int64_t dvt = t * rate->burst; /* delay variation tolerance */
    int64_t tat = tat_us > now_us ? tat_us : now_us;
    int64_t new_tat = tat + t;
    int64_t allow_at = new_tat - dvt;
    memset(out, 0, sizeof *out);
    if (now_us < allow_at) {
        out->allowed = 0;
        out->retry_after_ms = (allow_at - now_us + 999) / 1000;
        return tat_us;
    }
    out->allowed = 1;
    out->remaining = (int)((dvt - (new_tat - now_us)) / t);
    return new_tat;
}

/* ---- the handle ----------------------------------------------------------- */

struct lucy_kv {
    const struct lucy_kv_ops *ops; /* the backend */
    void *st;                      /* its state */
    struct lucy_store *store;      /* pending replays (may be NULL) */
    int default_timeout_ms;        /* used when a call passes <= 0 */
    int rate_limit_deny;           /* LUCY_RATE_LIMIT_ON_ERROR=deny */
    _Atomic unsigned long long calls[LUCY_KV_OP_COUNT];
    _Atomic unsigned long long errors[LUCY_KV_ERR_COUNT];
    _Atomic unsigned long long policy_decisions; /* rate limits decided by ON_ERROR */
    _Atomic unsigned long long replayed;         /* pending writes applied */
    atomic_long pending_hint;                    /* rows in kv_pending (approx.) */
    pthread_mutex_t lock;                        /* guards up, last_error */
    int up;                                      /* last call reached the backend */
    struct lucy_kv_error last_error;             /* most recent failure */
    pthread_mutex_t replay_lock;                 /* one replay at a time */
    char instance_id[40];                        /* meta.kv_instance_id, hex */
};

/* Kinds that mean "the backend did not answer at all". */
static int unreachable(enum lucy_kv_err_kind kind)
{
    return kind == LUCY_KV_ERR_CONN || kind == LUCY_KV_ERR_TIMEOUT;
}

/* Counts one call, records its outcome and logs up/down transitions. */
static int account(struct lucy_kv *kv, enum lucy_kv_op op, int rc, struct lucy_kv_error *e)
{
    atomic_fetch_add(&kv->calls[op], 1);
    if (rc != 0 && rc != LUCY_ENOTFOUND) {
        enum lucy_kv_err_kind kind = e->kind;
        if ((unsigned)kind >= LUCY_KV_ERR_COUNT || kind == LUCY_KV_ERR_NONE)
            kind = LUCY_KV_ERR_SERVER;
        atomic_fetch_add(&kv->errors[kind], 1);
    }
    int reached = rc == 0 || rc == LUCY_ENOTFOUND || !unreachable(e->kind);
    if (e->kind == LUCY_KV_ERR_INVALID || e->kind == LUCY_KV_ERR_NOMEM)
        return rc; /* says nothing about the backend */
    pthread_mutex_lock(&kv->lock);
    int was = kv->up;
    kv->up = reached;
    if (rc != 0 && rc != LUCY_ENOTFOUND)
        kv->last_error = *e;
    pthread_mutex_unlock(&kv->lock);
    if (was && !reached)
        lucy_log(LUCY_LOG_WARNING, "kv backend unreachable", "{s:s,s:s,s:s,s:s}", "backend",
                 kv->ops->name, "kind", lucy_kv_err_kind_name(e->kind), "error", e->message,
                 "remedy", lucy_kv_err_remedy(e->kind));
    else if (reached && rc != 0 && rc != LUCY_ENOTFOUND)
        /* up but refusing (MISCONF, READONLY, OOM, NOAUTH ...): say so; the
         * log's suppression keeps one line per kind and message a minute */
        lucy_log(LUCY_LOG_WARNING, "kv backend refused a command", "{s:s,s:s,s:s,s:s}", "backend",
                 kv->ops->name, "kind", lucy_kv_err_kind_name(e->kind), "error", e->message,
                 "remedy", lucy_kv_err_remedy(e->kind));
    else if (!was && reached)
        lucy_log(LUCY_LOG_INFO, "kv backend reachable", "{s:s}", "backend", kv->ops->name);
    return rc;
}

static int count_pending(sqlite3 *db, void *arg)
{
    long long *out = arg;
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(
        db, "SELECT count(*), coalesce(min(queued_at_ms),0) FROM kv_pending", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return lucy_store_err(rc);
    if (sqlite3_step(st) == SQLITE_ROW) {
        out[0] = sqlite3_column_int64(st, 0);
        out[1] = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    return 0;
}

static int step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : lucy_store_err(rc);
}

/* meta.kv_instance_id: read it, or create it once (INSERT OR IGNORE, so
 * two processes opening one store agree), then read it back. */
static int read_instance_id(sqlite3 *db, void *arg)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'kv_instance_id'", -1, &st,
                                NULL);
    if (rc != SQLITE_OK)
        return lucy_store_err(rc);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        snprintf(arg, 40, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return 0;
}

static int create_instance_id(sqlite3 *db, struct kv_job *j)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(
        db, "INSERT OR IGNORE INTO meta (key, value) VALUES ('kv_instance_id', ?)", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return lucy_store_err(rc);
    sqlite3_bind_text(st, 1, j->value, -1, SQLITE_STATIC);
    return step_done(st);
}

static void random_id(char *out, size_t len)
{
    unsigned char b[16] = {0};
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        snprintf((char *)b, sizeof b, "%lx%lx", (long)ts.tv_nsec, (long)getpid());
    }
    for (size_t i = 0; i < sizeof b && 2 * i + 2 < len; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static void load_instance_id(struct lucy_kv *kv)
{
    char id[40] = "";
    if (kv->store && lucy_store_read(kv->store, read_instance_id, id) == 0 && !id[0]) {
        char fresh[40];
        random_id(fresh, sizeof fresh);
        struct kv_job *j = kv_job_new("-", fresh, strlen(fresh));
        if (j) {
            j->fn = create_instance_id;
            if (kv_job_write(kv->store, j, 0) != LUCY_ETIMEDOUT)
                free(j);
        }
        lucy_store_read(kv->store, read_instance_id, id);
    }
    if (!id[0])
        random_id(id, sizeof id); /* no store: one id per process */
    snprintf(kv->instance_id, sizeof kv->instance_id, "%s", id);
}

int lucy_kv_open(const struct lucy_kv_options *opt, struct lucy_kv **out, struct lucy_kv_error *err)
{
    assert(opt && out);
    *out = NULL;
    err_clear(err);
    int redis = opt->redis_url && *opt->redis_url;
    if (!redis && !opt->store)
        return lucy_kv_err_set(err, LUCY_KV_ERR_INVALID, "the sqlite kv backend needs a store");
    struct lucy_kv *kv = calloc(1, sizeof *kv);
    if (!kv)
        return lucy_kv_err_set(err, LUCY_KV_ERR_NOMEM, "out of memory");
    kv->ops = redis ? &lucy_kv_redis_ops : &lucy_kv_sqlite_ops;
    kv->store = opt->store;
    kv->rate_limit_deny = opt->rate_limit_deny;
    kv->default_timeout_ms =
        redis ? (opt->timeout_ms > 0 ? opt->timeout_ms : DEFAULT_REDIS_TIMEOUT_MS)
              : DEFAULT_SQLITE_TIMEOUT_MS;
    kv->up = 1;
    pthread_mutex_init(&kv->lock, NULL);
    pthread_mutex_init(&kv->replay_lock, NULL);
    struct lucy_kv_options o = *opt;
    o.timeout_ms = kv->default_timeout_ms;
    int rc = kv->ops->open(&o, &kv->st, err);
    if (rc) {
        pthread_mutex_destroy(&kv->lock);
        pthread_mutex_destroy(&kv->replay_lock);
        free(kv);
        return rc;
    }
    if (kv->store) {
        long long p[2] = {0, 0};
        if (lucy_store_read(kv->store, count_pending, p) == 0)
            atomic_store(&kv->pending_hint, (long)p[0]);
    }
    load_instance_id(kv);
    *out = kv;
    return 0;
}

void lucy_kv_close(struct lucy_kv *kv)
{
    if (!kv)
        return;
    kv->ops->close(kv->st);
    pthread_mutex_destroy(&kv->lock);
    pthread_mutex_destroy(&kv->replay_lock);
    free(kv);
}

const struct lucy_kv_ops *lucy_kv_backend(const struct lucy_kv *kv)
{
    return kv->ops;
}

const char *lucy_kv_name(const struct lucy_kv *kv)
{
    return kv->ops->name;
}

void lucy_kv_describe(const struct lucy_kv *kv, char *buf, size_t len)
{
    if (kv->ops->describe)
        kv->ops->describe(kv->st, buf, len);
    else
        snprintf(buf, len, "%s", kv->ops->name);
}

int lucy_kv_rate_limit_denies(const struct lucy_kv *kv)
{
    return kv->rate_limit_deny;
}

/* ---- wrappers ------------------------------------------------------------- */

/* Common prologue: a local error struct when the caller gave none, the
 * default timeout, and a check that the slot exists. */
#define PROLOGUE(slot)                                                                             \
    struct lucy_kv_error local_err;                                                                \
    if (!err)                                                                                      \
        err = &local_err;                                                                          \
    err_clear(err);                                                                                \
    if (timeout_ms <= 0)                                                                           \
        timeout_ms = kv->default_timeout_ms;                                                       \
    if (!kv->ops->slot)                                                                            \
    return lucy_kv_err_set(err, LUCY_KV_ERR_INVALID, "the %s kv backend has no " #slot,            \
                           kv->ops->name)

static int bad_key(const char *key)
{
    return !key || !*key;
}

int lucy_kv_get(struct lucy_kv *kv, const char *key, char **value, size_t *len, int timeout_ms,
                struct lucy_kv_error *err)
{
    assert(kv && value);
    *value = NULL;
    if (len)
        *len = 0;
    PROLOGUE(get);
    if (bad_key(key))
        return lucy_kv_err_set(err, LUCY_KV_ERR_INVALID, "empty key");
    size_t n = 0;
    int rc = kv->ops->get(kv->st, key, value, &n, timeout_ms, err);
    if (len)
        *len = n;
    return account(kv, LUCY_KV_OP_GET, rc, err);
}

int lucy_kv_get_many(struct lucy_kv *kv, const char *const *keys, size_t n, char **values,
                     size_t *lens, int timeout_ms, struct lucy_kv_error *err)
{
    assert(kv && (values || n == 0));
    for (size_t i = 0; i < n; i++) {
        values[i] = NULL;
        if (lens)
            lens[i] = 0;
    }
    PROLOGUE(get);
    for (size_t i = 0; i < n; i++)
        if (bad_key(keys[i]))
            return lucy_kv_err_set(err, LUCY_KV_ERR_INVALID, "empty key");
    if (n == 0)
        return 0;
    size_t *got = lens ? lens : calloc(n, sizeof *got);
    if (!got)
        return lucy_kv_err_set(err, LUCY_KV_ERR_NOMEM, "out of memory");
    int rc = 0;
    if (kv->ops->get_many) {
        rc = kv->ops->get_many(kv->st, keys, n, values, got, timeout_ms, err);
    } else {
        /* the default: one get per key, all or nothing */
        for (size_t i = 0; i < n && rc == 0; i++) {
            rc = kv->ops->get(kv->st, keys[i], &values[i], &got[i], timeout_ms, err);
            if (rc == LUCY_ENOTFOUND) {
                values[i] = NULL;
                rc = 0;
            }
        }
    }
    if (rc) {
        for (size_t i = 0; i < n; i++) {
            free(values[i]);
            values[i] = NULL;
            got[i] = 0;
        }
    }
    if (!lens)
        free(got);
    return account(kv, LUCY_KV_OP_GET, rc, err);
}

int lucy_kv_set(struct lucy_kv *kv, const char *key, const void *value, size_t len, int64_t ttl_ms,
                int timeout_ms, struct lucy_kv_error *err)
{
    assert(kv);
    PROLOGUE(set);
    if (bad_key(key) || (!value && len) || ttl_ms < 0)
        return lucy_kv_err_set(err, LUCY_KV_ERR_INVALID, "empty key, NULL value or negative ttl");
    int rc = kv->ops->set(kv->st, key, value ? value : "", len, ttl_ms, timeout_ms, err);
    return account(kv, LUCY_KV_OP_SET, rc, err);
}

int lucy_kv_set_if_absent(struct lucy_kv *kv, const char *key, const void *value, size_t len,
                          int64_t ttl_ms, int *stored, int timeout_ms, struct lucy_kv_error *err)
{
    assert(kv && stored);
    *stored = 0;
    PROLOGUE(set_if_absent);
    if (bad_key(key) || (!value && len) || ttl_ms <= 0)
        return lucy_kv_err_set(err, LUCY_KV_ERR_INVALID,
                               "set_if_absent needs a key, a value and a ttl > 0");
    int rc = kv->ops->set_if_absent(kv->st, key, value ? value : "", len, ttl_ms, stored,
                                    timeout_ms, err);
    return account(kv, LUCY_KV_OP_SET_IF_ABSENT, rc, err);
}

int lucy_kv_del(struct lucy_kv *kv, const char *key, int timeout_ms, struct lucy_kv_error *err)
{
    assert(kv);
    PROLOGUE(del);
    if (bad_key(key))
        return lucy_kv_err_set(err, LUCY_KV_ERR_INVALID, "empty key");
    return account(kv, LUCY_KV_OP_DEL, kv->ops->del(kv->st, key, timeout_ms, err), err);
}

int lucy_kv_ping(struct lucy_kv *kv, int force, int timeout_ms, struct lucy_kv_error *err)
{
    assert(kv);
    PROLOGUE(ping);
    return account(kv, LUCY_KV_OP_PING, kv->ops->ping(kv->st, force, timeout_ms, err), err);
}

int lucy_kv_persistence(struct lucy_kv *kv, struct lucy_kv_persistence *out, int timeout_ms,
                        struct lucy_kv_error *err)
{
    assert(kv && out);
    memset(out, 0, sizeof *out);
    PROLOGUE(persistence);
    int rc = kv->ops->persistence(kv->st, out, timeout_ms, err);
    if (rc && unreachable(err->kind))
        account(kv, LUCY_KV_OP_PING, rc, err);
    return rc;
}

int lucy_kv_config_set(struct lucy_kv *kv, const char *name, const char *value, int timeout_ms,
                       struct lucy_kv_error *err)
{
    assert(kv && name && value);
    PROLOGUE(config_set);
    return kv->ops->config_set(kv->st, name, value, timeout_ms, err);
}

int lucy_kv_bgsave(struct lucy_kv *kv, int timeout_ms, struct lucy_kv_error *err)
{
    assert(kv);
    PROLOGUE(bgsave);
    return kv->ops->bgsave(kv->st, timeout_ms, err);
}

int lucy_kv_maintain(struct lucy_kv *kv, int timeout_ms, struct lucy_kv_error *err)
{
    assert(kv);
    PROLOGUE(maintain);
    return kv->ops->maintain(kv->st, timeout_ms, err);
}

int lucy_kv_ratelimit(struct lucy_kv *kv, const char *key, const struct lucy_kv_rate *rate,
                      struct lucy_kv_rate_result *out, int timeout_ms, struct lucy_kv_error *err)
{
    assert(kv && rate && out);
    memset(out, 0, sizeof *out);
    PROLOGUE(ratelimit);
    int rc;
    if (bad_key(key) || rate->count < 1 || rate->period_ms < 1 || rate->burst < 1)
        rc = lucy_kv_err_set(err, LUCY_KV_ERR_INVALID,
                             "ratelimit needs a key, count >= 1, period_ms >= 1, burst >= 1");
    else
        rc = account(kv, LUCY_KV_OP_RATELIMIT,
                     kv->ops->ratelimit(kv->st, key, rate, out, timeout_ms, err), err);
    if (rc) {
        memset(out, 0, sizeof *out);
        out->allowed = !kv->rate_limit_deny;
        out->from_policy = 1;
        atomic_fetch_add(&kv->policy_decisions, 1);
    }
    return rc;
}

int lucy_kv_can_ratelimit_in_write(const struct lucy_kv *kv)
{
    return kv->ops->ratelimit_in_write != NULL;
}

int lucy_kv_ratelimit_in_write(struct lucy_kv *kv, sqlite3 *db, const char *key,
                               const struct lucy_kv_rate *rate, struct lucy_kv_rate_result *out,
                               struct lucy_kv_error *err)
{
    assert(kv && db && rate && out);
    memset(out, 0, sizeof *out);
    struct lucy_kv_error local_err;
    if (!err)
        err = &local_err;
    err_clear(err);
    int rc;
    if (!kv->ops->ratelimit_in_write)
        rc = lucy_kv_err_set(err, LUCY_KV_ERR_INVALID,
                             "the %s kv backend cannot rate-limit inside a store write; use "
                             "lucy_kv_ratelimit()",
                             kv->ops->name);
    else if (bad_key(key) || rate->count < 1 || rate->period_ms < 1 || rate->burst < 1)
        rc = lucy_kv_err_set(err, LUCY_KV_ERR_INVALID,
                             "ratelimit needs a key, count >= 1, period_ms >= 1, burst >= 1");
    else
        rc = account(kv, LUCY_KV_OP_RATELIMIT,
                     kv->ops->ratelimit_in_write(kv->st, db, key, rate, out, err), err);
    if (rc) {
        memset(out, 0, sizeof *out);
        out->allowed = !kv->rate_limit_deny;
        out->from_policy = 1;
        atomic_fetch_add(&kv->policy_decisions, 1);
    }
    return rc;
}

int lucy_kv_claim(struct lucy_kv *kv, const char *key, int64_t ttl_ms, int *mine, int timeout_ms,
                  struct lucy_kv_error *err)
{
    assert(kv && mine);
    *mine = 1;
    struct lucy_kv_error local_err;
    if (!err)
        err = &local_err;
    int stored = 0;
    const char *id = kv->instance_id;
    int rc = lucy_kv_set_if_absent(kv, key, id, strlen(id), ttl_ms, &stored, timeout_ms, err);
    if (rc || stored)
        return rc;
    char *holder = NULL;
    size_t len = 0;
    rc = lucy_kv_get(kv, key, &holder, &len, timeout_ms, err);
    if (rc == LUCY_ENOTFOUND) /* expired in between: try once more */
        return lucy_kv_claim(kv, key, ttl_ms, mine, timeout_ms, err);
    if (rc == 0)
        *mine = len == strlen(id) && memcmp(holder, id, len) == 0;
    free(holder);
    return rc;
}

int lucy_kv_is_shared(const struct lucy_kv *kv)
{
    return kv->ops != &lucy_kv_sqlite_ops;
}

const char *lucy_kv_instance_id(const struct lucy_kv *kv)
{
    return kv->instance_id;
}

/* ---- pending writes ------------------------------------------------------- */

struct kv_job *kv_job_new(const char *key, const void *value, size_t len)
{
    size_t klen = strlen(key);
    struct kv_job *j = calloc(1, sizeof *j + klen + 1 + (value ? len + 1 : 0));
    if (!j)
        return NULL;
    j->key = j->data;
    memcpy(j->key, key, klen + 1);
    if (value) {
        j->value = j->data + klen + 1;
        memcpy(j->value, value, len);
        j->value[len] = '\0';
        j->len = len;
    }
    j->now_ms = kv_wall_ms();
    return j;
}

static void job_unref(struct kv_job *j)
{
    if (atomic_fetch_sub(&j->refs, 1) == 1)
        free(j);
}

static int job_run(sqlite3 *db, void *arg)
{
    struct kv_job *j = arg;
    int rc = j->fn(db, j);
    job_unref(j);
    return rc;
}

int kv_job_write(struct lucy_store *store, struct kv_job *job, int timeout_ms)
{
    atomic_store(&job->refs, 2);
    int rc = lucy_store_write(store, job_run, job, timeout_ms);
    if (rc == LUCY_ETIMEDOUT)
        job_unref(job);
    return rc;
}

/* Upserts the job's key into kv_pending; job->stored = 1 for a new row. */
static int queue_fn(sqlite3 *db, struct kv_job *j)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, "SELECT 1 FROM kv_pending WHERE key = ?", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return lucy_store_err(rc);
    sqlite3_bind_text(st, 1, j->key, -1, SQLITE_STATIC);
    j->stored = sqlite3_step(st) != SQLITE_ROW;
    sqlite3_finalize(st);
    rc = sqlite3_prepare_v2(db,
                            "INSERT INTO kv_pending (key, op, value, seq, queued_at_ms, last_error)"
                            " VALUES (?1, ?2, ?3, 1, ?4, ?5) ON CONFLICT (key) DO UPDATE SET"
                            " op = excluded.op, value = excluded.value, seq = seq + 1,"
                            " last_error = excluded.last_error",
                            -1, &st, NULL);
    if (rc != SQLITE_OK)
        return lucy_store_err(rc);
    sqlite3_bind_text(st, 1, j->key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, j->value ? "set" : "del", -1, SQLITE_STATIC);
    if (j->value)
        sqlite3_bind_blob(st, 3, j->value, (int)j->len, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 3);
    sqlite3_bind_int64(st, 4, j->now_ms);
    if (j->extra)
        sqlite3_bind_text(st, 5, j->extra, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 5);
    return step_done(st);
}

int lucy_kv_set_or_queue(struct lucy_kv *kv, const char *key, const void *value, size_t len,
                         int *queued, int timeout_ms, struct lucy_kv_error *err)
{
    assert(kv);
    struct lucy_kv_error local_err;
    if (!err)
        err = &local_err;
    err_clear(err);
    if (queued)
        *queued = 0;
    if (timeout_ms <= 0)
        timeout_ms = kv->default_timeout_ms;
    if (bad_key(key))
        return lucy_kv_err_set(err, LUCY_KV_ERR_INVALID, "empty key");
    int rc;
    int behind = atomic_load(&kv->pending_hint) > 0;
    if (!behind) {
        rc = value ? lucy_kv_set(kv, key, value, len, 0, timeout_ms, err)
                   : lucy_kv_del(kv, key, timeout_ms, err);
        /* queueing into the store the sqlite backend just failed on would not help */
        if (rc == 0 || !kv->store || kv->ops == &lucy_kv_sqlite_ops ||
            err->kind == LUCY_KV_ERR_INVALID || err->kind == LUCY_KV_ERR_NOMEM)
            return rc;
    }
    struct kv_job *j = kv_job_new(key, value, len);
    if (!j)
        return lucy_kv_err_set(err, LUCY_KV_ERR_NOMEM, "out of memory");
    char reason[300];
    snprintf(reason, sizeof reason, "%s: %s",
             behind ? "queued behind older writes" : lucy_kv_err_kind_name(err->kind),
             behind ? "" : err->message);
    j->extra = reason;
    j->fn = queue_fn;
    /* No timeout for the local queue write: the job points at `reason` on
     * this stack, and the local store answers or fails on its own. */
    rc = kv_job_write(kv->store, j, 0);
    int added = j->stored;
    free(j);
    if (rc)
        return lucy_kv_err_set(err, LUCY_KV_ERR_STORE,
                               "cannot queue the write in the local store: %s", lucy_strerror(rc));
    if (added)
        atomic_fetch_add(&kv->pending_hint, 1);
    if (queued)
        *queued = 1;
    if (behind)
        lucy_kv_err_set(err, LUCY_KV_ERR_NONE, "queued behind older pending writes");
    err->code = 0;
    return 0;
}

struct pending_row {
    char *key;
    char *value; /* NULL = delete */
    size_t len;
    long long seq;
};

struct pending_list {
    struct pending_row *rows;
    int n;
    int max;
};

static int read_pending(sqlite3 *db, void *arg)
{
    struct pending_list *l = arg;
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT key, op, value, seq FROM kv_pending"
                                " ORDER BY queued_at_ms, key LIMIT ?",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return lucy_store_err(rc);
    sqlite3_bind_int(st, 1, l->max);
    while (l->n < l->max && sqlite3_step(st) == SQLITE_ROW) {
        struct pending_row *r = &l->rows[l->n];
        memset(r, 0, sizeof *r);
        r->key = strdup((const char *)sqlite3_column_text(st, 0));
        int is_set = strcmp((const char *)sqlite3_column_text(st, 1), "set") == 0;
        if (is_set) {
            size_t n = (size_t)sqlite3_column_bytes(st, 2);
            const void *b = sqlite3_column_blob(st, 2);
            r->value = malloc(n + 1);
            if (r->value) {
                if (n)
                    memcpy(r->value, b, n);
                r->value[n] = '\0';
            }
            r->len = n;
        }
        r->seq = sqlite3_column_int64(st, 3);
        l->n++;
        if (!r->key || (is_set && !r->value)) {
            sqlite3_finalize(st);
            return LUCY_ENOMEM;
        }
    }
    sqlite3_finalize(st);
    return 0;
}

/* Deletes the applied rows whose seq did not change meanwhile (extra =
 * the list, count = how many of its rows were applied). */
static int unqueue_fn(sqlite3 *db, struct kv_job *j)
{
    struct pending_list *l = j->extra;
    sqlite3_stmt *st;
    int rc =
        sqlite3_prepare_v2(db, "DELETE FROM kv_pending WHERE key = ? AND seq = ?", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return lucy_store_err(rc);
    for (int i = 0; i < j->count; i++) {
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, l->rows[i].key, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, l->rows[i].seq);
        rc = sqlite3_step(st);
        if (rc != SQLITE_DONE) {
            sqlite3_finalize(st);
            return lucy_store_err(rc);
        }
        j->stored += sqlite3_changes(db);
    }
    sqlite3_finalize(st);
    return 0;
}

static int note_failure_fn(sqlite3 *db, struct kv_job *j)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db,
                                "UPDATE kv_pending SET attempts = attempts + 1, last_error = ?"
                                " WHERE key = ?",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return lucy_store_err(rc);
    sqlite3_bind_text(st, 1, j->value, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, j->key, -1, SQLITE_STATIC);
    return step_done(st);
}

int lucy_kv_replay(struct lucy_kv *kv, int max, int timeout_ms, struct lucy_kv_error *err)
{
    assert(kv);
    struct lucy_kv_error local_err;
    if (!err)
        err = &local_err;
    err_clear(err);
    if (!kv->store || atomic_load(&kv->pending_hint) <= 0)
        return 0;
    if (max <= 0 || max > REPLAY_BATCH_MAX)
        max = REPLAY_BATCH_MAX;
    pthread_mutex_lock(&kv->replay_lock);
    struct pending_row rows[REPLAY_BATCH_MAX];
    struct pending_list l = {rows, 0, max};
    int rc = lucy_store_read(kv->store, read_pending, &l);
    int applied = 0;
    if (rc)
        lucy_kv_err_set(err, LUCY_KV_ERR_STORE, "cannot read kv_pending: %s", lucy_strerror(rc));
    for (int i = 0; rc == 0 && i < l.n; i++) {
        struct pending_row *r = &l.rows[i];
        int e = r->value ? lucy_kv_set(kv, r->key, r->value, r->len, 0, timeout_ms, err)
                         : lucy_kv_del(kv, r->key, timeout_ms, err);
        atomic_fetch_add(&kv->calls[LUCY_KV_OP_REPLAY], 1);
        if (e) {
            rc = e;
            char why[300];
            snprintf(why, sizeof why, "%s: %s", lucy_kv_err_kind_name(err->kind), err->message);
            struct kv_job *j = kv_job_new(r->key, why, strlen(why));
            if (j) {
                j->fn = note_failure_fn;
                if (kv_job_write(kv->store, j, 0) != LUCY_ETIMEDOUT)
                    free(j);
            }
            break;
        }
        applied++;
    }
    if (applied > 0) {
        struct kv_job *j = kv_job_new("-", NULL, 0);
        if (j) {
            j->fn = unqueue_fn;
            j->extra = &l;
            j->count = applied;
            /* no timeout: the job points at this frame's list */
            if (kv_job_write(kv->store, j, 0) == 0)
                atomic_fetch_add(&kv->replayed, (unsigned long long)j->stored);
            free(j);
        }
        long long p[2] = {0, 0};
        if (lucy_store_read(kv->store, count_pending, p) == 0)
            atomic_store(&kv->pending_hint, (long)p[0]);
        lucy_log(LUCY_LOG_INFO, "kv pending writes replayed", "{s:i,s:I}", "count", applied,
                 "still_pending", (json_int_t)p[0]);
    }
    for (int i = 0; i < l.n; i++) {
        free(l.rows[i].key);
        free(l.rows[i].value);
    }
    pthread_mutex_unlock(&kv->replay_lock);
    return rc ? rc : applied;
}

void lucy_kv_stats(struct lucy_kv *kv, struct lucy_kv_stats *out)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < LUCY_KV_OP_COUNT; i++)
        out->calls[i] = atomic_load(&kv->calls[i]);
    for (int i = 0; i < LUCY_KV_ERR_COUNT; i++)
        out->errors[i] = atomic_load(&kv->errors[i]);
    out->rate_limit_policy_decisions = atomic_load(&kv->policy_decisions);
    out->replayed = atomic_load(&kv->replayed);
    out->pending = -1;
    if (kv->store) {
        long long p[2] = {0, 0};
        if (lucy_store_read(kv->store, count_pending, p) == 0) {
            out->pending = p[0];
            out->oldest_pending_ms = p[1];
            atomic_store(&kv->pending_hint, (long)p[0]);
        }
    }
    pthread_mutex_lock(&kv->lock);
    out->up = kv->up;
    out->last_error = kv->last_error;
    pthread_mutex_unlock(&kv->lock);
}

/* ---- redis:// URLs -------------------------------------------------------- */

static int hexval(int c)
{
    return isdigit(c) ? c - '0' : isxdigit(c) ? (tolower(c) - 'a' + 10) : -1;
}

/* Copies s[0..n) into out (outlen bytes) decoding %XX. 0 or -1. */
static int decode(const char *s, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = hexval((unsigned char)s[i + 1]), lo = hexval((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = hi * 16 + lo;
            i += 2;
        }
        if (o + 1 >= outlen)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 0;
}

int lucy_kv_redis_url_parse(const char *url, struct lucy_kv_redis_url *out, char *err,
                            size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->port = 6379;
    if (!url || strncmp(url, "redis://", 8) != 0) {
        snprintf(err, errlen,
                 "REDIS_URL must start with redis:// (rediss:// and unix sockets are not "
                 "supported): redis://[[user]:password@]host[:port][/db]");
        return LUCY_EINVAL;
    }
    const char *p = url + 8;
    const char *end = p + strcspn(p, "/?#");
    const char *at = NULL;
    for (const char *q = p; q < end; q++)
        if (*q == '@')
            at = q; /* the last @: passwords may hold an unescaped one */
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *uend = colon ? colon : at;
        if (decode(p, (size_t)(uend - p), out->user, sizeof out->user) != 0 ||
            (colon && decode(colon + 1, (size_t)(at - colon - 1), out->password,
                             sizeof out->password) != 0)) {
            snprintf(err, errlen,
                     "REDIS_URL has a malformed or too long user or password "
                     "(percent-encode special characters)");
            memset(out->password, 0, sizeof out->password);
            return LUCY_EINVAL;
        }
        if (!colon && out->user[0]) {
            /* redis://secret@host: treat a lone userinfo as the password */
            snprintf(out->password, sizeof out->password, "%s", out->user);
            out->user[0] = '\0';
        }
        p = at + 1;
    }
    const char *hend;
    const char *hstart = p;
    if (*p == '[') {
        hstart = p + 1;
        hend = memchr(hstart, ']', (size_t)(end - hstart));
        if (!hend) {
            snprintf(err, errlen, "REDIS_URL has an unterminated [IPv6] host");
            return LUCY_EINVAL;
        }
        p = hend + 1;
    } else {
        hend = memchr(p, ':', (size_t)(end - p));
        if (!hend)
            hend = end;
        p = hend;
    }
    size_t hl = (size_t)(hend - hstart);
    if (hl == 0 || hl >= sizeof out->host) {
        snprintf(err, errlen, "REDIS_URL has no host: redis://[[user]:password@]host[:port][/db]");
        return LUCY_EINVAL;
    }
    memcpy(out->host, hstart, hl);
    out->host[hl] = '\0';
    if (p < end && *p == ':') {
        char *e;
        long port = strtol(p + 1, &e, 10);
        if (e == p + 1 || e != end || port < 1 || port > 65535) {
            snprintf(err, errlen, "REDIS_URL has a bad port: expected 1 to 65535");
            return LUCY_EINVAL;
        }
        out->port = (int)port;
    } else if (p != end) {
        snprintf(err, errlen, "REDIS_URL has junk after the host");
        return LUCY_EINVAL;
    }
    if (*end == '/' && end[1] && end[1] != '?' && end[1] != '#') {
        char *e;
        long db = strtol(end + 1, &e, 10);
        if (e == end + 1 || (*e && *e != '?' && *e != '#') || db < 0 || db > 1000000) {
            snprintf(err, errlen, "REDIS_URL has a bad database number after the /");
            return LUCY_EINVAL;
        }
        out->db = (int)db;
    }
    return 0;
}

/* ---- the daemon's shared instance ----------------------------------------- */

static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static struct lucy_kv *shared;
static int shared_refs;

int lucy_kv_shared_acquire(struct lucy_ctx *ctx, struct lucy_kv **out, char *err, size_t errlen)
{
    int rc = 0;
    pthread_mutex_lock(&shared_lock);
    if (!shared) {
        const struct lucy_config *cfg = ctx->cfg;
        struct lucy_kv_options o = {
            .redis_url = cfg->redis_url,
            .timeout_ms = cfg->redis_timeout_ms,
            .pool_size = cfg->redis_pool_size,
            .rate_limit_deny =
                cfg->rate_limit_on_error && strcmp(cfg->rate_limit_on_error, "deny") == 0,
            .store = ctx->store,
        };
        struct lucy_kv_error e;
        rc = lucy_kv_open(&o, &shared, &e);
        if (rc)
            snprintf(err, errlen, "cannot open the kv backend: %s", e.message);
    }
    if (rc == 0) {
        shared_refs++;
        *out = shared;
    }
    pthread_mutex_unlock(&shared_lock);
    return rc;
}

void lucy_kv_shared_release(struct lucy_kv *kv)
{
    if (!kv)
        return;
    pthread_mutex_lock(&shared_lock);
    assert(kv == shared && shared_refs > 0);
    if (--shared_refs == 0) {
        lucy_kv_close(shared);
        shared = NULL;
    }
    pthread_mutex_unlock(&shared_lock);
}
