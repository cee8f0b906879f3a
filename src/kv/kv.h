/*
 * kv.h - the key-value interface: aliases, rate limits and cross-instance
 * de-duplication, with an embedded SQLite backend and a shared Redis one
 * (DESIGN §1, §8, §10).
 *
 * A backend is one const struct lucy_kv_ops (sqlite.c, redis.c): its name
 * and function pointers, NULL meaning "not supported". Callers never use
 * the slots directly; they call the lucy_kv_*() wrappers below, which
 * check arguments, fill in defaults (the timeout), count calls and errors
 * for /metrics, and apply policies (LUCY_RATE_LIMIT_ON_ERROR, pending
 * replays). Selection: REDIS_URL set -> redis, else sqlite. What a
 * backend can do beyond the common slots is told by its capability bits
 * (lucy_kv_caps), never by comparing backends.
 *
 * Files: kv.c (error kinds, the handle, wrappers, claims, the GCRA
 * arithmetic), pending.c (kv_pending: set_or_queue, replay), sqlite.c and
 * redis.c (the backends; redis.c also parses REDIS_URL), plugin.c (the
 * daemon's kv: checks, replays, auto-heal), kv_int.h (what they share).
 *
 * Results: every fallible call returns 0 or a negative LUCY_E* code
 * (error.h) and, when the caller passes a struct lucy_kv_error, fills it
 * with the typed reason (MISCONF, LOADING, READONLY, NOAUTH, WRONGPASS,
 * OOM, connection, timeout, ...) and the server's own message. Messages
 * never contain the password of REDIS_URL.
 *
 * Timeouts: every call takes timeout_ms (<= 0 = the backend's default,
 * LUCY_REDIS_TIMEOUT_MS for redis). A hung Redis costs a caller at most
 * that long, never a thread forever; after a connection failure or a
 * timeout, callers fail fast for a backoff window (100 ms doubling to 5 s)
 * while the prober's ping probes for recovery.
 *
 * Pending replays: lucy_kv_set_or_queue() is for writes that must not be
 * lost when a shared backend is down (contact aliases). A write the
 * backend refuses is kept in the local store (table kv_pending, newest
 * value per key wins) and replayed in order by lucy_kv_replay(), which the
 * kv plugin runs on the prober's tick while the backend is reachable.
 *
 * Thread safety: a struct lucy_kv may be used by any number of threads at
 * once; the redis backend keeps a small pool of connections. The daemon
 * opens one (the kv plugin) and hands it out as ctx->kv (lucy.h).
 */
#ifndef LUCY_KV_H
#define LUCY_KV_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

struct lucy_store;
struct lucy_ctx;
struct lucy_plugin;

/* The kv plugin (plugin.c): opens the daemon's kv into ctx->kv (closed by
 * its free, after every later plugin's), registers kv:backend,
 * redis:ping, redis:persistence, redis:memory, /metrics lines and the
 * replay tick. */
extern const struct lucy_plugin lucy_kv_plugin;

/* Why a call failed, by the kind of trouble (not by the call). The order
 * is the metrics label order; names are in lucy_kv_err_kind_name(). */
enum lucy_kv_err_kind {
    LUCY_KV_ERR_NONE,      /* no error */
    LUCY_KV_ERR_MISCONF,   /* Redis cannot persist and refuses writes (and PING) */
    LUCY_KV_ERR_LOADING,   /* Redis is loading its dataset after a restart */
    LUCY_KV_ERR_READONLY,  /* REDIS_URL names a read-only replica */
    LUCY_KV_ERR_NOAUTH,    /* the server needs a password; REDIS_URL has none */
    LUCY_KV_ERR_WRONGPASS, /* the password or user in REDIS_URL is wrong */
    LUCY_KV_ERR_NOPERM,    /* the ACL user may not run this command */
    LUCY_KV_ERR_OOM,       /* Redis reached maxmemory */
    LUCY_KV_ERR_BUSY,      /* Redis is busy running a script */
    LUCY_KV_ERR_CONN,      /* cannot connect, or the connection broke */
    LUCY_KV_ERR_TIMEOUT,   /* no answer within the timeout */
    LUCY_KV_ERR_SERVER,    /* any other error reply */
    LUCY_KV_ERR_PROTOCOL,  /* an answer lucy does not understand */
    LUCY_KV_ERR_STORE,     /* the local SQLite store failed (sqlite backend) */
    LUCY_KV_ERR_INVALID,   /* bad arguments or configuration */
    LUCY_KV_ERR_NOMEM,     /* allocation failed */
    LUCY_KV_ERR_COUNT
};

