/*
 * callname.c - call recordings' file names against recorder conventions.
 *
 * Recorders name their files from a template; matching the name back
 * against that template recovers the call's date, direction, number, name
 * and SIM. Built-in conventions are rows of conventions[] in the same
 * template language as LUCY_CALL_NAME_PATTERNS, so a user's template and a
 * built-in one behave alike and the table is easy to extend.
 *
 * Matching interprets the template text directly, backtracking: literal
 * text must match; {date:FMT}, {direction} and {sim} match deterministic
 * shapes; {phone} and {name} try their longest span first, then shorter
 * ones; [A|B|] tries each alternative in order, then what follows the
 * group. A step budget bounds the work on a pathological name.
 */
#include <stdio.h>
#include <string.h>

#include "../../error.h"
#include "callname.h"

/* BCR's default date: local time, milliseconds, offset
 * ("20230414_215701.088-0400"; FACTS.md "Call recorders"). */
#define BCR_DATE "%Y%m%d_%H%M%S.%f%z"

/* Steps (calls of match()) one template may take on one name. */
#define MATCH_BUDGET 20000

/* The built-in conventions, tried in order after the user's templates. */
const struct lucy_call_convention lucy_call_conventions[] = {
    /* BCR (Basic Call Recorder) default, from its README:
     * {date}[_{direction}|][_sim{sim_slot}|][_{phone_number}|][_[{contact_name}|
     * {caller_name}|{call_log_name}]|], e.g. 20230414_215701.088-0400_out_sim1_
     * +14155550123_John Doe. */
    {"bcr", "{date}[_{direction}|][_sim{sim}|][_{phone}|][_{name}|]"},
    /* Samsung's call recorder: "Call recording NAME_yyMMdd_HHmmss", NAME the
     * contact or the number (FACTS.md "Call recorders"). */
    {"samsung", "Call recording {name}_{date:%y%m%d_%H%M%S}"},
    /* Number, date and direction, as several Android recorder apps write
     * them: +14155550123_20240301-101500_incoming. */
    {"number_date_direction", "{phone}_{date:%Y%m%d-%H%M%S}[_{direction}|]"},
    /* MIUI/HyperOS's recorder, as its users report it (not checked on a
     * device): "NAME(NUMBER)_yyyyMMddHHmmss", or the number alone. */
    {"miui_name", "{name}({phone})_{date:%Y%m%d%H%M%S}"},
    {"miui_number", "{phone}_{date:%Y%m%d%H%M%S}"},
};
const size_t lucy_call_conventions_count =
    sizeof lucy_call_conventions / sizeof lucy_call_conventions[0];

static const struct {
    const char *word;
    enum lucy_call_direction direction;
} direction_words[] = {
    /* longest first: "incoming" before "in" */
    {"conference", LUCY_CALL_DIR_CONFERENCE},
    {"incoming", LUCY_CALL_DIR_IN},
    {"outgoing", LUCY_CALL_DIR_OUT},
    {"out", LUCY_CALL_DIR_OUT},
    {"in", LUCY_CALL_DIR_IN},
};
#define N_DIRECTION_WORDS (sizeof direction_words / sizeof direction_words[0])

/* The fields a template may name. */
enum field { F_DATE, F_DIRECTION, F_PHONE, F_NAME, F_SIM, F_UNKNOWN };
static const char *const field_names[] = {"date", "direction", "phone", "name", "sim"};

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

enum lucy_call_direction lucy_call_direction_word(const char *word, size_t len)
{
    for (size_t i = 0; i < N_DIRECTION_WORDS; i++) {
        const char *w = direction_words[i].word;
        size_t k = 0;
        while (k < len && w[k] && lower(word[k]) == w[k])
            k++;
        if (k == len && !w[k])
            return direction_words[i].direction;
    }
    return LUCY_CALL_DIR_UNKNOWN;
}

int64_t lucy_call_civil_ms(int year, int month, int day, int hour, int minute, int second, int ms)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (year < 1 || year > 9999 || month < 1 || month > 12 || hour < 0 || hour > 23 || minute < 0 ||
        minute > 59 || second < 0 || second > 60 || ms < 0 || ms > 999)
        return -1;
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (day < 1 || day > mdays[month - 1] + (month == 2 && leap))
        return -1;
    /* days_from_civil (H. Hinnant, "chrono-Compatible Low-Level Date
     * Algorithms"): March-based years make the leap day the last. */
    int64_t y = year - (month <= 2);
    int64_t era = y / 400; /* y >= 0 here */
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    int64_t days = era * 146097 + doe - 719468;
    return ((days * 24 + hour) * 60 + minute) * 60000 + (int64_t)second * 1000 + ms;
}

/* ---- checking a template -------------------------------------------------- */

