/*
 * plugin.c - the `index` plugin: GET /search, GET /rag/stats, the
 * index:outbox health check, the index /metrics lines, and the indexer
 * thread's life cycle.
 *
 * It is listed first in plugins.c so the index exists before any producer
 * starts writing (producers only touch the outbox, so order is a nicety,
 * not a requirement). The routes carry the plugin's state as their arg.
 *
 * /search query parameters (DESIGN §5), all validated before the backend
 * runs; any bad one is a 400 bad_request naming the parameter:
 *   q        required; the user's words, ANDed, never query syntax
 *   source   call_recording | whatsapp
 *   contact  exact contact (wa_id / user_id)
 *   person   a person's id: messages from its wa_ids / user_ids and
 *            recordings of calls with its phones (unknown person: 404)
 *   from,to  inclusive time bounds: Unix seconds or ISO 8601
 *            (2024-05-31, 2024-05-31T14:00:00Z, ...+02:00); a date-only
 *            `to` includes that whole day (UTC)
 *   limit    1..100 conversations (hits with group=0), default 20
 *   group    1 (default): one hit per conversation with its best hits
 *            under it (DESIGN §12); 0: the flat list of documents
 *   per_group hits shown under a conversation, 1..50, default 3
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../clock.h"
#include "../error.h"
#include "../health/health.h"
#include "../http/http.h"
#include "../log.h"
#include "../lucy.h"
#include "../plugins/plugin.h"
#include "../store/store.h"
#include "../llm/embed.h"
#include "index.h"
#include "vectors.h"

#define QUERY_MAX_BYTES   1000
#define OUTBOX_WARN_ITEMS 1000
#define OUTBOX_WARN_AGE_S 600

struct index_plugin {
    struct lucy_ctx *ctx;           /* the daemon (not owned) */
    struct lucy_index *ix;          /* the active backend */
    struct lucy_indexer *indexer;   /* the "indexer" thread, once started */
    struct lucy_embedder *embedder; /* the "embedder" thread, with LUCY_EMBED_URL */
    uint64_t search_requests;       /* /search requests answered (atomic) */
};

/* ---- GET /search ------------------------------------------------------------ */

/* A whole number min..max into *out; NULL s leaves *out (the default). */
static int parse_int(const char *s, long long min, long long max, int64_t *out)
{
    if (!s)
        return 0;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return LUCY_EINVAL;
    *out = v;
    return 0;
}

static int has_words(const char *q)
{
    for (; q && *q; q++)
        if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r' && *q != '\v' && *q != '\f')
            return 1;
    return 0;
}

