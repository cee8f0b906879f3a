/* jobs_test.c - the transcription job table (one active job per recording,
 * enqueue vs explicit request), the worker's failure classification and
 * backoff, and creation_time parsing. Includes worker.c for its statics. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "plugins/call_recordings/worker.c"
#include "store/store.h"

static char dir[] = "/tmp/lucy-jobs-test-XXXXXX";
static struct lucy_store *store;

static const char rec_a[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
static const char rec_b[] = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

static int add_recordings(sqlite3 *db, void *arg)
{
    (void)arg;
    const char *sql = "INSERT INTO recordings (id, size, mtime_ns, first_seen_s, updated_at_s)"
                      " VALUES ('aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',"
                      " 1, 0, 0, 0),"
                      " ('bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb', 1, 0,"
                      " 0, 0)";
    return lucy_store_err(sqlite3_exec(db, sql, NULL, NULL, NULL));
}

static int setup(void **state)
{
    (void)state;
    memcpy(dir + sizeof dir - 7, "XXXXXX", 6); /* mkdtemp filled it in for the last test */
    assert_non_null(mkdtemp(dir));
    char err[256];
    assert_int_equal(lucy_store_open(dir, &store, err, sizeof err), 0);
    assert_int_equal(lucy_store_write(store, add_recordings, NULL, 0), 0);
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

struct enq {
    const char *id;
    long long job_id;
};

static int enqueue_write(sqlite3 *db, void *arg)
{
    struct enq *e = arg;
    return lucy_jobs_enqueue(db, e->id, &e->job_id);
}

static int set_status(sqlite3 *db, void *arg)
{
    const char *sql = arg;
    return lucy_store_err(sqlite3_exec(db, sql, NULL, NULL, NULL));
}

static void test_enqueue_once_per_recording(void **state)
{
    (void)state;
    struct enq a1 = {rec_a, 0}, a2 = {rec_a, 0}, b = {rec_b, 0};
    assert_int_equal(lucy_store_write(store, enqueue_write, &a1, 0), 0);
    assert_int_equal(lucy_store_write(store, enqueue_write, &a2, 0), 0);
    assert_int_equal(lucy_store_write(store, enqueue_write, &b, 0), 0);
    assert_true(a1.job_id > 0);
    assert_int_equal(a1.job_id, a2.job_id);
    assert_true(b.job_id != a1.job_id);

    /* An explicit request while one is active returns the same job. */
    struct lucy_job j;
    assert_int_equal(lucy_jobs_request(store, rec_a, NULL, &j), 0);
    assert_int_equal(j.id, a1.job_id);
    assert_int_equal(j.status, LUCY_JOB_QUEUED);

    /* A second active job for one recording is refused by the index. */
    assert_int_equal(lucy_store_write(store, set_status,
                                      "INSERT INTO jobs (recording_id, status, created_at_s,"
                                      " updated_at_s) VALUES ('aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                                      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'retry_wait', 0, 0)",
                                      0),
                     LUCY_ECONFLICT);

    /* Finished: the scanner does not queue it again, a request does. */
    assert_int_equal(lucy_store_write(store, set_status, "UPDATE jobs SET status = 'done'", 0), 0);
    struct enq a3 = {rec_a, 0};
    assert_int_equal(lucy_store_write(store, enqueue_write, &a3, 0), 0);
    assert_int_equal(a3.job_id, a1.job_id);
    assert_int_equal(lucy_jobs_request(store, rec_a, NULL, &j), 0);
    assert_true(j.id > b.job_id);
    assert_int_equal(j.status, LUCY_JOB_QUEUED);
    assert_string_equal(j.asr.engine, ""); /* the configured default */

    /* A request naming an engine retargets the queued job; a claim and a
     * read carry it. */
    struct lucy_job_asr http = {"http", "whisper-1"};
    long long queued_id = j.id;
    assert_int_equal(lucy_jobs_request(store, rec_a, &http, &j), 0);
    assert_int_equal(j.id, queued_id);
    assert_string_equal(j.asr.engine, "http");
    assert_int_equal(lucy_jobs_get(store, queued_id, &j), 0);
    assert_string_equal(j.asr.engine, "http");
    assert_string_equal(j.asr.model, "whisper-1");

    assert_int_equal(lucy_jobs_request(store, "cccc", NULL, &j), LUCY_ENOTFOUND);
    assert_int_equal(lucy_jobs_get(store, 424242, &j), LUCY_ENOTFOUND);

    long long counts[LUCY_JOB_N_STATUSES];
    assert_int_equal(lucy_jobs_counts(store, counts), 0);
    assert_int_equal(counts[LUCY_JOB_QUEUED], 1); /* the new request */
    assert_int_equal(counts[LUCY_JOB_DONE], 2);
}

