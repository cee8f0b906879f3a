/*
 * retranscribe.h - re-transcription requests (DESIGN §13 Versions): the
 * engine/model a client may name per job (checked before anything is
 * queued; the worker loads them for that job), and bulk re-transcription as one job
 * group (table `job_groups`, migration 53, written only by
 * retranscribe.c; its jobs are rows of `jobs` with group_id, jobs.c).
 *
 *   POST /recordings/retranscribe {"engine","model","person","from","to"}
 *        202 the group: every recording matching the filters (GET
 *        /recordings' rules) gets a queue class 2 job; one that has an
 *        active job already is skipped (that job makes its new version)
 *   GET  /job-groups/{id}          total, queued, running, done, failed,
 *                                  cancelled, skipped, progress (0-1), state
 *   POST /job-groups/{id}/cancel   queued jobs of the group are dropped;
 *                                  the running one finishes
 *
 * Handlers reach the plugin's state as req->arg (struct lucy_recordings).
 */
#ifndef LUCY_RETRANSCRIBE_H
#define LUCY_RETRANSCRIBE_H

#include <jansson.h>

#include "jobs.h"

struct lucy_http_request;
struct lucy_http_response;

/* Checks a re-transcription request's "engine" and "model" (body: the
 * request's JSON object) before anything is queued, with lucy_asr_check:
 * the engine (absent = LUCY_ASR_ENGINE) must be one lucy is built with and
 * whose requirements are met (http: LUCY_ASR_URL; whisper: a model), and
 * a model must suit it (pocketsphinx: an acoustic model directory that
 * exists; whisper: a ggml file; http: any name). 0 and *out (the job's
 * engine/model, "" for each left out); -1 after replying 400 (not a
 * string, unknown engine, unusable model) or 409 (an engine this build or
 * configuration cannot run, with the option to set). Thread-safe. */
int lucy_retranscribe_check(struct lucy_http_request *req, struct lucy_http_response *resp,
                            const json_t *body, struct lucy_job_asr *out);

/* POST /recordings/retranscribe. Thread-safe. */
void lucy_recordings_retranscribe(struct lucy_http_request *req, struct lucy_http_response *resp);

/* GET /job-groups/{id}. Thread-safe. */
void lucy_job_group_get(struct lucy_http_request *req, struct lucy_http_response *resp);

/* POST /job-groups/{id}/cancel. Thread-safe. */
void lucy_job_group_cancel(struct lucy_http_request *req, struct lucy_http_response *resp);

#endif