static void get_search(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    struct index_plugin *p = req->arg;
    struct lucy_search_query q = {.q = lucy_http_query(req, "q"),
                                  .source = lucy_http_query(req, "source"),
                                  .contact = lucy_http_query(req, "contact"),
                                  .from_s = INT64_MIN,
                                  .to_s = INT64_MAX,
                                  .limit = LUCY_SEARCH_LIMIT_DEFAULT};
    const char *from = lucy_http_query(req, "from"), *to = lucy_http_query(req, "to");
    if (!has_words(q.q)) {
        lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0,
                              "send the words to search for in q, e.g. /search?q=invoice");
        return;
    }
    if (strlen(q.q) > QUERY_MAX_BYTES) {
        lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0,
                              "q is longer than %d bytes; send fewer words", QUERY_MAX_BYTES);
        return;
    }
    if (q.source && *q.source && !lucy_index_known_source(q.source)) {
        lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0,
                              "source must be call_recording or whatsapp (or left out for both)");
        return;
    }
    if (q.source && !*q.source)
        q.source = NULL;
    if (q.contact && !*q.contact)
        q.contact = NULL;
    const struct {
        const char *name, *value;
        int end_of_day;
        int64_t *out;
    } bounds[] = {{"from", from, 0, &q.from_s}, {"to", to, 1, &q.to_s}};
    for (size_t i = 0; i < 2; i++) {
        if (!bounds[i].value || !*bounds[i].value)
            continue;
        if (lucy_index_parse_time(bounds[i].value, bounds[i].end_of_day, bounds[i].out)) {
            lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0,
                                  "%s must be Unix seconds (1717171200) or an ISO 8601 date or "
                                  "time (2024-05-31, 2024-05-31T14:00:00Z, "
                                  "2024-05-31T16:00:00+02:00)",
                                  bounds[i].name);
            return;
        }
    }
    if (q.from_s > q.to_s) {
        lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0,
                              "from is later than to; swap them or leave one out");
        return;
    }
    int64_t limit = LUCY_SEARCH_LIMIT_DEFAULT, group = 1, per_group = LUCY_SEARCH_PER_GROUP_DEFAULT,
            person = 0;
    const struct {
        const char *name;
        long long min, max;
        int64_t *out;
        const char *what;
    } numbers[] = {
        {"limit", 1, LUCY_SEARCH_LIMIT_MAX, &limit, "a whole number from 1 to 100 (default 20)"},
        {"group", 0, 1, &group, "1 (one hit per conversation, the default) or 0 (flat list)"},
        {"per_group", 1, LUCY_SEARCH_PER_GROUP_MAX, &per_group,
         "a whole number from 1 to 50 (default 3)"},
        {"person", 1, INT64_MAX, &person, "a person's id, as GET /people lists them"},
    };
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++) {
        const char *v = lucy_http_query(req, numbers[i].name);
        if (parse_int(v && *v ? v : NULL, numbers[i].min, numbers[i].max, numbers[i].out)) {
            lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0, "%s must be %s", numbers[i].name,
                                  numbers[i].what);
            return;
        }
    }
    q.limit = (int)limit;

    char **contacts = NULL, **recordings = NULL;
    int rc = 0;
    if (person) {
        rc = lucy_index_person_ids(p->ix, person, &contacts, &q.n_contacts, &recordings,
                                   &q.n_recordings);
        if (rc == LUCY_ENOTFOUND) {
            lucy_http_reply_error(resp, LUCY_HTTP_NOT_FOUND, 0,
                                  "no person %lld; GET /people lists them (a merged person "
                                  "answers under the id it was merged into)",
                                  (long long)person);
            return;
        }
        q.restrict_ids = 1;
        q.contacts = (const char *const *)contacts;
        q.recordings = (const char *const *)recordings;
    }

    __atomic_add_fetch(&p->search_requests, 1, __ATOMIC_RELAXED);
    struct lucy_search_result r;
    if (rc == 0)
        rc = group ? lucy_index_search_grouped(p->ix, &q, (int)per_group, &r)
                   : lucy_index_search(p->ix, &q, &r);
    lucy_index_strv_free(contacts);
    lucy_index_strv_free(recordings);
    if (rc) {
        char msg[256];
        snprintf(msg, sizeof msg, "search failed (%s); try again shortly, see /rag/stats",
                 lucy_strerror(rc));
        lucy_http_reply_err(resp, rc, msg);
        return;
    }
    json_t *body = lucy_search_result_json(q.q, &r, (int)group);
    lucy_search_result_free(&r);
    if (!body) {
        lucy_http_reply_error(resp, LUCY_HTTP_INTERNAL, 0, "out of memory building the reply");
        return;
    }
    lucy_http_reply_json(resp, 200, body);
}

/* ---- GET /rag/stats ------------------------------------------------------- */

struct vector_counts {
    const char *model;
    int64_t pending, stored;
};

static int read_vector_counts(sqlite3 *db, void *arg)
{
    struct vector_counts *c = arg;
    return lucy_vectors_count(db, c->model, &c->pending, &c->stored);
}

/* /rag/stats "embeddings": null without LUCY_EMBED_URL, else {model,
 * vectors, pending, last_error} (pending: documents waiting for their
 * vector; last_error: why the embedder's last round failed, or null). */
static json_t *embeddings_json(struct index_plugin *p)
{
    struct lucy_embed *e = lucy_index_embed(p->ix);
    if (!e)
        return json_null();
    struct vector_counts c = {.model = lucy_embed_model(e)};
    int rc = lucy_store_read(p->ctx->store, read_vector_counts, &c);
    char why[256] = "";
    struct lucy_embedder *w = __atomic_load_n(&p->embedder, __ATOMIC_ACQUIRE);
    if (w)
        lucy_embedder_last_error(w, why, sizeof why);
    if (rc)
        snprintf(why, sizeof why, "cannot count the vectors: %s", lucy_strerror(rc));
    return json_pack("{s:s,s:I,s:I,s:s?}", "model", c.model, "vectors", (json_int_t)c.stored,
                     "pending", (json_int_t)c.pending, "last_error", *why ? why : NULL);
}

