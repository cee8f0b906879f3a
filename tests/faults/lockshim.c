/*
 * lockshim.c - LD_PRELOAD fault shim: makes chosen files look held by a
 * sync client, the way Dropbox/iCloud file providers make them fail with
 * EDEADLK or EAGAIN (DESIGN §6, §7).
 *
 * Control file: the path in the environment variable LOCKSHIM_FILE. It is
 * re-read whenever its size, mtime or inode changes, so faults can be
 * switched on and off while the process runs (write a new file and
 * rename() it over the old one). One rule per line:
 *
 *     open EDEADLK /abs/path/file.m4a    open()/openat() fail
 *     read EAGAIN  /abs/path/dir/        read()/pread() fail after a
 *                                        successful open
 *     readfirst EDEADLK /abs/path        the first read of the path
 *                                        fails, and so does every later
 *                                        read on that descriptor;
 *                                        descriptors opened after that
 *                                        read normally (a file provider
 *                                        that fails the access which
 *                                        starts the download, then serves
 *                                        the file)
 *     watch ENOSPC /abs/path/dir/        inotify_add_watch() fails (the
 *                                        per-user watch limit)
 *     # comment
 *
 * A path ending in '/' matches everything below that directory (for
 * `watch`, the directory itself too; for `readfirst`, each file below it
 * fails its own first read); otherwise the match is exact. The
 * error is an errno NAME from errnos[] (EDEADLK, EAGAIN, EWOULDBLOCK, EBUSY,
 * ETXTBSY, EACCES, EPERM, EIO, ENOSPC). Relative paths
 * given to open()/openat() are resolved against the cwd or the directory
 * descriptor (/proc/self/fd) before matching. Nothing is ever written next
 * to the targets, so a scan sees exactly the files under test.
 *
 * Design: the real functions come from dlsym(RTLD_NEXT) (under ASan that is
 * the sanitizer's interceptor, which is fine). The control file is read
 * with raw syscalls so the shim never calls itself. A mutex guards the
 * rules; per-descriptor read faults live in an array of atomics indexed by
 * fd and are cleared by close(). Without LOCKSHIM_FILE every call goes
 * straight through.
 *
 * readfirst: the first open of a matching path gives it a slot (path,
 * errno, used flag; reset whenever the control file changes, which also
 * bumps `generation`). Every descriptor opened while the slot is unused
 * carries a token (generation, slot) in first_read[fd]. Its first read
 * takes the token (atomic exchange, so only that read looks at it) and,
 * under the mutex, claims the slot if it is still unused and of the current
 * generation: from then on the descriptor fails like a `read` rule and new
 * opens of the path get no token. A descriptor whose slot was claimed by
 * another one reads normally. Descriptors made by dup() are not tracked.
 * At most MAX_SLOTS distinct paths per rule set get the fault.
 */
/* Both the plain and the 64-bit names are defined here, so the header must
 * not redirect one to the other. */
#undef _FILE_OFFSET_BITS
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_RULES     4096
#define MAX_PATH      1024
#define MAX_FDS       65536
#define MAX_SLOTS     1024 /* readfirst: distinct paths per rule set */
#define CONTROL_BYTES (MAX_RULES * 64)

enum mode { MODE_OPEN = 1, MODE_READ = 2, MODE_WATCH = 3, MODE_READ_FIRST = 4 };

struct rule {
    enum mode mode;      /* which call fails */
    int err;             /* errno it fails with */
    char path[MAX_PATH]; /* exact path, or directory prefix ending in '/' */
};

/* readfirst state of one path (see the header). */
struct slot {
    char path[MAX_PATH * 2]; /* absolute path as opened */
    int err;                 /* errno its first read fails with */
    int used;                /* the failing first read has happened */
};

