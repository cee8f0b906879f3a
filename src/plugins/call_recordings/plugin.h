/*
 * plugin.h - the call_recordings plugin (DESIGN §5 Recordings, §6, §7):
 * the scanner thread, the transcription worker pool, the /recordings and
 * /jobs routes, two health checks and /metrics lines.
 *
 * Internal to src/plugins/call_recordings/: the core sees only
 * lucy_call_recordings_plugin (table in plugins/plugins.c).
 */
#ifndef LUCY_CALL_RECORDINGS_PLUGIN_H
#define LUCY_CALL_RECORDINGS_PLUGIN_H

#include <pthread.h>

#include "../plugin.h"

struct lucy_ctx;
struct lucy_scanner;
struct lucy_jobs_pool;

extern const struct lucy_plugin lucy_call_recordings_plugin;

/* The plugin's state: one per process; the route handlers get it as
 * req->arg (lucy_recordings_routes_register()). */
struct lucy_recordings {
    struct lucy_ctx *ctx;         /* daemon context (not owned) */
    struct lucy_scanner *scanner; /* NULL without LUCY_RECORDINGS_DIRS */
    struct lucy_jobs_pool *pool;  /* transcription workers */
    pthread_mutex_t mu;           /* guards waiters */
    int waiters;                  /* requests blocked in ?wait=1 now */
    int max_waiters;              /* at most half the HTTP pool */
};

/* Registers the /recordings and /jobs routes on ctx->http for state r
 * (routes.c). Start-up only. 0 or LUCY_ENOMEM. */
int lucy_recordings_routes_register(struct lucy_recordings *r);

struct lucy_http_request;
struct lucy_http_response;

/* GET /recordings/{id}/audio (audio.c): the recording's file by id, with
 * HTTP range requests; 423 while a sync client holds it. req->arg is the
 * plugin's struct lucy_recordings. Thread-safe. */
void lucy_recordings_audio(struct lucy_http_request *req, struct lucy_http_response *resp);

/* GET /recordings/{id}/transcript.{txt,srt,vtt,json} (download.c): the
 * transcript as a file with a Content-Disposition file name; 404 for an
 * unknown recording, 409 while it has no transcript. Thread-safe. */
void lucy_recordings_transcript_file(struct lucy_http_request *req,
                                     struct lucy_http_response *resp);

/* DELETE /recordings/{id} (forget.c): forgets the recording (transcript,
 * segments, jobs, index documents, its row) and tombstones its hash; 204,
 * also when it was forgotten before; 404 for an id never seen. */
void lucy_recordings_delete(struct lucy_http_request *req, struct lucy_http_response *resp);

/* Adds the plugin's row to the forget registry (ctx->forget; none: 0).
 * Init only. 0 or LUCY_ENOMEM. */
int lucy_recordings_forget_register(struct lucy_recordings *r);

#endif
