/*
 * reply.c - DESIGN §5 error types and the reply helpers handlers use.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../error.h"
#include "../utf8.h"
#include "http.h"

static const struct {
    const char *name; /* error_type in the body */
    int status;       /* HTTP status */
} error_types[] = {
    [LUCY_HTTP_BAD_REQUEST] = {"bad_request", 400},
    [LUCY_HTTP_UNAUTHORIZED] = {"unauthorized", 401},
    [LUCY_HTTP_FORBIDDEN] = {"forbidden", 403},
    [LUCY_HTTP_NOT_FOUND] = {"not_found", 404},
    [LUCY_HTTP_METHOD_NOT_ALLOWED] = {"method_not_allowed", 405},
    [LUCY_HTTP_CONFLICT] = {"conflict", 409},
    [LUCY_HTTP_PAYLOAD_TOO_LARGE] = {"payload_too_large", 413},
    [LUCY_HTTP_UNSUPPORTED_MEDIA] = {"unsupported_media", 415},
    [LUCY_HTTP_FILE_LOCKED] = {"file_locked", 423},
    [LUCY_HTTP_RATE_LIMITED] = {"rate_limited", 429},
    [LUCY_HTTP_INTERNAL] = {"internal", 500},
    [LUCY_HTTP_DEPENDENCY_UNAVAILABLE] = {"dependency_unavailable", 503},
    [LUCY_HTTP_NOT_CONFIGURED] = {"not_configured", 503},
    [LUCY_HTTP_DISK_FULL] = {"disk_full", 507},
};

/* LUCY_E* -> error type and a default Retry-After for retryable ones. */
static const struct {
    int err;
    enum lucy_http_error type;
    int retry_after_s;
} err_map[] = {
    {LUCY_EINVAL, LUCY_HTTP_BAD_REQUEST, 0},
    {LUCY_ENOTFOUND, LUCY_HTTP_NOT_FOUND, 0},
    {LUCY_ECONFLICT, LUCY_HTTP_CONFLICT, 0},
    {LUCY_ELOCKED, LUCY_HTTP_FILE_LOCKED, 30},
    {LUCY_ENOSPC, LUCY_HTTP_DISK_FULL, 60},
    {LUCY_EIO, LUCY_HTTP_DEPENDENCY_UNAVAILABLE, 30},
    {LUCY_EUNAVAIL, LUCY_HTTP_DEPENDENCY_UNAVAILABLE, 30},
    {LUCY_ETIMEDOUT, LUCY_HTTP_DEPENDENCY_UNAVAILABLE, 5},
    {LUCY_ESHUTDOWN, LUCY_HTTP_DEPENDENCY_UNAVAILABLE, 5},
    {LUCY_EPERM, LUCY_HTTP_FORBIDDEN, 0},
    {LUCY_ECORRUPT, LUCY_HTTP_UNSUPPORTED_MEDIA, 0},
    {LUCY_EDBCORRUPT, LUCY_HTTP_INTERNAL, 0},
    {LUCY_ECRASHED, LUCY_HTTP_DEPENDENCY_UNAVAILABLE, 5},
};

const char *lucy_http_error_name(enum lucy_http_error type)
{
    return error_types[type].name;
}

int lucy_http_error_status(enum lucy_http_error type)
{
    return error_types[type].status;
}

enum lucy_http_error lucy_http_error_of(int lucy_err)
{
    for (size_t i = 0; i < sizeof err_map / sizeof err_map[0]; i++)
        if (err_map[i].err == lucy_err)
            return err_map[i].type;
    return LUCY_HTTP_INTERNAL;
}

void lucy_http_reply_text(struct lucy_http_response *resp, int status, const char *content_type,
                          const char *text, size_t len)
{
    free(resp->body);
    resp->status = status;
    resp->content_type = content_type;
    resp->body = malloc(len + 1);
    resp->body_len = resp->body ? len : 0;
    if (resp->body) {
        memcpy(resp->body, text, len);
        resp->body[len] = '\0';
    }
}

void lucy_http_reply_json(struct lucy_http_response *resp, int status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER | LUCY_JSON_REALS);
    json_decref(body);
    free(resp->body);
    resp->status = status;
    resp->content_type = "application/json";
    resp->body = text;
    resp->body_len = text ? strlen(text) : 0;
}

int lucy_http_add_header(struct lucy_http_response *resp, const char *name, const char *value)
{
    if (resp->n_headers >= LUCY_HTTP_MAX_HEADERS)
        return LUCY_ENOMEM;
    snprintf(resp->headers[resp->n_headers].name, sizeof resp->headers[0].name, "%s", name);
    snprintf(resp->headers[resp->n_headers].value, sizeof resp->headers[0].value, "%s", value);
    resp->n_headers++;
    return 0;
}

static void reply_error_v(struct lucy_http_response *resp, enum lucy_http_error type,
                          int retry_after_s, const char *fmt, va_list ap)
{
    char message[1024];
    vsnprintf(message, sizeof message, fmt, ap);
    /* The message may quote client bytes (an id from the URL) or have been
     * cut mid-character by a precision or the buffer size: make it valid
     * UTF-8, which JSON requires, instead of failing to build the reply. */
    char *text = lucy_utf8_display(message, strlen(message));
    const char *msg = text ? text : "(message lost: out of memory)";
    /* DESIGN §5's error_type and message, and the same again as OpenAI's
     * error object ({"error": {"message", "type", "param", "code"}}, its
     * OpenAPI description's Error), which OpenAI
     * client libraries read for the message they show (the /v1 routes are
     * for them; one shape for every route keeps one rule). */
    json_t *body =
        json_pack("{s:s,s:s,s:{s:s,s:s,s:n,s:n}}", "error_type", error_types[type].name, "message",
                  msg, "error", "message", msg, "type", error_types[type].name, "param", "code");
    free(text);
    if (!body) {
        static const char fallback[] = "{\"error_type\":\"internal\",\"message\":\"out of "
                                       "memory building an error reply\"}";
        lucy_http_reply_text(resp, 500, "application/json", fallback, sizeof fallback - 1);
        return;
    }
    resp->retry_after_s = retry_after_s;
    if (retry_after_s > 0)
        json_object_set_new(body, "retry_after_s", json_integer(retry_after_s));
    lucy_http_reply_json(resp, error_types[type].status, body);
}

void lucy_http_reply_error(struct lucy_http_response *resp, enum lucy_http_error type,
                           int retry_after_s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    reply_error_v(resp, type, retry_after_s, fmt, ap);
    va_end(ap);
}

void lucy_http_reply_err(struct lucy_http_response *resp, int err, const char *message)
{
    for (size_t i = 0; i < sizeof err_map / sizeof err_map[0]; i++) {
        if (err_map[i].err == err) {
            lucy_http_reply_error(resp, err_map[i].type, err_map[i].retry_after_s, "%s", message);
            return;
        }
    }
    lucy_http_reply_error(resp, LUCY_HTTP_INTERNAL, 0, "%s (%s)", message, lucy_strerror(err));
}

void lucy_http_reply_fd(struct lucy_http_response *resp, int status, const char *content_type,
                        int fd, uint64_t offset, uint64_t length)
{
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
    resp->status = status;
    resp->content_type = content_type;
    resp->fd = fd;
    resp->fd_offset = offset;
    resp->fd_length = length;
}
