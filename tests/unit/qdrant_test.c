/* qdrant_test.c - the pure parts of the Qdrant backend: point ids
 * (UUIDv5, checked against Python's uuid.uuid5), term indices (SHA-256,
 * checked against hashlib), the shared tokenizer (SQLite's unicode61:
 * case and accent folding), sparse vectors (unique sorted indices, BM25
 * values), snippets (escaping, marks, windows) and the HTTP status rules.
 * Includes qdrant.c to reach its statics; no network. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "index/qdrant.c"

static struct qdrant_index tok_only; /* just the tokenizer */

static int setup(void **state)
{
    (void)state;
    return open_tokenizer(&tok_only);
}

static int teardown(void **state)
{
    (void)state;
    sqlite3_close(tok_only.tok_db);
    return 0;
}

static void test_point_ids_are_uuid5(void **state)
{
    (void)state;
    char id[37];
    /* python3: uuid.uuid5(uuid.uuid5(uuid.NAMESPACE_URL,
     *   "https://lucy.invalid/search-index/v1"), "whatsapp/wamid.zqx1/0") */
    assert_int_equal(point_id("whatsapp", "wamid.zqx1", 0, id), 0);
    assert_string_equal(id, "76a670b8-2ffa-5f76-8879-5aa2641ed571");
    /* slashes in the id keep the name unambiguous */
    assert_int_equal(point_id("call_recording", "a/b/c", 12, id), 0);
    assert_string_equal(id, "b4eacf43-115a-5645-917b-e3a13e48cd92");
}

static void test_term_index_is_sha256_prefix(void **state)
{
    (void)state;
    /* int.from_bytes(hashlib.sha256(b"hello").digest()[:4], "big") */
    assert_int_equal(term_index("hello", 5), 754077114u);
    assert_int_equal(term_index("cafe", 4), 2824910936u);
}

static void test_tokenizer_folds_case_and_accents(void **state)
{
    (void)state;
    struct sparse a = {.weight = 1.0f}, b = {.weight = 1.0f};
    assert_int_equal(tokenize(&tok_only, "Café CAFE cafe", add_token, &a), 0);
    assert_int_equal(a.n, 3);
    sparse_finish(&a, 0);
    assert_int_equal(a.n, 1); /* one term, tf 3 */
    assert_int_equal(a.pairs[0].index, term_index("cafe", 4));
    assert_true(a.pairs[0].value == 3.0f);
    assert_int_equal(tokenize(&tok_only, "hello, hello... world & café", add_token, &b), 0);
    sparse_finish(&b, 1);
    assert_int_equal(b.n, 3); /* distinct, 1.0 each, sorted */
    for (size_t i = 0; i < b.n; i++) {
        assert_true(b.pairs[i].value == 1.0f);
        if (i)
            assert_true(b.pairs[i - 1].index < b.pairs[i].index);
    }
    free(a.pairs);
    free(b.pairs);
}

static void test_snippet_marks_and_escapes(void **state)
{
    (void)state;
    struct sparse q = {.weight = 1.0f};
    assert_int_equal(tokenize(&tok_only, "CAFE plan", add_token, &q), 0);
    sparse_finish(&q, 1);
    int marks = 0;
    char *s = make_snippet(&tok_only, "Meet at the Café & <b>plan</b> it", &q, &marks);
    assert_non_null(s);
    assert_int_equal(marks, 2);
    assert_string_equal(
        s, "Meet at the <mark>Café</mark> &amp; &lt;b&gt;<mark>plan</mark>&lt;/b&gt; it");
    free(s);

    /* a long text: a window of SNIPPET_TOKENS words around the match */
    char text[2048] = "";
    for (int i = 0; i < 60; i++)
        snprintf(text + strlen(text), sizeof text - strlen(text), "%sw%d", i ? " " : "",
                 i == 40 ? 999 : i);
    struct sparse q2 = {.weight = 1.0f};
    assert_int_equal(tokenize(&tok_only, "w999", add_token, &q2), 0);
    sparse_finish(&q2, 1);
    s = make_snippet(&tok_only, text, &q2, &marks);
    assert_non_null(s);
    assert_int_equal(marks, 1);
    assert_true(strncmp(s, "…", strlen("…")) == 0);
    assert_non_null(strstr(s, "<mark>w999</mark>"));
    assert_true(strcmp(s + strlen(s) - strlen("…"), "…") == 0);
    free(s);

    /* no match: the start of the text, unmarked */
    s = make_snippet(&tok_only, "nothing here", &q2, &marks);
    assert_int_equal(marks, 0);
    assert_string_equal(s, "nothing here");
    free(s);
    free(q.pairs);
    free(q2.pairs);
}

static void test_status_rules(void **state)
{
    (void)state;
    assert_int_equal(status_err(200, NULL), 0);
    assert_int_equal(status_err(500, "Service internal error: No space left on device: WAL "
                                     "buffer size exceeds available disk space"),
                     LUCY_ENOSPC);
    assert_int_equal(status_err(503, "x"), LUCY_EUNAVAIL);
    assert_int_equal(status_err(404, "x"), LUCY_ENOTFOUND);
    assert_int_equal(status_err(401, "x"), LUCY_EPERM);
    assert_int_equal(status_err(422, "x"), LUCY_EINVAL);
    assert_true(rejects_documents(400) && rejects_documents(413) && rejects_documents(422));
    assert_false(rejects_documents(401) || rejects_documents(404) || rejects_documents(429) ||
                 rejects_documents(500) || rejects_documents(0));
}

static void test_open_validates_configuration(void **state)
{
    (void)state;
    struct lucy_config cfg = {0};
    void *st = NULL;
    char err[256];
    cfg.qdrant_url = "ftp://x";
    assert_int_equal(qdrant_open(&cfg, NULL, &st, err, sizeof err), LUCY_EINVAL);
    assert_non_null(strstr(err, "QDRANT_URL"));
    cfg.qdrant_url = "http://127.0.0.1:6333/";
    cfg.qdrant_collection = "bad/name";
    assert_int_equal(qdrant_open(&cfg, NULL, &st, err, sizeof err), LUCY_EINVAL);
    assert_non_null(strstr(err, "QDRANT_COLLECTION"));
    assert_null(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_point_ids_are_uuid5),
        cmocka_unit_test(test_term_index_is_sha256_prefix),
        cmocka_unit_test(test_tokenizer_folds_case_and_accents),
        cmocka_unit_test(test_snippet_marks_and_escapes),
        cmocka_unit_test(test_status_rules),
        cmocka_unit_test(test_open_validates_configuration),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
