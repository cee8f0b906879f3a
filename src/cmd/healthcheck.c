/*
 * healthcheck.c - `lucy healthcheck [--live|--ready] [--url URL]`: exit 0
 * when the endpoint answers 200 within 3 s, 1 when it does not, 2 on a
 * usage error. Made for a Docker HEALTHCHECK, so the image needs neither
 * curl nor Python.
 *
 * Which endpoint: GET /health/live by default (or with --live), or
 * /health/ready with --ready, on the address lucy listens on
 * (LUCY_LISTEN / --listen; a wildcard address is asked on loopback).
 * --url is the FULL URL of the endpoint, path included, for a lucy
 * elsewhere; it cannot be combined with --live/--ready (which path would
 * win is not obvious, so both are refused), nor are --live and --ready
 * together.
 *
 * A failure is one line on stderr, "lucy: unhealthy: <url>: <what
 * happened>; <what to do>" (the CLI rule, DESIGN §3), the hint chosen from
 * the tables below by libcurl's error code or the HTTP status.
 */
#include <stdio.h>
#include <string.h>

#include "../config.h"
#include "../http/libcurl.h"
#include "cmd.h"

#define TIMEOUT_MS         3000L
#define CONNECT_TIMEOUT_MS 2000L

struct opts {
    const char *path;      /* "/health/live" or "/health/ready" */
    const char *path_flag; /* the flag that chose it ("--live", "--ready"), or NULL */
    const char *url;       /* --url: the full URL, or NULL */
};

/* The endpoint flags. */
static const struct {
    const char *flag;
    const char *path;
} endpoints[] = {
    {"--live", "/health/live"},
    {"--ready", "/health/ready"},
};

static int own_flag(const char *arg, const char *next, void *state)
{
    struct opts *o = state;
    for (size_t i = 0; i < sizeof endpoints / sizeof endpoints[0]; i++) {
        if (strcmp(arg, endpoints[i].flag) != 0)
            continue;
        if (o->path_flag && strcmp(o->path_flag, arg) != 0) {
            lucy_cmd_error("%s and %s cannot be combined; give one of them (the default is --live)",
                           o->path_flag, arg);
            return -1;
        }
        o->path_flag = endpoints[i].flag;
        o->path = endpoints[i].path;
        return 1;
    }
    if (strcmp(arg, "--url") == 0) {
        if (!next) {
            lucy_cmd_error("--url needs a URL; give the full URL of the endpoint, e.g. "
                           "http://127.0.0.1:8765/health/live");
            return -1;
        }
        o->url = next;
        return 2;
    }
    return 0;
}

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p, (void)arg;
    return size * n;
}

/* What to do when the request itself failed, by libcurl code. */
static const struct {
    CURLcode code;
    const char *what; /* what happened, in words */
    const char *hint; /* what to do */
} curl_hints[] = {
    {CURLE_COULDNT_CONNECT, "couldn't connect",
     "is lucy running on that address? (LUCY_LISTEN, or --url)"},
    {CURLE_OPERATION_TIMEDOUT, "no answer within 3 s",
     "lucy may be hung or the host overloaded; check its log and `lucy doctor`"},
    {CURLE_COULDNT_RESOLVE_HOST, "couldn't resolve the host name",
     "check the host in LUCY_LISTEN or --url"},
    {CURLE_GOT_NOTHING, "the server closed the connection without an answer",
     "is something other than lucy listening there? check LUCY_LISTEN or --url"},
    {CURLE_RECV_ERROR, "the connection broke while reading the answer",
     "check lucy's log; it may be restarting"},
};

/* What to do when the endpoint answered, but not 200, by HTTP status. */
static const struct {
    long status;
    const char *hint;
} status_hints[] = {
    {503, "lucy is up but not ready; GET /health/ready or `lucy doctor` says which check fails "
          "and what to do"},
    {404, "that is not a lucy health endpoint; use /health/live or /health/ready"},
    {401, "that is not a lucy health endpoint (they need no token); use /health/live or "
          "/health/ready"},
};

int lucy_cmd_healthcheck(int argc, char **argv)
{
    struct lucy_config cfg;
    struct opts o = {"/health/live", NULL, NULL};
    int n_pos;
    int rc = lucy_cmd_config(&cfg, argc, argv, own_flag, &o, NULL, 0, &n_pos);
    if (rc) {
        lucy_config_free(&cfg);
        return rc;
    }
    if (o.url && o.path_flag) {
        lucy_config_free(&cfg);
        lucy_cmd_error("--url is the full URL of the endpoint, path included, so it cannot be "
                       "combined with %s; give either --url http://HOST:PORT%s or %s alone",
                       o.path_flag, o.path, o.path_flag);
        return LUCY_EXIT_USAGE;
    }
    char url[1024];
    if (o.url) {
        snprintf(url, sizeof url, "%.1000s", o.url);
    } else {
        const char *host = cfg.listen_host;
        if (strcmp(host, "0.0.0.0") == 0)
            host = "127.0.0.1";
        else if (strcmp(host, "::") == 0)
            host = "::1";
        snprintf(url, sizeof url, strchr(host, ':') ? "http://[%.900s]:%d%s" : "http://%.900s:%d%s",
                 host, cfg.listen_port, o.path);
    }
    lucy_config_free(&cfg);

    const struct lucy_libcurl *cu = lucy_libcurl();
    if (!cu) {
        lucy_cmd_error("%s", lucy_libcurl_error());
        return LUCY_EXIT_FAILED;
    }
    CURL *c = cu->easy_init();
    if (!c) {
        lucy_cmd_error("cannot initialise libcurl (out of memory?); retry");
        return LUCY_EXIT_FAILED;
    }
    cu->easy_setopt(c, CURLOPT_URL, url);
    cu->easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    cu->easy_setopt(c, CURLOPT_TIMEOUT_MS, TIMEOUT_MS);
    cu->easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
    cu->easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    cu->easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    CURLcode res = cu->easy_perform(c);
    long status = 0;
    cu->easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    cu->easy_cleanup(c);

    if (res == CURLE_URL_MALFORMAT || res == CURLE_UNSUPPORTED_PROTOCOL) {
        lucy_cmd_error("--url '%s' is not an http(s) URL; give the full URL of the endpoint, e.g. "
                       "http://127.0.0.1:8765/health/live",
                       url);
        return LUCY_EXIT_USAGE;
    }
    if (res != CURLE_OK) {
        const char *what = cu->easy_strerror(res);
        const char *hint = "check that lucy is running and reachable at that address";
        for (size_t i = 0; i < sizeof curl_hints / sizeof curl_hints[0]; i++)
            if (curl_hints[i].code == res) {
                what = curl_hints[i].what;
                hint = curl_hints[i].hint;
                break;
            }
        lucy_cmd_error("unhealthy: %s: %s; %s", url, what, hint);
        return LUCY_EXIT_FAILED;
    }
    if (status != 200) {
        const char *hint = "check lucy's log and `lucy doctor`";
        for (size_t i = 0; i < sizeof status_hints / sizeof status_hints[0]; i++)
            if (status_hints[i].status == status) {
                hint = status_hints[i].hint;
                break;
            }
        lucy_cmd_error("unhealthy: %s: answered HTTP %ld; %s", url, status, hint);
        return LUCY_EXIT_FAILED;
    }
    return LUCY_EXIT_OK;
}
