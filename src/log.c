/*
 * log.c - JSON-lines logger with a small table of recent messages for
 * repeat suppression.
 *
 * The table has a fixed number of slots keyed by (level, msg). Within a
 * slot's window an event is written only if its fields differ from the
 * last RECENT_FIELDS written ones (json_equal) and the slot has written
 * fewer than MAX_LINES lines; everything else is counted and summarised
 * once when the window ends. So a loop repeating one error writes one
 * line, a loop with changing details (a counter, a path) at most
 * MAX_LINES, and distinct events (one "transcribed" per recording) are all
 * kept. If every slot is busy the oldest is summarised and reused, so
 * memory stays constant however many distinct messages appear.
 */
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "error.h"
#include "log.h"

#define SLOTS         64
#define RECENT_FIELDS 8  /* fields remembered per message for "identical" */
#define MAX_LINES     20 /* lines per message per window, however varied */

struct slot {
    char msg[160];                 /* the message text (truncated copy) */
    enum lucy_log_level level;     /* level it was logged at */
    int64_t window_start_ms;       /* when the first occurrence was written */
    uint64_t repeats;              /* occurrences swallowed since then */
    int lines;                     /* occurrences written in this window */
    json_t *recent[RECENT_FIELDS]; /* fields of the last lines written (ring) */
    int used;                      /* slot holds a live window */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static enum lucy_log_level min_level = LUCY_LOG_INFO;
static FILE *output;
static int64_t window_ms = 60000;
static int64_t (*clock_fn)(void);
static struct slot slots[SLOTS];

static const char *const level_names[] = {"debug", "info", "warning", "error"};

static int64_t now_ms(void)
{
    return clock_fn ? clock_fn() : lucy_mono_ms();
}

static void write_line(enum lucy_log_level level, const char *msg, json_t *fields)
{
    char ts[40];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof ts - n, ".%03ldZ", now.tv_nsec / 1000000);

    json_t *line = json_object();
    json_object_set_new(line, "ts", json_string(ts));
    json_object_set_new(line, "level", json_string(level_names[level]));
    json_object_set_new(line, "msg", json_string(msg));
    if (fields && json_is_object(fields))
        json_object_update_missing(line, fields);
    char *text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER | LUCY_JSON_REALS);
    if (text) {
        FILE *out = output ? output : stderr;
        fprintf(out, "%s\n", text);
        fflush(out);
        free(text);
    }
    json_decref(line);
}

static void summarise(struct slot *s)
{
    if (s->repeats > 0) {
        json_t *f = json_pack("{s:s,s:I,s:I}", "repeated_msg", s->msg, "count",
                              (json_int_t)s->repeats, "window_ms", (json_int_t)window_ms);
        write_line(s->level, "repeated", f);
        json_decref(f);
    }
    for (int i = 0; i < RECENT_FIELDS; i++) {
        json_decref(s->recent[i]);
        s->recent[i] = NULL;
    }
    s->used = 0;
    s->repeats = 0;
    s->lines = 0;
}

/* Within a live window: is this occurrence new enough to write? */
static int admit_in_slot(struct slot *s, json_t *fields)
{
    json_t *key = fields ? fields : json_null();
    for (int i = 0; i < RECENT_FIELDS; i++) {
        if (s->recent[i] && json_equal(s->recent[i], key)) {
            s->repeats++;
            return 0;
        }
    }
    if (s->lines >= MAX_LINES) {
        s->repeats++;
        return 0;
    }
    int at = s->lines % RECENT_FIELDS;
    json_decref(s->recent[at]);
    s->recent[at] = json_incref(key);
    s->lines++;
    return 1;
}

/* Returns 1 when this occurrence should be written, 0 when swallowed. */
static int admit(enum lucy_log_level level, const char *msg, json_t *fields, int64_t now)
{
    struct slot *oldest = NULL, *free_slot = NULL;
    for (int i = 0; i < SLOTS; i++) {
        struct slot *s = &slots[i];
        if (!s->used) {
            if (!free_slot)
                free_slot = s;
            continue;
        }
        if (now - s->window_start_ms >= window_ms) {
            summarise(s);
            if (!free_slot)
                free_slot = s;
            continue;
        }
        if (s->level == level && strncmp(s->msg, msg, sizeof s->msg - 1) == 0)
            return admit_in_slot(s, fields);
        if (!oldest || s->window_start_ms < oldest->window_start_ms)
            oldest = s;
    }
    struct slot *s = free_slot;
    if (!s) {
        s = oldest;
        summarise(s);
    }
    snprintf(s->msg, sizeof s->msg, "%s", msg);
    s->level = level;
    s->window_start_ms = now;
    s->repeats = 0;
    s->lines = 0;
    s->used = 1;
    return admit_in_slot(s, fields);
}

void lucy_log(enum lucy_log_level level, const char *msg, const char *fields_fmt, ...)
{
    if (level < min_level || level > LUCY_LOG_ERROR)
        return;
    json_t *fields = NULL;
    if (fields_fmt) {
        va_list ap;
        va_start(ap, fields_fmt);
        json_error_t jerr;
        fields = json_vpack_ex(&jerr, 0, fields_fmt, ap);
        va_end(ap);
    }
    pthread_mutex_lock(&lock);
    if (admit(level, msg, fields, now_ms()))
        write_line(level, msg, fields);
    pthread_mutex_unlock(&lock);
    json_decref(fields);
}

void lucy_log_tick(void)
{
    pthread_mutex_lock(&lock);
    int64_t now = now_ms();
    for (int i = 0; i < SLOTS; i++)
        if (slots[i].used && now - slots[i].window_start_ms >= window_ms)
            summarise(&slots[i]);
    pthread_mutex_unlock(&lock);
}

int lucy_log_level_parse(const char *name, enum lucy_log_level *out)
{
    static const struct {
        const char *name;
        enum lucy_log_level level;
    } names[] = {
        {"debug", LUCY_LOG_DEBUG},  {"info", LUCY_LOG_INFO},   {"warning", LUCY_LOG_WARNING},
        {"warn", LUCY_LOG_WARNING}, {"error", LUCY_LOG_ERROR},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(name, names[i].name) == 0) {
            *out = names[i].level;
            return 0;
        }
    }
    return LUCY_EINVAL;
}

void lucy_log_set_level(enum lucy_log_level level)
{
    min_level = level;
}

enum lucy_log_level lucy_log_get_level(void)
{
    return min_level;
}

void lucy_log_set_output(FILE *out)
{
    output = out;
}

void lucy_log_set_clock(int64_t (*fn)(void))
{
    clock_fn = fn;
}

void lucy_log_set_window_ms(int64_t ms)
{
    window_ms = ms;
}

void lucy_log_reset(void)
{
    pthread_mutex_lock(&lock);
    for (int i = 0; i < SLOTS; i++)
        for (int k = 0; k < RECENT_FIELDS; k++)
            json_decref(slots[i].recent[k]);
    memset(slots, 0, sizeof slots);
    pthread_mutex_unlock(&lock);
}
