/* index_test.c - the search index against a real SQLite store in a temp
 * dir: FTS5 query quoting, time bounds, outbox put/delete/upsert
 * idempotence, the seq guard against lost updates, permanent and
 * transient backend failures, bm25 ranking, filters, snippets, stats,
 * grouping per conversation and the person filter. Includes indexer.c to reach its batch functions.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "index/indexer.c"
#include "people/people.h"

static char dir[64];
static struct lucy_store *store;
static struct lucy_index *ix;
static struct lucy_indexer *indexer; /* drains into ix on the test's thread */

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/lucy-index-test-XXXXXX");
    assert_non_null(mkdtemp(dir));
    char err[256];
    assert_int_equal(lucy_store_open(dir, &store, err, sizeof err), 0);
    assert_int_equal(lucy_index_open(NULL, store, &ix, err, sizeof err), 0);
    assert_int_equal(lucy_indexer_new(ix, NULL, &indexer), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    lucy_indexer_free(indexer);
    lucy_index_close(ix);
    lucy_store_close(store);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

/* ---- helpers ------------------------------------------------------------- */

struct docs_arg {
    const struct lucy_doc *docs;
    size_t n;
};

static int write_docs(sqlite3 *db, void *arg)
{
    struct docs_arg *a = arg;
    for (size_t i = 0; i < a->n; i++) {
        int rc = lucy_outbox_put(db, &a->docs[i]);
        if (rc)
            return rc;
    }
    return 0;
}

static void put_docs(const struct lucy_doc *docs, size_t n)
{
    struct docs_arg a = {docs, n};
    assert_int_equal(lucy_store_write(store, write_docs, &a, 0), 0);
}

static int write_delete(sqlite3 *db, void *arg)
{
    const char *const *key = arg;
    return lucy_outbox_delete(db, key[0], key[1]);
}

static void delete_doc(const char *source, const char *id)
{
    const char *key[2] = {source, id};
    assert_int_equal(lucy_store_write(store, write_delete, key, 0), 0);
}

struct sql_arg {
    const char *sql;
    int64_t v;
};

static int read_int(sqlite3 *db, void *arg)
{
    struct sql_arg *a = arg;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, a->sql, -1, &st, NULL), SQLITE_OK);
    a->v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    return 0;
}

static int64_t sql_int(const char *sql)
{
    struct sql_arg a = {sql, 0};
    assert_int_equal(lucy_store_read(store, read_int, &a), 0);
    return a.v;
}

static struct lucy_search_query query(const char *q)
{
    return (struct lucy_search_query){.q = q, .from_s = INT64_MIN, .to_s = INT64_MAX, .limit = 20};
}

static void drain(void)
{
    struct lucy_indexer_counts c = {0};
    assert_int_equal(lucy_indexer_drain(indexer, 0, &c), 0);
}

/* ---- pure helpers -------------------------------------------------------- */

static void test_fts_query_quotes_every_word(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"forward", "\"forward\""},
        {"  go   forward ", "\"go\" \"forward\""},
        {"say \"hi\"", "\"say\" \"\"\"hi\"\"\""},
        {"AND OR NOT NEAR(a b)", "\"AND\" \"OR\" \"NOT\" \"NEAR(a\" \"b)\""},
        {"title:x* -y ^z", "\"title:x*\" \"-y\" \"^z\""},
        {"café", "\"café\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int nomem;
        char *q = lucy_index_fts_query(cases[i].in, &nomem);
        assert_non_null(q);
        assert_string_equal(q, cases[i].out);
        free(q);
    }
    int nomem;
    assert_null(lucy_index_fts_query("   \t ", &nomem));
    assert_int_equal(nomem, 0);
    assert_null(lucy_index_fts_query("", &nomem));
}

static void test_parse_time(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int end_of_day;
        int64_t want;
    } ok[] = {
        {"1717171200", 0, 1717171200},
        {"-5", 0, -5},
        {"0", 1, 0},
        {"2024-05-31", 0, 1717113600},
        {"2024-05-31", 1, 1717113600 + 86399},
        {"2024-05-31T16:00:00Z", 0, 1717171200},
        {"2024-05-31T16:00:00Z", 1, 1717171200}, /* a time is never widened */
        {"2024-05-31T16:00Z", 0, 1717171200},
        {"2024-05-31 16:00:00", 0, 1717171200},
        {"2024-05-31T16:00:00.123Z", 0, 1717171200},
        {"2024-05-31T18:00:00+02:00", 0, 1717171200},
        {"2024-05-31T11:30:00-0430", 0, 1717171200},
        {"2024-02-29", 0, 1709164800},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t v = 42;
        assert_int_equal(lucy_index_parse_time(ok[i].in, ok[i].end_of_day, &v), 0);
        assert_int_equal(v, ok[i].want);
    }
    static const char *const bad[] = {
        "",
        "abc",
        "12abc",
        "2024-5-31",
        "2024-13-01",
        "2023-02-29",
        "2024-04-31",
        "2024-05-31T",
        "2024-05-31T25:00",
        "2024-05-31T16:00:00X",
        "2024-05-31T16:00:00+2",
        "1e9",
        "2024-05-31T16:00:00.Z",
        "-",
        "9999999999999",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t v;
        if (lucy_index_parse_time(bad[i], 0, &v) != LUCY_EINVAL)
            fail_msg("accepted bad time '%s'", bad[i]);
    }
    assert_int_equal(lucy_index_parse_time(NULL, 0, &(int64_t){0}), LUCY_EINVAL);
}

