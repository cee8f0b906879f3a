/*
 * remedies.c - every remedy `lucy doctor` can print, in one table.
 *
 * These are the runbook's own words: docs/operations.md (section "lucy
 * doctor", "Remedies") quotes each text verbatim, and
 * tests/unit/doctor_test.c fails when one is missing there. Change a text
 * here and in the document together. Texts are constant: what varies (a
 * path, a count, the server's message) goes into the check's summary.
 */
#include "doctor.h"

static const char *const remedies[LUCY_REMEDY_COUNT] = {
    [LUCY_REMEDY_NONE] = "",
    [LUCY_REMEDY_DISK_WARN] =
        "Free space on this file system before it becomes critical: `docker system df` shows "
        "what Docker holds; `docker builder prune` and `docker image prune` are safe; never run "
        "`docker volume prune` or `docker system prune --volumes` without checking what they "
        "delete.",
    [LUCY_REMEDY_DISK_CRITICAL] =
        "Free space now. lucy has released its reserve, paused transcriptions and temp copies, "
        "and still accepts webhooks; everything resumes by itself once free space is above the "
        "warn level, without a restart. Safe on a Docker host: `docker builder prune`, "
        "`docker image prune`, `docker container prune`; `docker volume prune` and "
        "`docker system prune --volumes` destroy data.",
    [LUCY_REMEDY_DISK_UNMEASURED] =
        "lucy cannot measure this path (statvfs failed): check that it exists and is mounted "
        "(for the data dir, point --data or LUCY_DATA_DIR at the one `lucy serve` uses), or "
        "remove it from LUCY_DISK_PATHS if it is listed there.",
    [LUCY_REMEDY_RESERVE_RELEASED] =
        "The reserve was released on purpose because the disk is critical, so the inbox has "
        "room: free space, and lucy recreates the reserve by itself once the disk is above the "
        "warn level.",
    [LUCY_REMEDY_RESERVE_MISSING] =
        "Run `lucy doctor --fix` to recreate the reserve file now; `lucy serve` also recreates "
        "it by itself while the disk is at level ok.",
    [LUCY_REMEDY_RESERVE_NO_ROOM] =
        "The reserve is recreated only at level ok, and only when creating it does not make the "
        "disk critical: free space first.",
    [LUCY_REMEDY_TEMP_STALE] =
        "These temp copies belong to a run that ended without cleaning up: `lucy doctor --fix` "
        "removes them while no `lucy serve` runs on this data dir, and `lucy serve` removes "
        "them when it starts.",
    [LUCY_REMEDY_STORE_MISSING] =
        "There is no database in this data dir: point --data (or LUCY_DATA_DIR) at the "
        "directory `lucy serve` uses; a new installation gets its database at the first start.",
    [LUCY_REMEDY_STORE_UNREADABLE] =
        "The database cannot be opened: check its owner and permissions, free space, and "
        "`dmesg` for I/O errors (see \"The store is not writable\").",
    [LUCY_REMEDY_STORE_DAMAGED] =
        "The database is damaged (a corrupt page, or its file or -wal was lost or replaced): "
        "stop lucy, keep a copy of the data dir as it is, and restore the last good backup "
        "(see \"A damaged store\"). Until then lucy's readiness fails.",
    [LUCY_REMEDY_BACKUP_LATE] =
        "Scheduled backups are late or missing: look for \"scheduled backup skipped or failed\" "
        "in lucy's log (usually too little free space in LUCY_BACKUP_DIR), free space there, or "
        "run `lucy backup DIR` by hand.",
    [LUCY_REMEDY_INBOX_BACKLOG] =
        "The messages are safe on disk and retried with backoff: the cause is usually Redis or "
        "the search index (see those checks) or a stopped `lucy serve`; the backlog drains by "
        "itself once the cause is gone.",
    [LUCY_REMEDY_OUTBOX_BACKLOG] =
        "Documents wait in the outbox and are retried with backoff: fix the search backend (the "
        "qdrant check, or free space for the embedded index) and the outbox drains by itself.",
    [LUCY_REMEDY_OUTBOX_FAILED] =
        "The search backend rejected documents: fix the cause named in the first error (for "
        "example a collection of that name without the sparse vector `text`), then run "
        "`lucy reindex`.",
    [LUCY_REMEDY_JOBS_BLOCKED] =
        "Transcriptions wait for disk space: free space, and blocked jobs are queued again by "
        "themselves when the disk recovers.",
    [LUCY_REMEDY_KV_PENDING] =
        "Writes for Redis wait in the local store and are replayed within about a second of "
        "Redis accepting writes again (`lucy kv replay` does it by hand): fix Redis first.",
    [LUCY_REMEDY_REDIS_UNREACHABLE] =
        "Start Redis or fix the host and port in REDIS_URL (`redis-cli -u \"$REDIS_URL\" "
        "PING`); lucy reconnects by itself, and webhooks are accepted meanwhile.",
    [LUCY_REMEDY_REDIS_AUTH] =
        "Fix the user and password in REDIS_URL (redis://[user]:PASSWORD@host:port) to match "
        "Redis's requirepass or ACL user, and grant that user the commands lucy needs.",
    [LUCY_REMEDY_REDIS_LOADING] =
        "Redis is loading its dataset after a restart: wait until `redis-cli INFO persistence` "
        "shows loading:0.",
    [LUCY_REMEDY_REDIS_MISCONF] =
        "Redis cannot save its snapshot (usually a full disk) and refuses writes: free space in "
        "Redis's dir (`redis-cli CONFIG GET dir`), then `redis-cli BGSAVE`. If writes are "
        "needed before the space is back, `lucy doctor --fix` sets stop-writes-on-bgsave-error "
        "to no, and a later `lucy doctor --fix` restores yes after a successful BGSAVE.",
    [LUCY_REMEDY_REDIS_AOF] =
        "Redis cannot write its append-only file: free space in Redis's dir (`redis-cli CONFIG "
        "GET dir`); Redis accepts writes again by itself once an AOF write succeeds.",
    [LUCY_REMEDY_REDIS_BGSAVE_FAILED] =
        "Redis's last background save failed although it still accepts writes: free space in "
        "Redis's dir, then `redis-cli BGSAVE` until INFO persistence shows "
        "rdb_last_bgsave_status:ok.",
    [LUCY_REMEDY_REDIS_LIFTED] =
        "lucy doctor holds stop-writes-on-bgsave-error at no, so Redis accepts writes it cannot "
        "save (a Redis restart now loses them): free space in Redis's dir, then run "
        "`lucy doctor --fix` again to BGSAVE and restore yes.",
    [LUCY_REMEDY_REDIS_STOP_WRITES_NO] =
        "stop-writes-on-bgsave-error is no (set by hand or by LUCY_REDIS_AUTOHEAL) while saves "
        "fail: free space in Redis's dir, `redis-cli BGSAVE`, then `redis-cli CONFIG SET "
        "stop-writes-on-bgsave-error yes` (auto-heal restores yes by itself).",
    [LUCY_REMEDY_REDIS_MEMORY] =
        "Redis is at or close to its maxmemory and refuses writes with OOM when no key can be "
        "evicted (maxmemory-policy noeviction, or volatile-* with no key left to expire): raise "
        "maxmemory (`redis-cli CONFIG SET maxmemory ...` and in its config file), or choose a "
        "policy that can evict any key (`redis-cli CONFIG SET maxmemory-policy allkeys-lru`); "
        "lucy's keys can be rebuilt. Refused alias writes wait in lucy's kv_pending and are "
        "replayed once Redis takes writes.",
    [LUCY_REMEDY_QDRANT_UNREACHABLE] =
        "Start Qdrant or fix QDRANT_URL (`curl \"$QDRANT_URL/readyz\"`); meanwhile /search "
        "answers from the local copy and documents wait in the outbox.",
    [LUCY_REMEDY_QDRANT_NO_COLLECTION] =
        "The collection does not exist yet: `lucy serve` creates it in the background; if it "
        "stays missing, the qdrant checks in /health say why.",
    [LUCY_REMEDY_QDRANT_RED] =
        "Qdrant reports the collection red (an optimization failed): read Qdrant's log; the "
        "cause is often a full disk under its storage.",
    [LUCY_REMEDY_QDRANT_INDEXES_PENDING] =
        "Payload indexes are not created yet: `lucy serve` retries by itself; if Qdrant answers "
        "\"WAL buffer size exceeds available disk space\", free space under its storage (it "
        "needs 2 x wal_capacity_mb free).",
    [LUCY_REMEDY_SCAN_FAILED] =
        "The last scan could not write to the store (disk full or I/O error): free space; the "
        "scanner tries again by itself.",
    [LUCY_REMEDY_LOCKED_FILES] =
        "A sync client (Dropbox, iCloud, OneDrive) holds these files; lucy retries them with "
        "backoff. If they stay locked, let the client finish syncing (or restart it) and make "
        "sure the files are downloaded, not placeholders.",
    [LUCY_REMEDY_MEDIA_MISSING] =
        "Install lucy's media module (lucy-media.so) next to the lucy binary, or run `meson "
        "install -C build`; until it is there recordings wait unprobed and untranscribed, and "
        "nothing is lost: the next scan takes them.",
    [LUCY_REMEDY_ASR_ENGINE] =
        "Set what the summary names (LUCY_ASR_ENGINE, LUCY_WHISPER_MODEL or LUCY_ASR_URL) and "
        "restart lucy; until then transcription jobs fail with that reason, and POST "
        "/recordings/{id}/transcribe retries one.",
};

const char *lucy_doctor_remedy_text(enum lucy_doctor_remedy r)
{
    return (unsigned)r < LUCY_REMEDY_COUNT && remedies[r] ? remedies[r] : "";
}