/* The typed reason of a failed call. Filled on every path when passed. */
struct lucy_kv_error {
    enum lucy_kv_err_kind kind; /* LUCY_KV_ERR_NONE on success */
    int code;                   /* the LUCY_E* code returned */
    char message[256];          /* the server's or client's message; no secrets */
};

/* "misconf", "timeout", ... Never NULL. */
const char *lucy_kv_err_kind_name(enum lucy_kv_err_kind kind);

/* What an operator should do about kind, one or two sentences naming the
 * command or setting (docs/operations.md, section Redis). Never NULL. */
const char *lucy_kv_err_remedy(enum lucy_kv_err_kind kind);

/* The LUCY_E* code lucy uses for kind (MISCONF -> LUCY_EUNAVAIL, TIMEOUT ->
 * LUCY_ETIMEDOUT, NOAUTH -> LUCY_EPERM, ...). */
int lucy_kv_err_code(enum lucy_kv_err_kind kind);

/* Kind of a Redis error reply from its first word ("MISCONF ...",
 * "-WRONGPASS ..."); LUCY_KV_ERR_SERVER when the prefix is not one of ours.
 * Source: Redis 7.0 server.c/shared error objects. Pure; thread-safe. */
enum lucy_kv_err_kind lucy_kv_err_kind_of_reply(const char *reply);

/* Sets *err (when err is not NULL): kind, its code, printf message.
 * Returns the code. For backends. */
int lucy_kv_err_set(struct lucy_kv_error *err, enum lucy_kv_err_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A GCRA limit: `count` events per `period_ms`, of which up to `burst` may
 * come at once (burst >= 1). Emission interval T = period_ms / count.
 * at_ms is the event's time (wall clock ms, e.g. when a webhook arrived,
 * so a backlog processed late is judged by when it came); 0 = now by the
 * backend's clock (Redis: the server's TIME, shared by every instance). */
struct lucy_kv_rate {
    int count;         /* events per period, >= 1 */
    int64_t period_ms; /* period length, >= 1 */
    int burst;         /* events allowed at once, >= 1 */
    int64_t at_ms;     /* event time, Unix ms; 0 = now */
};

/* The decision of one rate-limit check. */
struct lucy_kv_rate_result {
    int allowed;            /* 1 = within the limit */
    int64_t retry_after_ms; /* when denied: wait this long; else 0 */
    int remaining;          /* further events allowed right now */
    int from_policy;        /* 1 = the backend failed; allowed came from
                               LUCY_RATE_LIMIT_ON_ERROR */
};

/* What INFO persistence (and a PING) say about a Redis server. */
struct lucy_kv_persistence {
    int rdb_last_bgsave_ok;                /* rdb_last_bgsave_status:ok */
    int rdb_bgsave_in_progress;            /* a BGSAVE is running */
    long long rdb_changes_since_last_save; /* writes not yet in a snapshot */
    long long rdb_last_save_time;          /* Unix seconds of the last good save */
    int aof_enabled;                       /* appendonly yes */
    int aof_last_write_ok;                 /* aof_last_write_status:ok */
    int loading;                           /* loading:1 */
    int stop_writes_on_bgsave_error;       /* 1/0; -1 when CONFIG GET is refused */
    int misconf;                           /* PING answered -MISCONF */
    char misconf_message[256];             /* that answer */
    char config_error[160];                /* why CONFIG GET failed, "" if it did not */
    long long used_memory_bytes;           /* INFO memory used_memory; -1 unknown */
    long long maxmemory_bytes;             /* maxmemory; 0 = no limit; -1 unknown */
    char maxmemory_policy[32];             /* maxmemory_policy; "" unknown */
    int oom;                               /* the write probe got -OOM: writes refused */
    char oom_message[256];                 /* that answer */
};

