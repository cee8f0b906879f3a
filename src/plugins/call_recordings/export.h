/*
 * export.h - a recording's transcript as a file people and other tools
 * read (DESIGN §15 Export): plain text, SubRip (SRT), WebVTT and JSON.
 *
 * The renderers take the "transcript" object of GET /recordings/{id}
 * (lucy_transcript_json) and nothing else, so the files say exactly what
 * the API says. A segment's "speaker" (a name or a number) and "channel"
 * label its cue when present; "words" [{t0_ms, t1_ms, word|text}] become
 * WebVTT cue timestamps. Absent fields are skipped.
 */
#ifndef LUCY_EXPORT_H
#define LUCY_EXPORT_H

#include <jansson.h>
#include <stddef.h>

/* The formats, in the order of lucy_export_formats[]. */
enum lucy_export_format {
    LUCY_EXPORT_TXT,
    LUCY_EXPORT_SRT,
    LUCY_EXPORT_VTT,
    LUCY_EXPORT_JSON,
    LUCY_EXPORT_N_FORMATS
};

/* One row per format: its file extension and Content-Type. */
struct lucy_export_format_info {
    const char *ext;          /* "srt": the route's and the file name's extension */
    const char *content_type; /* "application/x-subrip; charset=utf-8" */
};
extern const struct lucy_export_format_info lucy_export_formats[LUCY_EXPORT_N_FORMATS];

/* The format whose extension is ext ("vtt"); -1 when none. Pure. */
int lucy_export_format_by_ext(const char *ext);

/* Renders transcript (the API's transcript object; borrowed) as format f,
 * speakers named from call (the recording's `call` object, for its
 * person's name; NULL = none). Returns a malloc'd NUL-terminated text the
 * caller frees, its length in *len; NULL on out of memory. Pure,
 * thread-safe. */
char *lucy_export_render(const json_t *transcript, const json_t *call, enum lucy_export_format f,
                         size_t *len);

/* A file name for the recording's transcript: the call's title reduced to
 * ASCII letters, digits, '-' and '_' (at most 60 characters), then '-' and
 * the first 12 hex digits of the id, then '.' ext. Writes at most len bytes
 * (NUL included) into out. Pure. */
void lucy_export_file_name(const char *title, const char *id, const char *ext, char *out,
                           size_t len);

#endif
