/*
 * media.h - FFmpeg and the speech recognisers, in memory only while there
 * is media work (DESIGN §13 Model lifecycle; docs/decisions.md).
 *
 * Why: FFmpeg's libraries (libavformat, libavcodec, libavfilter and the
 * ~170 libraries Debian builds them with) and pocketsphinx cost a process
 * ~28 MB of resident memory just by being mapped and relocated, whether a
 * recording is ever decoded or not. Everything that uses them - probing
 * (call_recordings/probe.c), decoding (asr/audio.c), cutting at pauses
 * (asr/chunk.c) and the engines (asr/asr.c and one file per engine) - is
 * built as one module, lucy-media.so, that the binary dlopen()s on the
 * first media call and dlclose()s after LUCY_ASR_IDLE_UNLOAD_S without
 * media work, as it does the recogniser's model.
 *
 * Callers do not see the module: they call the functions of asr.h and
 * scan_int.h (lucy_audio_decode_fd, lucy_asr_open, lucy_scan_probe_fd, ...),
 * which loader.c implements by holding the module for the call. An open
 * recogniser instance holds it until lucy_asr_close. What the module hands
 * back (PCM, transcripts, probe tags) is plain heap memory the binary frees
 * itself (pcm.c, transcript.c, scan.c), so it outlives the module.
 *
 * Builds that link the module's code in (the unit tests, the fuzzers)
 * define lucy_media_module themselves; loader.c then uses it and never
 * loads or unloads anything.
 */
#ifndef LUCY_MEDIA_H
#define LUCY_MEDIA_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../asr/asr.h"
#include "../plugins/call_recordings/scan_int.h"

/* Bumped when struct lucy_media changes: a module from another build is
 * refused rather than called through the wrong slots. */
#define LUCY_MEDIA_ABI 4

/* The sizes of every struct that crosses between the binary and the
 * module, as each was compiled: a module whose structs differ (another
 * version of lucy) is refused even if nobody bumped LUCY_MEDIA_ABI. */
#define LUCY_MEDIA_N_SIZES 10
#define LUCY_MEDIA_SIZES                                                                           \
    {                                                                                              \
        sizeof(struct lucy_media), sizeof(struct lucy_pcm), sizeof(struct lucy_audio),             \
            sizeof(struct lucy_transcript), sizeof(struct lucy_segment), sizeof(struct lucy_word), \
            sizeof(struct lucy_asr_options), sizeof(struct lucy_asr_engine),                       \
            sizeof(struct lucy_chunk), sizeof(struct lucy_scan_probe)                              \
    }

/* The module's entry points, one per function of asr.h / scan_int.h that
 * needs FFmpeg or a recogniser; each has the contract of the function it
 * backs (named in the comment). */
struct lucy_media {
    int abi;                          /* LUCY_MEDIA_ABI; first, so any module can be read */
    size_t sizes[LUCY_MEDIA_N_SIZES]; /* LUCY_MEDIA_SIZES, as the module was built */
    /* lucy_audio_decode_fd, lucy_audio_decode_split_fd */
    int (*decode_fd)(int fd, const char *path, struct lucy_pcm *out, char *err, size_t errlen);
    int (*decode_split_fd)(int fd, const char *path, struct lucy_audio *out, char *err,
                           size_t errlen);
    /* lucy_asr_chunks */
    int (*chunks)(const struct lucy_pcm *pcm, int max_chunk_s, struct lucy_chunk **out, size_t *n,
                  char *err, size_t errlen);
    /* lucy_asr_select, lucy_asr_check, lucy_asr_open, lucy_asr_transcribe,
     * lucy_asr_close */
    const struct lucy_asr_engine *(*asr_select)(const struct lucy_asr_options *opt, char *err,
                                                size_t errlen);
    int (*asr_check)(const struct lucy_asr_options *opt, const struct lucy_asr_engine **out,
                     char *err, size_t errlen);
    int (*asr_open)(const struct lucy_asr_engine *e, const struct lucy_asr_options *opt,
                    void **state, char *err, size_t errlen);
    int (*asr_transcribe)(const struct lucy_asr_engine *e, void *state, const struct lucy_pcm *pcm,
                          struct lucy_transcript *out, char *err, size_t errlen);
    void (*asr_close)(const struct lucy_asr_engine *e, void *state);
    /* lucy_asr_model */
    const char *(*asr_model)(const struct lucy_asr_engine *e, void *state);
    /* lucy_scan_probe_fd */
    enum lucy_scan_probe_result (*probe_fd)(int fd, int64_t size, struct lucy_scan_probe *out);
};

