/*
 * ask.h - answers with citations (DESIGN §14): the one engine behind
 * POST /v1/chat/completions, GET /ask, `lucy ask` and MCP's `ask` tool.
 *
 * The data walk, one file per step:
 *   question ─► understand.c  filters: person (names, aliases, numbers),
 *                             time range (phrases in LUCY_TIMEZONE), the
 *                             words to search (number words both ways)
 *            ─► retrieve.c    BM25 (lucy_index_search_grouped, any word)
 *                             ─► fuse.c (reciprocal rank fusion of N ranked
 *                             lists: the seam for dense results) ─► one
 *                             source per conversation, widened with its
 *                             neighbouring segments, labelled, cut to
 *                             LUCY_LLM_CONTEXT_TOKENS
 *            ─► prompt.c      numbered sources and instructions
 *            ─► src/llm/      the OpenAI-compatible chat client
 *            ─► verify.c      every [n] names a given source, every quoted
 *                             span occurs in its source
 *            ─► ask.c         the reply: the LLM's answer, or the extractive
 *                             one (best passages, cited) whenever the LLM is
 *                             unset, down, slow, or cites no given source;
 *                             the `lucy` object (citations[], retrieval{})
 * routes.c and plugin.c serve it over HTTP; src/cmd/ask.c on the terminal.
 *
 * Threads: an engine is shared; lucy_ask_run may run on many threads at
 * once (HTTP pool). Dates: LUCY_TIMEZONE is applied process-wide (TZ) by
 * lucy_ask_timezone_apply() before any thread starts, so localtime_r and
 * mktime read it (docs/decisions.md).
 */
#ifndef LUCY_ASK_H
#define LUCY_ASK_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "../llm/chat.h"

struct lucy_config;
struct lucy_store;
struct lucy_index;

/* Sources given to the LLM (and cited by an extractive answer) at most. */
#define LUCY_ASK_SOURCES_MAX     5
#define LUCY_ASK_QUESTION_MAX    4000        /* bytes of a question */
#define LUCY_ASK_HISTORY_MAX     32          /* earlier turns passed on */
#define LUCY_ASK_HISTORY_MAX_LEN (64 * 1024) /* bytes of all earlier turns */

struct lucy_ask;

/* Opens the engine on store and ix (both borrowed: they must outlive it)
 * with cfg's LUCY_LLM_* options (the chat client: src/llm/chat.h) and
 * LUCY_LLM_CONTEXT_TOKENS, LUCY_DEFAULT_REGION (numbers in questions).
 * No network I/O. *out (free with lucy_ask_close). 0 or LUCY_ENOMEM. */
int lucy_ask_open(const struct lucy_config *cfg, struct lucy_store *store, struct lucy_index *ix,
                  struct lucy_ask **out);
void lucy_ask_close(struct lucy_ask *a);

/* A seat for one lucy_ask_run on a thread that also serves other requests
 * (an HTTP pool thread): at most half of LUCY_HTTP_THREADS (at least 1)
 * answers wait for an LLM there at once, so slow answers never take the
 * threads that liveness and the webhook need. 1 = seated (call
 * lucy_ask_unseat after lucy_ask_run), 0 = every seat taken: answer 503
 * with Retry-After. Streamed answers run on their own thread and need no
 * seat. Any thread. */
int lucy_ask_seat(struct lucy_ask *a);
void lucy_ask_unseat(struct lucy_ask *a);

/* Applies LUCY_TIMEZONE (cfg->timezone; NULL = leave the system's) to the
 * process: sets TZ and calls tzset() (the name was checked when the
 * configuration was read, config.c). Call once, before any thread starts. */
void lucy_ask_timezone_apply(const struct lucy_config *cfg);

/* One question. Strings borrowed for the call. */
struct lucy_ask_request {
    const char *question;                   /* UTF-8, at most LUCY_ASK_QUESTION_MAX bytes */
    const struct lucy_llm_message *history; /* earlier turns for the LLM, or NULL */
    size_t n_history;                       /* <= LUCY_ASK_HISTORY_MAX */
    int max_sources;                        /* 1..LUCY_ASK_SOURCES_MAX; 0 = the max */
    int64_t now_ms;                         /* "now" for time phrases; 0 = wall clock */
    const char *ui_base;                    /* "http://host:port": citations' url prefix;
                                               NULL = relative urls ("/#/...") */
    /* Streams the LLM's answer as it arrives (NULL = no streaming). The
     * pieces are the LLM's raw answer: if it is later found to cite no
     * given source, or the LLM fails midway, the final answer differs -
     * the caller must use *answer, not the pieces, as the result. */
    lucy_llm_token_fn on_token;
    void *token_arg;
    /* Filters given by the caller (MCP's `ask` tool), over what the
     * question says: a person's id (0 = the person the question names, if
     * any) and, when range_given, the time range from_s..to_s (Unix
     * seconds, inclusive) instead of the question's time phrase. */
    int64_t person;
    int range_given;
    int64_t from_s, to_s;
};