/* How close a Redis is to refusing writes for memory (INFO memory and the
 * write probe of struct lucy_kv_persistence). */
enum lucy_kv_memory {
    LUCY_KV_MEMORY_OK,   /* no maxmemory, room left, or a policy that can evict any key */
    LUCY_KV_MEMORY_NEAR, /* >= LUCY_KV_MEMORY_WARN_PCT of maxmemory and a policy that
                            may find nothing to evict (noeviction, volatile-*) */
    LUCY_KV_MEMORY_FULL, /* writes are refused now (-OOM) */
};
#define LUCY_KV_MEMORY_WARN_PCT 90

/* The memory level of p, and (when used_pct is not NULL) used_memory in
 * percent of maxmemory (0 when there is no limit or it is unknown). The
 * one rule for the redis:memory check and `lucy doctor`. Pure. */
enum lucy_kv_memory lucy_kv_memory_level(const struct lucy_kv_persistence *p, double *used_pct);

/* Options for lucy_kv_open(), usually from the configuration. */
struct lucy_kv_options {
    const char *redis_url;    /* redis://[[user]:password@]host[:port][/db]; NULL/"" = sqlite */
    int timeout_ms;           /* default per-call timeout for redis (connect and command) */
    int pool_size;            /* redis connections at most */
    int rate_limit_deny;      /* 1 = deny when the backend fails; 0 = allow */
    const char *key_prefix;   /* prepended to every key in redis; NULL = "lucy:" */
    struct lucy_store *store; /* the local store: sqlite backend, pending replays */
};

struct lucy_kv;

/* What a backend can do beyond the common slots (struct lucy_kv_ops.caps). */
enum {
    /* Shared by every lucy instance using the same backend: wamid claims
     * and shared contact names mean something (redis). */
    LUCY_KV_CAP_SHARED = 1u << 0,
    /* Its state lives in the local store (sqlite): a rate-limit step can
     * run inside the caller's own store write (lucy_kv_ratelimit_in_write),
     * and queueing a refused write in that same store would not help. */
    LUCY_KV_CAP_IN_STORE = 1u << 1,
    /* A server to administer: persistence, config_set, bgsave (the
     * redis:* checks, auto-heal, `lucy doctor`). */
    LUCY_KV_CAP_ADMIN = 1u << 2,
};

/* The backend interface. `st` is the backend's state from open. Every
 * slot fills *err on failure; key is NUL-terminated UTF-8; values are
 * bytes. timeout_ms is always > 0 here (the wrapper fills the default). */
