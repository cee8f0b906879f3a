/*
 * export.c - a transcript as TXT, SRT, WebVTT or JSON (see export.h).
 *
 * One function per format, chosen from a table. Each writes into a memory
 * stream, so a renderer is a straight walk over the segments. SRT and
 * WebVTT get one cue per segment with the segment's own times; a cue's
 * text is kept on one line (a blank line would end the cue early, and
 * "-->" would read as a timing line), and WebVTT escapes '&', '<' and '>'
 * because they start its markup.
 */
#define _GNU_SOURCE
#include "export.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../http/http.h"

const struct lucy_export_format_info lucy_export_formats[LUCY_EXPORT_N_FORMATS] = {
    [LUCY_EXPORT_TXT] = {"txt", "text/plain; charset=utf-8"},
    [LUCY_EXPORT_SRT] = {"srt", "application/x-subrip; charset=utf-8"},
    [LUCY_EXPORT_VTT] = {"vtt", "text/vtt; charset=utf-8"},
    [LUCY_EXPORT_JSON] = {"json", "application/json"},
};

int lucy_export_format_by_ext(const char *ext)
{
    for (int f = 0; f < LUCY_EXPORT_N_FORMATS; f++)
        if (ext && strcmp(ext, lucy_export_formats[f].ext) == 0)
            return f;
    return -1;
}

static long long int_field(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (long long)json_integer_value(v) : 0;
}

/* "HH:MM:SS<sep>mmm" for ms (clamped at 0). */
static void put_time(FILE *out, long long ms, char sep)
{
    if (ms < 0)
        ms = 0;
    fprintf(out, "%02lld:%02lld:%02lld%c%03lld", ms / 3600000, ms / 60000 % 60, ms / 1000 % 60, sep,
            ms % 1000);
}

/* The segment's speaker label into buf, as the UI says it
 * (web/recordings.js speakerName): "Me"; for the other party (speaker = a
 * person id) the name of call's person (the recording's `call`, may be
 * NULL), else "Them"; "Channel 1" for a channel without a speaker; ""
 * when it has neither speaker nor channel. */
static void speaker_label(const json_t *seg, const json_t *call, char *buf, size_t len)
{
    const json_t *sp = json_object_get(seg, "speaker");
    const json_t *ch = json_object_get(seg, "channel");
    const json_t *person = json_object_get(call, "person");
    const char *name = json_string_value(json_object_get(person, "name"));
    if (json_is_string(sp) && strcmp(json_string_value(sp), "me") == 0)
        snprintf(buf, len, "Me");
    else if (json_is_string(sp) && json_string_value(sp)[0])
        snprintf(buf, len, "%s", json_string_value(sp));
    else if (json_is_integer(sp))
        snprintf(buf, len, "%s",
                 name && name[0] && json_equal(json_object_get(person, "id"), sp) ? name : "Them");
    else if (json_is_integer(ch))
        snprintf(buf, len, "Channel %lld", (long long)json_integer_value(ch));
    else
        buf[0] = '\0';
}

/* Writes text on one line: line breaks become spaces, "-->" becomes "->";
 * vtt = 1 also escapes WebVTT's markup characters. */
static void put_cue_text(FILE *out, const char *text, int vtt)
{
    for (const char *p = text ? text : ""; *p; p++) {
        if (*p == '\n' || *p == '\r')
            fputc(' ', out);
        else if (p[0] == '-' && p[1] == '-' && p[2] == '>')
            fputs(vtt ? "-&gt;" : "->", out), p += 2;
        else if (vtt && *p == '&')
            fputs("&amp;", out);
        else if (vtt && *p == '<')
            fputs("&lt;", out);
        else if (vtt && *p == '>')
            fputs("&gt;", out);
        else
            fputc(*p, out);
    }
}

static const char *seg_text(const json_t *seg)
{
    const char *s = json_string_value(json_object_get(seg, "text"));
    return s ? s : "";
}

static void render_txt(FILE *out, const json_t *t, const json_t *call)
{
    const json_t *segs = json_object_get(t, "segments");
    if (json_array_size(segs) == 0) {
        const char *text = json_string_value(json_object_get(t, "text"));
        if (text && *text)
            fprintf(out, "%s\n", text);
        return;
    }
    size_t i;
    const json_t *seg;
    char who[128];
    json_array_foreach(segs, i, seg)
    {
        fputc('[', out);
        put_time(out, int_field(seg, "t0_ms"), '.');
        fputs("] ", out);
        speaker_label(seg, call, who, sizeof who);
        if (who[0])
            fprintf(out, "%s: ", who);
        fprintf(out, "%s\n", seg_text(seg));
    }
}

