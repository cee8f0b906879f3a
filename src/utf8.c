/*
 * utf8.c - UTF-8 validation and U+FFFD display forms (see utf8.h).
 */
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

/* The UTF-8 sequence at s[0..n) (n >= 1): its length when valid, else
 * minus the length of its "maximal subpart" - the longest prefix that
 * could still begin a valid sequence, at least one byte - which becomes
 * one U+FFFD. */
static int utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    int len;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the 2nd byte */
    if (c > 0 && c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else
        return -1;
    if (n < 2 || s[1] < lo || s[1] > hi)
        return -1;
    for (int i = 2; i < len; i++)
        if ((size_t)i >= n || (s[i] & 0xC0) != 0x80)
            return -i;
    return len;
}

int lucy_utf8_valid(const char *bytes, size_t len)
{
    const unsigned char *s = (const unsigned char *)bytes;
    for (size_t i = 0; i < len;) {
        int n = utf8_seq(s + i, len - i);
        if (n <= 0)
            return 0;
        i += (size_t)n;
    }
    return 1;
}

char *lucy_utf8_display(const char *bytes, size_t len)
{
    /* Worst case: every byte becomes the 3-byte U+FFFD. */
    char *out = malloc(len * 3 + 1);
    if (!out)
        return NULL;
    const unsigned char *s = (const unsigned char *)bytes;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        int n = utf8_seq(s + i, len - i);
        if (n > 0) {
            memcpy(out + o, s + i, (size_t)n);
            o += (size_t)n;
            i += (size_t)n;
        } else {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i += (size_t)-n;
        }
    }
    out[o] = '\0';
    return out;
}
