/*
 * qdrant.c - the scale-out search backend: Qdrant over its REST API
 * (src/http/client.h + jansson). The wrapper (index.c) keeps lucy's SQLite
 * FTS5 index as the local copy beside it and answers /search from that
 * copy while Qdrant fails (lucy_index_ops.local_copy); this file knows
 * only Qdrant.
 *
 * Configuration: QDRANT_URL, QDRANT_API_KEY (sent as the `api-key`
 * header, never logged), QDRANT_COLLECTION (default lucy_data) and
 * LUCY_QDRANT_TIMEOUT_MS, the connect + whole-call timeout of EVERY call
 * (a hung Qdrant costs at most that, never a hung thread).
 *
 * Collection (ensure): sparse vector `text` with modifier `idf`; payload
 * indexes keyword `source`, `contact`, `recording_id`, integer `time`, and
 * a full-text index on `text` (bodies in ensure_rows[], from Qdrant's
 * documentation as checked in FACTS.md). Ensure runs at start and then
 * whenever the indexer retries it (1 s doubling to 30 s) until everything
 * exists; what is missing is listed in /rag/stats.payload_indexes.pending
 * and in the qdrant:indexes health check with Qdrant's reason. An index
 * already listed in the collection's payload_schema is not created again.
 * With LUCY_EMBED_URL the collection also has the named dense vector
 * `dense` (Cosine) of the size of the stored vectors of LUCY_EMBED_MODEL:
 * created with it when that size is known, else given it by the upgrade
 * (qdrant_upgrade.c) when the first vectors arrive; every point upserted
 * carries its document's current dense vector (the embedder re-queues a
 * document when its vector is stored), and the `similar` slot queries it.
 *
 * Points: id = UUIDv5(LUCY_POINT_NAMESPACE, "<source>/<id>/<segment>")
 * (RFC 4122 §4.3, SHA-1 through OpenSSL EVP). The namespace is
 * uuid5(NAMESPACE_URL, "https://lucy.invalid/search-index/v1"); source
 * has no '/', segment is the decimal number after the last '/', so the
 * name is unambiguous even when id holds slashes. A retried upsert
 * therefore overwrites the same point. Payload: source, id, segment,
 * contact, title, text, time (Unix s), and for recordings recording_id,
 * t0_ms, t1_ms. Vector `text`: the BM25 sparse vector of sparse.h, the
 * same tokenizer as the local FTS5 index; Qdrant multiplies by idf at
 * query time. The query vector has 1.0 per distinct query term, so a
 * document matches when it holds ANY query word, best first (the sqlite
 * backend requires every word; docs/qdrant.md); equal scores are ordered
 * newest first, like the sqlite backend.
 *
 * Errors: 2xx ok; transport errors, timeouts and 5xx are transient (the
 * whole batch stays queued and the indexer backs off; Qdrant's WAL "No
 * space left on device" 500 becomes LUCY_ENOSPC); 404 for the collection
 * triggers ensure and is transient; 401/403 (wrong api key) are transient
 * configuration errors; any other 4xx rejects documents: the batch is
 * halved until the rejected items are alone, each marked failed with
 * Qdrant's message (permanent, never retried blindly).
 *
 * Search: POST /collections/{c}/points/query with the sparse query vector
 * (using "text") and a filter on source, contact and the time range.
 * Hits are completed from lucy's `documents` rows (lucy_outbox_get_docs:
 * the current text, title and contact; a point another instance wrote
 * keeps its payload's), hits tombstoned locally are dropped, and snippets
 * are built with the shared tokenizer, HTML-escaped, matched terms in
 * <mark>.
 *
 * Threads: every slot may run on the indexer, HTTP and prober threads at
 * once. Calls take kept-alive curl handles from `pool`; `lock` guards the
 * ensure state; ensure itself is serialised by `ensure_lock`.
 *
 * Length: about 1200 lines, over the usual ~700, because the slots, the
 * ensure state machine and the three checks all share lucy_qdrant_call()
 * and the ensure state; the upgrade, which needs only the call and the
 * upsert, lives in qdrant_upgrade.c (shared internals: qdrant_int.h).
 */
#define _GNU_SOURCE
#include <openssl/evp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../clock.h"
#include "../config.h"
#include "../error.h"
#include "../health/health.h"
#include "../http/client.h"
#include "../log.h"
#include "../store/row.h"
#include "../store/store.h"
#include "index.h"
#include "qdrant_int.h"
#include "sparse.h"
#include "vectors.h"

#define MAX_RESPONSE_BYTES (64u << 20) /* a query answer of 110 points is far smaller */
#define SEARCH_OVERFETCH   10          /* extra points asked for, for local tombstones */
#define CHECK_INTERVAL_MS  5000
#define N_ENSURE           LUCY_QDRANT_N_ENSURE
#define UPGRADE_RETRY_MS   30000 /* a failed upgrade is tried again by batches after this */

/* uuid5(NAMESPACE_URL, "https://lucy.invalid/search-index/v1"). */
static const unsigned char point_namespace[16] = {0x3f, 0x9c, 0x3e, 0x20, 0x0b, 0x4d, 0x52, 0x7a,
                                                  0xbf, 0xa2, 0x11, 0xe2, 0x24, 0xd5, 0xb6, 0xb1};

/* What ensure creates, in order: the collection, then its payload indexes
 * (Qdrant REST: PUT /collections/{c}, PUT /collections/{c}/index). */
const struct lucy_qdrant_ensure_row lucy_qdrant_ensure_rows[] = {
    {"collection", "{\"sparse_vectors\":{\"text\":{\"modifier\":\"idf\"}}}"},
    {"source", "{\"field_name\":\"source\",\"field_schema\":\"keyword\"}"},
    {"contact", "{\"field_name\":\"contact\",\"field_schema\":\"keyword\"}"},
    {"recording_id", "{\"field_name\":\"recording_id\",\"field_schema\":\"keyword\"}"},
    {"time", "{\"field_name\":\"time\",\"field_schema\":\"integer\"}"},
    {"text", "{\"field_name\":\"text\",\"field_schema\":{\"type\":\"text\",\"tokenizer\":\"word\","
             "\"lowercase\":true}}"},
};
_Static_assert(sizeof lucy_qdrant_ensure_rows / sizeof lucy_qdrant_ensure_rows[0] == N_ENSURE,
               "LUCY_QDRANT_N_ENSURE counts lucy_qdrant_ensure_rows");
#define ensure_rows lucy_qdrant_ensure_rows

/* ---- point ids ------------------------------------------------------------- */

