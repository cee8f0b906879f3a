/*
 * codec.c - lucy's media structs as wire fields (wire.h): what crosses
 * between lucy and a media process. Each put and its get list the same
 * fields in the same order.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "wire.h"

void lucy_wire_put_pcm(struct lucy_wire_buf *b, const struct lucy_pcm *p)
{
    lucy_wire_put_i64(b, (int64_t)p->n_samples);
    lucy_wire_put_f64(b, p->duration_s);
    lucy_wire_put_f64(b, p->source_duration_s);
    lucy_wire_put_i64(b, p->truncated);
    lucy_wire_put_i64(b, p->continues);
    lucy_wire_put_i64(b, p->s16 != NULL);
    if (p->s16)
        lucy_wire_put(b, p->s16, p->n_samples * sizeof *p->s16);
}

int lucy_wire_get_pcm(struct lucy_wire_buf *b, struct lucy_pcm *out)
{
    memset(out, 0, sizeof *out);
    int64_t n = lucy_wire_get_i64(b);
    out->duration_s = lucy_wire_get_f64(b);
    out->source_duration_s = lucy_wire_get_f64(b);
    out->truncated = (int)lucy_wire_get_i64(b);
    out->continues = (int)lucy_wire_get_i64(b);
    int has = (int)lucy_wire_get_i64(b);
    if (b->bad || n < 0 || (uint64_t)n > (b->len - b->at) / sizeof(int16_t))
        goto bad;
    out->n_samples = (size_t)n;
    if (has) {
        out->s16 = malloc(out->n_samples ? out->n_samples * sizeof *out->s16 : 1);
        out->f32 = malloc(out->n_samples ? out->n_samples * sizeof *out->f32 : 1);
        if (!out->s16 || !out->f32 || lucy_wire_get(b, out->s16, out->n_samples * 2) != 0)
            goto bad;
        for (size_t i = 0; i < out->n_samples; i++)
            out->f32[i] = (float)out->s16[i] / 32768.0f;
    }
    return 0;
bad:
    b->bad = 1;
    lucy_pcm_free(out);
    return -1;
}

void lucy_wire_put_audio(struct lucy_wire_buf *b, const struct lucy_audio *a)
{
    lucy_wire_put_i64(b, a->n_channels);
    lucy_wire_put_i64(b, a->identical);
    lucy_wire_put_i64(b, a->source_channels);
    for (int k = 0; k < a->n_channels && k < LUCY_AUDIO_MAX_CHANNELS; k++)
        lucy_wire_put_pcm(b, &a->channel[k]);
}

int lucy_wire_get_audio(struct lucy_wire_buf *b, struct lucy_audio *out)
{
    memset(out, 0, sizeof *out);
    int64_t n = lucy_wire_get_i64(b);
    out->identical = (int)lucy_wire_get_i64(b);
    out->source_channels = (int)lucy_wire_get_i64(b);
    if (b->bad || n < 0 || n > LUCY_AUDIO_MAX_CHANNELS) {
        b->bad = 1;
        return -1;
    }
    for (int k = 0; k < n; k++) {
        if (lucy_wire_get_pcm(b, &out->channel[k]) != 0) {
            lucy_audio_free(out);
            return -1;
        }
        out->n_channels = k + 1;
    }
    return 0;
}

void lucy_wire_put_transcript(struct lucy_wire_buf *b, const struct lucy_transcript *t)
{
    lucy_wire_put_i64(b, (int64_t)t->n_segments);
    for (size_t i = 0; i < t->n_segments; i++) {
        const struct lucy_segment *s = &t->segments[i];
        lucy_wire_put_i64(b, s->t0_ms);
        lucy_wire_put_i64(b, s->t1_ms);
        lucy_wire_put_i64(b, s->channel);
        lucy_wire_put_str(b, s->text);
        lucy_wire_put_i64(b, (int64_t)s->n_words);
        for (size_t k = 0; k < s->n_words; k++) {
            lucy_wire_put_i64(b, s->words[k].t0_ms);
            lucy_wire_put_i64(b, s->words[k].t1_ms);
            lucy_wire_put_str(b, s->words[k].text);
        }
    }
    lucy_wire_put_str(b, t->text);
    lucy_wire_put_str(b, t->engine);
    lucy_wire_put_str(b, t->model);
    lucy_wire_put_str(b, t->language);
    lucy_wire_put_f64(b, t->audio_s);
    lucy_wire_put_f64(b, t->wall_s);
    lucy_wire_put_f64(b, t->rtf);
    lucy_wire_put_i64(b, t->truncated);
    lucy_wire_put_f64(b, t->source_duration_s);
    lucy_wire_put_i64(b, t->channels);
}

/* One segment and its words into out (lucy_transcript_add keeps the
 * segment's times; words are added as the engine gave them). */
