/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * breaker - circuit breaker with exponential back-off and jitter; see breaker.h.
 */
#include "breaker.h"

#include <stdlib.h>

void breaker_init(struct breaker *b, int threshold, long long base_ms, long long max_ms,
                  unsigned seed)
{
    *b = (struct breaker){.threshold = threshold,
                          .base_ms = base_ms,
                          .max_ms = max_ms,
                          .backoff_ms = base_ms,
                          .seed = seed};
}

static void schedule(struct breaker *b, long long now_ms)
{
    long long half = b->backoff_ms / 2;
    b->retry_at_ms = now_ms + half + (half > 0 ? rand_r(&b->seed) % (half + 1) : 0);
}

int breaker_admit(struct breaker *b, long long now_ms, long long *wait_ms)
{
    *wait_ms = 0;
    if (!b->open)
        return 1;
    if (b->probing || now_ms < b->retry_at_ms) {
        *wait_ms = b->retry_at_ms > now_ms ? b->retry_at_ms - now_ms : 0;
        return 0;
    }
    b->probing = 1;
    return 1;
}

int breaker_success(struct breaker *b)
{
    int was_open = b->open;

    b->failures = 0;
    b->open = 0;
    b->probing = 0;
    b->backoff_ms = b->base_ms;
    return was_open;
}

int breaker_failure(struct breaker *b, long long now_ms)
{
    b->failures++;
    if (b->open) {
        if (b->probing) { /* the probe failed: wait longer next time */
            b->probing = 0;
            b->backoff_ms = b->backoff_ms * 2 > b->max_ms ? b->max_ms : b->backoff_ms * 2;
            schedule(b, now_ms);
        }
        return 0;
    }
    if (b->failures < b->threshold)
        return 0;
    b->open = 1;
    b->backoff_ms = b->base_ms;
    schedule(b, now_ms);
    return 1;
}

void breaker_abandon(struct breaker *b)
{
    b->probing = 0;
}

int breaker_is_open(const struct breaker *b)
{
    return b->open;
}
