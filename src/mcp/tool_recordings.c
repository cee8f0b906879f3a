/*
 * tool_recordings.c - the tools over call recordings, on the
 * call_recordings plugin's read functions (recording.h): `get_transcript`
 * (a recording's timed segments, or a window of them) and `list_calls`
 * (calls by start time, with person and time filters).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../error.h"
#include "../lucy.h"
#include "../people/people.h"
#include "../plugins/call_recordings/recording.h"
#include "../store/store.h"
#include "mcp_int.h"

#define CALLS_LIMIT_DEFAULT 20

/* 1 when s is 64 lowercase hex digits: a recording id (SHA-256). */
static int is_recording_id(const char *s)
{
    size_t n = 0;
    for (; s && s[n]; n++)
        if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
            return 0;
    return n == 64;
}

/* ---- get_transcript --------------------------------------------------------- */

/* The segments of transcript overlapping [t0_ms, t1_ms], and their text. */
static json_t *window(json_t *transcript, int64_t t0_ms, int64_t t1_ms, json_t **text)
{
    json_t *segments = json_array();
    size_t i, len = 0;
    json_t *s;
    json_array_foreach(json_object_get(transcript, "segments"), i, s)
    {
        if (json_integer_value(json_object_get(s, "t1_ms")) < t0_ms ||
            json_integer_value(json_object_get(s, "t0_ms")) > t1_ms)
            continue;
        json_array_append(segments, s);
        len += json_string_length(json_object_get(s, "text")) + 1;
    }
    char *joined = calloc(1, len + 1), *p = joined;
    json_array_foreach(segments, i, s)
    {
        if (!joined)
            break;
        const char *t = json_string_value(json_object_get(s, "text"));
        p += sprintf(p, "%s%s", i ? " " : "", t ? t : "");
    }
    *text = json_string(joined ? joined : "");
    free(joined);
    return segments;
}

int mcp_tool_get_transcript(struct lucy_mcp *m, json_t *vals, struct mcp_result *out)
{
    const char *id = mcp_arg_str(vals, "recording_id");
    int64_t t0_ms = mcp_arg_int(vals, "t0_ms", 0), t1_ms = mcp_arg_int(vals, "t1_ms", INT64_MAX);
    if (!is_recording_id(id)) {
        snprintf(out->error, sizeof out->error,
                 "recording_id must be 64 lowercase hex digits, as search and list_calls give it");
        return LUCY_EINVAL;
    }
    if (t0_ms > t1_ms) {
        snprintf(out->error, sizeof out->error, "t0_ms is after t1_ms; swap them");
        return LUCY_EINVAL;
    }
    json_t *doc = NULL;
    int rc = lucy_recording_json(m->ctx->store, id, &doc);
    if (rc == LUCY_ENOTFOUND) {
        snprintf(out->error, sizeof out->error,
                 "no recording %s; search or list_calls give recording ids", id);
        return rc;
    }
    if (rc) {
        snprintf(out->error, sizeof out->error, "cannot read the recording (%s); retry shortly",
                 lucy_strerror(rc));
        return rc;
    }
    json_t *transcript = json_object_get(doc, "transcript");
    if (!json_is_object(transcript)) {
        snprintf(out->error, sizeof out->error,
                 "recording %s has no transcript yet (transcript_status: %s); try again later", id,
                 json_string_value(json_object_get(doc, "transcript_status")) ?: "none");
        json_decref(doc);
        return LUCY_ENOTFOUND;
    }
    json_t *text = NULL;
    json_t *segments = window(transcript, t0_ms, t1_ms, &text);
    char *uri = mcp_uri_recording(id);
    json_t *call = json_object_get(doc, "call");
    json_t *title = json_object_get(doc, "title");
    out->structured = json_pack(
        "{s:s,s:s?,s:O,s:O,s:O,s:O,s:O,s:o,s:o,s:o,s:o}", "recording_id", id, "uri", uri, "title",
        title ?: json_null(), "started_at", json_object_get(call, "started_at") ?: json_null(),
        "duration_s", json_object_get(doc, "duration_s") ?: json_null(), "language",
        json_object_get(transcript, "language") ?: json_null(), "engine",
        json_object_get(transcript, "engine") ?: json_null(), "t0_ms",
        json_object_get(vals, "t0_ms") ? json_integer(t0_ms) : json_null(), "t1_ms",
        json_object_get(vals, "t1_ms") ? json_integer(t1_ms) : json_null(), "segments", segments,
        "text", text);
    mcp_link(out, uri, json_string_value(title) ?: id, json_string_value(title), "the recording");
    free(uri);
    json_decref(doc);
    if (!out->structured) {
        snprintf(out->error, sizeof out->error, "out of memory building the result; retry");
        return LUCY_ENOMEM;
    }
    return 0;
}

