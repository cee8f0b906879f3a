/*
 * index.c - the backend table, the lucy_index_*() wrappers, the pure query
 * helpers (FTS5 quoting, time bounds) and the /rag/stats document.
 *
 * The wrappers are the only callers of struct lucy_index_ops: they check
 * arguments, fill in defaults for NULL slots and keep the backend's own
 * fields apart from what lucy knows locally (the outbox, per-source
 * counts), so a new backend only implements its slots. They also own the
 * local-copy policy of a remote backend (ops->local_copy, e.g. Qdrant):
 * the sqlite FTS5 index is kept beside it, written first, cleared with
 * it, reported as local_count, and answers searches (`degraded`, with
 * `degraded_reason`) while the remote backend fails or lags behind the
 * outbox; the backend never touches it.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../clock.h"
#include "../config.h"
#include "../error.h"
#include "../log.h"
#include "../people/people.h"
#include "../store/row.h"
#include "../store/store.h"
#include "../llm/embed.h"
#include "index.h"
#include "sparse.h"

const struct lucy_index_ops *const lucy_index_backends[] = {
    &lucy_index_sqlite,
    &lucy_index_qdrant,
    NULL,
};

/* Sources lucy produces; /rag/stats always lists them, /search accepts
 * only them as a filter. */
static const char *const known_sources[] = {"call_recording", "whatsapp", NULL};

int lucy_index_known_source(const char *source)
{
    for (int i = 0; source && known_sources[i]; i++)
        if (strcmp(source, known_sources[i]) == 0)
            return 1;
    return 0;
}

/* ---- open / close ---------------------------------------------------------- */

/* Searches skip a failing local_copy backend this long after it failed. */
#define FALLBACK_HOLD_MS 5000
/* An outbox row the backend has not refused yet is normal latency for
 * this long (the indexer takes new rows within ~200 ms; a big ingest takes
 * a few batches); older, the backend's answer would miss it. */
#define BACKLOG_GRACE_MS 5000

struct lucy_index {
    const struct lucy_index_ops *ops; /* which backend */
    void *state;                      /* its instance (ops->open) */
    struct lucy_store *store;         /* the local store (documents, outbox) */
    struct lucy_index *local;         /* the sqlite copy of a local_copy backend, or NULL */
    int64_t hold_until_ms;            /* monotonic; searches go to local until then (atomic) */
    struct lucy_embed *embed;         /* LUCY_EMBED_URL's client (dense vectors), or NULL */
    struct lucy_tokenizer *tok;       /* the grouped search's snippets (thread-safe) */
    lucy_hit_lookup_fn lookups[2];    /* known_sources[i]'s hit lookup, or NULL (atomic) */
};
_Static_assert(sizeof known_sources / sizeof known_sources[0] - 1 ==
                   sizeof((struct lucy_index *)0)->lookups / sizeof(lucy_hit_lookup_fn),
               "one speaker lookup per known source");

static int sender_speakers(sqlite3 *db, struct lucy_search_hit *hits, size_t n);
static int sender_person(sqlite3 *db, const char *contact, int64_t *person);
static int fill_from_sources(struct lucy_index *ix, struct lucy_search_result *r);

int lucy_index_open_backend(const struct lucy_index_ops *ops, const struct lucy_config *cfg,
                            struct lucy_store *store, struct lucy_index **out, char *err,
                            size_t errlen)
{
    *out = NULL;
    if (!ops || !ops->upsert_batch || !ops->delete || !store) {
        snprintf(err, errlen, "invalid search index backend");
        return LUCY_EINVAL;
    }
    struct lucy_index *ix = calloc(1, sizeof *ix);
    if (!ix) {
        snprintf(err, errlen, "out of memory");
        return LUCY_ENOMEM;
    }
    ix->ops = ops;
    ix->store = store;
    lucy_index_set_hit_lookup(ix, "whatsapp", sender_speakers);
    int rc = lucy_tokenizer_open(&ix->tok);
    if (rc) {
        snprintf(err, errlen, "cannot open the FTS5 tokenizer for snippets: %s", lucy_strerror(rc));
        free(ix);
        return rc;
    }
    rc = ops->open ? ops->open(cfg, store, &ix->state, err, errlen) : 0;
    if (rc) {
        lucy_tokenizer_close(ix->tok);
        free(ix);
        return rc;
    }
    if (ops->local_copy && ops != &lucy_index_sqlite &&
        (rc = lucy_index_open_backend(&lucy_index_sqlite, cfg, store, &ix->local, err, errlen))) {
        lucy_index_close(ix);
        return rc;
    }
    *out = ix;
    return 0;
}

int lucy_index_open(const struct lucy_config *cfg, struct lucy_store *store,
                    struct lucy_index **out, char *err, size_t errlen)
{
    const struct lucy_index_ops *ops =
        cfg && cfg->qdrant_url && *cfg->qdrant_url ? &lucy_index_qdrant : &lucy_index_sqlite;
    int rc = lucy_index_open_backend(ops, cfg, store, out, err, errlen);
    if (rc == 0 && cfg && (rc = lucy_embed_open(cfg, &(*out)->embed, err, errlen))) {
        lucy_index_close(*out);
        *out = NULL;
    }
    return rc;
}

struct lucy_embed *lucy_index_embed(const struct lucy_index *ix)
{
    return ix->embed;
}

void lucy_index_close(struct lucy_index *ix)
{
    if (!ix)
        return;
    lucy_index_close(ix->local);
    lucy_embed_close(ix->embed);
    if (ix->ops->close)
        ix->ops->close(ix->state);
    lucy_tokenizer_close(ix->tok);
    free(ix);
}

const char *lucy_index_name(const struct lucy_index *ix)
{
    return ix->ops->name;
}

struct lucy_store *lucy_index_store(const struct lucy_index *ix)
{
    return ix->store;
}

/* ---- wrappers -------------------------------------------------------------- */

