/* scan_test.c - the scanner's pure rules (src/plugins/call_recordings/
 * classify.c, walk.c, hash.c): outcome names, errno names and their
 * classification, sync-artefact names, stat rules, the U+FFFD display
 * form, the walk's loop protection, and SHA-256 against FIPS 180-2. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "plugins/call_recordings/scan_int.h"

static void test_outcome_names(void **state)
{
    (void)state;
    /* The DESIGN §6 summary keys, in order. */
    static const char *const keys[] = {
        "new",         "changed", "unchanged",         "locked",   "placeholder", "ignored",
        "changing",    "corrupt", "permission_denied", "io_error", "unsupported", "missing",
        "unavailable",
    };
    assert_int_equal(sizeof keys / sizeof keys[0], LUCY_SCAN_N_OUTCOMES);
    for (int i = 0; i < LUCY_SCAN_N_OUTCOMES; i++)
        assert_string_equal(lucy_scan_outcome_name((enum lucy_scan_outcome)i), keys[i]);
    assert_string_equal(lucy_scan_outcome_name(LUCY_SCAN_N_OUTCOMES), "unknown");
}

static void test_errno_table(void **state)
{
    (void)state;
    static const struct {
        int errnum;
        const char *name;
        enum lucy_scan_outcome outcome;
    } rows[] = {
        {EDEADLK, "EDEADLK", LUCY_SCAN_LOCKED},
        {EAGAIN, "EAGAIN", LUCY_SCAN_LOCKED},
        {EBUSY, "EBUSY", LUCY_SCAN_LOCKED},
        {ETXTBSY, "ETXTBSY", LUCY_SCAN_LOCKED},
        {EACCES, "EACCES", LUCY_SCAN_PERMISSION_DENIED},
        {EPERM, "EPERM", LUCY_SCAN_PERMISSION_DENIED},
        {EIO, "EIO", LUCY_SCAN_IO_ERROR},
        {ENOENT, "ENOENT", LUCY_SCAN_MISSING},
        {ELOOP, "ELOOP", LUCY_SCAN_IGNORED},
        {ESTALE, "ESTALE", LUCY_SCAN_IO_ERROR},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        assert_string_equal(lucy_scan_errno_name(rows[i].errnum), rows[i].name);
        assert_int_equal(lucy_scan_errno_outcome(rows[i].errnum), rows[i].outcome);
    }
    /* EWOULDBLOCK is EAGAIN on Linux: one name, still a lock. */
    assert_int_equal(lucy_scan_errno_outcome(EWOULDBLOCK), LUCY_SCAN_LOCKED);
    /* Not in the table: a name all the same (glibc), and an I/O error. */
    assert_string_equal(lucy_scan_errno_name(EPIPE), "EPIPE");
    assert_int_equal(lucy_scan_errno_outcome(EPIPE), LUCY_SCAN_IO_ERROR);
    assert_non_null(lucy_scan_errno_name(99999));
}

static void test_sync_artefacts(void **state)
{
    (void)state;
    static const char *const skipped[] = {
        "._call.m4a",     "call.m4a.tmp",  "x.partial", "song.m4a.download", ".dropbox",
        ".dropbox.cache", "~$report.docx", "~lock",     "a.crdownload",
    };
    static const char *const kept[] = {
        "call.m4a", ".hidden.m4a", "tmp.m4a",     "partial.m4a",
        "a~b.m4a",  "_x.m4a",      "dropbox.m4a", "call.tmp.m4a",
    };
    for (size_t i = 0; i < sizeof skipped / sizeof skipped[0]; i++)
        assert_true(lucy_scan_is_sync_artefact(skipped[i]));
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++)
        assert_false(lucy_scan_is_sync_artefact(kept[i]));
}

static void test_classify_stat(void **state)
{
    (void)state;
    struct stat st;
    enum lucy_scan_outcome o = LUCY_SCAN_NEW;
    memset(&st, 0, sizeof st);
    st.st_size = 0;
    assert_true(lucy_scan_classify_stat("a.m4a", &st, &o));
    assert_int_equal(o, LUCY_SCAN_IGNORED); /* zero-length */
    st.st_size = 1 << 20;
    st.st_blocks = 0;
    assert_true(lucy_scan_classify_stat("a.m4a", &st, &o));
    assert_int_equal(o, LUCY_SCAN_PLACEHOLDER); /* cloud placeholder */
    st.st_blocks = 2048;
    assert_false(lucy_scan_classify_stat("a.m4a", &st, &o));
    assert_true(lucy_scan_classify_stat("._a.m4a", &st, &o));
    assert_int_equal(o, LUCY_SCAN_IGNORED);

    /* Settle time: modified 10 s ago is settling with 30 s, not with 5 s or 0. */
    int64_t now_ns = 1700000000LL * 1000000000LL;
    st.st_mtim.tv_sec = 1700000000 - 10;
    assert_true(lucy_scan_is_settling(&st, now_ns, 30));
    assert_false(lucy_scan_is_settling(&st, now_ns, 5));
    assert_false(lucy_scan_is_settling(&st, now_ns, 0));
    st.st_mtim.tv_nsec = 5;
    assert_int_equal(lucy_scan_mtime_ns(&st), (1700000000LL - 10) * 1000000000LL + 5);
}

