/*
 * understand.c - what a question asks for, before anything is searched:
 * its time range (the phrase table below) and the words worth searching.
 * The person is found by person.c (it reads the store).
 *
 * A question is cut into tokens: runs of ASCII letters, digits and '-'
 * (lower-cased) and of UTF-8 bytes; everything else separates. Time
 * phrases are rows of phrases[]: the words they start with, and a function
 * that reads what follows and sets the range in the process's time zone
 * (LUCY_TIMEZONE, applied by lucy_ask_timezone_apply). The first phrase
 * found wins; its tokens are not searched for.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../utf8.h"
#include "ask.h"

#define MAX_TOKENS 128
#define TOKEN_MAX  48

struct tokens {
    char w[MAX_TOKENS][TOKEN_MAX]; /* lower-cased words */
    int n;
};

static void tokenize(const char *s, struct tokens *t)
{
    t->n = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p && t->n < MAX_TOKENS) {
        while (*p && !(isalnum(*p) || *p >= 0x80))
            p++;
        size_t len = 0;
        while (*p && (isalnum(*p) || *p >= 0x80 || *p == '-')) {
            if (len + 1 < TOKEN_MAX)
                t->w[t->n][len++] = (char)tolower(*p);
            p++;
        }
        /* A word cut at TOKEN_MAX must not end inside a UTF-8 sequence (the
         * search words would not be valid UTF-8): drop the cut character. */
        while (len > 0 && !lucy_utf8_valid(t->w[t->n], len))
            len--;
        while (len > 0 && t->w[t->n][len - 1] == '-')
            len--;
        t->w[t->n][len] = '\0';
        if (len > 0)
            t->n++;
    }
}

/* ---- calendar arithmetic in local time ----------------------------------- */

/* Start (00:00:00) of the local day days after the day of now_s. */
static int64_t day_start(int64_t now_s, int days)
{
    time_t t = (time_t)now_s;
    struct tm tm;
    localtime_r(&t, &tm);
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    tm.tm_mday += days;
    tm.tm_isdst = -1;
    return (int64_t)mktime(&tm);
}

/* Start of local month (year, mon 0-based; mon may overflow either way). */
static int64_t month_start(int year, int mon)
{
    struct tm tm = {.tm_year = year - 1900, .tm_mon = mon, .tm_mday = 1, .tm_isdst = -1};
    return (int64_t)mktime(&tm);
}

static struct tm local(int64_t s)
{
    time_t t = (time_t)s;
    struct tm tm;
    localtime_r(&t, &tm);
    return tm;
}

static void range(struct lucy_ask_time *t, int64_t from_s, int64_t to_s)
{
    t->from_s = from_s;
    t->to_s = to_s;
}

/* ---- words that name things -------------------------------------------- */

static const char *const months[] = {"january",   "february", "march",    "april",
                                     "may",       "june",     "july",     "august",
                                     "september", "october",  "november", "december"};
static const char *const months_short[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                           "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const weekdays[] = {"sunday",   "monday", "tuesday", "wednesday",
                                       "thursday", "friday", "saturday"};

static int month_of(const char *w)
{
    for (int i = 0; i < 12; i++)
        if (strcmp(w, months[i]) == 0 || (i != 4 && strcmp(w, months_short[i]) == 0) ||
            (strcmp(w, "sept") == 0 && i == 8))
            return i;
    return -1;
}

static int weekday_of(const char *w)
{
    for (int i = 0; i < 7; i++)
        if (strcmp(w, weekdays[i]) == 0)
            return i;
    return -1;
}

static int year_of(const char *w)
{
    if (strlen(w) != 4 || !isdigit((unsigned char)w[0]))
        return -1;
    int y = atoi(w);
    return y >= 1970 && y <= 2200 && strspn(w, "0123456789") == 4 ? y : -1;
}

/* A phrase whose date names no day: not understood, never moved to a
 * real day (mktime would make 2024-02-30 the 1st of March). */
#define NO_SUCH_DAY (-2)

