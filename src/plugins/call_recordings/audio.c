/*
 * audio.c - GET /recordings/{id}/audio: a recording's bytes, for the web
 * UI's <audio> player (docs/ui.md), with HTTP range requests.
 *
 * The file is found by recording id, never by a client-supplied path: the
 * id's paths come from the store (recording_paths, present ones first), and
 * a path is used only while its size, mtime and inode are still those the scanner
 * hashed, so the bytes served are the recording's content. The body is
 * sent from the open descriptor (lucy_http_reply_fd: sendfile, no copy in
 * memory), so an hour-long call costs no heap.
 *
 * Ranges (RFC 9110 §14): one range of unit `bytes` - `first-last`,
 * `first-` or the suffix `-N` - gives 206 with Content-Range; a range that
 * starts at or past the end, a zero suffix, or a malformed `bytes=` value
 * gives 416 with a Content-Range that gives the size (RFC 9110 §14.4).
 * Another unit, or several ranges, are ignored (a full 200), as RFC 9110
 * allows. Every reply says Accept-Ranges: bytes.
 *
 * A file held by a sync client (open() or the first read fails with
 * EDEADLK, EAGAIN, EBUSY, ETXTBSY) is 423 file_locked with Retry-After,
 * like POST /recordings/{id}/transcribe; the UI shows it in plain words.
 *
 * Content-Type comes from the container libavformat found at scan time
 * (recordings.format) - the browser needs the container, not the codec.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../error.h"
#include "../../http/http.h"
#include "../../lucy.h"
#include "../../store/store.h"
#include "plugin.h"
#include "scan_int.h"

#define MAX_PATHS 8

/* libavformat demuxer name (first of recordings.format's comma list) ->
 * the media type a browser expects. */
static const struct {
    const char *format;       /* "mov" of "mov,mp4,m4a,3gp,3g2,mj2" */
    const char *content_type; /* IANA media type */
} content_types[] = {
    {"mov", "audio/mp4"},       {"mp4", "audio/mp4"},        {"ogg", "audio/ogg"},
    {"wav", "audio/wav"},       {"mp3", "audio/mpeg"},       {"flac", "audio/flac"},
    {"matroska", "audio/webm"}, {"webm", "audio/webm"},      {"aac", "audio/aac"},
    {"amr", "audio/amr"},       {"aiff", "audio/aiff"},      {"caf", "audio/x-caf"},
    {"asf", "audio/x-ms-asf"},  {"w64", "audio/wav"},        {"au", "audio/basic"},
    {"3gp", "audio/3gpp"},      {"opus", "audio/ogg"},       {"oga", "audio/ogg"},
    {"m4a", "audio/mp4"},       {"ipod", "audio/mp4"},       {"flv", "video/x-flv"},
    {"mpeg", "audio/mpeg"},     {"ac3", "audio/ac3"},        {"wv", "audio/x-wavpack"},
    {"ape", "audio/x-ape"},     {"mpc", "audio/x-musepack"}, {"tta", "audio/x-tta"},
    {"dts", "audio/vnd.dts"},   {"avi", "video/x-msvideo"},
};

static const char *content_type_of(const char *format)
{
    if (!format)
        return "application/octet-stream";
    size_t n = strcspn(format, ",");
    for (size_t i = 0; i < sizeof content_types / sizeof content_types[0]; i++)
        if (strlen(content_types[i].format) == n &&
            strncmp(format, content_types[i].format, n) == 0)
            return content_types[i].content_type;
    return "application/octet-stream";
}

/* ---- Range ------------------------------------------------------------------ */

enum range_result {
    RANGE_NONE,          /* no Range, another unit or several ranges: 200 */
    RANGE_OK,            /* one satisfiable range: 206 */
    RANGE_UNSATISFIABLE, /* 416 */
};

static int parse_u64(const char **p, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    if (*s < '0' || *s > '9')
        return -1;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *p = s;
    *out = v;
    return 0;
}

/* Parses a Range header for a file of size bytes (RFC 9110 §14.1.2,
 * single range). On RANGE_OK sets *first and *length (> 0). Pure. */
