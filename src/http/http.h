/*
 * http.h - lucy's HTTP server: libmicrohttpd, a route table, JSON errors.
 *
 * Routes are rows (struct lucy_route): method, path pattern, handler, auth
 * flag, body limit. Patterns are literal segments and `{name}` captures,
 * e.g. "/recordings/{id}/transcribe". The server answers by itself:
 *   404 not_found          no pattern matches the path
 *   405 method_not_allowed a pattern matches but not the method (+ Allow)
 *   401 unauthorized       route needs auth, LUCY_API_TOKEN set, bearer
 *                          token missing or wrong (constant-time compare)
 *   413 payload_too_large  body over the route's limit (1 MiB default)
 * before a handler runs, so handlers only see well-formed requests.
 *
 * Every error reply has the DESIGN §5 shape {"error_type","message"}, and
 * 423/429/503/507 carry Retry-After and retry_after_s.
 *
 * Handlers run on libmicrohttpd's thread pool (LUCY_HTTP_THREADS); they
 * must be thread-safe and should not block for long. A handler whose
 * answer waits on another thread (the webhook waits for an fsync) defers
 * its reply (lucy_http_defer) instead of blocking: the connection is
 * suspended, the pool thread serves other connections meanwhile, and the
 * reply is built when the other thread calls lucy_http_resume().
 */
#ifndef LUCY_HTTP_H
#define LUCY_HTTP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "../log.h" /* LUCY_JSON_REALS */

struct lucy_ctx;
struct lucy_http;

#define LUCY_ROUTE_MAX_PARAMS        4
#define LUCY_HTTP_BODY_LIMIT_DEFAULT (1024 * 1024)

/* DESIGN §5 error types. */
enum lucy_http_error {
    LUCY_HTTP_BAD_REQUEST,
    LUCY_HTTP_UNAUTHORIZED,
    LUCY_HTTP_FORBIDDEN,
    LUCY_HTTP_NOT_FOUND,
    LUCY_HTTP_METHOD_NOT_ALLOWED,
    LUCY_HTTP_CONFLICT,
    LUCY_HTTP_PAYLOAD_TOO_LARGE,
    LUCY_HTTP_UNSUPPORTED_MEDIA,
    LUCY_HTTP_FILE_LOCKED,
    LUCY_HTTP_RATE_LIMITED,
    LUCY_HTTP_INTERNAL,
    LUCY_HTTP_DEPENDENCY_UNAVAILABLE,
    LUCY_HTTP_NOT_CONFIGURED,
    LUCY_HTTP_DISK_FULL,
};

struct lucy_http_request {
    struct lucy_ctx *ctx;                /* the daemon's context */
    const char *method;                  /* "GET", "POST" ... */
    const char *path;                    /* decoded path, no query */
    const char *route_pattern;           /* matched pattern */
    void *arg;                           /* the matched route's arg (its module's state) */
    char *params[LUCY_ROUTE_MAX_PARAMS]; /* captured `{name}` values, in order */
    int n_params;                        /* how many */
    const char *body;                    /* raw body bytes (NUL-terminated copy) */
    size_t body_len;                     /* exact length */
    void *conn;                          /* struct MHD_Connection (private) */
};

#define LUCY_HTTP_MAX_HEADERS 6

struct lucy_http_response {
    int status;               /* HTTP status */
    const char *content_type; /* static string */
    char *body;               /* malloc'd; the server frees it */
    size_t body_len;          /* length of body */
    int retry_after_s;        /* > 0: Retry-After header */
    struct {
        char name[64];
        char value[256];
    } headers[LUCY_HTTP_MAX_HEADERS]; /* extra headers; a Cache-Control here replaces
                                       * the default "no-store" */
    int n_headers;
    /* A body read from a file instead of `body` (lucy_http_reply_fd): the
     * server sends fd_length bytes from fd_offset (sendfile where it can)
     * and closes fd when the reply is done. fd = -1: unused (the server
     * sets -1 before a handler runs). */
    int fd;             /* open descriptor, owned by the response; -1 = none */
    uint64_t fd_offset; /* first byte to send */
    uint64_t fd_length; /* bytes to send */
};

typedef void (*lucy_route_fn)(struct lucy_http_request *req, struct lucy_http_response *resp);

