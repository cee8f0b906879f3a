/*
 * callmeta.c - what a call recording says about itself (see callmeta.h).
 *
 * lucy_call_meta_read() asks the sources in precedence order: sidecar,
 * file name, tags, mtime. Each source offers values through one setter per
 * kind (set_started, set_number, set_name, ...); a setter takes a value
 * only while its field is still unknown, and only once the value passed
 * validation, so "first source that knows wins" lives in the setters and
 * the sources stay straight-line readers. A refused value leaves a warning
 * that says which source offered what and why it was refused.
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "../../utf8.h"
#include "callmeta.h"
#include "callname.h"

#define DAY_MS      86400000LL
#define EARLIEST_MS 631152000000LL /* 1990-01-01T00:00:00Z: no call recorder before */

static const char *const source_names[] = {
    [LUCY_CALL_SRC_NONE] = NULL,
    [LUCY_CALL_SRC_SIDECAR] = "sidecar",
    [LUCY_CALL_SRC_FILE_NAME] = "file_name",
    [LUCY_CALL_SRC_TAGS] = "tags",
    [LUCY_CALL_SRC_MTIME] = "mtime",
};

static const char *const direction_names[] = {
    [LUCY_CALL_DIR_UNKNOWN] = NULL,
    [LUCY_CALL_DIR_IN] = "in",
    [LUCY_CALL_DIR_OUT] = "out",
    [LUCY_CALL_DIR_CONFERENCE] = "conference",
};

const char *lucy_call_source_name(enum lucy_call_source source)
{
    return (unsigned)source < sizeof source_names / sizeof *source_names ? source_names[source]
                                                                         : NULL;
}

const char *lucy_call_direction_name(enum lucy_call_direction direction)
{
    return (unsigned)direction < sizeof direction_names / sizeof *direction_names
               ? direction_names[direction]
               : NULL;
}

/* Name fields: where each lives in the struct and what it is called. */
static const struct {
    enum lucy_call_field field;
    size_t offset;
    const char *what;
} name_fields[] = {
    {LUCY_CALL_CONTACT_NAME, offsetof(struct lucy_call_meta, contact_name), "contact_name"},
    {LUCY_CALL_CALLER_NAME, offsetof(struct lucy_call_meta, caller_name), "caller_name"},
    {LUCY_CALL_CALL_LOG_NAME, offsetof(struct lucy_call_meta, call_log_name), "call_log_name"},
    {LUCY_CALL_FILE_NAME_NAME, offsetof(struct lucy_call_meta, file_name), "file_name"},
    {LUCY_CALL_TAG_NAME, offsetof(struct lucy_call_meta, tag_name), "tag_name"},
};
#define N_NAME_FIELDS (sizeof name_fields / sizeof name_fields[0])

/* ---- warnings ----------------------------------------------------------- */

__attribute__((format(printf, 2, 3))) static void warn(struct lucy_call_meta *m, const char *fmt,
                                                       ...)
{
    if (m->warning_count == LUCY_CALL_WARNINGS_MAX) {
        m->warnings_dropped++;
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->warnings[m->warning_count++], LUCY_CALL_WARNING_SIZE, fmt, ap);
    va_end(ap);
}

/* ---- dates -------------------------------------------------------------- */

struct when {
    int64_t ms;       /* UTC epoch ms, or wall clock read as UTC (local_only) */
    int offset_min;   /* east of UTC */
    int offset_known; /* the source gave +HH:MM */
    int local_only;   /* the source gave no zone at all */
};

static int two(const char *s)
{
    return s[0] >= '0' && s[0] <= '9' && s[1] >= '0' && s[1] <= '9' ? (s[0] - '0') * 10 + s[1] - '0'
                                                                    : -1;
}

/* ISO 8601 as recorders and FFmpeg write it: YYYY-MM-DD[T ]HH:MM[:SS[.f]]
 * then Z, +HH, +HHMM, +HH:MM or nothing (local wall-clock time). Z is a
 * known instant but no known local offset. 0, or -1 when s is not that. */
