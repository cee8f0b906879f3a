/*
 * scan_store.c - the scanner's rows: the one writer of tables
 * `recordings`, `recording_paths` and `scan_roots` (migration 20) and of
 * the last scan summary in `meta` (see scan_int.h).
 *
 * A scan reads what the store knows about a root's paths once (one range
 * query on the recording_paths primary key, into a hash map keyed by the
 * path's bytes), then writes its results in batches, one store write per
 * batch. A recording row is inserted the first time its content is seen,
 * with its transcription job (lucy_jobs_enqueue) in the same transaction,
 * so neither exists without the other. A recording's scan_status follows
 * the presence of its paths: ok when one is present, else unavailable when
 * one's root is gone, else missing.
 *
 * It also writes `recording_calls` (migration 44): the call of a
 * recording is read by the scanner from one of its paths (scan.c) and
 * stored here when that path is the recording's primary one
 * (lucy_scan_primary_better(), the one rule) or the recording has no call
 * yet; its title is lucy_call_title()'s. When a call's started_at changes,
 * the recording's search documents get the new date (transcript.c).
 *
 * The SQL names statuses and presences literally (the columns hold the
 * names and their CHECK lists them); C code uses the enums of scan_int.h.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../clock.h"
#include "../../error.h"
#include "../../people/people.h"
#include "../../store/tombstones.h"
#include "../../store/row.h"
#include "../../store/store.h"
#include "jobs.h"
#include "ledger.h"
#include "scan_int.h"
#include "transcript.h"

/* ---- names ---------------------------------------------------------------- */

static const char *const path_statuses[LUCY_SCAN_PATH_N_STATUSES] = {
    [LUCY_SCAN_PATH_RECORDING] = "recording",
    [LUCY_SCAN_PATH_CORRUPT] = "corrupt",
    [LUCY_SCAN_PATH_UNSUPPORTED] = "unsupported",
    [LUCY_SCAN_PATH_LOCKED] = "locked",
    [LUCY_SCAN_PATH_PERMISSION_DENIED] = "permission_denied",
    [LUCY_SCAN_PATH_IO_ERROR] = "io_error",
};

static const char *const presences[LUCY_SCAN_N_PRESENCES] = {
    [LUCY_SCAN_PRESENCE_PRESENT] = "present",
    [LUCY_SCAN_PRESENCE_MISSING] = "missing",
    [LUCY_SCAN_PRESENCE_UNAVAILABLE] = "unavailable",
};

const char *lucy_scan_path_status_name(enum lucy_scan_path_status s)
{
    return (unsigned)s < LUCY_SCAN_PATH_N_STATUSES ? path_statuses[s] : "io_error";
}

/* The index of text in names[n]; fallback when it is none of them (the
 * columns' CHECK lists only these names). */
static int name_index(const char *const *names, int n, const unsigned char *text, int fallback)
{
    for (int i = 0; text && i < n; i++)
        if (strcmp((const char *)text, names[i]) == 0)
            return i;
    return fallback;
}

/* ---- the known paths of one root ------------------------------------------ */

