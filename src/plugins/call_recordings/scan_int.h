/*
 * scan_int.h - internals shared by the scanner's files (DESIGN §6); not for
 * use outside src/plugins/call_recordings/ except by the scanner's tests.
 *
 *   classify.c  outcomes, the errno-by-name table, skip rules, display names
 *   walk.c      the directory walk (openat/fstatat, byte-exact names)
 *   probe.c     content probing and metadata with libavformat on an open fd
 *   hash.c      streamed SHA-256 (OpenSSL EVP) on an open fd
 *   scan_store.c the scanner's tables: known paths, batched result writes,
 *               roots, the kept summary
 *   scan.c      one scan: per-file pipeline, per-root passes, the summary
 *   scanner.c   the "scanner" thread: periodic and inotify-triggered scans
 */
#ifndef LUCY_SCAN_INT_H
#define LUCY_SCAN_INT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "callmeta.h"
#include "scan.h"

/* ---- classify.c ------------------------------------------------------ */

/* One outcome per file and scan: the DESIGN §6 summary keys, in order. */
enum lucy_scan_outcome {
    LUCY_SCAN_NEW,               /* a recording at a path that had none */
    LUCY_SCAN_CHANGED,           /* the path now holds different content */
    LUCY_SCAN_UNCHANGED,         /* same (size, mtime_ns, ctime_ns, inode), or same hash */
    LUCY_SCAN_LOCKED,            /* EDEADLK, EAGAIN, EBUSY, ETXTBSY */
    LUCY_SCAN_PLACEHOLDER,       /* cloud placeholder: st_blocks == 0, size > 0 */
    LUCY_SCAN_IGNORED,           /* sync artefact or zero-length */
    LUCY_SCAN_CHANGING,          /* modified within the settle time, or during the read */
    LUCY_SCAN_CORRUPT,           /* audio container that does not decode */
    LUCY_SCAN_PERMISSION_DENIED, /* EACCES, EPERM */
    LUCY_SCAN_IO_ERROR,          /* EIO and any other unexpected errno */
    LUCY_SCAN_UNSUPPORTED,       /* not audio by content */
    LUCY_SCAN_MISSING,           /* a known file that disappeared */
    LUCY_SCAN_UNAVAILABLE,       /* a known file whose root vanished or emptied */
    LUCY_SCAN_N_OUTCOMES
};

/* The summary key of an outcome ("new", "permission_denied", ...).
 * Static string; "unknown" when out of range. Thread-safe. */
const char *lucy_scan_outcome_name(enum lucy_scan_outcome o);

/* The symbolic name of an errno value ("EDEADLK"), from a table so that
 * logs and the summary never show platform-specific numbers. Names that
 * are not in the table come from strerrorname_np() (glibc); "EUNKNOWN" if
 * even that fails. Static string. Thread-safe. */
const char *lucy_scan_errno_name(int errnum);

/* The outcome for a per-file error (table in classify.c, DESIGN §6):
 * lock errors -> LOCKED, EACCES/EPERM -> PERMISSION_DENIED, ENOENT/ENOTDIR
 * (vanished between listing and opening) -> MISSING, ELOOP -> IGNORED,
 * anything else -> IO_ERROR. Thread-safe. */
enum lucy_scan_outcome lucy_scan_errno_outcome(int errnum);

/* 1 when errnum says a sync client holds the file (EDEADLK, EAGAIN, EBUSY,
 * ETXTBSY): the one rule the scanner, the worker's temp copy and the
 * audio route all follow. Thread-safe. */
int lucy_scan_is_lock_errno(int errnum);

/* 1 when a file name is a sync or partial-download artefact that is never
 * read: `._*`, `*.tmp`, `*.partial`, `*.download`, `.dropbox*`, `~*`
 * (DESIGN §6). name is the last path component, as bytes. Thread-safe. */
int lucy_scan_is_sync_artefact(const char *name);

/* 1 when a folder name is a sync client's cache or state, a NAS index or
 * a trash can (`.dropbox*`, `.sync`, `.stfolder`, `@eaDir`,
 * `.Trash*`, `$RECYCLE.BIN`; DESIGN §16): the walk skips such folders
 * whole (counted `ignored`). name is the last component. Thread-safe. */
int lucy_scan_is_sync_folder(const char *name);

