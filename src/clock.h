/*
 * clock.h - the one pair of clocks everyone reads.
 *
 * Wall time (CLOCK_REALTIME) is for what is stored or shown: timestamps in
 * rows, log lines, `time` fields. Monotonic time (CLOCK_MONOTONIC) is for
 * durations, deadlines and schedules, which must not jump when the system
 * clock is set. Both are in milliseconds; both are thread-safe and never
 * fail (clock_gettime on these clocks cannot, on Linux).
 */
#ifndef LUCY_CLOCK_H
#define LUCY_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Milliseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t lucy_wall_ms(void);

/* Milliseconds on CLOCK_MONOTONIC: only differences mean anything. */
int64_t lucy_mono_ms(void);

/* The absolute time ms milliseconds from now on clock (CLOCK_REALTIME or
 * CLOCK_MONOTONIC), for pthread_cond_timedwait() and friends. ms < 0 is
 * taken as 0. */
struct timespec lucy_deadline_ms(clockid_t clock, int64_t ms);

#endif