static uint64_t path_hash(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

struct lucy_scan_known *lucy_scan_known_find(const struct lucy_scan_known_map *m, const char *path,
                                             size_t len)
{
    if (!m->nslots)
        return NULL;
    for (size_t i = path_hash(path, len) & (m->nslots - 1); m->slots[i];
         i = (i + 1) & (m->nslots - 1)) {
        struct lucy_scan_known *k = &m->rows[m->slots[i] - 1];
        if (k->path_len == len && memcmp(k->path, path, len) == 0)
            return k;
    }
    return NULL;
}

static int known_index(struct lucy_scan_known_map *m)
{
    size_t nslots = 64;
    while (nslots < m->n * 2)
        nslots *= 2;
    m->slots = calloc(nslots, sizeof *m->slots);
    if (!m->slots)
        return LUCY_ENOMEM;
    m->nslots = nslots;
    for (size_t r = 0; r < m->n; r++) {
        size_t i = path_hash(m->rows[r].path, m->rows[r].path_len) & (nslots - 1);
        while (m->slots[i])
            i = (i + 1) & (nslots - 1);
        m->slots[i] = r + 1;
    }
    return 0;
}

void lucy_scan_known_free(struct lucy_scan_known_map *m)
{
    for (size_t i = 0; i < m->n; i++)
        free(m->rows[i].path);
    free(m->rows);
    free(m->slots);
    memset(m, 0, sizeof *m);
}

/* The paths below a root, as a range of the recording_paths primary key:
 * [root + "/", root + "0") - '0' follows '/' in byte order - so a path is
 * found whichever root it was stored under (roots may nest). */
struct path_range {
    char lo[PATH_MAX + 2]; /* root + "/" */
    char hi[PATH_MAX + 2]; /* root + "0" */
};

static int path_range(struct path_range *r, const char *root)
{
    size_t n = strlen(root);
    while (n > 0 && root[n - 1] == '/')
        n--;
    if (n + 2 > sizeof r->lo)
        return LUCY_EINVAL;
    memcpy(r->lo, root, n);
    memcpy(r->lo + n, "/", 2);
    memcpy(r->hi, root, n);
    memcpy(r->hi + n, "0", 2);
    return 0;
}

static void bind_range(sqlite3_stmt *st, int idx, const struct path_range *r)
{
    sqlite3_bind_blob(st, idx, r->lo, (int)strlen(r->lo), SQLITE_STATIC);
    sqlite3_bind_blob(st, idx + 1, r->hi, (int)strlen(r->hi), SQLITE_STATIC);
}

struct load_arg {
    const struct path_range *range;  /* the root's paths */
    struct lucy_scan_known_map *map; /* filled */
};

static int load_known(sqlite3 *db, void *argp)
{
    struct load_arg *arg = argp;
    struct lucy_scan_known_map *m = arg->map;
    sqlite3_stmt *st;
    int err = lucy_store_stmt(
        db,
        "SELECT p.path, p.size, p.mtime_ns, p.inode, p.status, p.presence,"
        " coalesce(p.recording_id, ''), coalesce(p.errno_name, ''),"
        " p.attempts,"
        " coalesce(p.next_retry_s, 0), p.ctime_ns,"
        " c.recording_id IS NOT NULL, c.path = p.path,"
        " coalesce(cp.presence != 'missing', 0), cp.path, coalesce(c.sidecar_ctime_ns, 0),"
        " EXISTS (SELECT 1 FROM tombstones t WHERE t.kind = 'recording'"
        "  AND t.key = p.recording_id)"
        " FROM recording_paths p"
        " LEFT JOIN recording_calls c ON c.recording_id = p.recording_id"
        " LEFT JOIN recording_paths cp ON cp.path = c.path"
        " WHERE p.path >= ?1 AND p.path < ?2",
        &st);
    if (err)
        return err;
    bind_range(st, 1, arg->range);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (m->n == m->cap) {
            size_t cap = m->cap ? m->cap * 2 : 256;
            struct lucy_scan_known *rows = realloc(m->rows, cap * sizeof *rows);
            if (!rows)
                return LUCY_ENOMEM;
            m->rows = rows;
            m->cap = cap;
        }
        struct lucy_scan_known *k = &m->rows[m->n];
        memset(k, 0, sizeof *k);
        int len = sqlite3_column_bytes(st, 0);
        k->path = malloc((size_t)len + 1);
        if (!k->path)
            return LUCY_ENOMEM;
        if (len)
            memcpy(k->path, sqlite3_column_blob(st, 0), (size_t)len);
        k->path[len] = '\0';
        k->path_len = (size_t)len;
        k->size = sqlite3_column_int64(st, 1);
        k->mtime_ns = sqlite3_column_int64(st, 2);
        k->inode = sqlite3_column_int64(st, 3);
        k->status = name_index(path_statuses, LUCY_SCAN_PATH_N_STATUSES, sqlite3_column_text(st, 4),
                               LUCY_SCAN_PATH_IO_ERROR);
        k->presence = name_index(presences, LUCY_SCAN_N_PRESENCES, sqlite3_column_text(st, 5),
                                 LUCY_SCAN_PRESENCE_MISSING);
        lucy_row_copy(st, 6, k->recording_id, sizeof k->recording_id);
        lucy_row_copy(st, 7, k->errno_name, sizeof k->errno_name);
        k->attempts = sqlite3_column_int(st, 8);
        k->next_retry_s = sqlite3_column_int64(st, 9);
        k->ctime_ns = sqlite3_column_int64(st, 10);
        k->has_call = sqlite3_column_int(st, 11);
        k->is_call_path = sqlite3_column_int(st, 12);
        k->call_path_alive = sqlite3_column_int(st, 13);
        k->call_path_secondary = sqlite3_column_type(st, 14) != SQLITE_NULL &&
                                 lucy_scan_path_is_secondary(sqlite3_column_blob(st, 14),
                                                             (size_t)sqlite3_column_bytes(st, 14));
        k->sidecar_ctime_ns = sqlite3_column_int64(st, 15);
        k->forgotten = sqlite3_column_int(st, 16);
        m->n++;
    }
    return rc == SQLITE_DONE ? known_index(m) : lucy_store_err(rc);
}

