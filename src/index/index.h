/*
 * index.h - the search index (DESIGN §1) and its outbox.
 *
 * Documents: one per transcript segment or message, identified by
 * (source, id, segment). Producers never talk to the index: inside their
 * own store write (the same transaction as the data, so both commit or
 * neither) they call lucy_outbox_put() / lucy_outbox_delete(). The indexer
 * thread drains the outbox into the configured backend
 * (struct lucy_index_ops: sqlite FTS5, or Qdrant), retrying with
 * backoff; nothing is lost while a backend is down or full.
 *
 * Files: outbox.c (documents + outbox tables, producer side), index.c
 * (backend table, wrappers, query helpers, /rag/stats document),
 * sqlite.c (the FTS5 backend), qdrant.c (the Qdrant backend, which keeps
 * the FTS5 index as its local copy), indexer.c (the "indexer" thread),
 * plugin.c (routes, health check, metrics). docs/architecture.md, section
 * "Search index", tells the whole story.
 */
#ifndef LUCY_INDEX_H
#define LUCY_INDEX_H

#include <jansson.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

struct lucy_config;
struct lucy_store;
struct lucy_disk;
struct lucy_health;

struct lucy_doc {
    const char *source;   /* "call_recording" or "whatsapp" */
    const char *id;       /* recording id (hex SHA-256) or wamid */
    int segment;          /* segment index within id; 0 for messages */
    const char *contact;  /* wa_id / alias, or NULL */
    const char *title;    /* display title (file name, contact name) */
    const char *text;     /* the searchable text, UTF-8 */
    int64_t time_s;       /* Unix seconds of the call / message */
    int64_t t0_ms, t1_ms; /* segment offsets for recordings; 0 otherwise */
};

/* ---- producer side (outbox.c) ------------------------------------------ */

/* Queues doc for indexing. Call inside a lucy_store_write() function; all
 * strings are copied. A put whose content equals the stored document is a
 * no-op (nothing queued). Returns 0 or a LUCY_E* code (LUCY_EINVAL when
 * source, id or text is missing or segment < 0). */
int lucy_outbox_put(sqlite3 *db, const struct lucy_doc *doc);

/* Queues the removal of every document of (source, id). Same rules. The
 * documents disappear from search at once; the backend forgets them when
 * the indexer gets to the outbox row. */
int lucy_outbox_delete(sqlite3 *db, const char *source, const char *id);

/* Counts for /rag/stats, the health check and /metrics. */
struct lucy_outbox_stats {
    int64_t pending;           /* rows waiting (not failed) */
    int64_t failed;            /* rows given up on (permanent errors) */
    int64_t oldest_pending_ms; /* queued_at_ms of the oldest pending row, 0 = none */
    int64_t retrying;          /* pending rows that failed at least once */
    char first_error[256];     /* last_error of the oldest failed row, or of a
                                  retrying row when nothing failed; "" = none */
};

/* Reads the outbox counts on db (any connection). 0 or LUCY_E*. */
int lucy_outbox_stats(sqlite3 *db, struct lucy_outbox_stats *out);

/* Queues a put for every live document and drops tombstoned ones with
 * their pending deletes (after the backend was emptied: lucy reindex).
 * Call inside a lucy_store_write() function. *queued = documents queued.
 * 0 or LUCY_E*. */
int lucy_outbox_requeue_all(sqlite3 *db, int64_t *queued);

/* ---- backends ------------------------------------------------------------ */

/* One document handed to a backend (put), or one key to remove (delete). */
struct lucy_index_item {
    int64_t doc_rowid;   /* documents.doc_rowid: stable for (source, id, segment) */
    struct lucy_doc doc; /* put: every field; delete: source, id, segment
                            (NULL source/id if the row is gone) */
    int rc;              /* out: 0 applied, or LUCY_E* */
    int permanent;       /* out: 1 = retrying cannot help (a 4xx); mark failed */
    char error[256];     /* out: the backend's reason when rc != 0 */
};

/* A search request. Strings are borrowed for the call. */
struct lucy_search_query {
    const char *q;       /* the user's words; never interpreted as syntax */
    const char *source;  /* exact source, or NULL for any */
    const char *contact; /* exact contact, or NULL for any */
    int64_t from_s;      /* time_s >= from_s (INT64_MIN: unbounded) */
    int64_t to_s;        /* time_s <= to_s (INT64_MAX: unbounded) */
    int limit;           /* 1..LUCY_SEARCH_LIMIT_MAX hits */
};

#define LUCY_SEARCH_LIMIT_DEFAULT 20
#define LUCY_SEARCH_LIMIT_MAX     100

