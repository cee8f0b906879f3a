/*
 * retrieve.c - from filters and words to numbered sources (DESIGN §14,
 * "Retrieval").
 *
 * 1. The words (lucy_ask_search_words) go to the index's grouped search
 *    with any_word = 1 (a question's words are not all in the answer) and
 *    the filters: time range, the person's contacts and recordings
 *    (lucy_index_person_ids), source call_recording for "the latest call".
 *    Without words (or without hits), the newest documents under the
 *    filters stand in - "what did John say yesterday" has no topic.
 * 2. With LUCY_EMBED_URL, the same words under the same filters are
 *    embedded and ranked by meaning (lucy_index_similar); its hits are
 *    grouped into conversations with the index's own key
 *    (lucy_index_group_key), so a conversation found only this way gets
 *    its hits loaded like a BM25 one. Only hits with a positive cosine
 *    count: an orthogonal vector shares nothing with the question. The
 *    two lists of conversation keys are fused by reciprocal rank fusion
 *    (fuse.c, fuse_lists()). The dense list failing (embedding server
 *    down) or incomplete (documents waiting for vectors) marks the answer
 *    degraded; BM25 alone then answers.
 * 3. Each of the best conversations becomes one source: its best hit,
 *    then its other hits, each widened by the segments before and after
 *    (recordings), while the budget (LUCY_LLM_CONTEXT_TOKENS * 4 bytes,
 *    shared equally) lasts; labelled with the person and local date.
 * Reads documents (lucy_outbox_doc_get), people and recording_calls; writes
 * nothing.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../error.h"
#include "../index/index.h"
#include "../people/people.h"
#include "../store/row.h"
#include "../store/store.h"
#include "ask_int.h"

#define GROUPS_ASKED 20                 /* conversations asked of the index (per ranked list) */
#define CONVS_MAX    (2 * GROUPS_ASKED) /* BM25's and the dense list's together */
#define DENSE_HITS   (GROUPS_ASKED * PER_GROUP) /* hits asked of the dense ranking */
#define PER_GROUP    3                          /* hits kept per conversation */
#define NEIGHBOURS   1                          /* segments added on each side of a hit */
#define RECENT_MAX   50                         /* documents read when there are no words */

/* A hit, as retrieval keeps it (strings malloc'd). */
struct hit {
    char *source, *id, *contact;
    int segment;
    int64_t time_s, t0_ms, t1_ms;
};

/* A conversation: its key and best-first hits. */
struct conv {
    char key[256];
    int64_t person; /* the index's sender person (messages), 0 = unknown */
    struct hit hits[PER_GROUP];
    size_t n;
};

static void hit_free(struct hit *h)
{
    free(h->source);
    free(h->id);
    free(h->contact);
}

static int hit_set(struct hit *h, const char *source, const char *id, const char *contact,
                   int segment, int64_t time_s, int64_t t0_ms, int64_t t1_ms)
{
    h->source = strdup(source ? source : "");
    h->id = strdup(id ? id : "");
    h->contact = contact ? strdup(contact) : NULL;
    h->segment = segment, h->time_s = time_s, h->t0_ms = t0_ms, h->t1_ms = t1_ms;
    return h->source && h->id && (!contact || h->contact) ? 0 : LUCY_ENOMEM;
}

/* ---- filters-only: the newest documents -------------------------------- */

static const char recent_sql[] =
    "SELECT source, id, segment, contact, time_s, t0_ms, t1_ms FROM documents"
    " WHERE deleted = 0 AND time_s >= ?1 AND time_s <= ?2 AND (?3 IS NULL OR source = ?3)"
    " AND (?4 IS NULL OR contact IN (SELECT value FROM json_each(?4))"
    " OR (source = 'call_recording' AND id IN (SELECT value FROM json_each(?5))))"
    " ORDER BY time_s DESC, source, id, segment LIMIT ?6";

struct recent_arg {
    const struct lucy_search_query *q;
    char *contacts, *recordings; /* JSON arrays, or NULL = no person filter */
    struct conv *convs;
    size_t n, max;
};