static void expect_display(const char *in, size_t len, const char *want)
{
    char *got = lucy_scan_display_name(in, len);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

#define FFFD "\xEF\xBF\xBD"

static void test_display_name(void **state)
{
    (void)state;
    expect_display("plain/call.m4a", 14, "plain/call.m4a");
    expect_display("caf\xC3\xA9.m4a", 9, "caf\xC3\xA9.m4a");    /* valid UTF-8 kept */
    expect_display("caf\xE9.m4a", 8, "caf" FFFD ".m4a");        /* Latin-1 byte */
    expect_display("\xF0\x9F\x93\x9E", 4, "\xF0\x9F\x93\x9E");  /* 4-byte emoji */
    expect_display("a\xE2\x82z", 4, "a" FFFD "z");              /* one FFFD per subpart */
    expect_display("\xC0\xAF", 2, FFFD FFFD);                   /* overlong */
    expect_display("\xED\xA0\x80", 3, FFFD FFFD FFFD);          /* surrogate */
    expect_display("\xF4\x90\x80\x80", 4, FFFD FFFD FFFD FFFD); /* above U+10FFFF */
    expect_display("\xFF", 1, FFFD);
    expect_display("x\xF0\x9F\x93", 4, "x" FFFD); /* truncated at end */
    expect_display("", 0, "");
}

/* A folder with a file, a loop back to itself (a directory symlink), a
 * dangling symlink and a file symlink: the walk ends and sees each file
 * once without following, the loop once more with following. */
struct walk_seen {
    int files, dirs, errors, outside;
    char names[16][256];
};

static int on_file(void *arg, int dirfd, const char *name, const char *path, size_t len,
                   const struct stat *st)
{
    struct walk_seen *w = arg;
    (void)dirfd;
    (void)st;
    assert_int_equal(strlen(path), len);
    assert_non_null(strstr(path, name));
    if (w->files < 16)
        snprintf(w->names[w->files], sizeof w->names[0], "%s", name);
    w->files++;
    return 0;
}

static void on_dir(void *arg, const char *path, int depth)
{
    (void)path;
    assert_true(depth <= LUCY_SCAN_MAX_DEPTH);
    ((struct walk_seen *)arg)->dirs++;
}

static void on_error(void *arg, const char *path, int errnum, int is_dir)
{
    (void)path;
    (void)errnum;
    (void)is_dir;
    ((struct walk_seen *)arg)->errors++;
}

static void on_outside(void *arg, const char *path, int is_dir)
{
    (void)path;
    (void)is_dir;
    ((struct walk_seen *)arg)->outside++;
}

static void test_walk(void **state)
{
    (void)state;
    char dir[] = "/tmp/lucy-scan-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char p[512], q[512];
    snprintf(p, sizeof p, "%s/sub", dir);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof p, "%s/sub/a\xE9.m4a", dir); /* a non-UTF-8 name */
    int fd = open(p, O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "x", 1), 1);
    close(fd);
    snprintf(q, sizeof q, "%s/sub/loop", dir);
    assert_int_equal(symlink("..", q), 0);
    snprintf(q, sizeof q, "%s/dangling", dir);
    assert_int_equal(symlink("nowhere", q), 0);
    snprintf(q, sizeof q, "%s/link.m4a", dir);
    assert_int_equal(symlink("sub/a\xE9.m4a", q), 0);

    static const struct lucy_scan_walk_ops ops = {on_file,    on_dir, on_error,
                                                  on_outside, NULL,   NULL};
    struct walk_seen w = {0};
    uint64_t n = 0;
    assert_int_equal(lucy_scan_walk(dir, 0, NULL, 0, &ops, &w, &n), 0);
    assert_int_equal(w.files, 2); /* the file and the file symlink */
    assert_int_equal(n, 2);
    assert_int_equal(w.dirs, 2);   /* root and sub; the loop is not followed */
    assert_int_equal(w.errors, 1); /* the dangling symlink */

    struct walk_seen f = {0};
    assert_int_equal(lucy_scan_walk(dir, 1, NULL, 0, &ops, &f, NULL), 0);
    assert_int_equal(f.files, 2); /* following: the loop leads to the root, seen already */
    assert_int_equal(f.dirs, 2);

    /* Symlinks leading outside the root are skipped, whether followed or
     * not: "/" and a file in another folder. */
    snprintf(q, sizeof q, "%s/sys", dir);
    assert_int_equal(symlink("/", q), 0);
    snprintf(q, sizeof q, "%s/passwd.m4a", dir);
    assert_int_equal(symlink("/etc/passwd", q), 0);
    struct walk_seen o = {0};
    assert_int_equal(lucy_scan_walk(dir, 1, NULL, 0, &ops, &o, NULL), 0);
    assert_int_equal(o.files, 2);
    assert_int_equal(o.dirs, 2);
    assert_int_equal(o.outside, 2);

    assert_int_equal(lucy_scan_walk("/nonexistent/lucy-scan-test", 0, NULL, 0, &ops, &w, NULL),
                     ENOENT);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* Sync folders (DESIGN §16) and backups: skipped or never primary. */
