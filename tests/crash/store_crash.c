/*
 * store_crash.c - drives the group-commit writer from many threads for the
 * kill -9 test (tests/integration/test_store_crash.py).
 *
 * usage: store_crash DATA_DIR THREADS PREFIX
 * Each thread writes rows "<prefix>t<thread>-<seq>" into table meta, one per
 * lucy_store_write(), and prints "t<thread>-<seq>\n" on stdout only AFTER
 * the write was reported durable. The test kills the process at a random
 * moment and checks every printed key is in the database.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "store/store.h"

static struct lucy_store *store;
static const char *prefix;

struct job {
    int thread;
    long seq;
};

static int put(sqlite3 *db, void *arg)
{
    struct job *j = arg;
    char sql[128];
    snprintf(sql, sizeof sql, "INSERT INTO meta (key, value) VALUES ('%st%d-%ld', 'x')", prefix,
             j->thread, j->seq);
    return lucy_store_err(sqlite3_exec(db, sql, NULL, NULL, NULL));
}

static void *run(void *arg)
{
    struct job j = {(int)(intptr_t)arg, 0};
    for (;; j.seq++) {
        if (lucy_store_write(store, put, &j, 0) == 0) {
            flockfile(stdout);
            printf("%st%d-%ld\n", prefix, j.thread, j.seq);
            fflush(stdout);
            funlockfile(stdout);
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: store_crash DATA_DIR THREADS PREFIX\n");
        return 2;
    }
    prefix = argv[3];
    char err[256];
    if (lucy_store_open(argv[1], &store, err, sizeof err) != 0) {
        fprintf(stderr, "store_crash: %s\n", err);
        return 1;
    }
    int n = atoi(argv[2]);
    pthread_t t;
    for (int i = 0; i < n; i++)
        pthread_create(&t, NULL, run, (void *)(intptr_t)i);
    pthread_join(t, NULL); /* never returns: killed by the test */
    return 0;
}