/* Writes the point id of (source, id, segment) as 36 chars + NUL into out. */
static int point_id(const char *source, const char *id, int segment, char out[37])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    char seg[16];
    snprintf(seg, sizeof seg, "%d", segment);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) &&
             EVP_DigestUpdate(ctx, point_namespace, sizeof point_namespace) &&
             EVP_DigestUpdate(ctx, source, strlen(source)) && EVP_DigestUpdate(ctx, "/", 1) &&
             EVP_DigestUpdate(ctx, id, strlen(id)) && EVP_DigestUpdate(ctx, "/", 1) &&
             EVP_DigestUpdate(ctx, seg, strlen(seg)) && EVP_DigestFinal_ex(ctx, md, &md_len);
    EVP_MD_CTX_free(ctx);
    if (!ok || md_len < 16)
        return LUCY_ENOMEM;
    md[6] = (unsigned char)((md[6] & 0x0f) | 0x50); /* version 5 */
    md[8] = (unsigned char)((md[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[md[i] >> 4];
        out[o++] = hex[md[i] & 15];
    }
    out[o] = '\0';
    return 0;
}

/* ---- HTTP ------------------------------------------------------------------ */

/* LUCY_E* for a Qdrant HTTP status (see the file header). */
static int status_err(long status, const char *message)
{
    if (status >= 200 && status < 300)
        return 0;
    if (status >= 500)
        return message && strstr(message, "No space left on device") ? LUCY_ENOSPC : LUCY_EUNAVAIL;
    static const struct {
        long status;
        int err;
    } map[] = {{401, LUCY_EPERM}, {403, LUCY_EPERM}, {404, LUCY_ENOTFOUND}, {409, LUCY_ECONFLICT}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (map[i].status == status)
            return map[i].err;
    return LUCY_EINVAL;
}

/* A rejected document rather than a configuration or availability problem. */
static int rejects_documents(long status)
{
    return status >= 400 && status < 500 && status != 401 && status != 403 && status != 404 &&
           status != 408 && status != 429;
}

/*
 * Calls Qdrant: method on url + path (path starts with '/', query string
 * included), body (borrowed; NULL = none) as JSON. timeout_ms bounds the
 * connection and the whole call. Fills r (caller frees with reply_free on
 * every path). Returns 0 for a 2xx, else a LUCY_E* code (status_err, or
 * LUCY_ETIMEDOUT / LUCY_EUNAVAIL without an answer) with r->error set.
 */
int lucy_qdrant_call(struct qdrant_index *s, const char *method, const char *path,
                     const json_t *body, int timeout_ms, struct reply *r)
{
    memset(r, 0, sizeof *r);
    char url[1024];
    snprintf(url, sizeof url, "%s%s", s->url, path);
    char *payload = body ? json_dumps(body, JSON_COMPACT) : NULL;
    if (body && !payload) {
        snprintf(r->error, sizeof r->error, "out of memory");
        return LUCY_ENOMEM;
    }
    struct lucy_http_call c = {.method = method,
                               .url = url,
                               .headers = {s->api_key_header},
                               .body = payload,
                               .body_len = payload ? strlen(payload) : 0,
                               .timeout_ms = timeout_ms,
                               .connect_timeout_ms = timeout_ms,
                               .reply_cap = MAX_RESPONSE_BYTES};
    int rc = lucy_http_pool_perform(&s->pool, &c);
    if (rc == LUCY_ENOMEM) {
        snprintf(r->error, sizeof r->error, "out of memory");
    } else if (rc) {
        snprintf(r->error, sizeof r->error, "no answer from Qdrant at %s: %s", s->url, c.error);
    } else {
        r->status = c.status;
        r->json = c.reply ? json_loadb(c.reply, c.reply_len, 0, NULL) : NULL;
        const char *msg =
            json_string_value(json_object_get(json_object_get(r->json, "status"), "error"));
        rc = status_err(r->status, msg ? msg : c.reply);
        if (rc)
            snprintf(r->error, sizeof r->error, "HTTP %ld: %.250s", r->status,
                     msg ? msg : (c.reply ? c.reply : "(empty answer)"));
    }
    lucy_http_call_free(&c);
    free(payload);
    return rc;
}

/* ---- open / close ----------------------------------------------------------- */

static int valid_collection(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 255)
        return 0;
    return strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n &&
           strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

static void qdrant_close(void *state);

static int qdrant_open(const struct lucy_config *cfg, struct lucy_store *store, void **state,
                       char *err, size_t errlen)
{
    *state = NULL;
    const char *url = cfg ? cfg->qdrant_url : NULL;
    const char *coll = cfg && cfg->qdrant_collection ? cfg->qdrant_collection : "lucy_data";
    /* schemes are case-insensitive (RFC 3986 3.1), as for the config check */
    if (!url || (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0)) {
        snprintf(err, errlen, "invalid QDRANT_URL: expected http://host:port or https://...");
        return LUCY_EINVAL;
    }
    if (!valid_collection(coll)) {
        snprintf(err, errlen,
                 "invalid QDRANT_COLLECTION='%s': use letters, digits, '_', '.', '-' "
                 "(at most 255)",
                 coll);
        return LUCY_EINVAL;
    }
    struct qdrant_index *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return LUCY_ENOMEM;
    }
    s->pool = (struct lucy_http_pool)LUCY_HTTP_POOL_INIT;
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->ensure_lock, NULL);
    s->store = store;
    s->timeout_ms = cfg->qdrant_timeout_ms > 0 ? cfg->qdrant_timeout_ms : 3000;
    s->url = strdup(url);
    s->collection = strdup(coll);
    if (cfg->embed_url && cfg->embed_model && !(s->embed_model = strdup(cfg->embed_model)))
        s->url = (free(s->url), NULL); /* reported as out of memory below */
    if (s->url)
        s->url[strcspn(s->url, "?#")] = '\0';
    for (size_t n = s->url ? strlen(s->url) : 0; n > 0 && s->url[n - 1] == '/'; n--)
        s->url[n - 1] = '\0';
    if (cfg->qdrant_api_key && asprintf(&s->api_key_header, "api-key: %s", cfg->qdrant_api_key) < 0)
        s->api_key_header = NULL;
    int rc = (!s->url || !s->collection || (cfg->qdrant_api_key && !s->api_key_header))
                 ? LUCY_ENOMEM
                 : 0;
    if (rc)
        snprintf(err, errlen, "out of memory");
    if (!rc && (rc = lucy_tokenizer_open(&s->tok)))
        snprintf(err, errlen, "SQLite's unicode61 tokenizer is not available (FTS5 missing?)");
    if (rc) {
        qdrant_close(s);
        return rc;
    }
    *state = s;
    return 0;
}

