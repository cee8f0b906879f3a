/*
 * server.c - libmicrohttpd glue: route lookup, auth, body limits, replies.
 *
 * Per request, libmicrohttpd calls on_request() several times: once with the
 * headers (we resolve the route and answer 404/405/401/413 at once when we
 * can), once per body chunk (appended up to the route's limit), and once at
 * the end (the handler runs and its reply is queued). A `struct
 * conn_state` lives from the first call to on_completed().
 *
 * A handler's reply is a malloc'd body, or an open file (resp->fd, set by
 * lucy_http_reply_fd) that libmicrohttpd sends from an offset and closes.
 * Replies carry "Cache-Control: no-store" unless the handler set its own.
 * The defences against hostile clients (request deadline, body budget,
 * draining refused bodies) are in guard.c.
 *
 * Counters for /metrics (requests by method, route and status) are a small
 * table under a mutex; an unknown path is counted as route "unmatched" so a
 * scanner cannot grow the table.
 *
 * Deferred replies (lucy_http_defer): the handler's last call suspends the
 * connection (MHD_suspend_connection, libmicrohttpd's documented way to
 * answer later without holding a pool thread) and returns no reply.
 * lucy_http_resume() from the other thread resumes it; libmicrohttpd then
 * calls on_request() again for the fully received request, and that call
 * runs the finish function and queues its reply. If the connection ends
 * without that call, on_completed() runs finish (reply dropped) so its
 * argument is always freed. lucy_http_stop() waits until no reply is
 * deferred: stopping libmicrohttpd with a suspended connection is an API
 * violation. From then on (a keep-alive client may still send requests)
 * lucy_http_defer() suspends nothing: the pool thread waits for
 * lucy_http_resume() itself and replies, as a synchronous handler would.
 *
 * Streamed replies (lucy_http_reply_stream): the handler names a producer;
 * after it returns, stream.c starts the producer's thread and queues a
 * response whose content reader suspends the connection while no bytes
 * are ready (see stream.c). lucy_http_stop() also waits for open streams.
 */
#define _GNU_SOURCE
#include <microhttpd.h>
#include <netdb.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../clock.h"
#include "../error.h"
#include "../log.h"
#include "../utf8.h"
#include "http.h"
#include "server_int.h"

/* The request is the first member: a handler's req leads back to its state. */
static struct conn_state *state_of(struct lucy_http_request *req)
{
    return (struct conn_state *)((char *)req - offsetof(struct conn_state, req));
}

void lucy_http_count(struct lucy_http *h, const char *method, const char *route, int status)
{
    pthread_mutex_lock(&h->count_lock);
    struct count *c = NULL;
    for (int i = 0; i < h->n_counts; i++) {
        struct count *x = &h->counts[i];
        if (x->status == status && strcmp(x->route, route) == 0 && strcmp(x->method, method) == 0) {
            c = x;
            break;
        }
    }
    if (!c && h->n_counts < MAX_COUNTS) {
        c = &h->counts[h->n_counts++];
        snprintf(c->method, sizeof c->method, "%s", method);
        snprintf(c->route, sizeof c->route, "%s", route);
        c->status = status;
    }
    if (c)
        c->count++;
    pthread_mutex_unlock(&h->count_lock);
}

void lucy_http_foreach_count(struct lucy_http *h,
                             void (*fn)(void *arg, const char *method, const char *route,
                                        int status, unsigned long long count),
                             void *arg)
{
    pthread_mutex_lock(&h->count_lock);
    for (int i = 0; i < h->n_counts; i++)
        fn(arg, h->counts[i].method, h->counts[i].route, h->counts[i].status, h->counts[i].count);
    pthread_mutex_unlock(&h->count_lock);
}

size_t lucy_http_body_bytes(struct lucy_http *h)
{
    return __atomic_load_n(&h->body_bytes, __ATOMIC_RELAXED);
}

void lucy_http_response_headers(struct MHD_Response *r, const struct lucy_http_response *resp)
{
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            resp->content_type ? resp->content_type : "application/json");
    int own_cache_control = 0;
    for (int i = 0; i < resp->n_headers; i++)
        own_cache_control |= strcasecmp(resp->headers[i].name, "Cache-Control") == 0;
    if (!own_cache_control)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (resp->retry_after_s > 0) {
        char v[16];
        snprintf(v, sizeof v, "%d", resp->retry_after_s);
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, v);
    }
    for (int i = 0; i < resp->n_headers; i++)
        MHD_add_response_header(r, resp->headers[i].name, resp->headers[i].value);
}

