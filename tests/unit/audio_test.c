/*
 * audio_test.c - lucy_audio_decode_fd() on real recordings and real damage:
 * every fixture in tests/fixtures/audio decodes to 16 kHz mono of the
 * container's length (within 50 ms); an MP3 and an index-first ("faststart")
 * M4A made here by the ffmpeg CLI decode too; a text file, an empty file
 * and an M4A cut before its index are LUCY_ECORRUPT with the demuxer's
 * reason; a faststart M4A cut short is decoded and flagged truncated; a
 * pipe is read in order.
 *
 * Read errors are injected for real: this executable defines pread(), so
 * the decoder's calls resolve here (link-time interposition, like an
 * LD_PRELOAD shim) and fail with a chosen errno after a chosen number of
 * bytes. EDEADLK/EAGAIN must come back as LUCY_ELOCKED, never as corrupt.
 *
 * Fixtures are found from this file's path (meson runs tests in the build
 * directory and compiles with paths relative to it) or $LUCY_FIXTURES.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <setjmp.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "asr/asr.h"
#include "error.h"
#include "log.h"

extern char **environ;

/* ---- pread interposition ------------------------------------------------ */

static int fail_fd = -1;       /* the descriptor whose reads fail */
static int fail_errno;         /* with this errno */
static off_t fail_after_bytes; /* once a read reaches this offset */

ssize_t pread(int fd, void *buf, size_t count, off_t offset)
{
    if (fd == fail_fd && offset + (off_t)count > fail_after_bytes) {
        errno = fail_errno;
        return -1;
    }
    return syscall(SYS_pread64, fd, buf, count, offset);
}

/* ---- helpers ------------------------------------------------------------ */

static char fixtures[4096]; /* tests/fixtures/audio */
static char tmp_dir[] = "/tmp/lucy-audio-test-XXXXXX";

static void path_of(char *out, size_t len, const char *dir, const char *name)
{
    snprintf(out, len, "%s/%s", dir, name);
}

/* Runs argv (a fixed program, no shell) and returns its exit status. */
static int run(char *const argv[])
{
    pid_t pid;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return -1;
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int decode_path(const char *path, struct lucy_pcm *pcm, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    int rc = lucy_audio_decode_fd(fd, path, pcm, err, errlen);
    close(fd);
    return rc;
}

/* Copies the first n bytes of src to dst. */
static void copy_prefix(const char *src, const char *dst, size_t n)
{
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[4096];
    size_t got;
    while (n > 0 && (got = fread(buf, 1, n < sizeof buf ? n : sizeof buf, in)) > 0) {
        fwrite(buf, 1, got, out);
        n -= got;
    }
    fclose(in);
    fclose(out);
}

/* check_container: the decoded length must match the container's duration
 * within 50 ms (MP3's duration counts the encoder's padding, so not MP3). */
static void assert_good_pcm(const struct lucy_pcm *pcm, const char *name, int check_container)
{
    assert_non_null(pcm->s16);
    assert_non_null(pcm->f32);
    assert_true(pcm->n_samples > LUCY_ASR_SAMPLE_RATE / 2);
    assert_true(fabs(pcm->duration_s - (double)pcm->n_samples / LUCY_ASR_SAMPLE_RATE) < 1e-9);
    double diff_s = fabs(pcm->duration_s - pcm->source_duration_s);
    if (check_container && diff_s >= 0.050)
        fail_msg("%s: decoded %.3f s, container says %.3f s", name, pcm->duration_s,
                 pcm->source_duration_s);
    assert_int_equal(pcm->truncated, 0);
    /* the float copy holds the same samples, and it is not silence */
    int16_t peak = 0;
    for (size_t i = 0; i < pcm->n_samples; i++) {
        assert_true(fabsf(pcm->f32[i] - pcm->s16[i] / 32768.0f) < 1e-6f);
        if (abs(pcm->s16[i]) > peak)
            peak = (int16_t)abs(pcm->s16[i]);
    }
    assert_true(peak > 1000);
}

/* ---- tests -------------------------------------------------------------- */

static void every_fixture_decodes(void **state)
{
    (void)state;
    static const char *const names[] = {
        "librivox-0870.m4a", "librivox-0880.m4a", "librivox-0890.m4a",    "goforward.m4a",
        "cards-001.ogg",     "cards-002-8k.wav",  "cards-003-stereo.m4a",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[4200], err[512];
        path_of(path, sizeof path, fixtures, names[i]);
        struct lucy_pcm pcm;
        int rc = decode_path(path, &pcm, err, sizeof err);
        if (rc)
            fail_msg("%s: %s (%s)", names[i], lucy_strerror(rc), err);
        assert_good_pcm(&pcm, names[i], 1);
        lucy_pcm_free(&pcm);
    }
}

static void generated_mp3_and_faststart_m4a(void **state)
{
    (void)state;
    char src[4200], mp3[4200], m4a[4200], err[512];
    path_of(src, sizeof src, fixtures, "librivox-0880.m4a");
    path_of(mp3, sizeof mp3, tmp_dir, "gen.mp3");
    path_of(m4a, sizeof m4a, tmp_dir, "gen-faststart.m4a");
    char *mk_mp3[] = {"ffmpeg", "-nostdin",   "-v",   "error", "-y", "-i", src,
                      "-c:a",   "libmp3lame", "-b:a", "64k",   mp3,  NULL};
    char *mk_m4a[] = {"ffmpeg", "-nostdin", "-v",        "error",      "-y", "-i", src,
                      "-c:a",   "aac",      "-movflags", "+faststart", m4a,  NULL};
    assert_int_equal(run(mk_mp3), 0);
    assert_int_equal(run(mk_m4a), 0);

    struct lucy_pcm ref, pcm;
    assert_int_equal(decode_path(src, &ref, err, sizeof err), 0);
    const char *made[] = {mp3, m4a};
    for (size_t i = 0; i < 2; i++) {
        int rc = decode_path(made[i], &pcm, err, sizeof err);
        if (rc)
            fail_msg("%s: %s (%s)", made[i], lucy_strerror(rc), err);
        assert_good_pcm(&pcm, made[i], made[i] == m4a);
        assert_true(fabs(pcm.duration_s - ref.duration_s) < 0.100);
        lucy_pcm_free(&pcm);
    }
    lucy_pcm_free(&ref);
}

static void not_audio_is_corrupt(void **state)
{
    (void)state;
    char path[4200], err[512];
    path_of(path, sizeof path, tmp_dir, "notes.m4a");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < 200; i++)
        fprintf(f, "this is a text file, not a recording %d\n", i);
    fclose(f);
    struct lucy_pcm pcm;
    assert_int_equal(decode_path(path, &pcm, err, sizeof err), LUCY_ECORRUPT);
    assert_true(strlen(err) > 10);
    assert_null(pcm.s16);

    path_of(path, sizeof path, tmp_dir, "empty.m4a");
    f = fopen(path, "w");
    fclose(f);
    assert_int_equal(decode_path(path, &pcm, err, sizeof err), LUCY_ECORRUPT);
    assert_true(strlen(err) > 10);
}