static int get_segment(struct lucy_wire_buf *b, struct lucy_transcript *out)
{
    int64_t t0 = lucy_wire_get_i64(b), t1 = lucy_wire_get_i64(b);
    int channel = (int)lucy_wire_get_i64(b);
    char *text = lucy_wire_get_str(b);
    int64_t n_words = lucy_wire_get_i64(b);
    int rc = b->bad || !text || n_words < 0 ? -1 : 0;
    size_t before = out->n_segments;
    if (rc == 0 && lucy_transcript_add(out, t0, t1, text, strlen(text)) != 0)
        rc = -1;
    free(text);
    if (rc == 0 && out->n_segments == before) /* an empty text adds no segment */
        return n_words == 0 ? 0 : -1;
    struct lucy_segment *s = rc == 0 ? &out->segments[out->n_segments - 1] : NULL;
    if (s)
        s->channel = channel;
    for (int64_t k = 0; rc == 0 && k < n_words; k++) {
        int64_t w0 = lucy_wire_get_i64(b), w1 = lucy_wire_get_i64(b);
        char *w = lucy_wire_get_str(b);
        if (b->bad || !w || lucy_segment_add_word(s, w0, w1, w, strlen(w)) != 0)
            rc = -1;
        free(w);
    }
    return rc;
}

int lucy_wire_get_transcript(struct lucy_wire_buf *b, struct lucy_transcript *out)
{
    memset(out, 0, sizeof *out);
    int64_t n = lucy_wire_get_i64(b);
    int rc = b->bad || n < 0 ? -1 : 0;
    for (int64_t i = 0; rc == 0 && i < n; i++)
        rc = get_segment(b, out);
    if (rc == 0) {
        out->text = lucy_wire_get_str(b);
        lucy_wire_get_strn(b, out->engine, sizeof out->engine);
        lucy_wire_get_strn(b, out->model, sizeof out->model);
        lucy_wire_get_strn(b, out->language, sizeof out->language);
        out->audio_s = lucy_wire_get_f64(b);
        out->wall_s = lucy_wire_get_f64(b);
        out->rtf = lucy_wire_get_f64(b);
        out->truncated = (int)lucy_wire_get_i64(b);
        out->source_duration_s = lucy_wire_get_f64(b);
        out->channels = (int)lucy_wire_get_i64(b);
        rc = b->bad ? -1 : 0;
    }
    if (rc) {
        b->bad = 1;
        lucy_transcript_free(out);
    }
    return rc;
}

void lucy_wire_put_probe(struct lucy_wire_buf *b, const struct lucy_scan_probe *p)
{
    struct lucy_scan_probe flat = *p; /* every field but tags is plain data */
    flat.tags = NULL;
    lucy_wire_put(b, &flat, sizeof flat);
    char *tags = p->tags ? json_dumps(p->tags, JSON_COMPACT) : NULL;
    lucy_wire_put_str(b, tags);
    free(tags);
}

int lucy_wire_get_probe(struct lucy_wire_buf *b, struct lucy_scan_probe *out)
{
    if (lucy_wire_get(b, out, sizeof *out) != 0) {
        memset(out, 0, sizeof *out);
        return -1;
    }
    out->tags = NULL;
    char *tags = lucy_wire_get_str(b);
    if (tags)
        out->tags = json_loads(tags, 0, NULL);
    free(tags);
    return b->bad ? -1 : 0;
}

void lucy_wire_put_chunks(struct lucy_wire_buf *b, const struct lucy_chunk *c, size_t n)
{
    lucy_wire_put_i64(b, (int64_t)n);
    lucy_wire_put(b, c, n * sizeof *c);
}

int lucy_wire_get_chunks(struct lucy_wire_buf *b, struct lucy_chunk **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    int64_t k = lucy_wire_get_i64(b);
    if (b->bad || k < 0 || (uint64_t)k > (b->len - b->at) / sizeof **out) {
        b->bad = 1;
        return -1;
    }
    if (k == 0)
        return 0;
    *out = malloc((size_t)k * sizeof **out);
    if (!*out || lucy_wire_get(b, *out, (size_t)k * sizeof **out) != 0) {
        free(*out);
        *out = NULL;
        b->bad = 1;
        return -1;
    }
    *n = (size_t)k;
    return 0;
}

void lucy_wire_put_options(struct lucy_wire_buf *b, const struct lucy_asr_options *o)
{
    lucy_wire_put_str(b, o->engine);
    lucy_wire_put_str(b, o->whisper_model);
    lucy_wire_put_str(b, o->url);
    lucy_wire_put_i64(b, o->threads);
    lucy_wire_put_str(b, o->model);
}

/* A string field into store's buf; NULL stays NULL. */
static const char *get_opt(struct lucy_wire_buf *b, char *buf, size_t len)
{
    char *s = lucy_wire_get_str(b);
    if (!s)
        return NULL;
    snprintf(buf, len, "%s", s);
    free(s);
    return buf;
}

int lucy_wire_get_options(struct lucy_wire_buf *b, struct lucy_asr_options *out,
                          struct lucy_wire_options *store)
{
    memset(out, 0, sizeof *out);
    out->engine = get_opt(b, store->engine, sizeof store->engine);
    out->whisper_model = get_opt(b, store->whisper_model, sizeof store->whisper_model);
    out->url = get_opt(b, store->url, sizeof store->url);
    out->threads = (int)lucy_wire_get_i64(b);
    out->model = get_opt(b, store->model, sizeof store->model);
    return b->bad ? -1 : 0;
}