static void test_known_sources(void **state)
{
    (void)state;
    assert_true(lucy_index_known_source("call_recording"));
    assert_true(lucy_index_known_source("whatsapp"));
    assert_false(lucy_index_known_source("email"));
    assert_false(lucy_index_known_source(NULL));
}

/* ---- outbox ------------------------------------------------------------- */

static const struct lucy_doc doc_a = {.source = "whatsapp",
                                      .id = "wamid.A",
                                      .contact = "4915",
                                      .title = "Anna",
                                      .text = "please forward the invoice",
                                      .time_s = 1717200000};

static void test_outbox_put_is_idempotent(void **state)
{
    (void)state;
    put_docs(&doc_a, 1);
    assert_int_equal(sql_int("SELECT count(*) FROM documents"), 1);
    assert_int_equal(sql_int("SELECT count(*) FROM outbox"), 1);
    int64_t seq = sql_int("SELECT seq FROM outbox");
    /* the same document again: nothing changes, nothing queued again */
    put_docs(&doc_a, 1);
    assert_int_equal(sql_int("SELECT count(*) FROM documents"), 1);
    assert_int_equal(sql_int("SELECT seq FROM outbox"), seq);
    drain();
    assert_int_equal(sql_int("SELECT count(*) FROM outbox"), 0);
    assert_int_equal(sql_int("SELECT count(*) FROM documents_fts"), 1);
    put_docs(&doc_a, 1);
    assert_int_equal(sql_int("SELECT count(*) FROM outbox"), 0);
    /* a change is queued once, on the same doc_rowid */
    int64_t rowid = sql_int("SELECT doc_rowid FROM documents");
    struct lucy_doc changed = doc_a;
    changed.text = "please forward the receipt";
    put_docs(&changed, 1);
    put_docs(&changed, 1);
    assert_int_equal(sql_int("SELECT count(*) FROM outbox"), 1);
    assert_int_equal(sql_int("SELECT doc_rowid FROM documents"), rowid);
    drain();
    struct lucy_search_query q = query("receipt");
    struct lucy_search_result r;
    assert_int_equal(lucy_index_search(ix, &q, &r), 0);
    assert_int_equal(r.n, 1);
    lucy_search_result_free(&r);
    q = query("invoice");
    assert_int_equal(lucy_index_search(ix, &q, &r), 0);
    assert_int_equal(r.n, 0);
    lucy_search_result_free(&r);
}

static void test_outbox_rejects_incomplete_docs(void **state)
{
    (void)state;
    struct lucy_doc d = doc_a;
    d.text = NULL;
    struct docs_arg a = {&d, 1};
    assert_int_equal(lucy_store_write(store, write_docs, &a, 0), LUCY_EINVAL);
    d = doc_a;
    d.segment = -1;
    assert_int_equal(lucy_store_write(store, write_docs, &a, 0), LUCY_EINVAL);
    d = doc_a;
    d.source = "";
    assert_int_equal(lucy_store_write(store, write_docs, &a, 0), LUCY_EINVAL);
    const char *key[2] = {"whatsapp", NULL};
    assert_int_equal(lucy_store_write(store, write_delete, key, 0), LUCY_EINVAL);
    assert_int_equal(sql_int("SELECT count(*) FROM documents"), 0);
}

static void test_outbox_delete(void **state)
{
    (void)state;
    struct lucy_doc segs[3];
    for (int i = 0; i < 3; i++) {
        segs[i] = (struct lucy_doc){.source = "call_recording",
                                    .id = "rec1",
                                    .segment = i,
                                    .title = "call.m4a",
                                    .text = "forward looking statement",
                                    .t0_ms = i * 1000,
                                    .t1_ms = i * 1000 + 900};
    }
    put_docs(segs, 3);
    put_docs(&doc_a, 1);
    drain();
    assert_int_equal(sql_int("SELECT count(*) FROM documents_fts"), 4);
    delete_doc("call_recording", "rec1");
    /* hidden from search at once, before the indexer ran */
    struct lucy_search_query q = query("forward");
    struct lucy_search_result r;
    assert_int_equal(lucy_index_search(ix, &q, &r), 0);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.hits[0].id, "wamid.A");
    lucy_search_result_free(&r);
    assert_int_equal(sql_int("SELECT count(*) FROM outbox WHERE op = 'delete'"), 3);
    drain();
    assert_int_equal(sql_int("SELECT count(*) FROM outbox"), 0);
    assert_int_equal(sql_int("SELECT count(*) FROM documents"), 1);
    assert_int_equal(sql_int("SELECT count(*) FROM documents_fts"), 1);
    /* deleting what is not there is fine */
    delete_doc("call_recording", "rec1");
    assert_int_equal(sql_int("SELECT count(*) FROM outbox"), 0);
}