/* 1 when a path (len bytes) goes through a sync folder (above) or a folder
 * named Backup/Backups (any of its folders, not the file name): a copy
 * there is never a recording's primary path while another exists.
 * Thread-safe. */
int lucy_scan_path_is_secondary(const char *path, size_t len);

/* 1 when name ends in ".json": a recorder's sidecar (BCR writes NAME.json
 * beside NAME.<ext>), never a recording of its own. Thread-safe. */
int lucy_scan_is_sidecar_name(const char *name);

/* The length of NAME when name is NAME.<ext> for an audio extension a
 * sidecar may sit beside (the table in classify.c, any case), else 0. A
 * sidecar NAME.json has its audio when a regular file of the same folder
 * has that stem: the scanner decides it from the walk's own listing (no
 * extra stat). Thread-safe. */
size_t lucy_scan_audio_stem(const char *name);

/* The sidecar name of an audio file name: its last extension replaced by
 * ".json" (NAME.m4a -> NAME.json). 0, or -1 when out (outlen bytes) is too
 * small. */
int lucy_scan_sidecar_name(const char *audio, char *out, size_t outlen);

/* Classifies a regular file from its name and stat alone: returns 1 and
 * sets *out to IGNORED (sync artefact or size 0) or PLACEHOLDER
 * (st_blocks == 0 && st_size > 0: a cloud file not downloaded), or 0 when
 * the file has to be looked at further. Thread-safe. */
int lucy_scan_classify_stat(const char *name, const struct stat *st, enum lucy_scan_outcome *out);

/* 1 when the file was modified less than settle_s seconds before now_ns
 * (CLOCK_REALTIME, ns): still recording or syncing -> CHANGING. */
int lucy_scan_is_settling(const struct stat *st, int64_t now_ns, int settle_s);

/* st_mtim as nanoseconds since the epoch. */
int64_t lucy_scan_mtime_ns(const struct stat *st);

/* st_ctim as nanoseconds since the epoch: unlike the mtime, no program can
 * set it back, so a file rewritten in place with its mtime restored still
 * shows a new ctime. */
int64_t lucy_scan_ctime_ns(const struct stat *st);

/* The display form of a byte path: valid UTF-8 is copied; each maximal
 * subpart of an ill-formed sequence (Unicode §3.9) and each NUL byte
 * becomes one U+FFFD, as Python's errors="replace" and browsers do.
 * Returns a malloc'd NUL-terminated string the caller frees, or NULL on
 * allocation failure. Thread-safe. */
char *lucy_scan_display_name(const char *bytes, size_t len);

/* ---- walk.c ---------------------------------------------------------- */

#define LUCY_SCAN_MAX_DEPTH 64 /* directory levels below a root */

/* Callbacks of one walk. path is the root joined with the entry's byte
 * name(s) by '/', valid until the callback returns. */
struct lucy_scan_walk_ops {
    /* A regular file (a file symlink is followed: st is its target's).
     * dirfd/name open it with openat(). Non-zero stops the walk and is
     * returned by lucy_scan_walk(). */
    int (*on_file)(void *arg, int dirfd, const char *name, const char *path, size_t path_len,
                   const struct stat *st);
    /* A directory entered (the root too, depth 0). May be NULL. */
    void (*on_dir)(void *arg, const char *path, int depth);
    /* A directory (not the root) that could not be opened or read, or a
     * symlink that could not be resolved; errnum is its errno. Files
     * below it are unknown, not missing. May be NULL. */
    void (*on_error)(void *arg, const char *path, int errnum, int is_dir);
    /* A symlink (to a directory when is_dir) that resolves outside every
     * configured root: skipped, never read. May be NULL. */
    void (*on_outside)(void *arg, const char *path, int is_dir);
    /* A sync folder (lucy_scan_is_sync_folder()) that was not entered.
     * May be NULL. */
    void (*on_sync_folder)(void *arg, const char *path);
    /* Every entry of a directory entered with on_dir has been listed
     * (its subdirectories walked); dirfd is still open on it (-1 when it
     * could not be listed at all). Decisions that need a whole folder
     * (does a file's sidecar exist?) are made here. May be NULL. */
    void (*on_dir_done)(void *arg, int dirfd, const char *path, int depth);
};