static int parse_iso8601(const char *s, struct when *w)
{
    size_t n = strlen(s);
    if (n < 16 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != ' ') || s[13] != ':')
        return -1;
    int year = two(s) * 100 + two(s + 2), sec = 0, ms = 0;
    if (two(s) < 0 || two(s + 2) < 0)
        return -1;
    const char *p = s + 16;
    if (*p == ':') {
        sec = two(p + 1);
        p += 3;
        if (*p == '.' || *p == ',') {
            int k = 0;
            for (p++; *p >= '0' && *p <= '9'; p++, k++)
                if (k < 3)
                    ms = ms * 10 + (*p - '0');
            for (; k < 3; k++)
                ms *= 10;
        }
    }
    int64_t t = lucy_call_civil_ms(year, two(s + 5), two(s + 8), two(s + 11), two(s + 14), sec, ms);
    if (t < 0)
        return -1;
    *w = (struct when){.ms = t};
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1, hh = two(p + 1), mm = 0;
        p += 3;
        if (*p == ':')
            p++;
        if (*p >= '0' && *p <= '9')
            mm = two(p), p += 2;
        if (hh < 0 || hh > 14 || mm < 0 || mm > 59)
            return -1;
        w->offset_min = sign * (hh * 60 + mm);
        w->offset_known = 1;
        w->ms -= (int64_t)w->offset_min * 60000;
    } else {
        w->local_only = 1;
    }
    return *p ? -1 : 0;
}

/* Writes w as ISO 8601 for a warning. */
static void format_when(const struct when *w, char *out, size_t outlen)
{
    time_t secs = (time_t)((w->ms + (int64_t)w->offset_min * 60000) / 1000);
    struct tm tm;
    if (w->ms < -62135596800000LL || !gmtime_r(&secs, &tm)) {
        snprintf(out, outlen, "%lld ms", (long long)w->ms);
        return;
    }
    snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* Takes w as started_at if that is still unknown and w is plausible. */
static void set_started(struct lucy_call_meta *m, const struct lucy_call_input *in,
                        enum lucy_call_source src, const char *what, const struct when *w)
{
    if (m->source[LUCY_CALL_STARTED_AT])
        return;
    char text[40];
    format_when(w, text, sizeof text);
    if (w->ms < EARLIEST_MS) {
        warn(m, "%s: %s %s is before 1990; ignored", source_names[src], what, text);
        return;
    }
    if (in->now_ms > 0 && w->ms > in->now_ms + DAY_MS) {
        warn(m, "%s: %s %s is in the future; ignored", source_names[src], what, text);
        return;
    }
    m->started_at_ms = w->ms;
    m->utc_offset_min = w->offset_known ? w->offset_min : 0;
    m->utc_offset_known = w->offset_known;
    m->started_at_local_only = w->local_only;
    m->source[LUCY_CALL_STARTED_AT] = src;
}

static void set_iso_date(struct lucy_call_meta *m, const struct lucy_call_input *in,
                         enum lucy_call_source src, const char *what, const char *value)
{
    struct when w;
    if (m->source[LUCY_CALL_STARTED_AT])
        return;
    if (parse_iso8601(value, &w) == 0)
        set_started(m, in, src, what, &w);
    else
        warn(m, "%s: %s is not an ISO 8601 date and time; ignored", source_names[src], what);
}

/* ---- names and numbers -------------------------------------------------- */

/* The longest prefix of s[0..len) that ends on a whole UTF-8 character. */
static size_t utf8_whole(const char *s, size_t len)
{
    size_t p = len;
    while (p > 0 && ((unsigned char)s[p - 1] & 0xC0) == 0x80)
        p--;
    if (p == 0)
        return 0;
    unsigned char lead = (unsigned char)s[p - 1];
    size_t need = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
    return len - (p - 1) >= need ? len : p - 1;
}

/* Cleans a name into out (LUCY_CALL_NAME_SIZE bytes): must be UTF-8;
 * control characters (C0, DEL, C1) become spaces; runs of spaces and
 * underscores at the ends are trimmed; capped at a character boundary.
 * 1 = usable, 0 = refused (with a warning unless it was simply empty). */
static int clean_name(struct lucy_call_meta *m, enum lucy_call_source src, const char *what,
                      const char *s, size_t len, char *out)
{
    if (!lucy_utf8_valid(s, len)) {
        warn(m, "%s: %s is not valid UTF-8; ignored", source_names[src], what);
        return 0;
    }
    size_t n = 0;
    int controls = 0, truncated = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        int c1 = c == 0xC2 && i + 1 < len && (unsigned char)s[i + 1] >= 0x80 &&
                 (unsigned char)s[i + 1] <= 0x9F;
        if (c < 0x20 || c == 0x7F || c1) {
            controls = 1;
            i += c1;
            c = ' ';
        }
        if (c == ' ' && (n == 0 || out[n - 1] == ' '))
            continue; /* no leading or doubled spaces */
        if (n == LUCY_CALL_NAME_SIZE - 1) {
            truncated = 1;
            break;
        }
        out[n++] = (char)c;
    }
    if (truncated)
        n = utf8_whole(out, n);
    while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == '_'))
        n--;
    out[n] = '\0';
    if (controls)
        warn(m, "%s: control characters removed from %s", source_names[src], what);
    if (truncated)
        warn(m, "%s: %s cut to %d bytes", source_names[src], what, LUCY_CALL_NAME_SIZE - 1);
    if (!n && controls)
        warn(m, "%s: %s is empty without its control characters; ignored", source_names[src], what);
    return n > 0;
}