static enum field field_of(const char *name, size_t len, const char **fmt, size_t *fmtlen)
{
    *fmt = NULL;
    *fmtlen = 0;
    if (len >= 5 && strncmp(name, "date:", 5) == 0) {
        *fmt = name + 5;
        *fmtlen = len - 5;
        return F_DATE;
    }
    for (size_t f = 0; f < sizeof field_names / sizeof field_names[0]; f++)
        if (strlen(field_names[f]) == len && strncmp(name, field_names[f], len) == 0)
            return (enum field)f;
    return F_UNKNOWN;
}

static int check_date_format(const char *fmt, size_t len, char *why, size_t whylen)
{
    int seen[128] = {0};
    for (size_t i = 0; i < len; i++) {
        if (fmt[i] != '%')
            continue;
        char c = i + 1 < len ? fmt[++i] : '\0';
        if (!c || !strchr("YymdHMSfz%", c)) {
            snprintf(why, whylen,
                     "unknown date directive %%%c (use %%Y %%y %%m %%d %%H %%M %%S %%f %%z)",
                     c ? c : ' ');
            return LUCY_EINVAL;
        }
        seen[(unsigned char)c]++;
    }
    if (!(seen['Y'] || seen['y']) || !seen['m'] || !seen['d'] || !seen['H'] || !seen['M']) {
        snprintf(why, whylen, "a date needs a year (%%Y or %%y), %%m, %%d, %%H and %%M");
        return LUCY_EINVAL;
    }
    return 0;
}

int lucy_call_template_check(const char *tpl, char *err, size_t errlen)
{
    char why[120] = "";
    int depth = 0, fields = 0;
    size_t i = 0, len = tpl ? strlen(tpl) : 0;
    if (!len)
        snprintf(why, sizeof why, "empty template");
    else if (len >= LUCY_CALL_PATTERN_SIZE)
        snprintf(why, sizeof why, "longer than %d bytes", LUCY_CALL_PATTERN_SIZE - 1);
    for (; !*why && i < len; i++) {
        char c = tpl[i];
        if (c == '\\') {
            if (i + 1 == len)
                snprintf(why, sizeof why, "'\\' at the end escapes nothing");
            else
                i++;
        } else if (c == '{') {
            const char *close = strchr(tpl + i, '}'), *fmt;
            size_t fmtlen, n = close ? (size_t)(close - tpl) - i - 1 : 0;
            enum field f = close ? field_of(tpl + i + 1, n, &fmt, &fmtlen) : F_UNKNOWN;
            if (!close)
                snprintf(why, sizeof why, "'{' without '}'");
            else if (f == F_UNKNOWN || memchr(tpl + i + 1, '{', n))
                snprintf(why, sizeof why,
                         "unknown field {%.*s} (use {date:FORMAT}, {direction}, {phone}, {name}, "
                         "{sim})",
                         (int)(n > 30 ? 30 : n), tpl + i + 1);
            else if (fmt && check_date_format(fmt, fmtlen, why, sizeof why) == 0)
                fields++, i += n + 1;
            else if (!fmt)
                fields++, i += n + 1;
        } else if (c == '}') {
            snprintf(why, sizeof why, "'}' without '{'");
        } else if (c == '[') {
            depth++;
        } else if (c == ']' && --depth < 0) {
            snprintf(why, sizeof why, "']' without '['");
        } else if (c == '|' && depth == 0) {
            snprintf(why, sizeof why, "'|' outside [...]");
        }
        if (*why)
            break;
    }
    if (!*why && depth > 0)
        snprintf(why, sizeof why, "'[' without ']'");
    if (!*why && fields == 0)
        snprintf(why, sizeof why, "no field: a template needs at least one {...}");
    if (!*why)
        return 0;
    if (err && errlen && i < len)
        snprintf(err, errlen, "'%.80s': %s (at byte %zu)", tpl, why, i);
    else if (err && errlen)
        snprintf(err, errlen, "'%.80s': %s", tpl ? tpl : "", why);
    return LUCY_EINVAL;
}

/* ---- matching ----------------------------------------------------------- */

struct matcher {
    const char *text;          /* the stem */
    size_t len;                /* its bytes */
    int budget;                /* steps left */
    struct lucy_call_name out; /* the captures of the successful path */
};

static int match(struct matcher *m, const char *t, size_t pos, struct lucy_call_name c);

/* The ']' closing the group that t (just after a '[' or a '|') is in. */
static const char *group_end(const char *t)
{
    int depth = 0;
    for (; *t; t++) {
        if (*t == '\\' && t[1])
            t++;
        else if (*t == '{')
            t = strchr(t, '}'); /* checked: present */
        else if (*t == '[')
            depth++;
        else if (*t == ']' && depth-- == 0)
            return t;
    }
    return t;
}