/* A configured root's identity: the directory it resolves to. */
struct lucy_scan_root_id {
    dev_t dev; /* st_dev */
    ino_t ino; /* st_ino */
};

/* Walks root depth-first with openat()/fstatat(): names are used as bytes,
 * never decoded. Directory symlinks are followed only with
 * follow_symlinks, and any symlink only when it resolves inside root or
 * one of roots[0..n_roots) (the other configured roots; may be NULL/0),
 * else on_outside is called; every directory's (st_dev, st_ino) is remembered so
 * none is entered twice (loops end), and nothing deeper than
 * LUCY_SCAN_MAX_DEPTH is entered. Returns 0, a positive errno when the
 * root itself cannot be opened as a directory, or the non-zero value of an
 * on_file callback. *n_files (may be NULL) counts on_file calls. Not
 * thread-safe per call; separate walks may run in parallel. */
int lucy_scan_walk(const char *root, int follow_symlinks, const struct lucy_scan_root_id *roots,
                   size_t n_roots, const struct lucy_scan_walk_ops *ops, void *arg,
                   uint64_t *n_files);

/* ---- probe.c --------------------------------------------------------- */

enum lucy_scan_probe_result {
    LUCY_SCAN_PROBE_AUDIO,       /* a recording: metadata filled */
    LUCY_SCAN_PROBE_UNSUPPORTED, /* not audio by content */
    LUCY_SCAN_PROBE_CORRUPT,     /* audio container that does not decode; reason set */
    LUCY_SCAN_PROBE_READ_ERROR   /* a read failed; errnum set */
};

/* What the probe learned about a file. */
struct lucy_scan_probe {
    double duration_s;   /* container duration, as ffprobe's format duration; -1 unknown */
    char codec[32];      /* decoder name, "aac", "opus", "pcm_s16le", ... */
    char format[32];     /* demuxer name, "mov,mp4,m4a,3gp,3g2,mj2", "ogg", ... (cut) */
    int sample_rate;     /* Hz; 0 unknown */
    int channels;        /* 0 unknown */
    int64_t bit_rate;    /* bits/s: the stream's declared rate, else size/duration */
    json_t *tags;        /* {"title": ..., "com.apple.quicktime.location.ISO6709": ...} */
    char reason[256];    /* CORRUPT/UNSUPPORTED: why (the decoder's or demuxer's words) */
    char warning[256];   /* AUDIO: e.g. damaged tags left empty; "" = none */
    int errnum;          /* READ_ERROR: errno of the failed read */
    uint64_t bytes_read; /* bytes read through the descriptor */
};

/* Probes the content of the regular file open on fd (size bytes), reading
 * with pread() only (the descriptor's offset is not used), decoding one
 * audio frame to prove the audio is readable. The file name is never
 * consulted: formats are recognised by content. Fills *out (release with
 * lucy_scan_probe_clear()) and returns its verdict. Thread-safe (libav*
 * state is per call). */
enum lucy_scan_probe_result lucy_scan_probe_fd(int fd, int64_t size, struct lucy_scan_probe *out);
void lucy_scan_probe_clear(struct lucy_scan_probe *p);

/* ---- hash.c ---------------------------------------------------------- */

struct lucy_scan_hasher;

/* A reusable SHA-256 streamer with its read buffer; NULL on allocation
 * failure. One per scanning thread. */
struct lucy_scan_hasher *lucy_scan_hasher_new(void);
void lucy_scan_hasher_free(struct lucy_scan_hasher *h);

/* SHA-256 of the whole file open on fd, read from offset 0 with large
 * pread() calls until end of file. Writes 64 lowercase hex digits and a
 * NUL into hex, the bytes read into *bytes. Returns 0, or -1 with *errnum
 * set (a read failed; EIO if the digest itself failed). */
int lucy_scan_hash_fd(struct lucy_scan_hasher *h, int fd, char hex[65], uint64_t *bytes,
                      int *errnum);

/* ---- scan_store.c ---------------------------------------------------- */

struct lucy_store;

