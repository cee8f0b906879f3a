/*
 * embed.h - the client of an OpenAI-compatible embeddings endpoint
 * (DESIGN §14: LUCY_EMBED_URL, e.g. Ollama's http://host:11434/v1,
 * llama.cpp's llama-server, vLLM, OpenAI): POST {url}/embeddings with
 * {"model", "input": [texts]} -> {"data": [{"index", "embedding": [floats]}]}.
 *
 * One request per batch, on the shared HTTP client (src/http/client.h)
 * with a keep-alive pool. Nothing here retries or stores: the embedder
 * (src/index/embedder.c) decides when to call again, and
 * src/index/vectors.c keeps the vectors.
 */
#ifndef LUCY_LLM_EMBED_H
#define LUCY_LLM_EMBED_H

#include <stddef.h>

struct lucy_config;
struct lucy_embed;

/* Most texts sent in one request, and most dimensions accepted. */
#define LUCY_EMBED_BATCH_MAX 64
#define LUCY_EMBED_DIM_MAX   8192

/* Opens the client for cfg's LUCY_EMBED_URL / LUCY_EMBED_MODEL /
 * LUCY_EMBED_API_KEY / LUCY_EMBED_TIMEOUT_MS into *out (NULL, and 0, when
 * LUCY_EMBED_URL is unset: dense retrieval is off). No network I/O.
 * LUCY_EINVAL with err when the URL is set without a model. Free with
 * lucy_embed_close. */
int lucy_embed_open(const struct lucy_config *cfg, struct lucy_embed **out, char *err,
                    size_t errlen);
void lucy_embed_close(struct lucy_embed *e);

/* The model name vectors are stored under (static for e's lifetime). */
const char *lucy_embed_model(const struct lucy_embed *e);

/* Embeds texts[0..n) (1 <= n <= LUCY_EMBED_BATCH_MAX, UTF-8) in one
 * request. On success *vectors is a malloc'd array of n * *dim floats
 * (row i = texts[i], L2-normalised so a dot product is the cosine), caller
 * frees. Returns 0; LUCY_EUNAVAIL / LUCY_ETIMEDOUT when the server is
 * down, slow or answers 5xx/429 (retry later); LUCY_EINVAL when it refuses
 * the request (4xx) or answers something that is not n vectors of one
 * dimension (err says which). Thread-safe (a keep-alive pool inside). */
int lucy_embed_texts(struct lucy_embed *e, const char *const *texts, size_t n, float **vectors,
                     int *dim, char *err, size_t errlen);

#endif
