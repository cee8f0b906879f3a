/*
 * search.c - `lucy search QUERY [--source S] [--contact C] [--person ID]
 * [--from T] [--to T] [--limit N] [--flat] [--json]`: searches the configured index without a
 * server: the embedded FTS5 index in DATA_DIR/lucy.db, or Qdrant when
 * QDRANT_URL is set (falling back to the local FTS5 copy, "degraded",
 * when Qdrant does not answer or has not taken every document yet; the
 * reason goes to stderr); safe while `lucy serve` runs (SQLite WAL
 * readers never block the daemon).
 *
 * Also holds lucy_cmd_open_index(), shared by `lucy stats` and
 * `lucy reindex`.
 *
 * Output: a numbered list of conversations (a recording, a person's
 * messages on one day), best first, each with its best hits, who spoke
 * ("said by me", "said by person N", "from person N": the speakers of
 * lucy_transcript_hit_lookup, registered here as the daemon's plugin
 * does) and the snippet's marked words in [brackets]; --flat lists
 * documents one by one
 * as before; --json prints the same document as GET /search (?group=0
 * with --flat).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../config.h"
#include "../error.h"
#include "../index/index.h"
#include "../plugins/call_recordings/transcript.h"
#include "../store/store.h"
#include "cmd.h"

#define MAX_WORDS 32

int lucy_cmd_open_index(const struct lucy_config *cfg, int local_only, struct lucy_store **store,
                        struct lucy_index **ix)
{
    char err[512];
    struct stat sb;
    *store = NULL;
    *ix = NULL;
    if (stat(cfg->data_dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        lucy_cmd_error("no data directory at %s: point --data (or LUCY_DATA_DIR) at lucy's data "
                       "directory",
                       cfg->data_dir);
        return LUCY_EXIT_FAILED;
    }
    if (lucy_store_open(cfg->data_dir, store, err, sizeof err) != 0) {
        lucy_cmd_error("%s", err);
        return LUCY_EXIT_FAILED;
    }
    int rc = local_only
                 ? lucy_index_open_backend(&lucy_index_sqlite, cfg, *store, ix, err, sizeof err)
                 : lucy_index_open(cfg, *store, ix, err, sizeof err);
    if (rc) {
        lucy_cmd_error("cannot open the search index: %s", err);
        lucy_store_close(*store);
        *store = NULL;
        return LUCY_EXIT_FAILED;
    }
    return 0;
}

struct search_flags {
    const char *source, *contact, *person, *from, *to, *limit; /* as given */
    int json;                                                  /* --json */
    int flat;                                                  /* --flat */
};

static int search_flag(const char *arg, const char *next, void *state)
{
    struct search_flags *f = state;
    static const struct {
        const char *flag;
        size_t offset;
    } with_value[] = {
        {"--source", offsetof(struct search_flags, source)},
        {"--contact", offsetof(struct search_flags, contact)},
        {"--person", offsetof(struct search_flags, person)},
        {"--from", offsetof(struct search_flags, from)},
        {"--to", offsetof(struct search_flags, to)},
        {"--limit", offsetof(struct search_flags, limit)},
    };
    static const struct {
        const char *flag;
        size_t offset;
    } switches[] = {
        {"--json", offsetof(struct search_flags, json)},
        {"--flat", offsetof(struct search_flags, flat)},
    };
    for (size_t i = 0; i < sizeof switches / sizeof switches[0]; i++)
        if (strcmp(arg, switches[i].flag) == 0) {
            *(int *)((char *)f + switches[i].offset) = 1;
            return 1;
        }
    for (size_t i = 0; i < sizeof with_value / sizeof with_value[0]; i++) {
        if (strcmp(arg, with_value[i].flag) != 0)
            continue;
        if (!next) {
            lucy_cmd_error("%s needs a value; see `lucy help`", arg);
            return -1;
        }
        *(const char **)((char *)f + with_value[i].offset) = next;
        return 2;
    }
    return 0;
}