/* What a path holds (recording_paths.status). */
enum lucy_scan_path_status {
    LUCY_SCAN_PATH_RECORDING,         /* audio: recording_id is its content */
    LUCY_SCAN_PATH_CORRUPT,           /* audio container that does not decode */
    LUCY_SCAN_PATH_UNSUPPORTED,       /* not audio */
    LUCY_SCAN_PATH_LOCKED,            /* a sync client held it at the last look */
    LUCY_SCAN_PATH_PERMISSION_DENIED, /* EACCES, EPERM */
    LUCY_SCAN_PATH_IO_ERROR,          /* any other read error */
    LUCY_SCAN_PATH_N_STATUSES
};

/* The stored name of a path status ("permission_denied"). Static string. */
const char *lucy_scan_path_status_name(enum lucy_scan_path_status s);

/* Whether a known path was there at the last look (recording_paths.presence). */
enum lucy_scan_presence {
    LUCY_SCAN_PRESENCE_PRESENT,     /* found */
    LUCY_SCAN_PRESENCE_MISSING,     /* gone from a root that is there */
    LUCY_SCAN_PRESENCE_UNAVAILABLE, /* its root vanished or emptied */
    LUCY_SCAN_N_PRESENCES
};

/* One stored path below a root, as the last scan left it. */
struct lucy_scan_known {
    char *path;                        /* bytes, NUL-terminated (names never hold NUL) */
    size_t path_len;                   /* strlen(path) */
    int64_t size;                      /* bytes, as last stored */
    int64_t mtime_ns;                  /* ns since the epoch */
    int64_t inode;                     /* st_ino */
    int64_t ctime_ns;                  /* st_ctim, ns (0: stored before migration 43) */
    enum lucy_scan_path_status status; /* what it held */
    enum lucy_scan_presence presence;  /* whether it was there */
    char recording_id[65];             /* "" when the path holds no recording */
    char errno_name[24];               /* of the last failure */
    int attempts;                      /* consecutive failures with this status */
    int64_t next_retry_s;              /* locked: not before this (automatic scans) */
    int seen;                          /* found by this scan's walk */
    /* The recording's call (recording_calls), for the call's change test
     * (scan.c call_stale()); meaningful when status is RECORDING. */
    int has_call;             /* the recording has a call row */
    int forgotten;            /* its content was forgotten (a tombstone): nothing to read */
    int is_call_path;         /* the call was read from this path */
    int call_path_alive;      /* the call's path is known and not missing */
    int call_path_secondary;  /* the call's path is a sync/backup copy */
    int64_t sidecar_ctime_ns; /* is_call_path: the sidecar's ctime when read;
                                 0 = there was none, -1 = it could not be read */
};

/* The known paths of one root, found by their bytes. */
struct lucy_scan_known_map {
    struct lucy_scan_known *rows; /* n rows */
    size_t n, cap;
    size_t *slots; /* open addressing: index + 1, 0 = empty; nslots a power of two */
    size_t nslots;
};

/* Loads every stored path below root (whichever root it was stored
 * under: roots may nest) into *map (zeroed first by the caller). One store
 * read. 0, LUCY_EINVAL (root too long), LUCY_ENOMEM or a store error;
 * free with lucy_scan_known_free() on every path. */
int lucy_scan_known_load(struct lucy_store *store, const char *root,
                         struct lucy_scan_known_map *map);
struct lucy_scan_known *lucy_scan_known_find(const struct lucy_scan_known_map *m, const char *path,
                                             size_t len);
void lucy_scan_known_free(struct lucy_scan_known_map *m);

/* A pending write of one scan. */
enum lucy_scan_item_kind {
    LUCY_SCAN_ITEM_RESULT,   /* a file was examined: upsert its path (and recording) */
    LUCY_SCAN_ITEM_PRESENT,  /* an unchanged file is back: presence = present */
    LUCY_SCAN_ITEM_MISSING,  /* a known file is gone: presence = missing */
    LUCY_SCAN_ITEM_LEDGER,   /* the ingest ledger's row of the path (ledger.h): ledger_outcome,
                                errno_name = its reason code, last_error = its reason,
                                next_retry_s, recording_id (call_metadata) */
    LUCY_SCAN_ITEM_UNLEDGER, /* the path left the ledger (a clean recording, or gone) */
};

