/*
 * asr.h - speech recognition: decoded audio in, timed segments out
 * (DESIGN §7).
 *
 * Two halves:
 *   audio.c   lucy_audio_decode(): any container/codec FFmpeg reads ->
 *             16 kHz mono PCM (s16 for pocketsphinx, f32 for whisper).
 *   engines   one file per engine (pocketsphinx.c, whisper.c, http.c),
 *             each one `const struct lucy_asr_engine`; callers use the
 *             lucy_asr_* wrappers, never the slots directly.
 *
 * Ownership: lucy_pcm and lucy_transcript own their arrays; free them with
 * lucy_pcm_free() / lucy_transcript_free(). An engine instance (void *) is
 * used by one thread at a time: one instance per transcription worker.
 */
#ifndef LUCY_ASR_H
#define LUCY_ASR_H

#include <stddef.h>
#include <stdint.h>

#define LUCY_ASR_SAMPLE_RATE 16000

/* 16 kHz mono audio; both representations of the same samples. */
struct lucy_pcm {
    int16_t *s16;       /* n_samples samples, for pocketsphinx */
    float *f32;         /* n_samples samples in [-1, 1], for whisper */
    size_t n_samples;   /* at LUCY_ASR_SAMPLE_RATE */
    double duration_s;  /* n_samples / 16000 */
    double source_duration_s; /* the container's duration (0 if unknown) */
};

struct lucy_segment {
    int64_t t0_ms; /* start, milliseconds from the beginning of the audio */
    int64_t t1_ms; /* end */
    char *text;    /* UTF-8, trimmed; owned by the transcript */
};

struct lucy_transcript {
    struct lucy_segment *segments; /* in time order */
    size_t n_segments;
    char *text;             /* all segments joined by spaces ("" = no speech) */
    char engine[32];        /* "pocketsphinx", "whisper", "http" */
    char model[256];        /* model path or name */
    char language[16];      /* "en", or detected */
    double audio_s;         /* duration of the audio transcribed */
    double wall_s;          /* time the engine took */
    double rtf;             /* real-time factor: wall_s / audio_s */
};

struct lucy_asr_options {
    const char *engine;        /* "auto", "pocketsphinx", "whisper", "http" */
    const char *whisper_model; /* LUCY_WHISPER_MODEL or NULL */
    const char *url;           /* LUCY_ASR_URL or NULL */
    int threads;               /* 0 = number of cores */
};

struct lucy_asr_engine {
    const char *name; /* "pocketsphinx" */
    /* Loads the model. Returns 0 and *state, or LUCY_E* with err. */
    int (*open)(const struct lucy_asr_options *opt, void **state, char *err, size_t errlen);
    /* Fills out (zeroed by the caller). Silence gives 0 segments. */
    int (*transcribe)(void *state, const struct lucy_pcm *pcm, struct lucy_transcript *out,
                      char *err, size_t errlen);
    void (*close)(void *state);
};

/* Decodes the file open on fd (path is for messages only; the file is read
 * through fd with libavformat, from the start) and resamples to 16 kHz
 * mono. Returns 0; LUCY_ECORRUPT when it is not decodable audio (err says
 * the decoder's reason); LUCY_ELOCKED / LUCY_EIO / LUCY_EPERM on read errors
 * by errno; LUCY_ENOMEM. */
int lucy_audio_decode_fd(int fd, const char *path, struct lucy_pcm *out, char *err, size_t errlen);
void lucy_pcm_free(struct lucy_pcm *pcm);

/* Chooses the engine for opt->engine ("auto": whisper if built and a model
 * is set, else http if a URL is set, else pocketsphinx). NULL with err when
 * the named engine is not built in or not configured. */
const struct lucy_asr_engine *lucy_asr_select(const struct lucy_asr_options *opt, char *err,
                                              size_t errlen);

int lucy_asr_open(const struct lucy_asr_engine *e, const struct lucy_asr_options *opt,
                  void **state, char *err, size_t errlen);
/* Transcribes and fills engine name, audio_s, wall_s and rtf. */
int lucy_asr_transcribe(const struct lucy_asr_engine *e, void *state, const struct lucy_pcm *pcm,
                        struct lucy_transcript *out, char *err, size_t errlen);
void lucy_asr_close(const struct lucy_asr_engine *e, void *state);
void lucy_transcript_free(struct lucy_transcript *t);

#endif
