/*
 * client.c - one libcurl request with a deadline, a reply cap and a bearer
 * token; a pool of easy handles (see client.h).
 */
#include "client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../error.h"
#include "../lucy.h"
#include "libcurl.h"

#define DEFAULT_TIMEOUT_MS 30000L
#define MAX_CONNECT_MS     10000L

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct lucy_http_call *call = arg;
    size_t n = size * nmemb;
    if (call->sink)
        return call->sink(call->sink_arg, data, n) == 0 ? n : 0;
    size_t cap = call->reply_cap ? call->reply_cap : LUCY_HTTP_CLIENT_REPLY_CAP;
    if (call->reply_len + n > cap) {
        call->too_big = 1;
        return 0;
    }
    char *p = realloc(call->reply, call->reply_len + n + 1);
    if (!p)
        return 0;
    memcpy(p + call->reply_len, data, n);
    call->reply_len += n;
    p[call->reply_len] = '\0';
    call->reply = p;
    return n;
}

/* The request's headers as a curl list (NULL when there are none or memory
 * ran out; *oom says which). */
static struct curl_slist *header_list(const struct lucy_libcurl *cu,
                                      const struct lucy_http_call *call, int *oom)
{
    struct curl_slist *list = NULL, *l;
    char line[1024];
    const char *lines[LUCY_HTTP_CLIENT_MAX_HEADERS + 3];
    int n = 0;
    if (call->body && !call->mime) {
        snprintf(line, sizeof line, "Content-Type: %s",
                 call->content_type ? call->content_type : "application/json");
        lines[n++] = line;
        lines[n++] = "Expect:"; /* no 100-continue round trip for small bodies */
    }
    for (int i = 0; i < LUCY_HTTP_CLIENT_MAX_HEADERS && call->headers[i]; i++)
        lines[n++] = call->headers[i];
    *oom = 0;
    for (int i = 0; i < n; i++) {
        if (!(l = cu->slist_append(list, lines[i]))) {
            *oom = 1;
            break;
        }
        list = l;
    }
    if (call->bearer && !*oom) {
        size_t len = strlen(call->bearer) + 32;
        char *auth = malloc(len);
        if (auth) {
            snprintf(auth, len, "Authorization: Bearer %s", call->bearer);
            l = cu->slist_append(list, auth);
            memset(auth, 0, len); /* a secret: do not leave it in freed memory */
            free(auth);
        }
        if (!auth || !l)
            *oom = 1;
        else
            list = l;
    }
    return list;
}

