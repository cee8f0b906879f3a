/*
 * loader.c - loads the media module on demand and gives it back when it
 * has been idle (media.h), and the functions of asr.h / scan_int.h that
 * reach it.
 *
 * State: one process-wide record under one mutex - the dlopen() handle,
 * the table, how many holds are out and when the last one ended. A hold
 * is a call in progress, or an open recogniser instance (lucy_asr_open ..
 * lucy_asr_close). While the module is loaded and an idle time is set, a
 * reaper thread sleeps until the module has had no hold for that long,
 * unloads it (dlclose, then malloc_trim so freed heap goes back to the
 * kernel too) and ends: an idle lucy has neither the libraries nor the
 * thread. The module is looked for next to the binary (a build tree, or
 * an install that put both in one folder), then in LUCY_MEDIA_DIR, the
 * folder `meson install` puts it in.
 *
 * Libraries do not all leave on dlclose: one that binds a C++ unique
 * symbol (libx265, libopenmpt, glib's) is marked not-unloadable by glibc
 * and stays mapped; FFmpeg's own and pocketsphinx's go. Measured in
 * docs/benchmarks.md (bench-asr-idle).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "../clock.h"
#include "../error.h"
#include "../log.h"
#include "../thread.h"
#include "media.h"

#ifndef LUCY_MEDIA_DIR
#define LUCY_MEDIA_DIR "/usr/local/lib/lucy"
#endif
#define MODULE_FILE "lucy-media.so"

/* Defined when the module's code is linked into this program (unit tests,
 * fuzzers): then nothing is loaded. Weak, so the binary links without. */
extern const struct lucy_media lucy_media_module __attribute__((weak));

static struct {
    pthread_mutex_t mu;
    pthread_cond_t wake; /* CLOCK_MONOTONIC; signalled when the idle time changes */
    void *handle;        /* dlopen()'s; NULL while unloaded */
    const struct lucy_media *table;
    int holds;
    int64_t last_drop_ms; /* lucy_mono_ms() when the last hold ended */
    int idle_s;           /* 0 = never unload */
    int reaper;           /* 1 while the reaper thread runs */
    int failing;          /* the last load failed (logged once, not per file) */
    char failure[768];    /* and why, for /health */
} m = {.mu = PTHREAD_MUTEX_INITIALIZER};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static int remote; /* lucy_media_set_remote: calls go to media processes (remote.c) */

void lucy_media_set_remote(int on)
{
    __atomic_store_n(&remote, on, __ATOMIC_RELEASE);
}

static int is_remote(void)
{
    return __atomic_load_n(&remote, __ATOMIC_ACQUIRE);
}

void lucy_media_stop(void)
{
    if (is_remote())
        lucy_media_remote_stop();
}

void lucy_media_shutdown(void)
{
    if (is_remote())
        lucy_media_remote_shutdown();
}

static void init(void)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&m.wake, &a);
    pthread_condattr_destroy(&a);
}

/* Libraries among the module's dependencies whose constructors allocate
 * what nothing frees: unloaded and loaded again, each would leak that much
 * per cycle (libpixman 12 KB, libsrt 120 B, libgomp 8 B on Debian 12;
 * found with valgrind --keep-debuginfo=yes and LeakSanitizer across an
 * unload). They are pinned (RTLD_NODELETE) when the module first loads, so
 * their constructors run once per process. A name this system lacks is
 * skipped. */
static const char *const pinned_libraries[] = {
    "libpixman-1.so.0",
    "libsrt-gnutls.so.1.5",
    "libgomp.so.1",
};