/* A token of digits only (a day, a year, or a number that is neither). */
static int all_digits(const char *w)
{
    return *w && w[strspn(w, "0123456789")] == '\0';
}

/* A day of the month as written after or before a month's name: "30",
 * "1st", "22nd", "3rd", "30th" (1 or 2 digits); 0 or more than 31 is
 * still a day, one no month has. -1 when w is not one. */
static int day_number(const char *w)
{
    size_t n = strspn(w, "0123456789");
    static const char *const ordinal[] = {"", "st", "nd", "rd", "th"};
    if (n < 1 || n > 2)
        return -1;
    for (size_t i = 0; i < sizeof ordinal / sizeof ordinal[0]; i++)
        if (strcmp(w + n, ordinal[i]) == 0)
            return atoi(w);
    return -1;
}

/* The local start of day d of month m (1-based) of year y; NO_SUCH_DAY
 * when the calendar has no such day or y is before 1000 (dates read and
 * written as ISO 8601 have four-digit years). */
static int day_of(int y, int m, int d, int64_t *start)
{
    struct tm tm = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d, .tm_isdst = -1};
    if (y < 1000)
        return NO_SUCH_DAY;
    *start = (int64_t)mktime(&tm);
    if (tm.tm_year != y - 1900 || tm.tm_mon != m - 1 || tm.tm_mday != d)
        return NO_SUCH_DAY; /* mktime normalised it: month 13, day 0, 30 February */
    return 0;
}

/* "YYYY-MM-DD" as the local day's start; -1 when w is not a date,
 * NO_SUCH_DAY when it has a date's shape but the calendar has no such day. */
static int date_of(const char *w, int64_t *start)
{
    int y, m, d, n = 0;
    if (sscanf(w, "%4d-%2d-%2d%n", &y, &m, &d, &n) != 3 || w[n])
        return -1;
    return day_of(y, m, d, start);
}

/* The most recent local day (start) that is weekday wd, today included. */
static int64_t last_weekday(int64_t now_s, int wd)
{
    struct tm tm = local(now_s);
    return day_start(now_s, -((tm.tm_wday - wd + 7) % 7));
}

/* The most recent month mon (0-based) that has begun, or of year y. */
static int64_t month_named(int64_t now_s, int mon, int y, int64_t *end)
{
    struct tm tm = local(now_s);
    int year = y > 0 ? y : (mon > tm.tm_mon ? tm.tm_year + 1900 - 1 : tm.tm_year + 1900);
    *end = month_start(year, mon + 1) - 1;
    return month_start(year, mon);
}

/* "<Month> [D] [YYYY]" or "D <Month> [YYYY]" at tokens i..: that day, or
 * the month; *used tokens. Without a year, the most recent such day that
 * has begun (29 February: the last leap year's). NO_SUCH_DAY when the
 * month has no such day or the number after it is no year ("March 20245"
 * is not this year's March). */
static int month_day(const struct tokens *tk, int i, int64_t now_s, int64_t *from, int64_t *to,
                     int *used)
{
    int k = i + 1, d = -1, y = -1, m = month_of(tk->w[i]);
    if (m < 0) /* D <Month> */
        d = day_number(tk->w[i]), m = month_of(tk->w[k++]);
    else if (k < tk->n && (d = day_number(tk->w[k])) >= 0)
        k++;
    if (k < tk->n && all_digits(tk->w[k]) && day_number(tk->w[k]) < 0 &&
        (y = year_of(tk->w[k++])) < 0) {
        *used = k - i;
        return NO_SUCH_DAY;
    }
    *used = k - i;
    if (d < 0) {
        *from = month_named(now_s, m, y, to);
        return 0;
    }
    int rc;
    if (y > 0) {
        rc = day_of(y, m + 1, d, from);
    } else {
        struct tm tm = local(now_s);
        y = tm.tm_year + 1900 - (m > tm.tm_mon || (m == tm.tm_mon && d > tm.tm_mday));
        rc = day_of(y, m + 1, d, from);
        for (int back = 1; rc == NO_SUCH_DAY && back < 8; back++) /* 29 February */
            rc = day_of(y - back, m + 1, d, from);
    }
    if (rc == 0)
        *to = day_start(*from, 1) - 1;
    return rc;
}

