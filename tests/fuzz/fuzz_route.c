/*
 * fuzz_route.c - libFuzzer driver for the HTTP route matcher (DESIGN §11):
 * lucy_route_match() over a table shaped like the daemon's, with arbitrary
 * method and path bytes.
 *
 * Input layout: the bytes up to the first newline (at most 15) are the
 * method, the rest is the path; both are used as C strings, as
 * libmicrohttpd hands them over (a NUL byte ends them). Properties checked
 * besides "no crash, no leak, no undefined behaviour":
 *   FOUND      the row's method is the request's (GET for HEAD); one
 *              capture per `{name}` segment of its pattern, each non-empty
 *              and without '/'; putting the captures back into the pattern
 *              gives the path exactly; no row listed before it matches.
 *   NO_METHOD  the allow list is non-empty, lists only methods of rows
 *              whose pattern matches the path, and not the request's.
 *   NO_PATH    no row matches the path whatever the method.
 * Every capture is freed.
 *
 * Built by scripts/fuzz with clang -fsanitize=fuzzer,address,undefined;
 * seeds are in tests/fuzz/corpus/route/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"

/* The daemon's routes (src/health/core.c, src/index/plugin.c,
 * src/plugins/call_recordings/routes.c, src/plugins/whatsapp/, src/web/),
 * plus rows that exercise the matcher's limits: more captures than
 * LUCY_ROUTE_MAX_PARAMS, adjacent captures, a capture first. Handlers are
 * never called. */
static const struct lucy_route routes[] = {
    {"GET", "/", NULL, 0, 0, NULL},
    {"GET", "/config", NULL, 1, 0, NULL},
    {"GET", "/health/live", NULL, 0, 0, NULL},
    {"GET", "/health", NULL, 0, 0, NULL},
    {"GET", "/health/ready", NULL, 0, 0, NULL},
    {"GET", "/metrics", NULL, 0, 0, NULL},
    {"GET", "/search", NULL, 1, 0, NULL},
    {"GET", "/rag/stats", NULL, 1, 0, NULL},
    {"GET", "/recordings", NULL, 1, 0, NULL},
    {"POST", "/recordings/scan", NULL, 1, 0, NULL},
    {"GET", "/recordings/{id}", NULL, 1, 0, NULL},
    {"POST", "/recordings/{id}/transcribe", NULL, 1, 0, NULL},
    {"GET", "/jobs/{id}", NULL, 1, 0, NULL},
    {"GET", "/recordings/{id}/audio", NULL, 1, 0, NULL},
    {"GET", "/webhook/whatsapp", NULL, 0, 0, NULL},
    {"POST", "/webhook/whatsapp", NULL, 0, 3 * 1024 * 1024, NULL},
    {"GET", "/contacts", NULL, 1, 0, NULL},
    {"GET", "/contacts/{id}", NULL, 1, 0, NULL},
    {"PUT", "/contacts/{id}", NULL, 1, 0, NULL},
    {"GET", "/ui/{file}", NULL, 0, 0, NULL},
    {"DELETE", "/a/{b}/{c}/{d}/{e}", NULL, 1, 0, NULL},
    {"GET", "/a/{b}/{c}/{d}/{e}/{f}", NULL, 1, 0, NULL},
    {"PUT", "/{x}/y", NULL, 1, 0, NULL},
    {"GET", "/{x}", NULL, 1, 0, NULL},
};
#define N_ROUTES (sizeof routes / sizeof routes[0])

static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"};

/* Frees the captures of a FOUND match. */
static void free_params(char **params, int n)
{
    for (int i = 0; i < n; i++)
        free(params[i]);
}

/* 1 when row r's pattern matches path (any method). */
static int pattern_matches(const struct lucy_route *r, const char *path)
{
    const struct lucy_route *out = NULL;
    char *params[LUCY_ROUTE_MAX_PARAMS] = {0};
    int n = 0;
    char allow[64];
    if (lucy_route_match(r, 1, r->method, path, &out, params, &n, allow, sizeof allow) !=
        LUCY_ROUTE_FOUND)
        return 0;
    free_params(params, n);
    return 1;
}

/* FOUND: the pattern with the captures put back is the path. */
static void check_found(const struct lucy_route *r, const char *method, const char *path,
                        char **params, int n)
{
    const char *want = strcmp(method, "HEAD") == 0 ? "GET" : method;
    if (r < routes || r >= routes + N_ROUTES || strcmp(r->method, want) != 0)
        abort();
    for (const struct lucy_route *before = routes; before < r; before++)
        if (strcmp(before->method, want) == 0 && pattern_matches(before, path))
            abort(); /* the first matching row wins */
    size_t at = 0, path_len = strlen(path);
    int k = 0;
    for (const char *p = r->pattern; *p;) {
        if (*p == '{') {
            const char *close = strchr(p, '}');
            if (!close || k >= n)
                abort();
            size_t len = strlen(params[k]);
            if (len == 0 || strchr(params[k], '/') || len > path_len - at ||
                memcmp(path + at, params[k], len) != 0)
                abort();
            at += len;
            k++;
            p = close + 1;
        } else {
            if (at >= path_len || path[at] != *p)
                abort();
            at++;
            p++;
        }
    }
    if (k != n || at != path_len)
        abort();
}

/* NO_METHOD: every item of allow is the method of a row matching path,
 * and none is the request's. */
static void check_no_method(const char *method, const char *path, const char *allow)
{
    const char *want = strcmp(method, "HEAD") == 0 ? "GET" : method;
    if (!allow[0])
        abort();
    char copy[64];
    memcpy(copy, allow, sizeof copy);
    char *save = NULL;
    for (char *item = strtok_r(copy, ", ", &save); item; item = strtok_r(NULL, ", ", &save)) {
        if (strcmp(item, want) == 0)
            abort();
        int found = 0;
        for (size_t i = 0; i < N_ROUTES && !found; i++)
            found = strcmp(routes[i].method, item) == 0 && pattern_matches(&routes[i], path);
        if (!found)
            abort();
    }
}

static void match(const char *method, const char *path)
{
    const struct lucy_route *r = NULL;
    char *params[LUCY_ROUTE_MAX_PARAMS] = {0};
    int n = -1;
    char allow[64]; /* as src/http/server.c */
    enum lucy_route_match_result m =
        lucy_route_match(routes, N_ROUTES, method, path, &r, params, &n, allow, sizeof allow);
    switch (m) {
    case LUCY_ROUTE_FOUND:
        if (n < 0 || n > LUCY_ROUTE_MAX_PARAMS)
            abort();
        check_found(r, method, path, params, n);
        free_params(params, n);
        break;
    case LUCY_ROUTE_NO_METHOD:
        check_no_method(method, path, allow);
        break;
    case LUCY_ROUTE_NO_PATH:
        for (size_t i = 0; i < N_ROUTES; i++)
            if (pattern_matches(&routes[i], path))
                abort();
        break;
    default:
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char method[16];
    size_t n = 0;
    while (n < size && n < sizeof method - 1 && data[n] != '\n')
        n++;
    memcpy(method, data, n);
    method[n] = '\0';
    size_t off = n < size && data[n] == '\n' ? n + 1 : n;
    char *path = malloc(size - off + 1);
    if (!path)
        return 0;
    memcpy(path, data + off, size - off);
    path[size - off] = '\0';
    match(method, path);
    /* The same path with every common method, so a path the fuzzer finds
     * is checked against each row whatever the method bytes were. */
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        match(methods[i], path);
    free(path);
    return 0;
}
