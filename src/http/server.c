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
 * Hostile clients (DESIGN §11). libmicrohttpd's connection timeout is an
 * IDLE timeout: a client sending a byte every few seconds never hits it.
 * So every connection also has a record (MHD_OPTION_NOTIFY_CONNECTION) with
 * the time its current request started; the "http-reaper" thread shuts
 * down the socket of any connection still receiving a request after
 * request_timeout_s (libmicrohttpd then sees EOF and closes it; the record
 * is removed in the CLOSED notification, which runs before libmicrohttpd
 * closes the descriptor, under the same lock: the reaper never touches a
 * reused descriptor). Bodies are held in memory until the handler runs
 * (the webhook's signature covers the raw bytes), so all bodies in flight
 * share one budget, BODY_BUDGET_BYTES: past it a request is answered 503
 * with Retry-After instead of buffering more, and large bodies are
 * mmap'ed (a fixed M_MMAP_THRESHOLD) so their memory goes back to the
 * system when they are freed.
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
#include <malloc.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../clock.h"
#include "../error.h"
#include "../log.h"
#include "../thread.h"
#include "../utf8.h"
#include "http.h"

#define MAX_COUNTS           256
#define BODY_BUDGET_BYTES    ((size_t)64 * 1024 * 1024) /* bodies in memory, all connections */
#define MMAP_THRESHOLD_BYTES (128 * 1024)               /* larger blocks: mmap, freed to the OS */
#define REAPER_TICK_MS       500
#define CONNECTION_LIMIT     4096 /* all addresses; needs as many descriptors */
#define PER_IP_LIMIT         128  /* one address */
#define DRAIN_MAX_BYTES      ((uint64_t)64 * 1024 * 1024) /* read (and drop) a refused body up to this \
                                                           */

/* One accepted connection, for the request deadline (see the header). */
struct conn_rec {
    struct conn_rec *prev, *next; /* in lucy_http.conns */
    int fd;                       /* its socket (libmicrohttpd's) */
    int receiving;                /* a request is arriving: the deadline applies */
    int cut;                      /* the reaper shut it down */
    int64_t started_mono_ms;      /* when the current request started */
};

struct count {
    char method[8];           /* request method */
    char route[96];           /* pattern, or "unmatched" */
    int status;               /* HTTP status sent */
    unsigned long long count; /* how many */
};

struct lucy_http {
    struct lucy_ctx *ctx;       /* handed to handlers */
    char *token;                /* LUCY_API_TOKEN or NULL */
    int threads;                /* pool size */
    struct lucy_route *routes;  /* the table (copied rows) */
    size_t n_routes, cap;       /* used / allocated */
    struct MHD_Daemon *daemon;  /* running server */
    pthread_mutex_t count_lock; /* guards counts */
    struct count counts[MAX_COUNTS];
    int n_counts;
    pthread_mutex_t defer_lock; /* guards n_deferred, stopping, conn_state.resumed */
    pthread_cond_t defer_idle;  /* broadcast when n_deferred drops to 0 */
    pthread_cond_t resumed;     /* broadcast when a blocking deferred reply is resumed */
    int n_deferred;             /* suspended connections with a deferred reply */
    int stopping;               /* lucy_http_stop() runs: defer without suspending */
    pthread_mutex_t conns_lock; /* guards conns and every conn_rec */
    struct conn_rec *conns;     /* open connections */
    struct lucy_thread reaper;  /* "http-reaper": enforces request_timeout_ms */
    int64_t request_timeout_ms; /* whole request must arrive within this */
    size_t body_bytes;          /* bodies held now, all connections (atomic) */
    size_t body_peak;           /* most held since the last malloc_trim (atomic) */
};

struct conn_state {
    struct lucy_http_request req;    /* what handlers see */
    const struct lucy_route *route;  /* matched row, NULL when answered early */
    char *body;                      /* accumulated body */
    size_t body_len, body_cap;       /* bytes used / allocated */
    size_t limit;                    /* route's body limit */
    int too_large;                   /* body exceeded the limit */
    int over_budget;                 /* all bodies together exceeded BODY_BUDGET_BYTES */
    struct lucy_http_response early; /* an error decided before the body came (draining) */
    const char *early_label;         /* its route label for the counters */
    int answered;                    /* a reply was queued early */
    struct lucy_http *h;             /* the server */
    lucy_http_finish_fn finish;      /* deferred reply: builds it after resume */
    void *finish_arg;                /* its argument */
    int deferred;                    /* finish not run yet */
    int blocking;                    /* deferred without suspension (server stopping) */
    int resumed;                     /* blocking: lucy_http_resume() was called */
};

/* The request is the first member: a handler's req leads back to its state. */
static struct conn_state *state_of(struct lucy_http_request *req)
{
    return (struct conn_state *)((char *)req - offsetof(struct conn_state, req));
}

static void count_request(struct lucy_http *h, const char *method, const char *route, int status)
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

static enum MHD_Result send_reply(struct lucy_http *h, struct MHD_Connection *conn,
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
    enum MHD_Result ok = MHD_queue_response(conn, (unsigned)resp->status, r);
    MHD_destroy_response(r);
    count_request(h, method, route, resp->status);
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

/* 1 when the request announces a body of at most DRAIN_MAX_BYTES (or a
 * chunked one) that the client is still to send. */
static int body_follows(struct MHD_Connection *conn)
{
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    const char *te = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Transfer-Encoding");
    if (te && strcasestr(te, "chunked"))
        return 1;
    if (!cl)
        return 0;
    unsigned long long n = strtoull(cl, NULL, 10);
    return n > 0 && n <= DRAIN_MAX_BYTES;
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
    if (!lucy_utf8_valid(url, strlen(url)) || bad_query) {
        lucy_http_reply_error(&resp, LUCY_HTTP_BAD_REQUEST, 0,
                              "the %s is not valid UTF-8 after percent-decoding; send text",
                              bad_query ? "query string" : "URL path");
        cs->answered = 1;
        *result = send_reply(h, conn, method, label, &resp);
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
        } else if (cl && strtoull(cl, NULL, 10) > cs->limit) {
            lucy_http_reply_error(&resp, LUCY_HTTP_PAYLOAD_TOO_LARGE, 0,
                                  "request body of %s bytes is over this endpoint's limit of %zu "
                                  "bytes",
                                  cl, cs->limit);
        } else {
            return 0;
        }
    }
    if (body_follows(conn)) {
        /* Read the body before answering: a client still sending when the
         * reply comes and the connection closes sees a broken pipe, not
         * the error (Python's http.client does). The deadline bounds it. */
        cs->early = resp;
        cs->early_label = label;
        cs->answered = 1;
        return 0;
    }
    cs->answered = 1;
    *result = send_reply(h, conn, method, label, &resp);
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

/* ---- request deadline and body budget --------------------------------------- */

static void release_body(struct conn_state *cs);

/* Marks whether conn is receiving a request (the deadline applies), and
 * since when. */
static void set_receiving(struct MHD_Connection *conn, struct lucy_http *h, int receiving,
                          int64_t since_mono_ms)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct conn_rec *rec = ci ? ci->socket_context : NULL;
    if (!rec)
        return;
    pthread_mutex_lock(&h->conns_lock);
    rec->receiving = receiving;
    if (receiving)
        rec->started_mono_ms = since_mono_ms;
    pthread_mutex_unlock(&h->conns_lock);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct lucy_http *h = cls;
    struct conn_rec *rec = *socket_context;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!ci || !(rec = calloc(1, sizeof *rec)))
            return; /* no deadline for this one connection; the idle timeout still applies */
        rec->fd = ci->connect_fd;
        rec->receiving = 1;
        rec->started_mono_ms = lucy_mono_ms();
        pthread_mutex_lock(&h->conns_lock);
        rec->next = h->conns;
        if (h->conns)
            h->conns->prev = rec;
        h->conns = rec;
        pthread_mutex_unlock(&h->conns_lock);
        *socket_context = rec;
    } else if (rec) { /* CLOSED: before libmicrohttpd closes rec->fd */
        pthread_mutex_lock(&h->conns_lock);
        if (rec->prev)
            rec->prev->next = rec->next;
        else
            h->conns = rec->next;
        if (rec->next)
            rec->next->prev = rec->prev;
        pthread_mutex_unlock(&h->conns_lock);
        free(rec);
        *socket_context = NULL;
    }
}