static void set_name(struct lucy_call_meta *m, enum lucy_call_field field,
                     enum lucy_call_source src, const char *s, size_t len)
{
    for (size_t i = 0; i < N_NAME_FIELDS; i++) {
        if (name_fields[i].field != field || m->source[field])
            continue;
        char *out = (char *)m + name_fields[i].offset;
        if (clean_name(m, src, name_fields[i].what, s, len, out))
            m->source[field] = src;
        else
            out[0] = '\0';
    }
}

/* Offers raw (len bytes) as the call's number. A number libphonenumber
 * cannot normalise (no region, invalid) is still what the recorder wrote:
 * it is kept raw, unlinked, with a warning. Returns 0 only when raw is no
 * number at all, so the caller may look elsewhere. */
static int set_number(struct lucy_call_meta *m, const struct lucy_call_input *in,
                      enum lucy_call_source src, const char *raw, size_t len)
{
    if (m->source[LUCY_CALL_NUMBER])
        return 1;
    char text[LUCY_CALL_NUMBER_SIZE];
    while (len && raw[len - 1] == ' ')
        len--;
    while (len && *raw == ' ')
        raw++, len--;
    if (!len)
        return 0;
    if (len >= sizeof text || memchr(raw, '\0', len)) {
        warn(m, "%s: number longer than %zu bytes; ignored", source_names[src], sizeof text - 1);
        return 0;
    }
    memcpy(text, raw, len);
    text[len] = '\0';
    int rc = lucy_phone_normalize(text, in->default_region, m->number_e164);
    if (rc == LUCY_PHONE_NOT_A_NUMBER) {
        warn(m, "%s: number field holds %s; ignored", source_names[src], lucy_phone_reason(rc));
        return 0;
    }
    if (rc != LUCY_PHONE_OK)
        warn(m, "%s: number stays raw and unlinked: %s", source_names[src], lucy_phone_reason(rc));
    memcpy(m->number_raw, text, len + 1);
    m->source[LUCY_CALL_NUMBER] = src;
    return 1;
}

static void set_direction(struct lucy_call_meta *m, enum lucy_call_source src,
                          enum lucy_call_direction d)
{
    if (!m->source[LUCY_CALL_DIRECTION] && d != LUCY_CALL_DIR_UNKNOWN) {
        m->direction = d;
        m->source[LUCY_CALL_DIRECTION] = src;
    }
}