static const struct {
    const char *name;
    int value;
} errnos[] = {
    {"EDEADLK", EDEADLK}, {"EAGAIN", EAGAIN},   {"EWOULDBLOCK", EWOULDBLOCK},
    {"EBUSY", EBUSY},     {"ETXTBSY", ETXTBSY}, {"EACCES", EACCES},
    {"EPERM", EPERM},     {"EIO", EIO},         {"ENOSPC", ENOSPC},
};

static const struct {
    const char *name;
    enum mode mode;
} modes[] = {{"open", MODE_OPEN},
             {"read", MODE_READ},
             {"readfirst", MODE_READ_FIRST},
             {"watch", MODE_WATCH}};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct rule *rules; /* n_rules, guarded by lock */
static int n_rules;
static struct stat loaded; /* control file as last read */
static struct slot *slots; /* readfirst paths: n_slots, guarded by lock */
static int n_slots;
static unsigned generation;                       /* bumped when the rules change (lock held) */
static atomic_int read_errno[MAX_FDS];            /* fd -> errno for read(), 0 = none */
static atomic_uint_least64_t first_read[MAX_FDS]; /* fd -> readfirst token, 0 = none */

static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_openat64)(int, const char *, int, ...);
static ssize_t (*real_read)(int, void *, size_t);
static ssize_t (*real_pread)(int, void *, size_t, off_t);
static ssize_t (*real_pread64)(int, void *, size_t, off64_t);
static ssize_t (*real_readv)(int, const struct iovec *, int);
static int (*real_close)(int);
static int (*real_inotify_add_watch)(int, const char *, uint32_t);

static pthread_once_t resolve_once = PTHREAD_ONCE_INIT;

static void resolve(void)
{
    real_open = dlsym(RTLD_NEXT, "open");
    real_open64 = dlsym(RTLD_NEXT, "open64");
    real_openat = dlsym(RTLD_NEXT, "openat");
    real_openat64 = dlsym(RTLD_NEXT, "openat64");
    real_read = dlsym(RTLD_NEXT, "read");
    real_pread = dlsym(RTLD_NEXT, "pread");
    real_pread64 = dlsym(RTLD_NEXT, "pread64");
    real_readv = dlsym(RTLD_NEXT, "readv");
    real_close = dlsym(RTLD_NEXT, "close");
    real_inotify_add_watch = dlsym(RTLD_NEXT, "inotify_add_watch");
}

static int errno_value(const char *name)
{
    for (size_t i = 0; i < sizeof errnos / sizeof errnos[0]; i++)
        if (strcmp(errnos[i].name, name) == 0)
            return errnos[i].value;
    return 0;
}

/* Parses the control text into rules (lock held). */
static void parse(char *text)
{
    n_rules = 0;
    for (char *line = strtok(text, "\n"); line && n_rules < MAX_RULES; line = strtok(NULL, "\n")) {
        char mode[16], name[32], path[MAX_PATH];
        if (line[0] == '#' || sscanf(line, "%15s %31s %1023s", mode, name, path) != 3)
            continue;
        struct rule *r = &rules[n_rules];
        r->mode = 0;
        for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++)
            if (strcmp(mode, modes[m].name) == 0)
                r->mode = modes[m].mode;
        r->err = errno_value(name);
        if (!r->mode || !r->err)
            continue;
        memcpy(r->path, path, sizeof path);
        n_rules++;
    }
}

