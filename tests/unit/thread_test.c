/* thread_test.c - the worker lifecycle (src/thread.c) and clocks (src/clock.c):
 * a kick is never lost, a nap times out, stop wakes and joins. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "clock.h"
#include "thread.h"

struct counter {
    struct lucy_thread thread;
    int rounds;     /* loop iterations (atomic) */
    int64_t nap_ms; /* how long each nap may last */
};

static void count_main(void *arg)
{
    struct counter *c = arg;
    do
        __atomic_add_fetch(&c->rounds, 1, __ATOMIC_SEQ_CST);
    while (!lucy_thread_nap(&c->thread, c->nap_ms));
}

static int rounds(struct counter *c)
{
    return __atomic_load_n(&c->rounds, __ATOMIC_SEQ_CST);
}

/* Waits up to 2 s for at least n rounds. */
static int wait_rounds(struct counter *c, int n)
{
    for (int64_t end = lucy_mono_ms() + 2000; lucy_mono_ms() < end;) {
        if (rounds(c) >= n)
            return 1;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return rounds(c) >= n;
}

static void kick_wakes_a_long_nap(void **state)
{
    (void)state;
    struct counter c = {.nap_ms = 60000};
    c.thread = (struct lucy_thread){.name = "test-kick", .main = count_main, .arg = &c};
    assert_int_equal(lucy_thread_start(&c.thread), 0);
    assert_true(wait_rounds(&c, 1));
    int64_t t0 = lucy_mono_ms();
    lucy_thread_kick(&c.thread);
    assert_true(wait_rounds(&c, 2));
    assert_true(lucy_mono_ms() - t0 < 1000);
    t0 = lucy_mono_ms();
    lucy_thread_stop(&c.thread); /* wakes the 60 s nap at once */
    assert_true(lucy_mono_ms() - t0 < 1000);
    assert_true(lucy_thread_stopping(&c.thread));
}

/* A kick that arrives while the worker is busy wakes the nap that follows. */
static void busy_main(void *arg)
{
    struct counter *c = arg;
    do {
        __atomic_add_fetch(&c->rounds, 1, __ATOMIC_SEQ_CST);
        struct timespec ts = {0, 100000000}; /* 100 ms of "work" */
        nanosleep(&ts, NULL);
    } while (!lucy_thread_nap(&c->thread, c->nap_ms));
}

static void kick_while_busy_is_kept(void **state)
{
    (void)state;
    struct counter c = {.nap_ms = 60000};
    c.thread = (struct lucy_thread){.name = "test-busy", .main = busy_main, .arg = &c};
    assert_int_equal(lucy_thread_start(&c.thread), 0);
    assert_true(wait_rounds(&c, 1));
    lucy_thread_kick(&c.thread); /* during the 100 ms of work */
    assert_true(wait_rounds(&c, 2));
    lucy_thread_stop(&c.thread);
}

static void nap_times_out(void **state)
{
    (void)state;
    struct counter c = {.nap_ms = 20};
    c.thread = (struct lucy_thread){.name = "test-nap", .main = count_main, .arg = &c};
    assert_int_equal(lucy_thread_start(&c.thread), 0);
    assert_true(wait_rounds(&c, 4)); /* only timeouts wake it */
    lucy_thread_stop(&c.thread);
    int after = rounds(&c);
    struct timespec ts = {0, 50000000};
    nanosleep(&ts, NULL);
    assert_int_equal(rounds(&c), after); /* joined: no more rounds */
}

static void stop_without_start(void **state)
{
    (void)state;
    struct lucy_thread t = {.name = "never"};
    lucy_thread_kick(&t); /* no effect, no crash */
    lucy_thread_stop(&t);
    assert_true(lucy_thread_stopping(&t));
}

static void clocks_and_deadlines(void **state)
{
    (void)state;
    int64_t wall = lucy_wall_ms();
    assert_true(wall > 1700000000000LL); /* after 2023 */
    int64_t m0 = lucy_mono_ms();
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    struct timespec d = lucy_deadline_ms(CLOCK_MONOTONIC, 1500);
    int64_t diff_ms = (int64_t)(d.tv_sec - now.tv_sec) * 1000 + (d.tv_nsec - now.tv_nsec) / 1000000;
    assert_true(diff_ms >= 1499 && diff_ms <= 1510);
    assert_true(d.tv_nsec >= 0 && d.tv_nsec < 1000000000L);
    d = lucy_deadline_ms(CLOCK_MONOTONIC, -5); /* negative = now */
    assert_true(d.tv_sec >= now.tv_sec);
    assert_true(lucy_mono_ms() >= m0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(kick_wakes_a_long_nap), cmocka_unit_test(kick_while_busy_is_kept),
        cmocka_unit_test(nap_times_out),         cmocka_unit_test(stop_without_start),
        cmocka_unit_test(clocks_and_deadlines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
