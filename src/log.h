/*
 * log.h - JSON-lines logging on stderr with repeat suppression.
 *
 * One line per event: {"ts":"2026-11-30T01:02:03.456Z","level":"info",
 * "msg":"...", ...fields}. The message is a constant string and variable
 * data goes into fields, built with a jansson json_pack() format, e.g.
 *
 *     lucy_log(LUCY_LOG_WARNING, "file locked", "{s:s,s:s}", "path", p,
 *              "errno", "EDEADLK");
 *
 * Suppression: within a window (60 s by default) an event with the same
 * (level, msg) and the same fields as one of the last few written is
 * counted instead of written, and one message writes at most 20 lines
 * however its fields vary; when the window ends the count is written once
 * as {"msg":"repeated","repeated_msg":...,"count":N}. An error loop
 * therefore writes a bounded number of lines per message per window, so
 * logging cannot fill a disk, while distinct events (one per recording,
 * say) are kept. All functions are thread-safe.
 */
#ifndef LUCY_LOG_H
#define LUCY_LOG_H

#include <stdint.h>
#include <stdio.h>

#include <jansson.h> /* json_int_t for "I" fields */

/* How lucy prints a real in the JSON it hands out (log lines, replies,
 * transcript downloads, export files): 15 significant digits (DBL_DIG),
 * so a value that was a short decimal prints as that decimal (7.1), not
 * as jansson's default 17 digits (7.0999999999999996). Times are integer
 * ms, or seconds rounded to ms by the code that owns them. */
#define LUCY_JSON_REALS JSON_REAL_PRECISION(15)

enum lucy_log_level { LUCY_LOG_DEBUG, LUCY_LOG_INFO, LUCY_LOG_WARNING, LUCY_LOG_ERROR };

/* Writes one event if level is at or above the configured level.
 * fields_fmt: a json_pack() format producing an object, or NULL for none;
 * a format error logs the message without fields. */
void lucy_log(enum lucy_log_level level, const char *msg, const char *fields_fmt, ...);

/* Parses "debug", "info", "warning" (or "warn"), "error". Returns 0 and sets
 * *out, or LUCY_EINVAL. */
int lucy_log_level_parse(const char *name, enum lucy_log_level *out);

void lucy_log_set_level(enum lucy_log_level level);
enum lucy_log_level lucy_log_get_level(void);

/* Writes the summaries of windows that have ended. Called about once a
 * second by the prober so a burst that stops is still summarised. */
void lucy_log_tick(void);

/* Test hooks: redirect output (NULL = stderr), replace the clock (returns
 * milliseconds; NULL = CLOCK_MONOTONIC), set the suppression window. Reset
 * forgets all suppression state. Not for use while other threads log. */
void lucy_log_set_output(FILE *out);
void lucy_log_set_clock(int64_t (*now_ms)(void));
void lucy_log_set_window_ms(int64_t window_ms);
void lucy_log_reset(void);

#endif
