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
 * Where the code runs: decoding, chunking and the engines (audio.c,
 * chunk.c, asr.c and the engine files) are the media module, loaded only
 * while there is media work (src/media/media.h); the functions declared
 * here with those names hold the module for the call. Engine rows and
 * instances belong to the module: an engine pointer from lucy_asr_select
 * stays valid while the module is held - an open instance holds it
 * (lucy_asr_open .. lucy_asr_close). Transcripts and PCM (transcript.c,
 * pcm.c) are the binary's own and outlive the module.
 *
 * Ownership: lucy_pcm and lucy_transcript own their arrays; free them with
 * lucy_pcm_free() / lucy_transcript_free(). An engine instance (void *) is
 * used by one thread at a time: one instance per transcription worker.
 */
#ifndef LUCY_ASR_H
#define LUCY_ASR_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define LUCY_ASR_SAMPLE_RATE 16000
/* Audio decoded per file at most, in seconds: bounds the memory a decode
 * takes (6 bytes per sample, ~1.4 GB at 4 h). A build may lower it
 * (scripts/fuzz does, so that inputs claiming hours decode quickly). */
#ifndef LUCY_ASR_MAX_AUDIO_S
#define LUCY_ASR_MAX_AUDIO_S (4 * 3600)
#endif

/* 16 kHz mono audio; both representations of the same samples. */
struct lucy_pcm {
    int16_t *s16;             /* n_samples samples, for pocketsphinx */
    float *f32;               /* n_samples samples in [-1, 1], for whisper */
    size_t n_samples;         /* at LUCY_ASR_SAMPLE_RATE */
    double duration_s;        /* n_samples / 16000 */
    double source_duration_s; /* the container's duration (0 if unknown) */
    int truncated;            /* 1: decoded audio ends well before source_duration_s
                                 (a file cut after its index), or the file is longer
                                 than LUCY_ASR_MAX_AUDIO_S; the audio is kept */
    int continues;            /* 1: these samples follow, in the same stream, those of
                                 the previous call on this engine instance (the next
                                 chunk of one channel): the engine keeps what it adapted
                                 to the signal (pocketsphinx's cepstral mean) instead of
                                 starting afresh, as a recogniser fed the whole file
                                 would. 0 for a new recording or channel. */
};

/* One recognised word with its time, where the engine gives word times. */
struct lucy_word {
    int64_t t0_ms; /* start, milliseconds from the beginning of the audio */
    int64_t t1_ms; /* end */
    char *text;    /* UTF-8; owned by the transcript */
};

struct lucy_segment {
    int64_t t0_ms;           /* start, milliseconds from the beginning of the audio */
    int64_t t1_ms;           /* end */
    char *text;              /* UTF-8, trimmed; owned by the transcript */
    struct lucy_word *words; /* n_words words inside [t0_ms, t1_ms], in order; NULL = none */
    size_t n_words;
    int channel;         /* source channel (0 = left, 1 = right), -1 = mono or mixed */
    const char *speaker; /* static "me" / "them", NULL = unknown (set by the caller) */
};

struct lucy_transcript {
    struct lucy_segment *segments; /* in time order */
    size_t n_segments;
    char *text;               /* all segments joined by spaces ("" = no speech) */
    char engine[32];          /* "pocketsphinx", "whisper", "http" */
    char model[256];          /* model path or name */
    char language[16];        /* "en", or detected */
    double audio_s;           /* duration of the audio transcribed */
    double wall_s;            /* time the engine took */
    double rtf;               /* real-time factor: wall_s / audio_s */
    int truncated;            /* the audio was truncated (struct lucy_pcm); set by the caller */
    double source_duration_s; /* the container's duration, 0 = unknown; set by the caller */
    int channels;             /* channels transcribed apart (1 or 2); set by the caller */
};

struct lucy_asr_options {
    const char *engine;        /* "auto", "pocketsphinx", "whisper", "http" */
    const char *whisper_model; /* LUCY_WHISPER_MODEL or NULL */
    const char *url;           /* LUCY_ASR_URL or NULL */
    int threads;               /* 0 = number of cores */
    const char *model;         /* optional override (`--model`): pocketsphinx
                                  acoustic model dir, whisper model path (wins
                                  over whisper_model), http model name
                                  (default "whisper-1"); NULL = default */
};

