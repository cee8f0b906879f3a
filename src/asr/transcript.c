/*
 * transcript.c - building transcripts (struct lucy_transcript; asr.h):
 * segments, words, appending chunks, time order, the joined text.
 *
 * In the binary, not in the media module (src/media): engines in the
 * module fill transcripts through these, and the daemon keeps, merges and
 * frees them after the module may have been unloaded.
 */
#include <stdlib.h>
#include <string.h>

#include "../error.h"
#include "asr.h"

void lucy_transcript_free(struct lucy_transcript *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n_segments; i++) {
        struct lucy_segment *seg = &t->segments[i];
        for (size_t w = 0; w < seg->n_words; w++)
            free(seg->words[w].text);
        free(seg->words);
        free(seg->text);
    }
    free(t->segments);
    free(t->text);
    t->segments = NULL;
    t->n_segments = 0;
    t->text = NULL;
}

/* text[0..*len) without surrounding white space: the new start and *len. */
static const char *trim(const char *text, size_t *len)
{
    size_t n = *len;
    while (n > 0 && (text[0] == ' ' || text[0] == '\t' || text[0] == '\n' || text[0] == '\r')) {
        text++;
        n--;
    }
    while (n > 0 && (text[n - 1] == ' ' || text[n - 1] == '\t' || text[n - 1] == '\n' ||
                     text[n - 1] == '\r'))
        n--;
    *len = n;
    return text;
}

int lucy_transcript_add(struct lucy_transcript *t, int64_t t0_ms, int64_t t1_ms, const char *text,
                        size_t text_len)
{
    text = trim(text, &text_len);
    if (text_len == 0)
        return 0;
    char *copy = strndup(text, text_len);
    if (!copy)
        return LUCY_ENOMEM;
    struct lucy_segment *segs = realloc(t->segments, (t->n_segments + 1) * sizeof *segs);
    if (!segs) {
        free(copy);
        return LUCY_ENOMEM;
    }
    t->segments = segs;
    segs[t->n_segments++] = (struct lucy_segment){
        .t0_ms = t0_ms,
        .t1_ms = t1_ms < t0_ms ? t0_ms : t1_ms,
        .text = copy,
        .channel = -1,
    };
    return 0;
}

