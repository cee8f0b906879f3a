/*
 * fuzz_probe.c - libFuzzer driver for media probing (DESIGN §11): the
 * scanner's probe lucy_media_probe_fd() (src/plugins/call_recordings/
 * probe.c) and the transcription decoder lucy_media_decode_fd()
 * (src/asr/audio.c), both on the same arbitrary bytes, which is what a
 * recordings folder can hold.
 *
 * The input is written to a memfd (a regular file in memory, so both take
 * their pread/seek path, as for a file on disk) that is reused between
 * runs. Properties checked besides "no crash, no leak, no undefined
 * behaviour":
 *   probe   never READ_ERROR (a memfd read does not fail); AUDIO has a
 *           codec name, a tags object, no reason, no negative rate,
 *           channel count or bit rate, and a finite duration (-1 when
 *           unknown); UNSUPPORTED and CORRUPT say why.
 *   decode  0 gives samples in both forms, duration_s = samples / 16 kHz
 *           and floats in [-1, 1]; otherwise LUCY_ECORRUPT or LUCY_ENOMEM
 *           with a reason, and nothing to free.
 * Logging is at DEBUG into /dev/null, so FFmpeg's messages also run
 * through lucy_log, as with LUCY_LOG_LEVEL=debug.
 *
 * Built by scripts/fuzz with clang -fsanitize=fuzzer,address,undefined;
 * seeds are in tests/fuzz/corpus/probe/ (the audio fixtures, truncated
 * variants, and other containers phones and messengers write).
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "asr/asr.h"
#include "error.h"
#include "log.h"
#include "media/media.h"
#include "plugins/call_recordings/scan_int.h"

static int fd = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fd = memfd_create("fuzz_probe", MFD_CLOEXEC);
    FILE *null = fopen("/dev/null", "w");
    if (fd < 0 || !null)
        abort();
    lucy_log_set_output(null);
    lucy_log_set_level(LUCY_LOG_DEBUG);
    return 0;
}

static void load(const uint8_t *data, size_t size)
{
    if (ftruncate(fd, 0) != 0)
        abort();
    for (size_t off = 0; off < size;) {
        ssize_t n = pwrite(fd, data + off, size - off, (off_t)off);
        if (n <= 0)
            abort();
        off += (size_t)n;
    }
}

static void fuzz_scan_probe(size_t size)
{
    struct lucy_scan_probe p;
    enum lucy_scan_probe_result r = lucy_media_probe_fd(fd, (int64_t)size, &p);
    switch (r) {
    case LUCY_SCAN_PROBE_AUDIO:
        if (!p.codec[0] || !json_is_object(p.tags) || p.reason[0] || p.sample_rate < 0 ||
            p.channels < 0 || p.bit_rate < 0)
            abort();
        /* What the store and the API get: a finite duration, -1 = unknown. */
        if (!isfinite(p.duration_s) || (p.duration_s < 0 && p.duration_s != -1))
            abort();
        break;
    case LUCY_SCAN_PROBE_UNSUPPORTED:
    case LUCY_SCAN_PROBE_CORRUPT:
        if (!p.reason[0])
            abort();
        break;
    default:
        abort();
    }
    json_decref(p.tags); /* lucy_scan_probe_clear, which lives in scan.c */
}

static void fuzz_decode(void)
{
    struct lucy_pcm pcm;
    char err[512];
    int rc = lucy_media_decode_fd(fd, "fuzz-input", &pcm, err, sizeof err);
    if (rc == 0) {
        if (!pcm.n_samples || !pcm.s16 || !pcm.f32 ||
            pcm.duration_s != (double)pcm.n_samples / LUCY_ASR_SAMPLE_RATE)
            abort();
        for (size_t i = 0; i < pcm.n_samples; i++)
            if (!(pcm.f32[i] >= -1.0f && pcm.f32[i] <= 1.0f))
                abort();
    } else {
        if ((rc != LUCY_ECORRUPT && rc != LUCY_ENOMEM) || !err[0] || pcm.s16 || pcm.f32)
            abort();
    }
    lucy_pcm_free(&pcm);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    load(data, size);
    fuzz_scan_probe(size);
    fuzz_decode();
    return 0;
}
