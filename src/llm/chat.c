/*
 * chat.c - POST {base}/chat/completions, plain or streamed (chat.h).
 *
 * The request is OpenAI's CreateChatCompletionRequest with only what every
 * compatible server understands: model, messages, stream, and
 * max_completion_tokens when asked. The reply is read from
 * choices[0].message.content (plain) or from the content deltas of the
 * server-sent events (streamed, parsed by lucy_llm_sse_feed as bytes
 * arrive through the HTTP client's sink). The deadline is the HTTP call's
 * own (struct lucy_http_call.timeout_ms): nothing here waits on its own.
 */
#define _GNU_SOURCE
#include "chat.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../config.h"
#include "../error.h"
#include "../http/client.h"

#define DEFAULT_MODEL "lucy"
/* An answer is text; a reply bigger than this is not one. */
#define REPLY_CAP_BYTES (4u * 1024 * 1024)

struct lucy_llm {
    char *url;                  /* {base}/chat/completions */
    char *model;                /* sent as "model" */
    char *api_key;              /* bearer, or NULL */
    long timeout_ms;            /* the whole call */
    struct lucy_http_pool pool; /* keep-alive handles */
};

int lucy_llm_open(const struct lucy_config *cfg, struct lucy_llm **out)
{
    *out = NULL;
    if (!cfg->llm_url || !*cfg->llm_url)
        return 0;
    struct lucy_llm *l = calloc(1, sizeof *l);
    if (!l)
        return LUCY_ENOMEM;
    struct lucy_http_pool pool = LUCY_HTTP_POOL_INIT;
    l->pool = pool;
    size_t n = strlen(cfg->llm_url);
    while (n > 0 && cfg->llm_url[n - 1] == '/') /* "…/v1/" and "…/v1" are one base */
        n--;
    l->timeout_ms = cfg->llm_timeout_ms;
    if (asprintf(&l->url, "%.*s/chat/completions", (int)n, cfg->llm_url) < 0)
        l->url = NULL;
    l->model = strdup(cfg->llm_model && *cfg->llm_model ? cfg->llm_model : DEFAULT_MODEL);
    l->api_key = cfg->llm_api_key && *cfg->llm_api_key ? strdup(cfg->llm_api_key) : NULL;
    if (!l->url || !l->model || (cfg->llm_api_key && *cfg->llm_api_key && !l->api_key)) {
        lucy_llm_close(l);
        return LUCY_ENOMEM;
    }
    *out = l;
    return 0;
}

void lucy_llm_close(struct lucy_llm *llm)
{
    if (!llm)
        return;
    lucy_http_pool_free(&llm->pool);
    free(llm->url);
    free(llm->model);
    free(llm->api_key);
    free(llm);
}

const char *lucy_llm_model(const struct lucy_llm *llm)
{
    return llm ? llm->model : DEFAULT_MODEL;
}

/* ---- server-sent events ----------------------------------------------------- */

static int append(char **buf, size_t *len, const char *data, size_t n)
{
    char *b = realloc(*buf, *len + n + 1);
    if (!b)
        return LUCY_ENOMEM;
    memcpy(b + *len, data, n);
    *len += n;
    b[*len] = '\0';
    *buf = b;
    return 0;
}

/* One complete line of the stream (no newline). Blank lines, comments
 * (":") and fields other than data end events or are ignored, as the SSE
 * specification says. */
static int sse_line(struct lucy_llm_sse *s, const char *line, size_t n)
{
    if (n >= 1 && line[n - 1] == '\r')
        n--;
    if (n < 5 || strncmp(line, "data:", 5) != 0 || s->done)
        return 0;
    const char *v = line + 5;
    size_t vn = n - 5;
    if (vn && *v == ' ')
        v++, vn--;
    if (vn == 6 && memcmp(v, "[DONE]", 6) == 0) {
        s->done = 1;
        return 0;
    }
    json_error_t jerr;
    json_t *chunk = json_loadb(v, vn, 0, &jerr);
    json_t *choice = json_array_get(json_object_get(chunk, "choices"), 0);
    if (!chunk || !json_is_object(chunk) ||
        (json_object_get(chunk, "error") && !json_object_get(chunk, "choices"))) {
        json_decref(chunk);
        return LUCY_EUNAVAIL;
    }
    s->chunks++;
    const char *text =
        json_string_value(json_object_get(json_object_get(choice, "delta"), "content"));
    int rc = 0;
    if (text && *text) {
        size_t tn = strlen(text);
        rc = append(&s->answer, &s->answer_len, text, tn);
        if (rc == 0 && s->on_token && s->on_token(s->token_arg, text, tn) != 0)
            rc = LUCY_EUNAVAIL;
    }
    json_decref(chunk);
    return rc;
}

