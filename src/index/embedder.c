/*
 * embedder.c - the "embedder" thread: gives every live search document a
 * dense vector (DESIGN §14) through LUCY_EMBED_URL.
 *
 * Each round reads up to BATCH due documents (vectors.h: no vector of the
 * model, or one of an older row version), embeds them in one request and
 * stores the vectors in one store write. Woken like the indexer, by the
 * outbox's event after a producer's commit, and polls every POLL_MS.
 *
 * Failures: the embedding server down, slow or refusing -> the documents
 * stay due (nothing is lost: the documents table is the queue), the round
 * is retried after 1 s * 2^n (at most BACKOFF_MAX_MS), the reason is kept
 * for lucy_embedder_last_error(), and lucy_index_similar() says degraded
 * while documents wait. When idle it sweeps vectors of documents that are
 * gone.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../clock.h"
#include "../error.h"
#include "../llm/embed.h"
#include "../log.h"
#include "../store/store.h"
#include "../thread.h"
#include "index.h"
#include "vectors.h"

#define BATCH            32     /* documents per embeddings request */
#define POLL_MS          1000   /* a missed event is noticed within this */
#define BACKOFF_MAX_MS   300000 /* longest wait between failed rounds */
#define WRITE_TIMEOUT_MS 30000  /* one store write of a batch of vectors */

struct lucy_embedder {
    struct lucy_thread thread; /* "embedder" */
    struct lucy_index *ix;     /* documents' store and the embedding client (borrowed) */
    int listening;             /* registered for LUCY_OUTBOX_EVENT */
    int failures;              /* rounds failed in a row (thread only) */
    pthread_mutex_t lock;      /* guards last_error */
    char last_error[256];      /* why the last round failed; "" = it did not */
};

struct round {
    const char *model;
    struct lucy_vector_doc docs[BATCH];
    size_t n;
    const float *vectors; /* n * dim */
    int dim;
    int sweep;   /* write: sweep instead of storing */
    int requeue; /* the backend keeps dense vectors: re-queue each document (outbox) */
};

static int read_due(sqlite3 *db, void *arg)
{
    struct round *r = arg;
    return lucy_vectors_due(db, r->model, BATCH, r->docs, &r->n);
}

static int write_vectors(sqlite3 *db, void *arg)
{
    struct round *r = arg;
    if (r->sweep)
        return lucy_vectors_sweep(db);
    int64_t now = lucy_wall_ms();
    for (size_t i = 0; i < r->n; i++) {
        int rc = lucy_vectors_put(db, &r->docs[i], r->model, r->dim,
                                  r->vectors + i * (size_t)r->dim, now);
        if (rc == 0 && r->requeue) /* same transaction: Qdrant's copy cannot be forgotten */
            rc = lucy_outbox_requeue(db, r->docs[i].doc_rowid);
        if (rc)
            return rc;
    }
    return 0;
}

static void set_error(struct lucy_embedder *w, const char *why)
{
    pthread_mutex_lock(&w->lock);
    snprintf(w->last_error, sizeof w->last_error, "%s", why);
    pthread_mutex_unlock(&w->lock);
}

/* One round; *took = documents embedded. 0 or LUCY_E* with why. */
static int embed_round(struct lucy_embedder *w, size_t *took, int *swept, char *why, size_t whylen)
{
    struct lucy_embed *e = lucy_index_embed(w->ix);
    struct lucy_store *store = lucy_index_store(w->ix);
    struct round r = {.model = lucy_embed_model(e), .requeue = lucy_index_dense_remote(w->ix)};
    *took = 0;
    int rc = lucy_store_read(store, read_due, &r);
    if (rc == 0 && r.n == 0) {
        if (!*swept) { /* idle: forget vectors of documents that are gone, once */
            r.sweep = 1;
            rc = lucy_store_write(store, write_vectors, &r, WRITE_TIMEOUT_MS);
            *swept = rc == 0;
        }
        return rc;
    }
    float *vectors = NULL;
    if (rc == 0) {
        const char *texts[BATCH];
        for (size_t i = 0; i < r.n; i++)
            texts[i] = r.docs[i].text;
        rc = lucy_embed_texts(e, texts, r.n, &vectors, &r.dim, why, whylen);
    } else {
        snprintf(why, whylen, "cannot read the documents: %s", lucy_strerror(rc));
    }
    if (rc == 0) {
        r.vectors = vectors;
        rc = lucy_store_write(store, write_vectors, &r, WRITE_TIMEOUT_MS);
        if (rc)
            snprintf(why, whylen, "cannot store the vectors: %s", lucy_strerror(rc));
        *took = rc == 0 ? r.n : 0;
        *swept = 0;
    }
    free(vectors);
    for (size_t i = 0; i < r.n; i++)
        free(r.docs[i].text);
    return rc;
}

static void embedder_main(void *arg)
{
    struct lucy_embedder *w = arg;
    int swept = 0;
    int64_t wait_ms = 0;
    while (!lucy_thread_nap(&w->thread, wait_ms)) {
        size_t took = 0;
        char why[256] = "";
        int rc = embed_round(w, &took, &swept, why, sizeof why);
        if (rc) {
            int64_t backoff = 1000LL << (w->failures < 9 ? w->failures : 9);
            wait_ms = backoff < BACKOFF_MAX_MS ? backoff : BACKOFF_MAX_MS;
            w->failures++;
            set_error(w, why);
            lucy_log(LUCY_LOG_WARNING, "embedding failed; documents stay due and are retried",
                     "{s:s,s:I}", "error", why, "retry_in_ms", (json_int_t)wait_ms);
            continue;
        }
        if (w->failures)
            lucy_log(LUCY_LOG_INFO, "embedding recovered", "{s:i}", "failed_rounds", w->failures);
        w->failures = 0;
        set_error(w, "");
        wait_ms = took == BATCH ? 0 : POLL_MS; /* more waiting: no pause */
    }
}

/* A write queued outbox rows and was committed (store writer thread). */
static void on_outbox_event(void *arg, unsigned events)
{
    (void)events;
    lucy_thread_kick(arg);
}

int lucy_embedder_new(struct lucy_index *ix, struct lucy_embedder **out)
{
    *out = NULL;
    struct lucy_embedder *w = calloc(1, sizeof *w);
    if (!w)
        return LUCY_ENOMEM;
    w->ix = ix;
    w->thread = (struct lucy_thread){.name = "embedder", .main = embedder_main, .arg = w};
    pthread_mutex_init(&w->lock, NULL);
    *out = w;
    return 0;
}

int lucy_embedder_start(struct lucy_embedder *w)
{
    int rc = lucy_thread_start(&w->thread);
    if (rc == 0)
        w->listening = lucy_store_listen(lucy_index_store(w->ix), LUCY_OUTBOX_EVENT,
                                         on_outbox_event, &w->thread) == 0;
    return rc;
}

void lucy_embedder_free(struct lucy_embedder *w)
{
    if (!w)
        return;
    if (w->listening) /* first: no kick may reach the stopped thread */
        lucy_store_unlisten(lucy_index_store(w->ix), on_outbox_event, &w->thread);
    lucy_thread_stop(&w->thread);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

void lucy_embedder_last_error(struct lucy_embedder *w, char *buf, size_t len)
{
    pthread_mutex_lock(&w->lock);
    snprintf(buf, len, "%s", w->last_error);
    pthread_mutex_unlock(&w->lock);
}