int lucy_scan_known_load(struct lucy_store *store, const char *root,
                         struct lucy_scan_known_map *map)
{
    struct path_range range;
    int rc = path_range(&range, root);
    struct load_arg la = {&range, map};
    return rc ? rc : lucy_store_read(store, load_known, &la);
}

int lucy_scan_ledger_load(struct lucy_store *store, const char *root, struct lucy_ledger_map *map)
{
    struct path_range range;
    int rc = path_range(&range, root);
    return rc ? rc : lucy_ledger_map_load(store, range.lo, range.hi, map);
}

/* ---- a batch of results ------------------------------------------------------ */

void lucy_scan_item_clear(struct lucy_scan_item *it)
{
    free(it->path);
    free(it->display);
    free(it->last_error);
    free(it->call);
    lucy_scan_probe_clear(&it->probe);
    memset(it, 0, sizeof *it);
}

/* Sets recordings.scan_status of id from the presence of its paths. */
static int rate_recording(sqlite3 *db, const char *id, int64_t now_s)
{
    if (!id || !id[0])
        return 0;
    sqlite3_stmt *st;
    int err = lucy_store_stmt(db,
                              "UPDATE recordings SET scan_status = CASE"
                              " WHEN EXISTS (SELECT 1 FROM recording_paths WHERE recording_id = ?1"
                              "  AND presence = 'present') THEN 'ok'"
                              " WHEN EXISTS (SELECT 1 FROM recording_paths WHERE recording_id = ?1"
                              "  AND presence = 'unavailable') THEN 'unavailable'"
                              " ELSE 'missing' END, updated_at_s = ?2 WHERE id = ?1",
                              &st);
    if (err)
        return err;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now_s);
    return lucy_row_step_done(st);
}

/* Inserts the recording the first time its content is seen, with its
 * transcription job in the same transaction. */
