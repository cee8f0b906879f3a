/*
 * qdrant.c - doctor's Qdrant check: reachable, the collection's status,
 * points, data size (when Qdrant reports it) and payload indexes still to
 * be created.
 *
 * It reads the /rag/stats document through src/index/ (lucy_index_stats on
 * the Qdrant backend: GET /collections/{name} with the configured URL, key
 * and timeout) - the same numbers `lucy stats` and GET /rag/stats show. The
 * backend learns which payload indexes exist from the collection's
 * payload_schema during a stats call and reports them in the NEXT one
 * (in a fresh process it has not run `ensure`), so doctor asks twice.
 * Nothing is created or changed.
 */
#include <stdio.h>
#include <string.h>

#include "../config.h"
#include "../index/index.h"
#include "doctor.h"

/* "a, b, c" from a JSON array of strings. */
static void join(const json_t *arr, char *buf, size_t len)
{
    size_t i, used = 0;
    json_t *v;
    buf[0] = '\0';
    json_array_foreach(arr, i, v)
    {
        if (used >= len)
            break;
        used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? ", " : "",
                                 json_string_value(v) ? json_string_value(v) : "?");
    }
}

void lucy_doctor_check_qdrant(struct lucy_doctor *d, struct lucy_doctor_result *r)
{
    const struct lucy_config *cfg = d->cfg;
    if (!cfg->qdrant_url || !*cfg->qdrant_url) {
        json_object_set_new(r->details, "configured", json_false());
        lucy_doctor_say(r, "not configured (QDRANT_URL unset): the search index is SQLite FTS5 "
                           "in the local store");
        return;
    }
    json_object_set_new(r->details, "configured", json_true());
    json_object_set_new(r->details, "url", json_string(cfg->qdrant_url));
    json_object_set_new(r->details, "collection", json_string(cfg->qdrant_collection));
    if (!d->ix) {
        json_object_set_new(r->details, "checked", json_false());
        lucy_doctor_say(r, "not checked: %.900s",
                        d->index_error[0] ? d->index_error : "the local store is missing");
        lucy_doctor_raise(r, LUCY_DOCTOR_WARN,
                          d->store ? LUCY_REMEDY_QDRANT_UNREACHABLE : LUCY_REMEDY_STORE_MISSING);
        return;
    }
    json_t *s = NULL;
    int rc = lucy_index_stats(d->ix, &s);
    if (rc == 0) {
        json_decref(s);
        s = NULL;
        rc = lucy_index_stats(d->ix, &s);
    }
    if (rc) {
        lucy_doctor_say(r, "cannot read the index statistics");
        lucy_doctor_raise(r, LUCY_DOCTOR_CRITICAL, LUCY_REMEDY_STORE_UNREADABLE);
        return;
    }
    json_t *storage = json_object_get(s, "storage"); /* the backend's own fields */
    int reachable = json_is_true(json_object_get(storage, "reachable"));
    const char *qstatus = json_string_value(json_object_get(storage, "qdrant_status"));
    json_t *pi = json_object_get(storage, "payload_indexes");
    json_t *pending = json_object_get(pi, "pending");
    json_t *points = json_object_get(storage, "points_count");
    json_t *disk = json_object_get(storage, "disk_bytes");
    const char *reason = json_string_value(json_object_get(s, "status_reason"));

    json_object_set_new(r->details, "reachable", json_boolean(reachable));
    json_object_set_new(r->details, "collection_status",
                        qstatus ? json_string(qstatus) : json_null());
    json_t *optimizer = json_object_get(storage, "optimizer_status");
    json_object_set_new(r->details, "optimizer_status",
                        optimizer ? json_incref(optimizer) : json_null());
    json_object_set_new(r->details, "points",
                        json_is_integer(points) ? json_incref(points) : json_null());
    json_object_set_new(r->details, "data_size",
                        json_is_integer(disk)
                            ? lucy_doctor_size_json((uint64_t)json_integer_value(disk))
                            : json_null());
    json_object_set_new(r->details, "payload_indexes_pending",
                        pending ? json_incref(pending) : json_array());
    json_t *outbox = json_object_get(s, "pending_count");
    json_object_set_new(r->details, "outbox_pending", outbox ? json_incref(outbox) : json_null());
    json_object_set_new(r->details, "status_reason", json_string(reason ? reason : ""));

    if (!reachable) {
        lucy_doctor_say(r, "Qdrant at %.400s does not answer: %.600s", cfg->qdrant_url,
                        reason ? reason : "");
        lucy_doctor_raise(r, LUCY_DOCTOR_CRITICAL, LUCY_REMEDY_QDRANT_UNREACHABLE);
        json_decref(s);
        return;
    }
    if (!qstatus) {
        lucy_doctor_say(r, "Qdrant at %.400s answers, but collection %.200s does not exist",
                        cfg->qdrant_url, cfg->qdrant_collection);
        lucy_doctor_raise(r, LUCY_DOCTOR_WARN, LUCY_REMEDY_QDRANT_NO_COLLECTION);
        json_decref(s);
        return;
    }
    char size[32] = "not reported";
    if (json_is_integer(disk))
        lucy_doctor_human((uint64_t)json_integer_value(disk), size, sizeof size);
    lucy_doctor_say(r, "collection %.200s at %.400s: status %s, %lld points, data size %s",
                    cfg->qdrant_collection, cfg->qdrant_url, qstatus,
                    (long long)json_integer_value(points), size);
    if (strcmp(qstatus, "red") == 0) {
        lucy_doctor_say(r, "%.800s", reason ? reason : "");
        lucy_doctor_raise(r, LUCY_DOCTOR_CRITICAL, LUCY_REMEDY_QDRANT_RED);
    }
    if (json_array_size(pending) > 0) {
        char names[512];
        join(pending, names, sizeof names);
        lucy_doctor_say(r, "payload indexes not created yet: %s", names);
        lucy_doctor_raise(r, LUCY_DOCTOR_WARN, LUCY_REMEDY_QDRANT_INDEXES_PENDING);
    }
    json_decref(s);
}
