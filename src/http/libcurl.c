/*
 * libcurl.c - libcurl opened on first use (see libcurl.h, dl.h).
 */
#include "libcurl.h"

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>

#include "../dl.h"

#define SONAME "libcurl.so.4"

#define ROW(slot)                                                                                  \
    {                                                                                              \
        "curl_" #slot, offsetof(struct lucy_libcurl, slot)                                         \
    }
static const struct lucy_dl_symbol functions[] = {
    ROW(global_init),    ROW(easy_init),     ROW(easy_reset),
    ROW(easy_setopt),    ROW(easy_perform),  ROW(easy_getinfo),
    ROW(easy_cleanup),   ROW(easy_strerror), ROW(slist_append),
    ROW(slist_free_all), ROW(mime_init),     ROW(mime_addpart),
    ROW(mime_name),      ROW(mime_data),     ROW(mime_filename),
    ROW(mime_type),      ROW(mime_free),     ROW(url),
    ROW(url_set),        ROW(url_get),       ROW(url_cleanup),
    ROW(free),
};
#undef ROW

/* Each slot has the type of the function it holds: curl.h's own
 * prototypes, checked at compile time (nothing is linked). */
#define SAME_TYPE(slot)                                                                            \
    _Static_assert(__builtin_types_compatible_p(__typeof__(&curl_##slot),                          \
                                                __typeof__(((struct lucy_libcurl *)0)->slot)),     \
                   "lucy_libcurl." #slot " is not the type of curl_" #slot)
SAME_TYPE(global_init);
SAME_TYPE(easy_init);
SAME_TYPE(easy_reset);
SAME_TYPE(easy_setopt);
SAME_TYPE(easy_perform);
SAME_TYPE(easy_getinfo);
SAME_TYPE(easy_cleanup);
SAME_TYPE(easy_strerror);
SAME_TYPE(slist_append);
SAME_TYPE(slist_free_all);
SAME_TYPE(mime_init);
SAME_TYPE(mime_addpart);
SAME_TYPE(mime_name);
SAME_TYPE(mime_data);
SAME_TYPE(mime_filename);
SAME_TYPE(mime_type);
SAME_TYPE(mime_free);
SAME_TYPE(url);
SAME_TYPE(url_set);
SAME_TYPE(url_get);
SAME_TYPE(url_cleanup);
SAME_TYPE(free);
#undef SAME_TYPE

static pthread_once_t once = PTHREAD_ONCE_INIT;
static struct lucy_libcurl table;
static const struct lucy_libcurl *opened; /* &table once it is whole and initialised */
static char error[512];

static void open_libcurl(void)
{
    char why[400];
    if (lucy_dl_open(SONAME, functions, sizeof functions / sizeof functions[0], &table, why,
                     sizeof why) != 0) {
        snprintf(error, sizeof error,
                 "libcurl cannot be opened (%s); install Debian's libcurl4, then restart lucy",
                 why);
        return;
    }
    if (table.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(error, sizeof error,
                 "libcurl cannot be initialised (curl_global_init failed: out of memory or a "
                 "broken TLS library); reinstall Debian's libcurl4");
        return;
    }
    opened = &table;
}

const struct lucy_libcurl *lucy_libcurl(void)
{
    pthread_once(&once, open_libcurl);
    return opened;
}

const char *lucy_libcurl_error(void)
{
    pthread_once(&once, open_libcurl);
    return error;
}
