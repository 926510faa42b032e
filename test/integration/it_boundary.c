/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * it_boundary - no double burst at a window boundary (minute window):
 * use up N just before a minute ends; right after it a further message is
 * still refused, because the estimate pm * (1 - f) + m still counts the
 * previous minute; room appears only as f grows, at the promised retry time.
 * Waits for the server clock to reach second 55 of a minute: at most ~65 s.
 */
#include <stdio.h>
#include <string.h>

#include "itest.h"
#include "store_redis.h"

enum { W = 60000, N = 20 };

static const struct rm_config *cfg;
static struct store *store;

static struct quota_result charge(const char *customer, long long *t0, long long *t1,
                                  redisContext *rc)
{
    struct quota_req q;
    struct quota_result res;

    it_quota(&q, cfg, customer, "a@burst.example", 1);
    if (t0)
        *t0 = it_redis_ms(rc);
    it_charge(store, &q, &res);
    if (t1)
        *t1 = it_redis_ms(rc);
    return res;
}

/* Sleep until the server clock is at second 55..58.5 of a minute. */
static void wait_for_late_second(redisContext *rc)
{
    long long s = it_redis_ms(rc) % W;

    if (s >= 58500)
        it_sleep_ms(W - s + 55000);
    else if (s < 55000)
        it_sleep_ms(55000 - s);
    s = it_redis_ms(rc) % W;
    REQUIRE(s >= 55000 && s < 59000, "clock at second %.1f, not 55..59", s / 1000.0);
}

int main(void)
{
    char redis[512], limits[1024], err[STORE_ERR_MAX];
    long long t0, t1;

    it_start("it_boundary");
    redisContext *rc = it_redis();
    it_redis_group(redis, sizeof(redis), "bd:", 1000, 2);
    it_limits_group(limits, sizeof(limits), "messages_per_minute=20");
    struct rm_config *c = it_config("%s%s", redis, limits);
    cfg = c;
    store = store_redis_new(c);

    wait_for_late_second(rc);
    long long epoch = it_redis_ms(rc) / W;
    int admitted = 0;
    for (int i = 0; i < N + 3; i++)
        admitted += charge("burst", NULL, NULL, rc).admitted;
    struct quota_result early = charge("late", NULL, NULL, rc);
    REQUIRE(it_redis_ms(rc) / W == epoch, "the minute ended while using up the quota");
    CHECK(admitted == N, "before the boundary: %d admitted, limit %d", admitted, N);
    CHECK(early.admitted, "a second customer was refused");

    /* just after the boundary: the previous minute still counts */
    it_sleep_ms(W - it_redis_ms(rc) % W + 300);
    struct quota_result res = charge("burst", &t0, &t1, rc);
    REQUIRE(t0 / W == epoch + 1 && t1 % W < 5000, "not just after the boundary (%.1f s)",
            (t1 % W) / 1000.0);
    CHECK(!res.admitted, "double burst: admitted right after the boundary");
    /* 20 * (1 - g) + 1 <= 20 once g >= 1/20: 3 s into the minute */
    long long lo = W / N - t1 % W - 2, hi = W / N - t0 % W + 2;
    CHECK(res.retry_ms >= lo && res.retry_ms <= hi, "retry_ms %lld, expected %lld..%lld",
          res.retry_ms, lo, hi);
    CHECK_HGET(rc, it_ckey("bd:", 'm', "burst"), "e", epoch);
    CHECK_HGET(rc, it_ckey("bd:", 'm', "burst"), "m", N); /* the refusal wrote nothing */

    /* at the promised time exactly one more fits, and the window rolls */
    it_sleep_ms(res.retry_ms + 150);
    res = charge("burst", &t0, &t1, rc);
    CHECK(res.admitted, "refused after the retry time (%.3f s into the minute)",
          (t0 % W) / 1000.0);
    res = charge("burst", &t0, &t1, rc);
    CHECK(!res.admitted || t0 % W >= 2 * W / N,
          "a second message fit at %.3f s into the minute", (t0 % W) / 1000.0);
    CHECK_HGET(rc, it_ckey("bd:", 'm', "burst"), "e", epoch + 1);
    CHECK_HGET(rc, it_ckey("bd:", 'm', "burst"), "m", 1);
    CHECK_HGET(rc, it_ckey("bd:", 'm', "burst"), "pm", N);
    CHECK_HGET(rc, it_ckey("bd:", 'm', "burst"), "pr", N);

    /* a refund of a charge from before the boundary goes to pm */
    charge("late", NULL, NULL, rc);
    struct quota_req q;
    it_quota(&q, cfg, "late", "a@burst.example", 1);
    CHECK(store_refund(store, &q, early.charged_ms, err) == 0, "refund: %s", err);
    CHECK_HGET(rc, it_ckey("bd:", 'm', "late"), "pm", 0);
    CHECK_HGET(rc, it_ckey("bd:", 'm', "late"), "m", 1);

    store_unref(store);
    cfg_free(c);
    redisFree(rc);
    return it_done();
}