/* ---- list_calls -------------------------------------------------------------- */

/* A recording row of lucy_recording_list as a call of the tool's result. */
static json_t *call_of(json_t *rec, struct mcp_result *out)
{
    const char *id = json_string_value(json_object_get(rec, "id"));
    json_t *call = json_object_get(rec, "call"), *number = json_object_get(call, "number");
    json_t *title = json_object_get(rec, "title");
    char *uri = mcp_uri_recording(id);
    json_t *c = json_pack(
        "{s:s?,s:s?,s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:O}", "recording_id", id, "uri", uri, "title",
        title ?: json_null(), "started_at", json_object_get(call, "started_at") ?: json_null(),
        "started_at_ms", json_object_get(call, "started_at_ms") ?: json_null(), "duration_s",
        json_object_get(rec, "duration_s") ?: json_null(), "direction",
        json_object_get(call, "direction") ?: json_null(), "number",
        json_object_get(number, "e164") && !json_is_null(json_object_get(number, "e164"))
            ? json_object_get(number, "e164")
            : (json_object_get(number, "raw") ?: json_null()),
        "person", json_object_get(call, "person") ?: json_null(), "transcript_status",
        json_object_get(rec, "transcript_status") ?: json_null());
    mcp_link(out, uri, json_string_value(title) ?: id, json_string_value(title),
             json_string_value(json_object_get(call, "started_at")));
    free(uri);
    return c;
}

static int person_exists(sqlite3 *db, void *arg)
{
    json_t *p = NULL;
    int rc = lucy_people_json(db, *(int64_t *)arg, 0, &p);
    json_decref(p);
    return rc;
}

int mcp_tool_list_calls(struct lucy_mcp *m, json_t *vals, struct mcp_result *out)
{
    const char *order = mcp_arg_str(vals, "order");
    struct lucy_recording_query q = {
        .sort = order && strcmp(order, "oldest") == 0 ? "started_at" : "-started_at",
        .cursor = mcp_arg_str(vals, "cursor"),
        .limit = (int)mcp_arg_int(vals, "limit", CALLS_LIMIT_DEFAULT),
        .has_from = json_object_get(vals, "from") != NULL,
        .has_to = json_object_get(vals, "to") != NULL,
        .person_id = mcp_arg_int(vals, "person_id", 0),
    };
    /* Unix seconds to ms, the bounds kept inside int64 and inclusive. */
    int64_t from_s = mcp_arg_int(vals, "from", 0), to_s = mcp_arg_int(vals, "to", 0);
    q.from_ms = from_s < INT64_MIN / 1000 ? INT64_MIN : from_s * 1000;
    q.to_ms = to_s > INT64_MAX / 1000 - 1 ? INT64_MAX : to_s * 1000 + 999;
    if (q.has_from && q.has_to && q.from_ms > q.to_ms) {
        snprintf(out->error, sizeof out->error,
                 "from is later than to; swap them or leave one out");
        return LUCY_EINVAL;
    }
    if (q.cursor && !is_recording_id(q.cursor)) {
        snprintf(out->error, sizeof out->error,
                 "cursor must be the next_cursor of the previous page; leave it out to start");
        return LUCY_EINVAL;
    }
    int rc = q.person_id ? lucy_store_read(m->ctx->store, person_exists, &q.person_id) : 0;
    if (rc == LUCY_ENOTFOUND) {
        snprintf(out->error, sizeof out->error,
                 "no person %lld; search hits and get_person give person ids",
                 (long long)q.person_id);
        return rc;
    }
    json_t *page = NULL;
    if (rc == 0)
        rc = lucy_recording_list(m->ctx->store, &q, &page);
    if (rc) {
        snprintf(out->error, sizeof out->error, "cannot read the calls (%s); retry shortly",
                 lucy_strerror(rc));
        return rc;
    }
    json_t *calls = json_array();
    size_t i;
    json_t *rec;
    json_array_foreach(json_object_get(page, "recordings"), i, rec)
        json_array_append_new(calls, call_of(rec, out));
    out->structured = json_pack("{s:o,s:O}", "calls", calls, "next_cursor",
                                json_object_get(page, "next_cursor") ?: json_null());
    json_decref(page);
    if (!out->structured) {
        snprintf(out->error, sizeof out->error, "out of memory building the result; retry");
        return LUCY_ENOMEM;
    }
    return 0;
}
