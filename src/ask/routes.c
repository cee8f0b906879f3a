/*
 * routes.c - the engine over HTTP (DESIGN §14):
 *   POST /v1/chat/completions  OpenAI's chat completion, model "lucy":
 *                              plain, or "stream": true as server-sent
 *                              events the way OpenAI sends them
 *   GET  /v1/models            the one model, "lucy"
 *   GET  /ask?q=               the same engine, lucy's own JSON
 * All need the bearer token when one is set. Each handler gets the engine
 * as req->arg.
 *
 * The answer's citations reach an OpenAI client twice: as
 * choices[0].message.annotations (url_citation, one per cited source,
 * its url opening lucy's UI at the moment) that every client understands,
 * and as the extension object `lucy` (citations[], verified, retrieval{})
 * beside `choices`. Streamed ("stream": true), the LLM's tokens are
 * passed on as they arrive (a producer thread: lucy_http_reply_stream),
 * and the citations are verified once the answer is whole: the
 * annotations and `lucy` ride on the last chunk, the one with
 * finish_reason. What verification adds (a note, or the extractive
 * answer when the LLM failed midway or cited nothing valid) follows as
 * further content chunks (docs/decisions.md). The plain reply is verified
 * before it is sent.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../clock.h"
#include "../error.h"
#include "../http/http.h"
#include "ask_int.h"

#define MODEL_ID        "lucy"
#define CHAT_BODY_LIMIT (256 * 1024) /* bytes of a chat request */
#define STREAM_PIECE    48           /* bytes of content per streamed chunk, about */

struct ask_routes {
    struct lucy_ask *ask; /* the engine (owned by plugin.c) */
};

/* "http://<Host>" of the request, for citation urls; NULL without Host. */
static char *ui_base(struct lucy_http_request *req)
{
    const char *host = lucy_http_header(req, "Host");
    char *s = NULL;
    if (host && *host && !strpbrk(host, " /\\\"<>") && asprintf(&s, "http://%s", host) < 0)
        s = NULL;
    return s;
}

/* Code points in s[0..n): OpenAI's annotation indices count characters. */
static size_t chars(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

/* url_citation annotations: the first "[n]" of each cited source, at or
 * after byte from of content (the part the citations number). */
static json_t *annotations(const char *content, size_t from, json_t *lucy)
{
    json_t *out = json_array();
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(lucy, "citations"), i, c)
    {
        const char *url = json_string_value(json_object_get(c, "url"));
        if (!url)
            continue;
        char mark[24];
        snprintf(mark, sizeof mark, "[%lld]",
                 (long long)json_integer_value(json_object_get(c, "n")));
        const char *at = strstr(content + from, mark);
        if (!at)
            continue;
        size_t start = chars(content, (size_t)(at - content));
        json_array_append_new(
            out, json_pack("{s:s, s:{s:I, s:I, s:s, s:s}}", "type", "url_citation", "url_citation",
                           "start_index", (json_int_t)start, "end_index",
                           (json_int_t)(start + strlen(mark)), "url", url, "title",
                           json_string_value(json_object_get(c, "label")) ?: "source"));
    }
    return out;
}

/* The text of a message's content: a string, or the text parts of an
 * array (OpenAI's content parts). NULL when it has none. */
static char *content_text(json_t *content)
{
    if (json_is_string(content))
        return strdup(json_string_value(content));
    if (!json_is_array(content))
        return NULL;
    char *buf = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&buf, &size);
    if (!out)
        return NULL;
    size_t i;
    json_t *part;
    json_array_foreach(content, i, part)
    {
        const char *t = json_string_value(json_object_get(part, "text"));
        if (t)
            fprintf(out, "%s%s", size ? "\n" : "", t);
    }
    fclose(out);
    return buf;
}

struct chat_in {
    char *question; /* the last user message */
    struct lucy_llm_message history[LUCY_ASK_HISTORY_MAX];
    char *texts[LUCY_ASK_HISTORY_MAX]; /* owned contents of history */
    size_t n_history;
    int stream;
};