static void set_sim(struct lucy_call_meta *m, enum lucy_call_source src, long long slot)
{
    if (m->source[LUCY_CALL_SIM_SLOT])
        return;
    if (slot < 1 || slot > 8) {
        warn(m, "%s: sim_slot %lld is not a SIM slot (1 to 8); ignored", source_names[src], slot);
        return;
    }
    m->sim_slot = (int)slot;
    m->source[LUCY_CALL_SIM_SLOT] = src;
}

/* ---- source 1: the sidecar ---------------------------------------------- */

/* A string member of o, or NULL when absent, null or not a string (the
 * last with a warning). */
static const char *member_string(struct lucy_call_meta *m, json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return NULL;
    if (json_is_string(v))
        return json_string_value(v);
    warn(m, "sidecar: %s is not a string; ignored", key);
    return NULL;
}

static void set_name_text(struct lucy_call_meta *m, enum lucy_call_field f,
                          enum lucy_call_source src, const char *s)
{
    if (s)
        set_name(m, f, src, s, strlen(s));
}

static void from_sidecar(const struct lucy_call_input *in, struct lucy_call_meta *m)
{
    if (!in->sidecar)
        return;
    if (in->sidecar_len > LUCY_CALL_SIDECAR_MAX) {
        warn(m, "sidecar: %zu bytes, over the %d-byte limit; not read", in->sidecar_len,
             LUCY_CALL_SIDECAR_MAX);
        return;
    }
    json_error_t jerr;
    json_t *root = json_loadb(in->sidecar, in->sidecar_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root || !json_is_object(root)) {
        warn(m, "sidecar: not a JSON object (line %d: %.60s); not read", root ? 1 : jerr.line,
             root ? "top level is not an object" : jerr.text);
        json_decref(root);
        return;
    }
    /* started_at: the exact instant from timestamp_unix_ms, the offset from
     * timestamp; either alone will do. */
    struct when w = {0};
    const char *iso = member_string(m, root, "timestamp");
    int have = iso && parse_iso8601(iso, &w) == 0;
    if (iso && !have) {
        warn(m, "sidecar: timestamp is not an ISO 8601 date and time; ignored");
        w = (struct when){0};
    }
    json_t *unix_ms = json_object_get(root, "timestamp_unix_ms");
    if (json_is_integer(unix_ms)) {
        w.ms = json_integer_value(unix_ms);
        w.local_only = 0;
        have = 1;
    }
    if (have)
        set_started(m, in, LUCY_CALL_SRC_SIDECAR, "timestamp", &w);

    const char *dir = member_string(m, root, "direction");
    if (dir && !lucy_call_direction_word(dir, strlen(dir)))
        warn(m, "sidecar: direction is not in, out or conference; ignored");
    else if (dir)
        set_direction(m, LUCY_CALL_SRC_SIDECAR, lucy_call_direction_word(dir, strlen(dir)));
    json_t *sim = json_object_get(root, "sim_slot");
    if (json_is_integer(sim))
        set_sim(m, LUCY_CALL_SRC_SIDECAR, json_integer_value(sim));
    set_name_text(m, LUCY_CALL_CALL_LOG_NAME, LUCY_CALL_SRC_SIDECAR,
                  member_string(m, root, "call_log_name"));

    /* calls[]: one entry per party; a conference has several. The first
     * party with a number is the call's number; names from the first that
     * has them. */
    json_t *calls = json_object_get(root, "calls"), *call;
    size_t i;
    json_array_foreach(calls, i, call)
    {
        if (!json_is_object(call))
            continue;
        const char *raw = member_string(m, call, "phone_number");
        if (!raw || !set_number(m, in, LUCY_CALL_SRC_SIDECAR, raw, strlen(raw))) {
            const char *formatted = member_string(m, call, "phone_number_formatted");
            if (formatted)
                set_number(m, in, LUCY_CALL_SRC_SIDECAR, formatted, strlen(formatted));
        }
        set_name_text(m, LUCY_CALL_CONTACT_NAME, LUCY_CALL_SRC_SIDECAR,
                      member_string(m, call, "contact_name"));
        set_name_text(m, LUCY_CALL_CALLER_NAME, LUCY_CALL_SRC_SIDECAR,
                      member_string(m, call, "caller_name"));
    }
    json_decref(root);
}