static void test_sync_folders_and_primary(void **state)
{
    (void)state;
    static const char *const sync[] = {".dropbox.cache", ".dropbox", ".sync",       ".stfolder",
                                       "@eaDir",         ".Trash",   ".Trash-1000", "$RECYCLE.BIN"};
    for (size_t i = 0; i < sizeof sync / sizeof *sync; i++)
        assert_int_equal(lucy_scan_is_sync_folder(sync[i]), 1);
    static const char *const plain[] = {"calls", "Backup", ".syncthing", "dropbox", "eaDir"};
    for (size_t i = 0; i < sizeof plain / sizeof *plain; i++)
        assert_int_equal(lucy_scan_is_sync_folder(plain[i]), 0);

    static const char *const secondary[] = {"/r/.dropbox.cache/x.m4a", "/r/Backup/x.m4a",
                                            "/r/a/Backups/b/x.m4a", "/r/@eaDir/x.m4a"};
    for (size_t i = 0; i < sizeof secondary / sizeof *secondary; i++)
        assert_int_equal(lucy_scan_path_is_secondary(secondary[i], strlen(secondary[i])), 1);
    static const char *const primary[] = {"/r/calls/x.m4a", "/r/Backup.m4a", "/r/MyBackup/x.m4a"};
    for (size_t i = 0; i < sizeof primary / sizeof *primary; i++)
        assert_int_equal(lucy_scan_path_is_secondary(primary[i], strlen(primary[i])), 0);

    /* present, then outside backups, then oldest seen, then bytes */
    const char *live = "/r/calls/b.m4a", *backup = "/r/Backup/a.m4a";
    assert_true(
        lucy_scan_primary_better(live, strlen(live), 1, 200, backup, strlen(backup), 1, 100));
    assert_false(
        lucy_scan_primary_better(backup, strlen(backup), 1, 100, live, strlen(live), 1, 200));
    assert_true(
        lucy_scan_primary_better(backup, strlen(backup), 1, 100, live, strlen(live), 0, 50));
    const char *a = "/r/a.m4a", *b = "/r/b.m4a";
    assert_true(lucy_scan_primary_better(b, strlen(b), 1, 100, a, strlen(a), 1, 200));
    assert_true(lucy_scan_primary_better(a, strlen(a), 1, 100, b, strlen(b), 1, 100));
    assert_false(lucy_scan_primary_better(b, strlen(b), 1, 100, a, strlen(a), 1, 100));
}

static int on_file_count(void *arg, int dirfd, const char *name, const char *path, size_t len,
                         const struct stat *st)
{
    (void)dirfd, (void)name, (void)path, (void)len, (void)st;
    ((struct walk_seen *)arg)->files++;
    return 0;
}

static void on_sync_folder(void *arg, const char *path)
{
    assert_non_null(strstr(path, ".dropbox.cache"));
    ((struct walk_seen *)arg)->outside++;
}