int lucy_index_ensure(struct lucy_index *ix, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    return ix->ops->ensure ? ix->ops->ensure(ix->state, err, errlen) : 0;
}

/* Resets the out fields so a backend that forgets one leaves "ok". */
static void reset_items(struct lucy_index_item *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        items[i].rc = 0;
        items[i].permanent = 0;
        items[i].error[0] = '\0';
    }
}

typedef int (*write_slot)(void *state, struct lucy_index_item *items, size_t n, char *err,
                          size_t errlen);

/* Applies a write to the local copy first (so it is always current; a
 * retry applies it again, harmlessly), then to the backend. A backend
 * that answered ends the search hold. */
static int write_both(struct lucy_index *ix, write_slot local, write_slot remote,
                      struct lucy_index_item *items, size_t n, char *err, size_t errlen)
{
    err[0] = '\0';
    if (n == 0)
        return 0;
    reset_items(items, n);
    if (ix->local) {
        int rc = local(ix->local->state, items, n, err, errlen);
        if (rc)
            return rc; /* the local copy comes first: retry all */
    }
    int rc = remote(ix->state, items, n, err, errlen);
    if (rc == 0 && ix->local)
        __atomic_store_n(&ix->hold_until_ms, 0, __ATOMIC_RELAXED);
    return rc;
}

int lucy_index_upsert_batch(struct lucy_index *ix, struct lucy_index_item *items, size_t n,
                            char *err, size_t errlen)
{
    return write_both(ix, ix->local ? ix->local->ops->upsert_batch : NULL, ix->ops->upsert_batch,
                      items, n, err, errlen);
}

int lucy_index_delete(struct lucy_index *ix, struct lucy_index_item *items, size_t n, char *err,
                      size_t errlen)
{
    return write_both(ix, ix->local ? ix->local->ops->delete : NULL, ix->ops->delete, items, n, err,
                      errlen);
}

/* One backend's search, without fallback. */
static int search_one(struct lucy_index *ix, const struct lucy_search_query *q,
                      struct lucy_search_result *out, char *err, size_t errlen)
{
    snprintf(err, errlen, "backend %s cannot search", ix->ops->name);
    int rc = ix->ops->search ? ix->ops->search(ix->state, q, out, err, errlen) : LUCY_EUNAVAIL;
    if (rc)
        lucy_search_result_free(out);
    else if (!out->backend)
        out->backend = ix->ops->name;
    return rc;
}

struct lag_arg {
    int64_t queued_before_ms;   /* wall clock cutoff for a stale row */
    struct lucy_outbox_lag lag; /* out */
};

static int read_lag(sqlite3 *db, void *arg)
{
    struct lag_arg *a = arg;
    return lucy_outbox_lag(db, a->queued_before_ms, &a->lag);
}

/* 1 when ix's outbox holds rows the remote backend has not taken (so its
 * answer would miss documents the local copy has), with the user's
 * reason in why. A store that cannot be read says nothing (0): the search
 * itself will meet the trouble. */
static int remote_lags(struct lucy_index *ix, char *why, size_t whylen)
{
    struct lag_arg a = {.queued_before_ms = lucy_wall_ms() - BACKLOG_GRACE_MS};
    if (lucy_store_read(ix->store, read_lag, &a) != 0)
        return 0;
    const char *name = ix->ops->name, *e = a.lag.error;
    if (a.lag.refused)
        snprintf(why, whylen,
                 "%s has not taken every document yet (it refused: %.200s); answered from the "
                 "local SQLite copy, which has them; see pending_count in /rag/stats",
                 name, e);
    else if (a.lag.stale)
        snprintf(why, whylen,
                 "%s has not taken every document yet (some have waited more than %d s); "
                 "answered from the local SQLite copy; see pending_count in /rag/stats",
                 name, BACKLOG_GRACE_MS / 1000);
    else if (a.lag.failed)
        snprintf(why, whylen,
                 "%s rejected some documents (%.200s); answered from the local SQLite copy, which "
                 "has them; fix the cause and run `lucy reindex`",
                 name, e);
    else
        return 0;
    return 1;
}

/* lucy_index_search for limits up to LUCY_SEARCH_RAW_MAX (the grouped
 * search asks for more raw hits than it shows). */
static int search_raw(struct lucy_index *ix, const struct lucy_search_query *q,
                      struct lucy_search_result *out)
{
    memset(out, 0, sizeof *out);
    if (!q || !q->q || q->limit < 1 || q->limit > LUCY_SEARCH_RAW_MAX)
        return LUCY_EINVAL;
    if (q->restrict_ids && q->n_contacts == 0 && q->n_recordings == 0) {
        out->backend = ix->ops->name; /* a person with nothing to match */
        return 0;
    }
    char why[320];
    char reason[sizeof out->degraded_reason];
    if (!ix->local)
        return search_one(ix, q, out, why, sizeof why);
    if (remote_lags(ix, reason, sizeof reason)) {
        /* the copy is the complete answer: the remote is not asked */
    } else if (lucy_mono_ms() >= __atomic_load_n(&ix->hold_until_ms, __ATOMIC_RELAXED)) {
        int rc = search_one(ix, q, out, why, sizeof why);
        if (rc == 0 || rc == LUCY_ENOMEM)
            return rc;
        if (rc != LUCY_ENOTFOUND) /* a missing collection is quick to ask about */
            __atomic_store_n(&ix->hold_until_ms, lucy_mono_ms() + FALLBACK_HOLD_MS,
                             __ATOMIC_RELAXED);
        lucy_log(LUCY_LOG_WARNING,
                 "search index backend failed a search; answering from the "
                 "local SQLite index",
                 "{s:s,s:s}", "backend", ix->ops->name, "error", why);
        snprintf(reason, sizeof reason,
                 "%s failed the search (%.250s); answered from the local SQLite copy",
                 ix->ops->name, why);
    } else {
        snprintf(reason, sizeof reason,
                 "%s failed a search less than %d s ago; answered from the local SQLite copy; "
                 "see /rag/stats",
                 ix->ops->name, FALLBACK_HOLD_MS / 1000);
    }
    int rc = search_one(ix->local, q, out, why, sizeof why);
    if (rc == 0) {
        out->degraded = 1;
        snprintf(out->degraded_reason, sizeof out->degraded_reason, "%s", reason);
    }
    return rc;
}

