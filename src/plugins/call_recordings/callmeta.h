/*
 * callmeta.h - what a call recording says about itself (DESIGN §12).
 *
 * A recording's call metadata (when it started, in which direction, with
 * which number and names, on which SIM) is read from up to four sources,
 * and for each field the first source that knows wins:
 *
 *   1. sidecar    BCR's NAME.json beside the audio (callmeta.c)
 *   2. file_name  the name against a table of recorder conventions and the
 *                 user's LUCY_CALL_NAME_PATTERNS (callname.c), then
 *                 libphonenumber's matcher over the name for the number
 *   3. tags       container tags: com.apple.quicktime.creationdate,
 *                 creation_time, date, title, artist
 *   4. mtime      the file's modification time, for started_at only
 *
 * A value that fails validation (a date before 1990 or more than a day in
 * the future, a name that is not UTF-8, a number that is not one) is
 * dropped with a warning and the next source is tried.
 *
 * Everything here is a pure function of what the caller hands in (bytes,
 * strings, times): no I/O, no clock, no globals, no heap that outlives a
 * call. Results live in fixed arrays inside struct lucy_call_meta, so there
 * is nothing to free. All functions are safe on any thread.
 */
#ifndef LUCY_CALLMETA_H
#define LUCY_CALLMETA_H

#include <stddef.h>
#include <stdint.h>

#include "../../people/phone.h"

#define LUCY_CALL_NAME_SIZE    128       /* bytes per name, NUL included (cap: 127) */
#define LUCY_CALL_NUMBER_SIZE  64        /* bytes of a raw number, NUL included */
#define LUCY_CALL_WARNINGS_MAX 8         /* warnings kept; later ones are counted */
#define LUCY_CALL_WARNING_SIZE 160       /* bytes per warning, NUL included */
#define LUCY_CALL_SIDECAR_MAX  (1 << 20) /* a larger sidecar is refused */
#define LUCY_CALL_PATTERNS_MAX 16        /* user templates in LUCY_CALL_NAME_PATTERNS */
#define LUCY_CALL_PATTERN_SIZE 256       /* bytes per template, NUL included */

/* Where a field's value came from. */
enum lucy_call_source {
    LUCY_CALL_SRC_NONE = 0, /* no source knew it */
    LUCY_CALL_SRC_SIDECAR,  /* the recorder's JSON sidecar */
    LUCY_CALL_SRC_FILE_NAME,
    LUCY_CALL_SRC_TAGS,  /* the container's metadata tags */
    LUCY_CALL_SRC_MTIME, /* the file's mtime (started_at only) */
};

enum lucy_call_direction {
    LUCY_CALL_DIR_UNKNOWN = 0,
    LUCY_CALL_DIR_IN,
    LUCY_CALL_DIR_OUT,
    LUCY_CALL_DIR_CONFERENCE,
};

/* The fields, as indexes into struct lucy_call_meta.source[]. */
enum lucy_call_field {
    LUCY_CALL_STARTED_AT,     /* started_at_ms, utc_offset_min, the flags */
    LUCY_CALL_DIRECTION,      /* direction */
    LUCY_CALL_NUMBER,         /* number_raw and number_e164 */
    LUCY_CALL_SIM_SLOT,       /* sim_slot */
    LUCY_CALL_CONTACT_NAME,   /* contact_name */
    LUCY_CALL_CALLER_NAME,    /* caller_name */
    LUCY_CALL_CALL_LOG_NAME,  /* call_log_name */
    LUCY_CALL_FILE_NAME_NAME, /* file_name: the name a file name carries */
    LUCY_CALL_TAG_NAME,       /* tag_name: a name from the title/artist tags */
    LUCY_CALL_FIELD_COUNT
};

struct lucy_call_meta {
    int64_t started_at_ms;     /* UTC epoch ms (but see started_at_local_only) */
    int utc_offset_min;        /* the call's local offset east of UTC, minutes */
    int utc_offset_known;      /* 1 when the source gave the offset (BCR, iOS) */
    int started_at_local_only; /* 1: the source gave wall-clock time with no
                                  zone (e.g. Samsung's names); started_at_ms
                                  is that time read as UTC */
    enum lucy_call_direction direction;
    char number_raw[LUCY_CALL_NUMBER_SIZE];              /* as the source wrote it; "" = none */
    char number_e164[LUCY_PHONE_E164_SIZE];              /* "" when it could not be normalised */
    int sim_slot;                                        /* 1-based; 0 = unknown */
    char contact_name[LUCY_CALL_NAME_SIZE];              /* the phone's contact (sidecar) */
    char caller_name[LUCY_CALL_NAME_SIZE];               /* caller ID / CNAP (sidecar) */
    char call_log_name[LUCY_CALL_NAME_SIZE];             /* the call log's name (sidecar) */
    char file_name[LUCY_CALL_NAME_SIZE];                 /* a person's name in the file name */
    char tag_name[LUCY_CALL_NAME_SIZE];                  /* a name in the title/artist tag */
    enum lucy_call_source source[LUCY_CALL_FIELD_COUNT]; /* per field; NONE = unknown */
    const char *convention; /* id of the file-name convention that matched, or NULL
                               ("user:N" rows point into static storage) */
    int warning_count;      /* entries used in warnings[] */
    int warnings_dropped;   /* warnings beyond LUCY_CALL_WARNINGS_MAX */
    char warnings[LUCY_CALL_WARNINGS_MAX][LUCY_CALL_WARNING_SIZE]; /* why values were dropped */
};