/* A point in time named by its tokens at i (a date, a month with or
 * without its day and year, a weekday, yesterday, today, a year): its
 * range and the tokens it *used. 0 when understood, NO_SUCH_DAY (*used
 * set), else -1. */
static int point_of(const struct tokens *tk, int i, int64_t now_s, int64_t *from, int64_t *to,
                    int *used)
{
    const char *w = i < tk->n ? tk->w[i] : "";
    int64_t s;
    int m = month_of(w), wd = weekday_of(w), y;
    *used = 1;
    int date = date_of(w, &s);
    if (date == NO_SUCH_DAY) {
        return NO_SUCH_DAY;
    } else if (date == 0) {
        *from = s;
        *to = day_start(s, 1) - 1;
    } else if (m >= 0 || (day_number(w) >= 0 && i + 1 < tk->n && month_of(tk->w[i + 1]) >= 0)) {
        return month_day(tk, i, now_s, from, to, used);
    } else if (wd >= 0) {
        *from = last_weekday(now_s, wd);
        *to = day_start(*from, 1) - 1;
    } else if (strcmp(w, "yesterday") == 0 || strcmp(w, "today") == 0) {
        *from = day_start(now_s, w[0] == 'y' ? -1 : 0);
        *to = day_start(*from, 1) - 1;
    } else if ((y = year_of(w)) > 0) {
        *from = month_start(y, 0);
        *to = month_start(y + 1, 0) - 1;
    } else {
        return -1;
    }
    return 0;
}

/* ---- the phrase table ---------------------------------------------------- */

/* Reads the phrase's arguments at tokens i.. (after its leading words);
 * sets the range and returns how many tokens it used after them, -1 when
 * the phrase does not apply, NOT_A_DAY(n) when its date names no day (the
 * date is the n tokens from i). */
#define NOT_A_DAY(n) (-1 - (n))
typedef int (*phrase_fn)(const struct tokens *tk, int i, int64_t now_s, int arg,
                         struct lucy_ask_time *t);

static int ph_day(const struct tokens *tk, int i, int64_t now_s, int arg, struct lucy_ask_time *t)
{
    (void)tk, (void)i;
    range(t, day_start(now_s, arg), day_start(now_s, arg + 1) - 1);
    return 0;
}

static int ph_week(const struct tokens *tk, int i, int64_t now_s, int arg, struct lucy_ask_time *t)
{
    (void)tk, (void)i;
    struct tm tm = local(now_s);
    int64_t monday = day_start(now_s, -((tm.tm_wday + 6) % 7) + 7 * arg);
    range(t, monday, day_start(monday, 7) - 1);
    return 0;
}

static int ph_month(const struct tokens *tk, int i, int64_t now_s, int arg, struct lucy_ask_time *t)
{
    (void)tk, (void)i;
    struct tm tm = local(now_s);
    range(t, month_start(tm.tm_year + 1900, tm.tm_mon + arg),
          month_start(tm.tm_year + 1900, tm.tm_mon + arg + 1) - 1);
    return 0;
}

static int ph_year(const struct tokens *tk, int i, int64_t now_s, int arg, struct lucy_ask_time *t)
{
    (void)tk, (void)i;
    struct tm tm = local(now_s);
    range(t, month_start(tm.tm_year + 1900 + arg, 0), month_start(tm.tm_year + 1901 + arg, 0) - 1);
    return 0;
}

/* in <Month> [YYYY] | in YYYY | on <weekday> | on YYYY-MM-DD | on <Month>
 * D [YYYY] | on D <Month> [YYYY]: that span. */