/* ---- source 2: the file name -------------------------------------------- */

static int only_phone_chars(const char *s, size_t len)
{
    size_t ndigits = 0;
    for (size_t i = 0; i < len; i++) {
        if (!strchr("0123456789+-.() ", s[i]) || !s[i])
            return 0;
        ndigits += s[i] >= '0' && s[i] <= '9';
    }
    return ndigits >= 3;
}

static void from_file_name(const struct lucy_call_input *in, struct lucy_call_meta *m)
{
    if (!in->file_name)
        return;
    const char *base = strrchr(in->file_name, '/');
    base = base ? base + 1 : in->file_name;
    size_t len = strlen(base);
    /* The extension: a last '.' followed by 1 to 5 letters or digits (BCR's
     * dates hold a '.' too, followed by "088-0400"). */
    const char *dot = strrchr(base, '.');
    if (dot && dot > base && len - (size_t)(dot - base) - 1 >= 1 &&
        len - (size_t)(dot - base) - 1 <= 5 &&
        strspn(dot + 1, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") ==
            len - (size_t)(dot - base) - 1)
        len = (size_t)(dot - base);
    if (!len) {
        warn(m, "file_name: empty; nothing to read");
        return;
    }
    char stem[512];
    if (len >= sizeof stem) {
        warn(m, "file_name: longer than %zu bytes; not read", sizeof stem - 1);
        return;
    }
    memcpy(stem, base, len);
    stem[len] = '\0';

    struct lucy_call_name f;
    m->convention = lucy_call_name_parse(stem, len, in->patterns, &f);
    if (f.has_date) {
        struct when w = {f.date_ms, f.offset_min, f.offset_known, f.local_only};
        set_started(m, in, LUCY_CALL_SRC_FILE_NAME, "date", &w);
    }
    set_direction(m, LUCY_CALL_SRC_FILE_NAME, f.direction);
    if (f.sim)
        set_sim(m, LUCY_CALL_SRC_FILE_NAME, f.sim);
    size_t name_len = f.name_end - f.name_start;
    if (f.phone_end > f.phone_start)
        set_number(m, in, LUCY_CALL_SRC_FILE_NAME, stem + f.phone_start,
                   f.phone_end - f.phone_start);
    else if (name_len && only_phone_chars(stem + f.name_start, name_len)) /* Samsung: a number */
        set_number(m, in, LUCY_CALL_SRC_FILE_NAME, stem + f.name_start, name_len), name_len = 0;
    if (name_len)
        set_name(m, LUCY_CALL_FILE_NAME_NAME, LUCY_CALL_SRC_FILE_NAME, stem + f.name_start,
                 name_len);

    /* Last resort for the number: libphonenumber's matcher over the name,
     * with the date blanked out so its digits cannot pose as a number. */
    if (!m->source[LUCY_CALL_NUMBER]) {
        memset(stem + f.date_start, ' ', f.date_end - f.date_start);
        char e164[LUCY_PHONE_E164_SIZE];
        size_t start, end;
        if (lucy_phone_find(stem, len, 0, in->default_region, e164, &start, &end) == LUCY_PHONE_OK)
            set_number(m, in, LUCY_CALL_SRC_FILE_NAME, stem + start, end - start);
    }
}

/* ---- source 3: container tags ------------------------------------------- */

/* Date tags, best first: Apple's carries the local offset; creation_time
 * (FFmpeg's name for the MP4 header's time) is UTC; date is often a year. */
static const char *const date_tags[] = {"com.apple.quicktime.creationdate", "creation_time",
                                        "date"};
/* Tags that may hold the other party: a number or a name. */
static const char *const party_tags[] = {"title", "artist"};

static const char *tag(const struct lucy_call_input *in, const char *key)
{
    for (size_t i = 0; i < in->tag_count; i++)
        if (in->tags[i].key && in->tags[i].value && strcasecmp(in->tags[i].key, key) == 0)
            return in->tags[i].value;
    return NULL;
}

static void from_tags(const struct lucy_call_input *in, struct lucy_call_meta *m)
{
    for (size_t i = 0; i < sizeof date_tags / sizeof *date_tags; i++) {
        const char *v = tag(in, date_tags[i]);
        if (v)
            set_iso_date(m, in, LUCY_CALL_SRC_TAGS, date_tags[i], v);
    }
    for (size_t i = 0; i < sizeof party_tags / sizeof *party_tags; i++) {
        const char *v = tag(in, party_tags[i]);
        size_t n = v ? strlen(v) : 0;
        char e164[LUCY_PHONE_E164_SIZE];
        /* Digits in a title are often a year or a take number: only a
         * number libphonenumber accepts is taken as the party's. */
        if (n && only_phone_chars(v, n)) {
            if (lucy_phone_normalize(v, in->default_region, e164) == LUCY_PHONE_OK)
                set_number(m, in, LUCY_CALL_SRC_TAGS, v, n);
        } else if (n)
            set_name(m, LUCY_CALL_TAG_NAME, LUCY_CALL_SRC_TAGS, v, n);
    }
}

/* ---- source 4: mtime, and the whole --------------------------------------- */

void lucy_call_meta_read(const struct lucy_call_input *in, struct lucy_call_meta *out)
{
    memset(out, 0, sizeof *out);
    from_sidecar(in, out);
    from_file_name(in, out);
    from_tags(in, out);
    if (in->mtime_ms) { /* the file's last write: usually the call's end */
        struct when w = {.ms = in->mtime_ms};
        set_started(out, in, LUCY_CALL_SRC_MTIME, "mtime", &w);
    }
}

/* ---- the title ---------------------------------------------------------- */

size_t lucy_call_title(const struct lucy_call_meta *m, char *out, size_t outlen)
{
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    /* The people display order (DESIGN §12), after the user's alias. */
    const char *const who_order[] = {m->contact_name, m->call_log_name, m->caller_name,
                                     m->file_name, m->tag_name};
    if (!outlen)
        return 0;
    char number[64];
    const char *who = "unknown caller";
    if (m->number_e164[0] && lucy_phone_display(m->number_e164, number, sizeof number) == 0)
        who = number;
    else if (m->number_raw[0])
        who = m->number_raw;
    for (size_t i = 0; i < sizeof who_order / sizeof *who_order; i++)
        if (who_order[i][0]) {
            who = who_order[i];
            break;
        }
    int n = snprintf(out, outlen, "Call with %s", who);
    const char *dir = lucy_call_direction_name(m->direction);
    if (dir && n >= 0 && (size_t)n < outlen)
        n += snprintf(out + n, outlen - (size_t)n, " · %s", dir);
    time_t secs = (time_t)((m->started_at_ms + (int64_t)m->utc_offset_min * 60000) / 1000);
    struct tm tm;
    if (m->source[LUCY_CALL_STARTED_AT] && gmtime_r(&secs, &tm) && n >= 0 && (size_t)n < outlen)
        n += snprintf(out + n, outlen - (size_t)n, " · %d %s %04d %02d:%02d%s", tm.tm_mday,
                      months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                      m->utc_offset_known || m->started_at_local_only ? "" : " UTC");
    size_t len = n < 0 ? 0 : (size_t)n < outlen ? (size_t)n : utf8_whole(out, outlen - 1);
    while ((size_t)n >= outlen && len > 0 && out[len - 1] == ' ')
        len--; /* cut: no dangling space */
    out[len] = '\0';
    return len;
}
