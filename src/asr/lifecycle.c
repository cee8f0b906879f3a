/*
 * lifecycle.c - load a recogniser's model on the first job, give it back
 * after LUCY_ASR_IDLE_UNLOAD_S without work (DESIGN §13; lifecycle.h).
 *
 * The instance is a thin state machine around lucy_asr_open/close:
 * unloaded -> (first transcription) -> loaded -> (idle long enough) ->
 * unloaded. Freeing the model alone does not shrink the process: glibc
 * keeps freed heap in its arenas (the worker thread's own arena here), so
 * an unload ends with malloc_trim(0), which hands every free page of every
 * arena back to the kernel. How many instances hold a model is counted
 * here, by engine name, for /metrics: the engine rows live in the media
 * module (src/media), which is not loaded while no instance holds a model.
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

/* Every engine this build has, for /metrics (the rows are in the media
 * module, asr.c; these are their names). */
static const char *const engine_names[] = {
#ifdef LUCY_HAVE_WHISPER
    "whisper",
#endif
    "http",
    "pocketsphinx",
};
#define N_ENGINES (sizeof engine_names / sizeof engine_names[0])

/* Instances holding a model, per engine_names[]: about the process's
 * memory, so process-wide; atomics, any thread. */
static int n_loaded[N_ENGINES];

static int *loaded_count(const char *name)
{
    for (size_t i = 0; i < N_ENGINES; i++)
        if (strcmp(engine_names[i], name) == 0)
            return &n_loaded[i];
    return NULL;
}

int lucy_asr_loaded(const char *engine)
{
    int *n = loaded_count(engine);
    return n ? __atomic_load_n(n, __ATOMIC_RELAXED) : 0;
}

void lucy_asr_metrics(void *arg, FILE *out)
{
    (void)arg;
    fprintf(out, "# HELP lucy_asr_model_loaded 1 while a speech recognition model of the engine "
                 "is in memory (loaded on the first job, unloaded after LUCY_ASR_IDLE_UNLOAD_S).\n"
                 "# TYPE lucy_asr_model_loaded gauge\n");
    for (size_t i = 0; i < N_ENGINES; i++)
        fprintf(out, "lucy_asr_model_loaded{engine=\"%s\"} %d\n", engine_names[i],
                lucy_asr_loaded(engine_names[i]) > 0);
    fprintf(out, "# HELP lucy_asr_instances_loaded Engine instances holding a model (one per "
                 "recognition lane of a busy or recently busy worker).\n# TYPE "
                 "lucy_asr_instances_loaded gauge\n");
    for (size_t i = 0; i < N_ENGINES; i++)
        fprintf(out, "lucy_asr_instances_loaded{engine=\"%s\"} %d\n", engine_names[i],
                lucy_asr_loaded(engine_names[i]));
}

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
    int *n = loaded_count(e->name);
    if (n)
        __atomic_add_fetch(n, 1, __ATOMIC_RELAXED);
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
    if (rc == LUCY_ECRASHED) /* its media process died: load afresh next time */
        lucy_asr_instance_unload(in);
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
    char name[32]; /* the engine row lives in the media module, held only while loaded */
    snprintf(name, sizeof name, "%s", in->engine->name);
    int64_t idle_s = (lucy_mono_ms() - in->last_used_ms) / 1000;
    lucy_asr_close(in->engine, in->state);
    int *n = loaded_count(name);
    if (n)
        __atomic_sub_fetch(n, 1, __ATOMIC_RELAXED);
    in->state = NULL;
    in->engine = NULL;
    in->model[0] = '\0';
#ifdef __GLIBC__
    malloc_trim(0); /* the model's pages back to the kernel, not kept in the arena */
#endif
    lucy_log(LUCY_LOG_INFO, "speech recognition model unloaded", "{s:s,s:I}", "engine", name,
             "idle_s", (json_int_t)idle_s);
}