static int ph_point(const struct tokens *tk, int i, int64_t now_s, int arg, struct lucy_ask_time *t)
{
    (void)arg;
    int64_t from, to;
    int used, rc;
    if (i >= tk->n || strcmp(tk->w[i], "today") == 0 || strcmp(tk->w[i], "yesterday") == 0)
        return -1;
    if ((rc = point_of(tk, i, now_s, &from, &to, &used)) != 0)
        return rc == NO_SUCH_DAY ? NOT_A_DAY(used) : rc;
    range(t, from, to);
    return used;
}

/* since/after X: from X's start (after: X's end); before X: until X. */
enum { SINCE, AFTER, BEFORE };
static int ph_bound(const struct tokens *tk, int i, int64_t now_s, int arg, struct lucy_ask_time *t)
{
    int64_t from, to;
    int used, rc;
    if ((rc = point_of(tk, i, now_s, &from, &to, &used)) != 0)
        return rc == NO_SUCH_DAY ? NOT_A_DAY(used) : rc;
    if (arg == BEFORE)
        range(t, INT64_MIN, from - 1);
    else
        range(t, arg == SINCE ? from : to + 1, INT64_MAX);
    return used;
}

/* "latest call", "last call", "most recent call": the newest one. */
static int ph_latest(const struct tokens *tk, int i, int64_t now_s, int arg,
                     struct lucy_ask_time *t)
{
    (void)tk, (void)i, (void)now_s, (void)arg;
    t->latest = 1;
    return 0;
}

static const struct phrase {
    const char *words; /* leading words, space-separated */
    phrase_fn fn;
    int arg;
} phrases[] = {
    {"today", ph_day, 0},
    {"yesterday", ph_day, -1},
    {"this week", ph_week, 0},
    {"last week", ph_week, -1},
    {"this month", ph_month, 0},
    {"last month", ph_month, -1},
    {"this year", ph_year, 0},
    {"last year", ph_year, -1},
    {"latest call", ph_latest, 0},
    {"last call", ph_latest, 0},
    {"most recent call", ph_latest, 0},
    {"in", ph_point, 0},
    {"on", ph_point, 0},
    {"during", ph_point, 0},
    {"since", ph_bound, SINCE},
    {"after", ph_bound, AFTER},
    {"before", ph_bound, BEFORE},
    {"until", ph_bound, BEFORE},
};

/* Number of tokens of words matching at tk[i..], or 0. */
static int lead_match(const struct tokens *tk, int i, const char *words)
{
    int n = 0;
    const char *p = words;
    while (*p) {
        size_t len = strcspn(p, " ");
        if (i + n >= tk->n || strlen(tk->w[i + n]) != len || strncmp(tk->w[i + n], p, len) != 0)
            return 0;
        n++;
        p += len;
        p += *p == ' ';
    }
    return n;
}

/* tk[i..i+n) joined by spaces into out (cut at a whole word). */
static void join(const struct tokens *tk, int i, int n, char *out, size_t outlen)
{
    size_t o = 0;
    out[0] = '\0';
    for (int k = i; k < i + n && o + TOKEN_MAX + 1 < outlen; k++)
        o += (size_t)snprintf(out + o, outlen - o, "%s%s", o ? " " : "", tk->w[k]);
}

/* Finds the first phrase; marks its tokens in used[] when given. A phrase
 * whose date names no day sets no range: it is named in not_understood
 * (the first such) and its words are not searched either. */
