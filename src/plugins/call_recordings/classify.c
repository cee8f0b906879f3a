/*
 * classify.c - the scanner's rules as tables (DESIGN §6): outcome names,
 * errno names and what each errno means for a file, the names of sync
 * artefacts that are never read, and the display form of byte paths.
 *
 * errno values differ between systems (EDEADLK is 35 on Linux, 11 on
 * macOS), so everything lucy shows or stores uses the symbolic name from
 * errno_table[], never the number.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <strings.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../../utf8.h"
#include "scan_int.h"

static const char *const outcome_names[LUCY_SCAN_N_OUTCOMES] = {
    [LUCY_SCAN_NEW] = "new",
    [LUCY_SCAN_CHANGED] = "changed",
    [LUCY_SCAN_UNCHANGED] = "unchanged",
    [LUCY_SCAN_LOCKED] = "locked",
    [LUCY_SCAN_PLACEHOLDER] = "placeholder",
    [LUCY_SCAN_IGNORED] = "ignored",
    [LUCY_SCAN_CHANGING] = "changing",
    [LUCY_SCAN_CORRUPT] = "corrupt",
    [LUCY_SCAN_PERMISSION_DENIED] = "permission_denied",
    [LUCY_SCAN_IO_ERROR] = "io_error",
    [LUCY_SCAN_UNSUPPORTED] = "unsupported",
    [LUCY_SCAN_MISSING] = "missing",
    [LUCY_SCAN_UNAVAILABLE] = "unavailable",
};

const char *lucy_scan_outcome_name(enum lucy_scan_outcome o)
{
    return (unsigned)o < LUCY_SCAN_N_OUTCOMES ? outcome_names[o] : "unknown";
}

/* errno -> name and per-file outcome. Lock errors come from sync clients
 * (Dropbox/iCloud/OneDrive file providers hold files with EDEADLK or
 * EAGAIN while they download or upload them). Rows not listed map to
 * IO_ERROR with strerrorname_np()'s name. */
static const struct {
    int errnum;                     /* the value on this system */
    const char *name;               /* its symbolic name */
    enum lucy_scan_outcome outcome; /* what it means for one file */
} errno_table[] = {
    {EDEADLK, "EDEADLK", LUCY_SCAN_LOCKED},
    {EAGAIN, "EAGAIN", LUCY_SCAN_LOCKED},
#if EWOULDBLOCK != EAGAIN
    {EWOULDBLOCK, "EWOULDBLOCK", LUCY_SCAN_LOCKED},
#endif
    {EBUSY, "EBUSY", LUCY_SCAN_LOCKED},
    {ETXTBSY, "ETXTBSY", LUCY_SCAN_LOCKED},
    {EACCES, "EACCES", LUCY_SCAN_PERMISSION_DENIED},
    {EPERM, "EPERM", LUCY_SCAN_PERMISSION_DENIED},
    {EIO, "EIO", LUCY_SCAN_IO_ERROR},
    {ELIBACC, "ELIBACC", LUCY_SCAN_IO_ERROR}, /* the media module is missing (src/media) */
    {ECHILD, "ECHILD", LUCY_SCAN_IO_ERROR},   /* the media process died probing it (remote.c) */
    {ENOENT, "ENOENT", LUCY_SCAN_MISSING},
    {ENOTDIR, "ENOTDIR", LUCY_SCAN_MISSING},
    {ELOOP, "ELOOP", LUCY_SCAN_IGNORED},
    {ESTALE, "ESTALE", LUCY_SCAN_IO_ERROR},
    {ENXIO, "ENXIO", LUCY_SCAN_IO_ERROR},
    {ENODEV, "ENODEV", LUCY_SCAN_IO_ERROR},
    {ENOMEM, "ENOMEM", LUCY_SCAN_IO_ERROR},
    {EMFILE, "EMFILE", LUCY_SCAN_IO_ERROR},
    {ENFILE, "ENFILE", LUCY_SCAN_IO_ERROR},
    {EINVAL, "EINVAL", LUCY_SCAN_IO_ERROR},
    {EINTR, "EINTR", LUCY_SCAN_IO_ERROR},
    {ENAMETOOLONG, "ENAMETOOLONG", LUCY_SCAN_IO_ERROR},
    {EOVERFLOW, "EOVERFLOW", LUCY_SCAN_IO_ERROR},
    {ETIMEDOUT, "ETIMEDOUT", LUCY_SCAN_IO_ERROR},
    {ENOTCONN, "ENOTCONN", LUCY_SCAN_IO_ERROR},
    {EHOSTDOWN, "EHOSTDOWN", LUCY_SCAN_IO_ERROR},
    {ECONNABORTED, "ECONNABORTED", LUCY_SCAN_IO_ERROR},
    {EROFS, "EROFS", LUCY_SCAN_IO_ERROR},
    {ENOSPC, "ENOSPC", LUCY_SCAN_IO_ERROR},
};
#define N_ERRNOS (sizeof errno_table / sizeof errno_table[0])

const char *lucy_scan_errno_name(int errnum)
{
    for (size_t i = 0; i < N_ERRNOS; i++)
        if (errno_table[i].errnum == errnum)
            return errno_table[i].name;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
    const char *name = strerrorname_np(errnum);
    if (name)
        return name;
#endif
    return "EUNKNOWN";
}

enum lucy_scan_outcome lucy_scan_errno_outcome(int errnum)
{
    for (size_t i = 0; i < N_ERRNOS; i++)
        if (errno_table[i].errnum == errnum)
            return errno_table[i].outcome;
    return LUCY_SCAN_IO_ERROR;
}

int lucy_scan_is_lock_errno(int errnum)
{
    return lucy_scan_errno_outcome(errnum) == LUCY_SCAN_LOCKED;
}