int lucy_index_search(struct lucy_index *ix, const struct lucy_search_query *q,
                      struct lucy_search_result *out)
{
    memset(out, 0, sizeof *out);
    if (!q || q->limit < 1 || q->limit > LUCY_SEARCH_LIMIT_MAX)
        return LUCY_EINVAL;
    int rc = search_raw(ix, q, out);
    if (rc == 0 && (rc = fill_from_sources(ix, out)))
        lucy_search_result_free(out);
    return rc;
}

int lucy_index_dense_remote(const struct lucy_index *ix)
{
    return ix->ops->similar != NULL;
}

int lucy_index_similar_backend(struct lucy_index *ix, const struct lucy_search_query *q,
                               const float *vector, int dim, struct lucy_search_result *out,
                               char *why, size_t whylen)
{
    memset(out, 0, sizeof *out);
    why[0] = '\0';
    if (!ix->ops->similar)
        return LUCY_EINVAL;
    if (remote_lags(ix, why, whylen))
        return LUCY_EUNAVAIL;
    if (lucy_mono_ms() < __atomic_load_n(&ix->hold_until_ms, __ATOMIC_RELAXED)) {
        snprintf(why, whylen, "%s failed a search less than %d s ago", ix->ops->name,
                 FALLBACK_HOLD_MS / 1000);
        return LUCY_EUNAVAIL;
    }
    char err[320] = "";
    int rc = ix->ops->similar(ix->state, q, vector, dim, out, err, sizeof err);
    if (rc == 0)
        return 0;
    lucy_search_result_free(out);
    if (rc != LUCY_ENOTFOUND && rc != LUCY_ENOMEM) /* no dense vector yet: quick to ask */
        __atomic_store_n(&ix->hold_until_ms, lucy_mono_ms() + FALLBACK_HOLD_MS, __ATOMIC_RELAXED);
    snprintf(why, whylen, "%s failed the dense search (%.250s)", ix->ops->name, err);
    return rc == LUCY_EINVAL ? LUCY_EUNAVAIL : rc;
}

/* ---- speakers ----------------------------------------------------------------- */

/* A received message's speaker is its sender's person (lucy stores no
 * messages the user sent: the webhook delivers others' messages, and
 * only statuses of the user's own). A run of hits of one sender (a
 * group's) is looked up once. */
static int sender_speakers(sqlite3 *db, struct lucy_search_hit *hits, size_t n)
{
    const struct lucy_search_hit *last = NULL; /* the sender looked up last */
    for (size_t i = 0; i < n; i++) {
        struct lucy_search_hit *h = &hits[i];
        if (strcmp(h->source, "whatsapp") != 0 || !h->contact)
            continue;
        if (last && strcmp(last->contact, h->contact) == 0) {
            h->speaker = last->speaker;
            continue;
        }
        int rc = sender_person(db, h->contact, &h->speaker);
        if (rc)
            return rc;
        last = h;
    }
    return 0;
}

int lucy_index_set_hit_lookup(struct lucy_index *ix, const char *source, lucy_hit_lookup_fn fn)
{
    for (size_t i = 0; source && known_sources[i]; i++)
        if (strcmp(source, known_sources[i]) == 0) {
            __atomic_store_n(&ix->lookups[i], fn, __ATOMIC_RELEASE);
            return 0;
        }
    return LUCY_EINVAL;
}

struct lookups_arg {
    struct lucy_index *ix;
    struct lucy_search_result *r;
};

static int read_lookups(sqlite3 *db, void *arg)
{
    struct lookups_arg *a = arg;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof a->ix->lookups / sizeof a->ix->lookups[0]; i++) {
        lucy_hit_lookup_fn fn = __atomic_load_n(&a->ix->lookups[i], __ATOMIC_ACQUIRE);
        rc = fn ? fn(db, a->r->hits, a->r->n) : 0;
    }
    return rc;
}

/* Who spoke in each of r's hits (the shown ones: DESIGN §12), by the
 * lookups of their sources, in one store read. 0 or a store error. */
static int fill_from_sources(struct lucy_index *ix, struct lucy_search_result *r)
{
    struct lookups_arg a = {ix, r};
    return r->n ? lucy_store_read(ix->store, read_lookups, &a) : 0;
}

json_t *lucy_speaker_json(int64_t speaker)
{
    return speaker == LUCY_SPEAKER_ME ? json_string("me")
           : speaker > 0              ? json_integer(speaker)
                                      : json_null();
}

/* ---- grouped search ---------------------------------------------------------- */

/* Raw hits asked for per group wanted: a recording usually matches in a
 * few segments; the window grows (x4) while it is full and short of
 * groups. */
#define RAW_PER_GROUP 10

/* A raw hit's place while grouping. */
struct hit_key {
    char key[320];  /* its conversation (struct lucy_search_group.key) */
    int64_t person; /* the sender's person, 0 = none */
    size_t pos;     /* index in the raw result (= rank) */
};

struct persons_arg {
    const struct lucy_search_result *r; /* the raw hits */
    int64_t *person;                    /* out: per hit, 0 = none */
};

/* The person of a recording: the one holding its call's number
 * (recording_calls.number_e164, DESIGN §12), or 0. */