static int read_recent(sqlite3 *db, void *arg)
{
    struct recent_arg *a = arg;
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db, recent_sql, &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, a->q->from_s);
    sqlite3_bind_int64(st, 2, a->q->to_s);
    lucy_row_bind_text(st, 3, a->q->source);
    lucy_row_bind_text(st, 4, a->contacts);
    lucy_row_bind_text(st, 5, a->recordings ? a->recordings : "[]");
    sqlite3_bind_int(st, 6, RECENT_MAX);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *source = (const char *)sqlite3_column_text(st, 0);
        const char *id = (const char *)sqlite3_column_text(st, 1);
        const char *contact = (const char *)sqlite3_column_text(st, 3);
        int64_t time_s = sqlite3_column_int64(st, 4);
        char key[256];
        if (strcmp(source, "call_recording") == 0) {
            snprintf(key, sizeof key, "call_recording:%s", id);
        } else {
            char day[16];
            time_t t = (time_t)time_s;
            struct tm tm;
            gmtime_r(&t, &tm);
            strftime(day, sizeof day, "%Y-%m-%d", &tm);
            snprintf(key, sizeof key, "whatsapp:contact:%s:%s", contact ? contact : id, day);
        }
        size_t i = 0;
        while (i < a->n && strcmp(a->convs[i].key, key) != 0)
            i++;
        if (i == a->n) {
            if (a->n == a->max)
                continue;
            snprintf(a->convs[a->n++].key, sizeof a->convs[i].key, "%s", key);
        }
        struct conv *c = &a->convs[i];
        if (c->n < PER_GROUP &&
            hit_set(&c->hits[c->n++], source, id, contact, sqlite3_column_int(st, 2), time_s,
                    sqlite3_column_int64(st, 5), sqlite3_column_int64(st, 6)))
            return LUCY_ENOMEM;
    }
    return rc == SQLITE_DONE ? 0 : lucy_store_err(rc);
}

/* A recording's segments come in time order for a story, not newest first. */
static int by_segment(const void *x, const void *y)
{
    const struct hit *a = x, *b = y;
    return a->segment - b->segment;
}

static char *json_strv(char **v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    char *s = a ? json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(a);
    return s;
}

/* ---- fusion ---------------------------------------------------------------- */

/* Orders convs[0..n) by the fused rank of BM25's order (the order the
 * index gave convs[0..n_bm25)) and the dense list's (dense[0..n_dense),
 * keys of convs). */
static void fuse_lists(struct conv *convs, size_t n, size_t n_bm25, const char *const *dense,
                       size_t n_dense)
{
    const char *keys[CONVS_MAX], *fused[CONVS_MAX];
    for (size_t i = 0; i < n_bm25; i++)
        keys[i] = convs[i].key;
    struct lucy_ask_ranked lists[] = {{keys, n_bm25, 1.0}, {dense, n_dense, 1.0}};
    size_t m = lucy_ask_rrf(lists, 2, 0, fused, NULL, CONVS_MAX);
    struct conv *sorted = calloc(CONVS_MAX, sizeof *sorted);
    if (!sorted) /* BM25's order stands */
        return;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++)
            if (fused[i] == convs[j].key)
                sorted[i] = convs[j];
    if (m == n)
        memcpy(convs, sorted, n * sizeof *convs);
    free(sorted);
}

/* ---- the dense list ---------------------------------------------------------- */

struct dense_arg {
    const struct lucy_search_result *res; /* the dense hits, best first */
    struct conv *convs;                   /* the conversations so far ... */
    size_t *n;                            /* ... this many (grows) */
    const char **keys;                    /* out: the dense ranked list of conversation keys */
    size_t n_keys;                        /* ... this many */
};

/* Groups the dense hits into conversations: one already found gets the
 * hit as a further passage (room permitting), a new one is added. */