struct lucy_kv_ops {
    const char *name; /* "sqlite", "redis" */
    unsigned caps;    /* LUCY_KV_CAP_* bits */
    /* Creates the backend state. 0 or LUCY_E*. */
    int (*open)(const struct lucy_kv_options *opt, void **st, struct lucy_kv_error *err);
    /* Frees the state and every connection. */
    void (*close)(void *st);
    /* *value (malloc'd, NUL-terminated after len bytes; caller frees) and
     * *len; LUCY_ENOTFOUND when absent or expired. */
    int (*get)(void *st, const char *key, char **value, size_t *len, int timeout_ms,
               struct lucy_kv_error *err);
    /* n values at once (redis: one MGET): values[i] is malloc'd (caller
     * frees, NUL-terminated after lens[i] bytes) or NULL when keys[i] is
     * absent or expired. On failure every values[i] is NULL. Optional: the
     * wrapper falls back to n calls of get. */
    int (*get_many)(void *st, const char *const *keys, size_t n, char **values, size_t *lens,
                    int timeout_ms, struct lucy_kv_error *err);
    /* Stores value; ttl_ms > 0 expires it, 0 keeps it for ever. */
    int (*set)(void *st, const char *key, const void *value, size_t len, int64_t ttl_ms,
               int timeout_ms, struct lucy_kv_error *err);
    /* Stores value only if key is absent (or expired), atomically across
     * every user of the backend; *stored = 1 when it did. ttl_ms > 0. */
    int (*set_if_absent)(void *st, const char *key, const void *value, size_t len, int64_t ttl_ms,
                         int *stored, int timeout_ms, struct lucy_kv_error *err);
    /* Removes key; absent is not an error. */
    int (*del)(void *st, const char *key, int timeout_ms, struct lucy_kv_error *err);
    /* One GCRA step for key, atomic across every user of the backend. */
    int (*ratelimit)(void *st, const char *key, const struct lucy_kv_rate *rate,
                     struct lucy_kv_rate_result *out, int timeout_ms, struct lucy_kv_error *err);
    /* Round trip to the backend. force = 1 ignores the reconnect backoff
     * (the prober's probe). */
    int (*ping)(void *st, int force, int timeout_ms, struct lucy_kv_error *err);
    /* INFO persistence + INFO memory + CONFIG GET stop-writes-on-bgsave-error
     * + PING + a write probe (SET of an absent key with XX: Redis refuses
     * it with -OOM exactly when it refuses writes for memory, and
     * otherwise changes nothing). This and the next two:
     * LUCY_KV_CAP_ADMIN backends only. */
    int (*persistence)(void *st, struct lucy_kv_persistence *out, int timeout_ms,
                       struct lucy_kv_error *err);
    /* CONFIG SET name value (auto-heal). */
    int (*config_set)(void *st, const char *name, const char *value, int timeout_ms,
                      struct lucy_kv_error *err);
    /* BGSAVE. */
    int (*bgsave)(void *st, int timeout_ms, struct lucy_kv_error *err);
    /* Housekeeping (the sqlite backend drops expired rows). Returns how
     * many items it removed (>= 0) or LUCY_E*. Called about once a minute;
     * NULL = nothing to do (Redis expires keys itself). */
    int (*maintain)(void *st, int timeout_ms, struct lucy_kv_error *err);
    /* Where the backend lives, without secrets ("127.0.0.1:6379/0", or the
     * store's path); written into buf. */
    void (*describe)(void *st, char *buf, size_t len);
};

/* Operations counted in /metrics, in label order. */
enum lucy_kv_op {
    LUCY_KV_OP_GET,
    LUCY_KV_OP_SET,
    LUCY_KV_OP_SET_IF_ABSENT,
    LUCY_KV_OP_DEL,
    LUCY_KV_OP_RATELIMIT,
    LUCY_KV_OP_PING,
    LUCY_KV_OP_REPLAY,
    LUCY_KV_OP_COUNT
};

/* Snapshot of the counters, for /metrics and /health. */
struct lucy_kv_stats {
    unsigned long long calls[LUCY_KV_OP_COUNT];     /* calls by operation */
    unsigned long long errors[LUCY_KV_ERR_COUNT];   /* failed calls by kind */
    unsigned long long rate_limit_policy_decisions; /* decided by ON_ERROR */
    unsigned long long replayed;                    /* pending writes that landed */
    long long pending;                              /* pending writes now (-1 unknown) */
    int64_t oldest_pending_ms;                      /* wall ms of the oldest; 0 none */
    int up;                                         /* last call reached the backend */
    struct lucy_kv_error last_error;                /* the most recent failure */
};

/* Opens the backend opt selects (redis when opt->redis_url is non-empty,
 * else sqlite on opt->store). opt is copied. Returns 0 and *out, or LUCY_E*
 * with err filled; a redis backend that cannot connect yet still opens
 * (it reconnects), only a malformed URL fails. Close with lucy_kv_close. */
