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
 * (backend table, wrappers with the local-copy and fallback policy, query
 * helpers, /rag/stats document), sqlite.c (the FTS5 backend), qdrant.c
 * (the Qdrant backend) with sparse.c (its tokenizer, BM25 vectors and
 * snippets), indexer.c (the "indexer" thread), plugin.c (routes, health
 * check, metrics). docs/architecture.md, section "Search index", tells the
 * whole story.
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

/* What the outbox holds that the backend has not taken: for /search, to
 * tell whether a remote backend's answer would miss documents. */
struct lucy_outbox_lag {
    int refused;     /* a pending row failed at least once (the backend refused it) */
    int stale;       /* a pending row was queued at or before the cutoff */
    int failed;      /* a row was given up on (permanent errors) */
    char error[256]; /* last_error of a failed or refused row; "" = none */
};

/* Fills *out (zeroed first) for the rows of db's outbox; a pending row is
 * stale when queued_at_ms <= queued_before_ms (wall clock). Stops at the
 * first row of each kind, so it costs little even behind a long backlog.
 * Call inside a store read or write function. 0 or LUCY_E*. */
int lucy_outbox_lag(sqlite3 *db, int64_t queued_before_ms, struct lucy_outbox_lag *out);

/* Queues a put for every live document and drops tombstoned ones with
 * their pending deletes (after the backend was emptied: lucy reindex).
 * Call inside a lucy_store_write() function. *queued = documents queued.
 * 0 or LUCY_E*. */
int lucy_outbox_requeue_all(sqlite3 *db, int64_t *queued);

/* Queues a put of the live document doc_rowid again, unchanged (its
 * dense vector was computed: a remote backend's point must carry it). A
 * pending row gets a new seq, so an in-flight batch that read the
 * document before cannot acknowledge it. Tombstoned or missing: nothing.
 * Call inside a lucy_store_write() function. 0 or LUCY_E*. */
int lucy_outbox_requeue(sqlite3 *db, int64_t doc_rowid);

/* A document as stored, for a backend completing its hits. */
struct lucy_doc_row {
    char *contact, *title, *text; /* malloc'd, may be NULL */
    int64_t time_s, t0_ms, t1_ms; /* as in struct lucy_doc */
    int deleted;                  /* 1: tombstoned, hidden from search */
};

/* Reads the document (source, id, segment) into *out (zeroed first; free
 * with lucy_doc_row_free). Call inside a lucy_store_read() or write
 * function. 0, LUCY_ENOTFOUND (no such row), or LUCY_E*. */
int lucy_outbox_doc_get(sqlite3 *db, const char *source, const char *id, int segment,
                        struct lucy_doc_row *out);

/* Frees the strings of row and zeroes it. */
void lucy_doc_row_free(struct lucy_doc_row *row);

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

/* Which hits of a search get a snippet (struct lucy_search_query). A
 * snippet tokenizes its hit's text, and a grouped search ranks ten raw
 * hits per card it shows: made for every raw hit they were most of a
 * search's own time (docs/benchmarks.md, "Search"). */
enum lucy_snippets {
    LUCY_SNIPPETS_EACH = 0, /* every hit (the default) */
    LUCY_SNIPPETS_NONE,     /* none, snippet NULL: callers that never show one (retrieval) */
    LUCY_SNIPPETS_LATER,    /* lucy_index_search_grouped to a backend: the backend may keep
                               text instead; the grouping makes the shown hits' snippets */
};

/* A search request. Strings are borrowed for the call. */
struct lucy_search_query {
    const char *q;       /* the user's words; never interpreted as syntax */
    int any_word;        /* 1: a document matches when it holds any of q's words
                            (ranked by BM25: questions, src/ask/); 0: all of them */
    const char *source;  /* exact source, or NULL for any */
    const char *contact; /* exact contact, or NULL for any */
    int64_t from_s;      /* time_s >= from_s (INT64_MIN: unbounded) */
    int64_t to_s;        /* time_s <= to_s (INT64_MAX: unbounded) */
    int limit;           /* 1..LUCY_SEARCH_LIMIT_MAX hits (groups for
                            lucy_index_search_grouped) */
    /* One person's documents only (lucy_index_person_ids fills these): when
     * restrict_ids is 1 a document matches only when its contact is one of
     * contacts[0..n_contacts) or it is a call_recording whose id is one of
     * recordings[0..n_recordings); with both lists empty nothing matches. */
    int restrict_ids;
    const char *const *contacts; /* wa_id / user_id values (borrowed) */
    size_t n_contacts;
    const char *const *recordings; /* recording ids (borrowed) */
    size_t n_recordings;
    enum lucy_snippets snippets; /* which hits get one; backends other than sqlite
                                    treat LATER and NONE as EACH */
};