struct lucy_asr_engine {
    const char *name; /* "pocketsphinx" */
    /* Loads the model. Returns 0 and *state, or LUCY_E* with err. */
    int (*open)(const struct lucy_asr_options *opt, void **state, char *err, size_t errlen);
    /* Fills out (zeroed by the caller). Silence gives 0 segments. */
    int (*transcribe)(void *state, const struct lucy_pcm *pcm, struct lucy_transcript *out,
                      char *err, size_t errlen);
    void (*close)(void *state);
    /* The model this instance loaded, as its transcripts name it (a path
     * or a server's model name); owned by the instance. */
    const char *(*model)(void *state);
    /* Checks a model named per request (opt->model of a job) before
     * anything is queued, without loading it: 0, or LUCY_EINVAL with err
     * saying what is wrong and what to give instead. NULL = any name is
     * accepted (http: the server knows its models). */
    int (*check_model)(const char *model, char *err, size_t errlen);
    /* 1: an instance recognises on one core (pocketsphinx), so a long
     * recording goes faster on several instances at once (lanes, below);
     * 0: the engine spreads its own work (whisper.cpp's threads, a
     * server). */
    int one_core;
};

/* A recording decoded with its channels kept apart (DESIGN §13). */
#define LUCY_AUDIO_MAX_CHANNELS 2
struct lucy_audio {
    struct lucy_pcm channel[LUCY_AUDIO_MAX_CHANNELS]; /* [0] left or mono, [1] right */
    int n_channels;      /* 2: a stereo source with two different signals; else 1 (mono
                            source, identical channels, more than two channels: mixed) */
    int identical;       /* 1: stereo whose two channels carry the same signal */
    int source_channels; /* channels the container declares */
};

/* Decodes the file open on fd (path is for messages only; the file is read
 * through fd with libavformat, from the start) and resamples to 16 kHz
 * mono. Returns 0; LUCY_ECORRUPT when it is not decodable audio (err says
 * the decoder's reason); LUCY_ELOCKED / LUCY_EIO / LUCY_EPERM on read errors
 * by errno; LUCY_ENOMEM. A file that decodes to well under its container's
 * duration is returned with out->truncated = 1 (and a WARNING logged); so is
 * one longer than LUCY_ASR_MAX_AUDIO_S, of which only that much is decoded.
 * A regular file is read with pread (the fd's offset is neither used nor
 * moved); anything else (a pipe) is read in order. out is owned by the
 * caller: lucy_pcm_free(). Thread-safe (FFmpeg's log callback is installed
 * once per process and routes to lucy_log DEBUG). */
int lucy_audio_decode_fd(int fd, const char *path, struct lucy_pcm *out, char *err, size_t errlen);
/* Frees the sample arrays and zeroes *pcm. NULL and a zeroed pcm are fine. */
void lucy_pcm_free(struct lucy_pcm *pcm);

/* lucy_audio_decode_fd(), but a stereo source keeps its two channels
 * apart (each resampled to 16 kHz): out->n_channels 2 and channel[0] =
 * left, channel[1] = right - unless the channels are identical
 * (lucy_audio_channels_identical: out->identical, n_channels 1, one
 * channel). Mono and sources of more than two channels give n_channels 1,
 * mixed to mono as lucy_audio_decode_fd does. truncated and
 * source_duration_s are set on every channel. Same errors and threads as
 * lucy_audio_decode_fd; out is the caller's: lucy_audio_free() (also
 * zeroed on error). */
int lucy_audio_decode_split_fd(int fd, const char *path, struct lucy_audio *out, char *err,
                               size_t errlen);
/* Frees every channel. NULL and a zeroed struct are fine. */
void lucy_audio_free(struct lucy_audio *a);
/* 1 when the n_frames interleaved stereo frames of s16 carry one signal:
 * the energy of L - R is at most 1/1000 (-30 dB) of the channels' mean
 * energy (lossy coders leave a little noise between identical channels),
 * or both are silent. Pure. */
int lucy_audio_channels_identical(const int16_t *s16, size_t n_frames);

/* A stretch of audio handed to the recogniser (DESIGN §13 Pauses). */
struct lucy_chunk {
    size_t first_sample; /* at LUCY_ASR_SAMPLE_RATE from the start of the audio */
    size_t n_samples;    /* > 0 */
};

