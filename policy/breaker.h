/*
 * breaker - a circuit breaker: stop paying a timeout per message while the
 * store is down, and find out by itself when it is back.
 *
 * Interface (not thread-safe: the owner holds its lock around each call):
 *   br_init(b, threshold, base_ms, max_ms, seed)
 *   br_admit(b, now_ms, &wait_ms)   1: go ahead (possibly as the one probe);
 *                                   0: the circuit is open, fail at once;
 *                                   wait_ms tells when the next probe goes
 *   br_success(b)                   returns 1 if this closed the circuit
 *   br_failure(b, now_ms)           returns 1 if this opened the circuit
 *   br_abandon(b)                   an admitted call that never reached the
 *                                   store (no free connection): not a verdict
 *   br_is_open(b)
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

void br_init(struct breaker *b, int threshold, long long base_ms, long long max_ms,
             unsigned seed);
int br_admit(struct breaker *b, long long now_ms, long long *wait_ms);
int br_success(struct breaker *b);
int br_failure(struct breaker *b, long long now_ms);
void br_abandon(struct breaker *b);
int br_is_open(const struct breaker *b);

#endif