static int call_person(sqlite3 *db, const char *recording_id, int64_t *person)
{
    sqlite3_stmt *st;
    int rc =
        lucy_store_stmt(db, "SELECT number_e164 FROM recording_calls WHERE recording_id = ?1", &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, recording_id, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    const char *e164 = step == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
    rc = e164 ? lucy_people_find(db, "phone", e164, person) : 0;
    sqlite3_reset(st);
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        return lucy_store_err(step);
    return rc == LUCY_ENOTFOUND ? 0 : rc;
}

/* The person of a WhatsApp sender: the one holding contact as its wa_id,
 * else as its user_id; 0 when none does. */
static int sender_person(sqlite3 *db, const char *contact, int64_t *person)
{
    static const char *const kinds[] = {"wa_id", "user_id"};
    int rc = 0;
    *person = 0;
    for (size_t k = 0; k < 2 && *person == 0 && rc == 0; k++) {
        rc = lucy_people_find(db, kinds[k], contact, person);
        rc = rc == LUCY_ENOTFOUND ? 0 : rc;
    }
    return rc;
}

/* The person of every hit: a WhatsApp hit's by its contact (wa_id, then
 * user_id), a recording's by its call's number. Consecutive hits of one
 * contact or recording are looked up once. */
static int read_persons(sqlite3 *db, void *arg)
{
    struct persons_arg *a = arg;
    for (size_t i = 0; i < a->r->n; i++) {
        const struct lucy_search_hit *h = &a->r->hits[i], *prev = i ? h - 1 : NULL;
        int whatsapp = strcmp(h->source, "whatsapp") == 0;
        const char *who = whatsapp ? h->contact : h->id;
        a->person[i] = 0;
        if (!who)
            continue;
        if (prev && strcmp(prev->source, h->source) == 0 && (whatsapp ? prev->contact : prev->id) &&
            strcmp(whatsapp ? prev->contact : prev->id, who) == 0) {
            a->person[i] = a->person[i - 1];
            continue;
        }
        int rc = whatsapp                                   ? sender_person(db, who, &a->person[i])
                 : strcmp(h->source, "call_recording") == 0 ? call_person(db, who, &a->person[i])
                                                            : 0;
        if (rc)
            return rc;
    }
    return 0;
}

/* The conversation of hit h (person: its sender's person or 0). */
static void hit_group_key(const struct lucy_search_hit *h, int64_t person, char *out, size_t outlen)
{
    if (strcmp(h->source, "whatsapp") != 0) {
        snprintf(out, outlen, "%s:%s", h->source, h->id);
        return;
    }
    char day[16] = "";
    time_t t = (time_t)h->time_s;
    struct tm tm;
    if (gmtime_r(&t, &tm))
        strftime(day, sizeof day, "%Y-%m-%d", &tm);
    if (person)
        snprintf(out, outlen, "whatsapp:person:%lld:%s", (long long)person, day);
    else if (h->contact)
        snprintf(out, outlen, "whatsapp:contact:%.200s:%s", h->contact, day);
    else
        snprintf(out, outlen, "whatsapp:id:%.250s", h->id);
}

int lucy_index_group_key(sqlite3 *db, const struct lucy_search_hit *h, char *key, size_t keylen,
                         int64_t *person)
{
    struct lucy_search_result one = {.hits = (struct lucy_search_hit *)h, .n = 1};
    struct persons_arg pa = {&one, person};
    int rc = read_persons(db, &pa);
    if (rc == 0)
        hit_group_key(h, *person, key, keylen);
    return rc;
}

/* By conversation, then rank: each conversation's hits become a run, best
 * first. */
static int cmp_key_pos(const void *a, const void *b)
{
    const struct hit_key *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->pos > y->pos) - (x->pos < y->pos);
}

/* Groups of one raw result, ranked (best hit's score, then newer, then rank). */
struct group_rank {
    size_t start, len; /* its run in the sorted hit_key array */
    double score;      /* its best hit's */
    int64_t time_s;    /* ... */
    size_t pos;        /* ... */
};