static void pin_leaky_libraries(void)
{
    for (size_t i = 0; i < sizeof pinned_libraries / sizeof pinned_libraries[0]; i++) {
        /* Already loaded with the module: NOLOAD only adds NODELETE. The
         * handle is dropped on purpose: the library stays for good. */
        void *h = dlopen(pinned_libraries[i], RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
        if (h)
            dlclose(h);
    }
}

/* 1 when the module file at path links AddressSanitizer's runtime while
 * this process has none: dlopen() would abort the process inside ASan's
 * initialiser ("ASan runtime does not come first"), before any check of
 * ours could run. The needed library's name is in the file's dynamic
 * string table, so finding "libasan.so." in its bytes is enough. */
static int needs_missing_asan(const char *path)
{
    if (dlsym(RTLD_DEFAULT, "__asan_init"))
        return 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size <= 0) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        return 0;
    static const char asan[] = "libasan.so.";
    int found = memmem(map, (size_t)st.st_size, asan, sizeof asan - 1) != NULL;
    munmap(map, (size_t)st.st_size);
    return found;
}

/* dlopen()s dir/MODULE_FILE: 0, or -1 (err says why when the file is
 * there but does not load). */
static int open_in(const char *dir, char *err, size_t errlen)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, MODULE_FILE) >= (int)sizeof path)
        return -1;
    if (access(path, F_OK) != 0)
        return -1;
    if (needs_missing_asan(path)) {
        snprintf(err, errlen, "%.200s: built with AddressSanitizer, unlike this lucy", path);
        return -1;
    }
    static const size_t sizes[LUCY_MEDIA_N_SIZES] = LUCY_MEDIA_SIZES;
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    const struct lucy_media *t = h ? dlsym(h, "lucy_media_module") : NULL;
    if (!t || t->abi != LUCY_MEDIA_ABI || memcmp(t->sizes, sizes, sizeof sizes) != 0) {
        /* dlerror() names the file itself */
        snprintf(err, errlen, "%.200s%s%.300s", h ? path : "", h ? ": " : "",
                 !h  ? dlerror()
                 : t ? "built for another version of lucy"
                     : "no lucy_media_module in it");
        if (h)
            dlclose(h);
        return -1;
    }
    pin_leaky_libraries();
    m.handle = h;
    m.table = t;
    return 0;
}

static int load_locked(char *err, size_t errlen)
{
    char dirs[2][PATH_MAX] = {"", LUCY_MEDIA_DIR};
    ssize_t n = readlink("/proc/self/exe", dirs[0], sizeof dirs[0] - 1);
    if (n > 0) {
        dirs[0][n] = '\0';
        char *slash = strrchr(dirs[0], '/');
        if (slash)
            *slash = '\0';
    }
    char why[512] = "";
    int64_t t0_ms = lucy_mono_ms();
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        if (dirs[i][0] && open_in(dirs[i], why, sizeof why) == 0) {
            m.failing = 0;
            lucy_log(LUCY_LOG_DEBUG, "media module loaded", "{s:s,s:I,s:i}", "dir", dirs[i],
                     "load_ms", (json_int_t)(lucy_mono_ms() - t0_ms), "idle_unload_s", m.idle_s);
            return 0;
        }
    }
    snprintf(err, errlen,
             "cannot load the media module %s (FFmpeg and the speech recognisers): %s; "
             "install it next to the lucy binary or in %s",
             MODULE_FILE, why[0] ? why : "not found", LUCY_MEDIA_DIR);
    if (!m.failing)
        lucy_log(LUCY_LOG_ERROR, "media module not loaded", "{s:s}", "error", err);
    m.failing = 1;
    snprintf(m.failure, sizeof m.failure, "%s", err);
    return -1;
}

static void unload_locked(void)
{
    int64_t idle_s = (lucy_mono_ms() - m.last_drop_ms) / 1000;
    dlclose(m.handle);
    m.handle = NULL;
    m.table = NULL;
#ifdef __GLIBC__
    malloc_trim(0); /* what FFmpeg and the recogniser freed, back to the kernel */
#endif
    lucy_log(LUCY_LOG_INFO, "media module unloaded", "{s:I}", "idle_s", (json_int_t)idle_s);
}

