/* qdrant_test.c - the pure parts of the Qdrant backend: point ids
 * (UUIDv5, checked against Python's uuid.uuid5), the HTTP status rules and
 * the checks of its configuration. The tokenizer, vectors and snippets
 * are sparse_test.c's. Includes qdrant.c to reach its statics; no
 * network. */
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
    /* an upper-case scheme passes the config check (libcurl's parser): the
     * URL is accepted here too, and the collection is what is wrong */
    cfg.qdrant_url = "HTTP://127.0.0.1:6333/";
    assert_int_equal(qdrant_open(&cfg, NULL, &st, err, sizeof err), LUCY_EINVAL);
    assert_non_null(strstr(err, "QDRANT_COLLECTION"));
    assert_null(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_point_ids_are_uuid5),
        cmocka_unit_test(test_status_rules),
        cmocka_unit_test(test_open_validates_configuration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
