/*
 * thread.h - the one lifecycle of lucy's named worker threads.
 *
 * Every background worker (scanner, asr-worker, inbox-worker, wa-media,
 * indexer, prober ...) is the same loop: do the work that is due, then nap
 * until a timeout, a kick (new work arrived) or stop. struct lucy_thread
 * holds that loop's state; the worker embeds one in its own struct:
 *
 *     struct worker { struct lucy_thread thread; ... };
 *     static void worker_main(void *arg) {
 *         struct worker *w = arg;
 *         do { ...work... } while (!lucy_thread_nap(&w->thread, POLL_MS));
 *     }
 *     w->thread = (struct lucy_thread){.name = "indexer", .main = worker_main, .arg = w};
 *     lucy_thread_start(&w->thread);  ... lucy_thread_kick(&w->thread);
 *     lucy_thread_stop(&w->thread);   joins
 *
 * A kick is remembered until the next nap consumes it, so a kick that
 * arrives while the worker is busy is never lost. Naps use CLOCK_MONOTONIC.
 */
#ifndef LUCY_THREAD_H
#define LUCY_THREAD_H

#include <pthread.h>
#include <stdint.h>

struct lucy_thread {
    const char *name;        /* thread name, at most 15 bytes (pthread_setname_np) */
    void (*main)(void *arg); /* the worker's loop; returns when it should end */
    void *arg;               /* passed to main; owned by the caller */
    /* private: */
    pthread_t tid;        /* valid while started */
    pthread_mutex_t lock; /* guards kicked, stopping */
    pthread_cond_t cond;  /* signalled on kick and stop; CLOCK_MONOTONIC */
    int kicked;           /* a kick not yet consumed by a nap */
    int stopping;         /* lucy_thread_stop() was called */
    int started;          /* tid is a running thread to join */
};

/* Starts t->main(t->arg) on a new thread named t->name. Fill name, main
 * and arg first (zero the rest). Returns 0 or LUCY_ENOMEM (no thread). */
int lucy_thread_start(struct lucy_thread *t);

/* Wakes the thread's current or next nap. Any thread; cheap. */
void lucy_thread_kick(struct lucy_thread *t);

/* On the worker itself: waits up to ms milliseconds (<= 0: just checks)
 * for a kick or a stop, consuming the kick. Returns 1 when the thread must
 * stop (then return from main), 0 otherwise. */
int lucy_thread_nap(struct lucy_thread *t, int64_t ms);

/* 1 once lucy_thread_stop() was called: for long work to check between
 * steps. Any thread. */
int lucy_thread_stopping(struct lucy_thread *t);

/* Starts fn(arg) on a thread nobody joins (a reaper that ends by itself).
 * 0, or LUCY_ENOMEM (no thread). */
int lucy_thread_detached(void *(*fn)(void *), void *arg);

/* Asks the thread to stop, wakes it and joins it. Safe on a thread that
 * was never started or already stopped (then only marks it stopping).
 * Must not be called from the thread itself. */
void lucy_thread_stop(struct lucy_thread *t);

#endif
