/*
 * schema.c - the store's migrations, oldest first. Forward-only: never edit
 * a released row; add a new one. Each later issue appends its tables here.
 * lucy_store_migrate() at the end runs them (store_int.h).
 */
#include <stdio.h>

#include "../error.h"
#include "../log.h"
#include "store.h"
#include "store_int.h"

const struct lucy_migration lucy_migrations[] = {
    {1, "core",
     "CREATE TABLE store_probe (id INTEGER PRIMARY KEY, written_at_ms INTEGER NOT NULL);"
     "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);"},
    /* 10: the search index (src/index/outbox.c). documents = the local
     * canonical copy of every searchable document, one row per
     * (source, id, segment); deleted = tombstone until the indexer has
     * removed it from the backend (keeps doc_rowid stable). outbox = one
     * pending operation per document, newest wins (seq bumps on change).
     * documents_fts = the sqlite backend's FTS5 index, rowid = doc_rowid. */
    {10, "search_index",
     "CREATE TABLE documents ("
     " doc_rowid INTEGER PRIMARY KEY AUTOINCREMENT,"
     " source TEXT NOT NULL,"
     " id TEXT NOT NULL,"
     " segment INTEGER NOT NULL DEFAULT 0,"
     " contact TEXT,"
     " title TEXT,"
     " text TEXT NOT NULL,"
     " time_s INTEGER NOT NULL DEFAULT 0,"
     " t0_ms INTEGER NOT NULL DEFAULT 0,"
     " t1_ms INTEGER NOT NULL DEFAULT 0,"
     " deleted INTEGER NOT NULL DEFAULT 0,"
     " updated_at_ms INTEGER NOT NULL,"
     " UNIQUE (source, id, segment));"
     "CREATE TABLE outbox ("
     " doc_rowid INTEGER PRIMARY KEY,"
     " op TEXT NOT NULL CHECK (op IN ('put','delete')),"
     " seq INTEGER NOT NULL DEFAULT 1,"
     " queued_at_ms INTEGER NOT NULL,"
     " attempts INTEGER NOT NULL DEFAULT 0,"
     " next_attempt_at_ms INTEGER NOT NULL DEFAULT 0,"
     " last_error TEXT,"
     " failed INTEGER NOT NULL DEFAULT 0);"
     "CREATE INDEX outbox_due ON outbox(failed, next_attempt_at_ms);"
     "CREATE VIRTUAL TABLE documents_fts USING fts5("
     " title, text, tokenize = 'unicode61 remove_diacritics 2');"},
    /* 20: call_recordings scanner (plugins/call_recordings/scan.c). A
     * recording is audio content, id = hex SHA-256; recording_paths holds
     * every file seen at a path (path = its exact bytes, display_path =
     * UTF-8 with U+FFFD), whatever its last outcome. status is the last
     * content outcome (recording, corrupt, unsupported, locked,
     * permission_denied, io_error); presence is present, missing or
     * unavailable (root vanished). recordings.scan_status: ok (a present
     * path holds it), unavailable, missing. Times are Unix seconds. */
    {20, "recordings",
     "CREATE TABLE recordings ("
     " id TEXT PRIMARY KEY,"
     " size INTEGER NOT NULL,"
     " mtime_ns INTEGER NOT NULL,"
     " duration_s REAL,"
     " codec TEXT,"
     " format TEXT,"
     " sample_rate INTEGER,"
     " channels INTEGER,"
     " bit_rate INTEGER,"
     " tags TEXT NOT NULL DEFAULT '{}',"
     " scan_status TEXT NOT NULL DEFAULT 'ok'"
     "  CHECK (scan_status IN ('ok','missing','unavailable')),"
     " warning TEXT,"
     " first_seen_s INTEGER NOT NULL,"
     " updated_at_s INTEGER NOT NULL);"
     "CREATE INDEX recordings_by_status ON recordings(scan_status, first_seen_s);"
     "CREATE TABLE recording_paths ("
     " path BLOB PRIMARY KEY,"
     " display_path TEXT NOT NULL,"
     " root BLOB NOT NULL,"
     " recording_id TEXT,"
     " size INTEGER NOT NULL,"
     " mtime_ns INTEGER NOT NULL,"
     " inode INTEGER NOT NULL,"
     " status TEXT NOT NULL CHECK (status IN ('recording','corrupt','unsupported','locked',"
     "  'permission_denied','io_error')),"
     " presence TEXT NOT NULL DEFAULT 'present'"
     "  CHECK (presence IN ('present','missing','unavailable')),"
     " last_error TEXT,"
     " errno_name TEXT,"
     " locked_since_s INTEGER,"
     " attempts INTEGER NOT NULL DEFAULT 0,"
     " next_retry_s INTEGER,"
     " first_seen_s INTEGER NOT NULL,"
     " updated_at_s INTEGER NOT NULL);"
     "CREATE INDEX recording_paths_by_recording ON recording_paths(recording_id);"
     "CREATE INDEX recording_paths_by_root ON recording_paths(root);"
     "CREATE TABLE scan_roots ("
     " root BLOB PRIMARY KEY,"
     " display_root TEXT NOT NULL,"
     " available INTEGER NOT NULL,"
     " files_seen INTEGER NOT NULL,"
     " last_scan_s INTEGER NOT NULL);"},
    /* 21: call_recordings transcription jobs, transcripts, segments
     * (plugins/call_recordings/jobs.c). Times are Unix seconds. At most one
     * active (queued/running/retry_wait/blocked) job per recording. */
    {21, "jobs",
     "CREATE TABLE jobs ("
     " id INTEGER PRIMARY KEY,"
     " recording_id TEXT NOT NULL,"
     " status TEXT NOT NULL DEFAULT 'queued' CHECK (status IN"
     "  ('queued','running','retry_wait','blocked','done','no_speech','failed')),"
     " attempts INTEGER NOT NULL DEFAULT 0,"
     " error_type TEXT,"
     " error TEXT,"
     " next_retry_at_s INTEGER,"
     " created_at_s INTEGER NOT NULL,"
     " updated_at_s INTEGER NOT NULL);"
     "CREATE UNIQUE INDEX jobs_one_active ON jobs(recording_id)"
     " WHERE status IN ('queued','running','retry_wait','blocked');"
     "CREATE INDEX jobs_by_status ON jobs(status, next_retry_at_s, id);"
     "CREATE INDEX jobs_by_recording ON jobs(recording_id, id);"
     "CREATE TABLE transcripts ("
     " recording_id TEXT PRIMARY KEY,"
     " job_id INTEGER,"
     " engine TEXT NOT NULL,"
     " model TEXT,"
     " language TEXT,"
     " duration_s REAL,"
     " rtf REAL,"
     " text TEXT NOT NULL,"
     " created_at_s INTEGER NOT NULL);"
     "CREATE TABLE segments ("
     " recording_id TEXT NOT NULL,"
     " idx INTEGER NOT NULL,"
     " t0_ms INTEGER NOT NULL,"
     " t1_ms INTEGER NOT NULL,"
     " text TEXT NOT NULL,"
     " PRIMARY KEY (recording_id, idx)) WITHOUT ROWID;"},
    /* 30-33: the WhatsApp inbox (plugins/whatsapp/). wa_inbox_bodies keeps
     * every POST's exact bytes (de-duplicated by their SHA-256);
     * wa_messages / wa_statuses hold the parsed items, de-duplicated by
     * UNIQUE(wamid) and UNIQUE(id, status), `pending` until the inbox worker
     * has processed them. Times: *_ms Unix milliseconds, *_s Unix seconds. */
    {30, "whatsapp_inbox",
     "CREATE TABLE wa_inbox_bodies ("
     " id INTEGER PRIMARY KEY,"
     " sha256 BLOB NOT NULL UNIQUE,"
     " received_at_ms INTEGER NOT NULL,"
     " body BLOB NOT NULL);"
     "CREATE TABLE wa_messages ("
     " seq INTEGER PRIMARY KEY,"
     " wamid TEXT NOT NULL UNIQUE,"
     " body_id INTEGER NOT NULL REFERENCES wa_inbox_bodies(id),"
     " sender TEXT NOT NULL,"
     " wa_id TEXT,"
     " user_id TEXT,"
     " phone_number_id TEXT,"
     " type TEXT NOT NULL,"
     " known_type INTEGER NOT NULL,"
     " timestamp_s INTEGER NOT NULL,"
     " profile_name TEXT,"
     " raw TEXT NOT NULL,"
     " received_at_ms INTEGER NOT NULL,"
     " state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending','done')),"
     " attempts INTEGER NOT NULL DEFAULT 0,"
     " next_attempt_ms INTEGER NOT NULL DEFAULT 0,"
     " last_error TEXT,"
     " text TEXT,"
     " rate_limited INTEGER NOT NULL DEFAULT 0,"
     " processed_at_ms INTEGER);"
     "CREATE INDEX wa_messages_pending ON wa_messages(timestamp_s, seq) WHERE state = 'pending';"
     "CREATE INDEX wa_messages_by_sender ON wa_messages(sender, timestamp_s, seq);"
     "CREATE TABLE wa_statuses ("
     " seq INTEGER PRIMARY KEY,"
     " id TEXT NOT NULL,"
     " status TEXT NOT NULL,"
     " body_id INTEGER NOT NULL REFERENCES wa_inbox_bodies(id),"
     " recipient_id TEXT,"
     " timestamp_s INTEGER NOT NULL,"
     " raw TEXT NOT NULL,"
     " received_at_ms INTEGER NOT NULL,"
     " state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending','done')),"
     " attempts INTEGER NOT NULL DEFAULT 0,"
     " next_attempt_ms INTEGER NOT NULL DEFAULT 0,"
     " last_error TEXT,"
     " UNIQUE (id, status));"
     "CREATE INDEX wa_statuses_pending ON wa_statuses(next_attempt_ms) WHERE state = 'pending';"},
    /* 31: contacts (alias: the user's first, else the profile name) and the
     * delivery state of outgoing messages, which only moves forward. */
    {31, "whatsapp_contacts",
     "CREATE TABLE wa_contacts ("
     " id TEXT PRIMARY KEY,"
     " wa_id TEXT,"
     " user_id TEXT,"
     " profile_name TEXT,"
     " user_alias TEXT,"
     " messages INTEGER NOT NULL DEFAULT 0,"
     " last_message_s INTEGER,"
     " first_seen_ms INTEGER NOT NULL,"
     " updated_at_ms INTEGER NOT NULL);"
     "CREATE TABLE wa_outgoing ("
     " wamid TEXT PRIMARY KEY,"
     " recipient_id TEXT,"
     " status TEXT NOT NULL,"
     " status_rank INTEGER NOT NULL,"
     " status_time_s INTEGER,"
     " errors TEXT,"
     " updated_at_ms INTEGER NOT NULL);"},
    /* 32: per-sender rate limit, GCRA: one theoretical arrival time per key. */
    {32, "whatsapp_rate_limit",
     "CREATE TABLE wa_rate_limit ("
     " key TEXT PRIMARY KEY,"
     " tat_ms INTEGER NOT NULL) WITHOUT ROWID;"},
    /* 33: voice notes: Graph API download, sha256 check, transcript. */
    {33, "whatsapp_media",
     "CREATE TABLE wa_media ("
     " wamid TEXT PRIMARY KEY REFERENCES wa_messages(wamid),"
     " media_id TEXT,"
     " mime_type TEXT,"
     " sha256 TEXT,"
     " state TEXT NOT NULL CHECK (state IN ('pending','downloaded','transcribed','no_speech',"
     "  'failed','not_downloaded')),"
     " attempts INTEGER NOT NULL DEFAULT 0,"
     " next_attempt_ms INTEGER NOT NULL DEFAULT 0,"
     " error_type TEXT,"
     " last_error TEXT,"
     " path TEXT,"
     " size_bytes INTEGER,"
     " transcript TEXT,"
     " engine TEXT,"
     " created_at_ms INTEGER NOT NULL,"
     " updated_at_ms INTEGER NOT NULL);"
     "CREATE INDEX wa_media_due ON wa_media(next_attempt_ms) WHERE state IN "
     "('pending','downloaded');"},
    /* 40: the embedded kv backend and pending replays (src/kv/). kv = one
     * value per key, expires_at_ms NULL = never (wall clock ms);
     * kv_ratelimit = GCRA theoretical arrival time per key (us);
     * kv_pending = writes a shared backend refused, newest per key (seq
     * bumps on change), replayed oldest first when it answers again. */
    {40, "kv",
     "CREATE TABLE kv ("
     " key TEXT PRIMARY KEY,"
     " value BLOB NOT NULL,"
     " expires_at_ms INTEGER) WITHOUT ROWID;"
     "CREATE INDEX kv_expiry ON kv(expires_at_ms) WHERE expires_at_ms IS NOT NULL;"
     "CREATE TABLE kv_ratelimit ("
     " key TEXT PRIMARY KEY,"
     " tat_us INTEGER NOT NULL,"
     " expires_at_ms INTEGER NOT NULL) WITHOUT ROWID;"
     "CREATE INDEX kv_ratelimit_expiry ON kv_ratelimit(expires_at_ms);"
     "CREATE TABLE kv_pending ("
     " key TEXT PRIMARY KEY,"
     " op TEXT NOT NULL CHECK (op IN ('set','del')),"
     " value BLOB,"
     " seq INTEGER NOT NULL DEFAULT 1,"
     " queued_at_ms INTEGER NOT NULL,"
     " attempts INTEGER NOT NULL DEFAULT 0,"
     " last_error TEXT);"
     "CREATE INDEX kv_pending_order ON kv_pending(queued_at_ms, key);"},
    /* 41: the WhatsApp plugin on the kv interface (issue 5). The per-sender
     * rate limit lives in kv_ratelimit (or Redis), so wa_rate_limit goes.
     * user_alias_set_at_ms = when the user set (or cleared) the alias, wall
     * ms, to merge it last-writer-wins with the copy that instances share
     * through the kv. Numbered after 40, not 34: the runner then applied
     * only versions above the highest one a database had. */
    {41, "whatsapp_on_kv",
     "DROP TABLE IF EXISTS wa_rate_limit;"
     "ALTER TABLE wa_contacts ADD COLUMN user_alias_set_at_ms INTEGER;"},
    /* 42: a contact created by PUT /contacts/{id} before lucy had seen it
     * used to get neither wa_id nor user_id; PUT now keys it by its id
     * (contacts.c: all digits = wa_id, else user_id). Repairs such rows. */
    {42, "whatsapp_contact_ids",
     "UPDATE wa_contacts SET wa_id = id WHERE wa_id IS NULL AND user_id IS NULL"
     " AND id != '' AND id NOT GLOB '*[^0-9]*';"
     "UPDATE wa_contacts SET user_id = id WHERE wa_id IS NULL AND user_id IS NULL;"},
    /* 43: the scanner's unchanged test also compares st_ctim (ns), so a
     * file rewritten in place with its mtime put back is read again. Rows
     * from before get 0, which matches no file: each is read once more on
     * the first scan after the upgrade and stored with its ctime. Numbered
     * above 42 (not in 20..29): the runner then applied only versions
     * above a database's highest. */
    {43, "recording_paths_ctime",
     "ALTER TABLE recording_paths ADD COLUMN ctime_ns INTEGER NOT NULL DEFAULT 0;"},
    /* 44: what a call recording says about itself (DESIGN §12), one row per
     * recording, written by the scanner (call_recordings/scan_store.c) from
     * callmeta.c: started_at (UTC ms; utc_offset_min NULL = offset unknown),
     * direction in|out|conference (NULL = unknown), the number as found and
     * as E.164 (NULL = not normalised: the person link is by number_e164),
     * the names a recorder gave, each field's source (JSON object field ->
     * sidecar|file_name|tags|mtime), warnings (JSON array), the title;
     * tag_name (a name from the title/artist tags), started_at_local (1:
     * the source gave wall-clock time with no zone, started_at_ms is it
     * read as UTC), path (the primary path the call was read from) and
     * sidecar_ctime_ns (its sidecar's ctime then; NULL = none, -1 =
     * unreadable), so the scanner reads a recording again when its sidecar
     * appears or changes. */
    {44, "recording_calls",
     "CREATE TABLE IF NOT EXISTS recording_calls ("
     " recording_id TEXT PRIMARY KEY REFERENCES recordings(id) ON DELETE CASCADE,"
     " started_at_ms INTEGER,"
     " utc_offset_min INTEGER,"
     " direction TEXT CHECK (direction IN ('in','out','conference')),"
     " number_raw TEXT,"
     " number_e164 TEXT,"
     " sim_slot INTEGER,"
     " contact_name TEXT,"
     " caller_name TEXT,"
     " call_log_name TEXT,"
     " file_name_name TEXT,"
     " sources TEXT NOT NULL DEFAULT '{}',"
     " warnings TEXT NOT NULL DEFAULT '[]',"
     " title TEXT,"
     " tag_name TEXT,"
     " started_at_local INTEGER NOT NULL DEFAULT 0,"
     " path BLOB,"
     " sidecar_ctime_ns INTEGER,"
     " updated_at_ms INTEGER NOT NULL);"
     "CREATE INDEX IF NOT EXISTS recording_calls_started ON recording_calls (started_at_ms);"
     "CREATE INDEX IF NOT EXISTS recording_calls_number ON recording_calls (number_e164);"},
    /* 45: people (src/people/, DESIGN §12): persons, their identifiers
     * (phone = E.164, wa_id, user_id; one person per (kind, value)), every
     * name seen with its source and the identifier it came with, and the
     * journal of merges, splits and aliases with what undoes them exactly.
     * AUTOINCREMENT: an undone merge gives a person its id back, so no id
     * may be reused. No foreign keys: a merge re-points rows before it
     * deletes the person. Times are Unix ms. WhatsApp contacts become
     * persons in the inbox worker's first write (it owns wa_contacts).
     * IF NOT EXISTS: tests that rewind schema_version re-run it. */
    {45, "people",
     "CREATE TABLE IF NOT EXISTS people ("
     " id INTEGER PRIMARY KEY AUTOINCREMENT,"
     " created_at_ms INTEGER NOT NULL);"
     "CREATE TABLE IF NOT EXISTS people_identifiers ("
     " id INTEGER PRIMARY KEY AUTOINCREMENT,"
     " person INTEGER NOT NULL,"
     " kind TEXT NOT NULL CHECK (kind IN ('phone','wa_id','user_id')),"
     " value TEXT NOT NULL,"
     " source TEXT NOT NULL,"
     " first_seen_ms INTEGER NOT NULL,"
     " UNIQUE (kind, value));"
     "CREATE INDEX IF NOT EXISTS people_identifiers_by_person ON people_identifiers (person);"
     "CREATE TABLE IF NOT EXISTS people_names ("
     " id INTEGER PRIMARY KEY AUTOINCREMENT,"
     " person INTEGER NOT NULL,"
     " identifier INTEGER,"
     " name TEXT NOT NULL,"
     " source TEXT NOT NULL CHECK (source IN ('alias','contact_name','call_log_name',"
     "  'caller_name','profile_name','file_name')),"
     " first_seen_ms INTEGER NOT NULL,"
     " last_seen_ms INTEGER NOT NULL);"
     "CREATE INDEX IF NOT EXISTS people_names_by_person ON people_names (person, source);"
     "CREATE INDEX IF NOT EXISTS people_names_by_identifier ON people_names (identifier);"
     "CREATE TABLE IF NOT EXISTS people_journal ("
     " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
     " at_ms INTEGER NOT NULL,"
     " op TEXT NOT NULL CHECK (op IN ('merge','split','alias')),"
     " auto INTEGER NOT NULL DEFAULT 0,"
     " person INTEGER NOT NULL,"
     " other INTEGER,"
     " data TEXT NOT NULL,"
     " undone_at_ms INTEGER);"
     "CREATE INDEX IF NOT EXISTS people_journal_by_person ON people_journal (person);"
     "CREATE INDEX IF NOT EXISTS people_journal_by_other ON people_journal (other);"},
    /* 46: tombstones (src/store/tombstones.c, DESIGN §15 Forget): what the
     * user had lucy forget, by key only (a recording's content hash, a
     * message's wamid, a person's id), so a rescan, a restart or a webhook
     * retry does not bring it back. forgotten_at_ms: Unix ms. */
    {46, "tombstones",
     "CREATE TABLE IF NOT EXISTS tombstones ("
     " kind TEXT NOT NULL CHECK (kind IN ('recording','message','person')),"
     " key TEXT NOT NULL,"
     " reason TEXT NOT NULL CHECK (reason IN ('request','retention')),"
     " forgotten_at_ms INTEGER NOT NULL,"
     " PRIMARY KEY (kind, key)) WITHOUT ROWID;"},
    /* 48: the ingest ledger (DESIGN §16), written by
     * call_recordings/ledger.c for the scanner: one row per path the scanner
     * saw and did not make a clean recording of (outcome ignored,
     * placeholder, changing, locked, corrupt, permission_denied, io_error,
     * unsupported, orphan_sidecar, or call_metadata for a recording whose
     * call lost fields), with the reason (reason_code: errno name or a
     * short code; reason: the words), first and last seen and the next
     * retry (Unix s). Failed transcriptions are read from jobs, not copied.
     * IF NOT EXISTS: tests that rewind schema_version re-run it. */
    {48, "ingest_ledger",
     "CREATE TABLE IF NOT EXISTS ingest_ledger ("
     " path BLOB PRIMARY KEY,"
     " display_path TEXT NOT NULL,"
     " root BLOB NOT NULL,"
     " outcome TEXT NOT NULL,"
     " reason_code TEXT,"
     " reason TEXT,"
     " recording_id TEXT,"
     " first_seen_s INTEGER NOT NULL,"
     " last_seen_s INTEGER NOT NULL,"
     " next_retry_s INTEGER);"
     "CREATE INDEX IF NOT EXISTS ingest_ledger_by_outcome ON ingest_ledger (outcome, path);"
     /* What the scanner knew before: unchanged odd files are not read
      * again, so their rows come from recording_paths and recording_calls. */
     "INSERT OR IGNORE INTO ingest_ledger (path, display_path, root, outcome, reason_code,"
     " reason, first_seen_s, last_seen_s, next_retry_s)"
     " SELECT path, display_path, root, status, coalesce(errno_name, CASE status"
     "  WHEN 'corrupt' THEN 'decoder' WHEN 'unsupported' THEN 'not_audio' END),"
     " last_error, first_seen_s, updated_at_s, next_retry_s FROM recording_paths"
     " WHERE status != 'recording' AND presence = 'present';"
     "INSERT OR IGNORE INTO ingest_ledger (path, display_path, root, outcome, reason_code,"
     " reason, recording_id, first_seen_s, last_seen_s)"
     " SELECT c.path, p.display_path, p.root, 'call_metadata', 'call_metadata',"
     " (SELECT group_concat(value, '; ') FROM json_each(c.warnings)), c.recording_id,"
     " p.first_seen_s, p.updated_at_s FROM recording_calls c"
     " JOIN recording_paths p ON p.path = c.path WHERE c.warnings != '[]';"},
    /* 49: who said what (DESIGN §13, call_recordings/transcript.c): a
     * segment's speaker role ('me' = the phone's user, 'them' = the other
     * party, resolved to the call's person when read; NULL = unknown), its
     * source channel (0 left, 1 right; NULL = mono or mixed) and its words
     * as JSON [{t0_ms, t1_ms, text}] (NULL = the engine gave none); a
     * transcript's truncation (decoded audio well short of the container's
     * source_duration_s) and how many channels were transcribed apart; a
     * job's queue class (jobs.c: 0 requested by a user, 1 a new recording,
     * 2 a re-transcription; shortest recording first within a class). */
    {49, "segments_speakers_words",
     "ALTER TABLE segments ADD COLUMN speaker TEXT CHECK (speaker IN ('me','them'));"
     "ALTER TABLE segments ADD COLUMN channel INTEGER;"
     "ALTER TABLE segments ADD COLUMN words TEXT;"
     "ALTER TABLE transcripts ADD COLUMN truncated INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE transcripts ADD COLUMN source_duration_s REAL;"
     "ALTER TABLE transcripts ADD COLUMN channels INTEGER;"
     "ALTER TABLE jobs ADD COLUMN queue_class INTEGER NOT NULL DEFAULT 1;"},
    /* 50: per-chunk checkpoints of a running transcription
     * (call_recordings/checkpoint.c): each recognised chunk (a channel's
     * samples [first_sample, +n_samples) at 16 kHz) with its segments as
     * JSON (times from the start of the file), so a restart resumes where
     * the job stopped. Deleted when the job ends. */
    {50, "transcript_chunks",
     "CREATE TABLE IF NOT EXISTS transcript_chunks ("
     " job_id INTEGER NOT NULL,"
     " channel INTEGER NOT NULL,"
     " first_sample INTEGER NOT NULL,"
     " n_samples INTEGER NOT NULL,"
     " engine TEXT NOT NULL,"
     " model TEXT,"
     " segments TEXT NOT NULL,"
     " wall_s REAL NOT NULL,"
     " done_at_ms INTEGER NOT NULL,"
     " PRIMARY KEY (job_id, channel, first_sample)) WITHOUT ROWID;"},
    /* Dense vectors of the search documents (DESIGN §14; index range
     * extended: 52 was given to this change). One row per embedded
     * document, written only by src/index/vectors.c; doc_updated_at_ms is
     * the documents row version it was computed from (a newer version is
     * embedded again), vector is dim float32 values, L2-normalised, in the
     * host's byte order. No foreign key: a purged document's vector is
     * removed by the embedder's sweep. */
    {52, "document_vectors",
     "CREATE TABLE IF NOT EXISTS document_vectors ("
     " doc_rowid INTEGER PRIMARY KEY,"
     " doc_updated_at_ms INTEGER NOT NULL,"
     " model TEXT NOT NULL,"
     " dim INTEGER NOT NULL,"
     " vector BLOB NOT NULL,"
     " embedded_at_ms INTEGER NOT NULL);"},
    /* 53: transcript versions and job groups (DESIGN §13 Versions;
     * call_recordings/versions.c, transcript.c, retranscribe.c, jobs.c).
     * Every transcription run that stored a transcript is a version
     * (1, 2, ... per recording) with its segments as JSON [{t0_ms, t1_ms,
     * text, speaker, channel, words}]; `transcripts` and `segments` hold
     * the active one (transcripts.version), the one that is indexed.
     * Existing transcripts become version 1, active. A job group is a bulk
     * re-transcription: its jobs carry group_id; total_jobs is how many
     * were queued, cancelled_at_s when it was cancelled (Unix s). */
    {53, "transcript_versions",
     "CREATE TABLE IF NOT EXISTS transcript_versions ("
     " recording_id TEXT NOT NULL,"
     " version INTEGER NOT NULL,"
     " job_id INTEGER,"
     " status TEXT NOT NULL CHECK (status IN ('done','no_speech')),"
     " engine TEXT NOT NULL,"
     " model TEXT,"
     " language TEXT,"
     " duration_s REAL,"
     " rtf REAL,"
     " text TEXT NOT NULL,"
     " word_count INTEGER NOT NULL,"
     " created_at_s INTEGER NOT NULL,"
     " truncated INTEGER NOT NULL DEFAULT 0,"
     " source_duration_s REAL,"
     " channels INTEGER,"
     " segments TEXT NOT NULL,"
     " PRIMARY KEY (recording_id, version)) WITHOUT ROWID;"
     "ALTER TABLE transcripts ADD COLUMN version INTEGER NOT NULL DEFAULT 1;"
     "INSERT OR IGNORE INTO transcript_versions SELECT t.recording_id, 1, t.job_id,"
     " CASE WHEN t.text != '' AND EXISTS (SELECT 1 FROM segments s"
     "  WHERE s.recording_id = t.recording_id) THEN 'done' ELSE 'no_speech' END,"
     " t.engine, t.model, t.language, t.duration_s, t.rtf, t.text,"
     " CASE WHEN trim(t.text) = '' THEN 0"
     "  ELSE length(trim(t.text)) - length(replace(trim(t.text), ' ', '')) + 1 END,"
     " t.created_at_s, t.truncated, t.source_duration_s, t.channels,"
     " coalesce((SELECT json_group_array(json_object('t0_ms', s.t0_ms, 't1_ms', s.t1_ms,"
     "  'text', s.text, 'speaker', s.speaker, 'channel', s.channel,"
     "  'words', json(coalesce(s.words, '[]'))))"
     "  FROM (SELECT * FROM segments WHERE recording_id = t.recording_id ORDER BY idx) s),"
     " '[]') FROM transcripts t;"
     "CREATE TABLE IF NOT EXISTS job_groups ("
     " id INTEGER PRIMARY KEY,"
     " kind TEXT NOT NULL,"
     " filter TEXT NOT NULL,"
     " total_jobs INTEGER NOT NULL,"
     " skipped INTEGER NOT NULL,"
     " created_at_s INTEGER NOT NULL,"
     " cancelled_at_s INTEGER);"
     "ALTER TABLE jobs ADD COLUMN group_id INTEGER;"
     "CREATE INDEX IF NOT EXISTS jobs_by_group ON jobs(group_id) WHERE group_id IS NOT NULL;"},
    /* 54: the engine and model a job was asked for (POST
     * /recordings/{id}/transcribe, /recordings/retranscribe; jobs.c): an
     * engine name of asr.c's table and its model (pocketsphinx: acoustic
     * model directory, whisper: ggml file, http: model name); NULL = the
     * configured default (LUCY_ASR_ENGINE and its model). */
    {54, "job_engine",
     "ALTER TABLE jobs ADD COLUMN engine TEXT;"
     "ALTER TABLE jobs ADD COLUMN model TEXT;"},
    /* 55: a recording's segments carry no title (DESIGN §12: names are
     * searchable through the person, not copied into every segment; the
     * hit's title is read with the result, transcript.c). Early stores
     * indexed the file name as every segment's title, so "incoming" or the
     * number's digits matched every segment of such a call: cleared, and
     * each such document queued again (outbox, the newest operation wins)
     * so the backend (FTS5 or Qdrant's payload) forgets it too. */
    {55, "recording_segments_untitled",
     "INSERT INTO outbox (doc_rowid, op, seq, queued_at_ms)"
     " SELECT doc_rowid, 'put', 1, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"
     " FROM documents WHERE source = 'call_recording' AND deleted = 0 AND coalesce(title, '') <> ''"
     " ON CONFLICT (doc_rowid) DO UPDATE SET op = 'put', seq = outbox.seq + 1, attempts = 0,"
     " next_attempt_at_ms = 0, last_error = NULL, failed = 0;"
     "UPDATE documents SET title = NULL"
     " WHERE source = 'call_recording' AND coalesce(title, '') <> '';"},
};
const int lucy_migrations_count = sizeof lucy_migrations / sizeof lucy_migrations[0];

