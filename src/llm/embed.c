/*
 * embed.c - the OpenAI-compatible embeddings client (embed.h).
 *
 * The reply is checked, not trusted: exactly n items, each index once,
 * each embedding an array of numbers of one dimension (1..DIM_MAX). Vectors
 * are L2-normalised here, once, so every later comparison is a dot product.
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../config.h"
#include "../error.h"
#include "../http/client.h"
#include "embed.h"

#define REPLY_CAP_BYTES (64u * 1024 * 1024) /* 64 texts x 8192 floats as JSON text */

struct lucy_embed {
    char *url;                  /* {LUCY_EMBED_URL}/embeddings */
    char *model;                /* LUCY_EMBED_MODEL */
    char *api_key;              /* LUCY_EMBED_API_KEY or NULL (secret: never logged) */
    long timeout_ms;            /* LUCY_EMBED_TIMEOUT_MS */
    struct lucy_http_pool pool; /* keep-alive handles */
};

int lucy_embed_open(const struct lucy_config *cfg, struct lucy_embed **out, char *err,
                    size_t errlen)
{
    *out = NULL;
    if (!cfg->embed_url || !*cfg->embed_url)
        return 0;
    if (!cfg->embed_model || !*cfg->embed_model) {
        snprintf(err, errlen,
                 "LUCY_EMBED_URL is set but LUCY_EMBED_MODEL is not: name the "
                 "embedding model (e.g. nomic-embed-text)");
        return LUCY_EINVAL;
    }
    struct lucy_embed *e = calloc(1, sizeof *e);
    if (!e)
        return LUCY_ENOMEM;
    e->pool = (struct lucy_http_pool)LUCY_HTTP_POOL_INIT;
    size_t n = strlen(cfg->embed_url);
    while (n && cfg->embed_url[n - 1] == '/')
        n--;
    if (asprintf(&e->url, "%.*s/embeddings", (int)n, cfg->embed_url) < 0)
        e->url = NULL;
    e->model = strdup(cfg->embed_model);
    e->api_key = cfg->embed_api_key && *cfg->embed_api_key ? strdup(cfg->embed_api_key) : NULL;
    e->timeout_ms = cfg->embed_timeout_ms;
    if (!e->url || !e->model) {
        lucy_embed_close(e);
        return LUCY_ENOMEM;
    }
    *out = e;
    return 0;
}

void lucy_embed_close(struct lucy_embed *e)
{
    if (!e)
        return;
    lucy_http_pool_free(&e->pool);
    free(e->url);
    free(e->model);
    free(e->api_key);
    free(e);
}

const char *lucy_embed_model(const struct lucy_embed *e)
{
    return e->model;
}

/* Fills vectors (n rows of dim) from the reply's data; 0 or LUCY_EINVAL. */
static int parse_reply(json_t *reply, size_t n, float **vectors, int *dim, char *err, size_t errlen)
{
    json_t *data = json_object_get(reply, "data");
    if (!json_is_array(data) || json_array_size(data) != n) {
        snprintf(err, errlen, "the embedding server answered %zu vectors for %zu texts",
                 json_array_size(data), n);
        return LUCY_EINVAL;
    }
    size_t d = json_array_size(json_object_get(json_array_get(data, 0), "embedding"));
    if (d < 1 || d > LUCY_EMBED_DIM_MAX) {
        snprintf(err, errlen, "the embedding server answered vectors of %zu dimensions", d);
        return LUCY_EINVAL;
    }
    float *v = calloc(n * d, sizeof *v);
    char *seen = calloc(n, 1);
    int rc = v && seen ? 0 : LUCY_ENOMEM;
    size_t i;
    json_t *item;
    json_array_foreach(data, i, item)
    {
        if (rc)
            break;
        json_t *idx = json_object_get(item, "index"), *emb = json_object_get(item, "embedding");
        size_t at = json_is_integer(idx) ? (size_t)json_integer_value(idx) : i;
        if (at >= n || seen[at] || json_array_size(emb) != d) {
            snprintf(err, errlen, "the embedding server's item %zu has a bad index or dimension",
                     i);
            rc = LUCY_EINVAL;
            break;
        }
        seen[at] = 1;
        double norm = 0;
        for (size_t k = 0; k < d; k++) {
            json_t *x = json_array_get(emb, k);
            if (!json_is_number(x)) {
                snprintf(err, errlen, "the embedding server's item %zu holds a non-number", i);
                rc = LUCY_EINVAL;
                break;
            }
            v[at * d + k] = (float)json_number_value(x);
            norm += (double)v[at * d + k] * v[at * d + k];
        }
        norm = sqrt(norm);
        for (size_t k = 0; rc == 0 && norm > 0 && k < d; k++)
            v[at * d + k] = (float)(v[at * d + k] / norm);
    }
    free(seen);
    if (rc) {
        free(v);
        return rc;
    }
    *vectors = v;
    *dim = (int)d;
    return 0;
}

int lucy_embed_texts(struct lucy_embed *e, const char *const *texts, size_t n, float **vectors,
                     int *dim, char *err, size_t errlen)
{
    *vectors = NULL;
    *dim = 0;
    if (n < 1 || n > LUCY_EMBED_BATCH_MAX) {
        snprintf(err, errlen, "%zu texts in one embedding request (1 to %d)", n,
                 LUCY_EMBED_BATCH_MAX);
        return LUCY_EINVAL;
    }
    json_t *input = json_array();
    for (size_t i = 0; input && i < n; i++)
        json_array_append_new(input, json_string(texts[i] ? texts[i] : ""));
    json_t *req =
        json_pack("{s:s,s:o,s:s}", "model", e->model, "input", input, "encoding_format", "float");
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (!body)
        return LUCY_ENOMEM;
    struct lucy_http_call c = {.method = "POST",
                               .url = e->url,
                               .bearer = e->api_key,
                               .body = body,
                               .body_len = strlen(body),
                               .timeout_ms = e->timeout_ms,
                               .reply_cap = REPLY_CAP_BYTES};
    int rc = lucy_http_pool_perform(&e->pool, &c);
    free(body);
    if (rc) {
        snprintf(err, errlen, "embedding server unreachable: %s", c.error);
    } else if (c.status == 429 || c.status >= 500) {
        snprintf(err, errlen, "embedding server answered HTTP %ld", c.status);
        rc = LUCY_EUNAVAIL;
    } else if (c.status != 200) {
        snprintf(err, errlen, "embedding server refused the request: HTTP %ld %.160s", c.status,
                 c.reply ? c.reply : "");
        rc = LUCY_EINVAL;
    } else {
        json_t *reply = json_loadb(c.reply ? c.reply : "", c.reply_len, 0, NULL);
        rc = reply ? parse_reply(reply, n, vectors, dim, err, errlen) : LUCY_EINVAL;
        if (!reply)
            snprintf(err, errlen, "the embedding server's answer is not JSON");
        json_decref(reply);
    }
    lucy_http_call_free(&c);
    return rc;
}