int lucy_kv_open(const struct lucy_kv_options *opt, struct lucy_kv **out,
                 struct lucy_kv_error *err);
void lucy_kv_close(struct lucy_kv *kv);

/* The backend's name ("sqlite", "redis") and its LUCY_KV_CAP_* bits. */
const char *lucy_kv_name(const struct lucy_kv *kv);
unsigned lucy_kv_caps(const struct lucy_kv *kv);
/* Where the backend lives, without secrets. */
void lucy_kv_describe(const struct lucy_kv *kv, char *buf, size_t len);
/* 1 when LUCY_RATE_LIMIT_ON_ERROR=deny. */
int lucy_kv_rate_limit_denies(const struct lucy_kv *kv);

/* The wrappers. See struct lucy_kv_ops for each slot's contract; these add
 * argument checks, the default timeout and counting. An unsupported slot
 * gives LUCY_EINVAL (kind INVALID), except maintain (0: nothing to do).
 * All thread-safe. */
int lucy_kv_get(struct lucy_kv *kv, const char *key, char **value, size_t *len, int timeout_ms,
                struct lucy_kv_error *err);
/* n keys at once (see the get_many slot): values[i] malloc'd or NULL when
 * absent; lens may be NULL. Returns 0 when the backend answered for every
 * key (absent keys are not an error), else its code with every values[i]
 * NULL. Counted as one get. */
int lucy_kv_get_many(struct lucy_kv *kv, const char *const *keys, size_t n, char **values,
                     size_t *lens, int timeout_ms, struct lucy_kv_error *err);
int lucy_kv_set(struct lucy_kv *kv, const char *key, const void *value, size_t len, int64_t ttl_ms,
                int timeout_ms, struct lucy_kv_error *err);
int lucy_kv_set_if_absent(struct lucy_kv *kv, const char *key, const void *value, size_t len,
                          int64_t ttl_ms, int *stored, int timeout_ms, struct lucy_kv_error *err);
int lucy_kv_del(struct lucy_kv *kv, const char *key, int timeout_ms, struct lucy_kv_error *err);
int lucy_kv_ping(struct lucy_kv *kv, int force, int timeout_ms, struct lucy_kv_error *err);
int lucy_kv_persistence(struct lucy_kv *kv, struct lucy_kv_persistence *out, int timeout_ms,
                        struct lucy_kv_error *err);
int lucy_kv_config_set(struct lucy_kv *kv, const char *name, const char *value, int timeout_ms,
                       struct lucy_kv_error *err);
int lucy_kv_bgsave(struct lucy_kv *kv, int timeout_ms, struct lucy_kv_error *err);
int lucy_kv_maintain(struct lucy_kv *kv, int timeout_ms, struct lucy_kv_error *err);

/* One GCRA step. Returns 0 with the decision in *out; on a backend error
 * returns its LUCY_E* code AND fills *out from LUCY_RATE_LIMIT_ON_ERROR
 * (allowed = policy, from_policy = 1), so a caller that only wants a
 * decision may ignore the code. */
int lucy_kv_ratelimit(struct lucy_kv *kv, const char *key, const struct lucy_kv_rate *rate,
                      struct lucy_kv_rate_result *out, int timeout_ms, struct lucy_kv_error *err);

/* lucy_kv_ratelimit() for counters that need no durability (the API
 * limiter: one step per request). On a shared backend (Redis) it IS
 * lucy_kv_ratelimit(), so every instance counts against one budget; on the
 * embedded one the state stays in this process's memory (memrate.c)
 * instead of a store write and its fsync: the same decisions and keys, but
 * a restart forgets the counters, and other processes on the same data dir
 * (`lucy kv ratelimit`) do not see them. Same on-error policy. */
int lucy_kv_ratelimit_volatile(struct lucy_kv *kv, const char *key, const struct lucy_kv_rate *rate,
                               struct lucy_kv_rate_result *out, int timeout_ms,
                               struct lucy_kv_error *err);