static int insert_recording(sqlite3 *db, const struct lucy_scan_item *it, int64_t now_s)
{
    sqlite3_stmt *st;
    int err = lucy_store_stmt(
        db,
        "INSERT INTO recordings (id, size, mtime_ns, duration_s, codec, format, sample_rate,"
        " channels, bit_rate, tags, scan_status, warning, first_seen_s, updated_at_s)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'ok', ?11, ?12, ?12)"
        " ON CONFLICT (id) DO NOTHING",
        &st);
    if (err)
        return err;
    const struct lucy_scan_probe *p = &it->probe;
    char *tags = json_dumps(p->tags, JSON_COMPACT);
    sqlite3_bind_text(st, 1, it->recording_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, it->size);
    sqlite3_bind_int64(st, 3, it->mtime_ns);
    if (p->duration_s >= 0)
        sqlite3_bind_double(st, 4, p->duration_s);
    sqlite3_bind_text(st, 5, p->codec, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, p->format, -1, SQLITE_STATIC);
    if (p->sample_rate > 0)
        sqlite3_bind_int(st, 7, p->sample_rate);
    if (p->channels > 0)
        sqlite3_bind_int(st, 8, p->channels);
    if (p->bit_rate > 0)
        sqlite3_bind_int64(st, 9, p->bit_rate);
    sqlite3_bind_text(st, 10, tags ? tags : "{}", -1, SQLITE_TRANSIENT);
    if (p->warning[0])
        sqlite3_bind_text(st, 11, p->warning, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 12, now_s);
    err = lucy_row_step_done(st);
    free(tags);
    if (err == 0 && sqlite3_changes(db) == 1)
        err = lucy_jobs_enqueue(db, it->recording_id, NULL);
    return err;
}

static int upsert_path(sqlite3 *db, const struct lucy_scan_item *it, const char *root,
                       int64_t now_s)
{
    sqlite3_stmt *st;
    /* ?14 = keep the path's recording_id (a failure says nothing about content) */
    int err = lucy_store_stmt(
        db,
        "INSERT INTO recording_paths (path, display_path, root, recording_id, size, mtime_ns,"
        " inode, status, presence, last_error, errno_name, locked_since_s, attempts,"
        " next_retry_s, first_seen_s, updated_at_s, ctime_ns)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'present', ?9, ?10,"
        "  CASE WHEN ?8 = 'locked' THEN ?13 END, ?11, ?12, ?13, ?13, ?15)"
        " ON CONFLICT (path) DO UPDATE SET display_path = excluded.display_path,"
        " root = excluded.root,"
        " recording_id = CASE WHEN ?14 THEN recording_paths.recording_id"
        "  ELSE excluded.recording_id END,"
        " size = excluded.size, mtime_ns = excluded.mtime_ns, inode = excluded.inode,"
        " ctime_ns = excluded.ctime_ns,"
        " status = excluded.status, presence = 'present', last_error = excluded.last_error,"
        " errno_name = excluded.errno_name,"
        " locked_since_s = CASE WHEN excluded.status != 'locked' THEN NULL"
        "  WHEN recording_paths.status = 'locked' THEN recording_paths.locked_since_s"
        "  ELSE excluded.locked_since_s END,"
        " attempts = excluded.attempts, next_retry_s = excluded.next_retry_s,"
        " updated_at_s = excluded.updated_at_s",
        &st);
    if (err)
        return err;
    sqlite3_bind_blob(st, 1, it->path, (int)it->path_len, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, it->display, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, root, (int)strlen(root), SQLITE_STATIC);
    if (it->recording_id[0])
        sqlite3_bind_text(st, 4, it->recording_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, it->size);
    sqlite3_bind_int64(st, 6, it->mtime_ns);
    sqlite3_bind_int64(st, 7, it->inode);
    sqlite3_bind_text(st, 8, lucy_scan_path_status_name(it->status), -1, SQLITE_STATIC);
    if (it->last_error)
        sqlite3_bind_text(st, 9, it->last_error, -1, SQLITE_STATIC);
    if (it->errno_name)
        sqlite3_bind_text(st, 10, it->errno_name, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 11, it->attempts);
    if (it->next_retry_s)
        sqlite3_bind_int64(st, 12, it->next_retry_s);
    sqlite3_bind_int64(st, 13, now_s);
    sqlite3_bind_int(st, 14, it->keep_recording);
    sqlite3_bind_int64(st, 15, it->ctime_ns);
    return lucy_row_step_done(st);
}