static void qdrant_close(void *state)
{
    struct qdrant_index *s = state;
    if (!s)
        return;
    lucy_http_pool_free(&s->pool);
    lucy_tokenizer_close(s->tok);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->ensure_lock);
    if (s->api_key_header) {
        explicit_bzero(s->api_key_header, strlen(s->api_key_header));
        free(s->api_key_header);
    }
    free(s->url);
    free(s->collection);
    free(s->embed_model);
    free(s);
}

/* ---- ensure ------------------------------------------------------------------ */

static void set_ensure(struct qdrant_index *s, size_t i, int done, const char *error)
{
    pthread_mutex_lock(&s->lock);
    struct ensure_state *e = &s->ensure[i];
    e->done = done;
    e->attempts = done ? 0 : e->attempts + 1;
    snprintf(e->error, sizeof e->error, "%s", done ? "" : error);
    pthread_mutex_unlock(&s->lock);
}

static int ensure_done(struct qdrant_index *s, size_t i)
{
    pthread_mutex_lock(&s->lock);
    int done = s->ensure[i].done;
    pthread_mutex_unlock(&s->lock);
    return done;
}

/* Forgets everything ensured (the collection was dropped or vanished). */
static void reset_ensure(struct qdrant_index *s)
{
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < N_ENSURE; i++)
        s->ensure[i].done = 0;
    pthread_mutex_unlock(&s->lock);
}

/* Marks the payload indexes listed in a collection's payload_schema. */
static void note_schema(struct qdrant_index *s, const json_t *schema)
{
    for (size_t i = 1; i < N_ENSURE; i++)
        if (json_object_get(schema, ensure_rows[i].name))
            set_ensure(s, i, 1, NULL);
}

static int get_dense_dim(struct qdrant_index *s)
{
    pthread_mutex_lock(&s->lock);
    int dim = s->dense_dim;
    pthread_mutex_unlock(&s->lock);
    return dim;
}

void lucy_qdrant_set_dense_dim(struct qdrant_index *s, int dim)
{
    pthread_mutex_lock(&s->lock);
    s->dense_dim = dim;
    pthread_mutex_unlock(&s->lock);
}

struct dim_arg {
    const char *model; /* LUCY_EMBED_MODEL */
    int dim;           /* out */
};

static int read_dim(sqlite3 *db, void *arg)
{
    struct dim_arg *a = arg;
    return lucy_vectors_dim(db, a->model, &a->dim);
}

/* The dimension the collection's dense vector must have: that of the
 * vectors of LUCY_EMBED_MODEL stored locally; 0 = no dense vector (no
 * LUCY_EMBED_URL, or no vector computed yet, or the store unreadable). */
int lucy_qdrant_wanted_dim(struct qdrant_index *s)
{
    if (!s->embed_model)
        return 0;
    struct dim_arg a = {s->embed_model, 0};
    return lucy_store_read(s->store, read_dim, &a) == 0 ? a.dim : 0;
}

/* The collection: exists with a sparse vector `text`, or is created (with
 * the dense vector too when its dimension is known). After an upgrade
 * killed between dropping the old collection and creating the alias, the
 * alias is created now (the upgraded collection is complete by then). */
static int ensure_collection(struct qdrant_index *s)
{
    char path[512], why[300];
    struct reply r;
    snprintf(path, sizeof path, "/collections/%s", s->collection);
    int rc = lucy_qdrant_call(s, "GET", path, NULL, s->timeout_ms, &r);
    int want = rc == LUCY_ENOTFOUND ? lucy_qdrant_wanted_dim(s) : 0;
    if (rc == LUCY_ENOTFOUND && want > 0) {
        char target[300];
        lucy_qdrant_dense_name(s, want, target, sizeof target);
        reply_free(&r);
        if (lucy_qdrant_alias_switch(s, 0, target, &r) == 0) {
            lucy_log(LUCY_LOG_INFO, "qdrant collection upgrade finished (alias created)",
                     "{s:s,s:s}", "alias", s->collection, "collection", target);
            reply_free(&r);
            rc = lucy_qdrant_call(s, "GET", path, NULL, s->timeout_ms, &r);
        } else {
            reply_free(&r);
            memset(&r, 0, sizeof r);
        }
    }
    if (rc == 0) {
        json_t *vectors = json_object_get(
            json_object_get(json_object_get(json_object_get(r.json, "result"), "config"), "params"),
            "vectors");
        lucy_qdrant_set_dense_dim(s, (int)json_integer_value(json_object_get(
                                         json_object_get(vectors, DENSE_VECTOR), "size")));
        json_t *res = json_object_get(r.json, "result");
        json_t *sparse = json_object_get(json_object_get(json_object_get(res, "config"), "params"),
                                         "sparse_vectors");
        if (!json_object_get(sparse, "text")) {
            snprintf(why, sizeof why,
                     "collection %s exists without the sparse vector `text`: delete it (or set "
                     "QDRANT_COLLECTION to a new name), then run `lucy reindex`",
                     s->collection);
            set_ensure(s, 0, 0, why);
            reply_free(&r);
            return LUCY_EINVAL;
        }
        note_schema(s, json_object_get(res, "payload_schema"));
        set_ensure(s, 0, 1, NULL);
        reply_free(&r);
        return 0;
    }
    if (rc == LUCY_ENOTFOUND) {
        reply_free(&r);
        json_t *body = lucy_qdrant_collection_body(want);
        rc = body ? lucy_qdrant_call(s, "PUT", path, body, s->timeout_ms, &r) : LUCY_ENOMEM;
        json_decref(body);
        if (rc == 0)
            lucy_qdrant_set_dense_dim(s, want);
        if (rc == LUCY_ECONFLICT) /* another instance was faster */
            rc = 0;
    }
    if (rc == 0)
        set_ensure(s, 0, 1, NULL);
    else
        set_ensure(s, 0, 0, r.error[0] ? r.error : lucy_strerror(rc));
    reply_free(&r);
    return rc;
}

/* Lists what is pending into err: "2 of 6 pending (time: HTTP 500: ...)". */
static int pending_summary(struct qdrant_index *s, char *err, size_t errlen)
{
    int pending = 0;
    size_t first = N_ENSURE;
    char names[256] = "";
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < N_ENSURE; i++) {
        if (s->ensure[i].done)
            continue;
        if (first == N_ENSURE && s->ensure[i].error[0])
            first = i;
        size_t len = strlen(names);
        snprintf(names + len, sizeof names - len, "%s%s", pending ? ", " : "", ensure_rows[i].name);
        pending++;
    }
    if (pending && err && errlen)
        snprintf(err, errlen, "Qdrant collection %s: %d of %zu not created yet (%s)%s%s",
                 s->collection, pending, N_ENSURE, names, first < N_ENSURE ? ": " : "",
                 first < N_ENSURE ? s->ensure[first].error : "");
    pthread_mutex_unlock(&s->lock);
    return pending;
}