/* The start of the alternative after the one starting at alt, or NULL. */
static const char *next_alternative(const char *alt, const char *end)
{
    int depth = 0;
    for (const char *t = alt; t < end; t++) {
        if (*t == '\\' && t[1])
            t++;
        else if (*t == '{')
            t = strchr(t, '}');
        else if (*t == '[')
            depth++;
        else if (*t == ']')
            depth--;
        else if (*t == '|' && depth == 0)
            return t + 1;
    }
    return NULL;
}

/* Reads n digits at s[*pos]; -1 if they are not there. */
static int digits(const struct matcher *m, size_t *pos, int n)
{
    int v = 0;
    for (int k = 0; k < n; k++, (*pos)++) {
        if (*pos >= m->len || !is_digit(m->text[*pos]))
            return -1;
        v = v * 10 + (m->text[*pos] - '0');
    }
    return v;
}

/* Matches a {date:FMT} at *pos: deterministic, no backtracking needed. */
static int match_date(const struct matcher *m, const char *fmt, size_t fmtlen, size_t *pos,
                      struct lucy_call_name *c)
{
    int v[128];
    for (size_t k = 0; k < 128; k++)
        v[k] = 0;
    int sign = 0, has_z = 0, four_digit_year = 0;
    size_t start = *pos;
    for (size_t i = 0; i < fmtlen; i++) {
        char d = fmt[i] == '%' && i + 1 < fmtlen ? fmt[++i] : '\0';
        if (!d || d == '%') { /* literal */
            if (*pos >= m->len || lower(m->text[*pos]) != lower(fmt[i]))
                return 0;
            (*pos)++;
        } else if (d == 'f') { /* 1 to 9 digits; the first three are ms */
            int n = 0, ms = 0;
            for (; *pos < m->len && is_digit(m->text[*pos]) && n < 9; (*pos)++, n++)
                if (n < 3)
                    ms = ms * 10 + (m->text[*pos] - '0');
            if (!n)
                return 0;
            for (; n < 3; n++)
                ms *= 10;
            v['f'] = ms;
        } else if (d == 'z') { /* Z, +HH, +HHMM or +HH:MM */
            has_z = 1;
            if (*pos < m->len && (m->text[*pos] == 'Z' || m->text[*pos] == 'z')) {
                (*pos)++;
                continue;
            }
            if (*pos >= m->len || (m->text[*pos] != '+' && m->text[*pos] != '-'))
                return 0;
            sign = m->text[(*pos)++] == '-' ? -1 : 1;
            int hh = digits(m, pos, 2), mm = 0;
            if (*pos < m->len && m->text[*pos] == ':')
                (*pos)++;
            if (*pos < m->len && is_digit(m->text[*pos]))
                mm = digits(m, pos, 2);
            if (hh < 0 || hh > 14 || mm < 0 || mm > 59)
                return 0;
            v['z'] = sign * (hh * 60 + mm);
        } else {
            four_digit_year |= d == 'Y';
            int n = digits(m, pos, d == 'Y' ? 4 : 2);
            if (n < 0)
                return 0;
            v[(unsigned char)d] = n;
        }
    }
    int year = four_digit_year ? v['Y'] : 2000 + v['y']; /* %y: recorders born after 2000 */
    int64_t ms = lucy_call_civil_ms(year, v['m'], v['d'], v['H'], v['M'], v['S'], v['f']);
    if (ms < 0)
        return 0;
    c->has_date = 1;
    c->offset_min = v['z'];
    c->offset_known = sign != 0;
    c->local_only = !has_z;
    c->date_ms = ms - (int64_t)v['z'] * 60000;
    c->date_start = start;
    c->date_end = *pos;
    return 1;
}

static int is_phone_char(char c)
{
    return is_digit(c) || (c && strchr("+-.() ", c));
}

/* Matches the field between t ('{') and its '}', then the rest. */
static int match_field(struct matcher *m, const char *t, size_t pos, struct lucy_call_name c)
{
    const char *close = strchr(t, '}'), *rest = close + 1, *fmt;
    size_t fmtlen;
    switch (field_of(t + 1, (size_t)(close - t - 1), &fmt, &fmtlen)) {
    case F_DATE:
        if (!fmt)
            fmt = BCR_DATE, fmtlen = strlen(BCR_DATE);
        return match_date(m, fmt, fmtlen, &pos, &c) && match(m, rest, pos, c);
    case F_DIRECTION:
        for (size_t i = 0; i < N_DIRECTION_WORDS; i++) {
            size_t n = strlen(direction_words[i].word);
            if (pos + n <= m->len &&
                lucy_call_direction_word(m->text + pos, n) == direction_words[i].direction) {
                c.direction = direction_words[i].direction;
                if (match(m, rest, pos + n, c))
                    return 1;
            }
        }
        return 0;
    case F_SIM:
        for (size_t n = 2; n >= 1; n--) {
            size_t p = pos;
            int sim = digits(m, &p, (int)n);
            if (sim > 0 && (c.sim = sim, match(m, rest, p, c)))
                return 1;
        }
        return 0;
    case F_PHONE: {
        size_t end = pos;
        while (end < m->len && is_phone_char(m->text[end]))
            end++;
        for (; end > pos; end--) {
            char first = m->text[pos], last = m->text[end - 1];
            size_t ndigits = 0;
            for (size_t k = pos; k < end; k++)
                ndigits += is_digit(m->text[k]);
            if (ndigits < 3 || !(is_digit(first) || first == '+' || first == '(') ||
                !(is_digit(last) || last == ')'))
                continue;
            c.phone_start = pos, c.phone_end = end;
            if (match(m, rest, end, c))
                return 1;
        }
        return 0;
    }
    case F_NAME:
        for (size_t end = m->len; end > pos; end--) {
            c.name_start = pos, c.name_end = end;
            if (match(m, rest, end, c))
                return 1;
        }
        return 0;
    default:
        return 0;
    }
}

