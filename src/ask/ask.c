/*
 * ask.c - the engine: understand, retrieve, ask the LLM, verify, reply
 * (ask.h). The one rule of the reply lives here (DESIGN §14, "Never fails
 * because a dependency is down"):
 *   - no LLM configured, or it failed (down, slow, 5xx, garbage), or its
 *     answer cites nothing: the extractive answer (the sources' best
 *     passages, each cited), retrieval.llm = not_configured | unavailable
 *     and llm_error saying why;
 *   - the LLM's answer cites only numbers that name no source: its text,
 *     a note that it could not be verified, then the extractive answer;
 *   - otherwise the LLM's answer; a citation that names no source or whose
 *     quote is not in its source is verified: false and a note says so.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../clock.h"
#include "../config.h"
#include "../error.h"
#include "../index/index.h"
#include "../people/people.h"
#include "../store/store.h"
#include "ask_int.h"

#define BYTES_PER_TOKEN 4
#define QUOTE_MAX_BYTES 600 /* of a source's passage in an extractive answer */

int lucy_ask_open(const struct lucy_config *cfg, struct lucy_store *store, struct lucy_index *ix,
                  struct lucy_ask **out)
{
    *out = NULL;
    struct lucy_ask *a = calloc(1, sizeof *a);
    if (!a)
        return LUCY_ENOMEM;
    a->store = store;
    a->ix = ix;
    a->context_bytes =
        (size_t)(cfg->llm_context_tokens > 0 ? cfg->llm_context_tokens : 3000) * BYTES_PER_TOKEN;
    a->seats = cfg->http_threads / 2 > 1 ? cfg->http_threads / 2 : 1;
    if ((cfg->default_region && !(a->region = strdup(cfg->default_region))) ||
        lucy_llm_open(cfg, &a->llm) != 0) {
        lucy_ask_close(a);
        return LUCY_ENOMEM;
    }
    *out = a;
    return 0;
}

int lucy_ask_seat(struct lucy_ask *a)
{
    if (__atomic_add_fetch(&a->seated, 1, __ATOMIC_ACQ_REL) <= a->seats)
        return 1;
    __atomic_sub_fetch(&a->seated, 1, __ATOMIC_ACQ_REL);
    return 0;
}

void lucy_ask_unseat(struct lucy_ask *a)
{
    __atomic_sub_fetch(&a->seated, 1, __ATOMIC_ACQ_REL);
}

void lucy_ask_close(struct lucy_ask *a)
{
    if (!a)
        return;
    lucy_llm_close(a->llm);
    free(a->region);
    free(a);
}

void lucy_ask_timezone_apply(const struct lucy_config *cfg)
{
    if (cfg->timezone && *cfg->timezone) { /* a real zone: checked with the config */
        setenv("TZ", cfg->timezone, 1);
        tzset();
    }
}

/* ---- the pieces of a reply ----------------------------------------------- */

static void url_escape(FILE *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~", *p))
            fputc(*p, out);
        else
            fprintf(out, "%%%c%c", hex[*p >> 4], hex[*p & 15]);
}

/* Where the UI opens source s: the recording at its moment, or the
 * message in its thread. */
static json_t *source_url(const char *base, const struct lucy_ask_source *s)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&buf, &size);
    if (!out)
        return NULL;
    fprintf(out, "%s/#/", base ? base : "");
    if (strcmp(s->source, "call_recording") == 0) {
        fputs("recordings/", out);
        url_escape(out, s->id);
        fprintf(out, "?t=%lld", (long long)s->t0_ms);
    } else {
        fputs("messages/", out);
        url_escape(out, s->contact ? s->contact : s->id);
        fputs("?m=", out);
        url_escape(out, s->id);
    }
    fclose(out);
    json_t *j = buf ? json_string(buf) : NULL;
    free(buf);
    return j;
}

static json_t *citation_json(const struct lucy_ask_request *rq, size_t n,
                             const struct lucy_ask_source *s, int verified)
{
    int is_call = strcmp(s->source, "call_recording") == 0;
    json_t *person =
        s->person ? json_pack("{s:I, s:s}", "id", (json_int_t)s->person, "name", s->person_name)
                  : json_null();
    /* As GET /recordings/{id} says it: a message's speaker is its sender; a
     * call's is "me", the person (the other party of a per-channel call),
     * or null when the call's channels were not told apart. */
    json_t *speaker = !is_call ? (s->person ? json_integer(s->person) : json_null())
                      : strcmp(s->speaker, "me") == 0                ? json_string("me")
                      : strcmp(s->speaker, "them") == 0 && s->person ? json_integer(s->person)
                                                                     : json_null();
    return json_pack("{s:I, s:s, s:s, s:i, s:o, s:o, s:o, s:o, s:s, s:s, s:s, s:o?, s:b}", "n",
                     (json_int_t)n, "source", s->source, "id", s->id, "segment", s->segment,
                     "t0_ms", is_call ? json_integer(s->t0_ms) : json_null(), "t1_ms",
                     is_call ? json_integer(s->t1_ms) : json_null(), "person", person, "speaker",
                     speaker, "label", s->label, "time", s->time_iso, "quote", s->quote, "url",
                     source_url(rq->ui_base, s), "verified", verified);
}

