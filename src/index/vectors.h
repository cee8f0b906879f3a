/*
 * vectors.h - the dense vectors of the search documents (table
 * document_vectors, migration 52; vectors.c is the one file that writes
 * it) and the embedder thread that fills it (embedder.c). Private to
 * src/index/; the public face is lucy_index_similar() in index.h.
 *
 * The documents table is the queue: a live document whose vector is
 * missing, of another model, or computed from an older version of the row
 * (documents.updated_at_ms) is due. So nothing is lost while the embedding
 * server is down - the documents are durable and stay due - and nothing
 * needs a second outbox row per document.
 */
#ifndef LUCY_INDEX_VECTORS_H
#define LUCY_INDEX_VECTORS_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

struct lucy_index;
struct lucy_embed;

/* One due document, as the embedder reads it. */
struct lucy_vector_doc {
    int64_t doc_rowid;     /* documents.doc_rowid */
    int64_t updated_at_ms; /* the row version being embedded */
    char *text;            /* malloc'd: what is embedded */
};

/* Inside a read: up to max due documents for model, oldest rowid first,
 * into out[] (*n set; free each text with free()). 0 or a store error. */
int lucy_vectors_due(sqlite3 *db, const char *model, size_t max, struct lucy_vector_doc *out,
                     size_t *n);

/* Inside a write: stores the vector (dim floats) of doc for model, only if
 * the document still has that version and is live (else a newer version is
 * due anyway). 0 or a store error. */
int lucy_vectors_put(sqlite3 *db, const struct lucy_vector_doc *doc, const char *model, int dim,
                     const float *vector, int64_t now_ms);

/* Inside a write: removes vectors of documents that are gone or
 * tombstoned. 0 or a store error. */
int lucy_vectors_sweep(sqlite3 *db);

/* Inside a read: *pending = live documents without a current vector of
 * model, *stored = vectors of model. 0 or a store error. */
int lucy_vectors_count(sqlite3 *db, const char *model, int64_t *pending, int64_t *stored);

/* Inside a read: the current vector of doc_rowid for model (computed from
 * the document's present version) into *vector (malloc'd, *dim floats;
 * caller frees). 0, LUCY_ENOTFOUND (none current) or a store error. */
int lucy_vectors_get(sqlite3 *db, int64_t doc_rowid, const char *model, float **vector, int *dim);

/* Inside a read: the dimension of model's stored vectors into *dim (0 =
 * none stored yet). 0 or a store error. */
int lucy_vectors_dim(sqlite3 *db, const char *model, int *dim);

/* ---- embedder.c: the "embedder" thread ----------------------------------- */

struct lucy_embedder;

/* Creates the embedder of ix (which has an embedding client: see
 * lucy_index_embed). 0 or LUCY_ENOMEM. */
int lucy_embedder_new(struct lucy_index *ix, struct lucy_embedder **out);
/* Starts the thread; it listens for the outbox's event and polls. */
int lucy_embedder_start(struct lucy_embedder *w);
/* Stops and joins the thread, frees w. NULL is fine. */
void lucy_embedder_free(struct lucy_embedder *w);

/* Why the last embedding round failed ("" = it did not), copied into
 * buf. Any thread. */
void lucy_embedder_last_error(struct lucy_embedder *w, char *buf, size_t len);

#endif
