/*
 * healthcheck.c - `lucy healthcheck [--live|--ready] [--url URL]`: exit 0
 * when the endpoint answers 200 within 3 s, else 1. Made for a Docker
 * HEALTHCHECK, so the image needs neither curl nor Python.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

#include "../config.h"
#include "cmd.h"

struct opts {
    const char *path; /* "/health/live" or "/health/ready" */
    const char *url;  /* full URL override */
};

static int own_flag(const char *arg, const char *next, void *state)
{
    struct opts *o = state;
    if (strcmp(arg, "--live") == 0) {
        o->path = "/health/live";
        return 1;
    }
    if (strcmp(arg, "--ready") == 0) {
        o->path = "/health/ready";
        return 1;
    }
    if (strcmp(arg, "--url") == 0) {
        if (!next) {
            lucy_cmd_error("--url needs a URL");
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

int lucy_cmd_healthcheck(int argc, char **argv)
{
    struct lucy_config cfg;
    struct opts o = {"/health/live", NULL};
    int n_pos;
    int rc = lucy_cmd_config(&cfg, argc, argv, own_flag, &o, NULL, 0, &n_pos);
    if (rc) {
        lucy_config_free(&cfg);
        return rc;
    }
    char url[1024];
    if (o.url) {
        snprintf(url, sizeof url, "%s", o.url);
    } else {
        const char *host = cfg.listen_host;
        if (strcmp(host, "0.0.0.0") == 0)
            host = "127.0.0.1";
        else if (strcmp(host, "::") == 0)
            host = "::1";
        snprintf(url, sizeof url, strchr(host, ':') ? "http://[%s]:%d%s" : "http://%s:%d%s", host,
                 cfg.listen_port, o.path);
    }
    lucy_config_free(&cfg);

    CURL *c = curl_easy_init();
    if (!c) {
        lucy_cmd_error("cannot initialise libcurl");
        return LUCY_EXIT_FAILED;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 3000L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    CURLcode res = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    if (res != CURLE_OK) {
        fprintf(stderr, "unhealthy: %s: %s\n", url, curl_easy_strerror(res));
        return LUCY_EXIT_FAILED;
    }
    if (status != 200) {
        fprintf(stderr, "unhealthy: %s answered HTTP %ld\n", url, status);
        return LUCY_EXIT_FAILED;
    }
    return LUCY_EXIT_OK;
}