/* ---- the runner ---------------------------------------------------------- */

int lucy_store_migrate(sqlite3 *db, char *err, size_t errlen)
{
    int rc = lucy_store_exec(
        db, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
            "name TEXT NOT NULL, applied_at_ms INTEGER NOT NULL)");
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot create schema_version: %s", sqlite3_errmsg(db));
        return lucy_store_err(rc);
    }
    sqlite3_stmt *applied;
    rc = sqlite3_prepare_v2(db, "SELECT 1 FROM schema_version WHERE version = ?1", -1, &applied,
                            NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot read schema_version: %s", sqlite3_errmsg(db));
        return lucy_store_err(rc);
    }
    json_t *versions = json_array(); /* applied now, for the log */
    /* Every row not recorded yet, in table order: not only those above the
     * highest recorded, so a migration merged in below a newer one (two
     * branches numbered apart) is still applied to a store that has the
     * newer one. */
    for (int i = 0; i < lucy_migrations_count; i++) {
        const struct lucy_migration *m = &lucy_migrations[i];
        sqlite3_bind_int(applied, 1, m->version);
        int done = sqlite3_step(applied) == SQLITE_ROW;
        sqlite3_reset(applied);
        if (done)
            continue;
        char record[256];
        snprintf(record, sizeof record,
                 "INSERT INTO schema_version VALUES (%d, '%s', "
                 "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))",
                 m->version, m->name);
        rc = lucy_store_exec(db, "BEGIN IMMEDIATE");
        if (rc == SQLITE_OK)
            rc = lucy_store_exec(db, m->sql);
        if (rc == SQLITE_OK)
            rc = lucy_store_exec(db, record);
        if (rc == SQLITE_OK)
            rc = lucy_store_exec(db, "COMMIT");
        if (rc != SQLITE_OK) {
            snprintf(err, errlen, "migration %d (%s) failed: %s", m->version, m->name,
                     sqlite3_errmsg(db));
            lucy_store_exec(db, "ROLLBACK");
            sqlite3_finalize(applied);
            json_decref(versions);
            return lucy_store_err(rc);
        }
        lucy_log(LUCY_LOG_DEBUG, "store migration applied", "{s:i,s:s}", "version", m->version,
                 "name", m->name);
        json_array_append_new(versions, json_integer(m->version));
    }
    sqlite3_finalize(applied);
    /* One line for all: a fresh store applies dozens, and the log's repeat
     * suppression would swallow all but the first of one message each. */
    if (json_array_size(versions))
        lucy_log(LUCY_LOG_INFO, "store migrated", "{s:i,s:O}", "migrations",
                 (int)json_array_size(versions), "versions", versions);
    json_decref(versions);
    return 0;
}