static int group_dense(sqlite3 *db, void *arg)
{
    struct dense_arg *d = arg;
    for (size_t i = 0; i < d->res->n; i++) {
        const struct lucy_search_hit *h = &d->res->hits[i];
        if (h->score <= 0)
            break; /* best first: the rest share nothing with the question either */
        char key[sizeof d->convs[0].key];
        int64_t person = 0;
        int rc = lucy_index_group_key(db, h, key, sizeof key, &person);
        if (rc)
            return rc;
        size_t c = 0;
        while (c < *d->n && strcmp(d->convs[c].key, key) != 0)
            c++;
        if (c == *d->n) {
            if (*d->n == CONVS_MAX || d->n_keys == GROUPS_ASKED)
                continue;
            snprintf(d->convs[c].key, sizeof d->convs[c].key, "%s", key);
            d->convs[c].person = person;
            (*d->n)++;
        }
        struct conv *cv = &d->convs[c];
        size_t k = 0;
        while (k < d->n_keys && d->keys[k] != cv->key)
            k++;
        if (k == d->n_keys) {
            if (d->n_keys == GROUPS_ASKED)
                continue;
            d->keys[d->n_keys++] = cv->key;
        }
        int dup = 0;
        for (size_t j = 0; j < cv->n; j++)
            dup |= cv->hits[j].segment == h->segment && strcmp(cv->hits[j].id, h->id) == 0 &&
                   strcmp(cv->hits[j].source, h->source) == 0;
        if (!dup && cv->n < PER_GROUP &&
            hit_set(&cv->hits[cv->n++], h->source, h->id, h->contact, h->segment, h->time_s,
                    h->t0_ms, h->t1_ms))
            return LUCY_ENOMEM;
    }
    return 0;
}

/* The dense ranked list for q into keys (n_keys), adding the conversations
 * only it found to convs; says in r what took part. LUCY_ENOMEM only:
 * every other failure leaves BM25 alone, degraded. */
static int from_dense(struct lucy_ask *a, const struct lucy_search_query *q,
                      struct lucy_ask_retrieval *r, struct conv *convs, size_t *n,
                      const char **keys, size_t *n_keys)
{
    struct lucy_search_query dq = *q;
    dq.limit = DENSE_HITS;
    struct lucy_search_result res = {0};
    int rc = lucy_index_similar(a->ix, &dq, &res);
    if (rc == LUCY_EUNAVAIL) { /* LUCY_EMBED_URL unset: BM25 only, as configured */
        lucy_search_result_free(&res);
        return 0;
    }
    const char *why = rc ? lucy_strerror(rc) : res.degraded ? res.degraded_reason : NULL;
    if (why) {
        size_t len = strlen(r->degraded_reason);
        snprintf(r->degraded_reason + len, sizeof r->degraded_reason - len, "%s%s", len ? "; " : "",
                 why);
        r->degraded = 1;
    }
    struct dense_arg d = {&res, convs, n, keys, 0};
    if (rc == 0 && res.n > 0)
        rc = lucy_store_read(a->store, group_dense, &d);
    /* The dense ranking took part when it ranked anything (or had nothing
     * close to rank), not when it could not embed the question. */
    if (rc == 0 && (res.n > 0 || !res.degraded) &&
        strlen(r->backend) + sizeof "+dense" <= sizeof r->backend)
        strcat(r->backend, "+dense");
    lucy_search_result_free(&res);
    *n_keys = d.n_keys;
    return rc == LUCY_ENOMEM ? rc : 0;
}

/* ---- sources ---------------------------------------------------------------- */

struct source_arg {
    struct lucy_ask *a;
    struct conv *conv;
    struct lucy_ask_source *s;
    size_t budget; /* bytes of text this source may hold */
};

static const char speaker_sql[] =
    "SELECT speaker FROM segments WHERE recording_id = ?1 AND idx = ?2";

/* The speaker role of segment seg of recording id ("me", "them") into
 * role, "" when not known (a mono call). */
static void segment_speaker(sqlite3 *db, const char *id, int seg, char role[8])
{
    sqlite3_stmt *st;
    role[0] = '\0';
    if (lucy_store_stmt(db, speaker_sql, &st) != 0)
        return;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, seg);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        snprintf(role, 8, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_reset(st);
}

/* Appends segment seg's text of (source, id) to *out unless already there
 * or over budget; them (calls only, else NULL) names the other party: a
 * segment whose speaker is known reads "Me: ..." or "<them>: ...", so the
 * LLM sees who said what (DESIGN §14). *first gets the bare text. 1
 * appended, 0 not, < 0 error. */
static int add_text(sqlite3 *db, const char *source, const char *id, int seg, const char *them,
                    FILE *out, size_t *used, size_t budget, char **first)
{
    struct lucy_doc_row row;
    int rc = lucy_outbox_doc_get(db, source, id, seg, &row);
    if (rc == LUCY_ENOTFOUND)
        return 0;
    if (rc)
        return rc;
    int added = 0;
    if (!row.deleted && row.text) {
        char role[8] = "", label[300] = "";
        if (them)
            segment_speaker(db, id, seg, role);
        if (role[0])
            snprintf(label, sizeof label, "%s: ", strcmp(role, "me") == 0 ? "Me" : them);
        size_t len = strlen(label) + strlen(row.text);
        if (first && !*first)
            *first = strdup(row.text);
        if (*used == 0 || *used + len + 1 <= budget) {
            fprintf(out, "%s%s%s", *used ? " " : "", label, row.text);
            *used += len + (*used ? 1 : 0);
            added = 1;
        }
    }
    lucy_doc_row_free(&row);
    return added;
}

