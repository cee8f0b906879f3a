/*
 * prompt.c - what the LLM is told: the rules (system message) and the
 * question with its numbered sources (user message). The format of the
 * sources ("[n] label" line, the text on the next line, a blank line) is
 * what docs/ask.md documents and tests/openai/openai_double.py reads.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ask_int.h"

static const char system_prompt[] =
    "You answer questions about the user's own phone calls and WhatsApp messages, using only "
    "the numbered sources given with the question. Cite the source of every statement with its "
    "number in square brackets, like [1] or [2]. When you quote, copy the words exactly, inside "
    "double quotes, and put the citation right after the quote. Never cite a number that is not "
    "given. If the sources do not answer the question, say so. Answer briefly, in the language "
    "of the question.";

const char *lucy_ask_system_prompt(void)
{
    return system_prompt;
}

/* Writes s on one line: newlines become spaces (a source is one line). */
static void one_line(FILE *out, const char *s)
{
    for (; s && *s; s++)
        fputc(*s == '\n' || *s == '\r' ? ' ' : *s, out);
}

char *lucy_ask_user_prompt(const char *question, const struct lucy_ask_retrieval *r)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&buf, &size);
    if (!out)
        return NULL;
    fputs("Question: ", out);
    one_line(out, question);
    fputs("\n\nSources:\n", out);
    for (size_t i = 0; i < r->n; i++) {
        fprintf(out, "[%zu] ", i + 1);
        one_line(out, r->src[i].label);
        fputc('\n', out);
        one_line(out, r->src[i].text);
        fputs("\n\n", out);
    }
    if (fclose(out) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