/* Cuts pcm at its pauses: FFmpeg's silencedetect filter (libavfilter)
 * finds silences of at least 0.5 s below -35 dBFS; what lies between is
 * speech, padded by 0.2 s into the silence around it; neighbouring speech
 * closer than 1 s is kept in one chunk while it fits; a chunk is at most
 * max_chunk_s seconds (longer speech is cut at its quietest 50 ms within
 * the last quarter of the window). Silence is in no chunk: all silence
 * gives *n 0. *out (malloc'd, the caller frees it; NULL when *n is 0)
 * holds the chunks in time order. 0, LUCY_ENOMEM, or LUCY_EIO when the
 * filter graph fails (err says why). Thread-safe. */
int lucy_asr_chunks(const struct lucy_pcm *pcm, int max_chunk_s, struct lucy_chunk **out, size_t *n,
                    char *err, size_t errlen);

/* A view of samples [c->first_sample, + c->n_samples) of pcm: pointers
 * into pcm's arrays (no copy; do not free the view), duration_s set,
 * truncated and source_duration_s 0. Pure. */
struct lucy_pcm lucy_pcm_view(const struct lucy_pcm *pcm, const struct lucy_chunk *c);

/* Chooses the engine for opt->engine ("auto" or NULL: whisper if built and
 * a model is set, else http if a URL is set, else pocketsphinx). NULL with
 * err when the named engine is unknown, not built in or not configured
 * (http without a URL, whisper without a model). The result is a static
 * row: never freed. Thread-safe. */
const struct lucy_asr_engine *lucy_asr_select(const struct lucy_asr_options *opt, char *err,
                                              size_t errlen);

/* Checks a per-job engine and model (a re-transcription request, DESIGN
 * §13 Versions) before anything is queued: opt is the configured options
 * with opt->engine (NULL or "" = the configured one) and opt->model (NULL
 * or "" = the engine's default) as the request named them. *out (may be
 * NULL) gets the engine that would run. 0 when lucy can run them;
 * LUCY_EINVAL when the engine name is not one lucy knows or the model is
 * not usable by that engine (check_model); LUCY_EUNAVAIL when the engine
 * is known but not built in or its requirements are not configured (http
 * without a URL, whisper without a model). err says what to set or give.
 * Loads no model (the media module, if it is not loaded). Thread-safe. */
int lucy_asr_check(const struct lucy_asr_options *opt, const struct lucy_asr_engine **out,
                   char *err, size_t errlen);

/* Opens an instance of engine e (loads its model: pocketsphinx ~0.7 s,
 * whisper seconds). opt's strings are copied or used during the call only.
 * Returns 0 and *state (close it with lucy_asr_close), or a LUCY_E* code
 * with err (LUCY_EUNAVAIL: model missing). One instance serves one thread
 * at a time; open one per worker. */
int lucy_asr_open(const struct lucy_asr_engine *e, const struct lucy_asr_options *opt, void **state,
                  char *err, size_t errlen);
/* Transcribes pcm (not modified) into *out, which it zeroes first, and
 * fills engine, language (default "en"), audio_s, wall_s (CLOCK_MONOTONIC
 * around the engine) and rtf = wall_s / audio_s. No speech: 0 segments and
 * text "". On error *out is empty and err says why: LUCY_EUNAVAIL (http:
 * server refused, with its message; unreachable), LUCY_ETIMEDOUT,
 * LUCY_EIO (engine failure), LUCY_ENOMEM. The caller frees *out with
 * lucy_transcript_free() in both cases. */
int lucy_asr_transcribe(const struct lucy_asr_engine *e, void *state, const struct lucy_pcm *pcm,
                        struct lucy_transcript *out, char *err, size_t errlen);
/* The model instance state of engine e loaded, as its transcripts name it
 * ("" when unknown): for a transcript in which nothing was recognised (all
 * silence), which no engine call named. Valid while the instance is open.
 * Thread: the instance's. */
const char *lucy_asr_model(const struct lucy_asr_engine *e, void *state);
/* Closes an instance from lucy_asr_open. NULL state is fine. */
void lucy_asr_close(const struct lucy_asr_engine *e, void *state);

/* Instances of the engine named engine ("pocketsphinx") holding a model in
 * this process (lucy_asr_instance_load .. unload, lifecycle.h): how many
 * copies of its model are in memory. Any thread. */
int lucy_asr_loaded(const char *engine);

/* The /metrics lines of speech recognition (a lucy_metrics_fn; arg is
 * unused): lucy_asr_model_loaded{engine} 0/1 and
 * lucy_asr_instances_loaded{engine} for every built-in engine. Any thread.
 * (lifecycle.c) */