#define LUCY_SEARCH_LIMIT_DEFAULT 20
#define LUCY_SEARCH_LIMIT_MAX     100
/* Most raw hits lucy_index_search_grouped asks a backend for: groups come
 * from at most this many best hits (the slots take limits up to it). */
#define LUCY_SEARCH_RAW_MAX 2000
/* Hits shown under one group by default (/search's per_group). */
#define LUCY_SEARCH_PER_GROUP_DEFAULT 3
#define LUCY_SEARCH_PER_GROUP_MAX     50

/* One ranked hit; every string is malloc'd and owned by the result. */
struct lucy_search_hit {
    char *source, *id;    /* document key */
    int segment;          /* ... */
    char *contact;        /* may be NULL */
    char *title;          /* may be NULL */
    char *snippet;        /* HTML fragment: text escaped (&amp; &lt; &gt;
                             &quot;), matched terms in <mark>...</mark>;
                             NULL under LUCY_SNIPPETS_NONE */
    char *text;           /* the document's text while its snippet waits
                             (LUCY_SNIPPETS_LATER), else NULL */
    double score;         /* higher = better; only comparable within a result */
    int64_t time_s;       /* Unix seconds */
    int64_t t0_ms, t1_ms; /* segment offsets (recordings) */
    int64_t speaker;      /* who spoke or wrote it: LUCY_SPEAKER_ME, a person's id,
                             or 0 = not known (set by the search wrappers through
                             the source's hit lookup, lucy_index_set_hit_lookup) */
};

/* struct lucy_search_hit.speaker of a segment the phone's user spoke. */
#define LUCY_SPEAKER_ME INT64_C(-1)

/* A speaker as the API says it (GET /recordings/{id}'s segments, search
 * hits): "me", the person's id, or JSON null for 0. New reference. Pure. */
json_t *lucy_speaker_json(int64_t speaker);

/* One conversation of a grouped result: a recording, or one person's (or
 * one sender's) WhatsApp messages on one UTC day. */
struct lucy_search_group {
    char *key;      /* "call_recording:<id>", "whatsapp:person:<person>:<YYYY-MM-DD>",
                       "whatsapp:contact:<contact>:<YYYY-MM-DD>" or "whatsapp:id:<wamid>"
                       (malloc'd) */
    int64_t person; /* the sender's person (messages), 0 = none known */
    size_t first;   /* its hits are hits[first .. first + n), best first */
    size_t n;       /* hits shown (<= the per_group asked for) */
    size_t more;    /* further hits of the conversation among the hits retrieved */
};

struct lucy_search_result {
    struct lucy_search_hit *hits;     /* n hits, best first (malloc'd); grouped:
                                         group by group, each group's best first */
    size_t n;                         /* how many */
    struct lucy_search_group *groups; /* grouped results only: n_groups, best
                                         group first (malloc'd); else NULL */
    size_t n_groups;                  /* how many */
    const char *backend;              /* static name of the backend that answered */
    int degraded;                     /* 1 = answered by a fallback backend */
    char degraded_reason[384];        /* why, for the user; "" when not degraded */
};

/* Frees the hits and zeroes r. Safe on a zeroed struct. */
void lucy_search_result_free(struct lucy_search_result *r);

/*
 * A backend: one const struct per backend, one file each (sqlite.c,
 * qdrant.c). The core calls it only through the lucy_index_*() wrappers.
 * NULL slot = not supported (the wrapper says what that means). Slots
 * other than open may be called from several threads at once (indexer,
 * HTTP pool): a backend locks what it shares.
 */
