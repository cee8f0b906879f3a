/*
 * tombstones.h - what the user made lucy forget, so it does not come back
 * (DESIGN §15 Forget): table `tombstones` (migration 46), written only by
 * tombstones.c.
 *
 * A tombstone is (kind, key): a recording by its content hash (its id), a
 * WhatsApp message by its wamid, a person by its id. It keeps no content:
 * only the key, when, and why (a request or retention). The scanner does
 * not store a recording whose hash is tombstoned, the webhook inbox does
 * not store a tombstoned wamid again (it still acknowledges it), and a
 * second DELETE of a forgotten item answers 204 instead of 404 (the item
 * is known: it was forgotten).
 *
 * Every function runs inside the caller's store write or read (db), on
 * that thread.
 */
#ifndef LUCY_TOMBSTONES_H
#define LUCY_TOMBSTONES_H

#include <sqlite3.h>
#include <stdint.h>

enum lucy_tombstone_kind {
    LUCY_TOMBSTONE_RECORDING, /* key: the recording id (hex SHA-256 of the content) */
    LUCY_TOMBSTONE_MESSAGE,   /* key: the wamid */
    LUCY_TOMBSTONE_PERSON,    /* key: the person id in decimal */
    LUCY_TOMBSTONE_N_KINDS
};

/* Why an item was forgotten: the column's CHECK list. */
#define LUCY_FORGET_REQUEST   "request"   /* a DELETE */
#define LUCY_FORGET_RETENTION "retention" /* LUCY_RETENTION_DAYS */

/* Records that (kind, key) was forgotten at at_ms (Unix ms) for reason
 * (LUCY_FORGET_*). A key already tombstoned keeps its first record. Inside
 * a write. 0, LUCY_EINVAL (no key, unknown kind) or a store error. */
int lucy_tombstone_put(sqlite3 *db, enum lucy_tombstone_kind kind, const char *key,
                       const char *reason, int64_t at_ms);

/* 1 when (kind, key) is tombstoned, 0 when not, or a negative store error
 * (the caller fails its write: better late than back from the dead).
 * Inside a read or write. */
int lucy_tombstone_has(sqlite3 *db, enum lucy_tombstone_kind kind, const char *key);

/* lucy_tombstone_has() for a recording's content hash (64 hex digits) and
 * for a message's wamid: what the scanner and the inbox ask. */
int lucy_forget_recording_tombstoned(sqlite3 *db, const char *sha256);
int lucy_forget_wamid_tombstoned(sqlite3 *db, const char *wamid);

#endif