static void test_delete_then_put_again_before_indexing(void **state)
{
    (void)state;
    put_docs(&doc_a, 1);
    drain();
    int64_t rowid = sql_int("SELECT doc_rowid FROM documents");
    delete_doc("whatsapp", "wamid.A");
    put_docs(&doc_a, 1); /* revived: same rowid, op back to put */
    assert_int_equal(sql_int("SELECT doc_rowid FROM documents"), rowid);
    assert_int_equal(sql_int("SELECT count(*) FROM outbox WHERE op = 'put'"), 1);
    drain();
    assert_int_equal(sql_int("SELECT count(*) FROM documents_fts"), 1);
    assert_int_equal(sql_int("SELECT count(*) FROM documents WHERE deleted = 0"), 1);
}

/* A change that lands between the indexer's read and its ack must stay
 * queued (the ack is guarded by seq), so the newer text gets indexed. */
static void test_change_during_indexing_is_not_lost(void **state)
{
    (void)state;
    put_docs(&doc_a, 1);
    struct batch *b = calloc(1, sizeof *b);
    b->now_ms = lucy_wall_ms();
    assert_int_equal(lucy_store_read(store, read_batch, b), 0);
    assert_int_equal(b->n, 1);
    struct lucy_doc changed = doc_a;
    changed.text = "the receipt instead";
    put_docs(&changed, 1);
    char err[256];
    assert_int_equal(lucy_index_upsert_batch(ix, b->items, b->n_put, err, sizeof err), 0);
    struct ack_arg a = {b, 0, {0}};
    assert_int_equal(lucy_store_write(store, ack_batch, &a, 0), 0);
    free_items(b);
    free(b);
    assert_int_equal(sql_int("SELECT count(*) FROM outbox"), 1);
    drain();
    struct lucy_search_query q = query("receipt");
    struct lucy_search_result r;
    assert_int_equal(lucy_index_search(ix, &q, &r), 0);
    assert_int_equal(r.n, 1);
    lucy_search_result_free(&r);
}

/* ---- failures, through a backend that fails on demand ------------------ */

static int fail_mode; /* 0 ok, 1 whole batch transient, 2 per-item permanent */

static int failing_upsert(void *state, struct lucy_index_item *items, size_t n, char *err,
                          size_t errlen)
{
    if (fail_mode == 1) {
        snprintf(err, errlen, "backend down");
        return LUCY_EUNAVAIL;
    }
    if (fail_mode == 2)
        for (size_t i = 0; i < n; i++) {
            items[i].rc = LUCY_EINVAL;
            items[i].permanent = 1;
            snprintf(items[i].error, sizeof items[i].error, "400 bad payload %zu", i);
        }
    (void)state;
    return 0;
}

static int failing_delete(void *state, struct lucy_index_item *items, size_t n, char *err,
                          size_t errlen)
{
    return failing_upsert(state, items, n, err, errlen);
}

static const struct lucy_index_ops failing_ops = {
    .name = "failing", .upsert_batch = failing_upsert, .delete = failing_delete};

static void test_transient_failure_backs_off(void **state)
{
    (void)state;
    struct lucy_index *fx;
    struct lucy_indexer *fw;
    char err[256];
    assert_int_equal(lucy_index_open_backend(&failing_ops, NULL, store, &fx, err, sizeof err), 0);
    assert_int_equal(lucy_indexer_new(fx, NULL, &fw), 0);
    put_docs(&doc_a, 1);
    fail_mode = 1;
    struct lucy_indexer_counts c = {0};
    assert_int_equal(lucy_indexer_drain(fw, 0, &c), LUCY_EUNAVAIL);
    assert_int_equal(c.retried, 1);
    assert_int_equal(sql_int("SELECT attempts FROM outbox"), 1);
    assert_true(sql_int("SELECT next_attempt_at_ms FROM outbox") > lucy_wall_ms() + 500);
    /* not due yet: a second drain takes nothing */
    memset(&c, 0, sizeof c);
    assert_int_equal(lucy_indexer_drain(fw, 0, &c), 0);
    assert_int_equal(c.retried + c.indexed, 0);
    struct lucy_outbox_stats s;
    assert_int_equal(lucy_store_read(store, (lucy_store_read_fn)lucy_outbox_stats, &s), 0);
    assert_int_equal(s.pending, 1);
    assert_int_equal(s.retrying, 1);
    assert_string_equal(s.first_error, "backend down");
    assert_int_equal(backoff_ms(1), 1000);
    assert_int_equal(backoff_ms(2), 2000);
    assert_int_equal(backoff_ms(40), BACKOFF_MAX_MS);
    /* the backend is back: the next success makes the waiting row due */
    fail_mode = 0;
    const struct lucy_doc other = {.source = "whatsapp", .id = "wamid.B", .text = "hi"};
    put_docs(&other, 1);
    memset(&c, 0, sizeof c);
    assert_int_equal(lucy_indexer_drain(fw, 0, &c), 0);
    assert_int_equal(c.indexed, 1);
    assert_int_equal(sql_int("SELECT next_attempt_at_ms FROM outbox"), 0);
    memset(&c, 0, sizeof c);
    assert_int_equal(lucy_indexer_drain(fw, 0, &c), 0);
    assert_int_equal(c.indexed, 1);
    assert_int_equal(sql_int("SELECT count(*) FROM outbox"), 0);
    lucy_indexer_free(fw);
    lucy_index_close(fx);
}

