/* store_test.c - migrations and the group-commit writer: concurrent writers
 * each learn their own result; a failing write does not fail its batch;
 * asynchronous writes complete through their callback and go ahead of
 * lucy_store_write() requests; the per-connection statement cache. */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "error.h"
#include "store/row.h"
#include "store/store.h"

static char dir[] = "/tmp/lucy-store-test-XXXXXX";
static struct lucy_store *store;

static int setup(void **state)
{
    (void)state;
    assert_non_null(mkdtemp(dir));
    char err[256];
    assert_int_equal(lucy_store_open(dir, &store, err, sizeof err), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    lucy_store_close(store);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static int put(sqlite3 *db, void *arg)
{
    long v = (long)(intptr_t)arg;
    char sql[128];
    /* odd values violate the primary key on purpose (already present) */
    snprintf(sql, sizeof sql, "INSERT INTO meta (key, value) VALUES ('k%ld', 'v')", v % 2 ? 1L : v);
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    return lucy_store_err(rc);
}

static void *writer(void *arg)
{
    return (void *)(intptr_t)lucy_store_write(store, put, arg, 0);
}

static int count_rows(sqlite3 *db, void *arg)
{
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "SELECT count(*) FROM meta WHERE key LIKE 'k%'", -1, &st, NULL);
    sqlite3_step(st);
    *(int *)arg = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return 0;
}

static void concurrent_writers(void **state)
{
    (void)state;
    assert_int_equal(lucy_store_write(store, put, (void *)(intptr_t)1, 0), 0); /* k1 */
    pthread_t t[50];
    for (long i = 0; i < 50; i++)
        pthread_create(&t[i], NULL, writer, (void *)(intptr_t)(i + 2));
    int ok = 0, conflict = 0;
    for (int i = 0; i < 50; i++) {
        void *rc;
        pthread_join(t[i], &rc);
        if ((intptr_t)rc == 0)
            ok++;
        else if ((intptr_t)rc == LUCY_ECONFLICT)
            conflict++;
    }
    assert_int_equal(ok, 25);       /* even values */
    assert_int_equal(conflict, 25); /* odd values collide with k1 */
    int rows = 0;
    assert_int_equal(lucy_store_read(store, count_rows, &rows), 0);
    assert_int_equal(rows, 26);
    unsigned long long batches, writes;
    lucy_store_stats(store, &batches, &writes);
    assert_int_equal(writes, 26);
    assert_true(batches >= 1 && batches <= 26);
}

static void error_mapping(void **state)
{
    (void)state;
    assert_int_equal(lucy_store_err(SQLITE_FULL), LUCY_ENOSPC);
    assert_int_equal(lucy_store_err(SQLITE_IOERR_WRITE), LUCY_EIO);
    assert_int_equal(lucy_store_err(SQLITE_READONLY), LUCY_EIO);
    assert_int_equal(lucy_store_err(SQLITE_CONSTRAINT_UNIQUE), LUCY_ECONFLICT);
    assert_int_equal(lucy_store_err(SQLITE_DONE), 0);
}

/* ---- the statement cache -------------------------------------------------- */

static const char sql_put_meta[] = "INSERT INTO meta (key, value) VALUES (?1, ?2)";

struct cache_probe {
    sqlite3_stmt *first, *again, *same_text; /* lucy_store_stmt results */
    int rc_bad;                              /* for SQL that does not parse */
};

static int cache_write(sqlite3 *db, void *arg)
{
    struct cache_probe *p = arg;
    int rc = lucy_store_stmt(db, sql_put_meta, &p->first);
    if (rc)
        return rc;
    sqlite3_bind_text(p->first, 1, "cache-a", -1, SQLITE_STATIC);
    sqlite3_bind_text(p->first, 2, "v", -1, SQLITE_STATIC);
    rc = sqlite3_step(p->first);
    if (rc != SQLITE_DONE)
        return lucy_store_err(rc); /* a second run: the key exists */
    /* the same statement again: reset, bindings cleared */
    rc = lucy_store_stmt(db, sql_put_meta, &p->again);
    if (rc)
        return rc;
    sqlite3_bind_text(p->again, 1, "cache-b", -1, SQLITE_STATIC);
    if (sqlite3_step(p->again) != SQLITE_DONE) /* ?2 NULL: value may be NULL */
        return LUCY_EIO;
    /* the cache is keyed by the text, not by the pointer */
    char copy[sizeof sql_put_meta];
    memcpy(copy, sql_put_meta, sizeof copy);
    rc = lucy_store_stmt(db, copy, &p->same_text);
    if (rc)
        return rc;
    sqlite3_stmt *bad;
    p->rc_bad = lucy_store_stmt(db, "INSERT INTO no_such_table VALUES (1)", &bad);
    return 0;
}

/* Leaves a SELECT on its first row: the store resets it after the read. */
static int cache_read(sqlite3 *db, void *arg)
{
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db, "SELECT value FROM meta WHERE key = 'cache-a'", &st);
    if (rc)
        return rc;
    *(int *)arg = sqlite3_step(st) == SQLITE_ROW;
    return 0;
}

