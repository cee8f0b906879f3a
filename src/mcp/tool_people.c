/*
 * tool_people.c - the `get_person` tool and the lucy://people/{id}
 * resource: a person as src/people/ describes it (lucy_people_json) with
 * its newest calls and messages (lucy_people_timeline), each call linked to
 * its recording.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "../error.h"
#include "../lucy.h"
#include "../people/people.h"
#include "../store/store.h"
#include "mcp_int.h"

#define TIMELINE_DEFAULT 20

struct person_read {
    int64_t id;
    int limit;
    json_t *out;
};

static int read_person(sqlite3 *db, void *arg)
{
    struct person_read *a = arg;
    int rc = lucy_people_json(db, a->id, 1, &a->out);
    if (rc)
        return rc;
    json_t *items = json_array();
    int more = 0;
    struct lucy_people_timeline_query q = {
        .person = a->id, .from_ms = INT64_MIN, .to_ms = INT64_MAX, .limit = a->limit};
    rc = items ? lucy_people_timeline(db, &q, items, &more) : LUCY_ENOMEM;
    json_object_set_new(a->out, "timeline", items);
    json_object_set_new(a->out, "timeline_more", json_boolean(more));
    return rc;
}

int mcp_person_read(struct lucy_mcp *m, int64_t id, int timeline_limit, json_t **out)
{
    struct person_read a = {id, timeline_limit, NULL};
    int rc = lucy_store_read(m->ctx->store, read_person, &a);
    if (rc) {
        json_decref(a.out);
        a.out = NULL;
    }
    *out = a.out;
    return rc;
}

int mcp_tool_get_person(struct lucy_mcp *m, json_t *vals, struct mcp_result *out)
{
    int64_t id = mcp_arg_int(vals, "person_id", 0);
    json_t *p = NULL;
    int rc = mcp_person_read(m, id, (int)mcp_arg_int(vals, "timeline_limit", TIMELINE_DEFAULT), &p);
    if (rc == LUCY_ENOTFOUND) {
        snprintf(out->error, sizeof out->error,
                 "no person %lld; search hits and list_calls give person ids (a merged "
                 "person answers under the id it was merged into)",
                 (long long)id);
        return rc;
    }
    if (rc) {
        snprintf(out->error, sizeof out->error, "cannot read the person (%s); retry shortly",
                 lucy_strerror(rc));
        return rc;
    }
    char *uri = mcp_uri_person(id);
    mcp_link(out, uri, json_string_value(json_object_get(p, "name")) ?: "person", NULL,
             "the person");
    free(uri);
    size_t i;
    json_t *item;
    json_array_foreach(json_object_get(p, "timeline"), i, item)
    {
        const char *rec = json_string_value(json_object_get(item, "recording_id"));
        if (!rec)
            continue;
        char *u = mcp_uri_recording(rec);
        const char *title = json_string_value(json_object_get(item, "title"));
        mcp_link(out, u, title ?: rec, title, "a call with this person");
        free(u);
    }
    out->structured = p;
    return 0;
}