static int64_t clamp_ms(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

void lucy_transcript_clamp(struct lucy_transcript *t, int64_t end_ms)
{
    for (size_t i = 0; i < t->n_segments; i++) {
        struct lucy_segment *s = &t->segments[i];
        s->t0_ms = clamp_ms(s->t0_ms, 0, end_ms);
        s->t1_ms = clamp_ms(s->t1_ms, s->t0_ms, end_ms);
        int64_t lo = s->t0_ms;
        for (size_t k = 0; k < s->n_words; k++) {
            struct lucy_word *w = &s->words[k];
            w->t0_ms = clamp_ms(w->t0_ms, lo, s->t1_ms);
            w->t1_ms = clamp_ms(w->t1_ms, w->t0_ms, s->t1_ms);
            lo = w->t0_ms;
        }
    }
}

int lucy_segment_add_word(struct lucy_segment *seg, int64_t t0_ms, int64_t t1_ms, const char *text,
                          size_t text_len)
{
    text = trim(text, &text_len);
    if (text_len == 0)
        return 0;
    int64_t lo = seg->n_words ? seg->words[seg->n_words - 1].t0_ms : seg->t0_ms;
    t0_ms = clamp_ms(t0_ms, lo, seg->t1_ms);
    t1_ms = clamp_ms(t1_ms, t0_ms, seg->t1_ms);
    char *copy = strndup(text, text_len);
    if (!copy)
        return LUCY_ENOMEM;
    struct lucy_word *words = realloc(seg->words, (seg->n_words + 1) * sizeof *words);
    if (!words) {
        free(copy);
        return LUCY_ENOMEM;
    }
    seg->words = words;
    words[seg->n_words++] = (struct lucy_word){t0_ms, t1_ms, copy};
    return 0;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The token text[0..len) (trimmed, non-empty) appended to seg's last word,
 * whose end moves to t1_ms if later, within the segment. */
static int continue_word(struct lucy_segment *seg, const char *text, size_t len, int64_t t1_ms)
{
    struct lucy_word *w = &seg->words[seg->n_words - 1];
    size_t have = strlen(w->text);
    char *grown = realloc(w->text, have + len + 1);
    if (!grown)
        return LUCY_ENOMEM;
    memcpy(grown + have, text, len);
    grown[have + len] = '\0';
    w->text = grown;
    w->t1_ms = clamp_ms(t1_ms, w->t1_ms, seg->t1_ms); /* never earlier, never past seg */
    return 0;
}

int lucy_segment_add_tokens(struct lucy_segment *seg, const struct lucy_token *tok, size_t n)
{
    int boundary = 1; /* the next token starts a word whatever its text */
    for (size_t i = 0; i < n; i++) {
        const char *text = tok[i].text;
        size_t len = text ? strlen(text) : 0;
        if (len == 0)
            continue;
        int starts = boundary || is_space(text[0]) || seg->n_words == 0;
        boundary = is_space(text[len - 1]); /* " " alone, too: a gap between words */
        int rc;
        if (starts) {
            rc = lucy_segment_add_word(seg, tok[i].t0_ms, tok[i].t1_ms, text, len);
        } else {
            const char *piece = trim(text, &len); /* trailing white space only */
            rc = continue_word(seg, piece, len, tok[i].t1_ms);
        }
        if (rc)
            return rc;
    }
    return 0;
}

int lucy_transcript_add_word(struct lucy_transcript *t, int64_t t0_ms, int64_t t1_ms,
                             const char *text, size_t text_len)
{
    if (t->n_segments == 0)
        return LUCY_EINVAL;
    return lucy_segment_add_word(&t->segments[t->n_segments - 1], t0_ms, t1_ms, text, text_len);
}

int lucy_transcript_append(struct lucy_transcript *dst, struct lucy_transcript *src,
                           int64_t offset_ms, int channel, const char *speaker)
{
    if (src->n_segments == 0)
        return 0;
    struct lucy_segment *segs =
        realloc(dst->segments, (dst->n_segments + src->n_segments) * sizeof *segs);
    if (!segs)
        return LUCY_ENOMEM;
    dst->segments = segs;
    for (size_t i = 0; i < src->n_segments; i++) {
        struct lucy_segment s = src->segments[i];
        s.t0_ms += offset_ms;
        s.t1_ms += offset_ms;
        for (size_t w = 0; w < s.n_words; w++) {
            s.words[w].t0_ms += offset_ms;
            s.words[w].t1_ms += offset_ms;
        }
        s.channel = channel;
        s.speaker = speaker;
        segs[dst->n_segments++] = s;
    }
    free(src->segments);
    src->segments = NULL;
    src->n_segments = 0;
    return 0;
}

static int segment_cmp(const void *a, const void *b)
{
    const struct lucy_segment *x = a, *y = b;
    if (x->t0_ms != y->t0_ms)
        return x->t0_ms < y->t0_ms ? -1 : 1;
    return (x->channel > y->channel) - (x->channel < y->channel);
}

void lucy_transcript_sort(struct lucy_transcript *t)
{
    /* Insertion sort: stable (qsort is not), and linear on what it gets -
     * two runs already in time order, one per channel. */
    for (size_t i = 1; i < t->n_segments; i++) {
        struct lucy_segment s = t->segments[i];
        size_t j = i;
        while (j > 0 && segment_cmp(&t->segments[j - 1], &s) > 0) {
            t->segments[j] = t->segments[j - 1];
            j--;
        }
        t->segments[j] = s;
    }
}

int lucy_transcript_join(struct lucy_transcript *t)
{
    size_t len = 1;
    for (size_t i = 0; i < t->n_segments; i++)
        len += strlen(t->segments[i].text) + 1;
    char *text = malloc(len);
    if (!text)
        return LUCY_ENOMEM;
    char *p = text;
    for (size_t i = 0; i < t->n_segments; i++) {
        size_t n = strlen(t->segments[i].text);
        if (i > 0)
            *p++ = ' ';
        memcpy(p, t->segments[i].text, n);
        p += n;
    }
    *p = '\0';
    free(t->text);
    t->text = text;
    return 0;
}
