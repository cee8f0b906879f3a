/*
 * export.c - `lucy export DIR [--person ID] [--from T] [--to T] [--json]`:
 * the user's conversations as files to read or to feed elsewhere
 * (DESIGN §15 Export). Works on the data dir directly, also while
 * `lucy serve` runs (reads only, like `lucy search`).
 *
 * A conversation is a recording (its call), or one sender's WhatsApp
 * messages on one UTC day (one person's, when the sender is a person).
 * Each becomes two files, NAME.md (Markdown for people) and NAME.json
 * (for programs):
 *   DIR/calls/<YYYY-MM-DD_HHMM>-<title>-<id12>.{md,json}  the JSON is the
 *       GET /recordings/{id} document (its transcript included)
 *   DIR/messages/<YYYY-MM-DD>-<who>-<sender>.{md,json}  {"day","person",
 *       "sender","messages":[{wamid,time,type,text}]}; <who> is the name's
 *       ASCII part (names in other scripts, or two people of one name,
 *       would share it), <sender> the sender's WhatsApp id, which tells the
 *       conversations of a day apart (one person writing from two numbers
 *       has one file per number) and keeps the name stable across exports
 * Only recordings with a transcript are exported. --person keeps the calls
 * with the person's phones and the messages from its WhatsApp ids (the
 * relations GET /people/{id}/timeline uses); --from/--to bound the call's
 * started_at (else its mtime) and the message's time. Existing files of
 * the same name are replaced, so exporting again refreshes the folder.
 *
 * A conversation's two files are written under temporary names and renamed
 * into place together, so a failure (a full disk) leaves whole files or
 * the old ones, never a cut or empty one. The first failure ends the
 * export and is reported once, with what to do (lucy_cmd_fail).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../config.h"
#include "../error.h"
#include "../http/http.h"
#include "../index/index.h"
#include "../people/people.h"
#include "../plugins/call_recordings/export.h"
#include "../plugins/call_recordings/recording.h"
#include "../store/row.h"
#include "../store/store.h"
#include "cmd.h"

struct export_flags {
    const char *person, *from, *to; /* as given */
    int json;                       /* --json */
};

static int export_flag(const char *arg, const char *next, void *state)
{
    struct export_flags *f = state;
    static const struct {
        const char *flag;
        size_t offset;
    } with_value[] = {
        {"--person", offsetof(struct export_flags, person)},
        {"--from", offsetof(struct export_flags, from)},
        {"--to", offsetof(struct export_flags, to)},
    };
    if (strcmp(arg, "--json") == 0) {
        f->json = 1;
        return 1;
    }
    for (size_t i = 0; i < sizeof with_value / sizeof with_value[0]; i++) {
        if (strcmp(arg, with_value[i].flag) != 0)
            continue;
        if (!next) {
            lucy_cmd_error("%s needs a value; see `lucy help`", arg);
            return -1;
        }
        *(const char **)((char *)f + with_value[i].offset) = next;
        return 2;
    }
    return 0;
}

/* What is exported: bounds in UTC ms, the person (0 = everyone). */
struct scope {
    int64_t from_ms, to_ms;
    int64_t person;
};

/* A file's failure by its errno: the error it is (the error_type of
 * --json) and what to do. A file where DIR or a folder on its path should
 * be is the user's choice of DIR, not a missing one (ENOTDIR). The last row
 * for the rest. */
static const struct {
    int errnum, err;
    const char *advice;
} file_errors[] = {
    {ENOSPC, LUCY_ENOSPC,
     "free space on the disk that holds DIR (df -h DIR) or export to a "
     "folder on another disk, then run lucy export again (nothing cut or "
     "empty was left)"},
    {EDQUOT, LUCY_ENOSPC,
     "free space within your disk quota or export to a folder on another "
     "disk, then run lucy export again (nothing cut or empty was left)"},
    {EACCES, LUCY_EPERM,
     "export to a folder you may write to (or fix its permissions), then run "
     "lucy export again"},
    {EPERM, LUCY_EPERM,
     "export to a folder you may write to (or fix its permissions), then run "
     "lucy export again"},
    {EROFS, LUCY_EPERM,
     "DIR is on a read-only file system: export to a folder on a writable "
     "disk (or remount it read-write), then run lucy export again"},
    {ENOTDIR, LUCY_EINVAL,
     "DIR (or a folder on its path) is a file, not a folder: choose "
     "another DIR, or move the file away"},
    {ENOENT, LUCY_ENOTFOUND,
     "DIR's parent folder does not exist: create it or choose another "
     "DIR"},
    {0, LUCY_EIO, "check DIR and the data dir, then run lucy export again"},
};