static int cmp_group(const void *a, const void *b)
{
    const struct group_rank *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? 1 : -1;
    if (x->time_s != y->time_s)
        return x->time_s < y->time_s ? 1 : -1;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

/* Moves raw's hits into out, grouped: at most limit groups of at most
 * per_group hits; the rest is freed. raw is left empty. */
static int group_hits(struct lucy_search_result *raw, const struct hit_key *keys,
                      const struct group_rank *groups, size_t n_groups, int limit, int per_group,
                      struct lucy_search_result *out)
{
    size_t ng = n_groups < (size_t)limit ? n_groups : (size_t)limit;
    out->hits = calloc(raw->n ? raw->n : 1, sizeof *out->hits);
    out->groups = calloc(ng ? ng : 1, sizeof *out->groups);
    if (!out->hits || !out->groups)
        return LUCY_ENOMEM;
    char *taken = calloc(raw->n ? raw->n : 1, 1);
    if (!taken)
        return LUCY_ENOMEM;
    for (size_t g = 0; g < ng; g++) {
        const struct group_rank *gr = &groups[g];
        struct lucy_search_group *o = &out->groups[out->n_groups++];
        o->key = strdup(keys[gr->start].key);
        o->person = keys[gr->start].person;
        o->first = out->n;
        o->n = gr->len < (size_t)per_group ? gr->len : (size_t)per_group;
        o->more = gr->len - o->n;
        for (size_t i = 0; i < o->n; i++) {
            size_t pos = keys[gr->start + i].pos;
            out->hits[out->n++] = raw->hits[pos];
            taken[pos] = 1;
        }
        if (!o->key) {
            free(taken);
            return LUCY_ENOMEM;
        }
    }
    /* what is not shown is freed with raw; what moved must not be */
    for (size_t i = 0; i < raw->n; i++)
        if (taken[i])
            memset(&raw->hits[i], 0, sizeof raw->hits[i]);
    free(taken);
    return 0;
}

char *lucy_index_hit_snippet(struct lucy_tokenizer *tok, const struct lucy_sparse *terms,
                             const char *text, const char *title)
{
    int marks = 0;
    char *snip = lucy_sparse_snippet(tok, text ? text : "", terms, &marks);
    if (snip && marks == 0 && title) {
        int title_marks = 0;
        char *t = lucy_sparse_snippet(tok, title, terms, &title_marks);
        if (t && title_marks > 0) {
            free(snip);
            return t;
        }
        free(t);
    }
    return snip;
}

/* The snippets a backend left for later (LUCY_SNIPPETS_LATER): made for
 * the hits shown only, from the text the backend kept. */
static int make_snippets(struct lucy_index *ix, const char *q, struct lucy_search_result *r)
{
    struct lucy_sparse terms = {0};
    int rc = 0, parsed = 0;
    for (size_t i = 0; rc == 0 && i < r->n; i++) {
        struct lucy_search_hit *h = &r->hits[i];
        if (h->snippet)
            continue;
        if (!parsed++ && (rc = lucy_sparse_query(ix->tok, q, &terms)))
            break;
        if (!(h->snippet = lucy_index_hit_snippet(ix->tok, &terms, h->text, h->title)))
            rc = LUCY_ENOMEM;
        free(h->text);
        h->text = NULL;
    }
    lucy_sparse_free(&terms);
    return rc;
}

int lucy_index_search_grouped(struct lucy_index *ix, const struct lucy_search_query *q,
                              int per_group, struct lucy_search_result *out)
{
    memset(out, 0, sizeof *out);
    if (!q || q->limit < 1 || q->limit > LUCY_SEARCH_LIMIT_MAX || per_group < 1 ||
        per_group > LUCY_SEARCH_PER_GROUP_MAX)
        return LUCY_EINVAL;
    struct lucy_search_query rq = *q;
    if (q->snippets == LUCY_SNIPPETS_EACH)
        rq.snippets = LUCY_SNIPPETS_LATER; /* for the hits shown only */
    rq.limit = q->limit * RAW_PER_GROUP;
    if (rq.limit > LUCY_SEARCH_RAW_MAX)
        rq.limit = LUCY_SEARCH_RAW_MAX;
    struct lucy_search_result raw;
    struct hit_key *keys = NULL;
    struct group_rank *groups = NULL;
    int64_t *person = NULL;
    size_t n_groups = 0;
    int rc;
    for (;;) {
        if ((rc = search_raw(ix, &rq, &raw)))
            goto out;
        free(keys);
        free(groups);
        free(person);
        keys = calloc(raw.n ? raw.n : 1, sizeof *keys);
        groups = calloc(raw.n ? raw.n : 1, sizeof *groups);
        person = calloc(raw.n ? raw.n : 1, sizeof *person);
        if (!keys || !groups || !person) {
            rc = LUCY_ENOMEM;
            goto out;
        }
        struct persons_arg pa = {&raw, person};
        if (raw.n && (rc = lucy_store_read(ix->store, read_persons, &pa)))
            goto out;
        for (size_t i = 0; i < raw.n; i++) {
            hit_group_key(&raw.hits[i], person[i], keys[i].key, sizeof keys[i].key);
            keys[i].person = person[i];
            keys[i].pos = i;
        }
        qsort(keys, raw.n, sizeof *keys, cmp_key_pos);
        n_groups = 0;
        for (size_t i = 0; i < raw.n; i++) {
            if (i > 0 && strcmp(keys[i].key, keys[i - 1].key) == 0) {
                groups[n_groups - 1].len++;
                continue;
            }
            const struct lucy_search_hit *best = &raw.hits[keys[i].pos];
            groups[n_groups++] = (struct group_rank){i, 1, best->score, best->time_s, keys[i].pos};
        }
        /* a full window may hide conversations further down: widen it */
        if (n_groups >= (size_t)q->limit || raw.n < (size_t)rq.limit ||
            rq.limit >= LUCY_SEARCH_RAW_MAX)
            break;
        lucy_search_result_free(&raw);
        rq.limit = rq.limit * 4 > LUCY_SEARCH_RAW_MAX ? LUCY_SEARCH_RAW_MAX : rq.limit * 4;
    }
    qsort(groups, n_groups, sizeof *groups, cmp_group);
    out->backend = raw.backend;
    out->degraded = raw.degraded;
    memcpy(out->degraded_reason, raw.degraded_reason, sizeof out->degraded_reason);
    rc = group_hits(&raw, keys, groups, n_groups, q->limit, per_group, out);
    if (rc == 0 && rq.snippets == LUCY_SNIPPETS_LATER)
        rc = make_snippets(ix, q->q, out);
    if (rc == 0)
        rc = fill_from_sources(ix, out);
out:
    if (rc)
        lucy_search_result_free(out);
    lucy_search_result_free(&raw);
    free(keys);
    free(groups);
    free(person);
    return rc;
}

/* ---- person filter --------------------------------------------------------- */

struct strv {
    char **v;    /* NULL-terminated */
    size_t n;    /* strings in v */
    size_t size; /* slots allocated */
};

static int strv_add(struct strv *s, const char *value)
{
    if (s->n + 1 >= s->size) {
        size_t size = s->size ? s->size * 2 : 8;
        char **v = realloc(s->v, size * sizeof *v);
        if (!v)
            return LUCY_ENOMEM;
        s->v = v;
        s->size = size;
    }
    if (!(s->v[s->n] = strdup(value)))
        return LUCY_ENOMEM;
    s->v[++s->n] = NULL;
    return 0;
}

void lucy_index_strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

struct person_arg {
    int64_t person;                   /* asked for */
    struct strv contacts, recordings; /* out */
};

/* The person's identifiers (people.c's own JSON: one owner of that
 * table's SQL), then the recordings whose call number is one of its
 * phones (recording_calls, read only). */
static int read_person_ids(sqlite3 *db, void *arg)
{
    struct person_arg *a = arg;
    json_t *p = NULL;
    int rc = lucy_people_json(db, a->person, 0, &p);
    if (rc)
        return rc;
    size_t i;
    json_t *ident;
    json_array_foreach(json_object_get(p, "identifiers"), i, ident)
    {
        const char *kind = json_string_value(json_object_get(ident, "kind"));
        const char *value = json_string_value(json_object_get(ident, "value"));
        if (!kind || !value)
            continue;
        if (strcmp(kind, "phone") != 0) {
            if ((rc = strv_add(&a->contacts, value)))
                break;
            continue;
        }
        sqlite3_stmt *st;
        if ((rc = lucy_store_stmt(db,
                                  "SELECT recording_id FROM recording_calls"
                                  " WHERE number_e164 = ?1 ORDER BY recording_id",
                                  &st)))
            break;
        lucy_row_bind_text(st, 1, value);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
            if ((rc = strv_add(&a->recordings, (const char *)sqlite3_column_text(st, 0))))
                break;
        if (rc != SQLITE_DONE) {
            rc = rc > 0 ? lucy_store_err(rc) : rc;
            break;
        }
        rc = 0;
    }
    json_decref(p);
    return rc;
}

int lucy_index_person_ids(struct lucy_index *ix, int64_t person, char ***contacts,
                          size_t *n_contacts, char ***recordings, size_t *n_recordings)
{
    *contacts = *recordings = NULL;
    *n_contacts = *n_recordings = 0;
    struct person_arg a = {.person = person};
    int rc = lucy_store_read(ix->store, read_person_ids, &a);
    if (rc) {
        lucy_index_strv_free(a.contacts.v);
        lucy_index_strv_free(a.recordings.v);
        return rc;
    }
    *contacts = a.contacts.v, *n_contacts = a.contacts.n;
    *recordings = a.recordings.v, *n_recordings = a.recordings.n;
    return 0;
}

int lucy_index_clear(struct lucy_index *ix, char *err, size_t errlen)
{
    err[0] = '\0';
    if (!ix->ops->clear) {
        snprintf(err, errlen, "backend %s cannot be cleared", ix->ops->name);
        return LUCY_EUNAVAIL;
    }
    int rc = ix->local ? lucy_index_clear(ix->local, err, errlen) : 0;
    return rc ? rc : ix->ops->clear(ix->state, err, errlen);
}

int lucy_index_optimize(struct lucy_index *ix)
{
    return ix->ops->optimize ? ix->ops->optimize(ix->state) : 0;
}

int lucy_index_register_checks(struct lucy_index *ix, struct lucy_health *h)
{
    return ix->ops->register_checks && h ? ix->ops->register_checks(ix->state, h) : 0;
}

void lucy_search_result_free(struct lucy_search_result *r)
{
    for (size_t i = 0; r->hits && i < r->n; i++) {
        struct lucy_search_hit *h = &r->hits[i];
        free(h->source);
        free(h->id);
        free(h->contact);
        free(h->title);
        free(h->snippet);
        free(h->text);
    }
    free(r->hits);
    for (size_t i = 0; r->groups && i < r->n_groups; i++)
        free(r->groups[i].key);
    free(r->groups);
    memset(r, 0, sizeof *r);
}

json_t *lucy_search_hit_json(const struct lucy_search_hit *h)
{
    json_t *o = json_pack("{s:s?,s:s?,s:i,s:s?,s:s?,s:f,s:I,s:s?,s:o}", "source", h->source, "id",
                          h->id, "segment", h->segment, "title", h->title, "snippet", h->snippet,
                          "score", h->score, "time", (json_int_t)h->time_s, "contact", h->contact,
                          "speaker", lucy_speaker_json(h->speaker));
    if (o && h->source && strcmp(h->source, "call_recording") == 0) {
        json_object_set_new(o, "t0_ms", json_integer(h->t0_ms));
        json_object_set_new(o, "t1_ms", json_integer(h->t1_ms));
    }
    return o;
}

json_t *lucy_search_group_json(const struct lucy_search_result *r,
                               const struct lucy_search_group *g)
{
    if (g->n == 0)
        return NULL;
    json_t *o = lucy_search_hit_json(&r->hits[g->first]);
    json_t *hits = json_array();
    if (!o || !hits) {
        json_decref(o);
        json_decref(hits);
        return NULL;
    }
    for (size_t i = 0; i < g->n; i++)
        json_array_append_new(hits, lucy_search_hit_json(&r->hits[g->first + i]));
    json_object_set_new(o, "key", json_string(g->key));
    json_object_set_new(o, "person", g->person ? json_integer(g->person) : json_null());
    json_object_set_new(o, "hits", hits);
    json_object_set_new(o, "more", json_integer((json_int_t)g->more));
    return o;
}

json_t *lucy_search_result_json(const char *query, const struct lucy_search_result *r, int grouped)
{
    json_t *hits = json_array();
    size_t n = grouped ? r->n_groups : r->n;
    for (size_t i = 0; hits && i < n; i++) {
        json_t *h =
            grouped ? lucy_search_group_json(r, &r->groups[i]) : lucy_search_hit_json(&r->hits[i]);
        if (!h || json_array_append_new(hits, h)) {
            json_decref(hits);
            return NULL;
        }
    }
    return json_pack("{s:s,s:s,s:b,s:s,s:b,s:i,s:o*}", "query", query, "backend",
                     r->backend ? r->backend : "", "degraded", r->degraded, "degraded_reason",
                     r->degraded_reason, "grouped", grouped, "count", (int)n, "hits", hits);
}

/* ---- /rag/stats ------------------------------------------------------------ */

/* What the user has, in their words: counted on the owners' tables (read
 * only; a table with no rows counts 0). Recordings are every distinct
 * audio content lucy knows (also those whose file went missing: their
 * transcripts stay); audio is the sum of the probed durations. People
 * are the persons of src/people/. */
static const char user_counts_sql[] = "SELECT (SELECT count(*) FROM recordings),"
                                      " (SELECT coalesce(sum(duration_s), 0) FROM recordings),"
                                      " (SELECT count(*) FROM segments),"
                                      " (SELECT count(*) FROM wa_messages),"
                                      " (SELECT count(*) FROM people)";

struct local_stats {
    struct lucy_outbox_stats outbox; /* pending / failed */
    json_t *sources;                 /* {source: live documents} */
    int64_t recordings;              /* recordings rows */
    double audio_s;                  /* sum of their durations, seconds */
    int64_t transcript_segments;     /* segments rows */
    int64_t messages;                /* wa_messages rows */
    int64_t people;                  /* persons (src/people/) */
};

static int read_local_stats(sqlite3 *db, void *arg)
{
    struct local_stats *ls = arg;
    int rc = lucy_outbox_stats(db, &ls->outbox);
    if (rc)
        return rc;
    sqlite3_stmt *st;
    if ((rc = lucy_store_stmt(db, user_counts_sql, &st)))
        return rc;
    if ((rc = sqlite3_step(st)) != SQLITE_ROW)
        return lucy_store_err(rc);
    ls->recordings = sqlite3_column_int64(st, 0);
    ls->audio_s = sqlite3_column_double(st, 1);
    ls->transcript_segments = sqlite3_column_int64(st, 2);
    ls->messages = sqlite3_column_int64(st, 3);
    ls->people = sqlite3_column_int64(st, 4);
    rc = lucy_store_stmt(db,
                         "SELECT source, count(*) FROM documents WHERE deleted = 0"
                         " GROUP BY source ORDER BY source",
                         &st);
    if (rc)
        return rc;
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW)
        json_object_set_new(ls->sources, (const char *)sqlite3_column_text(st, 0),
                            json_integer(sqlite3_column_int64(st, 1)));
    return src == SQLITE_DONE ? 0 : lucy_store_err(src);
}

