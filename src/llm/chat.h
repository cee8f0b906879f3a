/*
 * chat.h - the OpenAI-compatible chat client (DESIGN §14, "Generation").
 *
 * One POST {LUCY_LLM_URL}/chat/completions per answer, through the shared
 * HTTP client (src/http/client.h): Ollama, llama.cpp's llama-server, vLLM,
 * LocalAI and OpenAI all serve it. Plain (one JSON reply) or streamed
 * (server-sent events, each content delta handed to a token callback as it
 * arrives). The whole call - connect, wait, every byte of the answer - is
 * bounded by LUCY_LLM_TIMEOUT_MS: the caller never waits longer, whatever
 * the server does.
 *
 * The client keeps no conversation state; it knows nothing of sources or
 * citations (src/ask/ builds the prompt and checks the answer).
 */
#ifndef LUCY_LLM_CHAT_H
#define LUCY_LLM_CHAT_H

#include <stddef.h>

struct lucy_config;

/* One chat message. Strings are borrowed for the call. */
struct lucy_llm_message {
    const char *role;    /* "system", "user" or "assistant" */
    const char *content; /* UTF-8 text */
};

/* Receives each piece of a streamed answer as it arrives (UTF-8, n bytes,
 * not NUL-terminated), on the calling thread. Returns 0 to go on,
 * non-zero to stop (the call then fails with LUCY_EUNAVAIL). */
typedef int (*lucy_llm_token_fn)(void *arg, const char *text, size_t n);

/* One chat request. */
struct lucy_llm_chat_request {
    const struct lucy_llm_message *messages; /* borrowed; n_messages >= 1 */
    size_t n_messages;
    int max_tokens;             /* > 0: max_completion_tokens; 0: the server's default */
    lucy_llm_token_fn on_token; /* non-NULL: stream ("stream": true) and call it */
    void *token_arg;            /* passed to on_token */
};

/* An open client: base URL, model, key, timeout, a keep-alive pool. */
struct lucy_llm;

/* Opens the client for cfg's LUCY_LLM_URL / _MODEL / _API_KEY /
 * _TIMEOUT_MS. No network I/O. Sets *out (free with lucy_llm_close);
 * *out = NULL and 0 when LUCY_LLM_URL is unset (no LLM configured).
 * 0 or LUCY_ENOMEM. */
int lucy_llm_open(const struct lucy_config *cfg, struct lucy_llm **out);

/* Frees llm (NULL is fine) once no call uses it. */
void lucy_llm_close(struct lucy_llm *llm);

/* The model name sent (static for llm's life; "lucy" when unset). */
const char *lucy_llm_model(const struct lucy_llm *llm);

/* Asks llm for an answer to rq; *answer = the whole answer text (malloc'd,
 * caller frees; also the concatenation of the streamed pieces). Returns
 * within the configured timeout. 0, or on failure *answer = NULL, a
 * sentence in err (errlen bytes; never the API key) and:
 *   LUCY_ETIMEDOUT  the answer did not arrive (completely) in time;
 *   LUCY_EUNAVAIL   no answer (refused, reset), a non-2xx status, a body
 *                   that is not a chat completion, or on_token stopped it;
 *   LUCY_EINVAL     rq has no messages;
 *   LUCY_ENOMEM.
 * Thread-safe: calls may run at once on one llm. */
int lucy_llm_chat(struct lucy_llm *llm, const struct lucy_llm_chat_request *rq, char **answer,
                  char *err, size_t errlen);

/* ---- pure helpers (chat.c), exposed for the unit tests ------------------ */

/* Feeds n bytes of a server-sent event stream into the parser state:
 * complete lines "data: {json}" append choices[0].delta.content to
 * *answer and call on_token; "data: [DONE]" sets *done. Partial lines wait
 * in *line until their end arrives. 0, LUCY_EUNAVAIL (a data line that is
 * not a chunk, or on_token stopped) or LUCY_ENOMEM. */
struct lucy_llm_sse {
    char *line;      /* the unfinished line (malloc'd) */
    size_t line_len; /* bytes in line */
    char *answer;    /* the content so far (malloc'd, NUL-terminated) */
    size_t answer_len;
    int done;   /* "[DONE]" seen */
    int chunks; /* well-formed chunks seen */
    lucy_llm_token_fn on_token;
    void *token_arg;
};
int lucy_llm_sse_feed(struct lucy_llm_sse *s, const char *data, size_t n);
/* Frees the parser's buffers (not the struct). */
void lucy_llm_sse_free(struct lucy_llm_sse *s);

#endif