static void test_permanent_failure_marks_failed(void **state)
{
    (void)state;
    struct lucy_index *fx;
    struct lucy_indexer *fw;
    char err[256];
    assert_int_equal(lucy_index_open_backend(&failing_ops, NULL, store, &fx, err, sizeof err), 0);
    assert_int_equal(lucy_indexer_new(fx, NULL, &fw), 0);
    put_docs(&doc_a, 1);
    fail_mode = 2;
    struct lucy_indexer_counts c = {0};
    assert_int_equal(lucy_indexer_drain(fw, 0, &c), 0);
    assert_int_equal(c.failed, 1);
    assert_int_equal(sql_int("SELECT failed FROM outbox"), 1);
    struct lucy_outbox_stats s;
    assert_int_equal(lucy_store_read(store, (lucy_store_read_fn)lucy_outbox_stats, &s), 0);
    assert_int_equal(s.pending, 0);
    assert_int_equal(s.failed, 1);
    assert_string_equal(s.first_error, "400 bad payload 0");
    json_t *stats;
    assert_int_equal(lucy_index_stats(ix, &stats), 0);
    assert_string_equal(json_string_value(json_object_get(stats, "status")), "yellow");
    assert_non_null(
        strstr(json_string_value(json_object_get(stats, "status_reason")), "400 bad payload 0"));
    json_decref(stats);
    /* a changed document gets a fresh chance */
    fail_mode = 0;
    struct lucy_doc changed = doc_a;
    changed.text = "fixed text";
    put_docs(&changed, 1);
    assert_int_equal(sql_int("SELECT failed FROM outbox"), 0);
    drain();
    assert_int_equal(sql_int("SELECT count(*) FROM outbox"), 0);
    lucy_indexer_free(fw);
    lucy_index_close(fx);
}

/* ---- search -------------------------------------------------------------- */

/* A remote backend with a local copy that answers every search with no
 * hits: whatever /search finds came from the copy. */
static int remote_searches;

static int empty_search(void *state, const struct lucy_search_query *q,
                        struct lucy_search_result *out, char *err, size_t errlen)
{
    (void)state, (void)q, (void)out, (void)err, (void)errlen;
    remote_searches++;
    return 0;
}

static const struct lucy_index_ops lagging_ops = {.name = "remote",
                                                  .local_copy = 1,
                                                  .upsert_batch = failing_upsert,
                                                  .delete = failing_delete,
                                                  .search = empty_search};

static int write_sql(sqlite3 *db, void *arg)
{
    return lucy_row_exec(db, arg);
}

/* Searches fx for "invoice": 1 when degraded; the reason must contain
 * want (NULL: no reason) and the hits come from where they should. */
static int search_invoice(struct lucy_index *fx, const char *want)
{
    struct lucy_search_query q = query("invoice");
    struct lucy_search_result r;
    assert_int_equal(lucy_index_search(fx, &q, &r), 0);
    int degraded = r.degraded;
    if (want) {
        assert_non_null(strstr(r.degraded_reason, want));
        assert_string_equal(r.backend, "sqlite");
        assert_int_equal(r.n, 1);
    } else {
        assert_string_equal(r.degraded_reason, "");
        assert_string_equal(r.backend, "remote");
    }
    lucy_search_result_free(&r);
    return degraded;
}

static void test_lagging_remote_answers_from_local_copy(void **state)
{
    (void)state;
    struct lucy_index *fx;
    struct lucy_indexer *fw;
    char err[256];
    assert_int_equal(lucy_index_open_backend(&lagging_ops, NULL, store, &fx, err, sizeof err), 0);
    assert_int_equal(lucy_indexer_new(fx, NULL, &fw), 0);
    struct lucy_indexer_counts c = {0};

    /* just queued: normal latency, the remote answers */
    put_docs(&doc_a, 1);
    remote_searches = 0;
    assert_false(search_invoice(fx, NULL));
    assert_int_equal(remote_searches, 1);
    /* the remote refused it: the copy (written first) answers, remote not asked */
    fail_mode = 1;
    assert_int_equal(lucy_indexer_drain(fw, 0, &c), LUCY_EUNAVAIL);
    assert_true(search_invoice(fx, "remote has not taken every document yet (it refused: "
                                   "backend down)"));
    assert_int_equal(remote_searches, 1);
    /* taken at last: the remote answers again */
    fail_mode = 0;
    assert_int_equal(
        lucy_store_write(store, write_sql, "UPDATE outbox SET next_attempt_at_ms = 0", 0), 0);
    assert_int_equal(lucy_indexer_drain(fw, 0, &c), 0);
    assert_int_equal(sql_int("SELECT count(*) FROM outbox"), 0);
    assert_false(search_invoice(fx, NULL));
    /* a backlog older than BACKLOG_GRACE_MS, never tried */
    const struct lucy_doc other = {.source = "whatsapp", .id = "wamid.B", .text = "hi"};
    put_docs(&other, 1);
    assert_false(search_invoice(fx, NULL));
    assert_int_equal(lucy_store_write(store, write_sql,
                                      "UPDATE outbox SET queued_at_ms = queued_at_ms - 6000", 0),
                     0);
    assert_true(search_invoice(fx, "some have waited more than 5 s"));
    /* rejected for good: the copy answers until the document changes or a reindex */
    fail_mode = 2;
    assert_int_equal(lucy_indexer_drain(fw, 0, &c), 0);
    assert_int_equal(sql_int("SELECT count(*) FROM outbox WHERE failed = 1"), 1);
    assert_true(search_invoice(fx, "remote rejected some documents (400 bad payload 0)"));
    fail_mode = 0;
    lucy_indexer_free(fw);
    lucy_index_close(fx);
}