static const char *const status_rank[] = {"green", "yellow", "red"};

static int rank_of(const char *status)
{
    for (int i = 0; i < 3; i++)
        if (status && strcmp(status, status_rank[i]) == 0)
            return i;
    return 0;
}

/* Appends a reason to out's status_reason and raises its status to at
 * least `status`. */
static void degrade(json_t *out, const char *status, const char *reason)
{
    const char *cur = json_string_value(json_object_get(out, "status"));
    if (rank_of(status) > rank_of(cur))
        json_object_set_new(out, "status", json_string(status));
    const char *old = json_string_value(json_object_get(out, "status_reason"));
    char buf[1024];
    snprintf(buf, sizeof buf, "%s%s%s", old && *old ? old : "", old && *old ? "; " : "", reason);
    json_object_set_new(out, "status_reason", json_string(buf));
}

/* The `storage` object: the backend's own fields (ops->stats) and the
 * local copy's size; the backend's verdict, if it gave one, moves to o's
 * status. */
static json_t *storage_stats(struct lucy_index *ix, json_t *o)
{
    json_t *storage = json_object();
    if (!storage)
        return NULL;
    if (ix->local && ix->local->ops->stats) {
        json_t *local = json_object();
        if (local && ix->local->ops->stats(ix->local->state, local) == 0)
            json_object_set(storage, "local_count", json_object_get(local, "points_count"));
        json_decref(local);
    }
    if (ix->ops->stats) {
        int brc = ix->ops->stats(ix->state, storage);
        if (brc) {
            char why[256];
            snprintf(why, sizeof why, "backend %s did not answer its stats: %s", ix->ops->name,
                     lucy_strerror(brc));
            degrade(o, "red", why);
        }
    }
    const char *verdict = json_string_value(json_object_get(storage, "status"));
    const char *reason = json_string_value(json_object_get(storage, "status_reason"));
    if (verdict)
        degrade(o, verdict, reason ? reason : "the backend reports a problem");
    json_object_del(storage, "status");
    json_object_del(storage, "status_reason");
    return storage;
}

