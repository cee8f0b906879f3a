/*
 * libcurl.h - libcurl's functions, the library opened the first time lucy
 * talks to another server (dl.h says why it is not linked).
 *
 * lucy_libcurl() opens libcurl.so.4 (Debian libcurl4) once per process,
 * runs curl_global_init(CURL_GLOBAL_DEFAULT) and hands out the table of
 * the functions lucy calls, each with libcurl's own contract (its man
 * pages).
 *
 * Threads: lucy_libcurl() may be called from any thread at any time; the
 * first call opens the library under a pthread_once and the others wait
 * for it. curl_global_init is thread-safe from libcurl 7.84 on (feature
 * "threadsafe", curl_global_init(3); Debian 12 ships 7.88.1), so it need
 * not run before lucy's threads start.
 */
#ifndef LUCY_HTTP_LIBCURL_H
#define LUCY_HTTP_LIBCURL_H

#include <curl/curl.h>

/* Slot x is libcurl's curl_x (libcurl.c's table spells each name). */
struct lucy_libcurl {
    CURLcode (*global_init)(long flags); /* run by lucy_libcurl() itself */
    CURL *(*easy_init)(void);
    void (*easy_reset)(CURL *c);
    CURLcode (*easy_setopt)(CURL *c, CURLoption opt, ...);
    CURLcode (*easy_perform)(CURL *c);
    CURLcode (*easy_getinfo)(CURL *c, CURLINFO info, ...);
    void (*easy_cleanup)(CURL *c);
    const char *(*easy_strerror)(CURLcode code);
    struct curl_slist *(*slist_append)(struct curl_slist *l, const char *s);
    void (*slist_free_all)(struct curl_slist *l);
    curl_mime *(*mime_init)(CURL *c);
    curl_mimepart *(*mime_addpart)(curl_mime *m);
    CURLcode (*mime_name)(curl_mimepart *p, const char *name);
    CURLcode (*mime_data)(curl_mimepart *p, const char *data, size_t n);
    CURLcode (*mime_filename)(curl_mimepart *p, const char *name);
    CURLcode (*mime_type)(curl_mimepart *p, const char *type);
    void (*mime_free)(curl_mime *m);
    CURLU *(*url)(void);
    CURLUcode (*url_set)(CURLU *u, CURLUPart what, const char *part, unsigned int flags);
    CURLUcode (*url_get)(CURLU *u, CURLUPart what, char **part, unsigned int flags);
    void (*url_cleanup)(CURLU *u);
    void (*free)(void *p);
};

/* The table, libcurl opened and initialised on the first call; the same
 * table for the life of the process. NULL when libcurl cannot be opened or
 * initialised: lucy_libcurl_error() then says why, with the remedy. */
const struct lucy_libcurl *lucy_libcurl(void);

/* Why lucy_libcurl() returned NULL ("libcurl cannot be opened (libcurl.so.4:
 * cannot open shared object file ...); install Debian's libcurl4, then
 * restart lucy"), or "" when it did not. A constant string, valid for the
 * life of the process. */
const char *lucy_libcurl_error(void);

#endif