static void get_rag_stats(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    struct index_plugin *p = req->arg;
    json_t *stats = NULL;
    int rc = lucy_index_stats(p->ix, &stats);
    if (rc) {
        lucy_http_reply_err(resp, rc, "cannot read the index statistics; see /health");
        return;
    }
    json_object_set_new(stats, "embeddings", embeddings_json(p));
    lucy_http_reply_json(resp, 200, stats);
}

static const struct lucy_route index_routes[] = {
    {"GET", "/search", get_search, 1, 0, NULL},
    {"GET", "/rag/stats", get_rag_stats, 1, 0, NULL},
};

/* ---- index:outbox health check --------------------------------------------- */

static int read_outbox(sqlite3 *db, void *arg)
{
    return lucy_outbox_stats(db, arg);
}

static void check_outbox(void *arg, int timeout_ms, struct lucy_check_report *out)
{
    (void)timeout_ms;
    struct index_plugin *p = arg;
    struct lucy_outbox_stats s;
    int rc = lucy_store_read(p->ctx->store, read_outbox, &s);
    if (rc) {
        lucy_check_add(out, "outbox", LUCY_HEALTH_WARN, 0, "items",
                       "cannot read the index outbox (%s); see store:writable", lucy_strerror(rc));
        return;
    }
    int64_t age_s =
        s.oldest_pending_ms > 0 ? (lucy_wall_ms() / 1000 * 1000 - s.oldest_pending_ms) / 1000 : 0;
    if (age_s < 0)
        age_s = 0;
    struct lucy_check_item *it;
    if (s.pending > OUTBOX_WARN_ITEMS || age_s > OUTBOX_WARN_AGE_S) {
        it = lucy_check_add(out, "outbox", LUCY_HEALTH_WARN, (double)s.pending, "items",
                            "%lld documents wait for the search index, the oldest for %llds "
                            "(warn above %d items or %ds)%s%s; new documents are not "
                            "searchable yet: see /rag/stats and the log",
                            (long long)s.pending, (long long)age_s, OUTBOX_WARN_ITEMS,
                            OUTBOX_WARN_AGE_S, s.first_error[0] ? "; last error: " : "",
                            s.first_error);
        if (it)
            snprintf(it->dependency_text, sizeof it->dependency_text,
                     "warning: %lld pending, oldest %llds", (long long)s.pending, (long long)age_s);
    } else {
        lucy_check_add(out, "outbox", LUCY_HEALTH_PASS, (double)s.pending, "items", NULL);
    }
    if (s.failed > 0) {
        it = lucy_check_add(out, "outbox:failed", LUCY_HEALTH_WARN, (double)s.failed, "items",
                            "%lld documents were rejected by the search index (first error: "
                            "%s); fix the cause, then run `lucy reindex`",
                            (long long)s.failed, s.first_error);
        if (it)
            snprintf(it->dependency_text, sizeof it->dependency_text, "warning: %lld failed",
                     (long long)s.failed);
    }
}

/* ---- /metrics -------------------------------------------------------------- */