static int qdrant_ensure(void *state, char *err, size_t errlen)
{
    struct qdrant_index *s = state;
    pthread_mutex_lock(&s->ensure_lock);
    int had_failures = 0;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < N_ENSURE; i++)
        had_failures |= s->ensure[i].attempts > 0;
    pthread_mutex_unlock(&s->lock);

    int rc = ensure_collection(s);
    for (size_t i = 1; rc == 0 && i < N_ENSURE; i++) {
        if (ensure_done(s, i))
            continue;
        char path[512];
        struct reply r;
        snprintf(path, sizeof path, "/collections/%s/index?wait=true", s->collection);
        json_t *body = json_loads(ensure_rows[i].body, 0, NULL);
        int irc = body ? lucy_qdrant_call(s, "PUT", path, body, s->timeout_ms, &r) : LUCY_ENOMEM;
        json_decref(body);
        set_ensure(s, i, irc == 0, r.error[0] ? r.error : lucy_strerror(irc));
        reply_free(&r);
        if (irc == LUCY_ETIMEDOUT || (irc == LUCY_EUNAVAIL && r.status == 0))
            break; /* no answer: the others would wait as long */
    }
    int pending = pending_summary(s, err, errlen);
    int want = pending ? 0 : lucy_qdrant_wanted_dim(s);
    if (want > 0 && want != get_dense_dim(s) && lucy_qdrant_upgrade(s, want, err, errlen)) {
        pthread_mutex_unlock(&s->ensure_lock);
        return LUCY_EUNAVAIL;
    }
    if (!pending && had_failures)
        lucy_log(LUCY_LOG_INFO, "qdrant collection and payload indexes created", "{s:s}",
                 "collection", s->collection);
    pthread_mutex_unlock(&s->ensure_lock);
    if (pending)
        return rc && rc != LUCY_ENOTFOUND ? rc : LUCY_EUNAVAIL;
    return 0;
}

/* ---- upsert / delete ------------------------------------------------------------ */

/* The point of d; its vector holds the sparse `text` and, when dense is
 * not NULL, the dense vector (dim floats). */
static json_t *point_json(struct qdrant_index *s, const struct lucy_doc *d, const float *dense,
                          int dim, int *rc)
{
    char pid[37];
    struct lucy_sparse v = {0};
    *rc = point_id(d->source, d->id, d->segment, pid);
    if (*rc)
        return NULL;
    if ((*rc = lucy_sparse_document(s->tok, d->text, d->title, &v)))
        return NULL;
    json_t *payload =
        json_pack("{s:s,s:s,s:i,s:s,s:I}", "source", d->source, "id", d->id, "segment", d->segment,
                  "text", d->text, "time", (json_int_t)d->time_s);
    if (payload && d->contact)
        json_object_set_new(payload, "contact", json_string(d->contact));
    if (payload && d->title)
        json_object_set_new(payload, "title", json_string(d->title));
    if (payload && strcmp(d->source, "call_recording") == 0) {
        json_object_set_new(payload, "recording_id", json_string(d->id));
        json_object_set_new(payload, "t0_ms", json_integer(d->t0_ms));
        json_object_set_new(payload, "t1_ms", json_integer(d->t1_ms));
    }
    json_t *p = json_pack("{s:s,s:{s:o*},s:o*}", "id", pid, "vector", "text", lucy_sparse_json(&v),
                          "payload", payload);
    lucy_sparse_free(&v);
    if (p && dense) {
        json_t *arr = json_array();
        for (int k = 0; arr && k < dim; k++)
            json_array_append_new(arr, json_real(dense[k]));
        json_object_set_new(json_object_get(p, "vector"), DENSE_VECTOR, arr);
    }
    *rc = p ? 0 : LUCY_ENOMEM;
    return p;
}

/* An item Qdrant is asked about: a put with text, or a delete with a key. */
static int has_key(const struct lucy_index_item *it, int put)
{
    return it->doc.source && it->doc.id && (!put || it->doc.text);
}

/* The dense vectors of some items, read from document_vectors. */
struct dense_arg {
    const char *model;                   /* LUCY_EMBED_MODEL */
    const struct lucy_index_item *items; /* n items */
    size_t n;
    float **vectors; /* out: per item, malloc'd or NULL (none current) */
    int *dims;       /* out: their sizes */
};

static int read_dense(sqlite3 *db, void *arg)
{
    struct dense_arg *a = arg;
    for (size_t i = 0; i < a->n; i++) {
        int rc = lucy_vectors_get(db, a->items[i].doc_rowid, a->model, &a->vectors[i], &a->dims[i]);
        if (rc && rc != LUCY_ENOTFOUND)
            return rc;
    }
    return 0;
}

/* Sends items[lo, hi) to collection coll (puts: upsert, with the dense
 * vector of each document that has one of size dim > 0; else delete by
 * id). */
int lucy_qdrant_send_range(struct qdrant_index *s, const char *coll, int dim,
                           struct lucy_index_item *items, size_t lo, size_t hi, int put,
                           struct reply *r)
{
    memset(r, 0, sizeof *r);
    json_t *arr = json_array();
    int rc = arr ? 0 : LUCY_ENOMEM;
    size_t n = hi - lo;
    float **dense = put && dim > 0 ? calloc(n, sizeof *dense) : NULL;
    int *dims = dense ? calloc(n, sizeof *dims) : NULL;
    if (put && dim > 0 && (!dense || !dims))
        rc = LUCY_ENOMEM;
    if (rc == 0 && dense) {
        struct dense_arg a = {s->embed_model, items + lo, n, dense, dims};
        rc = lucy_store_read(s->store, read_dense, &a);
    }
    for (size_t i = lo; rc == 0 && i < hi; i++) {
        if (!has_key(&items[i], put))
            continue;
        if (put) {
            const float *v = dense && dims[i - lo] == dim ? dense[i - lo] : NULL;
            json_array_append_new(arr, point_json(s, &items[i].doc, v, dim, &rc));
        } else {
            char pid[37];
            rc = point_id(items[i].doc.source, items[i].doc.id, items[i].doc.segment, pid);
            if (!rc)
                json_array_append_new(arr, json_string(pid));
        }
    }
    for (size_t i = 0; dense && i < n; i++)
        free(dense[i]);
    free(dense);
    free(dims);
    if (rc || json_array_size(arr) == 0) {
        json_decref(arr);
        if (rc)
            snprintf(r->error, sizeof r->error, "%s", lucy_strerror(rc));
        return rc;
    }
    char path[512];
    snprintf(path, sizeof path, "/collections/%s/points%s?wait=true", coll, put ? "" : "/delete");
    json_t *body = json_pack("{s:o}", "points", arr);
    rc = body ? lucy_qdrant_call(s, put ? "PUT" : "POST", path, body, s->timeout_ms, r)
              : LUCY_ENOMEM;
    json_decref(body);
    return rc;
}

