/*
 * engines.h - the engine rows asr.c's table points at (internal to
 * src/asr/). Each engine file defines one `const struct lucy_asr_engine`;
 * callers outside src/asr/ choose one with lucy_asr_select().
 */
#ifndef LUCY_ASR_ENGINES_H
#define LUCY_ASR_ENGINES_H

#include "asr.h"

extern const struct lucy_asr_engine lucy_asr_pocketsphinx; /* pocketsphinx.c */
extern const struct lucy_asr_engine lucy_asr_http;         /* http.c */
#ifdef LUCY_HAVE_WHISPER
extern const struct lucy_asr_engine lucy_asr_whisper; /* whisper.c */
#endif

#endif