static int count_cache_rows(sqlite3 *db, void *arg)
{
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db, "SELECT count(*) FROM meta WHERE key LIKE 'cache-%'", &st);
    if (rc)
        return rc;
    *(int *)arg = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    return 0;
}

static int delete_cache_rows(sqlite3 *db, void *arg)
{
    (void)arg;
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db, "DELETE FROM meta WHERE key LIKE 'cache-%'", &st);
    return rc ? rc : sqlite3_step(st) == SQLITE_DONE ? 0 : LUCY_EIO;
}

static void statement_cache(void **state)
{
    (void)state;
    struct cache_probe p = {0};
    assert_int_equal(lucy_store_write(store, cache_write, &p, 0), 0);
    assert_non_null(p.first);
    assert_ptr_equal(p.first, p.again);
    assert_ptr_equal(p.first, p.same_text);
    assert_int_not_equal(p.rc_bad, 0);
    /* cached across writes on the writer connection */
    struct cache_probe q = {0};
    assert_int_equal(lucy_store_write(store, cache_write, &q, 0), LUCY_ECONFLICT);
    assert_ptr_equal(q.first, p.first);
    /* reads: a statement left on a row must not pin an old snapshot */
    int found = 0;
    assert_int_equal(lucy_store_read(store, cache_read, &found), 0);
    assert_true(found);
    assert_int_equal(lucy_store_write(store, delete_cache_rows, NULL, 0), 0);
    int rows = -1;
    assert_int_equal(lucy_store_read(store, count_cache_rows, &rows), 0);
    assert_int_equal(rows, 0);
    /* outside a store function there is no connection to cache on */
    sqlite3_stmt *st = (sqlite3_stmt *)&rows;
    assert_int_equal(lucy_store_stmt(NULL, sql_put_meta, &st), LUCY_EINVAL);
    assert_null(st);
}

/* ---- asynchronous writes ---------------------------------------------------- */

struct order {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int gate_open; /* releases the blocking write */
    int blocked;   /* the blocking write runs */
    char seen[8];  /* which writes ran, in order */
    int n_seen;
    int done_rc;    /* the async write's result */
    int done_calls; /* how often its callback ran */
};

static struct order order = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void mark(char who)
{
    pthread_mutex_lock(&order.lock);
    order.seen[order.n_seen++] = who;
    pthread_mutex_unlock(&order.lock);
}

/* Holds the writer until the test opens the gate. */
static int blocking_write(sqlite3 *db, void *arg)
{
    (void)db, (void)arg;
    pthread_mutex_lock(&order.lock);
    order.blocked = 1;
    pthread_cond_broadcast(&order.cond);
    while (!order.gate_open)
        pthread_cond_wait(&order.cond, &order.lock);
    pthread_mutex_unlock(&order.lock);
    return 0;
}

