/*
 * wire_test.c - the messages between lucy and its media processes
 * (src/media/wire.c, codec.c): every struct comes back as it went, over a
 * real socketpair with a descriptor attached; a cut or garbled payload is
 * an error, never a crash or a read past the end.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../src/error.h"
#include "../../src/media/wire.h"

/* A sample transcript: two segments, words on the first. */
static void sample_transcript(struct lucy_transcript *t)
{
    memset(t, 0, sizeof *t);
    assert_int_equal(lucy_transcript_add(t, 100, 900, "hello there", 11), 0);
    assert_int_equal(lucy_segment_add_word(&t->segments[0], 100, 400, "hello", 5), 0);
    assert_int_equal(lucy_segment_add_word(&t->segments[0], 450, 900, "there", 5), 0);
    assert_int_equal(lucy_transcript_add(t, 1500, 2000, "again", 5), 0);
    t->segments[1].channel = 1;
    assert_int_equal(lucy_transcript_join(t), 0);
    snprintf(t->engine, sizeof t->engine, "pocketsphinx");
    snprintf(t->model, sizeof t->model, "/usr/share/pocketsphinx/model/en-us/en-us");
    snprintf(t->language, sizeof t->language, "en");
    t->audio_s = 2.5;
    t->wall_s = 0.25;
    t->rtf = 0.1;
}