void lucy_asr_metrics(void *arg, FILE *out);
/* Frees segments and text; the struct itself is the caller's. Safe on a
 * zeroed transcript and after a failed lucy_asr_transcribe. */
void lucy_transcript_free(struct lucy_transcript *t);

/* Appends a segment [t0_ms, t1_ms] with a copy of text[0..text_len),
 * trimmed of surrounding white space; text that is empty after trimming is
 * skipped (returns 0). t1_ms below t0_ms is raised to t0_ms. For engines
 * and for callers rebuilding a stored transcript. 0 or LUCY_ENOMEM. */
int lucy_transcript_add(struct lucy_transcript *t, int64_t t0_ms, int64_t t1_ms, const char *text,
                        size_t text_len);

/* Appends a word [t0_ms, t1_ms] with a copy of text[0..text_len) to the
 * last segment of t (LUCY_EINVAL when t has none). For engines that give
 * word times; as lucy_segment_add_word (clamped, trimmed). 0, LUCY_EINVAL
 * or LUCY_ENOMEM. */
int lucy_transcript_add_word(struct lucy_transcript *t, int64_t t0_ms, int64_t t1_ms,
                             const char *text, size_t text_len);

/* Moves every segment of src (with its words) to the end of dst, their
 * times shifted by offset_ms and their channel and speaker set; src is
 * left empty (free it as usual). dst's text is not rebuilt. 0 or
 * LUCY_ENOMEM (then nothing moved). */
int lucy_transcript_append(struct lucy_transcript *dst, struct lucy_transcript *src,
                           int64_t offset_ms, int channel, const char *speaker);

/* Sorts t's segments by t0_ms (then channel), keeping the order of equal
 * ones: the segments of two channels merged in time order. Pure. */
void lucy_transcript_sort(struct lucy_transcript *t);

/* Keeps every time of t inside the audio it came from, [0, end_ms]: each
 * segment's t0_ms/t1_ms, and its words inside the segment, in order. An
 * engine may say otherwise: whisper.cpp decodes 30 s windows and can put
 * a timestamp past the end of a shorter chunk (seen with whisper.cpp
 * 1.9.1). Pure. */
void lucy_transcript_clamp(struct lucy_transcript *t, int64_t end_ms);

/* Appends a word [t0_ms, t1_ms] with a copy of text[0..text_len), trimmed,
 * to segment seg (from lucy_transcript_add). Times are clamped into the
 * segment, t0_ms to no earlier than the previous word's start and t1_ms to
 * no earlier than t0_ms, so a segment's words are monotonic and inside it
 * whatever the engine reported. Text that is empty after trimming is
 * skipped (returns 0). 0 or LUCY_ENOMEM. */
int lucy_segment_add_word(struct lucy_segment *seg, int64_t t0_ms, int64_t t1_ms, const char *text,
                          size_t text_len);

/* One token of whisper.cpp's decoder (a BPE piece: " Hel", "lo", ","),
 * from the library (whisper.c) or its server's verbose_json (http.c). */
struct lucy_token {
    int64_t t0_ms;    /* start, milliseconds from the beginning of the audio */
    int64_t t1_ms;    /* end */
    const char *text; /* UTF-8 (a piece may be part of a character); NULL = none;
                         not owned */
};

/* Appends tokens tok[0..n), in order, to segment seg as words: the one
 * rule that turns whisper.cpp's tokens into words. A token beginning with
 * white space starts a word, and so does the first token of the call and
 * the first after a token that ends in white space (or is only white
 * space); any other token continues the word before it (the rest of a
 * word, punctuation, the rest of a UTF-8 character): its text, trimmed,
 * is appended and the word's end moves to the token's if later, never
 * past the segment's end. A word starts at its first token's start, clamped
 * as lucy_segment_add_word does, so words are monotonic and inside seg
 * whatever the times. NULL and empty texts are skipped. Special tokens
 * ([_BEG_], <|endoftext|>) are the caller's to leave out. 0 or LUCY_ENOMEM
 * (the words added before it stay; free them with the transcript). */
int lucy_segment_add_tokens(struct lucy_segment *seg, const struct lucy_token *tok, size_t n);

/* Sets t->text to the segments' texts joined by single spaces ("" when
 * there are none), replacing any previous text. 0 or LUCY_ENOMEM. */