static const char call_person_sql[] =
    "SELECT number_e164 FROM recording_calls WHERE recording_id = ?1";

/* The person a conversation is with: the recording's call number, or the
 * message sender's wa_id / user_id. */
static int64_t conv_person(sqlite3 *db, const struct conv *c)
{
    const struct hit *h = &c->hits[0];
    int64_t person = c->person;
    if (!person && strcmp(h->source, "call_recording") == 0) {
        sqlite3_stmt *st;
        if (lucy_store_stmt(db, call_person_sql, &st) == 0) {
            lucy_row_bind_text(st, 1, h->id);
            if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
                lucy_people_find(db, "phone", (const char *)sqlite3_column_text(st, 0), &person);
        }
    } else if (!person && h->contact) {
        if (lucy_people_find(db, "wa_id", h->contact, &person) != 0)
            lucy_people_find(db, "user_id", h->contact, &person);
    }
    return person;
}

void lucy_ask_iso_local(int64_t time_s, char *out, size_t size, char *human, size_t hsize)
{
    time_t t = (time_t)time_s;
    struct tm tm;
    char z[8];
    localtime_r(&t, &tm);
    strftime(z, sizeof z, "%z", &tm); /* "+0100" -> "+01:00" */
    char off[8];
    snprintf(off, sizeof off, "%.3s:%.2s", z, z + 3);
    /* %Y would print year 999 as "999": ISO 8601 wants four digits */
    snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02d%s", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, off);
    snprintf(human, hsize, "%04d-%02d-%02d %02d:%02d %s", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, off);
}

static int read_source(sqlite3 *db, void *arg)
{
    struct source_arg *sa = arg;
    struct conv *c = sa->conv;
    struct lucy_ask_source *s = sa->s;
    const struct hit *best = &c->hits[0];
    char *buf = NULL;
    size_t size = 0, used = 0;
    FILE *out = open_memstream(&buf, &size);
    if (!out)
        return LUCY_ENOMEM;
    int rc = 0;
    int is_call = strcmp(best->source, "call_recording") == 0;
    s->person = conv_person(db, c);
    json_t *p = NULL;
    if (s->person && lucy_people_json(db, s->person, 0, &p) == 0)
        snprintf(s->person_name, sizeof s->person_name, "%s",
                 json_string_value(json_object_get(p, "name")) ?: "");
    json_decref(p);
    /* A call's segments say who spoke; the other party by name, else "Them". */
    const char *them = !is_call ? NULL : s->person_name[0] ? s->person_name : "Them";
    if (is_call)
        segment_speaker(db, best->id, best->segment, s->speaker);
    /* The best hit first (it must fit: it is the quote), then its
     * neighbours and the other hits while the budget lasts, in segment
     * order within a recording. */
    int lo = best->segment, hi = best->segment;
    rc = add_text(db, best->source, best->id, best->segment, them, out, &used, sa->budget,
                  &s->quote);
    for (int d = 1; rc >= 0 && is_call && d <= NEIGHBOURS; d++) {
        if (best->segment - d >= 0 && (rc = add_text(db, best->source, best->id, best->segment - d,
                                                     them, out, &used, sa->budget, NULL)) > 0)
            lo = best->segment - d;
        if (rc >= 0 && (rc = add_text(db, best->source, best->id, best->segment + d, them, out,
                                      &used, sa->budget, NULL)) > 0)
            hi = best->segment + d;
    }
    for (size_t i = 1; rc >= 0 && i < c->n; i++)
        if (!is_call || c->hits[i].segment < lo || c->hits[i].segment > hi)
            rc = add_text(db, c->hits[i].source, c->hits[i].id, c->hits[i].segment, them, out,
                          &used, sa->budget, NULL);
    if (fclose(out) != 0 && rc >= 0)
        rc = LUCY_ENOMEM;
    if (rc < 0) {
        free(buf);
        return rc;
    }
    s->text = buf;
    if (is_call && lo < best->segment) { /* the text reads in time order */
        free(s->text);
        buf = NULL, size = used = 0;
        out = open_memstream(&buf, &size);
        if (!out)
            return LUCY_ENOMEM;
        for (int seg = lo; seg <= hi; seg++)
            add_text(db, best->source, best->id, seg, them, out, &used, sa->budget, NULL);
        for (size_t i = 1; i < c->n; i++)
            if (c->hits[i].segment < lo || c->hits[i].segment > hi)
                add_text(db, c->hits[i].source, c->hits[i].id, c->hits[i].segment, them, out, &used,
                         sa->budget, NULL);
        fclose(out);
        s->text = buf;
    }
    char human[48];
    lucy_ask_iso_local(best->time_s, s->time_iso, sizeof s->time_iso, human, sizeof human);
    const char *who = s->person_name[0] ? s->person_name : best->contact;
    if (is_call)
        snprintf(s->label, sizeof s->label, "call%s%s · %s", who ? " with " : "", who ? who : "",
                 human);
    else
        snprintf(s->label, sizeof s->label, "WhatsApp message%s%s · %s", who ? " from " : "",
                 who ? who : "", human);
    return 0;
}