static int set_presence(sqlite3 *db, const struct lucy_scan_item *it,
                        enum lucy_scan_presence presence, int64_t now_s)
{
    sqlite3_stmt *st;
    int err = lucy_store_stmt(
        db, "UPDATE recording_paths SET presence = ?2, updated_at_s = ?3 WHERE path = ?1", &st);
    if (err)
        return err;
    sqlite3_bind_blob(st, 1, it->path, (int)it->path_len, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, presences[presence], -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now_s);
    return lucy_row_step_done(st);
}

/* ---- the call ------------------------------------------------------------ */

int lucy_scan_primary_better(const char *a, size_t a_len, int present_a, int64_t first_seen_a,
                             const char *b, size_t b_len, int present_b, int64_t first_seen_b)
{
    if (present_a != present_b)
        return present_a;
    int sec_a = lucy_scan_path_is_secondary(a, a_len),
        sec_b = lucy_scan_path_is_secondary(b, b_len);
    if (sec_a != sec_b)
        return !sec_a;
    if (first_seen_a != first_seen_b)
        return first_seen_a < first_seen_b;
    size_t n = a_len < b_len ? a_len : b_len;
    int c = memcmp(a, b, n);
    return c ? c < 0 : a_len < b_len;
}

/* 1 when it's path is the primary path of its recording (its path row is
 * already written), else 0; or a negative store error. */
static int is_primary(sqlite3 *db, const struct lucy_scan_item *it)
{
    sqlite3_stmt *st;
    int err = lucy_store_stmt(db,
                              "SELECT path, presence = 'present', first_seen_s FROM recording_paths"
                              " WHERE recording_id = ?1",
                              &st);
    if (err)
        return err;
    sqlite3_bind_text(st, 1, it->recording_id, -1, SQLITE_STATIC);
    int rc, mine_present = 1;
    int64_t mine_first = INT64_MAX;
    /* This path's own row first, then every other against it. */
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        if ((size_t)sqlite3_column_bytes(st, 0) == it->path_len &&
            memcmp(sqlite3_column_blob(st, 0), it->path, it->path_len) == 0) {
            mine_present = sqlite3_column_int(st, 1);
            mine_first = sqlite3_column_int64(st, 2);
        }
    if (rc != SQLITE_DONE)
        return lucy_store_err(rc);
    sqlite3_reset(st);
    int primary = 1;
    while (primary && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *p = sqlite3_column_blob(st, 0);
        size_t n = (size_t)sqlite3_column_bytes(st, 0);
        if (n == it->path_len && memcmp(p, it->path, n) == 0)
            continue;
        primary =
            !lucy_scan_primary_better(p, n, sqlite3_column_int(st, 1), sqlite3_column_int64(st, 2),
                                      it->path, it->path_len, mine_present, mine_first);
    }
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return lucy_store_err(rc);
    sqlite3_reset(st);
    return primary;
}

/* The call's fields as the JSON kept in `sources` (field -> source). */
static const struct {
    enum lucy_call_field field;
    const char *name; /* the API's name of the field */
} call_fields[] = {
    {LUCY_CALL_STARTED_AT, "started_at"},
    {LUCY_CALL_DIRECTION, "direction"},
    {LUCY_CALL_NUMBER, "number"},
    {LUCY_CALL_SIM_SLOT, "sim_slot"},
    {LUCY_CALL_CONTACT_NAME, "contact_name"},
    {LUCY_CALL_CALLER_NAME, "caller_name"},
    {LUCY_CALL_CALL_LOG_NAME, "call_log_name"},
    {LUCY_CALL_FILE_NAME_NAME, "file_name"},
    {LUCY_CALL_TAG_NAME, "tag_name"},
};

