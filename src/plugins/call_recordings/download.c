/*
 * download.c - GET /recordings/{id}/transcript.{txt,srt,vtt,json}: a
 * recording's transcript as a file (DESIGN §15 Export).
 *
 * The route table has one row per extension, all with this handler; the
 * extension of the request path picks the renderer (export.c). The
 * transcript comes from lucy_recording_json(), the document GET
 * /recordings/{id} answers, so the file and the API cannot disagree.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../error.h"
#include "../../http/http.h"
#include "../../lucy.h"
#include "export.h"
#include "plugin.h"
#include "recording.h"

void lucy_recordings_transcript_file(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    const char *id = req->params[0];
    const char *dot = strrchr(req->path, '.');
    int f = lucy_export_format_by_ext(dot ? dot + 1 : NULL);
    json_t *rec = NULL;
    int rc = f < 0 ? LUCY_ENOTFOUND : lucy_recording_json(req->ctx->store, id, &rec);
    if (rc == LUCY_ENOTFOUND) {
        lucy_http_reply_error(resp, LUCY_HTTP_NOT_FOUND, 0,
                              "no recording with id %.80s: ids are the hex SHA-256 of the "
                              "content, as listed by GET /recordings",
                              id);
        return;
    }
    if (rc) {
        lucy_http_reply_err(resp, rc, "cannot read the recording from the store; retry");
        return;
    }
    const json_t *t = json_object_get(rec, "transcript");
    if (!json_is_object(t)) {
        json_decref(rec);
        lucy_http_reply_error(resp, LUCY_HTTP_CONFLICT, 0,
                              "recording %.80s has no transcript yet: POST "
                              "/recordings/%.80s/transcribe and download it when its job is "
                              "done (GET /jobs/{id})",
                              id, id);
        return;
    }
    size_t len;
    char *text =
        lucy_export_render(t, json_object_get(rec, "call"), (enum lucy_export_format)f, &len);
    char name[128], disposition[200];
    lucy_export_file_name(json_string_value(json_object_get(rec, "title")), id,
                          lucy_export_formats[f].ext, name, sizeof name);
    json_decref(rec);
    if (!text) {
        lucy_http_reply_err(resp, LUCY_ENOMEM, "out of memory rendering the transcript; retry");
        return;
    }
    snprintf(disposition, sizeof disposition, "attachment; filename=\"%s\"", name);
    lucy_http_reply_text(resp, 200, lucy_export_formats[f].content_type, text, len);
    lucy_http_add_header(resp, "Content-Disposition", disposition);
    free(text);
}