struct lucy_route {
    const char *method;  /* "GET", "POST", "PUT", "DELETE" */
    const char *pattern; /* "/recordings/{id}" */
    lucy_route_fn fn;    /* the handler */
    int auth;            /* 1: needs the bearer token when one is configured */
    size_t body_limit;   /* bytes; 0 = LUCY_HTTP_BODY_LIMIT_DEFAULT */
    void *arg;           /* handed to the handler as req->arg; owned by the module that
                          * adds the row, and must outlive the server */
};

/* Result of matching a path against a table. */
enum lucy_route_match_result { LUCY_ROUTE_FOUND, LUCY_ROUTE_NO_PATH, LUCY_ROUTE_NO_METHOD };

/* Pure matcher: finds the row for (method, path) among n routes. On FOUND
 * sets *out and copies up to LUCY_ROUTE_MAX_PARAMS captures into params
 * (each params[i] points into a copy the caller frees with free(params[i]))
 * and *n_params. On NO_METHOD, allow (allow_len bytes) lists the methods
 * that would match, comma-separated. HEAD matches GET rows. */
enum lucy_route_match_result lucy_route_match(const struct lucy_route *routes, size_t n,
                                              const char *method, const char *path,
                                              const struct lucy_route **out, char **params,
                                              int *n_params, char *allow, size_t allow_len);

/* Server lifecycle. lucy_http_new() allocates; routes are added before
 * start; lucy_http_start() binds host:port (port 0 = any) and returns the
 * bound port in *bound_port. lucy_http_stop() stops accepting, waits for
 * handlers in flight, and returns.
 * request_timeout_s: a request's line, headers and body must all arrive
 * within this many seconds of its start (connection accepted, or the
 * previous reply sent on a kept-alive connection), or the connection is
 * closed: a client that trickles a byte now and then (slowloris) cannot
 * hold a connection, nor a share of the body budget, for long. */
struct lucy_http *lucy_http_new(struct lucy_ctx *ctx, const char *api_token, int threads,
                                int request_timeout_s);
/* Adds n rows (copied) before start. arg is given to each row whose own
 * arg is NULL: the adding module's state, reached by its handlers as
 * req->arg (so no module needs a singleton). 0 or LUCY_ENOMEM. */
/* The memory all request bodies held at once may take, in bytes (default
 * 64 MiB; LUCY_HTTP_BODY_BUDGET_MB): past it a request is answered 503
 * with Retry-After. Before lucy_http_start(). 0 keeps the default. */
void lucy_http_set_body_budget(struct lucy_http *h, size_t bytes);

int lucy_http_add_routes(struct lucy_http *h, const struct lucy_route *routes, size_t n, void *arg);
int lucy_http_start(struct lucy_http *h, const char *host, int port, int *bound_port, char *err,
                    size_t errlen);
void lucy_http_stop(struct lucy_http *h);
void lucy_http_free(struct lucy_http *h);

/* ---- deferred replies ------------------------------------------------------
 * In a handler:
 *     struct lucy_http_deferred *d = lucy_http_defer(req, finish, job);
 *     ... hand job and d to another thread, return without replying ...
 * On that thread, when the work is over (exactly once):
 *     lucy_http_resume(d);
 * Then, on an HTTP pool thread, finish(req, resp, job) fills resp like a
 * handler and frees job. req (body, params, headers) stays valid until
 * finish returns. */
struct lucy_http_deferred;
typedef void (*lucy_http_finish_fn)(struct lucy_http_request *req, struct lucy_http_response *resp,
                                    void *arg);

/* Defers the reply of the running handler (call from the handler only,
 * at most once; leave resp untouched afterwards: the server ignores it).
 * finish(req, resp, arg) is called exactly once after lucy_http_resume(),
 * also when the client went away meanwhile (its reply is then dropped), so
 * it is the place to free arg. While deferred the connection is
 * suspended: it holds no pool thread and does not time out.
 * lucy_http_stop() waits for deferred replies to finish; while it runs, a
 * new deferred reply is awaited on the pool thread instead (no
 * suspension). Returns the handle for lucy_http_resume(); never fails. */
struct lucy_http_deferred *lucy_http_defer(struct lucy_http_request *req,
                                           lucy_http_finish_fn finish, void *arg);

/* The deferred work is over: schedules finish on an HTTP thread. Call once
 * per handle, from any thread (also from inside the handler that
 * deferred, e.g. when the work could not even start). Publish the work's
 * results before calling: finish reads them on another thread. */
void lucy_http_resume(struct lucy_http_deferred *d);