static void chat_in_free(struct chat_in *in)
{
    free(in->question);
    for (size_t i = 0; i < in->n_history; i++)
        free(in->texts[i]);
}

/* Reads the request; on a client error replies and returns non-zero. */
static int chat_parse(struct lucy_http_request *req, struct lucy_http_response *resp,
                      struct chat_in *in)
{
    json_error_t jerr;
    json_t *body = json_loadb(req->body ? req->body : "", req->body_len, 0, &jerr);
    json_t *messages = json_object_get(body, "messages");
    json_t *model = json_object_get(body, "model");
    json_t *stream = json_object_get(body, "stream");
    int rc = -1;
    if (!json_is_object(body)) {
        lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0,
                              "the body is not a JSON object (%s): send {\"model\": \"lucy\", "
                              "\"messages\": [{\"role\": \"user\", \"content\": \"...\"}]}",
                              jerr.text);
    } else if (!json_is_string(model) || strcmp(json_string_value(model), MODEL_ID) != 0) {
        lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0,
                              "model must be \"%s\" (GET /v1/models lists it)", MODEL_ID);
    } else if (stream && !json_is_boolean(stream) && !json_is_null(stream)) {
        lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0, "stream must be true or false");
    } else if (!json_is_array(messages) || json_array_size(messages) == 0) {
        lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0,
                              "messages must be a non-empty array of {\"role\", \"content\"}");
    } else if (json_array_size(messages) > LUCY_ASK_HISTORY_MAX + 1) {
        lucy_http_reply_error(resp, LUCY_HTTP_PAYLOAD_TOO_LARGE, 0,
                              "%zu messages; lucy reads at most %d: send the question with "
                              "fewer earlier messages",
                              json_array_size(messages), LUCY_ASK_HISTORY_MAX + 1);
    } else {
        rc = 0;
    }
    in->stream = json_is_true(stream);
    size_t n = json_array_size(messages), last_user = n;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        json_t *m = json_array_get(messages, i);
        const char *role = json_string_value(json_object_get(m, "role"));
        if (!role) {
            lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0,
                                  "messages[%zu] has no role: each message needs \"role\" and "
                                  "\"content\"",
                                  i);
            rc = -1;
        } else if (strcmp(role, "user") == 0) {
            last_user = i;
        }
    }
    if (rc == 0 && last_user == n) {
        lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0,
                              "no message has role \"user\": the last user message is the "
                              "question");
        rc = -1;
    }
    /* Earlier user and assistant turns go to the LLM as they are; the
     * client's own system messages are not passed on (lucy's rules are
     * the system message). */
    for (size_t i = 0; rc == 0 && i < last_user; i++) {
        json_t *m = json_array_get(messages, i);
        const char *role = json_string_value(json_object_get(m, "role"));
        if (strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0)
            continue;
        char *t = content_text(json_object_get(m, "content"));
        if (!t)
            continue;
        in->texts[in->n_history] = t;
        /* static role names: body (and its strings) goes at the end */
        in->history[in->n_history++] =
            (struct lucy_llm_message){strcmp(role, "user") == 0 ? "user" : "assistant", t};
    }
    if (rc == 0 && !(in->question = content_text(
                         json_object_get(json_array_get(messages, last_user), "content")))) {
        lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0,
                              "the last user message has no text content");
        rc = -1;
    }
    json_decref(body);
    return rc;
}

static void reply_failure(struct lucy_http_response *resp, int rc, const char *err);

