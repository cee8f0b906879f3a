/*
 * tool_search.c - the `search` tool: the grouped index search of /search
 * (lucy_index_search_grouped, src/index/), with person and time filters,
 * each conversation linked as a resource (its recording, or the person
 * whose messages it is).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../error.h"
#include "../index/index.h"
#include "../lucy.h"
#include "mcp_int.h"

#define SEARCH_LIMIT_DEFAULT 10

/* Adds "uri" to a hit and links it: a recording's hit to the recording, a
 * message's to its person (a sender no person holds has no resource). */
static void link_hit(struct mcp_result *out, json_t *hit)
{
    const char *source = json_string_value(json_object_get(hit, "source"));
    json_t *person = json_object_get(hit, "person");
    char *uri = NULL;
    if (source && strcmp(source, "call_recording") == 0)
        uri = mcp_uri_recording(json_string_value(json_object_get(hit, "id")));
    else if (json_is_integer(person))
        uri = mcp_uri_person(json_integer_value(person));
    json_object_set_new(hit, "uri", uri ? json_string(uri) : json_null());
    const char *title = json_string_value(json_object_get(hit, "title"));
    mcp_link(out, uri, title ? title : json_string_value(json_object_get(hit, "id")), title,
             json_string_value(json_object_get(hit, "snippet")));
    free(uri);
}

int mcp_tool_search(struct lucy_mcp *m, json_t *vals, struct mcp_result *out)
{
    struct lucy_index *ix = m->ctx->index;
    if (!ix) {
        snprintf(out->error, sizeof out->error, "the search index is not open; retry shortly");
        return LUCY_EUNAVAIL;
    }
    struct lucy_search_query q = {
        .q = mcp_arg_str(vals, "query"),
        .source = mcp_arg_str(vals, "source"),
        .from_s = mcp_arg_int(vals, "from", INT64_MIN),
        .to_s = mcp_arg_int(vals, "to", INT64_MAX),
        .limit = (int)mcp_arg_int(vals, "limit", SEARCH_LIMIT_DEFAULT),
    };
    if (q.from_s > q.to_s) {
        snprintf(out->error, sizeof out->error,
                 "from is later than to; swap them or leave one out");
        return LUCY_EINVAL;
    }
    int64_t person = mcp_arg_int(vals, "person_id", 0);
    char **contacts = NULL, **recordings = NULL;
    int rc = 0;
    if (person) {
        rc = lucy_index_person_ids(ix, person, &contacts, &q.n_contacts, &recordings,
                                   &q.n_recordings);
        q.restrict_ids = 1;
        q.contacts = (const char *const *)contacts;
        q.recordings = (const char *const *)recordings;
    }
    struct lucy_search_result r = {0};
    if (rc == 0)
        rc = lucy_index_search_grouped(ix, &q, LUCY_SEARCH_PER_GROUP_DEFAULT, &r);
    lucy_index_strv_free(contacts);
    lucy_index_strv_free(recordings);
    if (rc == LUCY_ENOTFOUND) {
        snprintf(out->error, sizeof out->error,
                 "no person %lld; a search hit's person or list_calls gives person ids",
                 (long long)person);
        return rc;
    }
    if (rc) {
        snprintf(out->error, sizeof out->error, "the search failed (%s); retry shortly",
                 lucy_strerror(rc));
        return rc;
    }
    out->structured = lucy_search_result_json(q.q, &r, 1);
    lucy_search_result_free(&r);
    if (!out->structured) {
        snprintf(out->error, sizeof out->error, "out of memory building the result; retry");
        return LUCY_ENOMEM;
    }
    size_t i;
    json_t *hit;
    json_array_foreach(json_object_get(out->structured, "hits"), i, hit) link_hit(out, hit);
    return 0;
}
