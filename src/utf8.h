/*
 * utf8.h - UTF-8 validation and display forms.
 *
 * File names and URLs are bytes; JSON (jansson) and the web UI need valid
 * UTF-8. These functions follow Unicode's "U+FFFD Substitution of Maximal
 * Subparts" (Unicode §3.9 D93b; RFC 3629 §4: no overlongs, no surrogates,
 * nothing above U+10FFFF), as Python's errors="replace" and browsers do.
 * Pure functions, thread-safe.
 */
#ifndef LUCY_UTF8_H
#define LUCY_UTF8_H

#include <stddef.h>

/* 1 when bytes[0..len) is valid UTF-8 without NUL bytes, else 0. */
int lucy_utf8_valid(const char *bytes, size_t len);

/* A malloc'd, NUL-terminated copy of bytes[0..len) with every invalid
 * sequence replaced by one U+FFFD; the caller frees it. NULL only when out
 * of memory. */
char *lucy_utf8_display(const char *bytes, size_t len);

#endif