/* The module's table (module.c): the one symbol lucy-media.so exports. */
extern const struct lucy_media lucy_media_module;

/* ---- media processes (remote.c) ------------------------------------------
 *
 * `lucy serve` turns them on (lucy_media_set_remote): from then on the
 * table lucy_media_hold hands out sends each call to a media process,
 * `lucy media-worker` (cmd/media_worker.c), which holds the module in its
 * own memory; the daemon never maps FFmpeg or a recogniser. */

/* The socket a media process talks on (its parent's end is elsewhere). */
#define LUCY_MEDIA_WORKER_FD 3

/* The table of the media processes. */
extern const struct lucy_media lucy_media_remote;

/* Before any media call, once: 1 = calls go to media processes (serve),
 * 0 = the module is loaded in this process (the default: commands, tests).
 * Not thread-safe against calls in progress. */
void lucy_media_set_remote(int on);

/* lucy is stopping (SIGTERM): calls in progress in media processes give
 * up within a second (LUCY_ESHUTDOWN; their process is ended), so no
 * worker holds the stop up. Any thread, any time. */
void lucy_media_stop(void);

/* Ends every media process at once (serve's exit, after its workers
 * stopped; instances close their own). Any thread. */
void lucy_media_shutdown(void);

/* remote.c for loader.c: 0 when a media process runs or one started now
 * (kept in the pool), else -1 with err (its reason: the module did not
 * load); processes alive; the last start's failure; the pool's idle
 * time; ending the pool. Any thread. */
int lucy_media_remote_ready(char *err, size_t errlen);
int lucy_media_remote_alive(void);
int lucy_media_remote_failure(char *why, size_t len);
void lucy_media_remote_set_idle(int idle_s);
void lucy_media_remote_stop(void);
void lucy_media_remote_shutdown(void);

/* Holds the module, loading it first if it is not loaded: the table, or
 * NULL with err saying what to do (the module file missing or not
 * loadable: dlerror's words). Every hold is given back with
 * lucy_media_drop(). Any thread. */
const struct lucy_media *lucy_media_hold(char *err, size_t errlen);
void lucy_media_drop(void);

/* Unload the module after idle_s seconds with no hold; 0 (the default, for
 * one-shot commands) = keep it loaded until exit. Set by serve from
 * LUCY_ASR_IDLE_UNLOAD_S. Any thread. */
void lucy_media_set_idle_unload(int idle_s);

/* 1 while the module is in memory (linked in: always). Any thread. */
int lucy_media_loaded(void);

/* 1 with why (cut to len) when the last attempt to load the module failed
 * and none succeeded since; 0 otherwise. For /health. Any thread. */
int lucy_media_failure(char *why, size_t len);

/* /metrics: lucy_media_loaded (a lucy_metrics_fn; arg unused). */
void lucy_media_metrics(void *arg, FILE *out);

/* The module's implementations (module side; see struct lucy_media). */
int lucy_media_decode_fd(int fd, const char *path, struct lucy_pcm *out, char *err, size_t errlen);
int lucy_media_decode_split_fd(int fd, const char *path, struct lucy_audio *out, char *err,
                               size_t errlen);
int lucy_media_asr_chunks(const struct lucy_pcm *pcm, int max_chunk_s, struct lucy_chunk **out,
                          size_t *n, char *err, size_t errlen);
const struct lucy_asr_engine *lucy_media_asr_select(const struct lucy_asr_options *opt, char *err,
                                                    size_t errlen);
int lucy_media_asr_check(const struct lucy_asr_options *opt, const struct lucy_asr_engine **out,
                         char *err, size_t errlen);
int lucy_media_asr_open(const struct lucy_asr_engine *e, const struct lucy_asr_options *opt,
                        void **state, char *err, size_t errlen);
int lucy_media_asr_transcribe(const struct lucy_asr_engine *e, void *state,
                              const struct lucy_pcm *pcm, struct lucy_transcript *out, char *err,
                              size_t errlen);
void lucy_media_asr_close(const struct lucy_asr_engine *e, void *state);
const char *lucy_media_asr_model(const struct lucy_asr_engine *e, void *state);
enum lucy_scan_probe_result lucy_media_probe_fd(int fd, int64_t size, struct lucy_scan_probe *out);

#endif