static void render_srt(FILE *out, const json_t *t, const json_t *call)
{
    size_t i;
    const json_t *seg;
    char who[128];
    json_array_foreach(json_object_get(t, "segments"), i, seg)
    {
        fprintf(out, "%zu\n", i + 1);
        put_time(out, int_field(seg, "t0_ms"), ',');
        fputs(" --> ", out);
        put_time(out, int_field(seg, "t1_ms"), ',');
        fputc('\n', out);
        speaker_label(seg, call, who, sizeof who);
        if (who[0])
            fprintf(out, "%s: ", who);
        put_cue_text(out, seg_text(seg), 0);
        fputs("\n\n", out);
    }
}

/* The cue's words with WebVTT timestamps (only those strictly inside the
 * cue, as the format requires); 0 when the segment has no usable words. */
static int put_vtt_words(FILE *out, const json_t *seg, long long t0, long long t1)
{
    const json_t *words = json_object_get(seg, "words");
    if (json_array_size(words) == 0)
        return 0;
    size_t i;
    const json_t *w;
    json_array_foreach(words, i, w)
    {
        const char *text = json_string_value(json_object_get(w, "word"));
        if (!text)
            text = json_string_value(json_object_get(w, "text"));
        if (!text)
            continue;
        long long at = int_field(w, "t0_ms");
        if (i > 0) {
            fputc(' ', out);
            if (at > t0 && at < t1) {
                fputc('<', out);
                put_time(out, at, '.');
                fputc('>', out);
            }
        }
        put_cue_text(out, text, 1);
    }
    return 1;
}

static void render_vtt(FILE *out, const json_t *t, const json_t *call)
{
    fputs("WEBVTT\n\n", out);
    size_t i;
    const json_t *seg;
    char who[128];
    json_array_foreach(json_object_get(t, "segments"), i, seg)
    {
        long long t0 = int_field(seg, "t0_ms"), t1 = int_field(seg, "t1_ms");
        fprintf(out, "%zu\n", i + 1);
        put_time(out, t0, '.');
        fputs(" --> ", out);
        put_time(out, t1, '.');
        fputc('\n', out);
        speaker_label(seg, call, who, sizeof who);
        if (who[0]) {
            fputs("<v ", out);
            put_cue_text(out, who, 1);
            fputc('>', out);
        }
        if (!put_vtt_words(out, seg, t0, t1))
            put_cue_text(out, seg_text(seg), 1);
        fputs("\n\n", out);
    }
}

static void render_json(FILE *out, const json_t *t, const json_t *call)
{
    (void)call; /* the JSON keeps speaker ids, as the API gives them */
    json_dumpf(t, out, JSON_INDENT(2) | LUCY_JSON_REALS); /* as the API prints it */
    fputc('\n', out);
}

static void (*const renderers[LUCY_EXPORT_N_FORMATS])(FILE *, const json_t *, const json_t *) = {
    [LUCY_EXPORT_TXT] = render_txt,
    [LUCY_EXPORT_SRT] = render_srt,
    [LUCY_EXPORT_VTT] = render_vtt,
    [LUCY_EXPORT_JSON] = render_json,
};

char *lucy_export_render(const json_t *transcript, const json_t *call, enum lucy_export_format f,
                         size_t *len)
{
    char *buf = NULL;
    size_t size = 0;
    *len = 0;
    if ((int)f < 0 || f >= LUCY_EXPORT_N_FORMATS)
        return NULL;
    FILE *out = open_memstream(&buf, &size);
    if (!out)
        return NULL;
    renderers[f](out, transcript, call);
    if (fclose(out) != 0) {
        free(buf);
        return NULL;
    }
    *len = size;
    return buf;
}

void lucy_export_file_name(const char *title, const char *id, const char *ext, char *out,
                           size_t len)
{
    char base[61];
    size_t n = 0;
    int gap = 0;
    for (const char *p = title ? title : ""; *p && n < sizeof base - 1; p++) {
        char c = *p;
        int keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '-' || c == '_';
        if (keep) {
            if (gap && n)
                base[n++] = '_';
            if (n < sizeof base - 1)
                base[n++] = c;
            gap = 0;
        } else {
            gap = 1;
        }
    }
    base[n] = '\0';
    snprintf(out, len, "%s%s%.12s.%s", base, n ? "-" : "", id ? id : "", ext);
}
