/*
 * route.c - matching a request path against the route table.
 *
 * Segment by segment: a literal segment must be equal, "{name}" captures one
 * non-empty segment. Tables are small (tens of rows), so a linear scan is
 * clearer than a trie and fast enough.
 */
#include <stdlib.h>
#include <string.h>

#include "http.h"

/* Matches one pattern; on success stores captures (malloc'd) in params. */
static int match_pattern(const char *pattern, const char *path, char **params, int *n_params)
{
    int n = 0;
    const char *p = pattern, *s = path;
    while (*p && *s) {
        if (*p != '/' || *s != '/')
            goto fail;
        p++, s++;
        const char *pe = strchr(p, '/'), *se = strchr(s, '/');
        size_t pl = pe ? (size_t)(pe - p) : strlen(p);
        size_t sl = se ? (size_t)(se - s) : strlen(s);
        if (pl >= 2 && p[0] == '{' && p[pl - 1] == '}') {
            if (sl == 0 || n >= LUCY_ROUTE_MAX_PARAMS)
                goto fail;
            params[n] = strndup(s, sl);
            if (!params[n])
                goto fail;
            n++;
        } else if (pl != sl || strncmp(p, s, pl) != 0) {
            goto fail;
        }
        p += pl, s += sl;
    }
    if (*p || *s)
        goto fail;
    *n_params = n;
    return 1;
fail:
    for (int i = 0; i < n; i++) {
        free(params[i]);
        params[i] = NULL;
    }
    return 0;
}

enum lucy_route_match_result lucy_route_match(const struct lucy_route *routes, size_t n,
                                              const char *method, const char *path,
                                              const struct lucy_route **out, char **params,
                                              int *n_params, char *allow, size_t allow_len)
{
    enum lucy_route_match_result result = LUCY_ROUTE_NO_PATH;
    const char *m = strcmp(method, "HEAD") == 0 ? "GET" : method;
    size_t used = 0;
    if (allow_len)
        allow[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        char *caps[LUCY_ROUTE_MAX_PARAMS] = {0};
        int ncaps = 0;
        if (!match_pattern(routes[i].pattern, path, caps, &ncaps))
            continue;
        if (strcmp(routes[i].method, m) == 0) {
            for (int k = 0; k < ncaps; k++)
                params[k] = caps[k];
            *n_params = ncaps;
            *out = &routes[i];
            return LUCY_ROUTE_FOUND;
        }
        for (int k = 0; k < ncaps; k++)
            free(caps[k]);
        result = LUCY_ROUTE_NO_METHOD;
        if (allow_len && !strstr(allow, routes[i].method)) {
            int w = snprintf(allow + used, allow_len - used, "%s%s", used ? ", " : "",
                             routes[i].method);
            if (w > 0 && (size_t)w < allow_len - used)
                used += (size_t)w;
        }
    }
    return result;
}