/*
 * Applies items[lo, hi) to Qdrant. Documents Qdrant rejects (a 4xx other
 * than auth / not found) are isolated by halving and marked permanent with
 * Qdrant's message. Returns 0 (per-item outcomes set) or the whole-batch
 * LUCY_E* with err.
 */
static int apply_range(struct qdrant_index *s, struct lucy_index_item *items, size_t lo, size_t hi,
                       int put, int may_ensure, char *err, size_t errlen)
{
    struct reply r;
    int rc = lucy_qdrant_send_range(s, s->collection, get_dense_dim(s), items, lo, hi, put, &r);
    long status = r.status;
    reply_free(&r);
    if (rc == 0)
        return 0;
    if (rc == LUCY_ENOTFOUND && !put)
        return 0; /* no collection: nothing to delete */
    if (rc == LUCY_ENOTFOUND && may_ensure) {
        reset_ensure(s); /* the collection vanished or was never created */
        char why[300];
        if (qdrant_ensure(s, why, sizeof why) == 0 || ensure_done(s, 0))
            return apply_range(s, items, lo, hi, put, 0, err, errlen);
        snprintf(err, errlen, "%s", why);
        return LUCY_EUNAVAIL;
    }
    if (!rejects_documents(status)) {
        snprintf(err, errlen, "%s", r.error);
        return rc;
    }
    if (hi - lo == 1) {
        items[lo].rc = rc;
        items[lo].permanent = 1;
        snprintf(items[lo].error, sizeof items[lo].error, "Qdrant rejected the document: %.220s",
                 r.error);
        return 0;
    }
    size_t mid = lo + (hi - lo) / 2;
    rc = apply_range(s, items, lo, mid, put, 0, err, errlen);
    return rc ? rc : apply_range(s, items, mid, hi, put, 0, err, errlen);
}

static int qdrant_upsert_batch(void *state, struct lucy_index_item *items, size_t n, char *err,
                               size_t errlen)
{
    struct qdrant_index *s = state;
    int want = lucy_qdrant_wanted_dim(s);
    if (want > 0 && want != get_dense_dim(s) && ensure_done(s, 0)) {
        /* The first vectors (or a model of another size): the collection
         * gets its dense vector first. If that fails the points go to the
         * current collection without it (the next upgrade copies them),
         * and batches do not try again for UPGRADE_RETRY_MS. */
        char why[300];
        pthread_mutex_lock(&s->ensure_lock);
        if (want != get_dense_dim(s) && lucy_mono_ms() >= s->upgrade_after_ms &&
            lucy_qdrant_upgrade(s, want, why, sizeof why)) {
            s->upgrade_after_ms = lucy_mono_ms() + UPGRADE_RETRY_MS;
            lucy_log(LUCY_LOG_WARNING, "qdrant collection upgrade failed; retried later", "{s:s}",
                     "error", why);
        }
        pthread_mutex_unlock(&s->ensure_lock);
    }
    return apply_range(state, items, 0, n, 1, 1, err, errlen);
}

static int qdrant_delete(void *state, struct lucy_index_item *items, size_t n, char *err,
                         size_t errlen)
{
    return apply_range(state, items, 0, n, 0, 0, err, errlen);
}

/* ---- search --------------------------------------------------------------------- */

/* The filter of q (new reference), or NULL when q has none. */
static json_t *query_filter(const struct lucy_search_query *q)
{
    json_t *must = json_array();
    if (!must)
        return NULL;
    const struct {
        const char *key, *value;
    } exact[] = {{"source", q->source}, {"contact", q->contact}};
    for (size_t i = 0; i < 2; i++)
        if (exact[i].value)
            json_array_append_new(must, json_pack("{s:s,s:{s:s}}", "key", exact[i].key, "match",
                                                  "value", exact[i].value));
    if (q->from_s != INT64_MIN || q->to_s != INT64_MAX) {
        json_t *range = json_object();
        if (q->from_s != INT64_MIN)
            json_object_set_new(range, "gte", json_integer(q->from_s));
        if (q->to_s != INT64_MAX)
            json_object_set_new(range, "lte", json_integer(q->to_s));
        json_array_append_new(must, json_pack("{s:s,s:o}", "key", "time", "range", range));
    }
    json_t *should = NULL;
    if (q->restrict_ids) { /* a person: its contacts or its recordings */
        const struct {
            const char *key;
            const char *const *v;
            size_t n;
        } any[] = {{"contact", q->contacts, q->n_contacts},
                   {"recording_id", q->recordings, q->n_recordings}};
        should = json_array();
        for (size_t i = 0; should && i < 2; i++) {
            json_t *values = json_array();
            for (size_t j = 0; values && j < any[i].n; j++)
                json_array_append_new(values, json_string(any[i].v[j]));
            if (json_array_size(values) > 0)
                json_array_append_new(
                    should, json_pack("{s:s,s:{s:o}}", "key", any[i].key, "match", "any", values));
            else
                json_decref(values);
        }
    }
    if (json_array_size(must) == 0 && json_array_size(should) == 0) {
        json_decref(must);
        json_decref(should);
        return NULL;
    }
    return json_pack("{s:o,s:o*}", "must", must, "should", should);
}

/* One Qdrant hit, completed from lucy's documents. */
struct local_hit {
    const char *source, *id; /* from the payload (borrowed) */
    int segment;             /* ... */
    json_t *payload;         /* the point's payload (borrowed) */
    double score;            /* Qdrant's */
    int found;               /* a documents row exists: doc is filled */
    struct lucy_doc_row doc; /* that row */
};

struct lookup_arg {
    struct local_hit *hits; /* n hits to complete */
    size_t n;
};

static int read_local(sqlite3 *db, void *arg)
{
    struct lookup_arg *a = arg;
    for (size_t i = 0; i < a->n; i++) {
        struct local_hit *h = &a->hits[i];
        int rc = lucy_outbox_doc_get(db, h->source, h->id, h->segment, &h->doc);
        if (rc == 0)
            h->found = 1;
        else if (rc != LUCY_ENOTFOUND)
            return rc;
    }
    return 0;
}

