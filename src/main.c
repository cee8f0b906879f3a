/*
 * main.c - the `lucy` command: a table of subcommands (DESIGN §3).
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "config.h"
#include "http/http.h"
#include "log.h"
#include "lucy.h"
#include "utf8.h"

static const struct {
    const char *name;                 /* subcommand */
    int (*fn)(int argc, char **argv); /* gets argv after the name */
    const char *usage;                /* arguments */
    const char *summary;              /* one line */
} commands[] = {
    {"serve", lucy_cmd_serve,
     "[--config FILE] [--listen ADDR:PORT] [--data DIR] [--recordings DIR]...", "run the daemon"},
    {"healthcheck", lucy_cmd_healthcheck, "[--live|--ready] | --url URL",
     "GET /health/live (default; --ready: /health/ready) on LUCY_LISTEN, or the full URL given "
     "by --url; exit 0 on HTTP 200 within 3 s, 1 when not, 2 on a usage error (for Docker "
     "HEALTHCHECK)"},
    {"scan", lucy_cmd_scan,
     "[DIR...] [--json] | --ledger [--json] | --probe FILE... | --hash FILE...",
     "scan recording folders once (default LUCY_RECORDINGS_DIRS) and print the summary; "
     "--ledger: print the files not made recordings of, why and what to do"},
    {"transcribe", lucy_cmd_transcribe,
     "FILE [--engine NAME] [--model PATH] [--chunk-s N] [--channels me,them|them,me|mix] "
     "[--json]",
     "decode one audio file and print its transcript (a stereo call per channel, with "
     "speakers)"},
    {"search", lucy_cmd_search,
     "QUERY [--source call_recording|whatsapp] [--contact C] [--person ID] [--from T] [--to T] "
     "[--limit N] [--flat] [--json]",
     "search the local index (no server needed), one entry per conversation (--flat: per "
     "document); T = Unix seconds or ISO 8601"},
    {"ask", lucy_cmd_ask, "QUESTION [--json]",
     "answer a question from the recordings and messages with numbered, checked sources (the "
     "engine of GET /ask; LUCY_LLM_URL writes the answer, else the best passages)"},
    {"stats", lucy_cmd_stats, "[--json]", "print what GET /rag/stats returns"},
    {"reindex", lucy_cmd_reindex, "[--json]", "rebuild the search index from the stored documents"},
    {"kv", lucy_cmd_kv,
     "ping|persistence|replay | get KEY | del KEY | set KEY VALUE [--ttl-ms N] | "
     "setnx KEY VALUE --ttl-ms N | ratelimit KEY [--burst N]",
     "use the key-value backend (REDIS_URL, else the local store) from the command line"},
    {"doctor", lucy_cmd_doctor, "[--json] [--fix]",
     "check disk, store, backlogs, Redis, Qdrant and the scanner; say what to do (exit 1 when "
     "something needs attention); --fix applies the safe fixes"},
    {"backup", lucy_cmd_backup, "DEST [--json]",
     "an online, checked copy of the store into DEST (a folder: lucy-<UTC time>.db; or a file) "
     "while lucy serve keeps serving"},
    {"restore", lucy_cmd_restore, "SRC [--json]",
     "put a backup in place of the store (refused while lucy serve runs; the old database is "
     "moved aside, not deleted)"},
    {"export", lucy_cmd_export, "DIR [--person ID] [--from T] [--to T] [--json]",
     "write one Markdown and one JSON file per conversation (a call; a person's messages on one "
     "day) into DIR, also while lucy serve runs; T = Unix seconds or ISO 8601"},
    {"version", lucy_cmd_version, "", "print the version"},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

void lucy_cmd_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("lucy: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void lucy_cmd_fail(int as_json, int err, const char *advice, const char *fmt, ...)
{
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    lucy_cmd_error("%s; %s", message, advice);
    if (!as_json)
        return;
    /* A path in the message may not be UTF-8, which JSON requires. */
    char *text = lucy_utf8_display(message, strlen(message));
    json_t *o =
        json_pack("{s:s,s:s,s:s}", "error_type", lucy_http_error_name(lucy_http_error_of(err)),
                  "message", text ? text : "(message lost: out of memory)", "advice", advice);
    char *out = o ? json_dumps(o, JSON_COMPACT) : NULL;
    printf("%s\n", out ? out : "{\"error_type\":\"internal\",\"message\":\"out of memory\"}");
    free(out);
    json_decref(o);
    free(text);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: lucy COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  lucy %s %s\n      %s\n", commands[i].name, commands[i].usage,
                commands[i].summary);
    fprintf(out, "\nconfiguration: environment variables (see README), --config FILE, flags\n");
}

int lucy_cmd_config(struct lucy_config *cfg, int argc, char **argv,
                    int (*own_flag)(const char *arg, const char *next, void *state), void *state,
                    const char **positional, int max_positional, int *n_positional)
{
    char err[512];
    if (lucy_config_load(cfg, argc, argv, err, sizeof err) != 0) {
        lucy_cmd_error("%s", err);
        return LUCY_EXIT_USAGE;
    }
    *n_positional = 0;
    for (int i = 0; i < argc;) {
        int rc = lucy_config_flag(cfg, argc, argv, &i, err, sizeof err);
        if (rc < 0) {
            lucy_cmd_error("%s", err);
            return LUCY_EXIT_USAGE;
        }
        if (rc > 0)
            continue;
        /* --name=value is --name value, for every command's own flags as
         * for the config flags (lucy_config_flag): the value points into
         * argv, which outlives the command like a separate value does */
        const char *eq = strncmp(argv[i], "--", 2) == 0 ? strchr(argv[i], '=') : NULL;
        char name[64];
        if (eq && (size_t)(eq - argv[i]) >= sizeof name) {
            lucy_cmd_error("unknown option %s; see `lucy help`", argv[i]);
            return LUCY_EXIT_USAGE;
        }
        if (eq)
            snprintf(name, sizeof name, "%.*s", (int)(eq - argv[i]), argv[i]);
        int used = !own_flag ? 0
                   : eq      ? own_flag(name, eq + 1, state)
                             : own_flag(argv[i], i + 1 < argc ? argv[i + 1] : NULL, state);
        if (used < 0)
            return LUCY_EXIT_USAGE;
        if (eq && used == 1) { /* a flag without a value, given one */
            lucy_cmd_error("%s takes no value; see `lucy help`", name);
            return LUCY_EXIT_USAGE;
        }
        if (used > 0) {
            i += eq ? 1 : used;
            continue;
        }
        if (argv[i][0] == '-' && argv[i][1]) {
            lucy_cmd_error("unknown option %s; see `lucy help`", eq ? name : argv[i]);
            return LUCY_EXIT_USAGE;
        }
        if (*n_positional >= max_positional) {
            lucy_cmd_error("unexpected argument '%s'; see `lucy help`", argv[i]);
            return LUCY_EXIT_USAGE;
        }
        positional[(*n_positional)++] = argv[i++];
    }
    if (lucy_config_finish(cfg, err, sizeof err) != 0) {
        lucy_cmd_error("%s", err);
        return LUCY_EXIT_USAGE;
    }
    enum lucy_log_level level;
    if (lucy_log_level_parse(cfg->log_level, &level) == 0)
        lucy_log_set_level(level);
    return 0;
}

int lucy_cmd_json_flag(const char *arg, const char *next, void *state)
{
    (void)next;
    if (strcmp(arg, "--json") != 0)
        return 0;
    *(int *)state = 1;
    return 1;
}

int lucy_cmd_version(int argc, char **argv)
{
    (void)argv;
    if (argc > 0) {
        lucy_cmd_error("version takes no arguments");
        return LUCY_EXIT_USAGE;
    }
    printf("lucy %s\n", LUCY_VERSION);
    return LUCY_EXIT_OK;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return LUCY_EXIT_USAGE;
    }
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return LUCY_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0)
        return lucy_cmd_version(0, NULL);
    /* A media process of `lucy serve` (src/media/remote.c); not in help. */
    if (strcmp(argv[1], "media-worker") == 0)
        return lucy_cmd_media_worker(argc - 2, argv + 2);
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(argv[1], commands[i].name) == 0) {
            /* `lucy CMD --help` anywhere among its arguments: that command's usage */
            for (int a = 2; a < argc; a++)
                if (strcmp(argv[a], "--help") == 0 || strcmp(argv[a], "-h") == 0) {
                    printf("usage: lucy %s %s\n  %s\n\nconfiguration: environment variables "
                           "(see README), --config FILE, flags\n",
                           commands[i].name, commands[i].usage, commands[i].summary);
                    return LUCY_EXIT_OK;
                }
            /* libcurl is opened by its first user (src/http/libcurl.h) */
            return commands[i].fn(argc - 2, argv + 2);
        }
    lucy_cmd_error("unknown command '%s'; run `lucy help` for the list", argv[1]);
    return LUCY_EXIT_USAGE;
}