/* The "http-reaper" thread: closes connections whose request is late, and
 * gives freed body memory back to the system after a busy spell. */
static void reaper_main(void *arg)
{
    struct lucy_http *h = arg;
    do {
        int64_t now = lucy_mono_ms();
        int cut = 0;
        pthread_mutex_lock(&h->conns_lock);
        for (struct conn_rec *r = h->conns; r; r = r->next)
            if (r->receiving && !r->cut && now - r->started_mono_ms > h->request_timeout_ms) {
                shutdown(r->fd, SHUT_RDWR);
                r->cut = 1;
                cut++;
            }
        pthread_mutex_unlock(&h->conns_lock);
        if (cut)
            lucy_log(LUCY_LOG_INFO, "closed connections whose request did not arrive in time",
                     "{s:i,s:I}", "connections", cut, "request_timeout_s",
                     (json_int_t)(h->request_timeout_ms / 1000));
        if (__atomic_load_n(&h->body_bytes, __ATOMIC_RELAXED) == 0 &&
            __atomic_exchange_n(&h->body_peak, 0, __ATOMIC_RELAXED) > (size_t)16 * 1024 * 1024)
            malloc_trim(0);
    } while (!lucy_thread_nap(&h->reaper, REAPER_TICK_MS));
}

/* Grows cs->body to hold at least want bytes, charging the budget shared by
 * all connections. Returns 0, or 1 when the budget is spent (cs->over_budget
 * set, body dropped: the request is answered 503), or -1 out of memory. */