/* The first failure of an export, reported once at the end. */
struct failure {
    int err;            /* LUCY_E*; 0 = none yet */
    const char *advice; /* what to do (static) */
    char message[700];  /* what failed */
};

static void vfailed(struct failure *f, int err, const char *advice, const char *fmt, va_list ap)
{
    if (f->err)
        return; /* the first failure is the cause */
    f->err = err;
    f->advice = advice;
    vsnprintf(f->message, sizeof f->message, fmt, ap);
}

/* Records a failure that is not a file's (out of memory, the store)
 * unless one came first. */
static void failed(struct failure *f, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void failed(struct failure *f, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfailed(f, err, file_errors[sizeof file_errors / sizeof file_errors[0] - 1].advice, fmt, ap);
    va_end(ap);
}

/* Records a file's failure (errnum: its errno) unless one came first. */
static void file_failed(struct failure *f, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void file_failed(struct failure *f, int errnum, const char *fmt, ...)
{
    size_t i = 0;
    while (file_errors[i].errnum && file_errors[i].errnum != errnum)
        i++;
    va_list ap;
    va_start(ap, fmt);
    vfailed(f, file_errors[i].err, file_errors[i].advice, fmt, ap);
    va_end(ap);
}

/* ---- reading -------------------------------------------------------------- */

struct ids {
    char (*id)[65]; /* recording ids, oldest call first */
    size_t n, cap;
};

static const char sql_recordings[] =
    "SELECT r.id FROM recordings r LEFT JOIN recording_calls c ON c.recording_id = r.id"
    " WHERE EXISTS (SELECT 1 FROM transcripts t WHERE t.recording_id = r.id)"
    " AND coalesce(c.started_at_ms, r.mtime_ns / 1000000) BETWEEN ?1 AND ?2"
    " AND (?3 = 0 OR c.number_e164 IN (SELECT value FROM people_identifiers"
    "  WHERE person = ?3 AND kind = 'phone'))"
    " ORDER BY coalesce(c.started_at_ms, r.mtime_ns / 1000000), r.id";

struct rec_read {
    const struct scope *sc;
    struct ids *out;
};

static int read_recordings(sqlite3 *db, void *arg)
{
    struct rec_read *a = arg;
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db, sql_recordings, &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, a->sc->from_ms);
    sqlite3_bind_int64(st, 2, a->sc->to_ms);
    sqlite3_bind_int64(st, 3, a->sc->person);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct ids *o = a->out;
        if (o->n == o->cap) {
            size_t cap = o->cap ? o->cap * 2 : 64;
            void *p = realloc(o->id, cap * sizeof *o->id);
            if (!p) {
                sqlite3_reset(st);
                return LUCY_ENOMEM;
            }
            o->id = p;
            o->cap = cap;
        }
        lucy_row_copy(st, 0, o->id[o->n++], sizeof o->id[0]);
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : lucy_store_err(rc);
}

/* Messages in order of conversation (person or sender, day), then time. */
static const char sql_messages[] =
    "SELECT m.wamid, m.sender, m.timestamp_s, m.type, m.text, m.profile_name, p.person"
    " FROM wa_messages m LEFT JOIN people_identifiers p"
    "  ON p.kind IN ('wa_id', 'user_id') AND p.value = m.sender"
    " WHERE m.timestamp_s * 1000 BETWEEN ?1 AND ?2 AND (?3 = 0 OR p.person = ?3)"
    " ORDER BY coalesce(p.person, -1), m.sender, m.timestamp_s / 86400, m.timestamp_s, m.seq";

/* One conversation of messages being collected. */
struct convo {
    json_t *doc;    /* the JSON file's object, NULL = none open */
    char key[160];  /* person or sender, and day: a new key ends the convo */
    char file[200]; /* base name */
    int64_t person; /* 0 = none */
    char who[200];  /* display name */
};

struct msg_read {
    const struct scope *sc;
    const char *dir;      /* DIR/messages */
    size_t written;       /* conversations */
    struct failure *fail; /* set when a file could not be written */
};

static void day_of(int64_t s, char *out, size_t len, const char *fmt)
{
    time_t t = (time_t)s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, len, fmt, &tm);
}

