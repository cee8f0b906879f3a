/*
 * resources.c - lucy's MCP resources: lucy://recordings/{id} (the
 * recording's document with its transcript, as GET /recordings/{id}) and
 * lucy://people/{id} (the person with its timeline, as get_person). Both
 * are templates; resources/list pages through the recordings, newest call
 * first (persons are reached from hits and calls); a cursor lucy did not
 * give is -32602, as MCP asks, not a silently empty or restarted list.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../error.h"
#include "../http/http.h"
#include "../lucy.h"
#include "../plugins/call_recordings/recording.h"
#include "mcp_int.h"

#define RECORDING_PREFIX "lucy://recordings/"
#define PERSON_PREFIX    "lucy://people/"
#define LIST_PAGE        50
#define PERSON_TIMELINE  50

char *mcp_uri_recording(const char *id)
{
    char *uri = NULL;
    return id && asprintf(&uri, RECORDING_PREFIX "%s", id) >= 0 ? uri : NULL;
}

char *mcp_uri_person(int64_t id)
{
    char *uri = NULL;
    return asprintf(&uri, PERSON_PREFIX "%lld", (long long)id) >= 0 ? uri : NULL;
}

json_t *mcp_resources_templates(struct lucy_mcp *m, json_t *params, int *code, char *msg,
                                size_t msglen)
{
    (void)m, (void)params, (void)code, (void)msg, (void)msglen;
    return json_pack(
        "{s:[{s:s,s:s,s:s,s:s,s:s},{s:s,s:s,s:s,s:s,s:s}]}", "resourceTemplates", "uriTemplate",
        RECORDING_PREFIX "{id}", "name", "recording", "title", "A call recording", "description",
        "the recording (64 hex digit id): call, paths, and its transcript as timed segments",
        "mimeType", "application/json", "uriTemplate", PERSON_PREFIX "{id}", "name", "person",
        "title", "A person", "description",
        "the person (numeric id): names, phone numbers, WhatsApp ids, recent calls and messages",
        "mimeType", "application/json");
}

/* A cursor lucy issued is a recording's id (the last of a page): 64
 * lowercase hex digits. */
static int cursor_shaped(const char *s)
{
    return s && strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

/* Whether the recording a cursor names exists: asked only when a page
 * after it is empty, because a cursor naming no recording selects nothing
 * and would end the listing silently. 0, LUCY_ENOTFOUND or a store error. */
static int cursor_known(struct lucy_mcp *m, const char *cursor)
{
    struct lucy_recording_info info;
    int rc = lucy_recording_info_load(m->ctx->store, cursor, &info);
    if (rc == 0)
        lucy_recording_info_free(&info);
    return rc;
}

json_t *mcp_resources_list(struct lucy_mcp *m, json_t *params, int *code, char *msg, size_t msglen)
{
    const json_t *given = json_object_get(params, "cursor");
    const char *cursor = json_string_value(given);
    struct lucy_recording_query q = {.sort = "-started_at", .cursor = cursor, .limit = LIST_PAGE};
    json_t *page = NULL;
    int rc = given && !json_is_null(given) && !cursor_shaped(cursor)
                 ? LUCY_EINVAL
                 : lucy_recording_list(m->ctx->store, &q, &page);
    if (rc == 0 && cursor && json_array_size(json_object_get(page, "recordings")) == 0)
        rc = cursor_known(m, cursor);
    if (rc == LUCY_EINVAL || rc == LUCY_ENOTFOUND) { /* MCP: an invalid cursor is -32602 */
        json_decref(page);
        *code = MCP_INVALID_PARAMS;
        snprintf(msg, msglen,
                 "params.cursor is not a cursor lucy gave%s: pass the nextCursor of the previous "
                 "resources/list page, or leave it out to start from the newest call",
                 rc == LUCY_ENOTFOUND ? " (or its recording was forgotten since)" : "");
        return NULL;
    }
    if (rc) {
        json_decref(page);
        *code = MCP_INTERNAL_ERROR;
        snprintf(msg, msglen, "cannot read the recordings (%s); retry shortly", lucy_strerror(rc));
        return NULL;
    }
    json_t *list = json_array();
    size_t i;
    json_t *rec;
    json_array_foreach(json_object_get(page, "recordings"), i, rec)
    {
        const char *id = json_string_value(json_object_get(rec, "id"));
        const char *title = json_string_value(json_object_get(rec, "title"));
        const char *when =
            json_string_value(json_object_get(json_object_get(rec, "call"), "started_at"));
        char *uri = mcp_uri_recording(id);
        json_t *r = json_pack("{s:s?,s:s,s:s}", "uri", uri, "name", title ? title : id, "mimeType",
                              "application/json");
        if (r && title)
            json_object_set_new(r, "title", json_string(title));
        if (r && when)
            json_object_set_new(r, "description", json_sprintf("call recording, %s", when));
        free(uri);
        json_array_append_new(list, r);
    }
    json_t *out = json_pack("{s:o}", "resources", list);
    json_t *next = json_object_get(page, "next_cursor");
    if (out && json_is_string(next))
        json_object_set(out, "nextCursor", next);
    json_decref(page);
    return out;
}

/* One resource's contents: its JSON document as text. */
static json_t *contents(const char *uri, json_t *doc /* stolen */)
{
    char *text = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER | LUCY_JSON_REALS);
    json_decref(doc);
    json_t *out = text ? json_pack("{s:[{s:s,s:s,s:s}]}", "contents", "uri", uri, "mimeType",
                                   "application/json", "text", text)
                       : NULL;
    free(text);
    return out;
}

json_t *mcp_resources_read(struct lucy_mcp *m, json_t *params, int *code, char *msg, size_t msglen)
{
    const char *uri = json_string_value(json_object_get(params, "uri"));
    json_t *doc = NULL;
    int rc = LUCY_ENOTFOUND;
    if (!uri) {
        *code = MCP_INVALID_PARAMS;
        snprintf(msg, msglen,
                 "params.uri is required: a lucy://recordings/{id} or "
                 "lucy://people/{id} URI");
        return NULL;
    }
    if (strncmp(uri, RECORDING_PREFIX, strlen(RECORDING_PREFIX)) == 0) {
        const char *id = uri + strlen(RECORDING_PREFIX);
        if (strlen(id) == 64 && strspn(id, "0123456789abcdef") == 64)
            rc = lucy_recording_json(m->ctx->store, id, &doc);
    } else if (strncmp(uri, PERSON_PREFIX, strlen(PERSON_PREFIX)) == 0) {
        const char *id = uri + strlen(PERSON_PREFIX);
        size_t n = strspn(id, "0123456789");
        if (n && n <= 18 && !id[n] && id[0] != '0')
            rc = mcp_person_read(m, strtoll(id, NULL, 10), PERSON_TIMELINE, &doc);
    }
    if (rc == LUCY_ENOTFOUND) {
        *code = MCP_RESOURCE_NOT_FOUND;
        snprintf(msg, msglen, "no resource %.200s; resources/templates/list shows the URI forms",
                 uri);
        return NULL;
    }
    if (rc) {
        *code = MCP_INTERNAL_ERROR;
        snprintf(msg, msglen, "cannot read %.200s (%s); retry shortly", uri, lucy_strerror(rc));
        return NULL;
    }
    return contents(uri, doc);
}