/* One ranked hit; every string is malloc'd and owned by the result. */
struct lucy_search_hit {
    char *source, *id;    /* document key */
    int segment;          /* ... */
    char *contact;        /* may be NULL */
    char *title;          /* may be NULL */
    char *snippet;        /* HTML fragment: text escaped (&amp; &lt; &gt;
                             &quot;), matched terms in <mark>...</mark> */
    double score;         /* higher = better; only comparable within a result */
    int64_t time_s;       /* Unix seconds */
    int64_t t0_ms, t1_ms; /* segment offsets (recordings) */
};

struct lucy_search_result {
    struct lucy_search_hit *hits; /* n hits, best first (malloc'd) */
    size_t n;                     /* how many */
    const char *backend;          /* static name of the backend that answered */
    int degraded;                 /* 1 = answered by a fallback backend */
};

/* Frees the hits and zeroes r. Safe on a zeroed struct. */
void lucy_search_result_free(struct lucy_search_result *r);

/*
 * A backend: one const struct per backend, one file each (sqlite.c now,
 * qdrant.c later). The core calls it only through the lucy_index_*()
 * wrappers. NULL slot = not supported (the wrapper says what that means).
 * Slots other than open may be called from several threads at once
 * (indexer, HTTP pool): a backend locks what it shares.
 */
struct lucy_index_ops {
    const char *name; /* "sqlite", "qdrant": the `backend` field of replies */
    /* Creates an instance on store (the local SQLite store, which always
     * holds documents and outbox) with configuration cfg. Sets *state.
     * 0 or LUCY_E* with a message in err. Must not do network I/O. */
    int (*open)(const struct lucy_config *cfg, struct lucy_store *store, void **state, char *err,
                size_t errlen);
    void (*close)(void *state); /* frees state; NULL state is fine */
    /* Creates what the backend needs (collection, payload indexes),
     * idempotent. 0 = all in place; LUCY_EUNAVAIL / LUCY_ETIMEDOUT ... =
     * something still pending, err says what (the indexer retries with
     * backoff and keeps draining). */
    int (*ensure)(void *state, char *err, size_t errlen);
    /* Adds or replaces items[0..n) (key = doc_rowid / (source,id,segment)).
     * Returns 0 when it set every item's rc (per-item outcome), or a
     * LUCY_E* code when the whole batch failed (backend down, disk full);
     * then err says why and every item counts as failed transiently. */
    int (*upsert_batch)(void *state, struct lucy_index_item *items, size_t n, char *err,
                        size_t errlen);
    /* Removes items[0..n); a missing document is success. Same returns. */
    int (*delete)(void *state, struct lucy_index_item *items, size_t n, char *err, size_t errlen);
    /* Runs q and fills out (zeroed by the caller; caller frees with
     * lucy_search_result_free). 0 or LUCY_E* (LUCY_EUNAVAIL = backend
     * unreachable: the wrapper may answer from a fallback). */
    int (*search)(void *state, const struct lucy_search_query *q, struct lucy_search_result *out);
    /* Adds the backend's own /rag/stats fields to out: collection,
     * points_count, indexed_count, segments_count, disk_bytes,
     * payload_indexes {ensured:[], pending:[]}, and optionally "status"
     * (green|yellow|red) with "status_reason". 0 or LUCY_E*. */
    int (*stats)(void *state, json_t *out);
    /* Removes every document from the backend (lucy reindex). 0 or LUCY_E*. */
    int (*clear)(void *state, char *err, size_t errlen);
    /* Optional housekeeping (FTS segment merge, compaction); skipped while
     * the disk is critical. 0 or LUCY_E*. */
    int (*optimize)(void *state);
    /* Optional: registers the backend's own health checks (e.g. qdrant:*)
     * on h, with state as their argument (state outlives the prober).
     * 0 or LUCY_ENOMEM. */
    int (*register_checks)(void *state, struct lucy_health *h);
};

/* The backends built in (NULL-terminated), and each one by name. */
extern const struct lucy_index_ops lucy_index_sqlite;
/* Qdrant over REST (qdrant.c); keeps the sqlite backend as its local copy
 * and answers /search from it (degraded) while Qdrant is unreachable. */
extern const struct lucy_index_ops lucy_index_qdrant;
extern const struct lucy_index_ops *const lucy_index_backends[];

/* An open backend: the ops and its instance. */
struct lucy_index {
    const struct lucy_index_ops *ops; /* which backend */
    void *state;                      /* its instance (ops->open) */
    struct lucy_store *store;         /* the local store (documents, outbox) */
};

/* Picks the backend for cfg (qdrant when QDRANT_URL is set, else sqlite)
 * and opens it into *out (caller frees with lucy_index_close). No network
 * I/O. 0 or LUCY_E* with err. */
int lucy_index_open(const struct lucy_config *cfg, struct lucy_store *store,
                    struct lucy_index **out, char *err, size_t errlen);
/* Opens the named backend (for tests and the local fallback copy). */
int lucy_index_open_backend(const struct lucy_index_ops *ops, const struct lucy_config *cfg,
                            struct lucy_store *store, struct lucy_index **out, char *err,
                            size_t errlen);