static enum range_result parse_range(const char *header, uint64_t size, uint64_t *first,
                                     uint64_t *length)
{
    if (!header)
        return RANGE_NONE;
    while (*header == ' ' || *header == '\t')
        header++;
    if (strncasecmp(header, "bytes=", 6) != 0)
        return RANGE_NONE; /* a unit we do not know: ignore (MUST) */
    const char *p = header + 6;
    while (*p == ' ')
        p++;
    if (strchr(p, ','))
        return RANGE_NONE; /* several ranges: we may ignore them */
    uint64_t a = 0, b = 0;
    if (*p == '-') { /* suffix: the last N bytes */
        p++;
        if (parse_u64(&p, &b) != 0 || b == 0 || size == 0)
            return RANGE_UNSATISFIABLE;
        a = b >= size ? 0 : size - b;
        b = size - 1;
    } else {
        if (parse_u64(&p, &a) != 0 || *p++ != '-')
            return RANGE_UNSATISFIABLE;
        if (*p >= '0' && *p <= '9') {
            if (parse_u64(&p, &b) != 0 || b < a)
                return RANGE_UNSATISFIABLE;
        } else {
            b = UINT64_MAX;
        }
        if (a >= size)
            return RANGE_UNSATISFIABLE;
        if (b >= size)
            b = size - 1;
    }
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p)
        return RANGE_UNSATISFIABLE;
    *first = a;
    *length = b - a + 1;
    return RANGE_OK;
}

/* ---- finding the file ----------------------------------------------------- */

struct audio_row {
    char format[64]; /* recordings.format */
    uint64_t size;   /* recordings.size: bytes hashed */
    int n_paths;     /* used entries */
    struct {
        char *path;       /* bytes for open(), NUL-terminated */
        int64_t mtime_ns; /* as the scanner saw it */
        uint64_t inode;   /* as the scanner saw it: a path swapped for a link to
                           * another file (outside the roots) is not served */
        uint64_t size;    /* as the scanner saw it */
    } paths[MAX_PATHS];
};

struct audio_arg {
    const char *id;
    struct audio_row *row;
};

static int audio_read(sqlite3 *db, void *arg)
{
    struct audio_arg *a = arg;
    sqlite3_stmt *st;
    int err = lucy_store_stmt(db,
                              "SELECT r.format, r.size, p.path, p.size, p.mtime_ns, p.inode"
                              " FROM recordings r LEFT JOIN recording_paths p"
                              " ON p.recording_id = r.id WHERE r.id = ?1"
                              " ORDER BY p.presence = 'present' DESC, p.display_path",
                              &st);
    if (err)
        return err;
    sqlite3_bind_text(st, 1, a->id, -1, SQLITE_STATIC);
    int found = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct audio_row *r = a->row;
        if (!found) {
            const char *format = (const char *)sqlite3_column_text(st, 0);
            snprintf(r->format, sizeof r->format, "%.60s", format ? format : "");
            r->size = (uint64_t)sqlite3_column_int64(st, 1);
            found = 1;
        }
        if (sqlite3_column_type(st, 2) == SQLITE_NULL || r->n_paths == MAX_PATHS)
            continue;
        int len = sqlite3_column_bytes(st, 2);
        char *path = malloc((size_t)len + 1);
        if (!path) {
            err = LUCY_ENOMEM;
            break;
        }
        memcpy(path, sqlite3_column_blob(st, 2), (size_t)len);
        path[len] = '\0';
        r->paths[r->n_paths].path = path;
        r->paths[r->n_paths].size = (uint64_t)sqlite3_column_int64(st, 3);
        r->paths[r->n_paths].mtime_ns = sqlite3_column_int64(st, 4);
        r->paths[r->n_paths].inode = (uint64_t)sqlite3_column_int64(st, 5);
        r->n_paths++;
    }
    if (err)
        return err;
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return lucy_store_err(rc);
    return found ? 0 : LUCY_ENOTFOUND;
}

static void audio_row_free(struct audio_row *r)
{
    for (int i = 0; i < r->n_paths; i++)
        free(r->paths[i].path);
}

/* What opening the paths found, when none could be served. */
struct open_outcome {
    int locked;  /* a path failed with a lock errno */
    int changed; /* a path's size or mtime differs from the scan */
    int denied;  /* EACCES/EPERM */
    int io;      /* EIO and other errors */
};

/* Opens the first path that still holds the recording's bytes and whose
 * byte at probe_offset can be read (a read lock shows there). Returns the
 * descriptor or -1 with *o filled. */
static int open_recording(const struct audio_row *r, uint64_t probe_offset, struct open_outcome *o)
{
    for (int i = 0; i < r->n_paths; i++) {
        /* O_NONBLOCK: a FIFO put in the file's place must not hold an HTTP
         * thread (and so liveness) until someone writes to it */
        int fd = open(r->paths[i].path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
            int e = errno;
            o->locked |= lucy_scan_is_lock_errno(e);
            o->denied |= e == EACCES || e == EPERM;
            o->io |= !lucy_scan_is_lock_errno(e) && e != ENOENT && e != ENOTDIR && e != EACCES &&
                     e != EPERM;
            continue;
        }
        struct stat st;
        if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != r->size ||
            (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec != r->paths[i].mtime_ns ||
            (uint64_t)st.st_ino != r->paths[i].inode) {
            o->changed = 1;
            close(fd);
            continue;
        }
        char byte;
        if (r->size > 0 && pread(fd, &byte, 1, (off_t)probe_offset) < 0) {
            int e = errno;
            o->locked |= lucy_scan_is_lock_errno(e);
            o->io |= !lucy_scan_is_lock_errno(e);
            close(fd);
            continue;
        }
        return fd;
    }
    return -1;
}

