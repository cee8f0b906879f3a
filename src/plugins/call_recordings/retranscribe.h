/*
 * retranscribe.h - re-transcription requests (DESIGN §13 Versions): the
 * engine/model a client may name, and bulk re-transcription as one job
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

struct lucy_http_request;
struct lucy_http_response;

/* Checks a re-transcription request's "engine" and "model" (body: the
 * request's JSON object; NULL = neither given): an engine must be a known
 * name and the one lucy's workers run (LUCY_ASR_ENGINE after "auto" is
 * resolved); a model cannot be chosen per request yet. 0 when the request
 * can go on; -1 after replying 400 (unknown engine, not a string) or 409
 * (another engine or a model asked for, with what to set). Thread-safe. */
int lucy_retranscribe_check(struct lucy_http_request *req, struct lucy_http_response *resp,
                            const json_t *body);

/* POST /recordings/retranscribe. Thread-safe. */
void lucy_recordings_retranscribe(struct lucy_http_request *req, struct lucy_http_response *resp);

/* GET /job-groups/{id}. Thread-safe. */
void lucy_job_group_get(struct lucy_http_request *req, struct lucy_http_response *resp);

/* POST /job-groups/{id}/cancel. Thread-safe. */
void lucy_job_group_cancel(struct lucy_http_request *req, struct lucy_http_response *resp);

#endif