/* Rounds to 2 decimals, so 1.5 h prints as 1.5, not 1.4999999999999998. */
static double round2(double v)
{
    return (double)(int64_t)(v * 100.0 + 0.5) / 100.0;
}

int lucy_index_stats(struct lucy_index *ix, json_t **out)
{
    *out = NULL;
    json_t *o = json_object();
    struct local_stats ls = {.sources = json_object()};
    if (!o || !ls.sources) {
        json_decref(o);
        json_decref(ls.sources);
        return LUCY_ENOMEM;
    }
    /* insertion order is the order of the reply (and of `lucy stats`) */
    json_object_set_new(o, "backend", json_string(ix->ops->name));
    json_object_set_new(o, "status", json_string("green"));
    json_object_set_new(o, "status_reason", json_string(""));
    int rc = lucy_store_read(ix->store, read_local_stats, &ls);
    if (rc) {
        json_decref(o);
        json_decref(ls.sources);
        return rc;
    }
    json_object_set_new(o, "recordings", json_integer(ls.recordings));
    json_object_set_new(o, "audio_hours", json_real(round2(ls.audio_s / 3600.0)));
    json_object_set_new(o, "transcript_segments", json_integer(ls.transcript_segments));
    json_object_set_new(o, "messages", json_integer(ls.messages));
    json_object_set_new(o, "people", json_integer(ls.people));
    for (int i = 0; known_sources[i]; i++)
        if (!json_object_get(ls.sources, known_sources[i]))
            json_object_set_new(ls.sources, known_sources[i], json_integer(0));
    json_object_set_new(o, "sources", ls.sources);
    json_object_set_new(o, "pending_count", json_integer(ls.outbox.pending));
    json_object_set_new(o, "failed_count", json_integer(ls.outbox.failed));
    json_t *storage = storage_stats(ix, o);
    if (!storage) {
        json_decref(o);
        return LUCY_ENOMEM;
    }
    json_object_set_new(o, "storage", storage);
    /* Deprecated: the storage fields used to be top-level; kept there for
     * one release (README), same values. */
    const char *key;
    json_t *v;
    json_object_foreach(storage, key, v)
    {
        if (!json_object_get(o, key))
            json_object_set(o, key, v);
    }

    char why[512];
    if (ls.outbox.pending > 0) {
        int64_t age_s = 0;
        if (ls.outbox.oldest_pending_ms > 0)
            age_s = (lucy_wall_ms() / 1000 * 1000 - ls.outbox.oldest_pending_ms) / 1000;
        snprintf(why, sizeof why, "%lld documents wait in the outbox (oldest %llds)%s%s",
                 (long long)ls.outbox.pending, (long long)(age_s < 0 ? 0 : age_s),
                 ls.outbox.retrying && ls.outbox.first_error[0] ? ", retrying after: " : "",
                 ls.outbox.retrying ? ls.outbox.first_error : "");
        degrade(o, "yellow", why);
    }
    if (ls.outbox.failed > 0) {
        snprintf(why, sizeof why,
                 "%lld documents were rejected by the backend (first error: %s); fix the "
                 "cause and run `lucy reindex`",
                 (long long)ls.outbox.failed, ls.outbox.first_error);
        degrade(o, "yellow", why);
    }
    json_t *pi = json_object_get(storage, "payload_indexes");
    json_t *pending = pi ? json_object_get(pi, "pending") : NULL;
    if (json_array_size(pending) > 0)
        degrade(o, "yellow",
                "payload indexes are still being created (see storage.payload_indexes)");
    *out = o;
    return 0;
}