enum MHD_Result lucy_http_send_reply(struct lucy_http *h, struct MHD_Connection *conn,
                                     const char *method, const char *route,
                                     struct lucy_http_response *resp)
{
    struct MHD_Response *r;
    if (resp->fd >= 0) { /* a file body: libmicrohttpd closes fd when done */
        free(resp->body);
        resp->body = NULL;
        r = MHD_create_response_from_fd_at_offset64(resp->fd_length, resp->fd, resp->fd_offset);
        if (!r)
            close(resp->fd);
        resp->fd = -1;
        if (!r)
            return MHD_NO;
    } else {
        if (!resp->body) {
            lucy_http_reply_error(resp, LUCY_HTTP_INTERNAL, 0,
                                  "the handler produced no reply; this is a bug in lucy");
        }
        r = MHD_create_response_from_buffer(resp->body_len, resp->body, MHD_RESPMEM_MUST_FREE);
        if (!r) {
            free(resp->body);
            return MHD_NO;
        }
        resp->body = NULL; /* owned by libmicrohttpd now */
    }
    lucy_http_response_headers(r, resp);
    enum MHD_Result ok = MHD_queue_response(conn, (unsigned)resp->status, r);
    MHD_destroy_response(r);
    lucy_http_count(h, method, route, resp->status);
    return ok;
}

/* Constant-time check of "Authorization: Bearer <token>": both sides are
 * hashed first so the comparison length never depends on the input. */
static int authorized(struct lucy_http *h, struct MHD_Connection *conn)
{
    if (!h->token)
        return 1;
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0)
        return 0;
    const char *given = auth + 7;
    unsigned char a[EVP_MAX_MD_SIZE], b[EVP_MAX_MD_SIZE];
    unsigned int la = 0, lb = 0;
    if (!EVP_Digest(given, strlen(given), a, &la, EVP_sha256(), NULL) ||
        !EVP_Digest(h->token, strlen(h->token), b, &lb, EVP_sha256(), NULL) || la != lb)
        return 0;
    return CRYPTO_memcmp(a, b, la) == 0;
}

/* MHD_KeyValueIterator: sets *(int *)cls when a query key or value is not
 * valid UTF-8. */
static enum MHD_Result check_utf8_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    (void)kind;
    if (!lucy_utf8_valid(key, strlen(key)) || (value && !lucy_utf8_valid(value, strlen(value)))) {
        *(int *)cls = 1;
        return MHD_NO;
    }
    return MHD_YES;
}

/* First call for a request: resolve the route and answer early if we can.
 * Returns 1 when a reply was queued. */
static int first_call(struct lucy_http *h, struct MHD_Connection *conn, const char *url,
                      const char *method, struct conn_state *cs, enum MHD_Result *result)
{
    struct lucy_http_response resp = {.fd = -1};
    char allow[64];
    const char *label = "unmatched";
    /* Every id, query and path lucy serves is text: refuse bytes that are
     * not UTF-8 (after percent-decoding) here, once, so no handler stores
     * or echoes them. */
    int bad_query = 0;
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, check_utf8_arg, &bad_query);
    if (lucy_http_guard_take_escaped_nul(h, conn)) {
        lucy_http_reply_error(&resp, LUCY_HTTP_BAD_REQUEST, 0,
                              "the URL holds an escaped NUL byte (%%00); ids and queries are text "
                              "without NUL");
        cs->answered = 1;
        *result = lucy_http_send_reply(h, conn, method, label, &resp);
        return 1;
    }
    if (!lucy_utf8_valid(url, strlen(url)) || bad_query) {
        lucy_http_reply_error(&resp, LUCY_HTTP_BAD_REQUEST, 0,
                              "the %s is not valid UTF-8 after percent-decoding; send text",
                              bad_query ? "query string" : "URL path");
        cs->answered = 1;
        *result = lucy_http_send_reply(h, conn, method, label, &resp);
        return 1;
    }
    enum lucy_route_match_result m =
        lucy_route_match(h->routes, h->n_routes, method, url, &cs->route, cs->req.params,
                         &cs->req.n_params, allow, sizeof allow);
    if (m == LUCY_ROUTE_NO_PATH) {
        lucy_http_reply_error(&resp, LUCY_HTTP_NOT_FOUND, 0,
                              "no such endpoint: %s; see the README for the API", url);
    } else if (m == LUCY_ROUTE_NO_METHOD) {
        lucy_http_reply_error(&resp, LUCY_HTTP_METHOD_NOT_ALLOWED, 0,
                              "%s is not allowed on %s; allowed: %s", method, url, allow);
        lucy_http_add_header(&resp, "Allow", allow);
    } else {
        label = cs->route->pattern;
        cs->limit = cs->route->body_limit ? cs->route->body_limit : LUCY_HTTP_BODY_LIMIT_DEFAULT;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cs->route->auth && !authorized(h, conn)) {
            lucy_http_add_header(&resp, "WWW-Authenticate", "Bearer");
            lucy_http_reply_error(&resp, LUCY_HTTP_UNAUTHORIZED, 0,
                                  "missing or wrong bearer token: send 'Authorization: Bearer "
                                  "<LUCY_API_TOKEN>'");
        } else if (lucy_http_ratelimit_check(h, conn, cs->route->pattern, &resp)) {
            /* resp is the 429 */
        } else if (cl && strtoull(cl, NULL, 10) > cs->limit) {
            lucy_http_reply_error(&resp, LUCY_HTTP_PAYLOAD_TOO_LARGE, 0,
                                  "request body of %s bytes is over this endpoint's limit of %zu "
                                  "bytes",
                                  cl, cs->limit);
        } else {
            return 0;
        }
    }
    if (lucy_http_guard_body_follows(conn)) {
        /* Read the body before answering: a client still sending when the
         * reply comes and the connection closes sees a broken pipe, not
         * the error (Python's http.client does). The deadline bounds it. */
        cs->early = resp;
        cs->early_label = label;
        cs->answered = 1;
        return 0;
    }
    cs->answered = 1;
    *result = lucy_http_send_reply(h, conn, method, label, &resp);
    return 1;
}