static void test_ranking_filters_snippets(void **state)
{
    (void)state;
    const struct lucy_doc docs[] = {
        {.source = "call_recording",
         .id = "r1",
         .segment = 0,
         .title = "call.m4a",
         .text = "we talked about the weather and the garden",
         .time_s = 1000,
         .t0_ms = 0,
         .t1_ms = 5000},
        {.source = "call_recording",
         .id = "r1",
         .segment = 1,
         .title = "call.m4a",
         .text = "the budget, the budget, the quarterly budget review & <next> steps",
         .time_s = 1000,
         .t0_ms = 5000,
         .t1_ms = 9000},
        {.source = "whatsapp",
         .id = "w1",
         .contact = "111",
         .title = "Bob",
         .text = "did you see the budget mail",
         .time_s = 2000},
        {.source = "whatsapp",
         .id = "w2",
         .contact = "222",
         .title = "Eve",
         .text = "lunch at the Café Müller?",
         .time_s = 3000},
    };
    put_docs(docs, 4);
    drain();
    struct lucy_search_query q = query("budget");
    struct lucy_search_result r;
    assert_int_equal(lucy_index_search(ix, &q, &r), 0);
    assert_string_equal(r.backend, "sqlite");
    assert_int_equal(r.n, 2);
    /* three mentions beat one */
    assert_string_equal(r.hits[0].id, "r1");
    assert_int_equal(r.hits[0].segment, 1);
    assert_int_equal(r.hits[0].t0_ms, 5000);
    assert_int_equal(r.hits[0].t1_ms, 9000);
    assert_true(r.hits[0].score > r.hits[1].score);
    assert_non_null(strstr(r.hits[0].snippet, "<mark>budget</mark>"));
    assert_non_null(strstr(r.hits[0].snippet, "&amp; &lt;next&gt;"));
    lucy_search_result_free(&r);

    q.source = "whatsapp";
    assert_int_equal(lucy_index_search(ix, &q, &r), 0);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.hits[0].id, "w1");
    assert_string_equal(r.hits[0].contact, "111");
    lucy_search_result_free(&r);

    q = query("the");
    q.contact = "222";
    assert_int_equal(lucy_index_search(ix, &q, &r), 0);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.hits[0].id, "w2");
    lucy_search_result_free(&r);

    q = query("the");
    q.from_s = 1500;
    q.to_s = 2500;
    assert_int_equal(lucy_index_search(ix, &q, &r), 0);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.hits[0].id, "w1");
    lucy_search_result_free(&r);

    q = query("the");
    q.limit = 2;
    assert_int_equal(lucy_index_search(ix, &q, &r), 0);
    assert_int_equal(r.n, 2);
    lucy_search_result_free(&r);
    q.limit = 0;
    assert_int_equal(lucy_index_search(ix, &q, &r), LUCY_EINVAL);
    q.limit = 101;
    assert_int_equal(lucy_index_search(ix, &q, &r), LUCY_EINVAL);

    /* accents and case do not matter (remove_diacritics 2) */
    q = query("cafe MULLER");
    assert_int_equal(lucy_index_search(ix, &q, &r), 0);
    assert_int_equal(r.n, 1);
    assert_non_null(strstr(r.hits[0].snippet, "<mark>Café</mark> <mark>Müller</mark>"));
    lucy_search_result_free(&r);

    /* query syntax is just text: no error, no match */
    static const char *const hostile[] = {"\"",  "AND",      "budget OR", "NEAR(", "(",   "*",
                                          "a:b", "budget\"", "-budget",   "^",     "{x}", "''"};
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
        q = query(hostile[i]);
        if (lucy_index_search(ix, &q, &r) != 0)
            fail_msg("query '%s' failed", hostile[i]);
        lucy_search_result_free(&r);
    }
    q = query("budget\"");
    assert_int_equal(lucy_index_search(ix, &q, &r), 0);
    lucy_search_result_free(&r);

    /* multi-word queries need every word */
    q = query("budget mail");
    assert_int_equal(lucy_index_search(ix, &q, &r), 0);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.hits[0].id, "w1");
    lucy_search_result_free(&r);
}

static int write_person(sqlite3 *db, void *arg)
{
    int64_t *person = arg;
    int rc = lucy_people_observe(db, "wa_id", "15550002222", "Eve", "profile_name", person);
    if (rc == 0) /* a call of Eve's number, as the scanner stores it */
        rc = lucy_row_exec(db, "INSERT INTO recordings (id, size, mtime_ns, duration_s,"
                               " first_seen_s, updated_at_s) VALUES ('r2', 1, 1, 1, 1, 1)");
    if (rc == 0)
        rc = lucy_row_exec(db, "INSERT INTO recording_calls (recording_id, number_e164,"
                               " updated_at_ms) VALUES ('r2', '+15550002222', 1)");
    return rc;
}

