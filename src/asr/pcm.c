/*
 * pcm.c - decoded audio as lucy holds it (struct lucy_pcm, struct
 * lucy_audio; asr.h): freeing, views, the identical-channels test.
 *
 * These live in the binary, not in the media module (src/media): what the
 * module decodes is plain malloc'd memory the daemon keeps and frees after
 * the module may have been unloaded.
 */
#include <stdlib.h>
#include <string.h>

#include "asr.h"

/* Two channels whose difference has at most this share of their energy
 * (-30 dB) carry one signal. */
#define IDENTICAL_MAX_DIFF_RATIO 0.001

int lucy_audio_channels_identical(const int16_t *s16, size_t n_frames)
{
    /* Energy of L - R against the mean energy of L and R: a channel pair
     * whose difference is at most IDENTICAL_MAX_DIFF_RATIO of the signal carries
     * one signal (lossy coders leave a little noise between twins). */
    double diff = 0, energy = 0;
    for (size_t i = 0; i < n_frames; i++) {
        double l = s16[2 * i], r = s16[2 * i + 1];
        diff += (l - r) * (l - r);
        energy += (l * l + r * r) / 2;
    }
    return energy == 0 || diff <= energy * IDENTICAL_MAX_DIFF_RATIO;
}

struct lucy_pcm lucy_pcm_view(const struct lucy_pcm *pcm, const struct lucy_chunk *c)
{
    struct lucy_pcm v = {
        .s16 = pcm->s16 ? pcm->s16 + c->first_sample : NULL,
        .f32 = pcm->f32 ? pcm->f32 + c->first_sample : NULL,
        .n_samples = c->n_samples,
        .duration_s = (double)c->n_samples / LUCY_ASR_SAMPLE_RATE,
    };
    return v;
}

void lucy_audio_free(struct lucy_audio *a)
{
    if (!a)
        return;
    for (int ch = 0; ch < LUCY_AUDIO_MAX_CHANNELS; ch++)
        lucy_pcm_free(&a->channel[ch]);
    a->n_channels = 0;
}

void lucy_pcm_free(struct lucy_pcm *pcm)
{
    if (!pcm)
        return;
    free(pcm->s16);
    free(pcm->f32);
    memset(pcm, 0, sizeof *pcm);
}