static json_t *invalid_citation_json(int n)
{
    return json_pack("{s:i, s:n, s:n, s:n, s:n, s:n, s:n, s:n, s:n, s:n, s:n, s:n, s:b}", "n", n,
                     "source", "id", "segment", "t0_ms", "t1_ms", "person", "speaker", "label",
                     "time", "quote", "url", "verified", 0);
}

/* The extractive answer: each source's best passage, cited. */
static void extractive(FILE *out, const struct lucy_ask_retrieval *r,
                       const struct lucy_ask_filters *f)
{
    if (r->n == 0 && f->unknown_person[0]) {
        fprintf(out,
                "I know no one called %s, so I cannot tell which call is theirs. The people "
                "I know are listed under People (GET /people?q=).",
                f->unknown_person);
        return;
    }
    if (r->n == 0) {
        fputs("I found nothing in your recordings and messages about that.", out);
        return;
    }
    fputs("The best passages I found:\n", out);
    for (size_t i = 0; i < r->n; i++) {
        const char *q = r->src[i].quote;
        size_t len = strlen(q);
        if (len > QUOTE_MAX_BYTES) { /* cut at a UTF-8 boundary */
            len = QUOTE_MAX_BYTES;
            while (len > 0 && ((unsigned char)q[len] & 0xC0) == 0x80)
                len--;
        }
        fprintf(out, "\n- %s: \xe2\x80\x9c%.*s%s\xe2\x80\x9d [%zu]", r->src[i].label, (int)len, q,
                len < strlen(q) ? "\xe2\x80\xa6" : "", i + 1);
    }
}

static json_t *time_json(int64_t s, int64_t open)
{
    if (s == open)
        return json_null();
    char iso[40], human[48];
    lucy_ask_iso_local(s, iso, sizeof iso, human, sizeof human);
    return json_string(iso);
}

static json_t *filters_json(const struct lucy_ask_filters *f)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "person",
                        f->person.id ? json_pack("{s:I, s:s, s:s, s:s}", "id",
                                                 (json_int_t)f->person.id, "name", f->person.name,
                                                 "matched", f->person.matched, "by", f->person.how)
                                     : json_null());
    json_object_set_new(o, "time_phrase",
                        f->time.phrase[0] ? json_string(f->time.phrase) : json_null());
    json_object_set_new(o, "time_not_understood",
                        f->time.not_understood[0] ? json_string(f->time.not_understood)
                                                  : json_null());
    json_object_set_new(o, "from", time_json(f->time.from_s, INT64_MIN));
    json_object_set_new(o, "to", time_json(f->time.to_s, INT64_MAX));
    json_object_set_new(o, "latest", json_boolean(f->time.latest));
    json_object_set_new(o, "unknown_person",
                        f->unknown_person[0] ? json_string(f->unknown_person) : json_null());
    json_object_set_new(o, "source", f->time.latest ? json_string("call_recording") : json_null());
    return o;
}

/* ---- the run ------------------------------------------------------------------ */

/* "the latest call with X" that named no known person: X (the words after
 * the last "with", up to punctuation) into out, else "". Answering with
 * anyone's latest call instead would be about someone else. */
static void unknown_person(const char *question, char *out, size_t outlen)
{
    out[0] = '\0';
    const char *with = NULL;
    for (const char *p = question; (p = strcasestr(p, "with ")); p += 5)
        if (p == question || p[-1] == ' ')
            with = p + 5;
    if (!with)
        return;
    size_t len = strcspn(with, "?.!,;:\"");
    while (len > 0 && with[len - 1] == ' ')
        len--;
    if (len > 0 && len < outlen)
        snprintf(out, outlen, "%.*s", (int)len, with);
}

struct person_arg {
    const char *question;
    const char *region;
    struct lucy_ask_person *out;
    int64_t id; /* read_person_by_id: the person given */
};

static int read_person(sqlite3 *db, void *arg)
{
    struct person_arg *p = arg;
    return lucy_ask_person_find(db, p->question, p->region, p->out);
}

/* A person given by id (MCP's `ask`): named in the filters, no words of
 * the question skipped. */