/* Queue order (DESIGN §13): a user's request first, then new recordings,
 * the shortest first within a class. */
static void test_queue_order(void **state)
{
    (void)state;
    static const char rec_c[] = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";
    assert_int_equal(lucy_store_write(store, set_status,
                                      "UPDATE recordings SET duration_s = 300 WHERE id LIKE 'a%';"
                                      "UPDATE recordings SET duration_s = 20 WHERE id LIKE 'b%';"
                                      "INSERT INTO recordings (id, size, mtime_ns, first_seen_s,"
                                      " updated_at_s, duration_s) VALUES ('cccccccccccccccccccc"
                                      "cccccccccccccccccccccccccccccccccccccccccccc', 1, 0, 0, 0,"
                                      " 600)",
                                      0),
                     0);
    struct enq a = {rec_a, 0}, b = {rec_b, 0};
    assert_int_equal(lucy_store_write(store, enqueue_write, &a, 0), 0); /* new, 300 s */
    assert_int_equal(lucy_store_write(store, enqueue_write, &b, 0), 0); /* new, 20 s */
    struct lucy_job c, j;
    assert_int_equal(lucy_jobs_request(store, rec_c, NULL, &c), 0); /* requested, 600 s */
    assert_int_equal(lucy_jobs_claim(store, &j), 0);
    assert_int_equal(j.id, c.id);
    assert_int_equal(lucy_jobs_claim(store, &j), 0);
    assert_int_equal(j.id, b.job_id);
    assert_int_equal(lucy_jobs_claim(store, &j), 0);
    assert_int_equal(j.id, a.job_id);
}

/* The worker's transitions, all through jobs.c: claim, finish with a
 * backoff, due retries, blocked on a critical disk, requeue at start. */
static void test_state_machine(void **state)
{
    (void)state;
    struct enq a = {rec_a, 0};
    assert_int_equal(lucy_store_write(store, enqueue_write, &a, 0), 0);
    struct lucy_job j, got;
    assert_int_equal(lucy_jobs_claim(store, &j), 0);
    assert_int_equal(j.id, a.job_id);
    assert_int_equal(j.status, LUCY_JOB_RUNNING);
    assert_int_equal(j.attempts, 1);
    assert_int_equal(lucy_jobs_claim(store, &got), 0);
    assert_int_equal(got.id, 0); /* nothing else queued */

    struct lucy_job_outcome o = {.status = LUCY_JOB_RETRY_WAIT, .error_type = "file_locked"};
    snprintf(o.error, sizeof o.error, "locked");
    int64_t next = 0;
    assert_int_equal(lucy_jobs_finish(store, &j, &o, 30, NULL, 0, &next), 0);
    assert_true(next > 0);
    assert_int_equal(lucy_jobs_get(store, j.id, &got), 0);
    assert_int_equal(got.status, LUCY_JOB_RETRY_WAIT);
    assert_string_equal(got.error_type, "file_locked");
    assert_int_equal(got.next_retry_at_s, next);
    long long locked = 0;
    assert_int_equal(lucy_jobs_count_locked(store, &locked), 0);
    assert_int_equal(locked, 1);

    int changed = -1;
    assert_int_equal(lucy_jobs_housekeep(store, 0, &changed), 0);
    assert_int_equal(changed, 0); /* not due yet */
    assert_int_equal(lucy_store_write(store, set_status, "UPDATE jobs SET next_retry_at_s = 1", 0),
                     0);
    assert_int_equal(lucy_jobs_housekeep(store, 0, &changed), 0);
    assert_int_equal(changed, 1);
    assert_int_equal(lucy_jobs_get(store, j.id, &got), 0);
    assert_int_equal(got.status, LUCY_JOB_QUEUED);

    assert_int_equal(lucy_jobs_housekeep(store, 1, &changed), 0);
    assert_int_equal(lucy_jobs_get(store, j.id, &got), 0);
    assert_int_equal(got.status, LUCY_JOB_BLOCKED);
    assert_string_equal(got.error_type, "disk_critical");
    assert_int_equal(lucy_jobs_housekeep(store, 0, &changed), 0);
    assert_int_equal(lucy_jobs_get(store, j.id, &got), 0);
    assert_int_equal(got.status, LUCY_JOB_QUEUED);
    assert_string_equal(got.error_type, "");

    int queued = 0;
    assert_int_equal(lucy_jobs_any_queued(store, &queued), 0);
    assert_true(queued);
    assert_int_equal(lucy_jobs_claim(store, &j), 0);
    assert_int_equal(j.attempts, 2);
    assert_int_equal(lucy_jobs_requeue_running(store), 0);
    assert_int_equal(lucy_jobs_get(store, j.id, &got), 0);
    assert_int_equal(got.status, LUCY_JOB_QUEUED);

    assert_int_equal(lucy_jobs_claim(store, &j), 0);
    o = (struct lucy_job_outcome){.status = LUCY_JOB_FAILED, .error_type = "corrupt"};
    assert_int_equal(lucy_jobs_finish(store, &j, &o, 30, NULL, 0, &next), 0);
    assert_int_equal(next, 0);
    assert_int_equal(lucy_jobs_get(store, j.id, &got), 0);
    assert_int_equal(got.status, LUCY_JOB_FAILED);
    enum lucy_job_status st;
    assert_int_equal(lucy_job_status_parse("no_speech", &st), 0);
    assert_int_equal(st, LUCY_JOB_NO_SPEECH);
    assert_string_equal(lucy_job_status_name(LUCY_JOB_RETRY_WAIT), "retry_wait");
    assert_int_equal(lucy_job_status_parse("none", &st), LUCY_EINVAL);
}