/* One file of a conversation, its text written under a temporary name
 * (tmp, 4096 bytes) beside its own. 0, or -1 with the failure recorded
 * and nothing left behind. */
static int write_tmp(const char *dir, const char *base, const char *ext, const char *text,
                     size_t len, char *tmp, struct failure *fail)
{
    snprintf(tmp, 4096, "%s/.%s.%s.%ld.tmp", dir, base, ext, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        int e = errno;
        if (fd >= 0)
            close(fd), unlink(tmp);
        file_failed(fail, e, "cannot write %s/%s.%s: %s", dir, base, ext, strerror(e));
        return -1;
    }
    size_t n = fwrite(text, 1, len, f);
    int e = n != len ? errno : 0;
    if (fclose(f) != 0 && !e)
        e = errno;
    if (n != len || e) {
        unlink(tmp);
        e = e ? e : EIO;
        file_failed(fail, e, "cannot write %s/%s.%s: %s", dir, base, ext, strerror(e));
        return -1;
    }
    return 0;
}

/* A conversation's BASE.md and BASE.json, both or neither: written under
 * temporary names, then renamed over any old ones. 0 or -1 (recorded). */
static int write_pair(const char *dir, const char *base, const char *md, size_t md_len,
                      const char *js, struct failure *fail)
{
    char md_tmp[4096], js_tmp[4096], path[4096];
    if (write_tmp(dir, base, "md", md, md_len, md_tmp, fail) != 0)
        return -1;
    if (write_tmp(dir, base, "json", js, strlen(js), js_tmp, fail) != 0) {
        unlink(md_tmp);
        return -1;
    }
    static const char *const exts[] = {"md", "json"};
    const char *tmps[] = {md_tmp, js_tmp};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s.%s", dir, base, exts[i]);
        if (rename(tmps[i], path) != 0) {
            int e = errno;
            for (int k = i; k < 2; k++)
                unlink(tmps[k]);
            file_failed(fail, e, "cannot rename into %s: %s", path, strerror(e));
            return -1;
        }
    }
    return 0;
}

/* The Markdown of a messages conversation. malloc'd, *len. */
static char *messages_md(const json_t *doc, size_t *len)
{
    char *buf = NULL;
    FILE *out = open_memstream(&buf, len);
    if (!out)
        return NULL;
    fprintf(out, "# Messages with %s, %s\n\n", json_string_value(json_object_get(doc, "who")),
            json_string_value(json_object_get(doc, "day")));
    size_t i;
    const json_t *m;
    json_array_foreach(json_object_get(doc, "messages"), i, m)
    {
        char hm[8];
        day_of(json_integer_value(json_object_get(m, "time")), hm, sizeof hm, "%H:%M");
        const char *text = json_string_value(json_object_get(m, "text"));
        fprintf(out, "- **%s** ", hm);
        if (text && *text)
            for (const char *p = text; *p; p++) /* a line break stays inside the item */
                if (*p == '\n')
                    fputs("  \n  ", out);
                else
                    fputc(*p, out);
        else
            fprintf(out, "_(%s)_", json_string_value(json_object_get(m, "type")));
        fputc('\n', out);
    }
    fclose(out);
    return buf;
}

static void convo_close(struct msg_read *a, struct convo *c)
{
    if (!c->doc)
        return;
    if (a->fail->err) { /* the export has already failed: no more files */
        json_decref(c->doc);
        c->doc = NULL;
        return;
    }
    size_t md_len = 0;
    char *md = messages_md(c->doc, &md_len);
    char *js = json_dumps(c->doc, JSON_INDENT(2) | LUCY_JSON_REALS);
    if (!md || !js)
        failed(a->fail, LUCY_ENOMEM, "out of memory rendering %s", c->file);
    else if (write_pair(a->dir, c->file, md, md_len, js, a->fail) == 0)
        a->written++;
    free(md);
    free(js);
    json_decref(c->doc);
    c->doc = NULL;
}