static int read_person_by_id(sqlite3 *db, void *arg)
{
    struct person_arg *p = arg;
    json_t *o = NULL;
    int rc = lucy_people_json(db, p->id, 0, &o);
    if (rc)
        return rc;
    p->out->id = p->id;
    snprintf(p->out->name, sizeof p->out->name, "%s",
             json_string_value(json_object_get(o, "name")) ?: "");
    p->out->how = "id";
    json_decref(o);
    return 0;
}

int lucy_ask_request_check(const struct lucy_ask_request *rq, char *err, size_t errlen)
{
    size_t history = 0;
    for (size_t i = 0; i < rq->n_history; i++)
        history += rq->history[i].content ? strlen(rq->history[i].content) : 0;
    if (!rq->question || !*rq->question)
        snprintf(err, errlen,
                 "the question is empty: ask something, e.g. \"what did John say "
                 "about the invoice last week?\"");
    else if (strlen(rq->question) > LUCY_ASK_QUESTION_MAX)
        snprintf(err, errlen, "the question is %zu bytes; at most %d are read: ask it shorter",
                 strlen(rq->question), LUCY_ASK_QUESTION_MAX);
    else if (rq->n_history > LUCY_ASK_HISTORY_MAX || history > LUCY_ASK_HISTORY_MAX_LEN)
        snprintf(err, errlen,
                 "the conversation is too long (%zu earlier messages, %zu bytes; at most %d and "
                 "%d): start a new one",
                 rq->n_history, history, LUCY_ASK_HISTORY_MAX, LUCY_ASK_HISTORY_MAX_LEN);
    else
        return 0;
    return LUCY_EINVAL;
}