/* Names sync clients and downloaders give files that are not (yet) the
 * real thing: macOS AppleDouble resource forks (`._x`), temporary and
 * partial downloads (`.crdownload` is Chrome's, listed with the others),
 * Dropbox's own state files, and editors'/Office's `~` lock files. Plain
 * prefix/suffix rows rather than fnmatch(3): this runs once per file on
 * every rescan. */
static const struct {
    const char *text; /* the bytes to match */
    size_t len;       /* their count */
    int at_end;       /* 1: suffix, 0: prefix */
} sync_artefacts[] = {
    {"._", 2, 0},        {".dropbox", 8, 0},     {"~", 1, 0}, {".tmp", 4, 1}, {".partial", 8, 1},
    {".download", 9, 1}, {".crdownload", 11, 1},
};

int lucy_scan_is_sync_artefact(const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof sync_artefacts / sizeof sync_artefacts[0]; i++) {
        size_t len = sync_artefacts[i].len;
        if (n >= len && memcmp(sync_artefacts[i].at_end ? name + n - len : name,
                               sync_artefacts[i].text, len) == 0)
            return 1;
    }
    return 0;
}

/* Folders sync clients, NAS indexers and trash cans keep copies or state
 * in: exactly DESIGN §16's list (.dropbox.cache is one of .dropbox*). Never
 * walked, and a path through one is never a recording's primary path. Rows:
 * the exact name, or a prefix. */
static const struct {
    const char *text; /* the bytes to match */
    size_t len;       /* their count */
    int prefix;       /* 1: any name starting with text */
} sync_folders[] = {
    {".dropbox", 8, 1},      /* .dropbox.cache, .dropbox.attr: Dropbox */
    {".sync", 5, 0},         /* Resilio Sync's archive and state */
    {".stfolder", 9, 0},     /* Syncthing's marker folder */
    {"@eaDir", 6, 0},        /* Synology's thumbnail/index folder */
    {".Trash", 6, 1},        /* .Trash, .Trashes, .Trash-1000 */
    {"$RECYCLE.BIN", 12, 0}, /* Windows' recycle bin */
};

int lucy_scan_is_sync_folder(const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof sync_folders / sizeof sync_folders[0]; i++)
        if ((sync_folders[i].prefix ? n >= sync_folders[i].len : n == sync_folders[i].len) &&
            memcmp(name, sync_folders[i].text, sync_folders[i].len) == 0)
            return 1;
    return 0;
}

/* Folder names that hold second copies by convention: a phone backup, an
 * exported archive. A copy there is the same call, not its home. */
static const char *const backup_folders[] = {"Backup", "Backups", "backup", "backups"};

int lucy_scan_path_is_secondary(const char *path, size_t len)
{
    for (size_t start = 0; start < len;) {
        const char *slash = memchr(path + start, '/', len - start);
        size_t end = slash ? (size_t)(slash - path) : len;
        char name[256];
        size_t n = end - start;
        if (slash && n > 0 && n < sizeof name) { /* folders only, not the file */
            memcpy(name, path + start, n);
            name[n] = '\0';
            if (lucy_scan_is_sync_folder(name))
                return 1;
            for (size_t i = 0; i < sizeof backup_folders / sizeof *backup_folders; i++)
                if (strcmp(name, backup_folders[i]) == 0)
                    return 1;
        }
        start = end + 1;
    }
    return 0;
}

/* Audio extensions a recorder's sidecar may sit beside (BCR: oga, m4a,
 * flac, wav, amr; other recorders: the rest). Tried lower and upper case. */
static const char *const sidecar_audio_exts[] = {"m4a", "oga", "ogg", "opus", "flac", "wav",
                                                 "amr", "mp3", "3gp", "aac",  "mp4",  "webm"};

int lucy_scan_is_sidecar_name(const char *name)
{
    size_t n = strlen(name);
    return n > 5 && strcmp(name + n - 5, ".json") == 0;
}

size_t lucy_scan_audio_stem(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot || dot == name)
        return 0;
    for (size_t i = 0; i < sizeof sidecar_audio_exts / sizeof *sidecar_audio_exts; i++)
        if (strcasecmp(dot + 1, sidecar_audio_exts[i]) == 0)
            return (size_t)(dot - name);
    return 0;
}

int lucy_scan_sidecar_name(const char *audio, char *out, size_t outlen)
{
    const char *dot = strrchr(audio, '.');
    size_t stem = dot && dot != audio ? (size_t)(dot - audio) : strlen(audio);
    if (stem + 6 > outlen)
        return -1;
    memcpy(out, audio, stem);
    memcpy(out + stem, ".json", 6);
    return 0;
}

int lucy_scan_classify_stat(const char *name, const struct stat *st, enum lucy_scan_outcome *out)
{
    if (lucy_scan_is_sync_artefact(name) || st->st_size == 0) {
        *out = LUCY_SCAN_IGNORED;
        return 1;
    }
    if (st->st_blocks == 0 && st->st_size > 0) {
        *out = LUCY_SCAN_PLACEHOLDER;
        return 1;
    }
    return 0;
}

int64_t lucy_scan_mtime_ns(const struct stat *st)
{
    return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

int64_t lucy_scan_ctime_ns(const struct stat *st)
{
    return (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
}

int lucy_scan_is_settling(const struct stat *st, int64_t now_ns, int settle_s)
{
    if (settle_s <= 0)
        return 0;
    return lucy_scan_mtime_ns(st) > now_ns - (int64_t)settle_s * 1000000000;
}

char *lucy_scan_display_name(const char *bytes, size_t len)
{
    return lucy_utf8_display(bytes, len);
}
