/*
 * clock.c - wall and monotonic milliseconds (see clock.h).
 */
#include "clock.h"

static int64_t read_ms(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t lucy_wall_ms(void)
{
    return read_ms(CLOCK_REALTIME);
}

int64_t lucy_mono_ms(void)
{
    return read_ms(CLOCK_MONOTONIC);
}

struct timespec lucy_deadline_ms(clockid_t clock, int64_t ms)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    if (ms < 0)
        ms = 0;
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}