static char *payload_str(const json_t *payload, const char *key)
{
    const char *v = json_string_value(json_object_get(payload, key));
    return v ? strdup(v) : NULL;
}

/* Turns Qdrant's points into hits in out (at most limit). */
static int fill_hits(struct qdrant_index *s, const json_t *points, const struct lucy_sparse *query,
                     int limit, struct lucy_search_result *out)
{
    size_t n = json_array_size(points);
    struct local_hit *lh = calloc(n ? n : 1, sizeof *lh);
    out->hits = calloc((size_t)limit, sizeof *out->hits);
    int rc = lh && out->hits ? 0 : LUCY_ENOMEM;
    size_t m = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        json_t *p = json_array_get(points, i), *pl = json_object_get(p, "payload");
        struct local_hit *h = &lh[m];
        h->source = json_string_value(json_object_get(pl, "source"));
        h->id = json_string_value(json_object_get(pl, "id"));
        h->segment = (int)json_integer_value(json_object_get(pl, "segment"));
        h->payload = pl;
        h->score = json_number_value(json_object_get(p, "score"));
        if (h->source && h->id) /* a point lucy did not write is skipped */
            m++;
    }
    struct lookup_arg a = {lh, m};
    if (rc == 0 && m > 0)
        rc = lucy_store_read(s->store, read_local, &a);
    for (size_t i = 0; rc == 0 && i < m && out->n < (size_t)limit; i++) {
        struct local_hit *h = &lh[i];
        if (h->found && h->doc.deleted)
            continue;
        struct lucy_search_hit *o = &out->hits[out->n++];
        o->source = strdup(h->source);
        o->id = strdup(h->id);
        o->segment = h->segment;
        o->score = h->score;
        if (h->found) {
            o->contact = h->doc.contact, h->doc.contact = NULL;
            o->title = h->doc.title, h->doc.title = NULL;
            o->time_s = h->doc.time_s, o->t0_ms = h->doc.t0_ms, o->t1_ms = h->doc.t1_ms;
        } else { /* another instance's document: the payload is all there is */
            o->contact = payload_str(h->payload, "contact");
            o->title = payload_str(h->payload, "title");
            o->time_s = json_integer_value(json_object_get(h->payload, "time"));
            o->t0_ms = json_integer_value(json_object_get(h->payload, "t0_ms"));
            o->t1_ms = json_integer_value(json_object_get(h->payload, "t1_ms"));
        }
        const char *text =
            h->found ? h->doc.text : json_string_value(json_object_get(h->payload, "text"));
        int marks = 0;
        o->snippet = lucy_sparse_snippet(s->tok, text, query, &marks);
        if (o->snippet && marks == 0 && o->title) { /* only the title matched */
            int title_marks = 0;
            char *t = lucy_sparse_snippet(s->tok, o->title, query, &title_marks);
            if (t && title_marks > 0) {
                free(o->snippet);
                o->snippet = t;
            } else {
                free(t);
            }
        }
        if (!o->source || !o->id || !o->snippet)
            rc = LUCY_ENOMEM;
    }
    /* Equal scores: newest first, like the sqlite backend (insertion sort
     * keeps Qdrant's order otherwise; n <= limit + SEARCH_OVERFETCH). */
    for (size_t i = 1; rc == 0 && i < out->n; i++) {
        struct lucy_search_hit h = out->hits[i];
        size_t j = i;
        while (j > 0 && out->hits[j - 1].score == h.score && out->hits[j - 1].time_s < h.time_s) {
            out->hits[j] = out->hits[j - 1];
            j--;
        }
        out->hits[j] = h;
    }
    for (size_t i = 0; lh && i < n; i++)
        lucy_doc_row_free(&lh[i].doc);
    free(lh);
    return rc;
}

/* Runs q on Qdrant. LUCY_E* (with why in err) when Qdrant failed. */
/* 1 when a query answer's result.points is what Qdrant sends: an array of
 * objects with a numeric score. A 2xx whose body is cut off, not JSON or
 * of another shape (a broken proxy) is no answer: treating it as "no hits"
 * would hide every document without saying so. */
static int points_valid(const json_t *points)
{
    if (!json_is_array(points))
        return 0;
    size_t i;
    json_t *p;
    json_array_foreach(points, i, p)
    {
        if (!json_is_object(p) || !json_is_number(json_object_get(p, "score")))
            return 0;
    }
    return 1;
}

static int qdrant_search(void *state, const struct lucy_search_query *q,
                         struct lucy_search_result *out, char *err, size_t errlen)
{
    struct qdrant_index *s = state;
    struct lucy_sparse v = {0};
    if (lucy_sparse_query(s->tok, q->q, &v)) {
        snprintf(err, errlen, "out of memory");
        return LUCY_ENOMEM;
    }
    out->backend = lucy_index_qdrant.name;
    if (v.n == 0) /* no words: no hits, like the sqlite backend */
        return 0;
    json_t *body = json_pack("{s:o*,s:s,s:i,s:b}", "query", lucy_sparse_json(&v), "using", "text",
                             "limit", q->limit + SEARCH_OVERFETCH, "with_payload", 1);
    json_t *filter = query_filter(q);
    if (body && filter)
        json_object_set_new(body, "filter", filter);
    else
        json_decref(filter);
    char path[512];
    struct reply r;
    snprintf(path, sizeof path, "/collections/%s/points/query", s->collection);
    int rc = body ? lucy_qdrant_call(s, "POST", path, body, s->timeout_ms, &r) : LUCY_ENOMEM;
    json_decref(body);
    json_t *points = json_object_get(json_object_get(r.json, "result"), "points");
    if (rc == 0 && !points_valid(points)) {
        rc = LUCY_EUNAVAIL;
        snprintf(err, errlen,
                 "Qdrant answered HTTP %ld without a valid result.points list (%s); is a "
                 "proxy in the way?",
                 r.status, r.json ? "unexpected shape" : "not JSON");
    } else if (rc == 0) {
        rc = fill_hits(s, points, &v, q->limit, out);
        if (rc)
            snprintf(err, errlen, "cannot build the hits: %s", lucy_strerror(rc));
    } else {
        snprintf(err, errlen, "%s", r.error[0] ? r.error : lucy_strerror(rc));
    }
    reply_free(&r);
    lucy_sparse_free(&v);
    return rc;
}

/* The documents nearest to vector (dim floats, L2-normalised) by the
 * collection's dense vector, q's filters applied. LUCY_EUNAVAIL while the
 * collection has no dense vector of that size (before the upgrade). */
