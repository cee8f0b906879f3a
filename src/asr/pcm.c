/*
 * pcm.c - decoded audio as lucy holds it (struct lucy_pcm, struct
 * lucy_audio; asr.h): freeing, views, the identical-channels test.
 *
 * These live in the binary, not in the media module (src/media): what the
 * module decodes is plain malloc'd memory the daemon keeps and frees after
 * the module may have been unloaded.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "asr.h"

/* Two channels whose difference has at most this share of their energy
 * (-30 dB) carry one signal: the fast answer for copies. */
#define IDENTICAL_MAX_DIFF_RATIO 0.001
/* Otherwise: one signal when the channels' normalised cross-correlation
 * reaches this at some lag within IDENTICAL_MAX_LAG frames (5 ms at
 * 16 kHz) - one channel a louder or softer, inverted or slightly delayed
 * copy of the other, as a recorder that duplicates the mono call does.
 * Two parties' voices, even with some echo of one in the other, stay far
 * below it. */
#define IDENTICAL_MIN_CORRELATION 0.98
#define IDENTICAL_MAX_LAG         80
/* The correlation is measured on this many windows of WINDOW_FRAMES spread
 * over the recording (about 4 s of a 16 kHz file: cheap for an hour). */
#define WINDOWS       16
#define WINDOW_FRAMES 4096

/* Sum of l[i] * r[i + lag] over the windows, and each side's energy. */
static void windowed_products(const int16_t *s16, size_t n_frames, int lag, double *lr, double *ll,
                              double *rr)
{
    *lr = *ll = *rr = 0;
    size_t span = n_frames > WINDOW_FRAMES ? n_frames - WINDOW_FRAMES : 0;
    for (size_t w = 0; w < WINDOWS; w++) {
        size_t start = span * w / (WINDOWS > 1 ? WINDOWS - 1 : 1);
        for (size_t i = start; i < start + WINDOW_FRAMES && i < n_frames; i++) {
            long j = (long)i + lag;
            if (j < 0 || (size_t)j >= n_frames)
                continue;
            double l = s16[2 * i], r = s16[2 * (size_t)j + 1];
            *lr += l * r, *ll += l * l, *rr += r * r;
        }
        if (span == 0)
            break; /* a short file: one window holds it all */
    }
}

int lucy_audio_channels_identical(const int16_t *s16, size_t n_frames)
{
    /* Energy of L - R against the mean energy of L and R: a channel pair
     * whose difference is at most IDENTICAL_MAX_DIFF_RATIO of the signal
     * carries one signal (lossy coders leave a little noise between twins). */
    double diff = 0, energy = 0, left = 0, right = 0;
    for (size_t i = 0; i < n_frames; i++) {
        double l = s16[2 * i], r = s16[2 * i + 1];
        diff += (l - r) * (l - r);
        energy += (l * l + r * r) / 2;
        left += l * l, right += r * r;
    }
    if (energy == 0 || diff <= energy * IDENTICAL_MAX_DIFF_RATIO)
        return 1;
    if (left == 0 || right == 0)
        return 0; /* one side silent: a one-sided call, not a copy */
    for (int lag = -IDENTICAL_MAX_LAG; lag <= IDENTICAL_MAX_LAG; lag++) {
        double lr, ll, rr;
        windowed_products(s16, n_frames, lag, &lr, &ll, &rr);
        if (ll > 0 && rr > 0 && fabs(lr) >= IDENTICAL_MIN_CORRELATION * sqrt(ll * rr))
            return 1;
    }
    return 0;
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
