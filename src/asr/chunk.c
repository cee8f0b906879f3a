/*
 * chunk.c - cutting decoded audio at its pauses (DESIGN §13 Pauses).
 *
 * How it works: the 16 kHz s16 samples go through an FFmpeg filter graph
 * abuffer -> silencedetect -> abuffersink (libavfilter); silencedetect
 * marks the frames where a silence of SILENCE_MIN_S below SILENCE_NOISE
 * starts and ends (frame metadata lavfi.silence_start / _end, seconds).
 * What lies between silences is speech. Each speech stretch is padded by
 * PAD_MS into the silence around it (the recogniser's voice activity
 * detector needs a little quiet before a word), stretches closer than
 * MERGE_GAP_MS share a chunk while it stays within max_chunk_s (a chunk
 * per breath would cost the recogniser its context), and a stretch
 * longer than max_chunk_s is cut at its quietest CUT_FRAME_MS in the last
 * quarter of the window, where a cut is least likely to split a word.
 * Silence longer than MERGE_GAP_MS is in no chunk: it costs nothing and no
 * engine can invent text in it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavfilter/avfilter.h>
#include <libavfilter/buffersink.h>
#include <libavfilter/buffersrc.h>
#include <libavutil/channel_layout.h>
#include <libavutil/frame.h>
#include <libavutil/opt.h>

#include "../error.h"
#include "../media/media.h"
#include "asr.h"

#define SILENCE_NOISE "-35dB" /* below this (dBFS) is silence */
#define SILENCE_MIN_S "0.5"   /* shortest silence that counts as a pause */
#define PAD_MS        200     /* speech padded by this much into its silences */
#define MERGE_GAP_MS  1000    /* speech closer than this shares a chunk */
#define CUT_FRAME_MS  50      /* energy window when a long stretch must be cut */
#define FEED_SAMPLES  4096    /* samples per frame fed to the graph */

#define MS_TO_SAMPLES(ms) ((size_t)(ms)*LUCY_ASR_SAMPLE_RATE / 1000)

/* Speech stretches [start, end) in samples, growing. */
struct spans {
    struct lucy_chunk *v;
    size_t n, cap;
};

static int spans_push(struct spans *s, size_t start, size_t end)
{
    if (end <= start)
        return 0;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        struct lucy_chunk *v = realloc(s->v, cap * sizeof *v);
        if (!v)
            return LUCY_ENOMEM;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = (struct lucy_chunk){start, end - start};
    return 0;
}

/* The graph abuffer -> silencedetect -> abuffersink for 16 kHz s16 mono. */
struct graph {
    AVFilterGraph *g;
    AVFilterContext *src, *sink;
};

static int graph_open(struct graph *gr, char *err, size_t errlen)
{
    char args[160];
    gr->g = avfilter_graph_alloc();
    if (!gr->g)
        return LUCY_ENOMEM;
    snprintf(args, sizeof args, "sample_rate=%d:sample_fmt=s16:channel_layout=mono:time_base=1/%d",
             LUCY_ASR_SAMPLE_RATE, LUCY_ASR_SAMPLE_RATE);
    AVFilterContext *detect = NULL;
    int ret = avfilter_graph_create_filter(&gr->src, avfilter_get_by_name("abuffer"), "in", args,
                                           NULL, gr->g);
    if (ret >= 0)
        ret = avfilter_graph_create_filter(&detect, avfilter_get_by_name("silencedetect"), "detect",
                                           "noise=" SILENCE_NOISE ":d=" SILENCE_MIN_S, NULL, gr->g);
    if (ret >= 0)
        ret = avfilter_graph_create_filter(&gr->sink, avfilter_get_by_name("abuffersink"), "out",
                                           NULL, NULL, gr->g);
    if (ret >= 0)
        ret = avfilter_link(gr->src, 0, detect, 0);
    if (ret >= 0)
        ret = avfilter_link(detect, 0, gr->sink, 0);
    if (ret >= 0)
        ret = avfilter_graph_config(gr->g, NULL);
    if (ret < 0) {
        char msg[AV_ERROR_MAX_STRING_SIZE];
        av_strerror(ret, msg, sizeof msg);
        snprintf(err, errlen, "silencedetect filter graph: %s", msg);
        return LUCY_EIO;
    }
    return 0;
}

/* Seconds in frame metadata key, as samples; -1 when absent. */
static long long meta_samples(const AVFrame *f, const char *key)
{
    const AVDictionaryEntry *e = av_dict_get(f->metadata, key, NULL, 0);
    if (!e)
        return -1;
    double s = strtod(e->value, NULL);
    return s <= 0 ? 0 : (long long)(s * LUCY_ASR_SAMPLE_RATE + 0.5);
}

/* Pulls what the sink has; a silence's end closes it, and the speech
 * before its start (from *speech_from) becomes a span. */