/* Runs the engine; on failure replies and returns non-zero. */
static int run(struct lucy_http_request *req, struct lucy_http_response *resp, const char *question,
               const struct lucy_llm_message *history, size_t n_history, char **answer,
               json_t **lucy)
{
    struct ask_routes *ar = req->arg;
    if (!lucy_ask_seat(ar->ask)) {
        lucy_http_reply_error(resp, LUCY_HTTP_DEPENDENCY_UNAVAILABLE, 5,
                              "lucy is answering as many questions as it takes at once; ask "
                              "again in a few seconds, or stream the answer (\"stream\": true), "
                              "which waits without holding a server thread");
        return -1;
    }
    char *base = ui_base(req);
    char err[512] = "";
    struct lucy_ask_request rq = {
        .question = question, .history = history, .n_history = n_history, .ui_base = base};
    int rc = lucy_ask_run(ar->ask, &rq, answer, lucy, err, sizeof err);
    lucy_ask_unseat(ar->ask);
    free(base);
    reply_failure(resp, rc, err);
    return rc;
}

/* The reply for lucy_ask_run's (or its check's) failure rc, if any. */
static void reply_failure(struct lucy_http_response *resp, int rc, const char *err)
{
    if (rc == LUCY_EINVAL)
        lucy_http_reply_error(resp,
                              strstr(err, "too long") || strstr(err, "at most")
                                  ? LUCY_HTTP_PAYLOAD_TOO_LARGE
                                  : LUCY_HTTP_BAD_REQUEST,
                              0, "%s", err);
    else if (rc)
        lucy_http_reply_err(resp, rc, "lucy could not answer: out of memory; try again");
}

static json_t *usage(const char *question, const char *answer)
{
    int p = (int)(strlen(question) / 4) + 1, c = (int)(strlen(answer) / 4) + 1;
    return json_pack("{s:i, s:i, s:i}", "prompt_tokens", p, "completion_tokens", c, "total_tokens",
                     p + c);
}

/* One "data: {chunk}\n\n" event. */
static void sse_chunk(FILE *out, const char *id, int64_t created, json_t *delta, const char *finish,
                      json_t *lucy)
{
    json_t *chunk =
        json_pack("{s:s, s:s, s:I, s:s, s:[{s:i, s:o, s:n, s:s?}]}", "id", id, "object",
                  "chat.completion.chunk", "created", (json_int_t)created, "model", MODEL_ID,
                  "choices", "index", 0, "delta", delta, "logprobs", "finish_reason", finish);
    if (chunk && lucy)
        json_object_set(chunk, "lucy", lucy);
    char *s = chunk ? json_dumps(chunk, JSON_COMPACT) : NULL;
    if (s)
        fprintf(out, "data: %s\n\n", s);
    free(s);
    json_decref(chunk);
}

/* Writes one chunk to the stream; 0, or non-zero once the client is gone. */
static int stream_chunk(struct lucy_http_stream *s, const char *id, int64_t created, json_t *delta,
                        const char *finish, json_t *lucy)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&buf, &size);
    if (!out) {
        json_decref(delta);
        return LUCY_ENOMEM;
    }
    sse_chunk(out, id, created, delta, finish, lucy);
    int rc = fclose(out) == 0 ? lucy_http_stream_write(s, buf, size) : LUCY_ENOMEM;
    free(buf);
    return rc;
}

/* text as content chunks cut at spaces (never inside a UTF-8 sequence). */
static int stream_text(struct lucy_http_stream *s, const char *id, int64_t created,
                       const char *text)
{
    size_t len = strlen(text);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < len;) {
        size_t n = len - i < STREAM_PIECE ? len - i : STREAM_PIECE;
        while (i + n < len && text[i + n] != ' ' && n < 4 * STREAM_PIECE)
            n++;
        while (i + n < len && ((unsigned char)text[i + n] & 0xC0) == 0x80)
            n++;
        rc = stream_chunk(s, id, created, json_pack("{s:s%}", "content", text + i, n), NULL, NULL);
        i += n;
    }
    return rc;
}

/* A streamed answer's job: what the producer needs, copied out of the
 * request (which may be over before the producer is). */
