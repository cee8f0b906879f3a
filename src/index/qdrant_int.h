/*
 * qdrant_int.h - what qdrant.c (the backend's slots) and qdrant_upgrade.c
 * (the named dense vector's upgrade) share. Private to these two files.
 */
#ifndef LUCY_INDEX_QDRANT_INT_H
#define LUCY_INDEX_QDRANT_INT_H

#include <jansson.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "../http/client.h"
#include "index.h"

#define DENSE_VECTOR         "dense"     /* the named dense vector beside the sparse `text` */
#define LUCY_QDRANT_N_ENSURE ((size_t)6) /* rows of lucy_qdrant_ensure_rows */

/* What ensure creates, in order (qdrant.c): the collection, then its
 * payload indexes. */
struct lucy_qdrant_ensure_row {
    const char *name; /* "collection" or the payload field */
    const char *body; /* request body */
};
extern const struct lucy_qdrant_ensure_row lucy_qdrant_ensure_rows[LUCY_QDRANT_N_ENSURE];

struct ensure_state {
    int done;        /* exists in Qdrant */
    int attempts;    /* failed attempts since the last success */
    char error[300]; /* Qdrant's reason for the last failure, "" = none */
};

struct qdrant_index {
    char *url;                                        /* QDRANT_URL without a trailing '/' */
    char *api_key_header;                             /* "api-key: ..." or NULL (secret) */
    char *collection;                                 /* QDRANT_COLLECTION ([A-Za-z0-9_.-]) */
    int timeout_ms;                                   /* LUCY_QDRANT_TIMEOUT_MS */
    struct lucy_store *store;                         /* lucy's store (not owned) */
    struct lucy_tokenizer *tok;                       /* for vectors and snippets */
    struct lucy_http_pool pool;                       /* kept-alive connections to Qdrant */
    pthread_mutex_t lock;                             /* guards ensure and dense_dim */
    struct ensure_state ensure[LUCY_QDRANT_N_ENSURE]; /* per lucy_qdrant_ensure_rows[] */
    pthread_mutex_t ensure_lock;                      /* one ensure (and upgrade) at a time */
    char *embed_model;        /* LUCY_EMBED_MODEL when LUCY_EMBED_URL is set, else NULL */
    int dense_dim;            /* size of the collection's dense vector, 0 = none (lock) */
    int64_t upgrade_after_ms; /* monotonic; batches retry a failed upgrade then (ensure_lock) */
};

/* One answer of Qdrant. */
struct reply {
    long status;     /* HTTP status; 0 = none (transport error) */
    json_t *json;    /* the parsed body, or NULL */
    char error[300]; /* when the call failed: what happened, with Qdrant's words */
};

static inline void reply_free(struct reply *r)
{
    json_decref(r->json);
    r->json = NULL;
}

/* Calls Qdrant: method on url + path (path starts with '/', query string
 * included), body (borrowed; NULL = none) as JSON. timeout_ms bounds the
 * connection and the whole call. Fills r (caller frees with reply_free on
 * every path). Returns 0 for a 2xx, else a LUCY_E* code (LUCY_ENOTFOUND
 * for 404, LUCY_ECONFLICT for 409, LUCY_ETIMEDOUT / LUCY_EUNAVAIL without
 * an answer ...) with r->error set. Any thread. (qdrant.c) */
int lucy_qdrant_call(struct qdrant_index *s, const char *method, const char *path,
                     const json_t *body, int timeout_ms, struct reply *r);

/* Sends items[lo, hi) to collection coll: puts are upserted with the
 * dense vector of each document that has a current one of size dim > 0
 * (read from document_vectors), else deleted by id. 0 or LUCY_E* with
 * r->error; r filled as by lucy_qdrant_call. (qdrant.c) */
int lucy_qdrant_send_range(struct qdrant_index *s, const char *coll, int dim,
                           struct lucy_index_item *items, size_t lo, size_t hi, int put,
                           struct reply *r);

/* Records the size of the collection's dense vector (0 = none). Any
 * thread. (qdrant.c) */
void lucy_qdrant_set_dense_dim(struct qdrant_index *s, int dim);

/* The size the collection's dense vector must have: that of the stored
 * vectors of LUCY_EMBED_MODEL; 0 = none (no LUCY_EMBED_URL, no vector
 * yet, or the store unreadable). Reads the store. (qdrant.c) */
int lucy_qdrant_wanted_dim(struct qdrant_index *s);

/* The body creating a collection: the sparse `text` and, when dim > 0,
 * the dense vector (Cosine: lucy's vectors are L2-normalised). New
 * reference, NULL on ENOMEM. (qdrant_upgrade.c) */
json_t *lucy_qdrant_collection_body(int dim);

/* The collection holding dense vectors of size dim, into out:
 * "<QDRANT_COLLECTION>_dense<dim>". (qdrant_upgrade.c) */
void lucy_qdrant_dense_name(struct qdrant_index *s, int dim, char *out, size_t len);

/* Makes QDRANT_COLLECTION an alias of target; replace = 1 when it is an
 * alias already (delete + create in one atomic change). 0 or LUCY_E*
 * with r (caller frees). (qdrant_upgrade.c) */
int lucy_qdrant_alias_switch(struct qdrant_index *s, int replace, const char *target,
                             struct reply *r);

/* The collection QDRANT_COLLECTION is an alias of, into out ("" = it is
 * no alias). 0 or LUCY_E* with r (caller frees). (qdrant_upgrade.c) */
int lucy_qdrant_alias_target(struct qdrant_index *s, char *out, size_t len, struct reply *r);

/* Gives QDRANT_COLLECTION a dense vector of size dim (see the file header
 * of qdrant_upgrade.c). Caller holds s->ensure_lock and is the only
 * writer to Qdrant meanwhile (the indexer, or the start-up ensure).
 * 0 or LUCY_E* with err. */
int lucy_qdrant_upgrade(struct qdrant_index *s, int dim, char *err, size_t errlen);

#endif