/* The file name part for a display name: ASCII letters and digits, '_'
 * for the rest (at most 40 characters). keep: more characters kept as they
 * are ("" = none; ".-" for a WhatsApp id, which may read "US.123"). */
static void name_part(const char *name, const char *keep, char *out, size_t len)
{
    size_t n = 0;
    for (const char *p = name; *p && n + 1 < len && n < 40; p++)
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr(keep, *p))
            out[n++] = *p;
        else if (n && out[n - 1] != '_')
            out[n++] = '_';
    out[n] = '\0';
}

static int convo_open(sqlite3 *db, struct convo *c, sqlite3_stmt *st, const char *key)
{
    const char *sender = (const char *)sqlite3_column_text(st, 1);
    const char *profile = (const char *)sqlite3_column_text(st, 5);
    char day[16], name[64], from[64];
    c->person = sqlite3_column_type(st, 6) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, 6);
    snprintf(c->who, sizeof c->who, "%s", profile && *profile ? profile : sender);
    json_t *person = json_null();
    if (c->person) {
        json_t *p = NULL;
        int rc = lucy_people_json(db, c->person, 0, &p);
        if (rc && rc != LUCY_ENOTFOUND)
            return rc;
        if (p) {
            snprintf(c->who, sizeof c->who, "%s", json_string_value(json_object_get(p, "name")));
            person = json_pack("{s:O,s:O}", "id", json_object_get(p, "id"), "name",
                               json_object_get(p, "name"));
            json_decref(p);
        }
    }
    day_of(sqlite3_column_int64(st, 2), day, sizeof day, "%Y-%m-%d");
    name_part(c->who, "", name, sizeof name);
    name_part(sender, ".-", from, sizeof from);
    snprintf(c->file, sizeof c->file, "%s-%s-%s", day, name[0] ? name : "unknown", from);
    snprintf(c->key, sizeof c->key, "%s", key);
    c->doc = json_pack("{s:s,s:s,s:o,s:s,s:[]}", "day", day, "who", c->who, "person", person,
                       "sender", sender, "messages");
    return c->doc ? 0 : LUCY_ENOMEM;
}

static int read_messages(sqlite3 *db, void *arg)
{
    struct msg_read *a = arg;
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db, sql_messages, &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, a->sc->from_ms);
    sqlite3_bind_int64(st, 2, a->sc->to_ms);
    sqlite3_bind_int64(st, 3, a->sc->person);
    struct convo c = {0};
    while (rc == 0 && !a->fail->err && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        rc = 0;
        char key[160];
        int64_t ts = sqlite3_column_int64(st, 2);
        snprintf(key, sizeof key, "%lld/%.100s/%lld",
                 sqlite3_column_type(st, 6) == SQLITE_NULL ? -1LL
                                                           : (long long)sqlite3_column_int64(st, 6),
                 sqlite3_column_text(st, 1), (long long)(ts / 86400));
        if (c.doc && strcmp(c.key, key) != 0)
            convo_close(a, &c);
        if (!c.doc && (rc = convo_open(db, &c, st, key)) != 0)
            break;
        json_array_append_new(
            json_object_get(c.doc, "messages"),
            json_pack("{s:s,s:I,s:s,s:o}", "wamid", sqlite3_column_text(st, 0), "time",
                      (json_int_t)ts, "type", sqlite3_column_text(st, 3), "text",
                      sqlite3_column_type(st, 4) == SQLITE_NULL
                          ? json_null()
                          : json_string((const char *)sqlite3_column_text(st, 4))));
    }
    sqlite3_reset(st);
    convo_close(a, &c);
    return rc == SQLITE_DONE || rc == 0 ? 0 : rc < 0 ? rc : lucy_store_err(rc);
}

/* ---- calls ---------------------------------------------------------------- */