static int qdrant_similar(void *state, const struct lucy_search_query *q, const float *vector,
                          int dim, struct lucy_search_result *out, char *err, size_t errlen)
{
    struct qdrant_index *s = state;
    out->backend = lucy_index_qdrant.name;
    /* Not known yet in this process (lucy ask, a tool). An upgrade in
     * progress holds ensure_lock: no waiting, the local vectors answer. */
    if (get_dense_dim(s) != dim && pthread_mutex_trylock(&s->ensure_lock) == 0) {
        int rc = ensure_collection(s);
        pthread_mutex_unlock(&s->ensure_lock);
        if (rc) {
            pthread_mutex_lock(&s->lock);
            snprintf(err, errlen, "%s", s->ensure[0].error);
            pthread_mutex_unlock(&s->lock);
            return rc;
        }
    }
    if (get_dense_dim(s) != dim) {
        snprintf(err, errlen, "collection %s has no dense vector of size %d yet", s->collection,
                 dim);
        return LUCY_ENOTFOUND;
    }
    json_t *arr = json_array();
    for (int k = 0; arr && k < dim; k++)
        json_array_append_new(arr, json_real(vector[k]));
    json_t *body = json_pack("{s:o*,s:s,s:i,s:b}", "query", arr, "using", DENSE_VECTOR, "limit",
                             q->limit + SEARCH_OVERFETCH, "with_payload", 1);
    json_t *filter = query_filter(q);
    if (body && filter)
        json_object_set_new(body, "filter", filter);
    else
        json_decref(filter);
    char path[512];
    struct reply r;
    snprintf(path, sizeof path, "/collections/%s/points/query", s->collection);
    int rc = body ? lucy_qdrant_call(s, "POST", path, body, s->timeout_ms, &r) : LUCY_ENOMEM;
    json_decref(body);
    json_t *points = json_object_get(json_object_get(r.json, "result"), "points");
    struct lucy_sparse none = {0}; /* no words to mark: the snippet is the text */
    if (rc == 0 && !points_valid(points)) {
        rc = LUCY_EUNAVAIL;
        snprintf(err, errlen, "Qdrant answered HTTP %ld without a valid result.points list",
                 r.status);
    } else if (rc == 0 && (rc = fill_hits(s, points, &none, q->limit, out))) {
        snprintf(err, errlen, "cannot build the hits: %s", lucy_strerror(rc));
    } else if (rc) {
        snprintf(err, errlen, "%s", r.error[0] ? r.error : lucy_strerror(rc));
    }
    reply_free(&r);
    return rc;
}

/* ---- stats / clear ------------------------------------------------------------- */

static json_t *payload_indexes_json(struct qdrant_index *s)
{
    json_t *ensured = json_array(), *pending = json_array(), *errors = json_object();
    pthread_mutex_lock(&s->lock);
    for (size_t i = 1; i < N_ENSURE; i++) {
        const struct ensure_state *e = &s->ensure[i];
        json_array_append_new(e->done ? ensured : pending, json_string(ensure_rows[i].name));
        if (!e->done && e->error[0])
            json_object_set_new(errors, ensure_rows[i].name, json_string(e->error));
    }
    int coll_done = s->ensure[0].done;
    char coll_error[300];
    snprintf(coll_error, sizeof coll_error, "%s", s->ensure[0].error);
    pthread_mutex_unlock(&s->lock);
    json_t *o = json_pack("{s:o*,s:o*,s:o*,s:b}", "ensured", ensured, "pending", pending, "errors",
                          errors, "collection_ensured", coll_done);
    if (o && !coll_done && coll_error[0])
        json_object_set_new(o, "collection_error", json_string(coll_error));
    return o;
}

/* The backend's verdict for /rag/stats (at most one per call; the wrapper
 * adds lucy's own reasons after it). */
static void set_status(json_t *out, const char *status, const char *reason)
{
    json_object_set_new(out, "status", json_string(status));
    json_object_set_new(out, "status_reason", json_string(reason));
}

/* Qdrant's collection status colour and what lucy makes of it. */
static const struct {
    const char *qdrant, *lucy, *reason;
} status_map[] = {
    {"green", "green", NULL},
    {"yellow", "yellow", "Qdrant is optimizing the collection (status yellow)"},
    {"grey", "yellow",
     "Qdrant has optimizations pending (status grey); they start with the next update"},
    {"red", "red", "Qdrant reports the collection red: an optimization failed; see Qdrant's log"},
};

static int qdrant_stats(void *state, json_t *out)
{
    struct qdrant_index *s = state;
    json_object_set_new(out, "collection", json_string(s->collection));
    json_object_set_new(out, "url", json_string(s->url));
    json_object_set_new(out, "payload_indexes", payload_indexes_json(s));
    int dim = get_dense_dim(s);
    json_object_set_new(out, "dense_size", dim > 0 ? json_integer(dim) : json_null());
    static const char *const counts[][2] = {{"points_count", "points_count"},
                                            {"indexed_count", "indexed_vectors_count"},
                                            {"segments_count", "segments_count"}};
    for (size_t i = 0; i < 3; i++)
        json_object_set_new(out, counts[i][0], json_null());
    json_object_set_new(out, "disk_bytes", json_null());
    json_object_set_new(out, "ram_bytes", json_null());

    char path[512];
    struct reply r;
    snprintf(path, sizeof path, "/collections/%s", s->collection);
    int rc = lucy_qdrant_call(s, "GET", path, NULL, s->timeout_ms, &r);
    json_object_set_new(out, "reachable", json_boolean(r.status != 0));
    char why[512];
    if (rc == LUCY_ENOTFOUND) {
        snprintf(why, sizeof why,
                 "Qdrant collection %s does not exist yet; lucy creates it in the background",
                 s->collection);
        set_status(out, "yellow", why);
    } else if (rc) {
        snprintf(why, sizeof why,
                 "Qdrant does not answer (%s); /search answers from the local "
                 "SQLite copy",
                 r.error);
        set_status(out, "red", why);
    } else {
        json_t *res = json_object_get(r.json, "result");
        for (size_t i = 0; i < 3; i++) {
            json_t *v = json_object_get(res, counts[i][1]);
            if (json_is_integer(v))
                json_object_set(out, counts[i][0], v);
        }
        /* sizes: reported by some Qdrant versions only */
        static const char *const sizes[][2] = {{"disk_bytes", "disk_data_size"},
                                               {"ram_bytes", "ram_data_size"}};
        for (size_t i = 0; i < 2; i++) {
            json_t *v = json_object_get(res, sizes[i][1]);
            if (json_is_integer(v))
                json_object_set(out, sizes[i][0], v);
        }
        json_object_set(out, "payload_schema", json_object_get(res, "payload_schema"));
        json_object_set(out, "optimizer_status", json_object_get(res, "optimizer_status"));
        const char *st = json_string_value(json_object_get(res, "status"));
        json_object_set_new(out, "qdrant_status", st ? json_string(st) : json_null());
        for (size_t i = 0; st && i < sizeof status_map / sizeof status_map[0]; i++)
            if (strcmp(st, status_map[i].qdrant) == 0 && status_map[i].reason)
                set_status(out, status_map[i].lucy, status_map[i].reason);
        note_schema(s, json_object_get(res, "payload_schema"));
    }
    reply_free(&r);
    return 0;
}

