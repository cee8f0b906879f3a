/*
 * tombstones.c - the one writer of table `tombstones` (see tombstones.h).
 */
#include "tombstones.h"

#include "../error.h"
#include "row.h"
#include "store.h"

/* The stored names of enum lucy_tombstone_kind, the column's CHECK list. */
static const char *const kind_names[LUCY_TOMBSTONE_N_KINDS] = {
    [LUCY_TOMBSTONE_RECORDING] = "recording",
    [LUCY_TOMBSTONE_MESSAGE] = "message",
    [LUCY_TOMBSTONE_PERSON] = "person",
};

int lucy_tombstone_put(sqlite3 *db, enum lucy_tombstone_kind kind, const char *key,
                       const char *reason, int64_t at_ms)
{
    if ((int)kind < 0 || kind >= LUCY_TOMBSTONE_N_KINDS || !key || !*key || !reason)
        return LUCY_EINVAL;
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db,
                             "INSERT INTO tombstones (kind, key, reason, forgotten_at_ms)"
                             " VALUES (?1, ?2, ?3, ?4) ON CONFLICT (kind, key) DO NOTHING",
                             &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, kind_names[kind], -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, reason, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, at_ms);
    return lucy_row_step_done(st);
}

int lucy_tombstone_has(sqlite3 *db, enum lucy_tombstone_kind kind, const char *key)
{
    if ((int)kind < 0 || kind >= LUCY_TOMBSTONE_N_KINDS || !key)
        return 0;
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db, "SELECT 1 FROM tombstones WHERE kind = ?1 AND key = ?2", &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, kind_names[kind], -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    int src = sqlite3_step(st);
    sqlite3_reset(st);
    if (src == SQLITE_ROW)
        return 1;
    return src == SQLITE_DONE ? 0 : lucy_store_err(src);
}

int lucy_forget_recording_tombstoned(sqlite3 *db, const char *sha256)
{
    return lucy_tombstone_has(db, LUCY_TOMBSTONE_RECORDING, sha256);
}

int lucy_forget_wamid_tombstoned(sqlite3 *db, const char *wamid)
{
    return lucy_tombstone_has(db, LUCY_TOMBSTONE_MESSAGE, wamid);
}