static int marking_write(sqlite3 *db, void *arg)
{
    mark(*(const char *)arg);
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db, sql_put_meta, &st);
    if (rc)
        return rc;
    char key[16];
    snprintf(key, sizeof key, "order-%c", *(const char *)arg);
    sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    return sqlite3_step(st) == SQLITE_DONE ? 0 : LUCY_EIO;
}

static void async_done(void *arg, int rc)
{
    (void)arg;
    pthread_mutex_lock(&order.lock);
    order.done_rc = rc;
    order.done_calls++;
    pthread_cond_broadcast(&order.cond);
    pthread_mutex_unlock(&order.lock);
}

static void *sync_writer(void *arg)
{
    return (void *)(intptr_t)lucy_store_write(store, arg == NULL ? blocking_write : marking_write,
                                              arg, 0);
}

static int read_order_rows(sqlite3 *db, void *arg)
{
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db, "SELECT count(*) FROM meta WHERE key LIKE 'order-%'", &st);
    if (rc)
        return rc;
    *(int *)arg = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    return 0;
}

static void async_goes_first(void **state)
{
    (void)state;
    static const char normal = 'n', urgent = 'u';
    pthread_t blocker, background;
    pthread_create(&blocker, NULL, sync_writer, NULL);
    pthread_mutex_lock(&order.lock);
    while (!order.blocked)
        pthread_cond_wait(&order.cond, &order.lock);
    pthread_mutex_unlock(&order.lock);
    /* the writer is busy: queue a background write, then an urgent one */
    pthread_create(&background, NULL, sync_writer, (void *)&normal);
    usleep(20 * 1000);
    assert_int_equal(
        lucy_store_write_async(store, marking_write, (void *)&urgent, async_done, NULL), 0);
    pthread_mutex_lock(&order.lock);
    order.gate_open = 1;
    pthread_cond_broadcast(&order.cond);
    while (order.done_calls == 0)
        pthread_cond_wait(&order.cond, &order.lock);
    pthread_mutex_unlock(&order.lock);
    void *rc;
    pthread_join(blocker, &rc);
    assert_int_equal((intptr_t)rc, 0);
    pthread_join(background, &rc);
    assert_int_equal((intptr_t)rc, 0);
    assert_int_equal(order.done_rc, 0);
    assert_int_equal(order.done_calls, 1);
    assert_int_equal(order.n_seen, 2);
    assert_int_equal(order.seen[0], 'u'); /* ahead of the older background write */
    assert_int_equal(order.seen[1], 'n');
    int rows = 0;
    assert_int_equal(lucy_store_read(store, read_order_rows, &rows), 0);
    assert_int_equal(rows, 2); /* done(0) means committed */
    /* a failing async write reports its own error */
    order.done_calls = 0;
    assert_int_equal(
        lucy_store_write_async(store, marking_write, (void *)&urgent, async_done, NULL), 0);
    pthread_mutex_lock(&order.lock);
    while (order.done_calls == 0)
        pthread_cond_wait(&order.cond, &order.lock);
    pthread_mutex_unlock(&order.lock);
    assert_int_equal(order.done_rc, LUCY_EIO); /* order-u exists: the step fails */
}

/* ---- row helpers (src/store/row.c) ---------------------------------------- */

static int row_write(sqlite3 *db, void *arg)
{
    (void)arg;
    sqlite3_stmt *st;
    assert_int_equal(lucy_store_stmt(db, "INSERT INTO meta (key, value) VALUES (?1, ?2)", &st), 0);
    lucy_row_bind_text(st, 1, "row-null");
    lucy_row_bind_text(st, 2, NULL);
    assert_int_equal(lucy_row_step_done(st), 0);
    assert_int_equal(lucy_store_stmt(db, "INSERT INTO meta (key, value) VALUES (?1, ?2)", &st), 0);
    char key[] = "row-text";
    lucy_row_bind_text(st, 1, key);
    lucy_row_bind_text(st, 2, "a longer value");
    key[0] = 'X'; /* bound as a copy: changing it afterwards changes nothing */
    assert_int_equal(lucy_row_step_done(st), 0);
    /* a second insert of the same key is a constraint violation */
    assert_int_equal(lucy_store_stmt(db, "INSERT INTO meta (key, value) VALUES (?1, ?2)", &st), 0);
    lucy_row_bind_text(st, 1, "row-text");
    lucy_row_bind_text(st, 2, "again");
    assert_int_equal(lucy_row_step_done(st), LUCY_ECONFLICT);
    return lucy_row_exec(db, "INSERT INTO meta (key, value) VALUES ('row-exec', 'x')");
}

