/*
 * kv_int.h - what the kv files share and nobody else needs: a heap "job"
 * for store writes that may time out.
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

#include <sqlite3.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "kv.h"

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

/* Wall clock, milliseconds / microseconds since the Unix epoch. */
int64_t kv_wall_ms(void);
int64_t kv_wall_us(void);
/* Monotonic clock, milliseconds. */
int64_t kv_mono_ms(void);

/* One GCRA step (Brandur Leach's "throttled" formulation of the generic
 * cell rate algorithm, ITU-T I.371): given the stored theoretical arrival
 * time tat_us (0 = none) and now_us, decides and returns the new TAT to
 * store when allowed (else tat unchanged). Pure. The Redis Lua script in
 * redis.c is the same arithmetic. */
int64_t kv_gcra(int64_t tat_us, int64_t now_us, const struct lucy_kv_rate *rate,
                struct lucy_kv_rate_result *out);

/* Emission interval T in microseconds (period / count, at least 1). */
int64_t kv_gcra_interval_us(const struct lucy_kv_rate *rate);

#endif