/* ---- query helpers ------------------------------------------------------- */

char *lucy_index_fts_query(const char *q, int *err_nomem)
{
    return lucy_index_fts_query_op(q, 0, err_nomem);
}

char *lucy_index_fts_query_op(const char *q, int any_word, int *err_nomem)
{
    *err_nomem = 0;
    if (!q)
        return NULL;
    size_t len = strlen(q);
    /* Worst case: every byte a quote (doubled) plus quotes and " OR " per
     * word. */
    char *out = malloc(len * 7 + 1);
    if (!out) {
        *err_nomem = 1;
        return NULL;
    }
    size_t o = 0;
    int words = 0;
    const unsigned char *p = (const unsigned char *)q;
    while (*p) {
        while (*p && isspace(*p))
            p++;
        if (!*p)
            break;
        if (words++) {
            memcpy(out + o, any_word ? " OR " : " ", any_word ? 4 : 1);
            o += any_word ? 4 : 1;
        }
        out[o++] = '"';
        while (*p && !isspace(*p)) {
            if (*p == '"')
                out[o++] = '"';
            out[o++] = (char)*p++;
        }
        out[o++] = '"';
    }
    out[o] = '\0';
    if (words == 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* Reads exactly n digits into *v; returns the pointer after them or NULL. */
static const char *digits(const char *s, int n, int *v)
{
    *v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return NULL;
        *v = *v * 10 + (s[i] - '0');
    }
    return s + n;
}

static int parse_unix(const char *s, int64_t *out_s)
{
    const char *p = s;
    if (*p == '-')
        p++;
    if (!*p)
        return LUCY_EINVAL;
    for (const char *c = p; *c; c++)
        if (!isdigit((unsigned char)*c))
            return LUCY_EINVAL;
    if (strlen(p) > 12) /* beyond year 33658: not a time */
        return LUCY_EINVAL;
    *out_s = strtoll(s, NULL, 10);
    return 0;
}

int lucy_index_parse_time(const char *s, int end_of_day, int64_t *out_s)
{
    if (!s || !*s)
        return LUCY_EINVAL;
    if (parse_unix(s, out_s) == 0)
        return 0;
    int y, mo, d, h = 0, mi = 0, sec = 0, zh = 0, zm = 0;
    const char *p = digits(s, 4, &y);
    if (!p || *p++ != '-' || !(p = digits(p, 2, &mo)) || *p++ != '-' || !(p = digits(p, 2, &d)))
        return LUCY_EINVAL;
    int date_only = (*p == '\0');
    if (!date_only) {
        if (*p != 'T' && *p != 't' && *p != ' ')
            return LUCY_EINVAL;
        p++;
        if (!(p = digits(p, 2, &h)) || *p++ != ':' || !(p = digits(p, 2, &mi)))
            return LUCY_EINVAL;
        if (*p == ':') {
            if (!(p = digits(p + 1, 2, &sec)))
                return LUCY_EINVAL;
            if (*p == '.' || *p == ',') { /* fractions are dropped */
                p++;
                if (!isdigit((unsigned char)*p))
                    return LUCY_EINVAL;
                while (isdigit((unsigned char)*p))
                    p++;
            }
        }
        int sign = 0;
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            sign = *p == '+' ? 1 : -1;
            p++;
            if (!(p = digits(p, 2, &zh)))
                return LUCY_EINVAL;
            if (*p == ':')
                p++;
            if (!(p = digits(p, 2, &zm)))
                return LUCY_EINVAL;
            if (zh > 23 || zm > 59)
                return LUCY_EINVAL;
        }
        if (*p)
            return LUCY_EINVAL;
        zh *= sign;
        zm *= sign;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 59)
        return LUCY_EINVAL;
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = sec};
    time_t t = timegm(&tm);
    /* timegm normalises 2024-02-31 to March: refuse dates that moved. */
    if (tm.tm_mday != d || tm.tm_mon != mo - 1)
        return LUCY_EINVAL;
    int64_t v = (int64_t)t - (int64_t)zh * 3600 - (int64_t)zm * 60;
    if (date_only && end_of_day)
        v += 86400 - 1;
    *out_s = v;
    return 0;
}
