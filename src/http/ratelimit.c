/*
 * ratelimit.c - the per-client API rate limit (DESIGN §4, §14): on the
 * routes of limited_routes[] (/v1/..., /ask, /mcp) each client may make
 * LUCY_RATE_LIMIT requests per period, up to that many at once; past it
 * the server answers 429 rate_limited with Retry-After before reading the
 * body or running the handler.
 *
 * A client is its bearer token (hashed: the token itself never becomes a
 * key), else its address. The decision is one GCRA step of the kv
 * (lucy_kv_ratelimit_volatile, src/kv/): with Redis every instance sharing
 * it counts against the same budget, on Redis's clock; embedded, the state
 * is in this process's memory (a store write would cost a fsync per
 * request, and a counter needs no durability: a restart forgets it). When the kv fails,
 * LUCY_RATE_LIMIT_ON_ERROR decides (kv.c). Other routes (/recordings, /search, the UI's calls, the
 * webhook) are not limited: the UI polls them, and the webhook has its per-sender limit.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "../config.h"
#include "../kv/kv.h"
#include "../lucy.h"
#include "server_int.h"

/* The limited routes: a pattern equal to `path`, or under it when
 * `subtree` is 1. */
static const struct {
    const char *path; /* route pattern or its prefix */
    int subtree;      /* 1: every pattern below path/ too */
} limited_routes[] = {
    {"/v1", 1},
    {"/ask", 0},
    {"/mcp", 0},
};

int lucy_http_ratelimit_applies(const char *pattern)
{
    for (size_t i = 0; i < sizeof limited_routes / sizeof limited_routes[0]; i++) {
        size_t n = strlen(limited_routes[i].path);
        if (strncmp(pattern, limited_routes[i].path, n) == 0 &&
            (pattern[n] == '\0' || (limited_routes[i].subtree && pattern[n] == '/')))
            return 1;
    }
    return 0;
}

/* The client's key: "api:t:<first 128 bits of SHA-256(token) in hex>" for
 * a bearer token lucy checked (LUCY_API_TOKEN set), else
 * "api:a:<address>": without a token to check, a made-up bearer string per
 * request would otherwise be a fresh budget each time. */
static void client_key(const struct lucy_http *h, struct MHD_Connection *conn, char *key,
                       size_t len)
{
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (h->token && auth && strncasecmp(auth, "Bearer ", 7) == 0 && auth[7]) {
        unsigned char d[EVP_MAX_MD_SIZE];
        unsigned int dl = 0;
        if (EVP_Digest(auth + 7, strlen(auth + 7), d, &dl, EVP_sha256(), NULL) && dl >= 16) {
            int w = snprintf(key, len, "api:t:");
            for (unsigned i = 0; i < 16 && (size_t)w + 2 < len; i++)
                w += snprintf(key + w, len - (size_t)w, "%02x", d[i]);
            return;
        }
    }
    char addr[INET6_ADDRSTRLEN] = "unknown";
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, addr, sizeof addr);
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, addr, sizeof addr);
    snprintf(key, len, "api:a:%s", addr);
}

int lucy_http_ratelimit_check(struct lucy_http *h, struct MHD_Connection *conn, const char *pattern,
                              struct lucy_http_response *resp)
{
    const struct lucy_config *cfg = h->ctx ? h->ctx->cfg : NULL;
    struct lucy_kv *kv = h->ctx ? h->ctx->kv : NULL;
    if (!kv || !cfg || cfg->rate_limit_count <= 0 || !lucy_http_ratelimit_applies(pattern))
        return 0;
    char key[96];
    client_key(h, conn, key, sizeof key);
    struct lucy_kv_rate rate = {cfg->rate_limit_count, (int64_t)cfg->rate_limit_period_s * 1000,
                                cfg->rate_limit_count, 0};
    struct lucy_kv_rate_result r = {.allowed = 1};
    struct lucy_kv_error err = {0};
    /* volatile: the counters need no durability (no fsync per request);
     * on error r holds the policy's decision */
    lucy_kv_ratelimit_volatile(kv, key, &rate, &r, 0, &err);
    if (r.allowed)
        return 0;
    int64_t s = (r.retry_after_ms + 999) / 1000;
    int wait_s = s < 1 ? 1 : s > 86400 ? 86400 : (int)s;
    lucy_http_reply_error(resp, LUCY_HTTP_RATE_LIMITED, wait_s,
                          "too many requests from this client (LUCY_RATE_LIMIT=%s); nothing was "
                          "done: send it again in %d s",
                          cfg->rate_limit, wait_s);
    return 1;
}
