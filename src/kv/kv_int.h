/*
 * kv_int.h - what the kv files share and nobody else needs: the handle
 * (kv.c owns it; pending.c reads it), a heap "job" for store writes that
 * may time out, the GCRA arithmetic, the embedded backend's in-write step
 * and the REDIS_URL parser.
 *
 * lucy_store_write() with a timeout may return LUCY_ETIMEDOUT while its
 * function still runs later on the writer thread, so the argument cannot
 * live on the caller's stack. A job is one malloc'd block (struct plus the
 * copied key and value) with two references: one for the caller, one for
 * the writer. kv_job_write() drops the caller's reference itself on a
 * timeout; on any other result the writer is done with the job and the
 * caller reads the results and frees it with free().
 */
#ifndef LUCY_KV_INT_H
#define LUCY_KV_INT_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "kv.h"

/* The backends (sqlite.c, redis.c); only lucy_kv_open() picks one. */
extern const struct lucy_kv_ops lucy_kv_sqlite_ops;
extern const struct lucy_kv_ops lucy_kv_redis_ops;

/* One opened kv (lucy_kv_open, kv.c). */
struct lucy_kv {
    const struct lucy_kv_ops *ops; /* the backend */
    void *st;                      /* its state */
    struct lucy_store *store;      /* pending replays (may be NULL) */
    int default_timeout_ms;        /* used when a call passes <= 0 */
    int rate_limit_deny;           /* LUCY_RATE_LIMIT_ON_ERROR=deny */
    _Atomic unsigned long long calls[LUCY_KV_OP_COUNT];
    _Atomic unsigned long long errors[LUCY_KV_ERR_COUNT];
    _Atomic unsigned long long policy_decisions; /* rate limits decided by ON_ERROR */
    _Atomic unsigned long long replayed;         /* pending writes applied (pending.c) */
    atomic_long pending_hint;                    /* rows in kv_pending (approx.) */
    pthread_mutex_t lock;                        /* guards up, last_error */
    int up;                                      /* last call reached the backend */
    struct lucy_kv_error last_error;             /* most recent failure */
    pthread_mutex_t replay_lock;                 /* one replay at a time (pending.c) */
    char instance_id[40];                        /* meta.kv_instance_id, hex */
    struct kv_memrate *memrate;                  /* lucy_kv_ratelimit_volatile's state */
};

/* Clears *err (may be NULL) to "no error". */
void kv_err_clear(struct lucy_kv_error *err);

/* Counts one call of op with result rc (error e), records whether the
 * backend answered and logs up/down transitions. Returns rc. */
int kv_account(struct lucy_kv *kv, enum lucy_kv_op op, int rc, struct lucy_kv_error *e);

struct kv_job {
    atomic_int refs;                            /* caller + writer */
    int (*fn)(sqlite3 *db, struct kv_job *job); /* the work, on the writer thread */
    char *key;                                  /* NUL-terminated copy */
    char *value;                                /* copy of len bytes (+NUL); NULL = none */
    size_t len;                                 /* value length in bytes */
    int64_t now_ms;                             /* wall clock when queued */
    int64_t ttl_ms;                             /* expiry, 0 = none */
    long long seq;                              /* kv_pending sequence */
    struct lucy_kv_rate rate;                   /* ratelimit input */
    struct lucy_kv_rate_result result;          /* ratelimit output */
    int stored;                                 /* set_if_absent / queue: new row */
    int count;                                  /* rows touched */
    void *extra;                                /* job-specific list (owned by caller) */
    char data[];                                /* key and value bytes */
};

/* Allocates a job with copies of key and value (value may be NULL).
 * NULL on allocation failure. */
struct kv_job *kv_job_new(const char *key, const void *value, size_t len);

/* Runs job->fn in the store's next group commit, waiting up to timeout_ms.
 * Returns the store's/fn's code. On LUCY_ETIMEDOUT the job belongs to the
 * writer (do not touch it); otherwise the caller frees it. */
int kv_job_write(struct lucy_store *store, struct kv_job *job, int timeout_ms);

/* One GCRA step (Brandur Leach's "throttled" formulation of the generic
 * cell rate algorithm, ITU-T I.371): given the stored theoretical arrival
 * time tat_us (0 = none) and now_us, decides and returns the new TAT to
 * store when allowed (else tat unchanged). Pure. The Redis Lua script in
 * redis.c is the same arithmetic. */
int64_t kv_gcra(int64_t tat_us, int64_t now_us, const struct lucy_kv_rate *rate,
                struct lucy_kv_rate_result *out);

/* Emission interval T in microseconds (period / count, at least 1). */
int64_t kv_gcra_interval_us(const struct lucy_kv_rate *rate);

/* memrate.c: GCRA state in this process's memory (lucy_kv_ratelimit_volatile).
 * new: NULL when out of memory; free: NULL is fine. step: one kv_gcra step
 * for key, the decision in *out; 0, or LUCY_ENOMEM (an allowed step of a
 * new key that could not be kept: *out still holds the decision).
 * Thread-safe. */
struct kv_memrate;
struct kv_memrate *kv_memrate_new(void);
void kv_memrate_free(struct kv_memrate *m);
int kv_memrate_step(struct kv_memrate *m, const char *key, const struct lucy_kv_rate *rate,
                    struct lucy_kv_rate_result *out);

/* sqlite.c: one GCRA step on the local store's kv_ratelimit table, on db,
 * inside whatever transaction the caller's store write function is in.
 * 0 or a store error. Writer thread. */
int kv_store_ratelimit(sqlite3 *db, const char *key, const struct lucy_kv_rate *rate,
                       struct lucy_kv_rate_result *out);

/* pending.c: the count of kv_pending rows and the oldest one's queue time
 * (wall ms, 0 = none), read from store. 0 or a store error. */
int kv_pending_count(struct lucy_store *store, long long *count, int64_t *oldest_ms);

/* redis.c: a parsed redis:// URL. Fills the parts (user and password may
 * be "" when absent); port defaults to 6379, db to 0. Returns 0 or
 * LUCY_EINVAL with a reason in err that never repeats the password.
 * Exported for the unit tests. */
struct lucy_kv_redis_url {
    char user[128];     /* ACL user, "" = default */
    char password[256]; /* "" = none; secret */
    char host[256];     /* name or address; [v6] brackets removed */
    int port;           /* 1..65535 */
    int db;             /* SELECT index, >= 0 */
};
int lucy_kv_redis_url_parse(const char *url, struct lucy_kv_redis_url *out, char *err,
                            size_t errlen);

#endif
