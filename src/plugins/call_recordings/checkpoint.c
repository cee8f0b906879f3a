/*
 * checkpoint.c - the one writer and reader of `transcript_chunks` (see
 * checkpoint.h). A chunk's segments are kept as the JSON of
 * lucy_segments_json() (transcript.c), the same form the segments table
 * keeps words in.
 */
#include "checkpoint.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../../clock.h"
#include "../../error.h"
#include "../../store/row.h"
#include "../../store/store.h"
#include "transcript.h"

struct put_arg {
    long long job_id;
    int channel;
    const struct lucy_chunk *c;
    const char *engine, *model, *segments;
    double wall_s;
};

static int put_write(sqlite3 *db, void *arg)
{
    const struct put_arg *a = arg;
    sqlite3_stmt *st;
    int err = lucy_store_stmt(db,
                              "INSERT OR REPLACE INTO transcript_chunks (job_id, channel,"
                              " first_sample, n_samples, engine, model, segments, wall_s,"
                              " done_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                              &st);
    if (err)
        return err;
    sqlite3_bind_int64(st, 1, a->job_id);
    sqlite3_bind_int(st, 2, a->channel);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)a->c->first_sample);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)a->c->n_samples);
    sqlite3_bind_text(st, 5, a->engine, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, a->model, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, a->segments, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 8, a->wall_s);
    sqlite3_bind_int64(st, 9, lucy_wall_ms());
    return lucy_row_step_done(st);
}

int lucy_checkpoint_put(struct lucy_store *store, long long job_id, int channel,
                        const struct lucy_chunk *c, const struct lucy_transcript *t,
                        const char *engine, const char *model, double wall_s)
{
    json_t *j = lucy_segments_json(t);
    char *segments = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!segments)
        return LUCY_ENOMEM;
    struct put_arg a = {job_id, channel, c, engine, model ? model : "", segments, wall_s};
    /* No timeout: a lives on this stack (store.h). */
    int rc = lucy_store_write(store, put_write, &a, 0);
    free(segments);
    return rc;
}

struct load_arg {
    long long job_id;
    const char *engine;
    struct lucy_checkpoint *v;
    size_t n;
};

static int load_read(sqlite3 *db, void *arg)
{
    struct load_arg *a = arg;
    sqlite3_stmt *st;
    int err = lucy_store_stmt(db,
                              "SELECT channel, first_sample, n_samples, model, segments, wall_s"
                              " FROM transcript_chunks WHERE job_id = ?1 AND engine = ?2"
                              " ORDER BY channel, first_sample",
                              &st);
    if (err)
        return err;
    sqlite3_bind_int64(st, 1, a->job_id);
    sqlite3_bind_text(st, 2, a->engine, -1, SQLITE_STATIC);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct lucy_checkpoint *v = realloc(a->v, (a->n + 1) * sizeof *v);
        if (!v) {
            sqlite3_reset(st);
            return LUCY_ENOMEM;
        }
        a->v = v;
        struct lucy_checkpoint *c = &v[a->n];
        memset(c, 0, sizeof *c);
        c->channel = sqlite3_column_int(st, 0);
        c->first_sample = (size_t)sqlite3_column_int64(st, 1);
        c->n_samples = (size_t)sqlite3_column_int64(st, 2);
        lucy_row_copy(st, 3, c->model, sizeof c->model);
        c->wall_s = sqlite3_column_double(st, 5);
        a->n++;
        json_t *j = json_loads((const char *)sqlite3_column_text(st, 4), 0, NULL);
        err = j ? lucy_segments_from_json(j, &c->seg) : 0; /* unreadable: an empty chunk */
        json_decref(j);
        if (err) {
            sqlite3_reset(st);
            return err;
        }
    }
    return rc == SQLITE_DONE ? 0 : lucy_store_err(rc);
}

int lucy_checkpoint_load(struct lucy_store *store, long long job_id, const char *engine,
                         struct lucy_checkpoint **out, size_t *n)
{
    struct load_arg a = {job_id, engine, NULL, 0};
    int rc = lucy_store_read(store, load_read, &a);
    if (rc) {
        lucy_checkpoints_free(a.v, a.n);
        a.v = NULL;
        a.n = 0;
    }
    *out = a.v;
    *n = a.n;
    return rc;
}

void lucy_checkpoints_free(struct lucy_checkpoint *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        lucy_transcript_free(&v[i].seg);
    free(v);
}

int lucy_checkpoint_clear(sqlite3 *db, long long job_id)
{
    sqlite3_stmt *st;
    int err = lucy_store_stmt(db, "DELETE FROM transcript_chunks WHERE job_id = ?1", &st);
    if (err)
        return err;
    sqlite3_bind_int64(st, 1, job_id);
    return lucy_row_step_done(st);
}