static int row_read(sqlite3 *db, void *arg)
{
    (void)arg;
    sqlite3_stmt *st;
    assert_int_equal(lucy_store_stmt(db,
                                     "SELECT key, value FROM meta WHERE key LIKE 'row-%' "
                                     "ORDER BY key",
                                     &st),
                     0);
    char small[6];
    assert_int_equal(sqlite3_step(st), SQLITE_ROW); /* row-exec */
    lucy_row_copy(st, 0, small, sizeof small);
    assert_string_equal(small, "row-e");            /* truncated to fit */
    assert_int_equal(sqlite3_step(st), SQLITE_ROW); /* row-null */
    lucy_row_copy(st, 1, small, sizeof small);
    assert_string_equal(small, ""); /* NULL becomes "" */
    assert_null(lucy_row_dup(st, 1));
    assert_int_equal(sqlite3_step(st), SQLITE_ROW); /* row-text */
    char *v = lucy_row_dup(st, 1);
    assert_string_equal(v, "a longer value");
    free(v);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    return 0;
}

static void row_helpers(void **state)
{
    (void)state;
    assert_int_equal(lucy_store_write(store, row_write, NULL, 5000), 0);
    assert_int_equal(lucy_store_read(store, row_read, NULL), 0);
}

/* ---- events (lucy_store_notify / lucy_store_listen) ------------------------- */

static int heard;

static void on_event(void *arg, unsigned events)
{
    __atomic_add_fetch(&heard, (int)events * *(int *)arg, __ATOMIC_SEQ_CST);
}

static int raise_ok(sqlite3 *db, void *arg)
{
    (void)arg;
    lucy_store_notify(db, 2u);
    return lucy_row_exec(db, "INSERT OR REPLACE INTO meta (key, value) VALUES ('ev', 'x')");
}

static int raise_and_fail(sqlite3 *db, void *arg)
{
    (void)arg;
    lucy_store_notify(db, 2u);
    return LUCY_EINVAL; /* rolled back: raises nothing */
}

static int raise_in_read(sqlite3 *db, void *arg)
{
    (void)arg;
    lucy_store_notify(db, 2u); /* a read cannot raise */
    return 0;
}

static void events_follow_commits(void **state)
{
    (void)state;
    int weight = 1;
    assert_int_equal(lucy_store_listen(store, 2u | 4u, on_event, &weight), 0);
    assert_int_equal(lucy_store_write(store, raise_ok, NULL, 5000), 0);
    assert_int_equal(__atomic_load_n(&heard, __ATOMIC_SEQ_CST), 2); /* called before the 0 */
    assert_int_equal(lucy_store_write(store, raise_and_fail, NULL, 5000), LUCY_EINVAL);
    assert_int_equal(lucy_store_read(store, raise_in_read, NULL), 0);
    assert_int_equal(__atomic_load_n(&heard, __ATOMIC_SEQ_CST), 2);
    lucy_store_unlisten(store, on_event, &weight);
    assert_int_equal(lucy_store_write(store, raise_ok, NULL, 5000), 0);
    assert_int_equal(__atomic_load_n(&heard, __ATOMIC_SEQ_CST), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(concurrent_writers), cmocka_unit_test(error_mapping),
        cmocka_unit_test(statement_cache),    cmocka_unit_test(async_goes_first),
        cmocka_unit_test(row_helpers),        cmocka_unit_test(events_follow_commits),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