/* Runs the deferred reply's finish function, which fills resp. */
static void finish_deferred(struct conn_state *cs, struct lucy_http_response *resp)
{
    *resp = (struct lucy_http_response){.status = 200, .fd = -1};
    cs->deferred = 0;
    cs->finish(&cs->req, resp, cs->finish_arg);
    if (cs->blocking)
        return;
    struct lucy_http *h = cs->h;
    pthread_mutex_lock(&h->defer_lock);
    if (--h->n_deferred == 0)
        pthread_cond_broadcast(&h->defer_idle);
    pthread_mutex_unlock(&h->defer_lock);
}

struct lucy_http_deferred *lucy_http_defer(struct lucy_http_request *req,
                                           lucy_http_finish_fn finish, void *arg)
{
    struct conn_state *cs = state_of(req);
    cs->finish = finish;
    cs->finish_arg = arg;
    cs->deferred = 1;
    pthread_mutex_lock(&cs->h->defer_lock);
    cs->blocking = cs->h->stopping;
    cs->h->n_deferred += !cs->blocking;
    pthread_mutex_unlock(&cs->h->defer_lock);
    if (!cs->blocking)
        MHD_suspend_connection(req->conn); /* before anyone can resume it */
    return (struct lucy_http_deferred *)cs;
}

void lucy_http_resume(struct lucy_http_deferred *d)
{
    struct conn_state *cs = (struct conn_state *)d;
    if (!cs->blocking) {
        MHD_resume_connection(cs->req.conn);
        return;
    }
    pthread_mutex_lock(&cs->h->defer_lock);
    cs->resumed = 1;
    pthread_cond_broadcast(&cs->h->resumed);
    pthread_mutex_unlock(&cs->h->defer_lock);
}