/* The snippet for a terminal: entities decoded, marks as [brackets]. */
static void print_plain(const char *html)
{
    static const struct {
        const char *from, *to;
    } map[] = {{"<mark>", "["}, {"</mark>", "]"}, {"&amp;", "&"},
               {"&lt;", "<"},   {"&gt;", ">"},    {"&quot;", "\""}};
    for (const char *p = html; p && *p;) {
        size_t i = 0, n = sizeof map / sizeof map[0];
        while (i < n && strncmp(p, map[i].from, strlen(map[i].from)) != 0)
            i++;
        if (i < n) {
            fputs(map[i].to, stdout);
            p += strlen(map[i].from);
        } else {
            fputc(*p++, stdout);
        }
    }
}

static void print_offset(int64_t ms)
{
    printf("%lld:%02lld", (long long)(ms / 60000), (long long)(ms / 1000 % 60));
}

/* One hit: its heading line (numbered when n > 0), then snippet and key
 * indented by indent spaces. */
static void print_hit(const struct lucy_search_hit *h, size_t n, int indent)
{
    char when[32] = "";
    time_t t = (time_t)h->time_s;
    struct tm tm;
    if (h->time_s && gmtime_r(&t, &tm))
        strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", &tm);
    if (n)
        printf("%zu. %s  %s", n, h->source, h->title ? h->title : h->id);
    else
        printf("%*s-", indent - 2, "");
    if (n && h->contact)
        printf("  (%s)", h->contact);
    if (*when)
        printf("  %s", when);
    if (strcmp(h->source, "call_recording") == 0) {
        printf("  at ");
        print_offset(h->t0_ms);
        printf("-");
        print_offset(h->t1_ms);
    }
    if (h->speaker == LUCY_SPEAKER_ME)
        printf("  said by me");
    else if (h->speaker > 0)
        printf("  %s person %lld", strcmp(h->source, "whatsapp") == 0 ? "from" : "said by",
               (long long)h->speaker);
    printf("  score %.3g\n%*s", h->score, indent, "");
    print_plain(h->snippet);
    printf("\n%*sid %s segment %d\n", indent, "", h->id, h->segment);
}

static void print_hits(const char *query, const struct lucy_search_result *r, int grouped)
{
    if ((grouped ? r->n_groups : r->n) == 0) {
        printf("no matches for \"%s\"\n", query);
        return;
    }
    if (!grouped) {
        for (size_t i = 0; i < r->n; i++)
            print_hit(&r->hits[i], i + 1, 3);
        return;
    }
    for (size_t g = 0; g < r->n_groups; g++) {
        const struct lucy_search_group *gr = &r->groups[g];
        const struct lucy_search_hit *best = &r->hits[gr->first];
        printf("%zu. %s  %s  (%zu hit%s)\n", g + 1, best->source,
               best->title ? best->title : best->id, gr->n + gr->more,
               gr->n + gr->more == 1 ? "" : "s");
        for (size_t i = 0; i < gr->n; i++)
            print_hit(&r->hits[gr->first + i], 0, 5);
        if (gr->more)
            printf("   ... %zu more\n", gr->more);
    }
}