static int qdrant_clear(void *state, char *err, size_t errlen)
{
    struct qdrant_index *s = state;
    char path[600], target[300];
    struct reply r;
    pthread_mutex_lock(&s->ensure_lock);
    int rc = lucy_qdrant_alias_target(s, target, sizeof target, &r); /* an upgraded collection */
    reply_free(&r);
    snprintf(path, sizeof path, "/collections/%s", rc == 0 && target[0] ? target : s->collection);
    rc = lucy_qdrant_call(s, "DELETE", path, NULL, s->timeout_ms, &r);
    lucy_qdrant_set_dense_dim(s, 0);
    pthread_mutex_unlock(&s->ensure_lock);
    if (rc == LUCY_ENOTFOUND)
        rc = 0;
    if (rc)
        snprintf(err, errlen, "cannot drop the Qdrant collection %s: %s", s->collection, r.error);
    reply_free(&r);
    if (rc)
        return rc;
    reset_ensure(s);
    /* Re-created now if possible; if not, the upserts of the reindex (or
     * the daemon's indexer) create it when Qdrant can. */
    char why[300];
    qdrant_ensure(s, why, sizeof why);
    return 0;
}

/* ---- health checks ------------------------------------------------------------- */

static void check_ready(void *arg, int timeout_ms, struct lucy_check_report *out)
{
    struct qdrant_index *s = arg;
    struct reply r;
    int64_t t0 = lucy_mono_ms();
    int rc = lucy_qdrant_call(s, "GET", "/readyz", NULL, timeout_ms, &r);
    double ms = (double)(lucy_mono_ms() - t0);
    if (rc == 0) {
        lucy_check_add(out, "qdrant", LUCY_HEALTH_PASS, ms, "ms", NULL);
    } else {
        struct lucy_check_item *it = lucy_check_add(
            out, "qdrant", LUCY_HEALTH_FAIL, ms, "ms",
            "Qdrant at %s is not ready (%s); documents wait in the outbox and /search answers "
            "from the local SQLite copy until it is; check the Qdrant container and its disk",
            s->url, r.error);
        if (it)
            snprintf(it->dependency_text, sizeof it->dependency_text, "%s: not ready",
                     r.status ? "warning" : "error");
    }
    reply_free(&r);
}

static void check_collection(void *arg, int timeout_ms, struct lucy_check_report *out)
{
    struct qdrant_index *s = arg;
    char path[512];
    struct reply r;
    snprintf(path, sizeof path, "/collections/%s", s->collection);
    int rc = lucy_qdrant_call(s, "GET", path, NULL, timeout_ms, &r);
    const char *st =
        json_string_value(json_object_get(json_object_get(r.json, "result"), "status"));
    if (rc == LUCY_ENOTFOUND) {
        lucy_check_add(out, s->collection, LUCY_HEALTH_WARN, 0, "status",
                       "collection %s does not exist yet; lucy creates it in the background "
                       "(see qdrant:indexes)",
                       s->collection);
    } else if (rc) {
        lucy_check_add(out, s->collection, LUCY_HEALTH_FAIL, 0, "status",
                       "cannot read collection %s: %s", s->collection, r.error);
    } else if (!st || strcmp(st, "green") == 0) {
        lucy_check_add(out, s->collection, LUCY_HEALTH_PASS, 0, "status", NULL);
    } else {
        int red = strcmp(st, "red") == 0;
        struct lucy_check_item *it = lucy_check_add(
            out, s->collection, red ? LUCY_HEALTH_FAIL : LUCY_HEALTH_WARN, red ? 2 : 1, "status",
            "Qdrant reports collection %s %s%s; see /rag/stats and Qdrant's log", s->collection, st,
            red ? " (an optimization failed, often a full disk)" : " (optimizing)");
        if (it)
            snprintf(it->dependency_text, sizeof it->dependency_text, "%s: collection %s",
                     red ? "error" : "warning", st);
    }
    reply_free(&r);
}

static void check_indexes(void *arg, int timeout_ms, struct lucy_check_report *out)
{
    struct qdrant_index *s = arg;
    char why[400];
    (void)timeout_ms;
    int pending = pending_summary(s, why, sizeof why);
    if (pending == 0) {
        lucy_check_add(out, s->collection, LUCY_HEALTH_PASS, 0, "items", NULL);
        return;
    }
    struct lucy_check_item *it = lucy_check_add(
        out, s->collection, LUCY_HEALTH_WARN, pending, "items",
        "%s; retried in the background (search works meanwhile; a full Qdrant disk: see "
        "docs/operations.md, Qdrant)",
        why);
    if (it)
        snprintf(it->dependency_text, sizeof it->dependency_text, "warning: %d indexes pending",
                 pending);
}

static int qdrant_register_checks(void *state, struct lucy_health *h)
{
    struct qdrant_index *s = state;
    int t = s->timeout_ms < 2000 ? s->timeout_ms : 2000;
    const struct lucy_check checks[] = {
        {"qdrant:ready", "datastore", "qdrant", 0, CHECK_INTERVAL_MS, t, check_ready, s},
        {"qdrant:collection", "datastore", "qdrant", 0, CHECK_INTERVAL_MS, t, check_collection, s},
        {"qdrant:indexes", "component", "qdrant", 0, 1000, t, check_indexes, s},
    };
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++)
        if (lucy_health_register(h, &checks[i]))
            return LUCY_ENOMEM;
    return 0;
}

const struct lucy_index_ops lucy_index_qdrant = {
    .name = "qdrant",
    .local_copy = 1, /* the wrapper keeps the FTS5 copy and falls back to it */
    .open = qdrant_open,
    .close = qdrant_close,
    .ensure = qdrant_ensure,
    .upsert_batch = qdrant_upsert_batch,
    .delete = qdrant_delete,
    .search = qdrant_search,
    .similar = qdrant_similar,
    .stats = qdrant_stats,
    .clear = qdrant_clear,
    .optimize = NULL, /* Qdrant optimises its segments itself */
    .register_checks = qdrant_register_checks,
};