/* Claims key for this lucy instance for ttl_ms (> 0): set-if-absent with
 * the instance's id (kept in the local store's meta table, so it survives
 * restarts) as the value. *mine = 1 when the key is now ours: newly set, or
 * already set by this same instance (a retry after a crash); 0 when another
 * instance holds it. For cross-instance de-duplication (wamids) IN ADDITION
 * to local unique constraints: on an error *mine is left 1 and the code is
 * returned, so a caller that must not lose work can go on. */
int lucy_kv_claim(struct lucy_kv *kv, const char *key, int64_t ttl_ms, int *mine, int timeout_ms,
                  struct lucy_kv_error *err);

/* This instance's id ("" until lucy_kv_open has run). */
const char *lucy_kv_instance_id(const struct lucy_kv *kv);

/* One GCRA step inside the caller's store write, for callers that decide
 * the rate limit in the same transaction as their other writes: the step
 * commits, or rolls back (a savepoint, a failed group commit), together
 * with them, so a retried batch never takes the limit twice, and it costs
 * no group commit of its own. Call ONLY from a lucy_store_write() function
 * with its db (the writer thread). Same decision and same on-error policy
 * as lucy_kv_ratelimit(): returns 0, or the store's code with *out filled
 * from LUCY_RATE_LIMIT_ON_ERROR. LUCY_EINVAL (kind INVALID) when the
 * backend lacks LUCY_KV_CAP_IN_STORE (its state is not in this store;
 * callers then use lucy_kv_ratelimit() outside their write). This is an
 * operation on the local store's kv tables, not a backend slot. */
int lucy_kv_ratelimit_in_write(struct lucy_kv *kv, sqlite3 *db, const char *key,
                               const struct lucy_kv_rate *rate, struct lucy_kv_rate_result *out,
                               struct lucy_kv_error *err);

/* Writes key = value for ever, or, when the backend refuses (down, hung,
 * MISCONF, ...) or older writes of the same kv are still pending, keeps it
 * in the local store's kv_pending table (newest value per key wins) for
 * lucy_kv_replay(). Returns 0 when the value was written or queued
 * durably (*queued tells which; may be NULL), or the store's error when it
 * could not even be queued. value NULL = delete key. */
int lucy_kv_set_or_queue(struct lucy_kv *kv, const char *key, const void *value, size_t len,
                         int *queued, int timeout_ms, struct lucy_kv_error *err);

/* Replays up to max pending writes, oldest first, stopping at the first
 * failure. Returns how many landed (>= 0) or a LUCY_E* code when the first
 * one failed. Thread-safe; concurrent replays serialize. */
int lucy_kv_replay(struct lucy_kv *kv, int max, int timeout_ms, struct lucy_kv_error *err);

/* Fills *out with the counters (pending count read from the store). */
void lucy_kv_stats(struct lucy_kv *kv, struct lucy_kv_stats *out);

/* Whether url is a REDIS_URL the redis backend can use: the parser
 * lucy_kv_open() uses, so what start-up accepts is what connects. 0, or
 * LUCY_EINVAL with err (errlen bytes) saying what is wrong; err names
 * REDIS_URL and never repeats the password. Pure, any thread. */
int lucy_kv_redis_url_check(const char *url, char *err, size_t errlen);

/* Opens the kv cfg selects (REDIS_URL, LUCY_REDIS_TIMEOUT_MS,
 * LUCY_RATE_LIMIT_ON_ERROR) on store, with at most pool_size Redis
 * connections (<= 0: LUCY_REDIS_POOL_SIZE). Same results as
 * lucy_kv_open(). For the daemon and the CLI commands. */
struct lucy_config;
int lucy_kv_open_config(const struct lucy_config *cfg, struct lucy_store *store, int pool_size,
                        struct lucy_kv **out, struct lucy_kv_error *err);

#endif