int lucy_llm_sse_feed(struct lucy_llm_sse *s, const char *data, size_t n)
{
    while (n > 0) {
        const char *nl = memchr(data, '\n', n);
        size_t take = nl ? (size_t)(nl - data) : n;
        int rc = append(&s->line, &s->line_len, data, take);
        if (rc)
            return rc;
        if (!nl)
            return 0;
        rc = sse_line(s, s->line, s->line_len);
        s->line_len = 0;
        if (rc)
            return rc;
        data += take + 1;
        n -= take + 1;
    }
    return 0;
}

void lucy_llm_sse_free(struct lucy_llm_sse *s)
{
    free(s->line);
    free(s->answer);
    s->line = s->answer = NULL;
    s->line_len = s->answer_len = 0;
}

static int sse_sink(void *arg, const char *data, size_t n)
{
    return lucy_llm_sse_feed(arg, data, n) != 0;
}

/* ---- the call ------------------------------------------------------------------ */

static char *request_body(const struct lucy_llm *llm, const struct lucy_llm_chat_request *rq)
{
    json_t *msgs = json_array();
    for (size_t i = 0; msgs && i < rq->n_messages; i++)
        json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", rq->messages[i].role, "content",
                                              rq->messages[i].content));
    json_t *body = json_pack("{s:s, s:o, s:b}", "model", llm->model, "messages", msgs, "stream",
                             rq->on_token != NULL);
    if (body && rq->max_tokens > 0)
        json_object_set_new(body, "max_completion_tokens", json_integer(rq->max_tokens));
    char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    return s;
}

/* The answer of a plain reply, or NULL when body is not a chat completion. */
static char *plain_answer(const char *body, size_t len)
{
    json_error_t jerr;
    json_t *r = json_loadb(body ? body : "", len, 0, &jerr);
    json_t *msg = json_object_get(json_array_get(json_object_get(r, "choices"), 0), "message");
    const char *text = json_string_value(json_object_get(msg, "content"));
    char *out = text ? strdup(text) : NULL;
    json_decref(r);
    return out;
}

int lucy_llm_chat(struct lucy_llm *llm, const struct lucy_llm_chat_request *rq, char **answer,
                  char *err, size_t errlen)
{
    *answer = NULL;
    if (!rq->messages || rq->n_messages == 0) {
        snprintf(err, errlen, "no messages to send");
        return LUCY_EINVAL;
    }
    char *body = request_body(llm, rq);
    if (!body)
        return LUCY_ENOMEM;
    struct lucy_llm_sse sse = {.on_token = rq->on_token, .token_arg = rq->token_arg};
    struct lucy_http_call c = {
        .method = "POST",
        .url = llm->url,
        .bearer = llm->api_key,
        .body = body,
        .body_len = strlen(body),
        .timeout_ms = llm->timeout_ms,
        .reply_cap = REPLY_CAP_BYTES,
        .sink = rq->on_token ? sse_sink : NULL,
        .sink_arg = &sse,
    };
    if (rq->on_token)
        c.headers[0] = "Accept: text/event-stream";
    int rc = lucy_http_pool_perform(&llm->pool, &c);
    if (rc) {
        snprintf(err, errlen, "%s: %s", rc == LUCY_ETIMEDOUT ? "no answer in time" : "no answer",
                 c.error);
    } else if (c.status < 200 || c.status > 299) {
        snprintf(err, errlen, "the LLM server answered HTTP %ld", c.status);
        rc = LUCY_EUNAVAIL;
    } else if (rq->on_token) {
        if (sse.line_len) /* a last line without its newline */
            rc = lucy_llm_sse_feed(&sse, "\n", 1);
        if (rc || sse.chunks == 0) {
            snprintf(err, errlen, "the LLM server's stream holds no chat completion chunk");
            rc = LUCY_EUNAVAIL;
        } else {
            *answer = sse.answer ? sse.answer : strdup("");
            sse.answer = NULL;
            rc = *answer ? 0 : LUCY_ENOMEM;
        }
    } else if (!(*answer = plain_answer(c.reply, c.reply_len))) {
        snprintf(err, errlen, "the LLM server's reply is not a chat completion");
        rc = LUCY_EUNAVAIL;
    }
    lucy_llm_sse_free(&sse);
    lucy_http_call_free(&c);
    free(body);
    return rc;
}
