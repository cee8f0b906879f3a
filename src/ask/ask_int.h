/*
 * ask_int.h - what the files of src/ask/ share (not for other modules:
 * they use ask.h).
 */
#ifndef LUCY_ASK_INT_H
#define LUCY_ASK_INT_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "ask.h"

struct lucy_llm;

struct lucy_ask {
    struct lucy_store *store; /* borrowed: people, documents, recording_calls (read only) */
    struct lucy_index *ix;    /* borrowed: BM25 search */
    struct lucy_llm *llm;     /* NULL: no LLM configured */
    char *region;             /* LUCY_DEFAULT_REGION for numbers in questions, or NULL */
    size_t context_bytes;     /* LUCY_LLM_CONTEXT_TOKENS * 4: the sources' budget */
    int seats;                /* answers at once on HTTP pool threads (lucy_ask_seat) */
    int seated;               /* taken now (atomic) */
};

/* ---- person.c ------------------------------------------------------------ */

struct lucy_ask_person {
    int64_t id;        /* 0 = none */
    int64_t candidate; /* (internal) */
    char name[256];    /* display name (lucy_people_json) */
    char matched[256]; /* the words of the question that named it */
    const char *how;   /* "number", "alias", "name" (static) */
};

/* Inside a store read: the person question is about (see person.c). 0,
 * LUCY_ENOTFOUND (nobody named) or a store error. */
int lucy_ask_person_find(sqlite3 *db, const char *question, const char *region,
                         struct lucy_ask_person *out);

/* ---- retrieve.c ----------------------------------------------------------- */

/* One numbered source: a conversation's best passage, widened. */
struct lucy_ask_source {
    char *source, *id;    /* document key of the best hit (malloc'd) */
    int segment;          /* ... */
    char *contact;        /* WhatsApp sender (malloc'd), or NULL */
    int64_t time_s;       /* Unix seconds of the call / message */
    int64_t t0_ms, t1_ms; /* the best hit's offsets (recordings) */
    int64_t person;       /* who the conversation is with; 0 = unknown */
    char speaker[8];      /* a call's best segment: "me", "them", "" = not known */
    char person_name[256];
    char label[384];   /* "call with John Doe · 2024-03-04 10:00 +01:00" */
    char time_iso[40]; /* ISO 8601 with the local offset */
    char *quote;       /* the best hit's own text (malloc'd) */
    char *text;        /* what the LLM reads: the hit with its neighbours (malloc'd) */
};

struct lucy_ask_retrieval {
    struct lucy_ask_source src[LUCY_ASK_SOURCES_MAX];
    size_t n;
    char backend[48];          /* the BM25 index's name, "+dense" when the dense list
                                  took part ("sqlite+dense") */
    int degraded;              /* a fallback index answered, or the dense list could not
                                  (embedding server down, documents waiting for vectors) */
    char degraded_reason[384]; /* why, "" = not degraded */
    char words[1024];          /* the words searched ("" = filters only) */
};

/* The question's filters, as understood. */
struct lucy_ask_filters {
    struct lucy_ask_person person; /* id 0 = none */
    struct lucy_ask_time time;     /* open range = none */
    char unknown_person[64];       /* "the latest call with X" where X is no known
                                      person: nothing is retrieved ("" = none) */
};

/* Retrieves up to max sources for question under f into *r (zeroed first;
 * free with lucy_ask_retrieval_free). A search failure leaves r empty and
 * degraded with the reason. 0 or LUCY_ENOMEM. */
int lucy_ask_retrieve(struct lucy_ask *a, const char *question, const struct lucy_ask_filters *f,
                      size_t max, struct lucy_ask_retrieval *r);
void lucy_ask_retrieval_free(struct lucy_ask_retrieval *r);

/* ---- prompt.c -------------------------------------------------------------- */

/* The system message (static) and the user message for r and question
 * (malloc'd; NULL on allocation failure). Sources are "[n] label" lines,
 * each followed by its text on one line and a blank line. */
const char *lucy_ask_system_prompt(void);
char *lucy_ask_user_prompt(const char *question, const struct lucy_ask_retrieval *r);

/* ---- retrieve.c: dates ------------------------------------------------------ */

/* time_s in the process's zone as ISO 8601 with offset
 * ("2024-03-04T10:00:00+01:00") into iso, and "2024-03-04 10:00 +01:00"
 * into human. */
void lucy_ask_iso_local(int64_t time_s, char *iso, size_t isosize, char *human, size_t hsize);

/* ---- routes.c, plugin.c ------------------------------------------------------- */

struct lucy_http;
struct lucy_plugin;
/* Adds /v1/chat/completions, /v1/models and /ask serving ask (borrowed)
 * to h; *state is routes.c's (free() it after the server stopped). 0 or
 * LUCY_ENOMEM. */
int lucy_ask_routes_add(struct lucy_http *h, struct lucy_ask *ask, void **state);
/* The plugin (src/plugins/plugins.c). */
extern const struct lucy_plugin lucy_ask_plugin;

#endif
