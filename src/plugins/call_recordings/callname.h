/*
 * callname.h - call recordings' file names against recorder conventions.
 *
 * Internal to callmeta.c (and its unit test): the template language of
 * LUCY_CALL_NAME_PATTERNS (described at lucy_call_patterns_parse() in
 * callmeta.h), the table of built-in recorder conventions, and the civil
 * date arithmetic both files share. Pure functions, thread-safe.
 */
#ifndef LUCY_CALLNAME_H
#define LUCY_CALLNAME_H

#include <stddef.h>
#include <stdint.h>

#include "callmeta.h"

/* What one template captured from a name. Spans are byte offsets into the
 * stem handed to lucy_call_name_parse(); an empty span (end == start)
 * means "not captured". */
struct lucy_call_name {
    int has_date;                       /* 1 when {date} matched */
    int64_t date_ms;                    /* UTC epoch ms, or wall-clock read as UTC (local_only) */
    int offset_min;                     /* %z's offset east of UTC, minutes */
    int offset_known;                   /* 1 when %z gave +HHMM / +HH:MM */
    int local_only;                     /* 1 when there was no %z at all */
    size_t date_start, date_end;        /* span of {date} */
    enum lucy_call_direction direction; /* {direction}, else UNKNOWN */
    size_t phone_start, phone_end;      /* span of {phone} */
    size_t name_start, name_end;        /* span of {name} */
    int sim;                            /* {sim}; 0 = not captured */
};

/* One built-in recorder convention: a row of the table in callname.c. */
struct lucy_call_convention {
    const char *id;       /* short stable name, e.g. "bcr" */
    const char *template; /* in the template language */
};

extern const struct lucy_call_convention lucy_call_conventions[];
extern const size_t lucy_call_conventions_count;

/* 0 when tpl is a well-formed template, else LUCY_EINVAL with err (errlen
 * bytes; may be NULL) saying what is wrong and at which byte. */
int lucy_call_template_check(const char *tpl, char *err, size_t errlen);

/* 1 and *out filled when the checked template tpl matches all of
 * stem[0..len), else 0 (also when the match costs more than a fixed step
 * budget: a pathological name cannot stall the scanner). */
int lucy_call_template_match(const char *tpl, const char *stem, size_t len,
                             struct lucy_call_name *out);

/* Tries the user's templates (patterns, may be NULL) in order, then the
 * built-in conventions. Returns the id of the first that matches ("bcr",
 * or "user:N" for the N-th user template, 1-based), with *out filled, or
 * NULL (then *out is zeroed). The id is static storage. */
const char *lucy_call_name_parse(const char *stem, size_t len,
                                 const struct lucy_call_patterns *patterns,
                                 struct lucy_call_name *out);

/* The direction a word names (in, out, incoming, outgoing, conference; any
 * ASCII case), LUCY_CALL_DIR_UNKNOWN for any other word. */
enum lucy_call_direction lucy_call_direction_word(const char *word, size_t len);

/* Milliseconds since 1970-01-01 UTC of a proleptic Gregorian date and time
 * (year 1..9999, month 1..12, day 1..month's length, hour 0..23, minute
 * 0..59, second 0..60, ms 0..999), or -1 when a field is out of range. */
int64_t lucy_call_civil_ms(int year, int month, int day, int hour, int minute, int second, int ms);

#endif