void lucy_index_close(struct lucy_index *ix);

/* Thin wrappers over the ops (see the slots above). ensure/optimize NULL
 * = nothing to do (0); search/stats/clear NULL = LUCY_EUNAVAIL;
 * upsert_batch/delete are required. */
int lucy_index_ensure(struct lucy_index *ix, char *err, size_t errlen);
int lucy_index_upsert_batch(struct lucy_index *ix, struct lucy_index_item *items, size_t n,
                            char *err, size_t errlen);
int lucy_index_delete(struct lucy_index *ix, struct lucy_index_item *items, size_t n, char *err,
                      size_t errlen);
int lucy_index_search(struct lucy_index *ix, const struct lucy_search_query *q,
                      struct lucy_search_result *out);
int lucy_index_clear(struct lucy_index *ix, char *err, size_t errlen);
int lucy_index_optimize(struct lucy_index *ix);
/* register_checks NULL = no checks of its own (0). */
int lucy_index_register_checks(struct lucy_index *ix, struct lucy_health *h);

/* The whole /rag/stats document (new reference in *out): backend fields
 * from ops->stats plus pending_count / failed_count (outbox), sources
 * (live documents per source; call_recording and whatsapp always
 * present), status green|yellow|red and status_reason. 0 or LUCY_E*. */
int lucy_index_stats(struct lucy_index *ix, json_t **out);

/* ---- query helpers (index.c), pure ------------------------------------- */

/* Turns user text into an FTS5 MATCH expression that cannot be a syntax
 * error: every whitespace-separated word becomes a quoted string ("..."
 * with " doubled), words are ANDed. Returns a malloc'd string, or NULL
 * when q has no words (or on allocation failure: *err_nomem set to 1). */
char *lucy_index_fts_query(const char *q, int *err_nomem);

/* Parses a time bound: Unix seconds ("1700000000", may be negative) or
 * ISO 8601 "YYYY-MM-DD", "YYYY-MM-DDTHH:MM[:SS[.fff]]" with optional "Z"
 * or "+HH:MM"/"-HH:MM" (no zone = UTC; a space may replace the T). A
 * date without a time means the start of that day (UTC), or its last
 * second when end_of_day is 1 (so to=2024-05-31 includes that day).
 * Returns 0 and *out_s, or LUCY_EINVAL. */
int lucy_index_parse_time(const char *s, int end_of_day, int64_t *out_s);

/* 1 when source is one lucy produces ("call_recording", "whatsapp"). */
int lucy_index_known_source(const char *source);

/* The hit as the /search JSON object (new reference). */
json_t *lucy_search_hit_json(const struct lucy_search_hit *h);

/* ---- the indexer (indexer.c) -------------------------------------------- */

struct lucy_indexer;

/* Counters of one drain pass or of the thread's lifetime. */
struct lucy_indexer_counts {
    uint64_t indexed; /* puts applied */
    uint64_t deleted; /* deletes applied */
    uint64_t failed;  /* rows marked failed (permanent errors) */
    uint64_t retried; /* rows put back with backoff (transient errors) */
};

/* Starts the "indexer" thread draining the outbox of ix->store into ix.
 * disk may be NULL (then never critical). Returns 0 and *out, or LUCY_E*. */
int lucy_indexer_start(struct lucy_index *ix, struct lucy_disk *disk, struct lucy_indexer **out);
/* Stops and joins the thread and frees it. NULL is fine. */
void lucy_indexer_stop(struct lucy_indexer *w);

/* Wakes the indexer now (new outbox rows). Async-signal-unsafe, thread-safe,
 * cheap; a no-op when no indexer runs in this process (it polls every
 * ~200 ms as well, so rows written by another process are found too). */
void lucy_indexer_kick(void);

/* Lifetime counters of the running indexer. */
void lucy_indexer_counts(struct lucy_indexer *w, struct lucy_indexer_counts *out);

/* Drains due outbox rows into ix on the calling thread until none are due
 * or max_rows were handled (0 = no limit); counts are added to *counts.
 * Returns 0, or the LUCY_E* of the first whole-batch failure (the rows
 * are then rescheduled with backoff). For `lucy reindex` and tests. */
int lucy_indexer_drain(struct lucy_index *ix, size_t max_rows, struct lucy_indexer_counts *counts);

/* Empties the backend and queues every live document again (one store
 * write), dropping tombstoned documents. *queued = documents queued.
 * 0 or LUCY_E* with err. */
int lucy_indexer_requeue_all(struct lucy_index *ix, int64_t *queued, char *err, size_t errlen);

/* ---- the plugin (plugin.c) ---------------------------------------------- */

/* Routes GET /search and GET /rag/stats, check index:outbox, the index
 * /metrics lines, the indexer thread. First in plugins.c. */
struct lucy_plugin;
extern const struct lucy_plugin lucy_index_plugin;

#endif