/* A speaker lookup for recordings: even segments "me", odd person 7. */
static size_t fake_calls, fake_hits;
static int fake_speakers(sqlite3 *db, struct lucy_search_hit *hits, size_t n)
{
    (void)db;
    fake_calls++;
    fake_hits = n;
    for (size_t i = 0; i < n; i++)
        if (strcmp(hits[i].source, "call_recording") == 0)
            hits[i].speaker = hits[i].segment % 2 ? 7 : LUCY_SPEAKER_ME;
    return 0;
}

static void test_grouped_search(void **state)
{
    (void)state;
    struct lucy_doc docs[16];
    size_t n = 0;
    /* recording r1: segment i says "plan" i % 3 + 1 times */
    static const char *const says[] = {"plan x", "plan plan x", "plan plan plan x"};
    for (int i = 0; i < 8; i++)
        docs[n++] = (struct lucy_doc){.source = "call_recording",
                                      .id = "r1",
                                      .segment = i,
                                      .title = "call.m4a",
                                      .text = says[i % 3],
                                      .time_s = 1000,
                                      .t0_ms = i * 1000,
                                      .t1_ms = i * 1000 + 500};
    docs[n++] = (struct lucy_doc){.source = "call_recording",
                                  .id = "r2",
                                  .segment = 0,
                                  .title = "call with eve.m4a",
                                  .text = "the plan for eve and more words around it",
                                  .time_s = 1000};
    /* contact 111: two messages on 1970-01-02, one on 1970-01-03; 15550002222 = Eve's wa_id */
    const struct {
        const char *id, *contact;
        int64_t time_s;
    } msgs[] = {{"w1", "111", 86400 + 10},
                {"w2", "111", 86400 + 20},
                {"w3", "111", 2 * 86400 + 5},
                {"w4", "15550002222", 86400},
                {"w5", NULL, 86400}};
    for (size_t i = 0; i < sizeof msgs / sizeof msgs[0]; i++)
        docs[n++] = (struct lucy_doc){.source = "whatsapp",
                                      .id = msgs[i].id,
                                      .contact = msgs[i].contact,
                                      .title = "someone",
                                      .text = "a plan in a message with several more words",
                                      .time_s = msgs[i].time_s};
    put_docs(docs, n);
    drain();
    int64_t eve = 0;
    assert_int_equal(lucy_store_write(store, write_person, &eve, 0), 0);
    assert_true(eve > 0);

    struct lucy_search_query q = query("plan");
    struct lucy_search_result r;
    assert_int_equal(lucy_index_search_grouped(ix, &q, 3, &r), 0);
    /* r1, r2, 111's two days, Eve's day, the message without contact */
    assert_int_equal(r.n_groups, 6);
    const struct lucy_search_group *g = &r.groups[0];
    assert_string_equal(g->key, "call_recording:r1");
    assert_int_equal(g->n, 3);
    assert_int_equal(g->more, 5);
    /* segments 2 and 5 say it three times, then those saying it twice */
    assert_int_equal(r.hits[g->first].segment % 3, 2);
    assert_int_equal(r.hits[g->first + 1].segment % 3, 2);
    assert_int_equal(r.hits[g->first + 2].segment % 3, 1);
    assert_true(r.hits[g->first].score >= r.hits[g->first + 1].score);
    assert_true(r.hits[g->first + 1].score >= r.hits[g->first + 2].score);
    int seen = 0;
    for (size_t i = 0; i < r.n_groups; i++) {
        g = &r.groups[i];
        if (i > 0) /* ranked by the best hit's score */
            assert_true(r.hits[r.groups[i - 1].first].score >= r.hits[g->first].score);
        if (strcmp(g->key, "whatsapp:contact:111:1970-01-02") == 0) {
            seen |= 1;
            assert_int_equal(g->n, 2);
            assert_string_equal(r.hits[g->first].id, "w2"); /* equal scores: newer first */
        } else if (strcmp(g->key, "whatsapp:contact:111:1970-01-03") == 0) {
            seen |= 2;
        } else if (strncmp(g->key, "whatsapp:person:", 16) == 0) {
            seen |= 4;
            assert_int_equal(g->person, eve);
        } else if (strcmp(g->key, "whatsapp:id:w5") == 0) {
            seen |= 8;
        }
    }
    assert_int_equal(seen, 15);
    json_t *j = lucy_search_result_json("plan", &r, 1);
    assert_int_equal(json_integer_value(json_object_get(j, "count")), 6);
    json_t *first = json_array_get(json_object_get(j, "hits"), 0);
    assert_string_equal(json_string_value(json_object_get(first, "id")), "r1");
    assert_int_equal(json_integer_value(json_object_get(first, "more")), 5);
    assert_int_equal(json_array_size(json_object_get(first, "hits")), 3);
    /* no speaker lookup for recordings registered: not known, null */
    assert_true(json_is_null(
        json_object_get(json_array_get(json_object_get(first, "hits"), 0), "speaker")));
    json_decref(j);
    lucy_search_result_free(&r);

    /* With one: called once per result with the hits shown; a message's
     * speaker is its sender's person (Eve), or unknown (contact 111). */
    assert_int_equal(lucy_index_set_hit_lookup(ix, "email", fake_speakers), LUCY_EINVAL);
    assert_int_equal(lucy_index_set_hit_lookup(ix, "call_recording", fake_speakers), 0);
    fake_calls = fake_hits = 0;
    assert_int_equal(lucy_index_search_grouped(ix, &q, 3, &r), 0);
    assert_int_equal(fake_calls, 1);
    assert_int_equal(fake_hits, r.n);
    for (size_t i = 0; i < r.n; i++) {
        const struct lucy_search_hit *h = &r.hits[i];
        int64_t want = strcmp(h->source, "call_recording") == 0
                           ? (h->segment % 2 ? 7 : LUCY_SPEAKER_ME)
                       : h->contact && strcmp(h->contact, "15550002222") == 0 ? eve
                                                                              : 0;
        assert_int_equal(h->speaker, want);
    }
    j = lucy_search_result_json("plan", &r, 1);
    json_t *hits = json_object_get(json_array_get(json_object_get(j, "hits"), 0), "hits");
    for (size_t i = 0; i < json_array_size(hits); i++) {
        json_t *sp = json_object_get(json_array_get(hits, i), "speaker");
        json_int_t seg = json_integer_value(json_object_get(json_array_get(hits, i), "segment"));
        if (seg % 2)
            assert_int_equal(json_integer_value(sp), 7);
        else
            assert_string_equal(json_string_value(sp), "me");
    }
    json_decref(j);
    lucy_search_result_free(&r);
    fake_calls = 0;
    assert_int_equal(lucy_index_search(ix, &q, &r), 0); /* the flat list too */
    assert_int_equal(fake_calls, 1);
    lucy_search_result_free(&r);
    assert_int_equal(lucy_index_set_hit_lookup(ix, "call_recording", NULL), 0);

    q.limit = 2; /* limit counts groups */
    assert_int_equal(lucy_index_search_grouped(ix, &q, 1, &r), 0);
    assert_int_equal(r.n_groups, 2);
    assert_int_equal(r.n, 2);
    lucy_search_result_free(&r);
    assert_int_equal(lucy_index_search_grouped(ix, &q, 0, &r), LUCY_EINVAL);
    assert_int_equal(lucy_index_search_grouped(ix, &q, LUCY_SEARCH_PER_GROUP_MAX + 1, &r),
                     LUCY_EINVAL);

    /* Eve: her wa_id's message and the call of her phone */
    char **contacts, **recordings;
    assert_int_equal(
        lucy_index_person_ids(ix, eve, &contacts, &q.n_contacts, &recordings, &q.n_recordings), 0);
    assert_int_equal(q.n_contacts, 1);
    assert_string_equal(contacts[0], "15550002222");
    assert_int_equal(q.n_recordings, 1);
    assert_string_equal(recordings[0], "r2");
    q.restrict_ids = 1;
    q.contacts = (const char *const *)contacts;
    q.recordings = (const char *const *)recordings;
    q.limit = 20;
    assert_int_equal(lucy_index_search(ix, &q, &r), 0);
    assert_int_equal(r.n, 2);
    int both = 0;
    for (size_t i = 0; i < r.n; i++)
        both |= strcmp(r.hits[i].id, "r2") == 0 ? 1 : strcmp(r.hits[i].id, "w4") == 0 ? 2 : 4;
    assert_int_equal(both, 3);
    lucy_search_result_free(&r);
    q.n_contacts = q.n_recordings = 0; /* a person with nothing to match */
    assert_int_equal(lucy_index_search_grouped(ix, &q, 3, &r), 0);
    assert_int_equal(r.n_groups, 0);
    lucy_search_result_free(&r);
    lucy_index_strv_free(contacts);
    lucy_index_strv_free(recordings);
    assert_int_equal(lucy_index_person_ids(ix, eve + 100, &contacts, &q.n_contacts, &recordings,
                                           &q.n_recordings),
                     LUCY_ENOTFOUND);
    assert_null(contacts);
}