static int grow_body(struct conn_state *cs, size_t want)
{
    size_t cap = cs->body_cap ? cs->body_cap : 4096;
    while (cap < want)
        cap *= 2;
    if (cap > cs->limit + 1 && want <= cs->limit + 1)
        cap = cs->limit + 1; /* never more than the route accepts */
    size_t extra = cap - cs->body_cap;
    size_t held = __atomic_add_fetch(&cs->h->body_bytes, extra, __ATOMIC_RELAXED);
    if (held > BODY_BUDGET_BYTES) {
        __atomic_sub_fetch(&cs->h->body_bytes, extra, __ATOMIC_RELAXED);
        cs->over_budget = 1;
        release_body(cs);
        return 1;
    }
    size_t peak = __atomic_load_n(&cs->h->body_peak, __ATOMIC_RELAXED);
    while (held > peak && !__atomic_compare_exchange_n(&cs->h->body_peak, &peak, held, 0,
                                                       __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
    char *b = realloc(cs->body, cap);
    if (!b) {
        __atomic_sub_fetch(&cs->h->body_bytes, extra, __ATOMIC_RELAXED);
        return -1;
    }
    cs->body = b;
    cs->body_cap = cap;
    return 0;
}

/* Frees cs->body and gives its bytes back to the budget. */
static void release_body(struct conn_state *cs)
{
    if (cs->body_cap)
        __atomic_sub_fetch(&cs->h->body_bytes, cs->body_cap, __ATOMIC_RELAXED);
    free(cs->body);
    cs->body = NULL;
    cs->body_len = cs->body_cap = 0;
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
            release_body(cs);
            return MHD_YES;
        }
        if (cs->body_len + n + 1 > cs->body_cap && grow_body(cs, cs->body_len + n + 1) != 0)
            return MHD_NO;
        memcpy(cs->body + cs->body_len, upload_data, n);
        cs->body_len += n;
        cs->body[cs->body_len] = '\0';
        return MHD_YES;
    }
    if (cs->answered && cs->deferred) { /* resumed: the deferred reply */
        struct lucy_http_response resp;
        finish_deferred(cs, &resp);
        return send_reply(h, conn, method, cs->route->pattern, &resp);
    }
    if (cs->early.body) { /* the refused body has been read: now the error */
        struct lucy_http_response resp = cs->early;
        cs->early.body = NULL;
        set_receiving(conn, h, 0, 0);
        return send_reply(h, conn, method, cs->early_label, &resp);
    }
    if (cs->answered)
        return MHD_YES;
    cs->answered = 1;

    struct lucy_http_response resp = {.fd = -1};
    set_receiving(conn, h, 0, 0); /* the whole request is here */
    if (cs->too_large) {
        lucy_http_reply_error(&resp, LUCY_HTTP_PAYLOAD_TOO_LARGE, 0,
                              "request body is over this endpoint's limit of %zu bytes", cs->limit);
        return send_reply(h, conn, method, cs->route->pattern, &resp);
    }
    if (cs->over_budget) {
        lucy_http_reply_error(&resp, LUCY_HTTP_DEPENDENCY_UNAVAILABLE, 5,
                              "lucy is receiving too many request bodies at once (%zu MiB in "
                              "memory); nothing was stored, send it again shortly",
                              BODY_BUDGET_BYTES >> 20);
        return send_reply(h, conn, method, cs->route->pattern, &resp);
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
    return send_reply(h, conn, method, cs->route->pattern, &resp);
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
    release_body(cs);
    free(cs);
    *con_cls = NULL;
    set_receiving(conn, cls, 1, lucy_mono_ms()); /* a kept-alive connection's next request */
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
    /* Limits (DESIGN §11): CONNECTION_LIMIT connections in all but at most
     * PER_IP_LIMIT from one address, so slow or hostile clients (slowloris,
     * from several addresses) cannot take every slot and starve the health
     * checks of a container runtime, which come from another address; idle
     * connections are dropped after 15 s and late requests after
     * request_timeout_s (the reaper); 64 KiB per connection for headers and
     * the URL. The descriptor limit is raised to fit the connections. */
    unsigned limit = CONNECTION_LIMIT;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)CONNECTION_LIMIT + 256) {
        rlim_t want = (rlim_t)CONNECTION_LIMIT + 256;
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)CONNECTION_LIMIT + 256)
            limit = rl.rlim_cur > 512 ? (unsigned)rl.rlim_cur - 256 : 256;
    }
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES); /* fixed: freed bodies leave the heap */
    h->daemon = MHD_start_daemon(
        flags, (uint16_t)port, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)h->threads, MHD_OPTION_CONNECTION_LIMIT, limit,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)PER_IP_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
        15u, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)131072, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, h, MHD_OPTION_NOTIFY_CONNECTION, on_connection, h, MHD_OPTION_EXTERNAL_LOGGER,
        mhd_log, h, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!h->daemon) {
        snprintf(err, errlen,
                 "cannot listen on %s:%d (address in use or not available); choose another "
                 "LUCY_LISTEN",
                 host, port);
        return LUCY_EIO;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    *bound_port = info ? info->port : port;
    h->reaper = (struct lucy_thread){.name = "http-reaper", .main = reaper_main, .arg = h};
    if (lucy_thread_start(&h->reaper) != 0) {
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
    while (h->n_deferred > 0)
        pthread_cond_wait(&h->defer_idle, &h->defer_lock);
    pthread_mutex_unlock(&h->defer_lock);
    lucy_thread_stop(&h->reaper);
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

const char *lucy_http_query(struct lucy_http_request *req, const char *key)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, key);
}

const char *lucy_http_header(struct lucy_http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}