static void reply_unservable(struct lucy_http_request *req, struct lucy_http_response *resp,
                             const struct open_outcome *o)
{
    int retry_s = req->ctx->cfg->job_retry_base_s > 0 ? req->ctx->cfg->job_retry_base_s : 30;
    if (o->locked)
        lucy_http_reply_error(resp, LUCY_HTTP_FILE_LOCKED, retry_s,
                              "the recording's file is locked: it is being synced by the cloud "
                              "storage client (Dropbox, iCloud, ...); try playing it again later");
    else if (o->changed)
        lucy_http_reply_error(resp, LUCY_HTTP_CONFLICT, 0,
                              "the recording's file changed since the last scan, so its bytes "
                              "are no longer this recording; rescan (POST /recordings/scan)");
    else if (o->denied)
        lucy_http_reply_error(resp, LUCY_HTTP_FORBIDDEN, 0,
                              "lucy may not read the recording's file; give the user running "
                              "lucy read permission on the recordings folder");
    else if (o->io)
        lucy_http_reply_error(resp, LUCY_HTTP_DEPENDENCY_UNAVAILABLE, retry_s,
                              "the recording's file cannot be read (I/O error); check the disk "
                              "or the mounted folder, then retry");
    else
        lucy_http_reply_error(resp, LUCY_HTTP_NOT_FOUND, 0,
                              "the recording's file is not present (missing, or its folder is "
                              "unmounted); its transcript stays available");
}

static int valid_id(const char *s)
{
    size_t n = strspn(s, "0123456789abcdef");
    return n == 64 && s[n] == '\0';
}

void lucy_recordings_audio(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    struct lucy_recordings *plugin = req->arg;
    const char *id = req->params[0];
    struct audio_row row;
    memset(&row, 0, sizeof row);
    struct audio_arg a = {id, &row};
    int rc = valid_id(id) ? lucy_store_read(plugin->ctx->store, audio_read, &a) : LUCY_ENOTFOUND;
    if (rc == LUCY_ENOTFOUND) {
        lucy_http_reply_error(resp, LUCY_HTTP_NOT_FOUND, 0,
                              "no recording with id %.80s: ids are the hex SHA-256 of the "
                              "content, as listed by GET /recordings",
                              id);
        goto out;
    }
    if (rc) {
        lucy_http_reply_err(resp, rc, "cannot read the recording from the store; retry");
        goto out;
    }

    uint64_t first = 0, length = row.size;
    enum range_result range =
        parse_range(lucy_http_header(req, "Range"), row.size, &first, &length);
    char value[96];
    lucy_http_add_header(resp, "Accept-Ranges", "bytes");
    if (range == RANGE_UNSATISFIABLE) {
        /* 416 is outside DESIGN §5's error list; same body shape. */
        snprintf(value, sizeof value, "bytes */%" PRIu64, row.size);
        lucy_http_add_header(resp, "Content-Range", value);
        char msg[200];
        snprintf(msg, sizeof msg,
                 "the Range is not satisfiable for a file of %" PRIu64
                 " bytes; ask for bytes=first-last within it",
                 row.size);
        lucy_http_reply_json(resp, 416,
                             json_pack("{s:s,s:s,s:I}", "error_type", "range_not_satisfiable",
                                       "message", msg, "size", (json_int_t)row.size));
        goto out;
    }

    struct open_outcome o = {0};
    int fd = open_recording(&row, first, &o);
    if (fd < 0) {
        reply_unservable(req, resp, &o);
        goto out;
    }
    /* Content-addressed: the bytes of an id never change. */
    snprintf(value, sizeof value, "\"%.64s\"", id);
    lucy_http_add_header(resp, "ETag", value);
    lucy_http_add_header(resp, "Cache-Control", "private, max-age=86400");
    lucy_http_add_header(resp, "X-Content-Type-Options", "nosniff");
    if (range == RANGE_OK) {
        snprintf(value, sizeof value, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, first,
                 first + length - 1, row.size);
        lucy_http_add_header(resp, "Content-Range", value);
    }
    lucy_http_reply_fd(resp, range == RANGE_OK ? 206 : 200, content_type_of(row.format), fd, first,
                       length);
out:
    audio_row_free(&row);
}