struct lucy_index_ops {
    const char *name; /* "sqlite", "qdrant": the `backend` field of replies */
    /* 1 = a remote backend: the wrapper keeps the sqlite backend beside it
     * as the local copy (every batch goes to the copy first; an item is
     * acked when both took it), answers searches from the copy while this
     * backend fails (degraded), and clears both. The backend itself never
     * touches the copy. */
    int local_copy;
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
    /* Runs q and fills out (zeroed by the caller; the wrapper frees it on
     * error). 0, or LUCY_E* with err saying why (the wrapper of a
     * local_copy backend then answers from the copy). */
    int (*search)(void *state, const struct lucy_search_query *q, struct lucy_search_result *out,
                  char *err, size_t errlen);
    /* Optional: the q->limit documents whose dense vector is nearest to
     * vector (dim floats, L2-normalised, LUCY_EMBED_MODEL's), q's filters
     * applied; fills out like search (score = cosine). LUCY_ENOTFOUND with
     * err while the backend holds no dense vector of that size, or any
     * LUCY_E* of search (the caller then uses the local vectors). */
    int (*similar)(void *state, const struct lucy_search_query *q, const float *vector, int dim,
                   struct lucy_search_result *out, char *err, size_t errlen);
    /* Adds the backend's own /rag/stats fields to out (the `storage`
     * object): collection, points_count, indexed_count, segments_count,
     * disk_bytes, payload_indexes {ensured:[], pending:[]}, and optionally
     * its verdict: "status" (yellow|red) with "status_reason", set once
     * (the wrapper moves it to the top-level status and appends lucy's own
     * reasons). 0 or LUCY_E*. */
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
/* Qdrant over REST (qdrant.c); local_copy: the wrapper keeps the sqlite
 * backend beside it and answers /search from it (degraded) while Qdrant
 * is unreachable. */
extern const struct lucy_index_ops lucy_index_qdrant;
extern const struct lucy_index_ops *const lucy_index_backends[];

/* An open backend (index.c): its ops and instance, the local store and,
 * for a local_copy backend, the sqlite copy and the fallback state. */
struct lucy_index;

/* Picks the backend for cfg (qdrant when QDRANT_URL is set, else sqlite)
 * and opens it into *out (caller frees with lucy_index_close). No network
 * I/O. 0 or LUCY_E* with err. */
int lucy_index_open(const struct lucy_config *cfg, struct lucy_store *store,
                    struct lucy_index **out, char *err, size_t errlen);
/* Opens the named backend (for tests and `lucy search --local`), with
 * its local copy when ops->local_copy. */
int lucy_index_open_backend(const struct lucy_index_ops *ops, const struct lucy_config *cfg,
                            struct lucy_store *store, struct lucy_index **out, char *err,
                            size_t errlen);
void lucy_index_close(struct lucy_index *ix);

/* The backend's static name ("sqlite", "qdrant"): the `backend` field. */
const char *lucy_index_name(const struct lucy_index *ix);

/* The local store ix was opened on (documents, outbox; not owned). */
struct lucy_store *lucy_index_store(const struct lucy_index *ix);

/* Wrappers over the ops (see the slots above). ensure/optimize NULL =
 * nothing to do (0); search/stats/clear NULL = LUCY_EUNAVAIL;
 * upsert_batch/delete are required. With a local copy: upsert_batch,
 * delete and clear go to the copy first (its failure fails the whole
 * batch); ensure, optimize and register_checks concern the backend only.
 * lucy_index_search of a local_copy backend answers from the copy with
 * backend "sqlite", degraded = 1 and degraded_reason set:
 *  - while the outbox holds rows the backend has not taken: one it
 *    refused (failed at least once, or given up on), or one queued more
 *    than BACKLOG_GRACE_MS (index.c) ago; the backend's answer would miss
 *    them, the copy has them (it is written first);
 *  - when the backend fails the search (not for LUCY_ENOMEM), and for
 *    FALLBACK_HOLD_MS (index.c) after such a failure, so an outage costs
 *    one timeout, not one per request; a backend write that succeeds ends
 *    the hold early.
 * Thread-safe. */
int lucy_index_ensure(struct lucy_index *ix, char *err, size_t errlen);
int lucy_index_upsert_batch(struct lucy_index *ix, struct lucy_index_item *items, size_t n,
                            char *err, size_t errlen);
int lucy_index_delete(struct lucy_index *ix, struct lucy_index_item *items, size_t n, char *err,
                      size_t errlen);
int lucy_index_search(struct lucy_index *ix, const struct lucy_search_query *q,
                      struct lucy_search_result *out);
/* Like lucy_index_search (same fallback and degraded rules), grouped per
 * conversation (DESIGN §12): q->limit counts groups. A recording is one
 * group; WhatsApp messages are grouped per sender and UTC day, the sender
 * being the person holding the document's contact as wa_id or user_id
 * (people_identifiers), else the contact itself; a message without contact
 * is a group of its own. The backend is asked for q->limit * 10 raw hits
 * (more, up to LUCY_SEARCH_RAW_MAX, while that window is full and yields
 * too few groups); groups rank by their best hit's score, ties newest
 * first; each keeps its per_group (1..LUCY_SEARCH_PER_GROUP_MAX) best
 * hits, the rest counted in `more`. Fills out->groups. Thread-safe.
 * 0, LUCY_EINVAL (bad limit or per_group) or LUCY_E* of the search. */
int lucy_index_search_grouped(struct lucy_index *ix, const struct lucy_search_query *q,
                              int per_group, struct lucy_search_result *out);

/* A source's hit lookup: fills, for every hit of its source among
 * hits[0..n) (the others are left as they are), what only the source
 * knows when the result is read: hits[i].speaker, and hits[i].title (a
 * recording's segments carry no title, or the file name lucy 0.1.0 gave
 * them; the call's is read now, so a renamed person shows at once). Called by
 * lucy_index_search and lucy_index_search_grouped once per result, with
 * the hits shown only, inside a store read (db: the read connection) on
 * the searching thread (an HTTP worker, the MCP tool's, a command's), so
 * it must be thread-safe; batched: it reads the speakers of all the hits
 * at once, not one query per hit. A title it sets is malloc'd (freed with
 * the result). Returns 0 or a store error (the search fails with it). */
typedef int (*lucy_hit_lookup_fn)(sqlite3 *db, struct lucy_search_hit *hits, size_t n);

/* Makes fn the hit lookup of source's hits (replacing the one before;
 * NULL: speakers of that source stay 0, titles as indexed). The owner of
 * the tables that know who spoke registers it: call_recordings' segments
 * (lucy_transcript_hit_lookup: the call_recordings plugin's init, and
 * `lucy search`). A "whatsapp" hit's speaker is its sender's person by
 * default (the person whose wa_id or user_id is the hit's contact, as
 * grouping finds it; lucy stores only messages it received). Thread-safe
 * (an atomic swap), so it may be called while searches run. 0, or
 * LUCY_EINVAL for a source lucy does not produce. */
int lucy_index_set_hit_lookup(struct lucy_index *ix, const char *source, lucy_hit_lookup_fn fn);

/* The identifiers of person for a person filter: its wa_id and user_id
 * values (contacts) and the ids of recordings whose call number
 * (recording_calls.number_e164) is one of its phones. Reads
 * people_identifiers and recording_calls on ix's store (read only).
 * *contacts / *recordings are NULL-terminated malloc'd arrays of malloc'd
 * strings, counts in *n_contacts / *n_recordings; free each with
 * lucy_index_strv_free. 0, LUCY_ENOTFOUND (no such person), LUCY_ENOMEM
 * or a store error. Thread-safe. */
int lucy_index_person_ids(struct lucy_index *ix, int64_t person, char ***contacts,
                          size_t *n_contacts, char ***recordings, size_t *n_recordings);

/* ---- dense retrieval (vectors.c, DESIGN §14) ------------------------------ */

struct lucy_embed;

/* The embedding client of ix (LUCY_EMBED_URL), or NULL when dense
 * retrieval is off. Owned by ix. */
struct lucy_embed *lucy_index_embed(const struct lucy_index *ix);

/* The documents most similar in meaning to q->q, for the ask engine's
 * reciprocal rank fusion with the BM25 ranking: the query is embedded
 * (LUCY_EMBED_URL) and compared by cosine with every stored vector of the
 * configured model (document_vectors; brute force over SQLite), honouring
 * q's source, contact, from_s/to_s and person restriction; at most
 * q->limit hits, best first, score = cosine similarity (-1..1), snippet =
 * the document's text, HTML-escaped. Fills out (zeroed first; free with
 * lucy_search_result_free) with backend "dense". degraded = 1 with a
 * degraded_reason when documents are still waiting for their vectors, or
 * when the embedding server could not embed the query (then no hits: use
 * BM25 alone). Returns 0; LUCY_EUNAVAIL when LUCY_EMBED_URL is unset;
 * LUCY_EINVAL for an empty query or a bad limit; a store error.
 * Thread-safe. */
int lucy_index_similar(struct lucy_index *ix, const struct lucy_search_query *q,
                       struct lucy_search_result *out);

/* The conversation of hit h exactly as lucy_index_search_grouped keys its
 * groups (struct lucy_search_group.key), for callers that group hits of
 * another ranking (the ask engine's dense list); *person = the sender's
 * person (messages; wa_id, then user_id) or 0. Inside a store read.
 * 0 or a store error. Thread-safe. */
int lucy_index_group_key(sqlite3 *db, const struct lucy_search_hit *h, char *key, size_t keylen,
                         int64_t *person);

/* The dense half of lucy_index_similar on the backend (its `similar`
 * slot, Qdrant's named dense vector), under lucy_index_search's rules for
 * a local_copy backend: not asked while the outbox holds rows it has not
 * taken or within FALLBACK_HOLD_MS of a failure. vector: dim floats
 * (borrowed). Fills out (zeroed first). 0; LUCY_EINVAL when the
 * backend has no such slot (use the local vectors, not degraded); else
 * LUCY_E* with why for the user (use the local vectors, degraded).
 * Thread-safe. */
int lucy_index_similar_backend(struct lucy_index *ix, const struct lucy_search_query *q,
                               const float *vector, int dim, struct lucy_search_result *out,
                               char *why, size_t whylen);

/* 1 when ix's backend keeps its own dense vectors (a `similar` slot): the
 * embedder then re-queues each embedded document so its point carries the
 * vector. */
int lucy_index_dense_remote(const struct lucy_index *ix);

/* text as an HTML fragment: &, <, >, " escaped, and the FTS5 snippet
 * markers \x01 / \x02 turned into <mark> / </mark>. malloc'd (caller
 * frees); NULL on ENOMEM. Pure. (sqlite.c) */
char *lucy_index_snippet_html(const char *text);

struct lucy_tokenizer;
struct lucy_sparse;

/* The snippet of a hit for the query terms (lucy_sparse_query): the window
 * of text with the most terms, or the title's when only the title holds
 * them (lucy_sparse_snippet). text and title may be NULL. malloc'd (caller
 * frees); NULL on ENOMEM. Thread-safe (tok is). (index.c) */
char *lucy_index_hit_snippet(struct lucy_tokenizer *tok, const struct lucy_sparse *terms,
                             const char *text, const char *title);

/* Frees a NULL-terminated array of strings (NULL is fine). */
void lucy_index_strv_free(char **v);
int lucy_index_clear(struct lucy_index *ix, char *err, size_t errlen);
int lucy_index_optimize(struct lucy_index *ix);
/* register_checks NULL = no checks of its own (0). */
int lucy_index_register_checks(struct lucy_index *ix, struct lucy_health *h);

/* The whole /rag/stats document (new reference in *out), in the user's
 * terms first: backend, status green|yellow|red and status_reason;
 * recordings, audio_hours (sum of durations, 2 decimals),
 * transcript_segments, messages, people (WhatsApp contacts); sources
 * (searchable documents per source; call_recording and whatsapp always
 * present); pending_count / failed_count (outbox); then `storage`, the
 * index's internals (ops->stats fields and local_count). The storage
 * fields are also repeated at the top level, deprecated, for one release.
 * Reads the recordings, segments, wa_messages and wa_contacts tables
 * (counts only). 0 or LUCY_E*. */
int lucy_index_stats(struct lucy_index *ix, json_t **out);

/* ---- query helpers (index.c), pure ------------------------------------- */

/* Turns user text into an FTS5 MATCH expression that cannot be a syntax
 * error: every whitespace-separated word becomes a quoted string ("..."
 * with " doubled), words are ANDed. Returns a malloc'd string, or NULL
 * when q has no words (or on allocation failure: *err_nomem set to 1). */
char *lucy_index_fts_query(const char *q, int *err_nomem);
/* The same with the words ORed when any_word is 1 (any word matches). */
char *lucy_index_fts_query_op(const char *q, int any_word, int *err_nomem);

/* Parses a time bound: Unix seconds ("1700000000", may be negative) or
 * ISO 8601 "YYYY-MM-DD", "YYYY-MM-DDTHH:MM[:SS[.fff]]" with optional "Z"
 * or "+HH:MM"/"-HH:MM" (no zone = UTC; a space may replace the T). A
 * date without a time means the start of that day (UTC), or its last
 * second when end_of_day is 1 (so to=2024-05-31 includes that day).
 * Returns 0 and *out_s, or LUCY_EINVAL. */
int lucy_index_parse_time(const char *s, int end_of_day, int64_t *out_s);

/* 1 when source is one lucy produces ("call_recording", "whatsapp"). */
int lucy_index_known_source(const char *source);

/* The hit as the /search JSON object (new reference): source, id,
 * segment, title, snippet, score, time, contact, speaker
 * (lucy_speaker_json), and t0_ms/t1_ms for recordings. */
json_t *lucy_search_hit_json(const struct lucy_search_hit *h);

/* Group g of grouped result r as the /search JSON object (new reference,
 * NULL on allocation failure): its best hit's fields (so a client of the
 * flat list reads one hit per conversation) plus `key`, `person` (or
 * null), `hits` (the shown hits, best first, each with its `speaker`) and
 * `more`. */
json_t *lucy_search_group_json(const struct lucy_search_result *r,
                               const struct lucy_search_group *g);

/* The whole /search reply (new reference, NULL on allocation failure) for
 * query: {"query","backend","degraded","degraded_reason","grouped","count",
 * "hits"}; grouped = 1: hits are r's groups (lucy_search_group_json) and
 * count counts them; 0: the flat hits. Also `lucy search --json`. */
json_t *lucy_search_result_json(const char *query, const struct lucy_search_result *r, int grouped);

/* ---- consumer side of the outbox (outbox.c), for the indexer ------------ */

/* What the consumer must remember of a taken outbox row to settle it. */
struct lucy_outbox_row {
    int64_t seq;   /* outbox.seq that was read: settling is guarded by it */
    int attempts;  /* outbox.attempts before this try */
    int is_delete; /* op = 'delete' */
};

/* Reads up to max due rows (not failed, next_attempt_at_ms <= now_ms,
 * oldest first) with their documents into items[] and rows[] (parallel
 * arrays of max entries): the *n_put puts first, then the deletes; *n in
 * all. Strings are malloc'd: free them with lucy_outbox_take_free (also
 * on error). A put whose document vanished has doc.text NULL. Call inside
 * a store read function. 0 or LUCY_E*. */
int lucy_outbox_take(sqlite3 *db, int64_t now_ms, size_t max, struct lucy_index_item *items,
                     struct lucy_outbox_row *rows, size_t *n, size_t *n_put);

/* Frees the document strings of items[0..n) taken by lucy_outbox_take. */
void lucy_outbox_take_free(struct lucy_index_item *items, size_t n);

/* Records the backend's outcome of one taken row, only if the row is still
 * at row->seq (a newer change stays queued): it->rc == 0 removes it (and
 * purges the document of an applied delete); it->permanent marks it
 * failed with it->error; otherwise attempts + 1 and retry at retry_at_ms
 * (wall clock). Call inside a store write function. 0 or LUCY_E*. */
int lucy_outbox_settle(sqlite3 *db, const struct lucy_index_item *it,
                       const struct lucy_outbox_row *row, int64_t retry_at_ms);

/* Makes every waiting row due now (the backend is back). Inside a store
 * write function. 0 or LUCY_E*. */
int lucy_outbox_all_due(sqlite3 *db);

/* The store event (lucy_store_notify, store.h) raised by every write that
 * queues outbox rows: the indexer listens for it to wake at once. */
#define LUCY_OUTBOX_EVENT (1u << 0)

/* ---- the indexer (indexer.c) -------------------------------------------- */

struct lucy_indexer;

/* Counters of one drain pass or of the thread's lifetime. */
struct lucy_indexer_counts {
    uint64_t indexed; /* puts applied */
    uint64_t deleted; /* deletes applied */
    uint64_t failed;  /* rows marked failed (permanent errors) */
    uint64_t retried; /* rows put back with backoff (transient errors) */
};

/* Creates an indexer draining the outbox of ix's store into ix (ix must
 * outlive it); no thread yet. disk may be NULL (then never critical).
 * Returns 0 and *out, or LUCY_ENOMEM. */
int lucy_indexer_new(struct lucy_index *ix, struct lucy_disk *disk, struct lucy_indexer **out);

/* Starts the "indexer" thread and registers it as the outbox's consumer,
 * so outbox rows queued in this process wake it (it polls every ~200 ms
 * as well, which finds rows written by other processes). 0 or LUCY_E*. */
int lucy_indexer_start(struct lucy_indexer *w);

/* Stops and joins the thread (if started) and frees w. NULL is fine. */
void lucy_indexer_free(struct lucy_indexer *w);

/* Lifetime counters of the indexer's thread (NULL w: zeros). */
void lucy_indexer_counts(struct lucy_indexer *w, struct lucy_indexer_counts *out);

/* Drains due outbox rows into w's index on the calling thread until none
 * are due or max_rows were handled (0 = no limit); counts are added to
 * *counts. Returns 0, or the LUCY_E* of the first whole-batch failure (the
 * rows are then rescheduled with backoff). For `lucy reindex` and tests,
 * on an indexer whose thread is not started. */
int lucy_indexer_drain(struct lucy_indexer *w, size_t max_rows, struct lucy_indexer_counts *counts);

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
