/*
 * verify.c - does an answer cite what it was given, and say what its
 * sources say? (DESIGN §14, "Generation"). Pure.
 *
 * The answer is read once, left to right, into citation groups ("[1]",
 * "[1, 2]"; "[1][2]" is two groups) and quoted spans ("..." or “...”).
 * A quote belongs to the first citation group after it in the same
 * sentence, else to the last one before it in that sentence; a sentence
 * ends at '.', '!', '?' or a newline outside quotes. A quote holds when
 * its words occur in a row in one of its group's sources, comparing
 * lower-case words only (lucy_ask_text_contains), so a changed comma or
 * capital does not make a faithful quote false.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "ask.h"

#define MAX_GROUPS      64
#define MAX_QUOTES      32
#define GROUP_NUMS      8
#define QUOTE_WORDS_MIN 2

struct group {
    size_t at;       /* offset of '[' */
    size_t sentence; /* sentence number */
    int nums[GROUP_NUMS];
    int n;
};

struct quote {
    size_t from, to; /* the span inside the quote marks */
    size_t sentence;
};

/* Normalises s into lower-case words separated by one space, with a space
 * before and after: " word word ". malloc'd; NULL on allocation failure. */
static char *words_of(const char *s, size_t len)
{
    char *out = malloc(len + 3);
    if (!out)
        return NULL;
    size_t o = 0;
    out[o++] = ' ';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isalnum(c) || c >= 0x80)
            out[o++] = (char)tolower(c);
        else if (out[o - 1] != ' ')
            out[o++] = ' ';
    }
    if (out[o - 1] != ' ')
        out[o++] = ' ';
    out[o] = '\0';
    return out;
}

int lucy_ask_text_contains(const char *haystack, const char *needle)
{
    char *h = words_of(haystack, strlen(haystack));
    char *n = words_of(needle, strlen(needle));
    int found = h && n && strcmp(n, " ") != 0 && strstr(h, n) != NULL;
    free(h);
    free(n);
    return found;
}

static int word_count(const char *s, size_t len)
{
    char *w = words_of(s, len);
    int n = 0;
    for (const char *p = w ? w + 1 : ""; *p; p++)
        n += *p == ' ';
    free(w);
    return n;
}

/* Opening quote mark at s? Returns its length (1 or 3) and the closing
 * mark in *close. */
static size_t open_quote(const char *s, const char **close)
{
    if (*s == '"') {
        *close = "\"";
        return 1;
    }
    if (strncmp(s, "\xe2\x80\x9c", 3) == 0) { /* “ ... ” */
        *close = "\xe2\x80\x9d";
        return 3;
    }
    return 0;
}

/* A citation group at s ("[" digits (", " digits)* "]")? Fills g, returns
 * its length or 0. */
static size_t citation(const char *s, struct group *g)
{
    const char *p = s + 1;
    g->n = 0;
    for (;;) {
        while (*p == ' ')
            p++;
        if (!isdigit((unsigned char)*p))
            return 0;
        long v = strtol(p, (char **)&p, 10);
        if (g->n < GROUP_NUMS)
            g->nums[g->n++] = v > 1000 ? 1000 : (int)v;
        while (*p == ' ')
            p++;
        if (*p == ']')
            return (size_t)(p + 1 - s);
        if (*p != ',')
            return 0;
        p++;
    }
}

static void note_invalid(struct lucy_ask_check *c, int n)
{
    for (int i = 0; i < c->n_invalid; i++)
        if (c->invalid[i] == n)
            return;
    if (c->n_invalid < (int)(sizeof c->invalid / sizeof c->invalid[0]))
        c->invalid[c->n_invalid++] = n;
}

void lucy_ask_verify(const char *answer, const char *const *sources, size_t n_sources,
                     struct lucy_ask_check *c)
{
    memset(c, 0, sizeof *c);
    if (n_sources > LUCY_ASK_SOURCES_MAX)
        n_sources = LUCY_ASK_SOURCES_MAX;
    struct group groups[MAX_GROUPS];
    struct quote quotes[MAX_QUOTES];
    size_t n_groups = 0, n_quotes = 0, sentence = 0;
    const char *s = answer ? answer : "";
    for (size_t i = 0; s[i];) {
        const char *close;
        size_t ol = open_quote(s + i, &close);
        struct group g;
        size_t gl;
        if (ol) {
            const char *end = strstr(s + i + ol, close);
            if (!end) { /* an unclosed quote runs to the end */
                i += ol;
                continue;
            }
            if (n_quotes < MAX_QUOTES)
                quotes[n_quotes++] = (struct quote){i + ol, (size_t)(end - s), sentence};
            i = (size_t)(end - s) + strlen(close);
        } else if (s[i] == '[' && (gl = citation(s + i, &g)) > 0) {
            g.at = i;
            g.sentence = sentence;
            if (n_groups < MAX_GROUPS)
                groups[n_groups++] = g;
            i += gl;
        } else {
            if (s[i] == '\n' || ((s[i] == '.' || s[i] == '!' || s[i] == '?') &&
                                 (s[i + 1] == '\0' || isspace((unsigned char)s[i + 1]))))
                sentence++;
            i++;
        }
    }
    for (size_t k = 0; k < n_groups; k++)
        for (int j = 0; j < groups[k].n; j++) {
            int n = groups[k].nums[j];
            if (n >= 1 && (size_t)n <= n_sources) {
                c->n_valid += c->cited[n]++ == 0;
            } else {
                note_invalid(c, n);
            }
        }
    for (size_t q = 0; q < n_quotes; q++) {
        size_t len = quotes[q].to - quotes[q].from;
        if (word_count(s + quotes[q].from, len) < QUOTE_WORDS_MIN)
            continue;
        const struct group *g = NULL;
        for (size_t k = 0; k < n_groups && !g; k++)
            if (groups[k].at > quotes[q].to && groups[k].sentence == quotes[q].sentence)
                g = &groups[k];
        for (size_t k = n_groups; k-- > 0 && !g;)
            if (groups[k].at < quotes[q].from && groups[k].sentence == quotes[q].sentence)
                g = &groups[k];
        if (!g) {
            c->unattributed_quotes++;
            continue;
        }
        char *needle = strndup(s + quotes[q].from, len);
        int found = 0;
        for (int j = 0; needle && j < g->n && !found; j++)
            found = g->nums[j] >= 1 && (size_t)g->nums[j] <= n_sources &&
                    lucy_ask_text_contains(sources[g->nums[j] - 1], needle);
        free(needle);
        for (int j = 0; !found && j < g->n; j++)
            if (g->nums[j] >= 1 && (size_t)g->nums[j] <= n_sources)
                c->quote_bad[g->nums[j]]++;
    }
}
