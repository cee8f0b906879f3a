/*
 * kv.c - the key-value wrappers, error kinds, the handle, claims and the
 * GCRA arithmetic (see kv.h for the contract).
 *
 * The wrappers check arguments, fill the default timeout, call the
 * backend's slot, and count the call and any error by kind. Transitions
 * between "backend reachable" and "not" are logged once each (WARNING /
 * INFO), so a Redis outage writes two lines, not one per call.
 *
 * Pending replays (kv_pending) are pending.c's; the REDIS_URL parser is
 * redis.c's. Nothing here knows a backend: what one can do beyond the
 * common slots is in its caps.
 */
#define _GNU_SOURCE
#include <assert.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "../clock.h"
#include "../config.h"
#include "../error.h"
#include "../log.h"
#include "../store/row.h"
#include "../store/store.h"
#include "kv.h"
#include "kv_int.h"

#define DEFAULT_SQLITE_TIMEOUT_MS 5000
#define DEFAULT_REDIS_TIMEOUT_MS  500

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
                         "Redis is at maxmemory and refuses writes (OOM): raise maxmemory "
                         "(`CONFIG SET maxmemory 256mb`, and in redis.conf) or choose an evicting "
                         "policy (`CONFIG SET maxmemory-policy allkeys-lru`; lucy's keys can be "
                         "rebuilt); docs/operations.md (Redis)"},
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

void kv_err_clear(struct lucy_kv_error *err)
{
    if (err) {
        err->kind = LUCY_KV_ERR_NONE;
        err->code = 0;
        err->message[0] = '\0';
    }
}

/* ---- GCRA ----------------------------------------------------------------- */

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

/* Kinds that mean "the backend did not answer at all". */
static int unreachable(enum lucy_kv_err_kind kind)
{
    return kind == LUCY_KV_ERR_CONN || kind == LUCY_KV_ERR_TIMEOUT;
}

/* Counts one call, records its outcome and logs up/down transitions. */
int kv_account(struct lucy_kv *kv, enum lucy_kv_op op, int rc, struct lucy_kv_error *e)
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

/* meta.kv_instance_id: read it, or create it once (INSERT OR IGNORE, so
 * two processes opening one store agree), then read it back. */
static int read_instance_id(sqlite3 *db, void *arg)
{
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db, "SELECT value FROM meta WHERE key = 'kv_instance_id'", &st);
    if (rc)
        return rc;
    if (sqlite3_step(st) == SQLITE_ROW)
        lucy_row_copy(st, 0, arg, 40);
    return 0;
}

static int create_instance_id(sqlite3 *db, struct kv_job *j)
{
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(
        db, "INSERT OR IGNORE INTO meta (key, value) VALUES ('kv_instance_id', ?)", &st);
    if (rc)
        return rc;
    lucy_row_bind_text(st, 1, j->value);
    return lucy_row_step_done(st);
}

static void random_id(char *out, size_t len)
{
    unsigned char b[16] = {0};
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
        snprintf((char *)b, sizeof b, "%llx%lx", (unsigned long long)lucy_mono_ms(),
                 (long)getpid());
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
    kv_err_clear(err);
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
    kv->memrate = kv_memrate_new();
    if (!kv->memrate) {
        free(kv);
        return lucy_kv_err_set(err, LUCY_KV_ERR_NOMEM, "out of memory");
    }
    pthread_mutex_init(&kv->lock, NULL);
    pthread_mutex_init(&kv->replay_lock, NULL);
    struct lucy_kv_options o = *opt;
    o.timeout_ms = kv->default_timeout_ms;
    int rc = kv->ops->open(&o, &kv->st, err);
    if (rc) {
        pthread_mutex_destroy(&kv->lock);
        pthread_mutex_destroy(&kv->replay_lock);
        kv_memrate_free(kv->memrate);
        free(kv);
        return rc;
    }
    long long pending = 0;
    int64_t oldest_ms;
    if (kv->store && kv_pending_count(kv->store, &pending, &oldest_ms) == 0)
        atomic_store(&kv->pending_hint, (long)pending);
    load_instance_id(kv);
    *out = kv;
    return 0;
}