static void test_backoff_doubles_to_one_hour(void **state)
{
    (void)state;
    assert_int_equal(lucy_jobs_backoff_s(30, 1), 30);
    assert_int_equal(lucy_jobs_backoff_s(30, 2), 60);
    assert_int_equal(lucy_jobs_backoff_s(30, 3), 120);
    assert_int_equal(lucy_jobs_backoff_s(30, 7), 1920);
    assert_int_equal(lucy_jobs_backoff_s(30, 8), 3600);
    assert_int_equal(lucy_jobs_backoff_s(30, 1000), 3600);
    assert_int_equal(lucy_jobs_backoff_s(1, 3), 4);
}

static void test_failure_classification(void **state)
{
    (void)state;
    struct lucy_job_outcome o;
    outcome_from_source(&o, LUCY_ELOCKED, 9, "open x: Resource deadlock avoided");
    assert_int_equal(o.status, LUCY_JOB_RETRY_WAIT);
    assert_string_equal(o.error_type, "file_locked");
    assert_non_null(strstr(o.error, "synced"));

    outcome_from_source(&o, LUCY_EIO, 1, "read");
    assert_int_equal(o.status, LUCY_JOB_RETRY_WAIT);
    outcome_from_source(&o, LUCY_EIO, IO_RETRY_ATTEMPTS, "read");
    assert_int_equal(o.status, LUCY_JOB_FAILED);

    outcome_from_source(&o, LUCY_ECORRUPT, 1, "moov atom not found");
    assert_int_equal(o.status, LUCY_JOB_FAILED);
    assert_string_equal(o.error_type, "corrupt");
    assert_non_null(strstr(o.error, "moov atom not found"));

    outcome_from_source(&o, LUCY_ENOSPC, 1, NULL);
    assert_int_equal(o.status, LUCY_JOB_BLOCKED);

    outcome_from_engine(&o, LUCY_EUNAVAIL, "connection refused");
    assert_int_equal(o.status, LUCY_JOB_RETRY_WAIT);
    outcome_from_engine(&o, LUCY_EINVAL, "bad model");
    assert_int_equal(o.status, LUCY_JOB_FAILED);
    assert_string_equal(o.error_type, "asr_failed");
}

static void test_creation_time(void **state)
{
    (void)state;
    int64_t t = 0;
    assert_int_equal(lucy_recording_parse_time("2024-05-01T10:20:30.000000Z", &t), 0);
    assert_int_equal(t, 1714558830);
    assert_int_equal(lucy_recording_parse_time("2024-05-01 10:20:30", &t), 0);
    assert_int_equal(t, 1714558830);
    assert_int_equal(lucy_recording_parse_time("2024-05-01T12:20:30+0200", &t), 0);
    assert_int_equal(t, 1714558830);
    assert_int_equal(lucy_recording_parse_time("2024-05-01T12:20:30+02:00", &t), 0);
    assert_int_equal(t, 1714558830);
    assert_int_equal(lucy_recording_parse_time("yesterday", &t), LUCY_EINVAL);
    assert_int_equal(lucy_recording_parse_time("2024-05-01T10:20:30 junk", &t), LUCY_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_enqueue_once_per_recording, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state_machine, setup, teardown),
        cmocka_unit_test(test_backoff_doubles_to_one_hour),
        cmocka_unit_test(test_failure_classification),
        cmocka_unit_test(test_creation_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
