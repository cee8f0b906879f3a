/*
 * ask.c - `lucy ask QUESTION [--json]`: the ask engine (src/ask/) without a
 * server, like `lucy search`: opens the store and the configured index
 * itself (safe while `lucy serve` runs), asks LUCY_LLM_URL when set, and
 * prints the answer with its numbered sources (moment, person, verified),
 * or with --json the `lucy` object of GET /ask plus "answer".
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../ask/ask.h"
#include "../config.h"
#include "../error.h"
#include "../index/index.h"
#include "../store/store.h"
#include "cmd.h"

#define MAX_WORDS 64

static void print_source(json_t *c)
{
    json_int_t t0 = json_integer_value(json_object_get(c, "t0_ms"));
    printf("[%lld] %s%s", (long long)json_integer_value(json_object_get(c, "n")),
           json_string_value(json_object_get(c, "label")) ?: "(no such source)",
           json_is_true(json_object_get(c, "verified")) ? "" : "  (NOT VERIFIED)");
    if (json_is_integer(json_object_get(c, "t0_ms")))
        printf("  at %lld:%02lld", (long long)(t0 / 60000), (long long)(t0 / 1000 % 60));
    if (json_string_value(json_object_get(c, "id")))
        printf("\n    %s %s", json_string_value(json_object_get(c, "source")),
               json_string_value(json_object_get(c, "id")));
    putchar('\n');
}

int lucy_cmd_ask(int argc, char **argv)
{
    struct lucy_config cfg;
    int json = 0;
    const char *words[MAX_WORDS];
    int n_words = 0;
    int rc =
        lucy_cmd_config(&cfg, argc, argv, lucy_cmd_json_flag, &json, words, MAX_WORDS, &n_words);
    if (rc)
        goto out_cfg;
    char question[LUCY_ASK_QUESTION_MAX + 1] = "";
    for (int i = 0; i < n_words; i++) {
        size_t len = strlen(question);
        snprintf(question + len, sizeof question - len, "%s%s", i ? " " : "", words[i]);
    }
    char err[512] = "";
    if (!question[0]) {
        lucy_cmd_error("ask a question, e.g. `lucy ask what did John say about the invoice "
                       "last week`");
        rc = LUCY_EXIT_USAGE;
        goto out_cfg;
    }
    lucy_ask_timezone_apply(&cfg);
    struct lucy_store *store;
    struct lucy_index *ix;
    if ((rc = lucy_cmd_open_index(&cfg, 0, &store, &ix)) != 0)
        goto out_cfg;
    struct lucy_ask *ask = NULL;
    char *answer = NULL;
    json_t *lucy = NULL;
    struct lucy_ask_request rq = {.question = question};
    int e = lucy_ask_open(&cfg, store, ix, &ask);
    if (e == 0)
        e = lucy_ask_run(ask, &rq, &answer, &lucy, err, sizeof err);
    else
        snprintf(err, sizeof err, "%s", lucy_strerror(e));
    if (e) {
        lucy_cmd_error("%s", err[0] ? err : lucy_strerror(e));
        rc = e == LUCY_EINVAL ? LUCY_EXIT_USAGE : LUCY_EXIT_FAILED;
    } else if (json) {
        json_object_set_new(lucy, "question", json_string(question));
        json_object_set_new(lucy, "answer", json_string(answer));
        json_dumpf(lucy, stdout, JSON_INDENT(2));
        putchar('\n');
    } else {
        printf("%s\n\n", answer);
        size_t i;
        json_t *c;
        json_array_foreach(json_object_get(lucy, "citations"), i, c) print_source(c);
        json_t *r = json_object_get(lucy, "retrieval");
        if (strcmp(json_string_value(json_object_get(r, "llm")) ?: "", "used") != 0)
            fprintf(stderr, "lucy: extractive answer (LLM %s%s%s)\n",
                    json_string_value(json_object_get(r, "llm")),
                    json_string_value(json_object_get(r, "llm_error")) ? ": " : "",
                    json_string_value(json_object_get(r, "llm_error")) ?: "");
        if (json_is_true(json_object_get(r, "degraded")))
            fprintf(stderr, "lucy: degraded: %s\n",
                    json_string_value(json_object_get(r, "degraded_reason")) ?: "");
    }
    free(answer);
    json_decref(lucy);
    lucy_ask_close(ask);
    lucy_index_close(ix);
    lucy_store_close(store);
out_cfg:
    lucy_config_free(&cfg);
    return rc;
}
