/*
 * crashonce.c - LD_PRELOAD fault shim: the first media process (`lucy
 * media-worker`, src/media/remote.c) to read a recording dies at once
 * (SIGKILL), as one killed the moment it was handed a call would; every
 * later one works.
 *
 *     LUCY_CRASHONCE_MARK=path
 *         the process that dies first creates path (O_EXCL: one process
 *         only); while path exists, nothing dies
 *
 * Only pread() in a process whose argv[1] is "media-worker" is watched
 * (the workers read recordings with pread; lucy itself is never killed).
 */
#undef _FILE_OFFSET_BITS /* pread and pread64 are two symbols here */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static int is_media_worker(void)
{
    static int known = -1;
    if (known >= 0)
        return known;
    char cmd[256] = "";
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, cmd, sizeof cmd - 1) : -1;
    if (fd >= 0)
        close(fd);
    known = 0;
    if (n > 0) {
        cmd[n] = '\0';
        const char *arg1 = cmd + strlen(cmd) + 1; /* argv[1] */
        known = arg1 < cmd + n && strcmp(arg1, "media-worker") == 0;
    }
    return known;
}

/* Dies here the first time, in the first media process to get here. */
static void maybe_die(void)
{
    const char *mark = getenv("LUCY_CRASHONCE_MARK");
    if (!mark || !*mark || !is_media_worker())
        return;
    int fd = open(mark, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return; /* someone died already */
    close(fd);
    raise(SIGKILL);
}

ssize_t pread(int fd, void *buf, size_t count, off_t offset)
{
    static ssize_t (*real)(int, void *, size_t, off_t);
    if (!real)
        real = (ssize_t(*)(int, void *, size_t, off_t))dlsym(RTLD_NEXT, "pread");
    maybe_die();
    return real(fd, buf, count, offset);
}

ssize_t pread64(int fd, void *buf, size_t count, off64_t offset)
{
    static ssize_t (*real)(int, void *, size_t, off64_t);
    if (!real)
        real = (ssize_t(*)(int, void *, size_t, off64_t))dlsym(RTLD_NEXT, "pread64");
    maybe_die();
    return real(fd, buf, count, offset);
}