void lucy_http_reply_stream(struct lucy_http_request *req, struct lucy_http_response *resp,
                            int status, const char *content_type, lucy_http_producer_fn producer,
                            void *arg)
{
    struct conn_state *cs = state_of(req);
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
    resp->status = status;
    resp->content_type = content_type;
    cs->stream_fn = producer;
    cs->stream_arg = arg;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    struct lucy_http *h = cls;
    struct conn_state *cs = *con_cls;
    if (!cs) {
        cs = calloc(1, sizeof *cs);
        if (!cs)
            return MHD_NO;
        cs->h = h;
        *con_cls = cs;
        enum MHD_Result result;
        if (first_call(h, conn, url, method, cs, &result))
            return result;
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (cs->answered || cs->too_large || cs->over_budget)
            return MHD_YES;
        if (cs->body_len + n > cs->limit) {
            cs->too_large = 1;
            lucy_http_guard_release_body(cs);
            return MHD_YES;
        }
        if (cs->body_len + n + 1 > cs->body_cap) {
            int grown = lucy_http_guard_grow_body(cs, cs->body_len + n + 1);
            if (grown < 0)
                return MHD_NO; /* out of memory */
            if (grown > 0)
                return MHD_YES; /* over the budget: the rest is read and dropped, then 503 */
        }
        memcpy(cs->body + cs->body_len, upload_data, n);
        cs->body_len += n;
        cs->body[cs->body_len] = '\0';
        return MHD_YES;
    }
    if (cs->answered && cs->deferred) { /* resumed: the deferred reply */
        struct lucy_http_response resp;
        finish_deferred(cs, &resp);
        return lucy_http_send_reply(h, conn, method, cs->route->pattern, &resp);
    }
    if (cs->early.body) { /* the refused body has been read: now the error */
        struct lucy_http_response resp = cs->early;
        cs->early.body = NULL;
        lucy_http_guard_receiving(h, conn, 0, 0);
        return lucy_http_send_reply(h, conn, method, cs->early_label, &resp);
    }
    if (cs->answered)
        return MHD_YES;
    cs->answered = 1;

    struct lucy_http_response resp = {.fd = -1};
    lucy_http_guard_receiving(h, conn, 0, 0); /* the whole request is here */
    if (cs->too_large) {
        lucy_http_reply_error(&resp, LUCY_HTTP_PAYLOAD_TOO_LARGE, 0,
                              "request body is over this endpoint's limit of %zu bytes", cs->limit);
        return lucy_http_send_reply(h, conn, method, cs->route->pattern, &resp);
    }
    if (cs->over_budget) {
        lucy_http_reply_error(&resp, LUCY_HTTP_DEPENDENCY_UNAVAILABLE, 5,
                              "lucy is receiving too many request bodies at once (%zu MiB in "
                              "memory); nothing was stored, send it again shortly",
                              h->body_budget >> 20);
        return lucy_http_send_reply(h, conn, method, cs->route->pattern, &resp);
    }
    cs->req.ctx = h->ctx;
    cs->req.method = method;
    cs->req.path = url;
    cs->req.route_pattern = cs->route->pattern;
    cs->req.arg = cs->route->arg;
    cs->req.body = cs->body ? cs->body : "";
    cs->req.body_len = cs->body_len;
    cs->req.conn = conn;
    resp.status = 200;
    cs->route->fn(&cs->req, &resp);
    if (cs->stream_fn) /* lucy_http_reply_stream was called */
        return lucy_http_stream_start(h, conn, method, cs->route->pattern, &resp, cs->stream_fn,
                                      cs->stream_arg);
    if (cs->deferred) { /* lucy_http_defer was called; resp is unused */
        free(resp.body);
        if (resp.fd >= 0)
            close(resp.fd);
        if (!cs->blocking)
            return MHD_YES; /* suspended: called again once resumed */
        pthread_mutex_lock(&h->defer_lock);
        while (!cs->resumed)
            pthread_cond_wait(&h->resumed, &h->defer_lock);
        pthread_mutex_unlock(&h->defer_lock);
        finish_deferred(cs, &resp);
    }
    return lucy_http_send_reply(h, conn, method, cs->route->pattern, &resp);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)conn, (void)toe;
    struct conn_state *cs = *con_cls;
    if (!cs)
        return;
    if (cs->deferred) { /* ended before its reply: finish frees its argument */
        struct lucy_http_response resp;
        finish_deferred(cs, &resp);
        free(resp.body);
        if (resp.fd >= 0)
            close(resp.fd);
    }
    for (int i = 0; i < cs->req.n_params; i++)
        free(cs->req.params[i]);
    free(cs->early.body);
    lucy_http_guard_release_body(cs);
    free(cs);
    *con_cls = NULL;
    lucy_http_guard_receiving(cls, conn, 1,
                              lucy_mono_ms()); /* a kept-alive connection's next request */
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    line[strcspn(line, "\n")] = '\0';
    lucy_log(LUCY_LOG_DEBUG, "libmicrohttpd", "{s:s}", "detail", line);
}

struct lucy_http *lucy_http_new(struct lucy_ctx *ctx, const char *api_token, int threads,
                                int request_timeout_s)
{
    struct lucy_http *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->ctx = ctx;
    h->request_timeout_ms = (int64_t)(request_timeout_s > 0 ? request_timeout_s : 30) * 1000;
    h->body_budget = BODY_BUDGET_BYTES;
    pthread_mutex_init(&h->conns_lock, NULL);
    h->threads = threads > 0 ? threads : 1;
    if (api_token && *api_token)
        h->token = strdup(api_token);
    pthread_mutex_init(&h->count_lock, NULL);
    pthread_mutex_init(&h->defer_lock, NULL);
    pthread_cond_init(&h->defer_idle, NULL);
    pthread_cond_init(&h->resumed, NULL);
    return h;
}

