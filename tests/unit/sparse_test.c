/* sparse_test.c - the shared tokenizer (SQLite's unicode61: case and
 * accent folding), term indices (SHA-256, checked against hashlib),
 * sparse vectors (unique sorted indices, BM25 values) and snippets
 * (escaping, marks, windows) of src/index/sparse.c. No network. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "index/sparse.h"

static struct lucy_tokenizer *tok;

static int setup(void **state)
{
    (void)state;
    return lucy_tokenizer_open(&tok);
}

static int teardown(void **state)
{
    (void)state;
    lucy_tokenizer_close(tok);
    return 0;
}

static void test_term_index_is_sha256_prefix(void **state)
{
    (void)state;
    /* int.from_bytes(hashlib.sha256(b"hello").digest()[:4], "big") */
    assert_int_equal(lucy_sparse_term_index("hello", 5), 754077114u);
    assert_int_equal(lucy_sparse_term_index("cafe", 4), 2824910936u);
}

static void expect_cafe(void *arg, const char *term, int n, int start, int end)
{
    int *count = arg;
    assert_int_equal(n, 4);
    assert_memory_equal(term, "cafe", 4);
    assert_true(start < end);
    (*count)++;
}

static void test_tokenizer_folds_case_and_accents(void **state)
{
    (void)state;
    int count = 0;
    assert_int_equal(lucy_tokenize(tok, "Café CAFE cafe", expect_cafe, &count), 0);
    assert_int_equal(count, 3);

    /* one term, tf 3 in a document of 3 tokens: the BM25 tf part */
    struct lucy_sparse a = {0};
    assert_int_equal(lucy_sparse_document(tok, "Café CAFE cafe", NULL, &a), 0);
    assert_int_equal(a.n, 1);
    assert_int_equal(a.pairs[0].index, lucy_sparse_term_index("cafe", 4));
    double want = 3 * 2.2 / (3 + 1.2 * (1 - 0.75 + 0.75 * 3 / 32.0));
    assert_true(a.pairs[0].value > want - 1e-5 && a.pairs[0].value < want + 1e-5);
    lucy_sparse_free(&a);

    struct lucy_sparse b = {0};
    assert_int_equal(lucy_sparse_query(tok, "hello, hello... world & café", &b), 0);
    assert_int_equal(b.n, 3); /* distinct, 1.0 each, sorted */
    for (size_t i = 0; i < b.n; i++) {
        assert_true(b.pairs[i].value == 1.0f);
        if (i)
            assert_true(b.pairs[i - 1].index < b.pairs[i].index);
    }
    assert_true(lucy_sparse_has(&b, lucy_sparse_term_index("world", 5)));
    assert_false(lucy_sparse_has(&b, lucy_sparse_term_index("mars", 4)));
    lucy_sparse_free(&b);
}

static void test_title_weighs_half(void **state)
{
    (void)state;
    struct lucy_sparse v = {0};
    assert_int_equal(lucy_sparse_document(tok, "plan", "plan", &v), 0);
    assert_int_equal(v.n, 1);
    double f = 1.5, dl = 2; /* tf(text) + 0.5 * tf(title), two tokens */
    double want = f * 2.2 / (f + 1.2 * (1 - 0.75 + 0.75 * dl / 32.0));
    assert_true(v.pairs[0].value > want - 1e-5 && v.pairs[0].value < want + 1e-5);
    lucy_sparse_free(&v);
}

static void test_snippet_marks_and_escapes(void **state)
{
    (void)state;
    struct lucy_sparse q = {0};
    assert_int_equal(lucy_sparse_query(tok, "CAFE plan", &q), 0);
    int marks = 0;
    char *s = lucy_sparse_snippet(tok, "Meet at the Café & <b>plan</b> it", &q, &marks);
    assert_non_null(s);
    assert_int_equal(marks, 2);
    assert_string_equal(
        s, "Meet at the <mark>Café</mark> &amp; &lt;b&gt;<mark>plan</mark>&lt;/b&gt; it");
    free(s);

    /* a long text: a window of LUCY_SNIPPET_TOKENS words around the match */
    char text[2048] = "";
    for (int i = 0; i < 60; i++)
        snprintf(text + strlen(text), sizeof text - strlen(text), "%sw%d", i ? " " : "",
                 i == 40 ? 999 : i);
    struct lucy_sparse q2 = {0};
    assert_int_equal(lucy_sparse_query(tok, "w999", &q2), 0);
    s = lucy_sparse_snippet(tok, text, &q2, &marks);
    assert_non_null(s);
    assert_int_equal(marks, 1);
    assert_true(strncmp(s, "…", strlen("…")) == 0);
    assert_non_null(strstr(s, "<mark>w999</mark>"));
    assert_true(strcmp(s + strlen(s) - strlen("…"), "…") == 0);
    free(s);

    /* no match: the start of the text, unmarked */
    s = lucy_sparse_snippet(tok, "nothing here", &q2, &marks);
    assert_int_equal(marks, 0);
    assert_string_equal(s, "nothing here");
    free(s);
    lucy_sparse_free(&q);
    lucy_sparse_free(&q2);
}

static void test_json_shape(void **state)
{
    (void)state;
    struct lucy_sparse q = {0};
    assert_int_equal(lucy_sparse_query(tok, "hello", &q), 0);
    json_t *j = lucy_sparse_json(&q);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(j, "indices"), 0)),
                     754077114);
    assert_true(json_real_value(json_array_get(json_object_get(j, "values"), 0)) == 1.0);
    json_decref(j);
    lucy_sparse_free(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_term_index_is_sha256_prefix),
        cmocka_unit_test(test_tokenizer_folds_case_and_accents),
        cmocka_unit_test(test_title_weighs_half),
        cmocka_unit_test(test_snippet_marks_and_escapes),
        cmocka_unit_test(test_json_shape),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