static int drain(struct graph *gr, AVFrame *f, size_t *speech_from, int *in_silence,
                 struct spans *speech)
{
    for (;;) {
        int ret = av_buffersink_get_frame(gr->sink, f);
        if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF)
            return 0;
        if (ret < 0)
            return LUCY_EIO;
        long long start = meta_samples(f, "lavfi.silence_start");
        long long end = meta_samples(f, "lavfi.silence_end");
        av_frame_unref(f);
        int rc = 0;
        if (start >= 0 && !*in_silence) {
            rc = spans_push(speech, *speech_from, (size_t)start);
            *in_silence = 1;
        }
        if (end >= 0 && *in_silence) {
            *speech_from = (size_t)end;
            *in_silence = 0;
        }
        if (rc)
            return rc;
    }
}

/* Speech stretches of pcm, in order, from silencedetect. */
static int find_speech(const struct lucy_pcm *pcm, struct spans *speech, char *err, size_t errlen)
{
    struct graph gr = {0};
    AVFrame *in = av_frame_alloc(), *got = av_frame_alloc();
    size_t speech_from = 0;
    int in_silence = 0;
    int rc = !in || !got ? LUCY_ENOMEM : graph_open(&gr, err, errlen);
    for (size_t at = 0; rc == 0 && at < pcm->n_samples; at += FEED_SAMPLES) {
        size_t n = pcm->n_samples - at < FEED_SAMPLES ? pcm->n_samples - at : FEED_SAMPLES;
        AVChannelLayout mono = AV_CHANNEL_LAYOUT_MONO;
        in->format = AV_SAMPLE_FMT_S16;
        in->sample_rate = LUCY_ASR_SAMPLE_RATE;
        in->nb_samples = (int)n;
        in->pts = (int64_t)at;
        if (av_channel_layout_copy(&in->ch_layout, &mono) < 0 || av_frame_get_buffer(in, 0) < 0) {
            rc = LUCY_ENOMEM;
            break;
        }
        memcpy(in->data[0], pcm->s16 + at, n * sizeof *pcm->s16);
        if (av_buffersrc_add_frame(gr.src, in) < 0) /* takes the frame's data */
            rc = LUCY_EIO;
        av_frame_unref(in);
        if (rc == 0)
            rc = drain(&gr, got, &speech_from, &in_silence, speech);
    }
    if (rc == 0 && av_buffersrc_add_frame(gr.src, NULL) < 0) /* end of stream */
        rc = LUCY_EIO;
    if (rc == 0)
        rc = drain(&gr, got, &speech_from, &in_silence, speech);
    if (rc == 0 && !in_silence) /* speech up to the end */
        rc = spans_push(speech, speech_from, pcm->n_samples);
    if (rc == LUCY_EIO && errlen && !err[0])
        snprintf(err, errlen, "silencedetect failed on the decoded audio");
    av_frame_free(&in);
    av_frame_free(&got);
    avfilter_graph_free(&gr.g);
    return rc;
}

/* Where to end a chunk that starts at from and may not pass limit: the
 * quietest CUT_FRAME_MS in the last quarter of [from, limit). */
static size_t quietest_cut(const struct lucy_pcm *pcm, size_t from, size_t limit)
{
    size_t frame = MS_TO_SAMPLES(CUT_FRAME_MS);
    size_t best = limit;
    double best_energy = -1;
    for (size_t at = limit - (limit - from) / 4; at + frame <= limit; at += frame) {
        double e = 0;
        for (size_t i = at; i < at + frame; i++)
            e += (double)pcm->s16[i] * pcm->s16[i];
        if (best_energy < 0 || e < best_energy) {
            best_energy = e;
            best = at + frame / 2;
        }
    }
    return best;
}

int lucy_media_asr_chunks(const struct lucy_pcm *pcm, int max_chunk_s, struct lucy_chunk **out,
                          size_t *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    if (errlen)
        err[0] = '\0';
    struct spans speech = {0}, chunks = {0};
    int rc = find_speech(pcm, &speech, err, errlen);
    size_t max = (size_t)(max_chunk_s > 0 ? max_chunk_s : 30) * LUCY_ASR_SAMPLE_RATE;
    size_t pad = MS_TO_SAMPLES(PAD_MS), merge_gap = MS_TO_SAMPLES(MERGE_GAP_MS);
    size_t cur_from = 0, cur_to = 0;
    int open = 0;
    for (size_t i = 0; rc == 0 && i < speech.n; i++) {
        size_t from = speech.v[i].first_sample > pad ? speech.v[i].first_sample - pad : 0;
        size_t to = speech.v[i].first_sample + speech.v[i].n_samples + pad;
        if (to > pcm->n_samples)
            to = pcm->n_samples;
        if (open && from <= cur_to + merge_gap && to - cur_from <= max) {
            cur_to = to; /* a short pause: same chunk */
            continue;
        }
        if (open && (rc = spans_push(&chunks, cur_from, cur_to)) != 0)
            break;
        cur_from = from > cur_to || !open ? from : cur_to;
        cur_to = to;
        open = 1;
        while (rc == 0 && cur_to - cur_from > max) { /* too long: cut at a quiet spot */
            size_t cut = quietest_cut(pcm, cur_from, cur_from + max);
            rc = spans_push(&chunks, cur_from, cut);
            cur_from = cut;
        }
    }
    if (rc == 0 && open)
        rc = spans_push(&chunks, cur_from, cur_to);
    free(speech.v);
    if (rc) {
        free(chunks.v);
        return rc;
    }
    *out = chunks.v;
    *n = chunks.n;
    return 0;
}