int lucy_transcript_join(struct lucy_transcript *t);

/* ---- who said what: the channels of a call (channels.c, DESIGN §13) ------
 *
 * The worker and `lucy transcribe` both go decode (lucy_audio_decode_call_fd)
 * -> plan (lucy_asr_plan_make, plan.c) -> recognise and merge
 * (lucy_asr_transcribe_plan with a chunk hook), so a file gets the same
 * segments, channels and speakers from either. */

/* LUCY_CALL_CHANNELS's values, NULL-terminated: "me,them", "them,me",
 * "mix" (config.c's enum validates against this list). */
extern const char *const lucy_asr_channels_names[];

/* How a stereo call is transcribed: the one reading of LUCY_CALL_CHANNELS. */
struct lucy_asr_channels {
    int split;            /* 1: each channel apart; 0 ("mix"): stereo mixed to mono */
    const char *roles[2]; /* speaker of the left, right channel: static "me" / "them";
                             NULL when !split */
};

/* Reads a LUCY_CALL_CHANNELS value (NULL = the default "me,them": BCR
 * records the phone's user on the left). 0, or LUCY_EINVAL for anything
 * else (*out is then the default). Pure. */
int lucy_asr_channels_parse(const char *value, struct lucy_asr_channels *out);

/* Decodes a call as ch says: split -> lucy_audio_decode_split_fd (two
 * channels when they differ); mix -> lucy_audio_decode_fd into channel[0],
 * n_channels 1. Same errors, threads and ownership as those. */
int lucy_audio_decode_call_fd(int fd, const char *path, const struct lucy_asr_channels *ch,
                              struct lucy_audio *out, char *err, size_t errlen);

/* ---- recognising a plan: chunks on lanes (plan.c, DESIGN §13) --------- */

/* One channel of a plan, labelled. */
struct lucy_asr_track {
    const struct lucy_pcm *pcm; /* the channel's audio, in the plan's lucy_audio (not owned) */
    int channel;                /* its segments' channel: 0 left, 1 right, -1 mono or mixed */
    const char *speaker;        /* its segments' speaker: static "me" / "them"; NULL for -1 */
    struct lucy_chunk *chunks;  /* n_chunks, in time order; owned by the plan */
    size_t n_chunks;
};

/* What will be recognised of a decoded call. */
struct lucy_asr_plan {
    const struct lucy_audio *audio; /* not owned: outlives the plan */
    struct lucy_asr_track track[LUCY_AUDIO_MAX_CHANNELS];
    int n_tracks;   /* audio->n_channels */
    int n_chunks;   /* of all tracks */
    double total_s; /* audio in all chunks, seconds (silence is in none) */
};

/* Plans a (from lucy_audio_decode_call_fd): each channel cut at its pauses
 * (lucy_asr_chunks, chunks of at most max_chunk_s; 0 = each channel whole,
 * one chunk, silence included) and labelled: two channels get channel 0/1
 * and ch->roles; a single one (mono, mixed, identical channels) -1 and no
 * speaker. 0, or lucy_asr_chunks' errors with err; *plan is zeroed first
 * and freed with lucy_asr_plan_free in both cases. Thread-safe. */
int lucy_asr_plan_make(const struct lucy_audio *a, const struct lucy_asr_channels *ch,
                       int max_chunk_s, struct lucy_asr_plan *plan, char *err, size_t errlen);
/* Frees the chunks and zeroes *plan. NULL and a zeroed plan are fine. */
void lucy_asr_plan_free(struct lucy_asr_plan *plan);

/* A chunk hook: puts chunk c of track t into *piece (zeroed by the caller):
 * its segments with times on the file's clock (lucy_asr_recognise_chunk's
 * shift), model, language and wall_s (the engine's time for it); sets
 * *fresh to 1 when the engine recognised it now (the next chunk of the
 * track then continues the engine's stream) or 0 when it came from
 * elsewhere (a checkpoint). lane: which engine instance to use (0 ..
 * n_lanes - 1 of struct lucy_asr_run); calls with the same lane come one
 * after the other on one thread, calls with different lanes at the same
 * time on different threads. continues: this lane's last call was the
 * chunk just before c on this track (pass it on as lucy_pcm.continues).
 * Returns 0 or a LUCY_E* that stops the transcription (err says why). */
typedef int (*lucy_asr_chunk_fn)(void *arg, int lane, const struct lucy_asr_track *t,
                                 const struct lucy_chunk *c, int continues,
                                 struct lucy_transcript *piece, int *fresh, char *err,
                                 size_t errlen);