int lucy_http_add_routes(struct lucy_http *h, const struct lucy_route *routes, size_t n, void *arg)
{
    if (h->n_routes + n > h->cap) {
        size_t cap = h->cap ? h->cap : 16;
        while (cap < h->n_routes + n)
            cap *= 2;
        struct lucy_route *r = realloc(h->routes, cap * sizeof *r);
        if (!r)
            return LUCY_ENOMEM;
        h->routes = r;
        h->cap = cap;
    }
    memcpy(h->routes + h->n_routes, routes, n * sizeof *routes);
    for (size_t i = 0; i < n; i++)
        if (!h->routes[h->n_routes + i].arg)
            h->routes[h->n_routes + i].arg = arg;
    h->n_routes += n;
    return 0;
}

int lucy_http_start(struct lucy_http *h, const char *host, int port, int *bound_port, char *err,
                    size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    int gai = getaddrinfo(host, portstr, &hints, &ai);
    if (gai != 0 || !ai) {
        snprintf(err, errlen, "cannot resolve listen address %s: %s", host, gai_strerror(gai));
        return LUCY_EINVAL;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG |
                     MHD_ALLOW_SUSPEND_RESUME;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* Limits (DESIGN §11): 4096 connections in all (guard.c) but at most
     * 128 from one address, so slow or hostile clients (slowloris,
     * from several addresses) cannot take every slot and starve the health
     * checks of a container runtime, which come from another address; idle
     * connections are dropped after 15 s and late requests after
     * request_timeout_s (the reaper); 64 KiB per connection for headers and
     * the URL. The descriptor limit is raised to fit the connections. */
    unsigned limit = lucy_http_guard_prepare();
    h->daemon = MHD_start_daemon(
        flags, (uint16_t)port, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)h->threads, MHD_OPTION_CONNECTION_LIMIT, limit,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, 128u, MHD_OPTION_CONNECTION_TIMEOUT, 15u,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)131072, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, h, MHD_OPTION_NOTIFY_CONNECTION, lucy_http_guard_on_connection, h,
        MHD_OPTION_UNESCAPE_CALLBACK, lucy_http_guard_unescape, h, MHD_OPTION_EXTERNAL_LOGGER,
        mhd_log, h, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!h->daemon) {
        snprintf(err, errlen,
                 "cannot listen on %s:%d (address in use or not available); choose another "
                 "address with --listen HOST:PORT or LUCY_LISTEN (make run LISTEN=HOST:PORT)",
                 host, port);
        return LUCY_EIO;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    *bound_port = info ? info->port : port;
    if (lucy_http_guard_start(h) != 0) {
        MHD_stop_daemon(h->daemon);
        h->daemon = NULL;
        snprintf(err, errlen, "cannot start a thread; the system is out of resources");
        return LUCY_ENOMEM;
    }
    return 0;
}

void lucy_http_stop(struct lucy_http *h)
{
    if (!h->daemon)
        return;
    MHD_quiesce_daemon(h->daemon); /* stop accepting; in-flight requests finish */
    /* no connection may be suspended when libmicrohttpd stops; the work
     * behind a deferred reply (a store write) always ends */
    pthread_mutex_lock(&h->defer_lock);
    h->stopping = 1;
    while (h->n_deferred > 0 || h->n_streams > 0)
        pthread_cond_wait(&h->defer_idle, &h->defer_lock);
    pthread_mutex_unlock(&h->defer_lock);
    lucy_http_guard_stop(h);
    MHD_stop_daemon(h->daemon);
    h->daemon = NULL;
}

void lucy_http_free(struct lucy_http *h)
{
    if (!h)
        return;
    lucy_http_stop(h);
    pthread_mutex_destroy(&h->count_lock);
    pthread_mutex_destroy(&h->defer_lock);
    pthread_cond_destroy(&h->defer_idle);
    pthread_cond_destroy(&h->resumed);
    pthread_mutex_destroy(&h->conns_lock);
    free(h->routes);
    free(h->token);
    free(h);
}

void lucy_http_set_body_budget(struct lucy_http *h, size_t bytes)
{
    if (bytes > 0)
        h->body_budget = bytes;
}

const char *lucy_http_query(struct lucy_http_request *req, const char *key)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, key);
}

const char *lucy_http_header(struct lucy_http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}