static void metrics_index(void *arg, FILE *out)
{
    struct index_plugin *p = arg;
    struct lucy_outbox_stats s;
    struct lucy_indexer_counts c;
    if (lucy_store_read(p->ctx->store, read_outbox, &s) != 0)
        memset(&s, 0, sizeof s);
    lucy_indexer_counts(__atomic_load_n(&p->indexer, __ATOMIC_ACQUIRE), &c);
    fprintf(out,
            "# HELP lucy_index_outbox_pending Documents waiting for the search index\n"
            "# TYPE lucy_index_outbox_pending gauge\nlucy_index_outbox_pending %lld\n"
            "# HELP lucy_index_outbox_failed Documents the search index rejected\n"
            "# TYPE lucy_index_outbox_failed gauge\nlucy_index_outbox_failed %lld\n"
            "# HELP lucy_index_indexed_total Documents written to the search index\n"
            "# TYPE lucy_index_indexed_total counter\nlucy_index_indexed_total %llu\n"
            "# HELP lucy_index_deleted_total Documents removed from the search index\n"
            "# TYPE lucy_index_deleted_total counter\nlucy_index_deleted_total %llu\n"
            "# HELP lucy_search_requests_total Search requests answered\n"
            "# TYPE lucy_search_requests_total counter\nlucy_search_requests_total %llu\n",
            (long long)s.pending, (long long)s.failed, (unsigned long long)c.indexed,
            (unsigned long long)c.deleted,
            (unsigned long long)__atomic_load_n(&p->search_requests, __ATOMIC_RELAXED));
}

/* ---- plugin ---------------------------------------------------------------- */

static int index_init(struct lucy_ctx *ctx, void **state)
{
    char err[512];
    struct index_plugin *p = calloc(1, sizeof *p);
    if (!p)
        return LUCY_ENOMEM;
    p->ctx = ctx;
    int rc = lucy_index_open(ctx->cfg, ctx->store, &p->ix, err, sizeof err);
    if (rc) {
        lucy_log(LUCY_LOG_ERROR, "cannot open the search index", "{s:s}", "error", err);
        free(p);
        return rc;
    }
    const struct lucy_check check = {
        "index:outbox", "component", "index", 0, 5000, 2000, check_outbox, p,
    };
    if ((ctx->health && (lucy_health_register(ctx->health, &check) ||
                         lucy_index_register_checks(p->ix, ctx->health))) ||
        lucy_metrics_add(ctx, metrics_index, p))
        rc = LUCY_ENOMEM;
    else if (ctx->http)
        rc = lucy_http_add_routes(ctx->http, index_routes,
                                  sizeof index_routes / sizeof index_routes[0], p);
    if (rc) {
        /* start-up fails and the process exits: nothing renders metrics */
        lucy_index_close(p->ix);
        free(p);
        return rc;
    }
    ctx->index = p->ix; /* lent to the modules that read it (MCP, ask), like ctx->kv */
    *state = p;
    return 0;
}

static int index_start(void *state)
{
    struct index_plugin *p = state;
    struct lucy_indexer *w = NULL;
    int rc = lucy_indexer_new(p->ix, p->ctx->disk, &w);
    if (rc == 0 && (rc = lucy_indexer_start(w))) {
        lucy_indexer_free(w);
        w = NULL;
    }
    __atomic_store_n(&p->indexer, w, __ATOMIC_RELEASE);
    if (rc == 0 && lucy_index_embed(p->ix)) {
        struct lucy_embedder *em = NULL;
        rc = lucy_embedder_new(p->ix, &em);
        if (rc == 0 && (rc = lucy_embedder_start(em))) {
            lucy_embedder_free(em);
            em = NULL;
        }
        __atomic_store_n(&p->embedder, em, __ATOMIC_RELEASE);
    }
    if (rc == 0)
        lucy_log(LUCY_LOG_INFO, "search index ready", "{s:s}", "backend", lucy_index_name(p->ix));
    return rc;
}

static void index_stop(void *state)
{
    struct index_plugin *p = state;
    lucy_embedder_free(__atomic_exchange_n(&p->embedder, NULL, __ATOMIC_ACQ_REL));
    lucy_indexer_free(__atomic_exchange_n(&p->indexer, NULL, __ATOMIC_ACQ_REL));
}

static void index_free(void *state)
{
    struct index_plugin *p = state;
    if (!p)
        return;
    lucy_embedder_free(__atomic_exchange_n(&p->embedder, NULL, __ATOMIC_ACQ_REL));
    lucy_indexer_free(__atomic_exchange_n(&p->indexer, NULL, __ATOMIC_ACQ_REL));
    if (p->ctx->index == p->ix)
        p->ctx->index = NULL;
    lucy_index_close(p->ix);
    free(p);
}

const struct lucy_plugin lucy_index_plugin = {
    .name = "index",
    .init = index_init,
    .start = index_start,
    .stop = index_stop,
    .free = index_free,
};