/* The Markdown of a recording: title, facts, transcript lines. */
static char *call_md(const json_t *rec, size_t *len)
{
    size_t tlen = 0;
    char *transcript = lucy_export_render(json_object_get(rec, "transcript"),
                                          json_object_get(rec, "call"), LUCY_EXPORT_TXT, &tlen);
    char *buf = NULL;
    FILE *out = transcript ? open_memstream(&buf, len) : NULL;
    if (!out) {
        free(transcript);
        return NULL;
    }
    const json_t *call = json_object_get(rec, "call");
    fprintf(out, "# %s\n\n", json_string_value(json_object_get(rec, "title")));
    const json_t *started = json_object_get(call, "started_at");
    if (json_is_string(started))
        fprintf(out, "- Started: %s\n", json_string_value(started));
    const json_t *number = json_object_get(json_object_get(call, "number"), "e164");
    if (json_is_string(number))
        fprintf(out, "- Number: %s\n", json_string_value(number));
    const json_t *dur = json_object_get(rec, "duration_s");
    if (json_is_number(dur))
        fprintf(out, "- Duration: %.0f s\n", json_number_value(dur));
    fprintf(out, "- Recording: %s\n\n## Transcript\n\n",
            json_string_value(json_object_get(rec, "id")));
    for (char *line = transcript, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        fprintf(out, "%s  \n", line);
    }
    fclose(out);
    free(transcript);
    return buf;
}

static int export_call(struct lucy_store *store, const char *id, const char *dir,
                       struct failure *fail)
{
    json_t *rec = NULL;
    int rc = lucy_recording_json(store, id, &rec);
    if (rc == LUCY_ENOTFOUND) /* forgotten since the list was read */
        return 0;
    if (rc) {
        failed(fail, rc, "cannot read recording %s: %s", id, lucy_strerror(rc));
        return -1;
    }
    char stamp[32] = "undated", base[160], name[128];
    const json_t *call = json_object_get(rec, "call");
    const char *started = json_string_value(json_object_get(call, "started_at"));
    int64_t s;
    if (started && lucy_index_parse_time(started, 0, &s) == 0)
        day_of(s, stamp, sizeof stamp, "%Y-%m-%d_%H%M");
    lucy_export_file_name(json_string_value(json_object_get(rec, "title")), id, "x", name,
                          sizeof name);
    name[strlen(name) - 2] = '\0'; /* without ".x": md and json follow */
    snprintf(base, sizeof base, "%s-%s", stamp, name);
    size_t md_len = 0;
    char *md = call_md(rec, &md_len);
    char *js = json_dumps(rec, JSON_INDENT(2) | LUCY_JSON_REALS);
    json_decref(rec);
    if (!md || !js) {
        failed(fail, LUCY_ENOMEM, "out of memory rendering recording %s", id);
        rc = -1;
    } else {
        rc = write_pair(dir, base, md, md_len, js, fail);
    }
    free(md);
    free(js);
    return rc;
}

/* ---- the command ---------------------------------------------------------- */

/* A folder made, or one already there; a file of its name is ENOTDIR (an
 * EEXIST from mkdir says nothing of what exists). */
static int make_dir(const char *path, struct failure *fail)
{
    struct stat st;
    int e = mkdir(path, 0755) == 0 ? 0 : errno;
    if (e == EEXIST)
        e = stat(path, &st) != 0 ? errno : S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
    if (e == 0)
        return 0;
    file_failed(fail, e, "cannot create the folder %s: %s", path,
                e == ENOTDIR ? "a file of that name is there" : strerror(e));
    return -1;
}

/* --person must name a person: an unknown id would export nothing and
 * look like a person without conversations. 0 or LUCY_ENOTFOUND. */
static int read_person(sqlite3 *db, void *arg)
{
    json_t *o = NULL;
    int rc = lucy_people_json(db, *(const int64_t *)arg, 0, &o);
    json_decref(o);
    return rc;
}