/* One container tag, as FFmpeg's AVDictionary lists it. */
struct lucy_call_tag {
    const char *key;   /* e.g. "creation_time"; compared without case */
    const char *value; /* UTF-8 text */
};

/* LUCY_CALL_NAME_PATTERNS, parsed: templates tried before the built-in
 * conventions, in order. Plain data, no heap. */
struct lucy_call_patterns {
    int count;
    char templates[LUCY_CALL_PATTERNS_MAX][LUCY_CALL_PATTERN_SIZE];
};

/* What the caller (the scanner) hands in. Every pointer may be NULL. */
struct lucy_call_input {
    const char *file_name;            /* the audio file's name; a path's last component is used */
    const char *sidecar;              /* the sidecar's bytes (not NUL-terminated), or NULL */
    size_t sidecar_len;               /* bytes at sidecar; over LUCY_CALL_SIDECAR_MAX is refused */
    const struct lucy_call_tag *tags; /* container tags */
    size_t tag_count;
    int64_t mtime_ms;           /* the file's mtime, UTC epoch ms; 0 = unknown */
    int64_t now_ms;             /* lucy_wall_ms(): dates after now + 1 day are refused */
    const char *default_region; /* LUCY_DEFAULT_REGION ("GB"); NULL/"" = none */
    const struct lucy_call_patterns *patterns; /* parsed LUCY_CALL_NAME_PATTERNS */
};

/* Parses spec, ';'-separated templates (LUCY_CALL_NAME_PATTERNS), into
 * *out. The template language (callname.c has the details):
 *   {date:FORMAT}  FORMAT of %Y %y %m %d %H %M %S, optional .%f (fractions
 *                  of a second) and %z (Z, +HHMM or +HH:MM), other text
 *                  literal; it needs a year, month, day, hour and minute.
 *                  {date} alone is BCR's %Y%m%d_%H%M%S.%f%z
 *   {direction}    in, out, incoming, outgoing, conference (any case)
 *   {phone}        a number: digits, '+', spaces, '-', '.', '(' and ')'
 *   {name}         any text
 *   {sim}          a SIM slot, 1 or 2 digits
 *   [A|B|]         A, else B, else nothing; [A] is [A|]
 *   \c             c literally ('\;' is a ';' inside a template)
 *   anything else  literal text, compared without ASCII case
 * A template matches the whole name without its extension. Returns 0, or
 * LUCY_EINVAL with one line in err naming the template and what is wrong
 * (err may be NULL). spec NULL or "" gives zero templates. */
int lucy_call_patterns_parse(const char *spec, struct lucy_call_patterns *out, char *err,
                             size_t errlen);

/* Reads everything in reaches out; never fails (what cannot be read is a
 * warning in out->warnings). out is fully overwritten. */
void lucy_call_meta_read(const struct lucy_call_input *in, struct lucy_call_meta *out);

/* The recording's title, the one rule for it (DESIGN §12):
 *   "Call with John Doe · in · 14 Apr 2023 21:57"
 * who: contact, call-log, caller, file-name, tag name in that order (the
 * people display order, DESIGN §12), else the number in international form
 * (or raw), else "unknown caller"; then the direction if known; then the
 * date and time of day at the call's own offset, with " UTC" appended when
 * the instant is known but its offset is not (creation_time, mtime). Local
 * wall-clock times (started_at_local_only) are shown as given.
 * Writes at most outlen bytes (cut at a UTF-8 boundary); returns the length
 * written. Thread-safe. */
size_t lucy_call_title(const struct lucy_call_meta *m, char *out, size_t outlen);

/* "sidecar", "file_name", "tags", "mtime"; NULL for LUCY_CALL_SRC_NONE. */
const char *lucy_call_source_name(enum lucy_call_source source);

/* "in", "out", "conference"; NULL for LUCY_CALL_DIR_UNKNOWN. */
const char *lucy_call_direction_name(enum lucy_call_direction direction);

#endif
