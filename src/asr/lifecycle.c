/*
 * lifecycle.c - load a recogniser's model on the first job, give it back
 * after LUCY_ASR_IDLE_UNLOAD_S without work (DESIGN §13; lifecycle.h).
 *
 * The instance is a thin state machine around lucy_asr_open/close:
 * unloaded -> (first transcription) -> loaded -> (idle long enough) ->
 * unloaded. Freeing the model alone does not shrink the process: glibc
 * keeps freed heap in its arenas (the worker thread's own arena here), so
 * an unload ends with malloc_trim(0), which hands every free page of every
 * arena back to the kernel. How many instances hold a model is counted by
 * the lucy_asr_open/close wrappers (asr.c) for /metrics.
 */
#include <stdio.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "../clock.h"
#include "../error.h"
#include "../log.h"
#include "lifecycle.h"

void lucy_asr_instance_init(struct lucy_asr_instance *in, const struct lucy_asr_options *opt,
                            int idle_unload_s)
{
    *in = (struct lucy_asr_instance){
        .opt = opt,
        .idle_unload_s = idle_unload_s > 0 ? idle_unload_s : 0,
        .last_used_ms = lucy_mono_ms(),
    };
}

int lucy_asr_instance_load(struct lucy_asr_instance *in, char *err, size_t errlen)
{
    return in->state ? 0 : lucy_asr_instance_load_for(in, NULL, NULL, err, errlen);
}

int lucy_asr_instance_load_for(struct lucy_asr_instance *in, const char *engine, const char *model,
                               char *err, size_t errlen)
{
    if (errlen)
        err[0] = '\0';
    struct lucy_asr_options opt = *in->opt;
    if (engine && engine[0])
        opt.engine = engine;
    if (model && model[0])
        opt.model = model;
    const char *asked = model && model[0] ? model : "";
    const struct lucy_asr_engine *e = lucy_asr_select(&opt, err, errlen);
    if (!e)
        return LUCY_EINVAL;
    if (in->state && in->engine == e && strcmp(in->model, asked) == 0)
        return 0;
    lucy_asr_instance_unload(in); /* one model at a time: the held one goes first */
    int64_t t0_ms = lucy_mono_ms();
    int rc = lucy_asr_open(e, &opt, &in->state, err, errlen);
    if (rc) {
        in->state = NULL;
        return rc;
    }
    in->engine = e;
    snprintf(in->model, sizeof in->model, "%s", asked);
    in->last_used_ms = lucy_mono_ms();
    lucy_log(LUCY_LOG_INFO, "speech recognition model loaded", "{s:s,s:s,s:I,s:i}", "engine",
             e->name, "model", asked[0] ? asked : "default", "load_ms",
             (json_int_t)(in->last_used_ms - t0_ms), "idle_unload_s", in->idle_unload_s);
    return 0;
}

int lucy_asr_instance_transcribe(struct lucy_asr_instance *in, const struct lucy_pcm *pcm,
                                 struct lucy_transcript *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    int rc = lucy_asr_instance_load(in, err, errlen);
    if (rc)
        return rc;
    rc = lucy_asr_transcribe(in->engine, in->state, pcm, out, err, errlen);
    lucy_asr_instance_touch(in);
    return rc;
}

void lucy_asr_instance_touch(struct lucy_asr_instance *in)
{
    in->last_used_ms = lucy_mono_ms();
}

int lucy_asr_instance_unload_if_idle(struct lucy_asr_instance *in)
{
    if (!in->state || in->idle_unload_s <= 0)
        return 0;
    if (lucy_mono_ms() - in->last_used_ms < (int64_t)in->idle_unload_s * 1000)
        return 0;
    lucy_asr_instance_unload(in);
    return 1;
}

void lucy_asr_instance_unload(struct lucy_asr_instance *in)
{
    if (!in->state)
        return;
    const char *name = in->engine->name;
    int64_t idle_s = (lucy_mono_ms() - in->last_used_ms) / 1000;
    lucy_asr_close(in->engine, in->state);
    in->state = NULL;
    in->engine = NULL;
    in->model[0] = '\0';
#ifdef __GLIBC__
    malloc_trim(0); /* the model's pages back to the kernel, not kept in the arena */
#endif
    lucy_log(LUCY_LOG_INFO, "speech recognition model unloaded", "{s:s,s:I}", "engine", name,
             "idle_s", (json_int_t)idle_s);
}