struct lucy_scan_item {
    enum lucy_scan_item_kind kind;
    char *path; /* bytes (owned) */
    size_t path_len;
    char *display; /* UTF-8 display form (owned; RESULT only) */
    int64_t size, mtime_ns, inode, ctime_ns;
    enum lucy_scan_path_status status; /* stored status */
    char recording_id[65];             /* content id when status is RECORDING */
    char old_recording_id[65];         /* the path's previous recording, to re-rate */
    int keep_recording;                /* failures: the path keeps its recording_id */
    struct lucy_scan_probe probe;      /* metadata for a recording (tags owned) */
    char *last_error;                  /* owned; NULL = none */
    const char *errno_name;            /* static; NULL = none */
    int attempts;                      /* consecutive failures */
    int64_t next_retry_s;              /* locked: retry not before */
    struct lucy_call_meta *call;       /* a recording's call metadata (owned; NULL = none) */
    int64_t sidecar_ctime_ns;          /* the sidecar read for call: its ctime; 0 = none,
                                          -1 = unreadable */
    const char *ledger_outcome;        /* LEDGER: the row's outcome (static) */
};

/* Frees what an item owns and zeroes it. */
void lucy_scan_item_clear(struct lucy_scan_item *it);

/* Writes n items of root in ONE store write (a group commit): paths,
 * recordings new to the store with their transcription jobs
 * (lucy_jobs_enqueue), presences, the scan_status of every recording
 * they touch, and the call (recording_calls) of each item that carries
 * one when its path is the recording's primary path
 * (lucy_scan_primary_better()) or the recording has no call yet; a call
 * whose started_at changed re-dates the recording's search documents
 * (lucy_transcript_redate). now_s stamps the rows. 0 or a store error (nothing of the
 * batch is kept). The items stay the caller's. */
int lucy_scan_items_write(struct lucy_store *store, const char *root, int64_t now_s,
                          const struct lucy_scan_item *items, size_t n);

/* Loads the ingest ledger's rows below root (ledger.h) into *map (zeroed
 * by the caller; free with lucy_ledger_map_free()). One store read. 0,
 * LUCY_EINVAL (root too long), LUCY_ENOMEM or a store error. */
struct lucy_ledger_map;
int lucy_scan_ledger_load(struct lucy_store *store, const char *root, struct lucy_ledger_map *map);

/* Records a walked root in scan_roots; when available, its ingest ledger
 * rows are stamped last seen now (the walk noted each again: the others
 * were dropped before); when !available (vanished or
 * emptied) its present paths become unavailable and their recordings are
 * re-rated - never deleted. One store write. 0 or a store error. */
int lucy_scan_root_write(struct lucy_store *store, const char *root, const char *display,
                         int available, uint64_t files_seen, int64_t now_s);

/* The primary-path rule (DESIGN §12): among a recording's paths the
 * primary one - shown, and the one its call is read from - is a present
 * one, then one outside sync folders and backups
 * (lucy_scan_path_is_secondary()), then the oldest seen, then the lowest
 * bytes. 1 when path a (present_a, first_seen_a Unix s) comes before b. */
int lucy_scan_primary_better(const char *a, size_t a_len, int present_a, int64_t first_seen_a,
                             const char *b, size_t b_len, int present_b, int64_t first_seen_b);

/* meta[LUCY_SCAN_SUMMARY_META_KEY] = text (the summary JSON). One store
 * write. 0 or a store error. */
int lucy_scan_summary_keep(struct lucy_store *store, const char *text);

/* ---- scan.c ---------------------------------------------------------- */

struct lucy_thread;

/* How one scan behaves beyond the configuration. */
struct lucy_scan_options {
    int honor_backoff; /* 1: skip locked files until their next_retry (automatic scans) */
    /* Called for every directory entered, e.g. to add inotify watches. */
    void (*on_dir)(void *arg, const char *path, int depth);
    void *arg;
    struct lucy_thread *stop; /* stops the scan between files once stopping; may be NULL */
    /* LUCY_CALL_NAME_PATTERNS parsed once by the plugin; NULL = parse
     * ctx->cfg's for this scan. */
    const struct lucy_call_patterns *patterns;
};

/* lucy_scan_run() with options (NULL = defaults: retry every locked file
 * now, as an explicit scan should). Same contract as lucy_scan_run(). */
int lucy_scan_run_opts(struct lucy_ctx *ctx, const char *dirs, const struct lucy_scan_options *opt,
                       struct lucy_scan_summary *out);

#endif