static int match(struct matcher *m, const char *t, size_t pos, struct lucy_call_name c)
{
    if (--m->budget < 0)
        return 0;
    for (;;) {
        char ch = *t;
        if (!ch) {
            if (pos != m->len)
                return 0;
            m->out = c;
            return 1;
        }
        if (ch == '|') { /* an alternative matched: skip the others */
            t = group_end(t + 1) + 1;
            continue;
        }
        if (ch == ']') {
            t++;
            continue;
        }
        if (ch == '[') {
            const char *end = group_end(t + 1), *alt = t + 1;
            int alternatives = 0;
            for (; alt; alt = next_alternative(alt, end), alternatives++)
                if (match(m, alt, pos, c))
                    return 1;
            return alternatives == 1 && match(m, end + 1, pos, c); /* [A] is [A|] */
        }
        if (ch == '{')
            return match_field(m, t, pos, c);
        if (ch == '\\' && t[1])
            ch = *++t;
        if (pos >= m->len || lower(m->text[pos]) != lower(ch))
            return 0;
        pos++;
        t++;
    }
}

int lucy_call_template_match(const char *tpl, const char *stem, size_t len,
                             struct lucy_call_name *out)
{
    struct matcher m = {.text = stem, .len = len, .budget = MATCH_BUDGET};
    struct lucy_call_name none = {0};
    *out = none;
    if (!match(&m, tpl, 0, none))
        return 0;
    *out = m.out;
    return 1;
}

const char *lucy_call_name_parse(const char *stem, size_t len,
                                 const struct lucy_call_patterns *patterns,
                                 struct lucy_call_name *out)
{
    static const char *const user_ids[LUCY_CALL_PATTERNS_MAX] = {
        "user:1", "user:2",  "user:3",  "user:4",  "user:5",  "user:6",  "user:7",  "user:8",
        "user:9", "user:10", "user:11", "user:12", "user:13", "user:14", "user:15", "user:16"};
    for (int i = 0; patterns && i < patterns->count && i < LUCY_CALL_PATTERNS_MAX; i++)
        if (lucy_call_template_match(patterns->templates[i], stem, len, out))
            return user_ids[i];
    for (size_t i = 0; i < lucy_call_conventions_count; i++)
        if (lucy_call_template_match(lucy_call_conventions[i].template, stem, len, out))
            return lucy_call_conventions[i].id;
    return NULL;
}

int lucy_call_patterns_parse(const char *spec, struct lucy_call_patterns *out, char *err,
                             size_t errlen)
{
    memset(out, 0, sizeof *out);
    for (const char *s = spec; s && *s;) {
        char tpl[LUCY_CALL_PATTERN_SIZE + 1];
        size_t n = 0;
        for (; *s && *s != ';'; s++) { /* '\;' stays in the template as an escape */
            if (*s == '\\' && s[1] == ';' && n < sizeof tpl - 2)
                tpl[n++] = *s++;
            if (n < sizeof tpl - 1)
                tpl[n++] = *s;
        }
        tpl[n] = '\0';
        if (*s == ';')
            s++;
        if (n == 0) /* "a;;b" and a trailing ';' are harmless */
            continue;
        char why[240];
        if (out->count == LUCY_CALL_PATTERNS_MAX) {
            if (err && errlen)
                snprintf(err, errlen, "more than %d templates", LUCY_CALL_PATTERNS_MAX);
            return LUCY_EINVAL;
        }
        if (lucy_call_template_check(tpl, why, sizeof why) != 0) {
            if (err && errlen)
                snprintf(err, errlen, "template %d: %s", out->count + 1, why);
            return LUCY_EINVAL;
        }
        memcpy(out->templates[out->count++], tpl, n + 1);
    }
    return 0;
}
