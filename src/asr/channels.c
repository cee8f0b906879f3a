/*
 * channels.c - who said what in a stereo call (DESIGN §13): the one
 * reading of LUCY_CALL_CHANNELS, a recording decoded per channel or mixed
 * as it says, each channel's chunks planned and labelled (channel and
 * speaker role), and the segments of all channels merged in time order.
 *
 * Shared by the transcription worker (plugins/call_recordings/worker.c),
 * whose chunk hook takes committed chunks from its checkpoints and commits
 * each one it recognises, and by `lucy transcribe` (src/cmd/transcribe.c),
 * which has no checkpoints and recognises every chunk with
 * lucy_asr_recognise_chunk. Nothing here knows jobs, the store or the
 * call's person: a segment's speaker is the role "me" / "them"; the API
 * turns "them" into the call's person when it reads a stored transcript.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../error.h"
#include "asr.h"

/* LUCY_CALL_CHANNELS's values (config.c's enum reads this list) and what
 * each means, row for row. */
const char *const lucy_asr_channels_names[] = {"me,them", "them,me", "mix", NULL};
static const struct lucy_asr_channels layouts[] = {
    {.split = 1, .roles = {"me", "them"}}, /* BCR: the phone's user on the left */
    {.split = 1, .roles = {"them", "me"}},
    {.split = 0, .roles = {NULL, NULL}},
};
_Static_assert(sizeof layouts / sizeof layouts[0] ==
                   sizeof lucy_asr_channels_names / sizeof lucy_asr_channels_names[0] - 1,
               "one layout per LUCY_CALL_CHANNELS value");

int lucy_asr_channels_parse(const char *value, struct lucy_asr_channels *out)
{
    *out = layouts[0];
    if (!value)
        return 0;
    for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++)
        if (strcmp(value, lucy_asr_channels_names[i]) == 0) {
            *out = layouts[i];
            return 0;
        }
    return LUCY_EINVAL;
}

int lucy_audio_decode_call_fd(int fd, const char *path, const struct lucy_asr_channels *ch,
                              struct lucy_audio *out, char *err, size_t errlen)
{
    if (ch->split)
        return lucy_audio_decode_split_fd(fd, path, out, err, errlen);
    memset(out, 0, sizeof *out);
    int rc = lucy_audio_decode_fd(fd, path, &out->channel[0], err, errlen);
    out->n_channels = rc == 0;
    return rc;
}

int lucy_asr_plan_make(const struct lucy_audio *a, const struct lucy_asr_channels *ch,
                       int max_chunk_s, struct lucy_asr_plan *plan, char *err, size_t errlen)
{
    memset(plan, 0, sizeof *plan);
    plan->audio = a;
    /* Two channels only when they carry two signals (the decoder says so);
     * one channel is mono, mixed or identical: no channel, no speaker. */
    int per_channel = a->n_channels == 2;
    for (int k = 0; k < a->n_channels && k < LUCY_AUDIO_MAX_CHANNELS; k++) {
        struct lucy_asr_track *t = &plan->track[plan->n_tracks++];
        t->pcm = &a->channel[k];
        t->channel = per_channel ? k : -1;
        t->speaker = per_channel ? ch->roles[k] : NULL;
        if (max_chunk_s > 0) {
            int rc = lucy_asr_chunks(t->pcm, max_chunk_s, &t->chunks, &t->n_chunks, err, errlen);
            if (rc)
                return rc;
        } else if (t->pcm->n_samples > 0) {
            /* The whole channel at once, silence included (`--chunk-s 0`). */
            t->chunks = malloc(sizeof *t->chunks);
            if (!t->chunks)
                return LUCY_ENOMEM;
            t->chunks[0] = (struct lucy_chunk){.first_sample = 0, .n_samples = t->pcm->n_samples};
            t->n_chunks = 1;
        }
        for (size_t i = 0; i < t->n_chunks; i++)
            plan->total_s += (double)t->chunks[i].n_samples / LUCY_ASR_SAMPLE_RATE;
        plan->n_chunks += (int)t->n_chunks;
    }
    return 0;
}

void lucy_asr_plan_free(struct lucy_asr_plan *plan)
{
    if (!plan)
        return;
    for (int k = 0; k < LUCY_AUDIO_MAX_CHANNELS; k++)
        free(plan->track[k].chunks);
    memset(plan, 0, sizeof *plan);
}

int lucy_asr_recognise_chunk(const struct lucy_asr_engine *e, void *state,
                             const struct lucy_asr_track *t, const struct lucy_chunk *c,
                             int continues, struct lucy_transcript *piece, char *err, size_t errlen)
{
    struct lucy_pcm view = lucy_pcm_view(t->pcm, c);
    view.continues = continues;
    struct lucy_transcript got = {0};
    int rc = lucy_asr_transcribe(e, state, &view, &got, err, errlen);
    if (rc == 0)
        rc = lucy_transcript_append(
            piece, &got, (int64_t)c->first_sample * 1000 / LUCY_ASR_SAMPLE_RATE, t->channel, NULL);
    if (rc == 0) {
        snprintf(piece->engine, sizeof piece->engine, "%s", got.engine);
        snprintf(piece->model, sizeof piece->model, "%s", got.model);
        snprintf(piece->language, sizeof piece->language, "%s", got.language);
        piece->wall_s = got.wall_s;
    }
    lucy_transcript_free(&got);
    return rc;
}

int lucy_asr_transcribe_plan(const struct lucy_asr_plan *plan, const char *engine,
                             lucy_asr_chunk_fn fn, void *arg, struct lucy_transcript *out,
                             char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    double wall_s = 0;
    int rc = 0;
    for (int k = 0; k < plan->n_tracks && rc == 0; k++) {
        const struct lucy_asr_track *t = &plan->track[k];
        /* The engine continues a channel's stream only from the chunk it
         * recognised just before (not across one the hook took from
         * elsewhere, another channel or another recording). */
        size_t next_continued = 0; /* index of the chunk that continues the stream; 0 none */
        for (size_t i = 0; i < t->n_chunks && rc == 0; i++) {
            struct lucy_transcript piece = {0};
            int fresh = 0;
            rc = fn(arg, t, &t->chunks[i], i > 0 && next_continued == i, &piece, &fresh, err,
                    errlen);
            if (rc == 0) {
                if (fresh)
                    next_continued = i + 1;
                /* What ran now names the model; a resumed chunk only when
                 * nothing ran yet. */
                if (piece.model[0] && (fresh || !out->model[0]))
                    snprintf(out->model, sizeof out->model, "%s", piece.model);
                if (fresh && piece.language[0])
                    snprintf(out->language, sizeof out->language, "%s", piece.language);
                wall_s += piece.wall_s;
                rc = lucy_transcript_append(out, &piece, 0, t->channel, t->speaker);
            }
            lucy_transcript_free(&piece);
        }
    }
    if (rc)
        return rc;
    lucy_transcript_sort(out);
    if ((rc = lucy_transcript_join(out)) != 0)
        return rc;
    /* Every channel has the same duration and truncation (the decoder sets
     * them on each). */
    const struct lucy_pcm *first = &plan->audio->channel[0];
    snprintf(out->engine, sizeof out->engine, "%s", engine ? engine : "");
    if (!out->language[0])
        snprintf(out->language, sizeof out->language, "en");
    out->audio_s = first->duration_s;
    out->wall_s = wall_s;
    out->rtf = first->duration_s > 0 ? wall_s / first->duration_s : 0;
    out->truncated = first->truncated;
    out->source_duration_s = first->source_duration_s;
    out->channels = plan->audio->n_channels;
    return 0;
}