static void cut_before_index_is_corrupt_with_reason(void **state)
{
    (void)state;
    char src[4200], cut[4200], err[512];
    path_of(src, sizeof src, fixtures, "librivox-0870.m4a"); /* moov at the end */
    path_of(cut, sizeof cut, tmp_dir, "cut.m4a");
    copy_prefix(src, cut, 10 * 1024);
    struct lucy_pcm pcm;
    assert_int_equal(decode_path(cut, &pcm, err, sizeof err), LUCY_ECORRUPT);
    if (!strstr(err, "moov atom not found"))
        fail_msg("reason: %s", err);
}

static void cut_faststart_is_truncated(void **state)
{
    (void)state;
    char src[4200], fast[4200], cut[4200], err[512];
    path_of(src, sizeof src, fixtures, "librivox-0870.m4a");
    path_of(fast, sizeof fast, tmp_dir, "fast.m4a");
    path_of(cut, sizeof cut, tmp_dir, "fast-cut.m4a");
    char *mk[] = {"ffmpeg", "-nostdin", "-v",        "error",      "-y", "-i", src,
                  "-c:a",   "copy",     "-movflags", "+faststart", fast, NULL};
    assert_int_equal(run(mk), 0);
    copy_prefix(fast, cut, 10 * 1024);
    struct lucy_pcm pcm;
    int rc = decode_path(cut, &pcm, err, sizeof err);
    assert_int_equal(rc, 0);
    assert_int_equal(pcm.truncated, 1);
    assert_true(pcm.duration_s < pcm.source_duration_s - 1.0);
    lucy_pcm_free(&pcm);
}