void lucy_kv_close(struct lucy_kv *kv)
{
    if (!kv)
        return;
    kv->ops->close(kv->st);
    kv_memrate_free(kv->memrate);
    pthread_mutex_destroy(&kv->lock);
    pthread_mutex_destroy(&kv->replay_lock);
    free(kv);
}

unsigned lucy_kv_caps(const struct lucy_kv *kv)
{
    return kv->ops->caps;
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
    kv_err_clear(err);                                                                             \
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
    return kv_account(kv, LUCY_KV_OP_GET, rc, err);
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
    return kv_account(kv, LUCY_KV_OP_GET, rc, err);
}

int lucy_kv_set(struct lucy_kv *kv, const char *key, const void *value, size_t len, int64_t ttl_ms,
                int timeout_ms, struct lucy_kv_error *err)
{
    assert(kv);
    PROLOGUE(set);
    if (bad_key(key) || (!value && len) || ttl_ms < 0)
        return lucy_kv_err_set(err, LUCY_KV_ERR_INVALID, "empty key, NULL value or negative ttl");
    int rc = kv->ops->set(kv->st, key, value ? value : "", len, ttl_ms, timeout_ms, err);
    return kv_account(kv, LUCY_KV_OP_SET, rc, err);
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
    return kv_account(kv, LUCY_KV_OP_SET_IF_ABSENT, rc, err);
}

int lucy_kv_del(struct lucy_kv *kv, const char *key, int timeout_ms, struct lucy_kv_error *err)
{
    assert(kv);
    PROLOGUE(del);
    if (bad_key(key))
        return lucy_kv_err_set(err, LUCY_KV_ERR_INVALID, "empty key");
    return kv_account(kv, LUCY_KV_OP_DEL, kv->ops->del(kv->st, key, timeout_ms, err), err);
}

int lucy_kv_ping(struct lucy_kv *kv, int force, int timeout_ms, struct lucy_kv_error *err)
{
    assert(kv);
    PROLOGUE(ping);
    return kv_account(kv, LUCY_KV_OP_PING, kv->ops->ping(kv->st, force, timeout_ms, err), err);
}

int lucy_kv_persistence(struct lucy_kv *kv, struct lucy_kv_persistence *out, int timeout_ms,
                        struct lucy_kv_error *err)
{
    assert(kv && out);
    memset(out, 0, sizeof *out);
    PROLOGUE(persistence);
    int rc = kv->ops->persistence(kv->st, out, timeout_ms, err);
    if (rc && unreachable(err->kind))
        kv_account(kv, LUCY_KV_OP_PING, rc, err);
    return rc;
}

enum lucy_kv_memory lucy_kv_memory_level(const struct lucy_kv_persistence *p, double *used_pct)
{
    double pct = p->maxmemory_bytes > 0 && p->used_memory_bytes >= 0
                     ? 100.0 * (double)p->used_memory_bytes / (double)p->maxmemory_bytes
                     : 0.0;
    if (used_pct)
        *used_pct = pct;
    if (p->oom)
        return LUCY_KV_MEMORY_FULL;
    /* allkeys-* can always make room; noeviction never, volatile-* only
     * while keys with a TTL are left */
    int may_refuse = strcmp(p->maxmemory_policy, "noeviction") == 0 ||
                     strncmp(p->maxmemory_policy, "volatile-", 9) == 0;
    return may_refuse && pct >= LUCY_KV_MEMORY_WARN_PCT ? LUCY_KV_MEMORY_NEAR : LUCY_KV_MEMORY_OK;
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
    if (!kv->ops->maintain) {
        kv_err_clear(err);
        return 0; /* nothing to do (Redis expires keys itself) */
    }
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
        rc = kv_account(kv, LUCY_KV_OP_RATELIMIT,
                        kv->ops->ratelimit(kv->st, key, rate, out, timeout_ms, err), err);
    if (rc) {
        memset(out, 0, sizeof *out);
        out->allowed = !kv->rate_limit_deny;
        out->from_policy = 1;
        atomic_fetch_add(&kv->policy_decisions, 1);
    }
    return rc;
}