static int parse_scope(const struct export_flags *f, struct scope *sc)
{
    sc->from_ms = INT64_MIN / 2;
    sc->to_ms = INT64_MAX / 2;
    const char *bounds[2] = {f->from, f->to};
    for (int end = 0; end < 2; end++) {
        int64_t s;
        if (!bounds[end])
            continue;
        if (lucy_index_parse_time(bounds[end], end, &s) != 0) {
            lucy_cmd_error("--%s must be Unix seconds or an ISO 8601 date or date-time "
                           "(2024-05-31), not \"%s\"",
                           end ? "to" : "from", bounds[end]);
            return -1;
        }
        if (end)
            sc->to_ms = s * 1000 + 999;
        else
            sc->from_ms = s * 1000;
    }
    if (f->person) {
        char *e;
        errno = 0;
        sc->person = strtoll(f->person, &e, 10);
        if (*e || errno || sc->person <= 0) {
            lucy_cmd_error("--person must be a person's id as GET /people lists it, not \"%s\"",
                           f->person);
            return -1;
        }
    }
    return 0;
}

int lucy_cmd_export(int argc, char **argv)
{
    struct lucy_config cfg;
    struct export_flags f = {0};
    const char *dir = NULL;
    int n_pos = 0;
    struct scope sc = {0};
    int rc = lucy_cmd_config(&cfg, argc, argv, export_flag, &f, &dir, 1, &n_pos);
    if (rc == 0 && (n_pos != 1 || parse_scope(&f, &sc) != 0)) {
        if (n_pos != 1)
            lucy_cmd_error("usage: lucy export DIR [--person ID] [--from T] [--to T] [--json]");
        rc = LUCY_EXIT_USAGE;
    }
    if (rc)
        goto out;
    struct lucy_store *store;
    struct lucy_index *ix;
    if ((rc = lucy_cmd_open_index(&cfg, 1, &store, &ix)) != 0)
        goto out;
    struct failure fail = {0};
    struct ids ids = {0};
    struct rec_read rr = {&sc, &ids};
    char calls_dir[4096], msgs_dir[4096];
    struct msg_read mr = {.sc = &sc, .dir = msgs_dir, .fail = &fail};
    size_t calls = 0;
    snprintf(calls_dir, sizeof calls_dir, "%s/calls", dir);
    snprintf(msgs_dir, sizeof msgs_dir, "%s/messages", dir);
    int err = sc.person ? lucy_store_read(store, read_person, &sc.person) : 0;
    if (err == LUCY_ENOTFOUND) {
        failed(&fail, err, "no person %lld; nothing was exported", (long long)sc.person);
        fail.advice = "GET /people lists people and their ids (a merged person answers under "
                      "the id it was merged into)";
    } else if (err == 0 &&
               (make_dir(dir, &fail) || make_dir(calls_dir, &fail) || make_dir(msgs_dir, &fail)))
        err = fail.err;
    if (err == 0)
        err = lucy_store_read(store, read_recordings, &rr);
    for (size_t i = 0; err == 0 && i < ids.n; i++) {
        if (export_call(store, ids.id[i], calls_dir, &fail) != 0)
            err = fail.err;
        else
            calls++;
    }
    if (err == 0)
        err = lucy_store_read(store, read_messages, &mr);
    if (err == 0)
        err = fail.err;
    free(ids.id);
    lucy_index_close(ix);
    lucy_store_close(store);
    if (err) {
        if (!fail.err)
            failed(&fail, err, "cannot read the store: %s", lucy_strerror(err));
        if (calls == 0 && mr.written == 0)
            lucy_cmd_fail(f.json, fail.err, fail.advice, "%s", fail.message);
        else
            lucy_cmd_fail(f.json, fail.err, fail.advice,
                          "export incomplete: %s (%zu calls and %zu conversations of messages "
                          "were written whole)",
                          fail.message, calls, mr.written);
        rc = LUCY_EXIT_FAILED;
    } else if (f.json) {
        json_t *o = json_pack("{s:s,s:I,s:I}", "dir", dir, "calls", (json_int_t)calls,
                              "message_conversations", (json_int_t)mr.written);
        char *text = json_dumps(o, JSON_COMPACT);
        printf("%s\n", text ? text : "{}");
        free(text);
        json_decref(o);
    } else {
        printf("exported %zu calls and %zu conversations of messages to %s\n", calls, mr.written,
               dir);
    }
out:
    lucy_config_free(&cfg);
    return rc;
}