int lucy_ask_run(struct lucy_ask *a, const struct lucy_ask_request *rq, char **answer,
                 json_t **lucy_out, char *err, size_t errlen)
{
    *answer = NULL;
    *lucy_out = NULL;
    int rc = lucy_ask_request_check(rq, err, errlen);
    if (rc)
        return rc;
    struct lucy_ask_filters f;
    memset(&f, 0, sizeof f);
    int64_t now_s = (rq->now_ms ? rq->now_ms : lucy_wall_ms()) / 1000;
    lucy_ask_time_parse(rq->question, now_s, &f.time);
    if (rq->range_given) {
        if (rq->from_s > rq->to_s) {
            snprintf(err, errlen, "from is later than to: swap them or leave one out");
            return LUCY_EINVAL;
        }
        f.time.from_s = rq->from_s, f.time.to_s = rq->to_s;
        snprintf(f.time.phrase, sizeof f.time.phrase, "given by the caller");
    }
    if (rq->person) {
        struct person_arg pa = {.id = rq->person, .out = &f.person};
        if ((rc = lucy_store_read(a->store, read_person_by_id, &pa)) != 0) {
            if (rc == LUCY_ENOTFOUND)
                snprintf(err, errlen, "no person %lld: a search hit or list_calls gives ids",
                         (long long)rq->person);
            return rc;
        }
    } else {
        struct person_arg pa = {rq->question, a->region, &f.person, 0};
        if (lucy_store_read(a->store, read_person, &pa) != 0)
            memset(&f.person, 0, sizeof f.person); /* nobody named: no person filter */
    }
    if (!f.person.id && f.time.latest)
        unknown_person(rq->question, f.unknown_person, sizeof f.unknown_person);
    size_t max = rq->max_sources > 0 && rq->max_sources <= LUCY_ASK_SOURCES_MAX
                     ? (size_t)rq->max_sources
                     : LUCY_ASK_SOURCES_MAX;
    struct lucy_ask_retrieval r = {0};
    if (!f.unknown_person[0] && (rc = lucy_ask_retrieve(a, rq->question, &f, max, &r)) != 0)
        return rc;

    /* Ask the LLM. */
    const char *llm_state = a->llm ? "used" : "not_configured";
    char llm_error[384] = "";
    char *llm_text = NULL;
    if (a->llm && r.n == 0) {
        llm_state = "unavailable";
        snprintf(llm_error, sizeof llm_error, "nothing was found, so the LLM was not asked");
    } else if (a->llm) {
        char *user = lucy_ask_user_prompt(rq->question, &r);
        struct lucy_llm_message *msgs = calloc(rq->n_history + 2, sizeof *msgs);
        if (!user || !msgs) {
            free(user);
            free(msgs);
            lucy_ask_retrieval_free(&r);
            return LUCY_ENOMEM;
        }
        size_t n = 0;
        msgs[n++] = (struct lucy_llm_message){"system", lucy_ask_system_prompt()};
        for (size_t i = 0; i < rq->n_history; i++)
            msgs[n++] = rq->history[i];
        msgs[n++] = (struct lucy_llm_message){"user", user};
        struct lucy_llm_chat_request cr = {.messages = msgs,
                                           .n_messages = n,
                                           .on_token = rq->on_token,
                                           .token_arg = rq->token_arg};
        int lrc = lucy_llm_chat(a->llm, &cr, &llm_text, llm_error, sizeof llm_error);
        free(msgs);
        free(user);
        if (lrc == LUCY_ENOMEM) {
            lucy_ask_retrieval_free(&r);
            return lrc;
        }
        if (lrc)
            llm_state = "unavailable";
    }

    /* Verify, and decide what the answer is. */
    const char *sources[LUCY_ASK_SOURCES_MAX];
    for (size_t i = 0; i < r.n; i++)
        sources[i] = r.src[i].text;
    struct lucy_ask_check c;
    lucy_ask_verify(llm_text, sources, r.n, &c);
    if (llm_text && c.n_valid == 0 && c.n_invalid == 0) {
        llm_state = "unavailable";
        snprintf(llm_error, sizeof llm_error,
                 "the LLM's answer cited none of the sources, so it was replaced by the passages "
                 "found");
        free(llm_text);
        llm_text = NULL;
    }
    json_t *citations = json_array();
    char *buf = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&buf, &size);
    int all_verified = 1;
    if (!citations || !out) {
        rc = LUCY_ENOMEM;
    } else if (!llm_text) {
        extractive(out, &r, &f);
        for (size_t i = 0; i < r.n; i++)
            json_array_append_new(citations, citation_json(rq, i + 1, &r.src[i], 1));
        /* Said in the text itself: OpenAI clients and chat UIs show the
         * content, not retrieval.llm. */
        if (r.n > 0 && !a->llm)
            fputs("\n\n(No language model is configured (LUCY_LLM_URL), so lucy quotes the "
                  "passages it found instead of answering.)",
                  out);
        else if (r.n > 0)
            fprintf(out,
                    "\n\n(The language model could not answer (%s), so lucy quotes the passages "
                    "it found instead.)",
                    llm_error[0] ? llm_error : "no reason given");
    } else {
        fputs(llm_text, out);
        for (size_t n = 1; n <= r.n; n++) {
            int ok = c.quote_bad[n] == 0;
            if (c.cited[n] || c.n_valid == 0)
                json_array_append_new(citations,
                                      citation_json(rq, n, &r.src[n - 1], c.cited[n] ? ok : 1));
            all_verified &= ok;
        }
        for (int i = 0; i < c.n_invalid; i++)
            json_array_append_new(citations, invalid_citation_json(c.invalid[i]));
        if (c.n_invalid || c.unattributed_quotes || !all_verified) {
            all_verified = 0;
            fputs("\n\n(lucy could not verify this answer:", out);
            for (int i = 0; i < c.n_invalid; i++)
                fprintf(out, " [%d] names no source (there %s %zu);", c.invalid[i],
                        r.n == 1 ? "is" : "are", r.n);
            for (size_t n = 1; n <= r.n; n++)
                if (c.quote_bad[n])
                    fprintf(out, " a quote attributed to [%zu] is not in that source;", n);
            if (c.unattributed_quotes)
                fprintf(out, " %d quote%s cite%s no source;", c.unattributed_quotes,
                        c.unattributed_quotes == 1 ? "" : "s",
                        c.unattributed_quotes == 1 ? "s" : "");
            fputs(" check the cited passages.)", out);
        }
        if (c.n_valid == 0) {
            fputs("\n\n", out);
            extractive(out, &r, &f);
        }
    }
    if (out && f.time.not_understood[0])
        fprintf(out,
                "\n\n(lucy did not understand \xe2\x80\x9c%s\xe2\x80\x9d: the calendar has no such "
                "day, so "
                "no time filter came from it; ask again with a day that exists.)",
                f.time.not_understood);
    if (out && fclose(out) != 0)
        rc = LUCY_ENOMEM;
    json_t *retrieval =
        json_pack("{s:s, s:s, s:o, s:s, s:b, s:s?, s:s, s:s?, s:s?, s:i}", "query", rq->question,
                  "words", r.words, "filters", filters_json(&f), "backend", r.backend, "degraded",
                  r.degraded, "degraded_reason", r.degraded ? r.degraded_reason : NULL, "llm",
                  llm_state, "llm_error", llm_error[0] ? llm_error : NULL, "model",
                  a->llm ? lucy_llm_model(a->llm) : NULL, "sources", (int)r.n);
    json_t *lucy = retrieval && rc == 0
                       ? json_pack("{s:o, s:b, s:o}", "citations", citations, "verified",
                                   all_verified, "retrieval", retrieval)
                       : NULL;
    if (!lucy) {
        if (rc == 0) {
            json_decref(citations);
            json_decref(retrieval);
        }
        free(buf);
        rc = LUCY_ENOMEM;
    } else {
        *answer = buf;
        *lucy_out = lucy;
    }
    free(llm_text);
    lucy_ask_retrieval_free(&r);
    return rc;
}