/* Without filters the sqlite backend orders the kept rows in C: the same
 * order as the filtered query's SQL (bm25, newer first, doc_rowid). A
 * grouped search snips only the hits it shows; retrieval asks for none. */
static void test_open_order_and_snippets(void **state)
{
    (void)state;
    static const char *const ids[] = {"o1", "o2", "o3", "o4", "o5"};
    struct lucy_doc docs[5];
    for (size_t i = 0; i < 5; i++) /* equal texts: equal bm25; oldest written first */
        docs[i] = (struct lucy_doc){.source = "call_recording",
                                    .id = ids[i],
                                    .title = "a call",
                                    .text = "we spoke of the zqxy & <b>plan</b> today",
                                    .time_s = 1000 + (int64_t)i};
    put_docs(docs, 5);
    drain();

    struct lucy_search_query q = query("zqxy");
    struct lucy_search_result open, filtered;
    assert_int_equal(lucy_index_search(ix, &q, &open), 0);
    q.source = "call_recording"; /* the SQL-ordered query */
    assert_int_equal(lucy_index_search(ix, &q, &filtered), 0);
    assert_int_equal(open.n, 5);
    assert_int_equal(filtered.n, 5);
    for (size_t i = 0; i < 5; i++) {
        assert_string_equal(open.hits[i].id, ids[4 - i]); /* newer first */
        assert_string_equal(filtered.hits[i].id, open.hits[i].id);
        assert_string_equal(filtered.hits[i].snippet, open.hits[i].snippet);
        assert_null(open.hits[i].text);
    }
    assert_non_null(strstr(open.hits[0].snippet, "<mark>zqxy</mark> &amp; &lt;b&gt;"));
    lucy_search_result_free(&filtered);

    q.source = NULL;
    q.limit = 2; /* two groups shown out of five */
    struct lucy_search_result grouped;
    assert_int_equal(lucy_index_search_grouped(ix, &q, 3, &grouped), 0);
    assert_int_equal(grouped.n, 2);
    for (size_t i = 0; i < grouped.n; i++) {
        assert_string_equal(grouped.hits[i].id, open.hits[i].id);
        assert_string_equal(grouped.hits[i].snippet, open.hits[i].snippet);
        assert_null(grouped.hits[i].text);
    }
    lucy_search_result_free(&grouped);

    q.snippets = LUCY_SNIPPETS_NONE;
    assert_int_equal(lucy_index_search_grouped(ix, &q, 3, &grouped), 0);
    assert_int_equal(grouped.n, 2);
    for (size_t i = 0; i < grouped.n; i++) {
        assert_string_equal(grouped.hits[i].id, open.hits[i].id);
        assert_null(grouped.hits[i].snippet);
        assert_null(grouped.hits[i].text);
    }
    json_t *j = lucy_search_result_json("zqxy", &grouped, 1); /* no snippet: null, not a crash */
    assert_non_null(j);
    json_decref(j);
    lucy_search_result_free(&grouped);
    lucy_search_result_free(&open);
}