static char *sources_json(const struct lucy_call_meta *m)
{
    json_t *o = json_object();
    for (size_t i = 0; i < sizeof call_fields / sizeof *call_fields; i++) {
        const char *src = lucy_call_source_name(m->source[call_fields[i].field]);
        if (src)
            json_object_set_new(o, call_fields[i].name, json_string(src));
    }
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}

static char *warnings_json(const struct lucy_call_meta *m)
{
    json_t *a = json_array();
    for (int i = 0; i < m->warning_count; i++)
        json_array_append_new(a, json_string(m->warnings[i]));
    if (m->warnings_dropped)
        json_array_append_new(a, json_sprintf("and %d more warnings", m->warnings_dropped));
    char *text = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    return text;
}

static void bind_text_or_null(sqlite3_stmt *st, int idx, const char *s)
{
    if (s && s[0])
        sqlite3_bind_text(st, idx, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, idx);
}

/* The call's number is a person's phone (src/people/): observed with every
 * name the recorder gave, each with its source, so a WhatsApp sender with
 * the same number (wa_id) and this call end up one person. A number
 * libphonenumber could not normalise links nobody (its warning says why). */
static int observe_person(sqlite3 *db, const struct lucy_call_meta *m)
{
    if (!m->number_e164[0])
        return 0;
    static const struct {
        size_t offset;
        const char *source;
    } names[] = {
        {offsetof(struct lucy_call_meta, contact_name), "contact_name"},
        {offsetof(struct lucy_call_meta, caller_name), "caller_name"},
        {offsetof(struct lucy_call_meta, call_log_name), "call_log_name"},
        {offsetof(struct lucy_call_meta, file_name), "file_name"},
    };
    int observed = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *name = (const char *)m + names[i].offset;
        if (!name[0])
            continue;
        int err = lucy_people_observe(db, "phone", m->number_e164, name, names[i].source, NULL);
        if (err && err != LUCY_EINVAL)
            return err;
        observed = 1;
    }
    if (observed)
        return 0;
    int err = lucy_people_observe(db, "phone", m->number_e164, NULL, NULL, NULL);
    return err == LUCY_EINVAL ? 0 : err;
}

/* Writes it->call as its recording's call when it comes from the primary
 * path (or the recording has none yet); re-dates the search documents
 * when started_at moved. */
