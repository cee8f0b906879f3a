/*
 * retranscribe.c - re-transcription requests and bulk re-transcription as
 * one job group (DESIGN §13 Versions; see retranscribe.h); the one writer
 * of `job_groups`.
 *
 * A bulk request selects recordings with GET /recordings' own filter
 * (lucy_recording_list: person, from, to - one rule for "this person's
 * calls"), page by page, then queues them all and the group row in ONE
 * store write, so a group is never half-queued. Its jobs are ordinary
 * jobs of queue class 2: claimed after user requests and new recordings,
 * each finishing with a new transcript version that becomes active.
 * A group's figures are read from its jobs when asked (nothing to keep in
 * step): what is missing from total was dropped by a cancel.
 */
#include "retranscribe.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../asr/asr.h"
#include "../../clock.h"
#include "../../config.h"
#include "../../error.h"
#include "../../http/http.h"
#include "../../index/index.h"
#include "../../lucy.h"
#include "../../media/media.h"
#include "../../people/people.h"
#include "../../store/row.h"
#include "../../store/store.h"
#include "jobs.h"
#include "plugin.h"
#include "recording.h"

#define PAGE 500 /* recordings read per page while selecting */

/* "engine" or "model" of body into dst (size bytes): "" when absent or
 * null; -1 after a 400 when it is not a non-empty string that fits. */
static int asr_field(const json_t *body, const char *key, char *dst, size_t size,
                     struct lucy_http_response *resp)
{
    const json_t *v = json_object_get(body, key);
    dst[0] = '\0';
    if (!v || json_is_null(v))
        return 0;
    const char *s = json_string_value(v);
    if (!s || !s[0] || strlen(s) >= size) {
        lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0,
                              "%s must be a string of 1 to %zu characters (or left out for the "
                              "configured one)",
                              key, size - 1);
        return -1;
    }
    memcpy(dst, s, strlen(s) + 1);
    return 0;
}

int lucy_retranscribe_check(struct lucy_http_request *req, struct lucy_http_response *resp,
                            const json_t *body, struct lucy_job_asr *out)
{
    memset(out, 0, sizeof *out);
    if (asr_field(body, "engine", out->engine, sizeof out->engine, resp) != 0 ||
        asr_field(body, "model", out->model, sizeof out->model, resp) != 0)
        return -1;
    const struct lucy_config *cfg = req->ctx->cfg;
    struct lucy_asr_options opt = {
        .engine = out->engine[0] ? out->engine : cfg->asr_engine,
        .whisper_model = cfg->whisper_model,
        .url = cfg->asr_url,
        .model = out->model,
    };
    char err[320];
    /* A missing media module is not the request's engine: say so, not "set it". */
    if (!lucy_media_hold(err, sizeof err)) {
        lucy_http_reply_error(resp, LUCY_HTTP_DEPENDENCY_UNAVAILABLE, 60,
                              "%s; nothing was queued, ask again once it is installed", err);
        return -1;
    }
    int rc = lucy_asr_check(&opt, NULL, err, sizeof err);
    lucy_media_drop();
    if (rc == LUCY_EINVAL)
        lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0, "%s; nothing was queued", err);
    else if (rc)
        lucy_http_reply_error(resp, LUCY_HTTP_CONFLICT, 0,
                              "%s; nothing was queued: ask again once that is done (a restart "
                              "reads the configuration), or leave \"engine\" out for the "
                              "configured one",
                              err);
    return rc ? -1 : 0;
}

/* ---- POST /recordings/retranscribe ---------------------------------------- */

/* The body's JSON object; NULL after a 400. An empty body is {}. */
static json_t *body_object(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    if (req->body_len == 0)
        return json_object();
    json_error_t jerr;
    json_t *body = json_loadb(req->body, req->body_len, 0, &jerr);
    if (!json_is_object(body)) {
        json_decref(body);
        lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0,
                              "the body must be a JSON object such as {\"person\": 3, \"from\": "
                              "\"2024-01-01\", \"to\": \"2024-12-31\"} (%.80s)",
                              jerr.text);
        return NULL;
    }
    return body;
}