/* Answers rq. Never fails because the LLM or the index is down: the
 * answer is then extractive (or says nothing was found) and
 * retrieval.llm / retrieval.degraded say why. Sets:
 *   *answer   the text with [n] citations (malloc'd; caller frees);
 *   *lucy_out the extension object (new reference; caller decrefs):
 *     {"citations": [{"n","source","id","segment","t0_ms","t1_ms",
 *       "person":{"id","name"}|null,"speaker","time","quote","url",
 *       "verified"}],
 *      "verified": bool (every citation verified),
 *      "retrieval": {"query","filters":{...},"backend","degraded",
 *       "degraded_reason","llm":"used|not_configured|unavailable",
 *       "llm_error","sources"}}.
 * Returns 0; LUCY_EINVAL (empty or too long question, too much history,
 * from_s > to_s; err says which), LUCY_ENOTFOUND (rq->person is no
 * person) or LUCY_ENOMEM. Thread-safe. */
int lucy_ask_run(struct lucy_ask *a, const struct lucy_ask_request *rq, char **answer,
                 json_t **lucy_out, char *err, size_t errlen);

/* The checks lucy_ask_run makes of rq before any work (an empty or too
 * long question, too much history): 0, or LUCY_EINVAL with a sentence in
 * err. Lets a caller refuse a request before it commits to a reply (a
 * streamed one). Pure. */
int lucy_ask_request_check(const struct lucy_ask_request *rq, char *err, size_t errlen);

/* ---- the steps' pure parts, for their unit tests ------------------------- */

/* A time range understood from a question. */
struct lucy_ask_time {
    int64_t from_s, to_s;    /* inclusive, Unix seconds; INT64_MIN / INT64_MAX = open */
    char phrase[64];         /* the words understood ("last week"), "" = none */
    int latest;              /* "the latest/last call with ...": newest conversation only */
    char not_understood[64]; /* a time phrase naming no such day ("since 2024-02-30"):
                                not applied, its words not searched; "" = none */
};

/* Reads the first time phrase of question (any case) relative to now_s in
 * the process's time zone: today, yesterday, this/last week (Monday to
 * Sunday), this/last month, this/last year, in <Month> [YYYY], on
 * <weekday>, on/since/after/before YYYY-MM-DD, since <Month>/<weekday>/
 * yesterday, in YYYY, "latest/last/most recent call". Fills *t (open
 * range when none). A date that names no day (2024-02-30, 2023-02-29) is
 * not moved to a real one: its phrase goes to t->not_understood and sets
 * no range. Returns 1 when a phrase was understood, else 0. Pure but for
 * the time zone. */
int lucy_ask_time_parse(const char *question, int64_t now_s, struct lucy_ask_time *t);

/* The words of question worth searching for (lower case, stop words,
 * time-phrase words and the words of skip (a person's matched name, may be
 * NULL) left out), with each number also as its English word and each
 * number word also as digits ("3" -> "3 three"), space-separated:
 * malloc'd, "" when none; NULL on allocation failure. Pure. */
char *lucy_ask_search_words(const char *question, const char *skip);

/* One ranked list for fusion: keys[0] is the best. Keys are borrowed. */
struct lucy_ask_ranked {
    const char *const *keys;
    size_t n;
    double weight; /* 1.0 normally */
};

/* Reciprocal rank fusion (Cormack et al. 2009): each key scores
 * sum over lists of weight / (k + rank), rank from 1; k = 60 when k <= 0.
 * Writes the distinct keys of all lists best first into out (borrowed
 * pointers; up to max) and their scores into scores (may be NULL); ties
 * keep the order of first appearance (list by list). Returns how many.
 * Pure. */
size_t lucy_ask_rrf(const struct lucy_ask_ranked *lists, size_t n_lists, double k, const char **out,
                    double *scores, size_t max);

/* A citation check of an answer against n_sources numbered sources. */
struct lucy_ask_check {
    int cited[LUCY_ASK_SOURCES_MAX + 1];     /* cited[n] = times [n] appears (1..n_sources) */
    int quote_bad[LUCY_ASK_SOURCES_MAX + 1]; /* quotes attributed to n not found in it */
    int invalid[16];                         /* numbers cited that name no source */
    int n_invalid;                           /* how many (distinct, up to 16) */
    int unattributed_quotes;                 /* quotes with no [n] in their sentence */
    int n_valid;                             /* distinct valid sources cited */
};

/* Checks answer against sources[0..n_sources) (source n is sources[n-1]):
 * every [n] (also "[1, 2]" and "[1][2]") must name a source; every quoted
 * span ("...", “...”) of 2 words or more must occur in the source cited
 * next after it in its sentence (else the one before), comparing
 * lower-cased words (punctuation and spacing ignored). Fills *c. Pure. */
void lucy_ask_verify(const char *answer, const char *const *sources, size_t n_sources,
                     struct lucy_ask_check *c);

/* 1 when needle's words occur in haystack's words in a row, comparing
 * lower-case letters and digits only (any run of other bytes is one
 * separator; UTF-8 bytes >= 0x80 count as letters). Pure. */
int lucy_ask_text_contains(const char *haystack, const char *needle);

#endif