int lucy_kv_ratelimit_volatile(struct lucy_kv *kv, const char *key, const struct lucy_kv_rate *rate,
                               struct lucy_kv_rate_result *out, int timeout_ms,
                               struct lucy_kv_error *err)
{
    assert(kv && rate && out);
    if (kv->ops->caps & LUCY_KV_CAP_SHARED) /* other instances count on it */
        return lucy_kv_ratelimit(kv, key, rate, out, timeout_ms, err);
    memset(out, 0, sizeof *out);
    kv_err_clear(err);
    atomic_fetch_add(&kv->calls[LUCY_KV_OP_RATELIMIT], 1);
    int rc;
    if (bad_key(key) || rate->count < 1 || rate->period_ms < 1 || rate->burst < 1)
        rc = lucy_kv_err_set(err, LUCY_KV_ERR_INVALID,
                             "ratelimit needs a key, count >= 1, period_ms >= 1, burst >= 1");
    else if ((rc = kv_memrate_step(kv->memrate, key, rate, out)) != 0)
        rc = lucy_kv_err_set(err, LUCY_KV_ERR_NOMEM, "out of memory");
    if (rc) {
        memset(out, 0, sizeof *out);
        out->allowed = !kv->rate_limit_deny;
        out->from_policy = 1;
        atomic_fetch_add(&kv->policy_decisions, 1);
    }
    return rc;
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
    kv_err_clear(err);
    int rc;
    if (!(kv->ops->caps & LUCY_KV_CAP_IN_STORE))
        rc = lucy_kv_err_set(err, LUCY_KV_ERR_INVALID,
                             "the %s kv backend cannot rate-limit inside a store write; use "
                             "lucy_kv_ratelimit()",
                             kv->ops->name);
    else if (bad_key(key) || rate->count < 1 || rate->period_ms < 1 || rate->burst < 1)
        rc = lucy_kv_err_set(err, LUCY_KV_ERR_INVALID,
                             "ratelimit needs a key, count >= 1, period_ms >= 1, burst >= 1");
    else if ((rc = kv_store_ratelimit(db, key, rate, out)) != 0) {
        lucy_kv_err_set(err, rc == LUCY_ETIMEDOUT ? LUCY_KV_ERR_TIMEOUT : LUCY_KV_ERR_STORE,
                        "ratelimit in the local store failed: %s", lucy_strerror(rc));
        err->code = rc; /* keep the store's own code (LUCY_ENOSPC, ...) */
    }
    if (kv->ops->caps & LUCY_KV_CAP_IN_STORE)
        kv_account(kv, LUCY_KV_OP_RATELIMIT, rc, err);
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

const char *lucy_kv_instance_id(const struct lucy_kv *kv)
{
    return kv->instance_id;
}

/* ---- store jobs (kv_int.h) ----------------------------------------------------- */

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
    j->now_ms = lucy_wall_ms();
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
    long long pending;
    int64_t oldest_ms;
    if (kv->store && kv_pending_count(kv->store, &pending, &oldest_ms) == 0) {
        out->pending = pending;
        out->oldest_pending_ms = oldest_ms;
        atomic_store(&kv->pending_hint, (long)pending);
    }
    pthread_mutex_lock(&kv->lock);
    out->up = kv->up;
    out->last_error = kv->last_error;
    pthread_mutex_unlock(&kv->lock);
}

/* ---- from the configuration ---------------------------------------------- */

int lucy_kv_open_config(const struct lucy_config *cfg, struct lucy_store *store, int pool_size,
                        struct lucy_kv **out, struct lucy_kv_error *err)
{
    struct lucy_kv_options o = {
        .redis_url = cfg->redis_url,
        .timeout_ms = cfg->redis_timeout_ms,
        .pool_size = pool_size > 0 ? pool_size : cfg->redis_pool_size,
        .rate_limit_deny =
            cfg->rate_limit_on_error && strcmp(cfg->rate_limit_on_error, "deny") == 0,
        .store = store,
    };
    return lucy_kv_open(&o, out, err);
}