/* "from"/"to": Unix seconds (number) or an ISO 8601 date (string). */
static int time_bound(const json_t *v, int end, int64_t *out_s)
{
    if (json_is_integer(v)) {
        *out_s = json_integer_value(v);
        return 0;
    }
    return json_is_string(v) ? lucy_index_parse_time(json_string_value(v), end, out_s)
                             : LUCY_EINVAL;
}

/* The filters into q; 0, or -1 after a 400. */
static int parse_filters(const json_t *body, struct lucy_recording_query *q,
                         struct lucy_http_response *resp)
{
    static const char *const bounds[] = {"from", "to"};
    for (int end = 0; end < 2; end++) {
        const json_t *v = json_object_get(body, bounds[end]);
        int64_t s;
        if (!v || json_is_null(v))
            continue;
        if (time_bound(v, end, &s) != 0) {
            lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0,
                                  "%s must be Unix seconds or an ISO 8601 date or date-time "
                                  "(\"2024-05-31\", \"2024-05-31T14:00:00+02:00\")",
                                  bounds[end]);
            return -1;
        }
        if (end) {
            q->has_to = 1;
            q->to_ms = s * 1000 + 999;
        } else {
            q->has_from = 1;
            q->from_ms = s * 1000;
        }
    }
    const json_t *person = json_object_get(body, "person");
    if (person && !json_is_null(person)) {
        if (!json_is_integer(person) || json_integer_value(person) < 1) {
            lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0,
                                  "person must be a person id (a whole number, as GET /people "
                                  "lists them)");
            return -1;
        }
        q->person_id = json_integer_value(person);
    }
    if (q->has_from && q->has_to && q->from_ms > q->to_ms) {
        lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0,
                              "from is after to: swap them, or leave one out");
        return -1;
    }
    return 0;
}

/* A person the request names must exist: an unknown id would select
 * nothing and look like a person without calls. 0 or LUCY_ENOTFOUND. */
static int person_read(sqlite3 *db, void *arg)
{
    json_t *o = NULL;
    int rc = lucy_people_json(db, *(const int64_t *)arg, 0, &o);
    json_decref(o);
    return rc;
}

/* The ids of every recording matching q, as a JSON array of strings. */
static int select_recordings(struct lucy_store *store, struct lucy_recording_query *q, json_t *ids)
{
    char cursor[72] = "";
    q->limit = PAGE;
    for (;;) {
        json_t *page = NULL;
        q->cursor = cursor[0] ? cursor : NULL;
        int err = lucy_recording_list(store, q, &page);
        if (err)
            return err;
        size_t i;
        json_t *r;
        json_array_foreach(json_object_get(page, "recordings"), i, r)
            json_array_append(ids, json_object_get(r, "id"));
        const char *next = json_string_value(json_object_get(page, "next_cursor"));
        snprintf(cursor, sizeof cursor, "%s", next ? next : "");
        json_decref(page);
        if (!cursor[0])
            return 0;
    }
}

struct create_arg {
    const json_t *ids;              /* recording ids to queue */
    const struct lucy_job_asr *asr; /* the engine/model asked for */
    const char *filter;             /* the request's filters, JSON text */
    long long group_id;             /* out */
};

static int create_write(sqlite3 *db, void *arg)
{
    struct create_arg *a = arg;
    sqlite3_stmt *st;
    int err = lucy_store_stmt(db,
                              "INSERT INTO job_groups (kind, filter, total_jobs, skipped,"
                              " created_at_s) VALUES ('retranscribe', ?1, 0, 0, ?2)",
                              &st);
    if (err)
        return err;
    sqlite3_bind_text(st, 1, a->filter, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, lucy_wall_ms() / 1000);
    if ((err = lucy_row_step_done(st)) != 0)
        return err;
    a->group_id = sqlite3_last_insert_rowid(db);
    long long queued = 0, skipped = 0;
    size_t i;
    json_t *id;
    json_array_foreach(a->ids, i, id)
    {
        err = lucy_jobs_enqueue_group(db, json_string_value(id), a->group_id, a->asr, NULL);
        if (err == LUCY_ECONFLICT)
            skipped++;
        else if (err)
            return err;
        else
            queued++;
    }
    if ((err = lucy_store_stmt(
             db, "UPDATE job_groups SET total_jobs = ?2, skipped = ?3 WHERE id = ?1", &st)) != 0)
        return err;
    sqlite3_bind_int64(st, 1, a->group_id);
    sqlite3_bind_int64(st, 2, queued);
    sqlite3_bind_int64(st, 3, skipped);
    return lucy_row_step_done(st);
}