static void read_errors_keep_their_errno(void **state)
{
    (void)state;
    static const struct {
        int errnum;
        off_t after_bytes;
        int want;
    } cases[] = {
        {EDEADLK, 0, LUCY_ELOCKED}, /* locked from the first byte */
        {EAGAIN, 0, LUCY_ELOCKED},
        {EDEADLK, 20000, LUCY_ELOCKED}, /* locked in the middle of the audio */
        {EACCES, 0, LUCY_EPERM},
        {EIO, 20000, LUCY_EIO},
    };
    char path[4200], err[512];
    path_of(path, sizeof path, fixtures, "librivox-0870.m4a");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        fail_fd = fd;
        fail_errno = cases[i].errnum;
        fail_after_bytes = cases[i].after_bytes;
        struct lucy_pcm pcm;
        int rc = lucy_audio_decode_fd(fd, path, &pcm, err, sizeof err);
        fail_fd = -1;
        close(fd);
        if (rc != cases[i].want)
            fail_msg("case %zu: got %s (%s)", i, lucy_strerror(rc), err);
        assert_non_null(strstr(err, strerror(cases[i].errnum)));
        lucy_pcm_free(&pcm);
    }
}

static void pipe_is_read_in_order(void **state)
{
    (void)state;
    char path[4200], err[512];
    path_of(path, sizeof path, fixtures, "cards-002-8k.wav");
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        int fd = open(path, O_RDONLY);
        char buf[4096];
        ssize_t n;
        while ((n = read(fd, buf, sizeof buf)) > 0)
            if (write(p[1], buf, (size_t)n) != n)
                _exit(1);
        _exit(0);
    }
    close(p[1]);
    struct lucy_pcm pcm;
    int rc = lucy_audio_decode_fd(p[0], "pipe", &pcm, err, sizeof err);
    close(p[0]);
    waitpid(pid, NULL, 0);
    if (rc)
        fail_msg("%s (%s)", lucy_strerror(rc), err);
    assert_true(fabs(pcm.duration_s - 1.960) < 0.050);
    lucy_pcm_free(&pcm);
}

static void ffmpeg_chatter_goes_to_our_debug_log(void **state)
{
    (void)state;
    char log_path[4200], err_path[4200], path[4200], err[512];
    path_of(log_path, sizeof log_path, tmp_dir, "lucy.log");
    path_of(err_path, sizeof err_path, tmp_dir, "stderr.txt");
    char src[4200];
    path_of(src, sizeof src, fixtures, "goforward.m4a"); /* index at the end */
    path_of(path, sizeof path, tmp_dir, "no-index.m4a");
    copy_prefix(src, path, 4096); /* the demuxer logs "moov atom not found" */

    FILE *log = fopen(log_path, "w+");
    lucy_log_reset();
    lucy_log_set_output(log);
    lucy_log_set_level(LUCY_LOG_DEBUG);
    fflush(stderr);
    int saved = dup(2);
    int errfd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(errfd, 2);
    struct lucy_pcm pcm;
    int rc = decode_path(path, &pcm, err, sizeof err);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(errfd);
    lucy_log_set_output(NULL);
    lucy_log_set_level(LUCY_LOG_INFO);
    assert_int_equal(rc, LUCY_ECORRUPT);

    struct stat st;
    assert_int_equal(stat(err_path, &st), 0);
    assert_int_equal(st.st_size, 0); /* nothing written to stderr */
    char text[65536] = "";
    fflush(log);
    rewind(log);
    size_t n = fread(text, 1, sizeof text - 1, log);
    text[n] = '\0';
    fclose(log);
    assert_non_null(strstr(text, "\"msg\":\"ffmpeg\""));
    assert_non_null(strstr(text, "\"level\":\"debug\""));
}

static int setup(void **state)
{
    (void)state;
    const char *env = getenv("LUCY_FIXTURES");
    if (env) {
        snprintf(fixtures, sizeof fixtures, "%s/audio", env);
    } else {
        char here[4096];
        snprintf(here, sizeof here, "%s", __FILE__);
        snprintf(fixtures, sizeof fixtures, "%s/../fixtures/audio", dirname(here));
    }
    char probe[4200];
    path_of(probe, sizeof probe, fixtures, "transcripts.tsv");
    if (access(probe, R_OK) != 0) {
        fprintf(stderr, "audio_test: fixtures not found at %s; set LUCY_FIXTURES\n", fixtures);
        return -1;
    }
    return mkdtemp(tmp_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char *rm[] = {"rm", "-rf", tmp_dir, NULL};
    run(rm);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_fixture_decodes),
        cmocka_unit_test(generated_mp3_and_faststart_m4a),
        cmocka_unit_test(not_audio_is_corrupt),
        cmocka_unit_test(cut_before_index_is_corrupt_with_reason),
        cmocka_unit_test(cut_faststart_is_truncated),
        cmocka_unit_test(read_errors_keep_their_errno),
        cmocka_unit_test(pipe_is_read_in_order),
        cmocka_unit_test(ffmpeg_chatter_goes_to_our_debug_log),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