static int write_call(sqlite3 *db, const struct lucy_scan_item *it)
{
    const struct lucy_call_meta *m = it->call;
    int primary = is_primary(db, it);
    if (primary < 0)
        return primary;
    sqlite3_stmt *st;
    int err = lucy_store_stmt(
        db, "SELECT started_at_ms FROM recording_calls WHERE recording_id = ?1", &st);
    if (err)
        return err;
    sqlite3_bind_text(st, 1, it->recording_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    int had = rc == SQLITE_ROW;
    int64_t old_started = had ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return lucy_store_err(rc);
    if (!primary && had)
        return 0;

    char title[256];
    lucy_call_title(m, title, sizeof title);
    char *sources = sources_json(m), *warnings = warnings_json(m);
    err = lucy_store_stmt(
        db,
        "INSERT OR REPLACE INTO recording_calls (recording_id, started_at_ms, utc_offset_min,"
        " direction, number_raw, number_e164, sim_slot, contact_name, caller_name, call_log_name,"
        " file_name_name, sources, warnings, title, updated_at_ms, tag_name, started_at_local,"
        " path, sidecar_ctime_ns) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13,"
        " ?14, ?15, ?16, ?17, ?18, ?19)",
        &st);
    if (err || !sources || !warnings) {
        free(sources);
        free(warnings);
        return err ? err : LUCY_ENOMEM;
    }
    int known = m->source[LUCY_CALL_STARTED_AT] != LUCY_CALL_SRC_NONE;
    sqlite3_bind_text(st, 1, it->recording_id, -1, SQLITE_STATIC);
    if (known)
        sqlite3_bind_int64(st, 2, m->started_at_ms);
    if (known && m->utc_offset_known)
        sqlite3_bind_int(st, 3, m->utc_offset_min);
    bind_text_or_null(st, 4, lucy_call_direction_name(m->direction));
    bind_text_or_null(st, 5, m->number_raw);
    bind_text_or_null(st, 6, m->number_e164);
    if (m->sim_slot)
        sqlite3_bind_int(st, 7, m->sim_slot);
    bind_text_or_null(st, 8, m->contact_name);
    bind_text_or_null(st, 9, m->caller_name);
    bind_text_or_null(st, 10, m->call_log_name);
    bind_text_or_null(st, 11, m->file_name);
    sqlite3_bind_text(st, 12, sources, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 13, warnings, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 14, title, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 15, lucy_wall_ms());
    bind_text_or_null(st, 16, m->tag_name);
    sqlite3_bind_int(st, 17, known && m->started_at_local_only);
    sqlite3_bind_blob(st, 18, it->path, (int)it->path_len, SQLITE_STATIC);
    if (it->sidecar_ctime_ns)
        sqlite3_bind_int64(st, 19, it->sidecar_ctime_ns);
    err = lucy_row_step_done(st);
    free(sources);
    free(warnings);
    if (err == 0)
        err = observe_person(db, m);
    if (err == 0 && had && known && old_started != m->started_at_ms)
        err = lucy_transcript_redate(db, it->recording_id, m->started_at_ms / 1000);
    return err;
}

static int write_item(sqlite3 *db, const struct lucy_scan_item *it, const char *root, int64_t now_s)
{
    int rc = 0;
    switch (it->kind) {
    case LUCY_SCAN_ITEM_RESULT:
        if (it->recording_id[0] && (rc = lucy_forget_recording_tombstoned(db, it->recording_id)))
            return rc < 0 ? rc : upsert_path(db, it, root, now_s); /* forgotten: the path only */
        if (it->recording_id[0] && !it->keep_recording)
            rc = insert_recording(db, it, now_s);
        if (rc == 0)
            rc = upsert_path(db, it, root, now_s);
        if (rc == 0 && strcmp(it->old_recording_id, it->recording_id) != 0)
            rc = rate_recording(db, it->old_recording_id, now_s);
        if (rc == 0 && !it->keep_recording)
            rc = rate_recording(db, it->recording_id, now_s);
        if (rc == 0 && it->call && it->recording_id[0] && !it->keep_recording)
            rc = write_call(db, it);
        return rc;
    case LUCY_SCAN_ITEM_PRESENT:
    case LUCY_SCAN_ITEM_MISSING:
        rc = set_presence(db, it,
                          it->kind == LUCY_SCAN_ITEM_PRESENT ? LUCY_SCAN_PRESENCE_PRESENT
                                                             : LUCY_SCAN_PRESENCE_MISSING,
                          now_s);
        return rc ? rc : rate_recording(db, it->old_recording_id, now_s);
    case LUCY_SCAN_ITEM_LEDGER: {
        struct lucy_ledger_entry e = {
            .path = it->path,
            .path_len = it->path_len,
            .display = it->display,
            .root = root,
            .outcome = it->ledger_outcome,
            .reason_code = it->errno_name,
            .reason = it->last_error,
            .recording_id = it->recording_id,
            .next_retry_s = it->next_retry_s,
        };
        return lucy_ledger_put(db, &e, now_s);
    }
    case LUCY_SCAN_ITEM_UNLEDGER:
        return lucy_ledger_drop(db, it->path, it->path_len);
    }
    return 0;
}

struct items_arg {
    const struct lucy_scan_item *items; /* n of them */
    size_t n;
    const char *root; /* stored with each path */
    int64_t now_s;    /* Unix s */
};

/* The batch, run on the store's writer thread. */
static int write_items(sqlite3 *db, void *argp)
{
    const struct items_arg *a = argp;
    int rc = 0;
    for (size_t i = 0; i < a->n && rc == 0; i++)
        rc = write_item(db, &a->items[i], a->root, a->now_s);
    return rc;
}

int lucy_scan_items_write(struct lucy_store *store, const char *root, int64_t now_s,
                          const struct lucy_scan_item *items, size_t n)
{
    struct items_arg a = {items, n, root, now_s};
    return n ? lucy_store_write(store, write_items, &a, 0) : 0;
}

/* ---- per root and per scan ------------------------------------------------ */

struct root_arg {
    const char *root;               /* bytes */
    const struct path_range *range; /* its paths */
    const char *display;            /* UTF-8 */
    int available;                  /* 1 = walked, 0 = vanished or emptied */
    uint64_t files_seen;
    int64_t now_s;
};

/* Records the root's state; when unavailable, all its present paths too. */
static int write_root(sqlite3 *db, void *argp)
{
    struct root_arg *a = argp;
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db,
                             "INSERT INTO scan_roots (root, display_root, available, files_seen,"
                             " last_scan_s) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (root) DO"
                             " UPDATE SET display_root = excluded.display_root,"
                             " available = excluded.available, files_seen ="
                             " excluded.files_seen, last_scan_s = excluded.last_scan_s",
                             &st);
    if (rc)
        return rc;
    sqlite3_bind_blob(st, 1, a->root, (int)strlen(a->root), SQLITE_STATIC);
    sqlite3_bind_text(st, 2, a->display, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, a->available);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)a->files_seen);
    sqlite3_bind_int64(st, 5, a->now_s);
    rc = lucy_row_step_done(st);
    if (rc == 0 && a->available)
        rc = lucy_ledger_touch(db, a->range->lo, strlen(a->range->lo), a->range->hi,
                               strlen(a->range->hi), a->now_s);
    if (rc || a->available)
        return rc;
    static const char *const sql[] = {
        "UPDATE recording_paths SET presence = 'unavailable', updated_at_s = ?2"
        " WHERE path >= ?3 AND path < ?4 AND presence = 'present'",
        "UPDATE recordings SET scan_status = CASE"
        " WHEN EXISTS (SELECT 1 FROM recording_paths p WHERE p.recording_id = recordings.id"
        "  AND p.presence = 'present') THEN 'ok'"
        " WHEN EXISTS (SELECT 1 FROM recording_paths p WHERE p.recording_id = recordings.id"
        "  AND p.presence = 'unavailable') THEN 'unavailable' ELSE 'missing' END,"
        " updated_at_s = ?2"
        " WHERE id IN (SELECT recording_id FROM recording_paths WHERE path >= ?3 AND path < ?4)",
    };
    for (size_t i = 0; i < sizeof sql / sizeof sql[0] && rc == 0; i++) {
        if ((rc = lucy_store_stmt(db, sql[i], &st)) != 0)
            return rc;
        sqlite3_bind_int64(st, 2, a->now_s);
        bind_range(st, 3, a->range);
        rc = lucy_row_step_done(st);
    }
    return rc;
}

int lucy_scan_root_write(struct lucy_store *store, const char *root, const char *display,
                         int available, uint64_t files_seen, int64_t now_s)
{
    struct path_range range;
    int rc = path_range(&range, root);
    struct root_arg a = {root, &range, display, available, files_seen, now_s};
    return rc ? rc : lucy_store_write(store, write_root, &a, 0);
}

/* meta[LUCY_SCAN_SUMMARY_META_KEY] = text (one store write). */
static int keep_summary_write(sqlite3 *db, void *arg)
{
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db,
                             "INSERT INTO meta (key, value) VALUES ('" LUCY_SCAN_SUMMARY_META_KEY
                             "', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                             &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
    return lucy_row_step_done(st);
}

int lucy_scan_summary_keep(struct lucy_store *store, const char *text)
{
    return lucy_store_write(store, keep_summary_write, (void *)text, 0);
}
