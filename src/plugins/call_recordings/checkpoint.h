/*
 * checkpoint.h - per-chunk checkpoints of a running transcription
 * (DESIGN §13 Progress and checkpoints): table `transcript_chunks`
 * (migration 50), written only by checkpoint.c.
 *
 * The worker commits each recognised chunk (its channel, its samples and
 * the segments found in it, times from the start of the file) as soon as
 * the engine is done with it; a job interrupted by a crash or a stop is
 * requeued with the same id, and its next run takes the committed chunks
 * from here instead of recognising them again. A chunk is identified by
 * (channel, first_sample, n_samples): the chunking of the same audio is
 * deterministic, and a row that matches no chunk of the new plan (another
 * engine, or different chunking) is ignored. The rows go when the job
 * ends (done, no_speech, failed), in the job's final write.
 */
#ifndef LUCY_CHECKPOINT_H
#define LUCY_CHECKPOINT_H

#include <sqlite3.h>
#include <stddef.h>

#include "../../asr/asr.h"

struct lucy_store;

/* One committed chunk. */
struct lucy_checkpoint {
    int channel;         /* 0/1, or -1 = mono or mixed */
    size_t first_sample; /* the chunk (struct lucy_chunk) */
    size_t n_samples;
    char model[256];            /* the engine's model for it */
    double wall_s;              /* what recognising it took */
    struct lucy_transcript seg; /* its segments (times from the file's start) */
};

/* Commits chunk c of channel for job_id with its segments t (times from
 * the file's start), engine and model, in one store write (blocks for one
 * group commit). 0 or a store error (LUCY_ENOSPC: not committed; the job
 * goes on, only resuming loses it). Thread-safe. */
int lucy_checkpoint_put(struct lucy_store *store, long long job_id, int channel,
                        const struct lucy_chunk *c, const struct lucy_transcript *t,
                        const char *engine, const char *model, double wall_s);

/* The committed chunks of job_id made by engine, in *out (malloc'd array
 * of *n; free with lucy_checkpoints_free). 0 or a store error.
 * Thread-safe. */
int lucy_checkpoint_load(struct lucy_store *store, long long job_id, const char *engine,
                         struct lucy_checkpoint **out, size_t *n);
void lucy_checkpoints_free(struct lucy_checkpoint *v, size_t n);

/* Deletes job_id's checkpoints; inside the store write that ends the job.
 * 0 or a store error. */
int lucy_checkpoint_clear(sqlite3 *db, long long job_id);

#endif