static void *reaper(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&m.mu);
    while (m.handle && m.idle_s > 0) {
        int64_t idle_ms = (int64_t)m.idle_s * 1000;
        int64_t wait_ms = m.holds ? idle_ms : m.last_drop_ms + idle_ms - lucy_mono_ms();
        if (m.holds == 0 && wait_ms <= 0) {
            unload_locked();
            break;
        }
        struct timespec at = lucy_deadline_ms(CLOCK_MONOTONIC, wait_ms);
        pthread_cond_timedwait(&m.wake, &m.mu, &at);
    }
    m.reaper = 0;
    pthread_mutex_unlock(&m.mu);
    return NULL;
}

/* Starts the reaper if the module is loaded, an idle time is set and none
 * runs. Under m.mu. A reaper that cannot start leaves the module loaded. */
static void reap_later_locked(void)
{
    if (!m.handle || m.idle_s <= 0 || m.reaper)
        return;
    if (lucy_thread_detached(reaper, NULL) == 0)
        m.reaper = 1;
}

const struct lucy_media *lucy_media_hold(char *err, size_t errlen)
{
    if (&lucy_media_module)
        return &lucy_media_module;
    if (is_remote())
        return lucy_media_remote_ready(err, errlen) == 0 ? &lucy_media_remote : NULL;
    pthread_once(&init_once, init);
    pthread_mutex_lock(&m.mu);
    if (!m.handle && load_locked(err, errlen) != 0) {
        pthread_mutex_unlock(&m.mu);
        return NULL;
    }
    m.holds++;
    reap_later_locked();
    const struct lucy_media *t = m.table;
    pthread_mutex_unlock(&m.mu);
    return t;
}

void lucy_media_drop(void)
{
    if (&lucy_media_module || is_remote())
        return;
    pthread_mutex_lock(&m.mu);
    m.holds--;
    m.last_drop_ms = lucy_mono_ms();
    pthread_mutex_unlock(&m.mu);
}

void lucy_media_set_idle_unload(int idle_s)
{
    if (is_remote()) {
        lucy_media_remote_set_idle(idle_s);
        return;
    }
    pthread_once(&init_once, init);
    pthread_mutex_lock(&m.mu);
    m.idle_s = idle_s > 0 ? idle_s : 0;
    reap_later_locked();
    pthread_cond_signal(&m.wake);
    pthread_mutex_unlock(&m.mu);
}

int lucy_media_loaded(void)
{
    if (&lucy_media_module)
        return 1;
    if (is_remote())
        return lucy_media_remote_alive() > 0;
    pthread_mutex_lock(&m.mu);
    int loaded = m.handle != NULL;
    pthread_mutex_unlock(&m.mu);
    return loaded;
}

int lucy_media_failure(char *why, size_t len)
{
    if (&lucy_media_module)
        return 0;
    if (is_remote())
        return lucy_media_remote_failure(why, len);
    pthread_mutex_lock(&m.mu);
    int failing = m.failing;
    if (failing)
        snprintf(why, len, "%s", m.failure);
    pthread_mutex_unlock(&m.mu);
    return failing;
}

void lucy_media_metrics(void *arg, FILE *out)
{
    (void)arg;
    fprintf(out,
            "# HELP lucy_media_loaded 1 while FFmpeg and the speech recognisers are in "
            "memory (loaded for media work, unloaded after LUCY_ASR_IDLE_UNLOAD_S).\n"
            "# TYPE lucy_media_loaded gauge\nlucy_media_loaded %d\n",
            lucy_media_loaded());
}

/* ---- asr.h and scan_int.h, through the module ------------------------- */

/* The functions below hold the module for their call; their contracts are
 * in asr.h and scan_int.h. A module that cannot be loaded is LUCY_EUNAVAIL
 * with the reason in err. */

int lucy_audio_decode_fd(int fd, const char *path, struct lucy_pcm *out, char *err, size_t errlen)
{
    const struct lucy_media *t = lucy_media_hold(err, errlen);
    if (!t)
        return LUCY_EUNAVAIL;
    int rc = t->decode_fd(fd, path, out, err, errlen);
    lucy_media_drop();
    return rc;
}

