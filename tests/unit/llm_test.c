/* llm_test.c - the server-sent event parser of src/llm/chat.c: OpenAI's
 * chunks split at any byte, [DONE], comments, CRLF, a chunk that is not
 * one, and the token callback. No network. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "error.h"
#include "llm/chat.h"

static const char stream[] =
    ": keep-alive comment\n"
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\","
    "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
    "\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello \"},\"finish_reason\":null}]}\r\n\r\n"
    "data:{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"w\\u00f6rld "
    "[1]\"},\"finish_reason\":null}]}"
    "\n\n"
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\","
    "\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
    "data: [DONE]\n\n"
    "data: {\"choices\":[{\"delta\":{\"content\":\"after done\"}}]}\n\n";

struct tokens {
    char text[256];
    int calls;
    int stop_after;
};

static int on_token(void *arg, const char *text, size_t n)
{
    struct tokens *t = arg;
    strncat(t->text, text, n);
    t->calls++;
    return t->stop_after && t->calls >= t->stop_after;
}

static void feed_in_pieces(size_t piece)
{
    struct tokens t = {0};
    struct lucy_llm_sse s = {.on_token = on_token, .token_arg = &t};
    size_t len = strlen(stream);
    for (size_t i = 0; i < len; i += piece) {
        size_t n = len - i < piece ? len - i : piece;
        assert_int_equal(lucy_llm_sse_feed(&s, stream + i, n), 0);
    }
    assert_true(s.done);
    assert_int_equal(s.chunks, 4);
    assert_string_equal(s.answer, "Hello w\xc3\xb6rld [1]");
    assert_string_equal(t.text, "Hello w\xc3\xb6rld [1]");
    assert_int_equal(t.calls, 2);
    lucy_llm_sse_free(&s);
}

static void test_sse_whole_and_split_at_every_size(void **state)
{
    (void)state;
    for (size_t piece = 1; piece <= 64; piece++)
        feed_in_pieces(piece);
    feed_in_pieces(strlen(stream));
}

static void test_sse_garbage_data_line_fails(void **state)
{
    (void)state;
    struct lucy_llm_sse s = {0};
    static const char bad[] = "data: <html>502 Bad Gateway</html>\n";
    assert_int_equal(lucy_llm_sse_feed(&s, bad, strlen(bad)), LUCY_EUNAVAIL);
    lucy_llm_sse_free(&s);
    static const char err[] = "data: {\"error\":{\"message\":\"overloaded\"}}\n";
    assert_int_equal(lucy_llm_sse_feed(&s, err, strlen(err)), LUCY_EUNAVAIL);
    lucy_llm_sse_free(&s);
}

static void test_sse_token_callback_can_stop(void **state)
{
    (void)state;
    struct tokens t = {.stop_after = 1};
    struct lucy_llm_sse s = {.on_token = on_token, .token_arg = &t};
    assert_int_equal(lucy_llm_sse_feed(&s, stream, strlen(stream)), LUCY_EUNAVAIL);
    assert_int_equal(t.calls, 1);
    lucy_llm_sse_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sse_whole_and_split_at_every_size),
        cmocka_unit_test(test_sse_garbage_data_line_fails),
        cmocka_unit_test(test_sse_token_callback_can_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
