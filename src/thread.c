/*
 * thread.c - start / kick / nap / stop of a named worker (see thread.h).
 */
#define _GNU_SOURCE
#include "thread.h"

#include <errno.h>

#include "clock.h"
#include "error.h"

static void *trampoline(void *arg)
{
    struct lucy_thread *t = arg;
    pthread_setname_np(pthread_self(), t->name);
    t->main(t->arg);
    return NULL;
}

int lucy_thread_start(struct lucy_thread *t)
{
    pthread_condattr_t ca;
    pthread_mutex_init(&t->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cond, &ca);
    pthread_condattr_destroy(&ca);
    t->kicked = t->stopping = 0;
    if (pthread_create(&t->tid, NULL, trampoline, t) != 0) {
        pthread_cond_destroy(&t->cond);
        pthread_mutex_destroy(&t->lock);
        return LUCY_ENOMEM;
    }
    t->started = 1;
    return 0;
}

void lucy_thread_kick(struct lucy_thread *t)
{
    if (!t->started)
        return;
    pthread_mutex_lock(&t->lock);
    t->kicked = 1;
    pthread_cond_signal(&t->cond);
    pthread_mutex_unlock(&t->lock);
}

int lucy_thread_nap(struct lucy_thread *t, int64_t ms)
{
    struct timespec until = lucy_deadline_ms(CLOCK_MONOTONIC, ms);
    pthread_mutex_lock(&t->lock);
    while (!t->kicked && !t->stopping && ms > 0)
        if (pthread_cond_timedwait(&t->cond, &t->lock, &until) == ETIMEDOUT)
            break;
    t->kicked = 0;
    int stopping = t->stopping;
    pthread_mutex_unlock(&t->lock);
    return stopping;
}

int lucy_thread_stopping(struct lucy_thread *t)
{
    if (!t->started)
        return __atomic_load_n(&t->stopping, __ATOMIC_RELAXED);
    pthread_mutex_lock(&t->lock);
    int stopping = t->stopping;
    pthread_mutex_unlock(&t->lock);
    return stopping;
}

void lucy_thread_stop(struct lucy_thread *t)
{
    if (!t->started) {
        __atomic_store_n(&t->stopping, 1, __ATOMIC_RELAXED);
        return;
    }
    pthread_mutex_lock(&t->lock);
    t->stopping = 1;
    pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->lock);
    pthread_join(t->tid, NULL);
    pthread_cond_destroy(&t->cond);
    pthread_mutex_destroy(&t->lock);
    t->started = 0;
}

int lucy_thread_detached(void *(*fn)(void *), void *arg)
{
    pthread_attr_t a;
    pthread_t t;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&t, &a, fn, arg) == 0 ? 0 : LUCY_ENOMEM;
    pthread_attr_destroy(&a);
    return rc;
}
