/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * clock - the monotonic clock every timer in the daemon reads: ages of local
 * copies, circuit-breaker retry times, store-call latency. Monotonic, so a
 * wall-clock step (NTP, an admin's date) never expires or freezes anything.
 *
 * Interface:
 *   clock_mono_us()   microseconds since an arbitrary start
 *   clock_mono_ms()   milliseconds since the same start
 */
#ifndef RM_CLOCK_H
#define RM_CLOCK_H

#include <time.h>

static inline long long clock_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static inline long long clock_mono_ms(void)
{
    return clock_mono_us() / 1000;
}

#endif