/* The walk does not enter sync folders; sidecars are named by their audio. */
static void test_walk_skips_sync_folders_and_sidecars(void **state)
{
    (void)state;
    char dir[] = "/tmp/lucy-scan-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char p[512];
    snprintf(p, sizeof p, "%s/.dropbox.cache", dir);
    assert_int_equal(mkdir(p, 0700), 0);
    static const char *const files[] = {
        ".dropbox.cache/x.m4a", "call.m4a", "call.json", "gone.json", "LOUD.M4A", "LOUD.json"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        int fd = open(p, O_CREAT | O_WRONLY, 0600);
        assert_true(fd >= 0);
        close(fd);
    }
    static const struct lucy_scan_walk_ops ops = {on_file_count, NULL,           NULL,
                                                  NULL,          on_sync_folder, NULL};
    struct walk_seen w = {0};
    assert_int_equal(lucy_scan_walk(dir, 0, NULL, 0, &ops, &w, NULL), 0);
    assert_int_equal(w.files, 5);   /* not the one in .dropbox.cache */
    assert_int_equal(w.outside, 1); /* the sync folder, once */

    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    assert_true(dfd >= 0);
    assert_int_equal(lucy_scan_is_sidecar_name("call.json"), 1);
    assert_int_equal(lucy_scan_is_sidecar_name("call.m4a"), 0);
    assert_int_equal(lucy_scan_is_sidecar_name(".json"), 0);
    assert_int_equal(lucy_scan_audio_stem("call.m4a"), 4);
    assert_int_equal(lucy_scan_audio_stem("LOUD.OGG"), 4);
    assert_int_equal(lucy_scan_audio_stem("a.b.Opus"), 3);
    assert_int_equal(lucy_scan_audio_stem("call.json"), 0);
    assert_int_equal(lucy_scan_audio_stem("notes.txt"), 0);
    assert_int_equal(lucy_scan_audio_stem(".m4a"), 0);
    close(dfd);
    char side[64];
    assert_int_equal(lucy_scan_sidecar_name("20230414_215701.088-0400_in.m4a", side, sizeof side),
                     0);
    assert_string_equal(side, "20230414_215701.088-0400_in.json");
    assert_int_equal(lucy_scan_sidecar_name("x.m4a", side, 6), -1);

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_hash(void **state)
{
    (void)state;
    /* FIPS 180-2 Appendix B.1 and B.3 (one million 'a'). */
    char path[] = "/tmp/lucy-scan-hash-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(write(fd, "abc", 3), 3);
    struct lucy_scan_hasher *h = lucy_scan_hasher_new();
    assert_non_null(h);
    char hex[65];
    uint64_t bytes;
    int err;
    assert_int_equal(lucy_scan_hash_fd(h, fd, hex, &bytes, &err), 0);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_int_equal(bytes, 3);
    assert_int_equal(ftruncate(fd, 0), 0);
    char *a = malloc(1000000);
    memset(a, 'a', 1000000);
    assert_int_equal(pwrite(fd, a, 1000000, 0), 1000000);
    free(a);
    assert_int_equal(lucy_scan_hash_fd(h, fd, hex, &bytes, &err), 0);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    assert_int_equal(bytes, 1000000);
    close(fd);
    /* A descriptor that cannot be read gives its errno. */
    assert_int_equal(lucy_scan_hash_fd(h, fd, hex, &bytes, &err), -1);
    assert_int_equal(err, EBADF);
    lucy_scan_hasher_free(h);
}

static void test_probe_not_audio(void **state)
{
    (void)state;
    char path[] = "/tmp/lucy-scan-probe-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    const char text[] = "just some text, not a recording\n";
    assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    struct lucy_scan_probe p;
    assert_int_equal(lucy_scan_probe_fd(fd, sizeof text - 1, &p), LUCY_SCAN_PROBE_UNSUPPORTED);
    assert_true(p.reason[0] != '\0');
    lucy_scan_probe_clear(&p);
    /* An MP4 signature without a valid header is a corrupt recording. */
    assert_int_equal(ftruncate(fd, 0), 0);
    static const unsigned char ftyp[] = {0,   0,   0, 0x18, 'f', 't', 'y', 'p', 'M', '4', 'A',
                                         ' ', 0,   0, 2,    0,   'M', '4', 'A', ' ', 'i', 's',
                                         'o', 'm', 0, 0,    0,   8,   'm', 'd', 'a', 't'};
    assert_int_equal(pwrite(fd, ftyp, sizeof ftyp, 0), (ssize_t)sizeof ftyp);
    assert_int_equal(lucy_scan_probe_fd(fd, sizeof ftyp, &p), LUCY_SCAN_PROBE_CORRUPT);
    lucy_scan_probe_clear(&p);
    close(fd);
    /* A closed descriptor: a read error with its errno, never "corrupt". */
    assert_int_equal(lucy_scan_probe_fd(fd, 100, &p), LUCY_SCAN_PROBE_READ_ERROR);
    assert_int_equal(p.errnum, EBADF);
    lucy_scan_probe_clear(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_outcome_names),
        cmocka_unit_test(test_errno_table),
        cmocka_unit_test(test_sync_artefacts),
        cmocka_unit_test(test_classify_stat),
        cmocka_unit_test(test_display_name),
        cmocka_unit_test(test_walk),
        cmocka_unit_test(test_hash),
        cmocka_unit_test(test_probe_not_audio),
        cmocka_unit_test(test_sync_folders_and_primary),
        cmocka_unit_test(test_walk_skips_sync_folders_and_sidecars),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
