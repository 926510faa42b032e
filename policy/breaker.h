/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * breaker - a circuit breaker: stop paying a timeout per message while the
 * store is down, and find out by itself when it is back.
 *
 * Interface (not thread-safe: the owner holds its lock around each call):
 *   breaker_init(b, threshold, base_ms, max_ms, seed)
 *   breaker_admit(b, now_ms, &wait_ms)   1: go ahead (possibly as the one probe);
 *                                   0: the circuit is open, fail at once;
 *                                   wait_ms tells when the next probe goes
 *   breaker_success(b)                   returns 1 if this closed the circuit
 *   breaker_failure(b, now_ms)           returns 1 if this opened the circuit
 *   breaker_abandon(b)                   an admitted call that never reached the
 *                                   store (no free connection): not a verdict
 *   breaker_is_open(b)
 *
 * Closed: calls go through; threshold failures in a row open it. Open: calls
 * fail at once until retry_at, then exactly one call (the probe) goes through.
 * A failed probe doubles the back-off up to max_ms; the wait is drawn from
 * [back-off/2, back-off] ("equal jitter"), so front-ends that saw the same
 * outage do not all come back in the same millisecond.
 */
#ifndef RM_BREAKER_H
#define RM_BREAKER_H

struct breaker {
    int threshold;
    long long base_ms, max_ms;
    int failures; /* in a row */
    int open;
    int probing; /* a probe is under way */
    long long backoff_ms;
    long long retry_at_ms;
    unsigned seed;
};

void breaker_init(struct breaker *b, int threshold, long long base_ms, long long max_ms,
                  unsigned seed);
int breaker_admit(struct breaker *b, long long now_ms, long long *wait_ms);
int breaker_success(struct breaker *b);
int breaker_failure(struct breaker *b, long long now_ms);
void breaker_abandon(struct breaker *b);
int breaker_is_open(const struct breaker *b);

#endif