/* How a plan is recognised: the hook, and on how many lanes. */
struct lucy_asr_run {
    lucy_asr_chunk_fn fn;
    void *arg;   /* fn's and ready's; not owned */
    int n_lanes; /* engine instances recognising at once, 1 .. LUCY_ASR_MAX_LANES */
    /* Optional: 1 when chunk c of track t needs no recognition (a
     * checkpoint holds it), so it weighs nothing when the chunks are shared
     * out among lanes. Called on the calling thread, before any fn. */
    int (*ready)(void *arg, const struct lucy_asr_track *t, const struct lucy_chunk *c);
};

/* Most lanes a recording is recognised on. Each holds its own model
 * (pocketsphinx: ~90 MB while loaded). */
#define LUCY_ASR_MAX_LANES 4

/* Memory one more lane needs free before it loads: resident (the kernel's
 * MemAvailable, the cgroup's memory.max) and address space (RLIMIT_AS).
 * Measured with `lucy transcribe` on pocketsphinx's en-us model: each lane
 * adds ~100 MB resident and ~200 MB of address space (the model, a malloc
 * arena and a stack); these leave room to spare. */
#define LUCY_ASR_LANE_ROOM_MB 256
#define LUCY_ASR_LANE_VM_MB   384

/* 1 when this process has room for one more lane (see the limits above);
 * else 0 with why ("only 180 MB available (MemAvailable)"). A library that
 * cannot allocate may end the process (pocketsphinx exits on a failed
 * calloc), so an extra lane is loaded only with room to spare. Reads
 * /proc/meminfo, /proc/self/cgroup, the cgroup's memory.max and
 * memory.current (cgroup v2), /proc/self/statm and RLIMIT_AS; a value that
 * cannot be read does not limit. Any thread. */
int lucy_asr_room_for_lane(char *why, size_t len);

/* How many lanes engine e should recognise pending_s seconds of a recording
 * on, cut into chunks of at most chunk_s (<= 0: no limit): 1 unless
 * e->one_core; then opt->threads (LUCY_ASR_THREADS; 0 = the cores online)
 * at most LUCY_ASR_MAX_LANES, and at most one lane per chunk_s of audio:
 * a lane loads a model of its own (pocketsphinx: ~0.5 s, ~90 MB), which a
 * short call does not win back. Pure but for reading the core count. */
int lucy_asr_lanes(const struct lucy_asr_engine *e, const struct lucy_asr_options *opt,
                   double pending_s, int chunk_s);

/* Recognises chunk c of track t with engine e (a view of the chunk,
 * lucy_asr_transcribe, times shifted onto the file's clock, channel
 * t->channel) into *piece, setting its engine, model, language and wall_s:
 * the body of a hook. Errors as lucy_asr_transcribe; *piece is the
 * caller's (lucy_transcript_free). */
int lucy_asr_recognise_chunk(const struct lucy_asr_engine *e, void *state,
                             const struct lucy_asr_track *t, const struct lucy_chunk *c,
                             int continues, struct lucy_transcript *piece, char *err,
                             size_t errlen);

/* Runs run->fn on every chunk of plan and merges the pieces: the chunks
 * (all tracks, in order) are shared out among run->n_lanes lanes (capped
 * at the chunks to recognise) as contiguous runs of about equal audio, so
 * each lane continues its engine's stream from chunk to chunk; lane 0
 * runs on the calling thread, each other on a thread of its own, and the
 * first error stops every lane before its next chunk. Each piece's
 * segments are labelled with its track's channel and speaker and merged
 * in time order into *out (zeroed first): text joined; engine (the name
 * given), model (of the last chunk recognised now, else of a resumed one),
 * language (default "en"), audio_s, wall_s (engine time: the busiest
 * lane's, as lanes run at once, plus what chunks from checkpoints took
 * when they were recognised), rtf, truncated, source_duration_s and
 * channels from the
 * plan's audio. 0, the first failing lane's error (err says why), or
 * LUCY_ENOMEM (no thread or memory); *out is the caller's in all cases
 * (lucy_transcript_free). */
int lucy_asr_transcribe_plan(const struct lucy_asr_plan *plan, const char *engine,
                             const struct lucy_asr_run *run, struct lucy_transcript *out, char *err,
                             size_t errlen);

#endif
