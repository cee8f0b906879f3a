/* store_test.c - migrations and the group-commit writer: concurrent writers
 * each learn their own result; a failing write does not fail its batch. */
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
    sqlite3_prepare_v2(db, "SELECT count(*) FROM meta", -1, &st, NULL);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(concurrent_writers),
        cmocka_unit_test(error_mapping),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
