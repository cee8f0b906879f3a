/*
 * person.c - who a question is about: a phone number in it (E.164 through
 * libphonenumber, src/people/phone.h, then lucy_people_find), else a name
 * the person is known by (alias, contact, profile, call-log names: every
 * row of people_names, read only). A whole name found among the
 * question's words wins over a first name alone; a first name alone
 * counts only when the question writes it capitalised ("John", not
 * "john" in "john deere tractor" - a guess, but the one people make).
 * Among equals the alias wins, then the name seen last. A run of 7 to 15
 * digits libphonenumber does not find (a fictional or new range) is tried
 * as a phone ("+" digits) and as a wa_id.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../error.h"
#include "../people/people.h"
#include "../people/phone.h"
#include "../store/row.h"
#include "../store/store.h"
#include "ask_int.h"

/* " word word " of s: lower-case letters and digits (bytes >= 0x80 too). */
static void words(const char *s, char *out, size_t size)
{
    size_t o = 0;
    if (size < 3)
        return;
    out[o++] = ' ';
    for (const unsigned char *p = (const unsigned char *)s; *p && o + 2 < size; p++)
        if (isalnum(*p) || *p >= 0x80)
            out[o++] = (char)tolower(*p);
        else if (out[o - 1] != ' ')
            out[o++] = ' ';
    if (out[o - 1] != ' ')
        out[o++] = ' ';
    out[o] = '\0';
}

/* 1 when word w (lower case) is written capitalised somewhere in q. */
static int capitalised_in(const char *q, const char *w)
{
    size_t n = strlen(w);
    for (const char *p = q; (p = strcasestr(p, w)) != NULL; p++)
        if ((p == q || !isalnum((unsigned char)p[-1])) && !isalnum((unsigned char)p[n]) &&
            isupper((unsigned char)*p))
            return 1;
    return 0;
}

static const char names_sql[] =
    "SELECT person, name, source, last_seen_ms FROM people_names LIMIT 100000";

int lucy_ask_person_find(sqlite3 *db, const char *question, const char *region,
                         struct lucy_ask_person *out)
{
    memset(out, 0, sizeof *out);
    char e164[LUCY_PHONE_E164_SIZE];
    size_t start, end;
    if (lucy_phone_find(question, strlen(question), 0, region, e164, &start, &end) ==
        LUCY_PHONE_OK) {
        int64_t id;
        if (lucy_people_find(db, "phone", e164, &id) == 0) {
            out->id = id;
            out->how = "number";
            snprintf(out->matched, sizeof out->matched, "%.*s", (int)(end - start),
                     question + start);
        }
    }
    for (const char *p = question; !out->id && *p;) { /* numbers libphonenumber holds
                                                          invalid, as a wa_id's twin */
        char digits[20];
        size_t n = 0;
        const char *s = p;
        while (*p && strchr("+0123456789 -()", *p) && n < sizeof digits - 1) {
            if (isdigit((unsigned char)*p))
                digits[n++] = *p;
            p++;
        }
        digits[n] = '\0';
        if (p == s)
            p++;
        char phone[sizeof digits + 1];
        snprintf(phone, sizeof phone, "+%s", digits);
        int64_t id;
        if (n >= 7 && n <= 15 &&
            (lucy_people_find(db, "phone", phone, &id) == 0 ||
             lucy_people_find(db, "wa_id", digits, &id) == 0)) {
            out->id = id;
            out->how = "number";
            snprintf(out->matched, sizeof out->matched, "%.*s", (int)(p - s), s);
        }
    }
    char q[LUCY_ASK_QUESTION_MAX + 3];
    words(question, q, sizeof q);
    sqlite3_stmt *st = NULL;
    int rc = out->id ? SQLITE_DONE : lucy_store_stmt(db, names_sql, &st);
    if (rc != SQLITE_DONE && rc != 0)
        return rc;
    int best = 0;
    int64_t best_seen = 0;
    while (st && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 1);
        const char *source = (const char *)sqlite3_column_text(st, 2);
        int64_t seen = sqlite3_column_int64(st, 3);
        char w[LUCY_PEOPLE_NAME_MAX + 3], first[LUCY_PEOPLE_NAME_MAX + 3];
        words(name ? name : "", w, sizeof w);
        if (strlen(w) < 4) /* " x ": too short to be named in a question */
            continue;
        /* score: whole name 4, first name alone 2; +1 for an alias */
        int score = 0;
        if (strstr(q, w)) {
            score = 4;
        } else {
            size_t len = strcspn(w + 1, " ");
            snprintf(first, sizeof first, " %.*s ", (int)len, w + 1);
            char bare[LUCY_PEOPLE_NAME_MAX];
            snprintf(bare, sizeof bare, "%.*s", (int)len, w + 1);
            if (len >= 3 && strstr(q, first) && capitalised_in(question, bare))
                score = 2;
            if (score)
                snprintf(w, sizeof w, "%s", first);
        }
        if (!score)
            continue;
        score += source && strcmp(source, "alias") == 0;
        if (score > best || (score == best && seen > best_seen)) {
            best = score;
            best_seen = seen;
            out->candidate = sqlite3_column_int64(st, 0);
            snprintf(out->matched, sizeof out->matched, "%.*s", (int)strlen(w) - 2, w + 1);
            out->how = source && strcmp(source, "alias") == 0 ? "alias" : "name";
        }
    }
    if (st && rc != SQLITE_DONE)
        return lucy_store_err(rc);
    if (!out->id)
        out->id = out->candidate;
    if (!out->id)
        return LUCY_ENOTFOUND;
    json_t *p = NULL;
    rc = lucy_people_json(db, out->id, 0, &p);
    if (rc == 0)
        snprintf(out->name, sizeof out->name, "%s",
                 json_string_value(json_object_get(p, "name")) ?: "");
    json_decref(p);
    return rc;
}