/* ---- streamed replies ------------------------------------------------------
 * For a body written while it is sent (server-sent events of an LLM's
 * tokens). In a handler:
 *     lucy_http_reply_stream(req, resp, 200, "text/event-stream", produce, job);
 *     return;
 * Once the handler returns, the status and headers go out and
 * produce(s, job) runs on a thread of its own ("http-stream"), calling
 * lucy_http_stream_write(s, ...) as bytes become ready; the body ends when
 * produce returns. produce must free job, and must not touch req (the
 * request may be over before it is): copy what it needs into job. When no
 * stream can start (lucy is stopping, no thread), produce(NULL, job) is
 * called to free job and the client gets a 503. */
struct lucy_http_stream;
typedef void (*lucy_http_producer_fn)(struct lucy_http_stream *s, void *arg);

/* Makes resp a streamed reply of status and content_type (static) produced
 * by producer(arg) (see above). Call from the handler, at most once;
 * headers added to resp before or after are sent. Never fails (the server
 * answers 503 itself if the stream cannot start). */
void lucy_http_reply_stream(struct lucy_http_request *req, struct lucy_http_response *resp,
                            int status, const char *content_type, lucy_http_producer_fn producer,
                            void *arg);

/* Appends len bytes to the streamed body; the connection sends them as
 * the client reads. Waits while STREAM_BUFFER_BYTES (64 KiB) are unsent,
 * at most the request deadline (LUCY_HTTP_REQUEST_TIMEOUT_S). Returns 0;
 * LUCY_EUNAVAIL when the client went away (stop producing);
 * LUCY_ETIMEDOUT when it stopped reading (the reply is cut). Producer's
 * thread only. */
int lucy_http_stream_write(struct lucy_http_stream *s, const void *data, size_t len);

/* 1 once writes can only fail (client gone, reply cut): lets a producer
 * skip work nobody will read. Any thread. */
int lucy_http_stream_gone(struct lucy_http_stream *s);

/* Request helpers. Returned strings are owned by the request. */
const char *lucy_http_query(struct lucy_http_request *req, const char *key);
const char *lucy_http_header(struct lucy_http_request *req, const char *name);

/* Reply helpers: each sets status, content type and body of resp. */
void lucy_http_reply_json(struct lucy_http_response *resp, int status, json_t *body /* stolen */);
void lucy_http_reply_text(struct lucy_http_response *resp, int status, const char *content_type,
                          const char *text, size_t len);
/* An error reply of DESIGN §5; retry_after_s > 0 adds Retry-After and
 * retry_after_s (used for 423/429/503/507). message says what to do. */
void lucy_http_reply_error(struct lucy_http_response *resp, enum lucy_http_error type,
                           int retry_after_s, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Maps a LUCY_E* code to a reply (ENOSPC -> 507 disk_full, EIO/EUNAVAIL ->
 * 503 dependency_unavailable, ENOTFOUND -> 404, ...), with message. */
void lucy_http_reply_err(struct lucy_http_response *resp, int lucy_err, const char *message);
int lucy_http_add_header(struct lucy_http_response *resp, const char *name, const char *value);
/* A reply whose body is length bytes of the open file fd from offset
 * (bytes), e.g. a 206 for a Range request. Takes ownership of fd: the
 * server closes it after sending (or on any failure). Replaces a body set
 * before. Headers added before or after are kept. */
void lucy_http_reply_fd(struct lucy_http_response *resp, int status, const char *content_type,
                        int fd, uint64_t offset, uint64_t length);

/* LUCY_JSON_REALS (how lucy prints reals in the JSON it hands out) is in log.h. */

/* The error type's name ("disk_full") and HTTP status (507). */
const char *lucy_http_error_name(enum lucy_http_error type);
int lucy_http_error_status(enum lucy_http_error type);
/* The error type lucy_http_reply_err gives a LUCY_E* code (LUCY_ENOSPC ->
 * LUCY_HTTP_DISK_FULL; unknown codes -> LUCY_HTTP_INTERNAL). Pure. */
enum lucy_http_error lucy_http_error_of(int lucy_err);

/* Request counts by route and status for /metrics: calls fn for each. */
void lucy_http_foreach_count(struct lucy_http *h,
                             void (*fn)(void *arg, const char *method, const char *route,
                                        int status, unsigned long long count),
                             void *arg);

/* Bytes of request bodies held in memory now, all connections together
 * (what LUCY_HTTP_BODY_BUDGET_MB bounds); for /metrics. Any thread. */
size_t lucy_http_body_bytes(struct lucy_http *h);

#endif