/* ---- the group's figures ----------------------------------------------------- */

struct group_arg {
    long long id;
    json_t **out; /* the group's JSON (group_read) */
};

/* The group as GET /job-groups/{id} shows it. */
static int group_json(sqlite3 *db, long long id, json_t **out)
{
    sqlite3_stmt *st;
    int err = lucy_store_stmt(db,
                              "SELECT kind, filter, total_jobs, skipped, created_at_s,"
                              " cancelled_at_s FROM job_groups WHERE id = ?1",
                              &st);
    if (err)
        return err;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        return rc == SQLITE_DONE ? LUCY_ENOTFOUND : lucy_store_err(rc);
    }
    char *kind = lucy_row_dup(st, 0), *filter = lucy_row_dup(st, 1);
    long long total = sqlite3_column_int64(st, 2), skipped = sqlite3_column_int64(st, 3);
    int64_t created = sqlite3_column_int64(st, 4);
    int cancelled = sqlite3_column_type(st, 5) != SQLITE_NULL;
    sqlite3_reset(st);
    long long n[LUCY_JOB_N_STATUSES];
    err = lucy_jobs_group_counts(db, id, n);
    long long present = 0;
    for (int s = 0; s < LUCY_JOB_N_STATUSES; s++)
        present += n[s];
    long long waiting = n[LUCY_JOB_QUEUED] + n[LUCY_JOB_RETRY_WAIT] + n[LUCY_JOB_BLOCKED];
    long long done = n[LUCY_JOB_DONE] + n[LUCY_JOB_NO_SPEECH], failed = n[LUCY_JOB_FAILED];
    long long dropped = total - present;
    long long active = waiting + n[LUCY_JOB_RUNNING];
    /* Dropped jobs count as settled: a cancelled group reaches 1. */
    double progress = total > 0 ? (double)(done + failed + dropped) / (double)total : 1.0;
    const char *state =
        active ? (cancelled ? "cancelling" : "running") : (cancelled ? "cancelled" : "done");
    json_t *f = filter ? json_loads(filter, 0, NULL) : NULL;
    *out =
        err ? NULL
            : json_pack("{s:I,s:s,s:o,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:I}", "group_id",
                        (json_int_t)id, "kind", kind ? kind : "", "filter", f ? f : json_object(),
                        "state", state, "total", (json_int_t)total, "queued", (json_int_t)waiting,
                        "running", (json_int_t)n[LUCY_JOB_RUNNING], "done", (json_int_t)done,
                        "failed", (json_int_t)failed, "cancelled", (json_int_t)dropped, "skipped",
                        (json_int_t)skipped, "progress", progress, "created_at_s",
                        (json_int_t)created);
    if (err)
        json_decref(f);
    free(kind);
    free(filter);
    return err ? err : *out ? 0 : LUCY_ENOMEM;
}

static int group_read(sqlite3 *db, void *arg)
{
    struct group_arg *a = arg;
    return group_json(db, a->id, a->out);
}

static int cancel_write(sqlite3 *db, void *arg)
{
    struct group_arg *a = arg;
    sqlite3_stmt *st;
    int err = lucy_store_stmt(db,
                              "UPDATE job_groups SET cancelled_at_s = coalesce(cancelled_at_s, ?2)"
                              " WHERE id = ?1",
                              &st);
    if (err)
        return err;
    sqlite3_bind_int64(st, 1, a->id);
    sqlite3_bind_int64(st, 2, lucy_wall_ms() / 1000);
    if ((err = lucy_row_step_done(st)) != 0)
        return err;
    if (sqlite3_changes(db) == 0)
        return LUCY_ENOTFOUND;
    return lucy_jobs_drop_group(db, a->id, NULL);
}