struct chat_stream {
    struct lucy_ask *ask;       /* the engine (borrowed) */
    struct chat_in in;          /* the question and history (owned) */
    char *base;                 /* citations' url prefix, or NULL */
    char id[48];                /* chatcmpl id */
    int64_t created;            /* Unix seconds */
    struct lucy_http_stream *s; /* the reply */
    char *sent;                 /* the LLM's tokens passed on so far (malloc'd) */
    size_t sent_len;            /* ... */
    int gone;                   /* the client went away: stop the LLM */
};

/* lucy_llm_token_fn: one piece of the LLM's answer, passed on at once. */
static int on_token(void *arg, const char *text, size_t n)
{
    struct chat_stream *cs = arg;
    if (n == 0)
        return cs->gone;
    char *grown = realloc(cs->sent, cs->sent_len + n + 1);
    if (!grown)
        return 1;
    memcpy(grown + cs->sent_len, text, n);
    cs->sent = grown;
    cs->sent_len += n;
    cs->sent[cs->sent_len] = '\0';
    if (stream_chunk(cs->s, cs->id, cs->created, json_pack("{s:s%}", "content", text, n), NULL,
                     NULL))
        cs->gone = 1;
    return cs->gone;
}

/* The producer (lucy_http_producer_fn): the role chunk at once, the LLM's
 * tokens as they come, then what verification adds, and the last chunk
 * with the annotations and `lucy`. */
static void produce_chat(struct lucy_http_stream *s, void *arg)
{
    struct chat_stream *cs = arg;
    cs->s = s;
    char *answer = NULL;
    json_t *lucy = NULL;
    if (!s || stream_chunk(s, cs->id, cs->created,
                           json_pack("{s:s, s:s}", "role", "assistant", "content", ""), NULL, NULL))
        goto out;
    char err[512] = "";
    struct lucy_ask_request rq = {.question = cs->in.question,
                                  .history = cs->in.history,
                                  .n_history = cs->in.n_history,
                                  .ui_base = cs->base,
                                  .on_token = on_token,
                                  .token_arg = cs};
    int rc = lucy_ask_run(cs->ask, &rq, &answer, &lucy, err, sizeof err);
    if (cs->gone)
        goto out;
    if (rc) { /* after the checks only out of memory is left: say so, end */
        char msg[600];
        snprintf(msg, sizeof msg, "lucy could not answer (%s); ask again",
                 err[0] ? err : lucy_strerror(rc));
        if (stream_text(s, cs->id, cs->created, msg) == 0)
            stream_chunk(s, cs->id, cs->created, json_object(), "stop", NULL);
        goto out;
    }
    /* What the client has is the LLM's text; the answer is that text and
     * verification's note, or - the LLM failed midway or cited nothing
     * valid - the extractive answer, which follows with a note. */
    const char *tail = answer;
    char *note = NULL;
    size_t from = 0;
    if (cs->sent_len && strncmp(answer, cs->sent, cs->sent_len) == 0) {
        tail = answer + cs->sent_len;
    } else if (cs->sent_len) {
        const char *why =
            json_string_value(json_object_get(json_object_get(lucy, "retrieval"), "llm_error"));
        if (asprintf(&note, "\n\n(lucy could not use the answer above: %s.)\n\n",
                     why ? why : "it did not hold up") < 0)
            note = NULL;
        from = cs->sent_len + (note ? strlen(note) : 0);
    }
    char *content = NULL;
    if (asprintf(&content, "%s%s%s", cs->sent ? cs->sent : "", note ? note : "", tail) < 0)
        content = NULL;
    if ((!note || stream_text(s, cs->id, cs->created, note) == 0) &&
        stream_text(s, cs->id, cs->created, tail) == 0 && content &&
        stream_chunk(s, cs->id, cs->created,
                     json_pack("{s:o}", "annotations", annotations(content, from, lucy)), "stop",
                     lucy) == 0)
        lucy_http_stream_write(s, "data: [DONE]\n\n", strlen("data: [DONE]\n\n"));
    free(note);
    free(content);
out:
    json_decref(lucy);
    free(answer);
    free(cs->sent);
    free(cs->base);
    chat_in_free(&cs->in);
    free(cs);
}

