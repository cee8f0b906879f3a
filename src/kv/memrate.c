/*
 * memrate.c - GCRA state in this process's memory, for rate limits that
 * need no durability (lucy_kv_ratelimit_volatile on a kv that is not
 * shared: the API limiter with the embedded backend). The same step as the
 * store's kv_ratelimit rows (kv_gcra), the same keys, without a store write
 * and its fsync per request; a restart forgets the counters.
 *
 * A chained hash table; a key is kept until its TAT has passed (after that
 * a fresh start decides the same), and expired keys are swept whenever the
 * table has doubled since the last sweep, so it holds at most about twice
 * the keys that are live. Thread-safe (one mutex; a step is a few hundred
 * nanoseconds).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../clock.h"
#include "../error.h"
#include "kv_int.h"

#define BUCKETS   4096 /* a power of two */
#define SWEEP_MIN 1024 /* keys before the first sweep */

struct entry {
    struct entry *next;
    int64_t tat_us; /* theoretical arrival time, wall-clock µs */
    char key[];
};

struct kv_memrate {
    pthread_mutex_t lock;
    struct entry *buckets[BUCKETS];
    size_t count;    /* keys held */
    size_t sweep_at; /* sweep when count reaches this */
};

struct kv_memrate *kv_memrate_new(void)
{
    struct kv_memrate *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    pthread_mutex_init(&m->lock, NULL);
    m->sweep_at = SWEEP_MIN;
    return m;
}

void kv_memrate_free(struct kv_memrate *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < BUCKETS; i++)
        for (struct entry *e = m->buckets[i], *next; e; e = next) {
            next = e->next;
            free(e);
        }
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static size_t bucket_of(const char *key)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return (size_t)(h & (BUCKETS - 1));
}

/* Drops the keys whose TAT has passed. Under lock. */
static void sweep(struct kv_memrate *m, int64_t now_us)
{
    for (size_t i = 0; i < BUCKETS; i++)
        for (struct entry **p = &m->buckets[i]; *p;) {
            struct entry *e = *p;
            if (e->tat_us > now_us) {
                p = &e->next;
                continue;
            }
            *p = e->next;
            free(e);
            m->count--;
        }
    m->sweep_at = m->count * 2 > SWEEP_MIN ? m->count * 2 : SWEEP_MIN;
}

int kv_memrate_step(struct kv_memrate *m, const char *key, const struct lucy_kv_rate *rate,
                    struct lucy_kv_rate_result *out)
{
    int64_t now_us = (rate->at_ms > 0 ? rate->at_ms : lucy_wall_ms()) * 1000;
    struct entry **head = &m->buckets[bucket_of(key)];
    pthread_mutex_lock(&m->lock);
    struct entry *e = *head;
    while (e && strcmp(e->key, key) != 0)
        e = e->next;
    int64_t new_tat = kv_gcra(e ? e->tat_us : 0, now_us, rate, out);
    int rc = 0;
    if (out->allowed && e) {
        e->tat_us = new_tat;
    } else if (out->allowed) {
        if (m->count >= m->sweep_at)
            sweep(m, lucy_wall_ms() * 1000);
        size_t len = strlen(key) + 1;
        e = malloc(sizeof *e + len);
        if (e) {
            memcpy(e->key, key, len);
            e->tat_us = new_tat;
            e->next = *head;
            *head = e;
            m->count++;
        } else {
            rc = LUCY_ENOMEM;
        }
    }
    pthread_mutex_unlock(&m->lock);
    return rc;
}