/* Re-reads the control file if it changed (lock held). */
static void reload(const char *control)
{
    struct stat st;
    if (stat(control, &st) != 0) {
        if (loaded.st_ino || n_rules) {
            n_rules = n_slots = 0;
            generation++;
        }
        memset(&loaded, 0, sizeof loaded);
        return;
    }
    if (st.st_ino == loaded.st_ino && st.st_size == loaded.st_size &&
        st.st_mtim.tv_sec == loaded.st_mtim.tv_sec && st.st_mtim.tv_nsec == loaded.st_mtim.tv_nsec)
        return;
    if (!rules && !(rules = calloc(MAX_RULES, sizeof *rules)))
        return;
    static char text[CONTROL_BYTES];
    long fd = syscall(SYS_openat, AT_FDCWD, control, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    size_t len = 0;
    for (;;) {
        long n = syscall(SYS_read, fd, text + len, sizeof text - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    syscall(SYS_close, fd);
    text[len] = '\0';
    parse(text);
    n_slots = 0; /* a new rule set arms readfirst again */
    generation++;
    loaded = st;
}

/* The readfirst slot of an absolute path, created armed with err if new;
 * -1 when the table is full or cannot be allocated (lock held). */
static int slot_for(const char *abs, int err)
{
    for (int i = 0; i < n_slots; i++)
        if (strcmp(slots[i].path, abs) == 0)
            return i;
    if (n_slots == MAX_SLOTS || (!slots && !(slots = calloc(MAX_SLOTS, sizeof *slots))))
        return -1;
    struct slot *s = &slots[n_slots];
    snprintf(s->path, sizeof s->path, "%s", abs);
    s->err = err;
    s->used = 0;
    return n_slots++;
}

/* The absolute form of (dirfd, path) into out; 0 or -1. */
static int absolute(int dirfd, const char *path, char *out, size_t len)
{
    if (path[0] == '/')
        return snprintf(out, len, "%s", path) < (int)len ? 0 : -1;
    char dir[MAX_PATH];
    if (dirfd == AT_FDCWD) {
        if (!getcwd(dir, sizeof dir))
            return -1;
    } else {
        char link[64];
        snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
        ssize_t n = readlink(link, dir, sizeof dir - 1);
        if (n < 0)
            return -1;
        dir[n] = '\0';
    }
    return snprintf(out, len, "%s/%s", dir, path) < (int)len ? 0 : -1;
}

/* The errno that `mode` must fail with for (dirfd, path), 0 for none. For
 * MODE_READ, *first (may be NULL) gets the readfirst token of the path when
 * a readfirst rule matches and its slot is still armed, else 0. */
static int fault_for(int dirfd, const char *path, enum mode mode, uint_least64_t *first)
{
    if (first)
        *first = 0;
    const char *control = getenv("LOCKSHIM_FILE");
    if (!control || !*control || !path)
        return 0;
    int saved = errno, err = 0, first_rule = -1;
    char abs[MAX_PATH * 2];
    pthread_mutex_lock(&lock);
    reload(control);
    if (n_rules && absolute(dirfd, path, abs, sizeof abs) == 0) {
        for (int i = 0; i < n_rules && !err; i++) {
            const struct rule *r = &rules[i];
            size_t n = strlen(r->path);
            int match = strcmp(abs, r->path) == 0;
            if (r->path[n - 1] == '/')
                match = strncmp(abs, r->path, n) == 0 ||
                        (mode == MODE_WATCH && strncmp(abs, r->path, n - 1) == 0 && !abs[n - 1]);
            if (match && r->mode == mode)
                err = r->err;
            else if (match && first && first_rule < 0 && r->mode == MODE_READ_FIRST)
                first_rule = i;
        }
        if (!err && first_rule >= 0) {
            int k = slot_for(abs, rules[first_rule].err);
            if (k >= 0 && !slots[k].used)
                *first = (uint_least64_t)generation << 32 | (uint_least64_t)(k + 1);
        }
    }
    pthread_mutex_unlock(&lock);
    errno = saved;
    return err;
}

/* Records the read faults of a descriptor just opened. */
static int opened(int dirfd, const char *path, int fd)
{
    if (fd >= 0 && fd < MAX_FDS) {
        uint_least64_t first;
        int err = fault_for(dirfd, path, MODE_READ, &first);
        atomic_store(&read_errno[fd], err);
        atomic_store(&first_read[fd], first);
    }
    return fd;
}

static int needs_mode(int flags)
{
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE;
}

#define OPEN_BODY(real, dirfd_expr, ...)                                                           \
    pthread_once(&resolve_once, resolve);                                                          \
    mode_t mode = 0;                                                                               \
    if (needs_mode(flags)) {                                                                       \
        va_list ap;                                                                                \
        va_start(ap, flags);                                                                       \
        mode = va_arg(ap, mode_t);                                                                 \
        va_end(ap);                                                                                \
    }                                                                                              \
    int err = fault_for(dirfd_expr, path, MODE_OPEN, NULL);                                        \
    if (err) {                                                                                     \
        errno = err;                                                                               \
        return -1;                                                                                 \
    }                                                                                              \
    return opened(dirfd_expr, path, real(__VA_ARGS__, mode));

int open(const char *path, int flags, ...)
{
    OPEN_BODY(real_open, AT_FDCWD, path, flags)
}

int open64(const char *path, int flags, ...)
{
    OPEN_BODY(real_open64, AT_FDCWD, path, flags)
}

int openat(int dirfd, const char *path, int flags, ...)
{
    OPEN_BODY(real_openat, dirfd, dirfd, path, flags)
}

int openat64(int dirfd, const char *path, int flags, ...)
{
    OPEN_BODY(real_openat64, dirfd, dirfd, path, flags)
}

/* The first read on a descriptor with a readfirst token: claims the
 * token's slot if it is still armed and the rules have not changed since
 * the open; the descriptor then fails every read with the slot's errno. */
static void claim_first_read(int fd, uint_least64_t token)
{
    const char *control = getenv("LOCKSHIM_FILE");
    unsigned gen = (unsigned)(token >> 32);
    int k = (int)(token & 0xffffffffu) - 1;
    int saved = errno;
    pthread_mutex_lock(&lock);
    if (control && *control)
        reload(control);
    if (gen == generation && k >= 0 && k < n_slots && !slots[k].used) {
        slots[k].used = 1;
        atomic_store(&read_errno[fd], slots[k].err);
    }
    pthread_mutex_unlock(&lock);
    errno = saved;
}

/* The errno a read on fd must fail with, 0 for none. */
static int read_fault(int fd)
{
    if (fd < 0 || fd >= MAX_FDS)
        return 0;
    uint_least64_t token = atomic_exchange(&first_read[fd], 0);
    if (token)
        claim_first_read(fd, token);
    return atomic_load(&read_errno[fd]);
}

ssize_t read(int fd, void *buf, size_t n)
{
    pthread_once(&resolve_once, resolve);
    int err = read_fault(fd);
    if (err) {
        errno = err;
        return -1;
    }
    return real_read(fd, buf, n);
}

ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
    pthread_once(&resolve_once, resolve);
    int err = read_fault(fd);
    if (err) {
        errno = err;
        return -1;
    }
    return real_pread(fd, buf, n, off);
}

ssize_t pread64(int fd, void *buf, size_t n, off64_t off)
{
    pthread_once(&resolve_once, resolve);
    int err = read_fault(fd);
    if (err) {
        errno = err;
        return -1;
    }
    return real_pread64(fd, buf, n, off);
}

ssize_t readv(int fd, const struct iovec *iov, int cnt)
{
    pthread_once(&resolve_once, resolve);
    int err = read_fault(fd);
    if (err) {
        errno = err;
        return -1;
    }
    return real_readv(fd, iov, cnt);
}

int close(int fd)
{
    pthread_once(&resolve_once, resolve);
    if (fd >= 0 && fd < MAX_FDS) {
        atomic_store(&read_errno[fd], 0);
        atomic_store(&first_read[fd], 0);
    }
    return real_close(fd);
}

int inotify_add_watch(int fd, const char *path, uint32_t mask)
{
    pthread_once(&resolve_once, resolve);
    int err = fault_for(AT_FDCWD, path, MODE_WATCH, NULL);
    if (err) {
        errno = err;
        return -1;
    }
    return real_inotify_add_watch(fd, path, mask);
}