int lucy_http_client_perform(CURL *c, struct lucy_http_call *call)
{
    call->status = 0;
    call->too_big = 0;
    call->error[0] = '\0';
    const struct lucy_libcurl *cu = lucy_libcurl();
    if (!cu) {
        snprintf(call->error, sizeof call->error, "%s", lucy_libcurl_error());
        return LUCY_EUNAVAIL;
    }
    CURL *own = NULL;
    if (c)
        cu->easy_reset(c);
    else if (!(c = own = cu->easy_init())) {
        snprintf(call->error, sizeof call->error, "cannot create an HTTP client");
        return LUCY_ENOMEM;
    }
    int oom;
    struct curl_slist *hdr = header_list(cu, call, &oom);
    if (oom) {
        cu->slist_free_all(hdr);
        if (own)
            cu->easy_cleanup(own);
        snprintf(call->error, sizeof call->error, "out of memory");
        return LUCY_ENOMEM;
    }
    long timeout = call->timeout_ms > 0 ? call->timeout_ms : DEFAULT_TIMEOUT_MS;
    long connect = call->connect_timeout_ms > 0 ? call->connect_timeout_ms
                   : timeout < MAX_CONNECT_MS   ? timeout
                                                : MAX_CONNECT_MS;
    char cerr[CURL_ERROR_SIZE] = "";
    cu->easy_setopt(c, CURLOPT_URL, call->url);
    cu->easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    cu->easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    cu->easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout);
    cu->easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, connect);
    cu->easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    cu->easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    cu->easy_setopt(c, CURLOPT_WRITEDATA, call);
    cu->easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    cu->easy_setopt(c, CURLOPT_USERAGENT, "lucy/" LUCY_VERSION);
    if (call->stall_bytes_per_s > 0 && call->stall_s > 0) {
        cu->easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, call->stall_bytes_per_s);
        cu->easy_setopt(c, CURLOPT_LOW_SPEED_TIME, call->stall_s);
    }
    if (call->follow_redirects) {
        cu->easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
        cu->easy_setopt(c, CURLOPT_MAXREDIRS, 3L);
        cu->easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    }
    if (call->mime) {
        cu->easy_setopt(c, CURLOPT_MIMEPOST, call->mime);
    } else if (call->body) {
        cu->easy_setopt(c, CURLOPT_POSTFIELDS, call->body);
        cu->easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)call->body_len);
    } else {
        cu->easy_setopt(c, CURLOPT_HTTPGET, 1L);
    }
    if (call->method)
        cu->easy_setopt(c, CURLOPT_CUSTOMREQUEST, call->method);

    CURLcode cc = cu->easy_perform(c);
    int rc = 0;
    if (cc == CURLE_OK) {
        cu->easy_getinfo(c, CURLINFO_RESPONSE_CODE, &call->status);
    } else {
        if (call->too_big)
            snprintf(call->error, sizeof call->error, "the answer was larger than %zu bytes",
                     call->reply_cap ? call->reply_cap : (size_t)LUCY_HTTP_CLIENT_REPLY_CAP);
        else if (cc == CURLE_WRITE_ERROR && call->sink)
            snprintf(call->error, sizeof call->error, "the answer could not be stored");
        else
            snprintf(call->error, sizeof call->error, "%s", cerr[0] ? cerr : cu->easy_strerror(cc));
        rc = cc == CURLE_OPERATION_TIMEDOUT ? LUCY_ETIMEDOUT : LUCY_EUNAVAIL;
    }
    if (call->mime)
        cu->easy_setopt(c, CURLOPT_MIMEPOST, NULL);
    cu->easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    cu->easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
    cu->slist_free_all(hdr);
    if (own)
        cu->easy_cleanup(own);
    return rc;
}

void lucy_http_call_free(struct lucy_http_call *call)
{
    free(call->reply);
    call->reply = NULL;
    call->reply_len = 0;
}

int lucy_http_pool_perform(struct lucy_http_pool *pool, struct lucy_http_call *call)
{
    const struct lucy_libcurl *cu = lucy_libcurl();
    if (!cu) {
        call->status = 0;
        snprintf(call->error, sizeof call->error, "%s", lucy_libcurl_error());
        return LUCY_EUNAVAIL;
    }
    CURL *c = NULL;
    pthread_mutex_lock(&pool->lock);
    if (pool->n_idle > 0)
        c = pool->idle[--pool->n_idle];
    pthread_mutex_unlock(&pool->lock);
    if (!c && !(c = cu->easy_init())) {
        snprintf(call->error, sizeof call->error, "cannot create an HTTP client");
        return LUCY_ENOMEM;
    }
    int rc = lucy_http_client_perform(c, call);
    pthread_mutex_lock(&pool->lock);
    if (rc == 0 && pool->n_idle < LUCY_HTTP_POOL_MAX) {
        pool->idle[pool->n_idle++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&pool->lock);
    if (c)
        cu->easy_cleanup(c);
    return rc;
}

void lucy_http_pool_free(struct lucy_http_pool *pool)
{
    pthread_mutex_lock(&pool->lock);
    /* a handle in the pool means libcurl is open: no load at shutdown */
    const struct lucy_libcurl *cu = pool->n_idle ? lucy_libcurl() : NULL;
    for (int i = 0; cu && i < pool->n_idle; i++)
        cu->easy_cleanup(pool->idle[i]);
    pool->n_idle = 0;
    pthread_mutex_unlock(&pool->lock);
}