static int source_from(struct lucy_ask *a, struct conv *c, size_t budget, struct lucy_ask_source *s)
{
    const struct hit *best = &c->hits[0];
    s->source = strdup(best->source);
    s->id = strdup(best->id);
    s->contact = best->contact ? strdup(best->contact) : NULL;
    s->segment = best->segment;
    s->time_s = best->time_s;
    s->t0_ms = best->t0_ms;
    s->t1_ms = best->t1_ms;
    if (!s->source || !s->id || (best->contact && !s->contact))
        return LUCY_ENOMEM;
    struct source_arg sa = {a, c, s, budget};
    return lucy_store_read(a->store, read_source, &sa);
}

static void source_free(struct lucy_ask_source *s)
{
    free(s->source);
    free(s->id);
    free(s->contact);
    free(s->quote);
    free(s->text);
    memset(s, 0, sizeof *s);
}

void lucy_ask_retrieval_free(struct lucy_ask_retrieval *r)
{
    for (size_t i = 0; i < r->n; i++)
        source_free(&r->src[i]);
    r->n = 0;
}

/* ---- the walk ---------------------------------------------------------------- */

static int from_index(struct lucy_ask *a, const struct lucy_search_query *q,
                      struct lucy_ask_retrieval *r, struct conv *convs, size_t *n)
{
    struct lucy_search_result res = {0};
    int rc = lucy_index_search_grouped(a->ix, q, PER_GROUP, &res);
    if (res.backend)
        snprintf(r->backend, sizeof r->backend, "%s", res.backend);
    if (rc == LUCY_ENOMEM) {
        lucy_search_result_free(&res);
        return rc;
    }
    if (rc) {
        r->degraded = 1;
        snprintf(r->degraded_reason, sizeof r->degraded_reason,
                 "the search index failed (%s): answering without sources", lucy_strerror(rc));
        lucy_search_result_free(&res);
        return 0;
    }
    if (res.degraded) {
        r->degraded = 1;
        snprintf(r->degraded_reason, sizeof r->degraded_reason, "%s", res.degraded_reason);
    }
    for (size_t g = 0; g < res.n_groups && *n < GROUPS_ASKED; g++) {
        struct conv *c = &convs[(*n)++];
        snprintf(c->key, sizeof c->key, "%s", res.groups[g].key);
        c->person = res.groups[g].person;
        for (size_t k = 0; k < res.groups[g].n && k < PER_GROUP; k++) {
            const struct lucy_search_hit *h = &res.hits[res.groups[g].first + k];
            if (hit_set(&c->hits[c->n++], h->source, h->id, h->contact, h->segment, h->time_s,
                        h->t0_ms, h->t1_ms)) {
                lucy_search_result_free(&res);
                return LUCY_ENOMEM;
            }
        }
    }
    lucy_search_result_free(&res);
    return 0;
}