void lucy_recordings_retranscribe(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    struct lucy_recordings *plugin = req->arg;
    json_t *body = body_object(req, resp);
    if (!body)
        return;
    struct lucy_recording_query q = {0};
    struct lucy_job_asr asr;
    if (lucy_retranscribe_check(req, resp, body, &asr) != 0 || parse_filters(body, &q, resp) != 0) {
        json_decref(body);
        return;
    }
    int rc = q.person_id ? lucy_store_read(req->ctx->store, person_read, &q.person_id) : 0;
    if (rc == LUCY_ENOTFOUND) {
        lucy_http_reply_error(resp, LUCY_HTTP_NOT_FOUND, 0,
                              "no person %lld: GET /people lists them (a merged person answers "
                              "under the id it was merged into); nothing was queued",
                              (long long)q.person_id);
        json_decref(body);
        return;
    }
    json_t *ids = json_array();
    if (rc == 0)
        rc = select_recordings(req->ctx->store, &q, ids);
    char *filter = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(body);
    struct create_arg a = {ids, &asr, filter ? filter : "{}", 0};
    if (rc == 0)
        rc = lucy_store_write(req->ctx->store, create_write, &a, 0);
    free(filter);
    json_decref(ids);
    if (rc) {
        lucy_http_reply_err(resp, rc, "cannot queue the re-transcription; retry later");
        return;
    }
    lucy_jobs_pool_wake(plugin->pool);
    json_t *out = NULL;
    struct group_arg g = {a.group_id, &out};
    rc = lucy_store_read(req->ctx->store, group_read, &g);
    if (rc)
        lucy_http_reply_err(resp, rc, "the group is queued; read it with GET /job-groups/{id}");
    else
        lucy_http_reply_json(resp, 202, out);
}

/* The {id} of /job-groups/{id}...: > 0, or 0 after a 404. */
static long long group_id_of(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    const char *s = req->params[0];
    char *end;
    errno = 0;
    long long id = strtoll(s, &end, 10);
    if (*s && !*end && !errno && id > 0 && s[0] >= '0' && s[0] <= '9')
        return id;
    lucy_http_reply_error(resp, LUCY_HTTP_NOT_FOUND, 0,
                          "no job group %.40s: use the group_id returned by POST "
                          "/recordings/retranscribe",
                          s);
    return 0;
}

/* Replies with out (taken) or rc's error. */
static void reply_group(struct lucy_http_response *resp, int rc, json_t *out, const char *id)
{
    if (rc)
        json_decref(out);
    if (rc == LUCY_ENOTFOUND)
        lucy_http_reply_error(resp, LUCY_HTTP_NOT_FOUND, 0,
                              "no job group %.40s: use the group_id returned by POST "
                              "/recordings/retranscribe",
                              id);
    else if (rc)
        lucy_http_reply_err(resp, rc, "cannot read the job group from the store; retry");
    else
        lucy_http_reply_json(resp, 200, out);
}

void lucy_job_group_get(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    long long id = group_id_of(req, resp);
    if (!id)
        return;
    json_t *out = NULL;
    struct group_arg g = {id, &out};
    int rc = lucy_store_read(req->ctx->store, group_read, &g); /* sets out: read first */
    reply_group(resp, rc, out, req->params[0]);
}

void lucy_job_group_cancel(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    long long id = group_id_of(req, resp);
    if (!id)
        return;
    json_t *out = NULL;
    struct group_arg g = {id, &out};
    int rc = lucy_store_write(req->ctx->store, cancel_write, &g, 0);
    if (rc == 0)
        rc = lucy_store_read(req->ctx->store, group_read, &g);
    reply_group(resp, rc, out, req->params[0]);
}