int lucy_audio_decode_split_fd(int fd, const char *path, struct lucy_audio *out, char *err,
                               size_t errlen)
{
    const struct lucy_media *t = lucy_media_hold(err, errlen);
    if (!t)
        return LUCY_EUNAVAIL;
    int rc = t->decode_split_fd(fd, path, out, err, errlen);
    lucy_media_drop();
    return rc;
}

int lucy_asr_chunks(const struct lucy_pcm *pcm, int max_chunk_s, struct lucy_chunk **out, size_t *n,
                    char *err, size_t errlen)
{
    const struct lucy_media *t = lucy_media_hold(err, errlen);
    if (!t)
        return LUCY_EUNAVAIL;
    int rc = t->chunks(pcm, max_chunk_s, out, n, err, errlen);
    lucy_media_drop();
    return rc;
}

const struct lucy_asr_engine *lucy_asr_select(const struct lucy_asr_options *opt, char *err,
                                              size_t errlen)
{
    const struct lucy_media *t = lucy_media_hold(err, errlen);
    if (!t)
        return NULL;
    const struct lucy_asr_engine *e = t->asr_select(opt, err, errlen);
    lucy_media_drop();
    return e;
}

int lucy_asr_check(const struct lucy_asr_options *opt, const struct lucy_asr_engine **out,
                   char *err, size_t errlen)
{
    if (out)
        *out = NULL;
    const struct lucy_media *t = lucy_media_hold(err, errlen);
    if (!t)
        return LUCY_EUNAVAIL;
    int rc = t->asr_check(opt, out, err, errlen);
    lucy_media_drop();
    return rc;
}

int lucy_asr_open(const struct lucy_asr_engine *e, const struct lucy_asr_options *opt, void **state,
                  char *err, size_t errlen)
{
    *state = NULL;
    const struct lucy_media *t = lucy_media_hold(err, errlen);
    if (!t)
        return LUCY_EUNAVAIL;
    int rc = t->asr_open(e, opt, state, err, errlen);
    if (rc)
        lucy_media_drop(); /* an open instance keeps its hold until lucy_asr_close */
    return rc;
}

int lucy_asr_transcribe(const struct lucy_asr_engine *e, void *state, const struct lucy_pcm *pcm,
                        struct lucy_transcript *out, char *err, size_t errlen)
{
    const struct lucy_media *t = lucy_media_hold(err, errlen);
    if (!t)
        return LUCY_EUNAVAIL;
    int rc = t->asr_transcribe(e, state, pcm, out, err, errlen);
    lucy_media_drop();
    return rc;
}

const char *lucy_asr_model(const struct lucy_asr_engine *e, void *state)
{
    char err[8];
    const struct lucy_media *t = state ? lucy_media_hold(err, sizeof err) : NULL; /* held */
    if (!t)
        return "";
    const char *model = t->asr_model(e, state);
    lucy_media_drop();
    return model;
}

void lucy_asr_close(const struct lucy_asr_engine *e, void *state)
{
    if (!state)
        return;
    char err[8];
    const struct lucy_media *t = lucy_media_hold(err, sizeof err); /* held: cannot fail */
    if (!t)
        return;
    t->asr_close(e, state);
    lucy_media_drop();
    lucy_media_drop(); /* the hold the instance took in lucy_asr_open */
}

enum lucy_scan_probe_result lucy_scan_probe_fd(int fd, int64_t size, struct lucy_scan_probe *out)
{
    char err[sizeof out->reason];
    const struct lucy_media *t = lucy_media_hold(err, sizeof err);
    if (!t) {
        /* Not the file's fault: a read error the scanner retries, with why. */
        memset(out, 0, sizeof *out);
        out->errnum = ELIBACC;
        snprintf(out->reason, sizeof out->reason, "%s", err);
        return LUCY_SCAN_PROBE_READ_ERROR;
    }
    enum lucy_scan_probe_result r = t->probe_fd(fd, size, out);
    lucy_media_drop();
    return r;
}