int lucy_ask_retrieve(struct lucy_ask *a, const char *question, const struct lucy_ask_filters *f,
                      size_t max, struct lucy_ask_retrieval *r)
{
    memset(r, 0, sizeof *r);
    snprintf(r->backend, sizeof r->backend, "%s", lucy_index_name(a->ix));
    char *words = lucy_ask_search_words(question, f->person.id ? f->person.matched : NULL);
    if (!words)
        return LUCY_ENOMEM;
    snprintf(r->words, sizeof r->words, "%s", words);
    struct lucy_search_query q = {.q = words,
                                  .any_word = 1,
                                  .from_s = f->time.from_s,
                                  .to_s = f->time.to_s,
                                  .limit = GROUPS_ASKED,
                                  .source = f->time.latest ? "call_recording" : NULL,
                                  .snippets = LUCY_SNIPPETS_NONE /* sources carry text */};
    char **contacts = NULL, **recordings = NULL;
    size_t n_contacts = 0, n_recordings = 0;
    int rc = 0;
    if (f->person.id) {
        rc = lucy_index_person_ids(a->ix, f->person.id, &contacts, &n_contacts, &recordings,
                                   &n_recordings);
        q.restrict_ids = 1;
        q.contacts = (const char *const *)contacts, q.n_contacts = n_contacts;
        q.recordings = (const char *const *)recordings, q.n_recordings = n_recordings;
    }
    struct conv *convs = calloc(CONVS_MAX, sizeof *convs);
    const char *dense[GROUPS_ASKED];
    size_t n = 0, n_bm25 = 0, n_dense = 0;
    if (!convs)
        rc = LUCY_ENOMEM;
    struct recent_arg ra = {.q = &q, .convs = convs, .max = GROUPS_ASKED};
    if (rc == 0 && f->person.id &&
        (!(ra.contacts = json_strv(contacts, n_contacts)) ||
         !(ra.recordings = json_strv(recordings, n_recordings))))
        rc = LUCY_ENOMEM;
    if (rc == 0 && f->time.latest) {
        /* "the latest call": the newest recording under the filters is the
         * one conversation; words only choose its passages. */
        ra.max = 1;
        rc = lucy_store_read(a->store, read_recent, &ra);
        n = n_bm25 = ra.n;
        if (rc == 0 && n == 1 && words[0]) {
            const char *only[] = {convs[0].hits[0].id};
            struct lucy_search_query q1 = q;
            q1.restrict_ids = 1, q1.contacts = NULL, q1.n_contacts = 0;
            q1.recordings = only, q1.n_recordings = 1;
            struct conv found[GROUPS_ASKED] = {0};
            size_t nf = 0;
            rc = from_index(a, &q1, r, found, &nf);
            if (rc == 0 && nf > 0) {
                for (size_t k = 0; k < convs[0].n; k++)
                    hit_free(&convs[0].hits[k]);
                convs[0] = found[0];
                for (size_t i = 1; i < nf; i++)
                    for (size_t k = 0; k < found[i].n; k++)
                        hit_free(&found[i].hits[k]);
            }
        }
    } else if (rc == 0) {
        if (words[0])
            rc = from_index(a, &q, r, convs, &n);
        n_bm25 = n;
        if (rc == 0 && words[0])
            rc = from_dense(a, &q, r, convs, &n, dense, &n_dense);
        if (rc == 0 && n == 0 && (f->person.id || f->time.phrase[0])) {
            rc = lucy_store_read(a->store, read_recent, &ra); /* filters only */
            n = n_bm25 = ra.n;
        }
    }
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (strcmp(convs[i].hits[0].source, "call_recording") == 0 && !words[0])
            qsort(convs[i].hits, convs[i].n, sizeof convs[i].hits[0], by_segment);
    if (rc == 0)
        fuse_lists(convs, n, n_bm25, dense, n_dense);
    size_t take = n < max ? n : max;
    size_t budget = take ? a->context_bytes / take : 0;
    for (size_t i = 0; rc == 0 && i < take; i++) {
        rc = source_from(a, &convs[i], budget, &r->src[r->n]);
        if (rc == 0 && r->src[r->n].quote)
            r->n++;
        else
            source_free(&r->src[r->n]);
    }
    for (size_t i = 0; convs && i < CONVS_MAX; i++)
        for (size_t k = 0; k < convs[i].n; k++)
            hit_free(&convs[i].hits[k]);
    free(convs);
    free(ra.contacts);
    free(ra.recordings);
    lucy_index_strv_free(contacts);
    lucy_index_strv_free(recordings);
    free(words);
    if (rc)
        lucy_ask_retrieval_free(r);
    return rc == LUCY_ENOMEM ? rc : 0;
}