int lucy_cmd_search(int argc, char **argv)
{
    struct lucy_config cfg;
    struct search_flags f = {0};
    const char *words[MAX_WORDS];
    int n_words = 0;
    int rc = lucy_cmd_config(&cfg, argc, argv, search_flag, &f, words, MAX_WORDS, &n_words);
    if (rc)
        goto out_cfg;
    rc = LUCY_EXIT_USAGE;
    char query[2048] = "";
    for (int i = 0; i < n_words; i++) {
        size_t len = strlen(query);
        snprintf(query + len, sizeof query - len, "%s%s", i ? " " : "", words[i]);
    }
    struct lucy_search_query q = {.q = query,
                                  .source = f.source,
                                  .contact = f.contact,
                                  .from_s = INT64_MIN,
                                  .to_s = INT64_MAX,
                                  .limit = LUCY_SEARCH_LIMIT_DEFAULT};
    if (n_words == 0 || strspn(query, " \t") == strlen(query)) {
        lucy_cmd_error("give the words to search for, e.g. `lucy search invoice`");
        goto out_cfg;
    }
    if (f.source && !lucy_index_known_source(f.source)) {
        lucy_cmd_error("--source must be call_recording or whatsapp");
        goto out_cfg;
    }
    if ((f.from && lucy_index_parse_time(f.from, 0, &q.from_s)) ||
        (f.to && lucy_index_parse_time(f.to, 1, &q.to_s))) {
        lucy_cmd_error("--from/--to take Unix seconds or an ISO 8601 date or time, e.g. "
                       "2024-05-31 or 2024-05-31T14:00:00Z");
        goto out_cfg;
    }
    if (f.limit) {
        char *end;
        errno = 0;
        long v = strtol(f.limit, &end, 10);
        if (errno || *end || end == f.limit || v < 1 || v > LUCY_SEARCH_LIMIT_MAX) {
            lucy_cmd_error("--limit must be a whole number from 1 to %d", LUCY_SEARCH_LIMIT_MAX);
            goto out_cfg;
        }
        q.limit = (int)v;
    }

    int64_t person = 0;
    if (f.person) {
        char *end;
        errno = 0;
        long long v = strtoll(f.person, &end, 10);
        if (errno || *end || end == f.person || v < 1) {
            lucy_cmd_error("--person takes a person's id, as `GET /people` lists them");
            goto out_cfg;
        }
        person = v;
    }

    struct lucy_store *store;
    struct lucy_index *ix;
    rc = lucy_cmd_open_index(&cfg, 0, &store, &ix);
    if (rc)
        goto out_cfg;
    /* who spoke, as the daemon's call_recordings plugin registers it */
    lucy_index_set_hit_lookup(ix, "call_recording", lucy_transcript_hit_lookup);
    char **contacts = NULL, **recordings = NULL;
    struct lucy_search_result r = {0};
    int err = 0;
    if (person) {
        err = lucy_index_person_ids(ix, person, &contacts, &q.n_contacts, &recordings,
                                    &q.n_recordings);
        q.restrict_ids = 1;
        q.contacts = (const char *const *)contacts;
        q.recordings = (const char *const *)recordings;
    }
    if (err == 0)
        err = f.flat ? lucy_index_search(ix, &q, &r)
                     : lucy_index_search_grouped(ix, &q, LUCY_SEARCH_PER_GROUP_DEFAULT, &r);
    lucy_index_strv_free(contacts);
    lucy_index_strv_free(recordings);
    if (err == LUCY_ENOTFOUND && person) {
        lucy_cmd_error("no person %lld; `GET /people` lists them", (long long)person);
        rc = LUCY_EXIT_FAILED;
    } else if (err) {
        lucy_cmd_error("search failed: %s", lucy_strerror(err));
        rc = LUCY_EXIT_FAILED;
    } else if (f.json) {
        json_t *doc = lucy_search_result_json(query, &r, !f.flat);
        char *text = doc ? json_dumps(doc, JSON_INDENT(2)) : NULL;
        printf("%s\n", text ? text : "{}");
        free(text);
        json_decref(doc);
        rc = LUCY_EXIT_OK;
    } else {
        if (r.degraded) /* stderr: the hits on stdout stay the same shape */
            fprintf(stderr, "degraded: %s\n", r.degraded_reason);
        print_hits(query, &r, !f.flat);
        rc = LUCY_EXIT_OK;
    }
    lucy_search_result_free(&r);
    lucy_index_close(ix);
    lucy_store_close(store);
out_cfg:
    lucy_config_free(&cfg);
    return rc;
}
