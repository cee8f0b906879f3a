/*
 * lifecycle.h - an engine instance whose model is loaded on demand and
 * unloaded when idle (DESIGN §13 "Model lifecycle").
 *
 * A recogniser's model is most of lucy's memory (pocketsphinx's en-us
 * model ~90 MB, whisper's hundreds of MB), yet calls arrive a few times a
 * day. So an instance starts empty, loads its engine's model on the first
 * transcription, and gives it back after LUCY_ASR_IDLE_UNLOAD_S seconds
 * without work: the owning thread calls lucy_asr_instance_unload_if_idle()
 * whenever it is idle. Unloading closes the engine and returns the freed
 * heap to the kernel (malloc_trim), so idle RSS really drops.
 *
 * An instance holds one engine and model at a time. A job that asks for
 * another one (a re-transcription with its own engine or model, DESIGN
 * §13 Versions) gets it through lucy_asr_instance_load_for(): the held
 * model is unloaded and the asked one loaded, and the next job that wants
 * the default switches back the same way.
 *
 * Threads: an instance belongs to one thread (like the engine state it
 * wraps, asr.h); nothing here locks. Whether models are loaded is visible
 * to any thread through lucy_asr_loaded() / lucy_asr_metrics() (asr.h).
 */
#ifndef LUCY_ASR_LIFECYCLE_H
#define LUCY_ASR_LIFECYCLE_H

#include <stddef.h>
#include <stdint.h>

#include "asr.h"

struct lucy_asr_instance {
    const struct lucy_asr_options *opt;   /* engine options; not owned, must outlive it */
    int idle_unload_s;                    /* unload after this long unused; 0 = never */
    const struct lucy_asr_engine *engine; /* the loaded engine; NULL while unloaded */
    void *state;                          /* its instance (lucy_asr_open), NULL while unloaded */
    char model[256];                      /* the model the load asked for, "" = the engine's
                                             default (opt->model, LUCY_WHISPER_MODEL) */
    int64_t last_used_ms;                 /* lucy_mono_ms() when work last ended */
};

/* Prepares in for opt (kept by pointer) with nothing loaded. idle_unload_s
 * is LUCY_ASR_IDLE_UNLOAD_S: seconds without work before the model is
 * given back; 0 keeps it loaded once loaded. Cannot fail. */
void lucy_asr_instance_init(struct lucy_asr_instance *in, const struct lucy_asr_options *opt,
                            int idle_unload_s);

/* Loads the model if it is not loaded: selects the engine for in->opt
 * (lucy_asr_select) and opens it. 0 when loaded (at once if it already
 * was); else the LUCY_E* of select (LUCY_EINVAL) or open, with err saying
 * why, and in stays unloaded. Logs INFO "speech recognition model loaded"
 * with the engine and the time taken. Owning thread only. */
int lucy_asr_instance_load(struct lucy_asr_instance *in, char *err, size_t errlen);

/* Makes the instance hold engine (NULL or "" = the one in->opt selects)
 * with model (NULL or "" = in->opt->model, the engine's default): at once
 * when it holds them already; else it unloads what it holds and loads
 * them, as lucy_asr_instance_load (same errors: LUCY_EINVAL when
 * lucy_asr_select refuses the engine, open's code when the model does not
 * load; in stays unloaded then). The strings are used during the call
 * only. Owning thread only. */
int lucy_asr_instance_load_for(struct lucy_asr_instance *in, const char *engine, const char *model,
                               char *err, size_t errlen);

/* lucy_asr_transcribe() on the instance, loading the model first if
 * needed; counts as work for the idle timer. Same results and ownership as
 * lucy_asr_transcribe (the caller frees *out in every case); a failed load
 * returns its code with err. LUCY_ECRASHED (the instance's media process
 * died) also unloads the instance, so the next call loads it afresh.
 * Owning thread only. */
int lucy_asr_instance_transcribe(struct lucy_asr_instance *in, const struct lucy_pcm *pcm,
                                 struct lucy_transcript *out, char *err, size_t errlen);

/* Marks now as the end of work (for a caller that used in->engine and
 * in->state directly). Owning thread only. */
void lucy_asr_instance_touch(struct lucy_asr_instance *in);

/* For the owning thread when it has no work: unloads the model when it is
 * loaded, idle_unload_s > 0 and at least that many seconds passed since
 * the last work (monotonic clock). Returns 1 if it unloaded, else 0. */
int lucy_asr_instance_unload_if_idle(struct lucy_asr_instance *in);

/* Closes the engine if loaded and returns freed memory to the kernel; in
 * can be loaded again. Logs INFO "speech recognition model unloaded".
 * Safe on an unloaded or zeroed instance. Owning thread only (or after it
 * ended). */
void lucy_asr_instance_unload(struct lucy_asr_instance *in);

#endif