static int parse(const struct tokens *tk, int64_t now_s, struct lucy_ask_time *t, char *used)
{
    memset(t, 0, sizeof *t);
    range(t, INT64_MIN, INT64_MAX);
    int found = 0;
    for (int i = 0; i < tk->n; i++)
        for (size_t r = 0; r < sizeof phrases / sizeof phrases[0]; r++) {
            int lead = lead_match(tk, i, phrases[r].words);
            if (!lead)
                continue;
            struct lucy_ask_time probe = *t;
            int more = phrases[r].fn(tk, i + lead, now_s, phrases[r].arg, &probe);
            if (more < -1) { /* NOT_A_DAY(n) */
                more = -1 - more;
                if (!t->not_understood[0])
                    join(tk, i, lead + more, t->not_understood, sizeof t->not_understood);
            } else if (more < 0) {
                continue;
            } else if (phrases[r].fn == ph_latest) { /* combines with a range */
                t->latest = 1;
            } else if (found) {
                continue; /* the first range wins */
            } else {
                int latest = t->latest;
                *t = probe;
                t->latest = latest;
                found = 1;
                join(tk, i, lead + more, t->phrase, sizeof t->phrase);
            }
            if (used)
                memset(used + i, 1, (size_t)(lead + more));
            i += lead + more - 1;
            break;
        }
    return found || t->latest;
}

int lucy_ask_time_parse(const char *question, int64_t now_s, struct lucy_ask_time *t)
{
    struct tokens tk;
    tokenize(question ? question : "", &tk);
    return parse(&tk, now_s, t, NULL);
}

/* ---- the words to search ------------------------------------------------- */

static const char *const stop_words[] = {
    "a",         "about",     "after",   "all",      "am",   "an",    "and",   "any",    "anything",
    "are",       "as",        "ask",     "asked",    "at",   "be",    "been",  "by",     "call",
    "calls",     "can",       "could",   "did",      "do",   "does",  "for",   "from",   "get",
    "give",      "had",       "has",     "have",     "he",   "her",   "him",   "his",    "how",
    "i",         "if",        "in",      "is",       "it",   "its",   "know",  "latest", "me",
    "mention",   "mentioned", "message", "messages", "most", "my",    "of",    "on",     "or",
    "our",       "recent",    "s",       "said",     "say",  "says",  "she",   "should", "show",
    "something", "tell",      "than",    "that",     "the",  "their", "them",  "there",  "they",
    "this",      "to",        "us",      "was",      "we",   "were",  "what",  "when",   "where",
    "which",     "who",       "whom",    "why",      "will", "with",  "would", "you",    "your",
};

static int is_stop(const char *w)
{
    size_t lo = 0, hi = sizeof stop_words / sizeof stop_words[0];
    while (lo < hi) { /* the table is sorted */
        size_t mid = (lo + hi) / 2;
        int c = strcmp(w, stop_words[mid]);
        if (c == 0)
            return 1;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return 0;
}

static const char *const number_words[] = {
    "zero",     "one",     "two",     "three",     "four",     "five",     "six",
    "seven",    "eight",   "nine",    "ten",       "eleven",   "twelve",   "thirteen",
    "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"};

int lucy_ask_stop_words_sorted(void); /* for the unit test */
int lucy_ask_stop_words_sorted(void)
{
    for (size_t i = 1; i < sizeof stop_words / sizeof stop_words[0]; i++)
        if (strcmp(stop_words[i - 1], stop_words[i]) >= 0)
            return 0;
    return 1;
}

char *lucy_ask_search_words(const char *question, const char *skip)
{
    struct tokens tk, sk;
    struct lucy_ask_time t;
    char used[MAX_TOKENS] = {0};
    tokenize(question ? question : "", &tk);
    tokenize(skip ? skip : "", &sk);
    parse(&tk, 0, &t, used);
    char *buf = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&buf, &size);
    if (!out)
        return NULL;
    int n = 0;
    for (int i = 0; i < tk.n; i++) {
        const char *w = tk.w[i];
        int skipped = used[i] || is_stop(w);
        for (int k = 0; !skipped && k < sk.n; k++)
            skipped = strcmp(sk.w[k], w) == 0;
        if (skipped)
            continue;
        fprintf(out, "%s%s", n++ ? " " : "", w);
        char *end;
        long v = strtol(w, &end, 10);
        if (*end == '\0' && v >= 0 && v <= 20)
            fprintf(out, " %s", number_words[v]);
        for (int k = 0; k <= 20; k++)
            if (strcmp(w, number_words[k]) == 0)
                fprintf(out, " %d", k);
    }
    if (fclose(out) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