static void h_chat(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    struct chat_in in;
    memset(&in, 0, sizeof in);
    char *answer = NULL;
    json_t *lucy = NULL;
    if (chat_parse(req, resp, &in) != 0) {
        chat_in_free(&in);
        return;
    }
    char id[48];
    int64_t created = lucy_wall_ms() / 1000;
    snprintf(id, sizeof id, "chatcmpl-lucy-%llx%04x", (unsigned long long)lucy_wall_ms(),
             (unsigned)(rand() & 0xffff));
    if (in.stream) { /* refuse a bad request before the 200 goes out */
        char err[512] = "";
        struct lucy_ask_request rq = {
            .question = in.question, .history = in.history, .n_history = in.n_history};
        int rc = lucy_ask_request_check(&rq, err, sizeof err);
        struct chat_stream *cs = rc ? NULL : calloc(1, sizeof *cs);
        if (!cs) {
            reply_failure(resp, rc ? rc : LUCY_ENOMEM, err);
            chat_in_free(&in);
            return;
        }
        cs->ask = ((struct ask_routes *)req->arg)->ask;
        cs->in = in; /* owned by the job now */
        cs->base = ui_base(req);
        memcpy(cs->id, id, sizeof id);
        cs->created = created;
        lucy_http_reply_stream(req, resp, 200, "text/event-stream", produce_chat, cs);
        return;
    }
    if (run(req, resp, in.question, in.history, in.n_history, &answer, &lucy) != 0) {
        chat_in_free(&in);
        return;
    }
    {
        json_t *reply = json_pack(
            "{s:s, s:s, s:I, s:s, s:[{s:i, s:s, s:n, s:{s:s, s:s, s:n, s:o}}], s:o, s:O}", "id", id,
            "object", "chat.completion", "created", (json_int_t)created, "model", MODEL_ID,
            "choices", "index", 0, "finish_reason", "stop", "logprobs", "message", "role",
            "assistant", "content", answer, "refusal", "annotations", annotations(answer, 0, lucy),
            "usage", usage(in.question, answer), "lucy", lucy);
        if (reply)
            lucy_http_reply_json(resp, 200, reply);
        else
            lucy_http_reply_err(resp, LUCY_ENOMEM, "lucy could not answer: out of memory");
    }
    json_decref(lucy);
    free(answer);
    chat_in_free(&in);
}

static void h_models(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    (void)req;
    lucy_http_reply_json(resp, 200,
                         json_pack("{s:s, s:[{s:s, s:s, s:i, s:s}]}", "object", "list", "data",
                                   "id", MODEL_ID, "object", "model", "created", 0, "owned_by",
                                   "lucy"));
}

static void h_ask(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    const char *q = lucy_http_query(req, "q");
    char *answer = NULL;
    json_t *lucy = NULL;
    if (!q || !*q) {
        lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0,
                              "q is missing: GET /ask?q=what+did+John+say+last+week");
        return;
    }
    if (run(req, resp, q, NULL, 0, &answer, &lucy) != 0)
        return;
    json_object_set_new(lucy, "question", json_string(q));
    json_object_set_new(lucy, "answer", json_string(answer));
    lucy_http_reply_json(resp, 200, lucy);
    free(answer);
}

static const struct lucy_route routes[] = {
    {"POST", "/v1/chat/completions", h_chat, 1, CHAT_BODY_LIMIT, NULL},
    {"GET", "/v1/models", h_models, 1, 0, NULL},
    {"GET", "/ask", h_ask, 1, 0, NULL},
};

int lucy_ask_routes_add(struct lucy_http *h, struct lucy_ask *ask, void **state)
{
    struct ask_routes *ar = calloc(1, sizeof *ar);
    if (!ar)
        return LUCY_ENOMEM;
    ar->ask = ask;
    *state = ar;
    return lucy_http_add_routes(h, routes, sizeof routes / sizeof routes[0], ar);
}
