/*
 * jobs.h - transcription jobs (DESIGN §7), stored in table `jobs`
 * (migration 21 in store/schema.c).
 *
 * One job per recording at a time; a worker pool of LUCY_ASR_WORKERS
 * threads ("asr-worker") takes queued jobs, decodes the recording (with
 * the read-first-block check and copy-before-transcribe for locked files),
 * runs the ASR engine, stores the transcript and its segments and queues
 * them for the search index (lucy_outbox_put) in one store write.
 */
#ifndef LUCY_JOBS_H
#define LUCY_JOBS_H

#include <sqlite3.h>

/* Queues a transcription of recording_id unless one is already queued,
 * running or waiting to retry. Call inside a lucy_store_write() function
 * (the scanner does, in the same transaction as the recording). Returns 0
 * or LUCY_E*; *job_id (may be NULL) gets the new or existing job's id. */
int lucy_jobs_enqueue(sqlite3 *db, const char *recording_id, long long *job_id);

#endif