static void test_stats_and_requeue(void **state)
{
    (void)state;
    const struct lucy_doc docs[] = {
        {.source = "call_recording", .id = "r1", .text = "one", .time_s = 1},
        {.source = "call_recording", .id = "r1", .segment = 1, .text = "two", .time_s = 1},
        {.source = "whatsapp", .id = "w1", .text = "three", .time_s = 2},
    };
    put_docs(docs, 3);
    json_t *s;
    assert_int_equal(lucy_index_stats(ix, &s), 0);
    assert_string_equal(json_string_value(json_object_get(s, "backend")), "sqlite");
    assert_int_equal(json_integer_value(json_object_get(s, "pending_count")), 3);
    assert_int_equal(json_integer_value(json_object_get(s, "points_count")), 0);
    assert_string_equal(json_string_value(json_object_get(s, "status")), "yellow");
    json_decref(s);
    drain();
    assert_int_equal(lucy_index_stats(ix, &s), 0);
    assert_int_equal(json_integer_value(json_object_get(s, "pending_count")), 0);
    /* the user's data (none here: documents only), then the index's storage */
    static const char *const user_keys[] = {"recordings", "transcript_segments", "messages",
                                            "people"};
    for (size_t i = 0; i < sizeof user_keys / sizeof user_keys[0]; i++)
        assert_int_equal(json_integer_value(json_object_get(s, user_keys[i])), 0);
    assert_true(json_is_real(json_object_get(s, "audio_hours")));
    json_t *storage = json_object_get(s, "storage");
    assert_int_equal(json_integer_value(json_object_get(storage, "points_count")), 3);
    assert_null(json_object_get(storage, "status")); /* the verdict is top-level only */
    /* deprecated top-level copies, same values */
    assert_int_equal(json_integer_value(json_object_get(s, "points_count")), 3);
    assert_int_equal(json_integer_value(json_object_get(s, "indexed_count")), 3);
    assert_true(json_integer_value(json_object_get(s, "segments_count")) >= 1);
    assert_true(json_integer_value(json_object_get(s, "disk_bytes")) > 0);
    assert_string_equal(json_string_value(json_object_get(s, "status")), "green");
    json_t *src = json_object_get(s, "sources");
    assert_int_equal(json_integer_value(json_object_get(src, "call_recording")), 2);
    assert_int_equal(json_integer_value(json_object_get(src, "whatsapp")), 1);
    assert_int_equal(
        json_array_size(json_object_get(json_object_get(s, "payload_indexes"), "pending")), 0);
    json_decref(s);

    delete_doc("whatsapp", "w1");
    int64_t queued;
    char err[256];
    assert_int_equal(lucy_indexer_requeue_all(ix, &queued, err, sizeof err), 0);
    assert_int_equal(queued, 2);
    assert_int_equal(sql_int("SELECT count(*) FROM documents_fts"), 0);
    assert_int_equal(sql_int("SELECT count(*) FROM documents"), 2);
    drain();
    assert_int_equal(sql_int("SELECT count(*) FROM documents_fts"), 2);
    assert_int_equal(lucy_index_optimize(ix), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fts_query_quotes_every_word),
        cmocka_unit_test(test_parse_time),
        cmocka_unit_test(test_known_sources),
        cmocka_unit_test_setup_teardown(test_outbox_put_is_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox_rejects_incomplete_docs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_then_put_again_before_indexing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_change_during_indexing_is_not_lost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transient_failure_backs_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_permanent_failure_marks_failed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lagging_remote_answers_from_local_copy, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ranking_filters_snippets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grouped_search, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_order_and_snippets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats_and_requeue, setup, teardown),
    };
    lucy_log_set_level(LUCY_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