static void round_trips(void **state)
{
    (void)state;
    struct lucy_wire_buf b = {0};
    int16_t s16[5] = {0, 1000, -1000, 32767, -32768};
    struct lucy_pcm pcm = {.s16 = s16,
                           .n_samples = 5,
                           .duration_s = 5.0 / 16000,
                           .source_duration_s = 9,
                           .truncated = 1,
                           .continues = 1};
    struct lucy_transcript t;
    sample_transcript(&t);
    struct lucy_chunk chunks[2] = {{0, 16000}, {32000, 8000}};
    struct lucy_asr_options o = {.engine = "http", .url = "http://x/v1", .threads = 3};
    lucy_wire_put_pcm(&b, &pcm);
    lucy_wire_put_transcript(&b, &t);
    lucy_wire_put_chunks(&b, chunks, 2);
    lucy_wire_put_options(&b, &o);
    lucy_wire_put_str(&b, NULL);
    lucy_wire_put_str(&b, "");
    assert_false(b.bad);

    struct lucy_pcm p2;
    assert_int_equal(lucy_wire_get_pcm(&b, &p2), 0);
    assert_int_equal(p2.n_samples, 5);
    assert_memory_equal(p2.s16, s16, sizeof s16);
    assert_true(p2.f32[3] > 0.999f && p2.f32[4] == -1.0f); /* rebuilt as the decoder does */
    assert_true(p2.truncated && p2.continues && p2.source_duration_s == 9);
    lucy_pcm_free(&p2);

    struct lucy_transcript t2;
    assert_int_equal(lucy_wire_get_transcript(&b, &t2), 0);
    assert_int_equal(t2.n_segments, 2);
    assert_string_equal(t2.text, "hello there again");
    assert_int_equal(t2.segments[0].n_words, 2);
    assert_string_equal(t2.segments[0].words[1].text, "there");
    assert_int_equal(t2.segments[0].words[1].t0_ms, 450);
    assert_int_equal(t2.segments[1].channel, 1);
    assert_int_equal(t2.segments[1].t1_ms, 2000);
    assert_string_equal(t2.model, t.model);
    assert_true(t2.rtf > 0.099 && t2.rtf < 0.101);
    lucy_transcript_free(&t2);

    struct lucy_chunk *c2;
    size_t n;
    assert_int_equal(lucy_wire_get_chunks(&b, &c2, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(c2[1].first_sample, 32000);
    free(c2);

    struct lucy_asr_options o2;
    struct lucy_wire_options store;
    assert_int_equal(lucy_wire_get_options(&b, &o2, &store), 0);
    assert_string_equal(o2.engine, "http");
    assert_null(o2.whisper_model);
    assert_null(o2.model);
    assert_int_equal(o2.threads, 3);

    assert_null(lucy_wire_get_str(&b)); /* NULL stays NULL */
    char *empty = lucy_wire_get_str(&b);
    assert_string_equal(empty, "");
    free(empty);
    assert_false(b.bad);
    assert_int_equal(b.at, b.len);
    lucy_wire_buf_free(&b);
    lucy_transcript_free(&t);
}

/* Every prefix of a valid payload, and garbled lengths, are refused. */
static void cut_and_garbled(void **state)
{
    (void)state;
    struct lucy_wire_buf full = {0};
    struct lucy_transcript t;
    sample_transcript(&t);
    lucy_wire_put_transcript(&full, &t);
    lucy_transcript_free(&t);
    for (size_t cut = 0; cut < full.len; cut++) {
        struct lucy_wire_buf b = {.data = full.data, .len = cut};
        struct lucy_transcript got;
        assert_int_equal(lucy_wire_get_transcript(&b, &got), -1);
        assert_null(got.segments);
    }
    /* A sample count far past the payload. */
    struct lucy_wire_buf b = {0};
    lucy_wire_put_i64(&b, (int64_t)1 << 40);
    for (int i = 0; i < 5; i++)
        lucy_wire_put_i64(&b, 0);
    b.at = 0;
    struct lucy_pcm p;
    assert_int_equal(lucy_wire_get_pcm(&b, &p), -1);
    assert_null(p.s16);
    lucy_wire_buf_free(&b);
    lucy_wire_buf_free(&full);
}

/* Messages over a socketpair: header, payload and a descriptor. */
static void over_a_socket(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    int fd = open("/dev/null", O_RDONLY);
    assert_true(fd >= 0);
    struct lucy_wire_buf b = {0};
    lucy_wire_put_str(&b, "a path");
    assert_int_equal(lucy_wire_send(sv[0], LUCY_WIRE_DECODE, 7, &b, fd, NULL), 0);
    assert_int_equal(lucy_wire_send(sv[0], LUCY_WIRE_CLOSE, 0, NULL, -1, NULL), 0);
    struct lucy_wire_buf in = {0};
    int op, rc, got = -1;
    assert_int_equal(lucy_wire_recv(sv[1], &op, &rc, &in, &got, NULL), 0);
    assert_int_equal(op, LUCY_WIRE_DECODE);
    assert_int_equal(rc, 7);
    assert_true(got >= 0 && got != fd);
    char *s = lucy_wire_get_str(&in);
    assert_string_equal(s, "a path");
    free(s);
    close(got);
    assert_int_equal(lucy_wire_recv(sv[1], &op, &rc, &in, NULL, NULL), 0);
    assert_int_equal(op, LUCY_WIRE_CLOSE);
    assert_int_equal(in.len, 0);
    /* The peer gone: end of stream, and a send that does not raise SIGPIPE. */
    close(sv[0]);
    assert_int_equal(lucy_wire_recv(sv[1], &op, &rc, &in, NULL, NULL), LUCY_EIO);
    close(sv[1]);
    assert_true(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    close(sv[1]);
    assert_int_equal(lucy_wire_send(sv[0], LUCY_WIRE_PROBE, 0, &b, -1, NULL), LUCY_EIO);
    close(sv[0]);
    close(fd);
    lucy_wire_buf_free(&b);
    lucy_wire_buf_free(&in);
}

static int give_up(void *arg)
{
    return ++*(int *)arg >= 2 ? LUCY_ETIMEDOUT : 0;
}

/* A peer that never answers: a wait gives up with its code (a stopped
 * media process must not hold a caller, or lucy's stop, forever). */
static void a_silent_peer_is_given_up(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    int asked = 0;
    struct lucy_wire_wait w = {give_up, &asked};
    struct lucy_wire_buf in = {0};
    int op, rc;
    assert_int_equal(lucy_wire_recv(sv[0], &op, &rc, &in, NULL, &w), LUCY_ETIMEDOUT);
    assert_int_equal(asked, 2);
    /* A peer that does not read: the send gives up once its buffer is full. */
    struct lucy_wire_buf big = {0};
    static char mb[1 << 20];
    for (int i = 0; i < 16; i++)
        lucy_wire_put(&big, mb, sizeof mb);
    asked = 0;
    assert_int_equal(lucy_wire_send(sv[0], LUCY_WIRE_TRANSCRIBE, 0, &big, -1, &w), LUCY_ETIMEDOUT);
    lucy_wire_buf_free(&big);
    close(sv[0]);
    close(sv[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trips),
        cmocka_unit_test(cut_and_garbled),
        cmocka_unit_test(over_a_socket),
        cmocka_unit_test(a_silent_peer_is_given_up),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
