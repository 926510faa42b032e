/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_breaker - the circuit breaker (breaker.h) as a state machine driven
 * with an explicit clock: when it opens, how long it refuses, the one probe,
 * back-off growth and its jitter, closing again, and an abandoned probe.
 */
#include <stdio.h>

#include "breaker.h"
#include "testutil.h"

/* The numbers of doc/OPERATIONS, "when Redis fails": 3 failures in a row; back-off
 * 100-200 ms doubling up to 2-4 s. */
enum { THRESHOLD = 3, BASE_MS = 200, MAX_MS = 4000 };

static struct breaker b;

static void init(unsigned seed)
{
    breaker_init(&b, THRESHOLD, BASE_MS, MAX_MS, seed);
}

static int admit(long long now, long long *wait)
{
    long long w = -1;
    int rc = breaker_admit(&b, now, &w);

    ck_assert_int_ge(w, 0);
    if (wait != NULL)
        *wait = w;
    return rc;
}

/* Open the circuit at now; returns the wait the first refusal announces. */
static long long open_at(long long now)
{
    long long wait;

    for (int i = 1; i < THRESHOLD; i++) {
        ck_assert_int_eq(admit(now, NULL), 1);
        ck_assert_int_eq(breaker_failure(&b, now), 0);
        ck_assert_int_eq(breaker_is_open(&b), 0);
    }
    ck_assert_int_eq(admit(now, NULL), 1);
    ck_assert_int_eq(breaker_failure(&b, now), 1);
    ck_assert_int_eq(breaker_is_open(&b), 1);
    ck_assert_int_eq(admit(now, &wait), 0);
    return wait;
}

START_TEST(closed_until_threshold)
{
    long long wait = -1;

    init(1);
    ck_assert_int_eq(breaker_is_open(&b), 0);
    for (int i = 0; i < 10; i++) {
        ck_assert_int_eq(admit(1000 + i, &wait), 1);
        ck_assert_int_eq(wait, 0);
    }
    open_at(5000);
}
END_TEST

START_TEST(success_resets_count)
{
    init(1);
    for (int round = 0; round < 5; round++) {
        for (int i = 1; i < THRESHOLD; i++)
            ck_assert_int_eq(breaker_failure(&b, 1000), 0);
        ck_assert_int_eq(breaker_success(&b), 0); /* it was not open */
        ck_assert_int_eq(breaker_is_open(&b), 0);
    }
    open_at(2000);
}
END_TEST

START_TEST(open_refuses_until_retry)
{
    long long wait, w;

    init(7);
    wait = open_at(10000);
    ck_assert_int_ge(wait, BASE_MS / 2);
    ck_assert_int_le(wait, BASE_MS);
    long long retry_at = 10000 + wait;
    for (long long t = 10000; t < retry_at; t += 7) {
        ck_assert_int_eq(admit(t, &w), 0);
        ck_assert_int_eq(w, retry_at - t); /* the wait counts down to the probe */
    }
    ck_assert_int_eq(admit(retry_at - 1, &w), 0);
    ck_assert_int_eq(w, 1);
    ck_assert_int_eq(admit(retry_at, NULL), 1); /* the probe */
    ck_assert_int_eq(breaker_is_open(&b), 1);
}
END_TEST

START_TEST(exactly_one_probe)
{
    init(3);
    long long retry_at = open_at(0);

    ck_assert_int_eq(admit(retry_at, NULL), 1);
    for (long long t = retry_at; t < retry_at + 100000; t += 997)
        ck_assert_int_eq(admit(t, NULL), 0);
    /* the probe's verdict settles it */
    ck_assert_int_eq(breaker_success(&b), 1);
    ck_assert_int_eq(breaker_is_open(&b), 0);
    ck_assert_int_eq(admit(retry_at + 100000, NULL), 1);
}
END_TEST

/* Fail the probe at now; the next wait must lie in [backoff/2, backoff]. */
static long long fail_probe(long long now, long long backoff)
{
    long long wait;

    ck_assert_int_eq(admit(now, NULL), 1);
    ck_assert_int_eq(breaker_failure(&b, now), 0); /* already open: no new transition */
    ck_assert_int_eq(breaker_is_open(&b), 1);
    ck_assert_int_eq(admit(now, &wait), 0);
    ck_assert_msg(wait >= backoff / 2 && wait <= backoff,
                  "wait %lld outside [%lld, %lld]", wait, backoff / 2, backoff);
    return now + wait;
}

START_TEST(failed_probe_doubles_backoff)
{
    static const long long want[] = {400, 800, 1600, 3200, 4000, 4000, 4000};

    init(11);
    long long t = open_at(0);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        t = fail_probe(t, want[i]);
}
END_TEST

START_TEST(jitter_spreads_front_ends)
{
    long long lo = MAX_MS, hi = 0;

    /* many front-ends that saw the same outage at the same moment */
    for (unsigned seed = 1; seed <= 200; seed++) {
        init(seed);
        long long wait = open_at(50000);
        ck_assert_int_ge(wait, BASE_MS / 2);
        ck_assert_int_le(wait, BASE_MS);
        lo = wait < lo ? wait : lo;
        hi = wait > hi ? wait : hi;
    }
    /* not in lock step: the waits cover most of the allowed range */
    ck_assert_msg(hi - lo >= BASE_MS / 4, "waits only in [%lld, %lld]", lo, hi);
}
END_TEST

START_TEST(success_closes_and_resets_backoff)
{
    init(5);
    long long t = open_at(0);
    for (int i = 0; i < 4; i++)
        t = fail_probe(t, 400LL << i);
    ck_assert_int_eq(admit(t, NULL), 1);
    ck_assert_int_eq(breaker_success(&b), 1);
    ck_assert_int_eq(breaker_success(&b), 0); /* closed once */
    ck_assert_int_eq(breaker_is_open(&b), 0);
    /* a fresh outage starts from the base back-off and needs the threshold */
    long long wait = open_at(t + 1);
    ck_assert_int_ge(wait, BASE_MS / 2);
    ck_assert_int_le(wait, BASE_MS);
}
END_TEST

START_TEST(late_failures_do_not_reschedule)
{
    long long w;

    init(9);
    long long retry_at = 1000 + open_at(1000);
    /* calls admitted before the circuit opened fail later: not a probe */
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(breaker_failure(&b, 1000 + i), 0);
    ck_assert_int_eq(admit(1100, &w), 0);
    ck_assert_int_eq(w, retry_at - 1100);
    ck_assert_int_eq(admit(retry_at, NULL), 1);
}
END_TEST

START_TEST(abandon_releases_probe)
{
    init(13);
    long long retry_at = open_at(0);

    ck_assert_int_eq(admit(retry_at, NULL), 1);
    breaker_abandon(&b); /* e.g. no free connection: the store never saw it */
    ck_assert_int_eq(breaker_is_open(&b), 1);
    ck_assert_int_eq(admit(retry_at + 1, NULL), 1); /* another probe may go */
    ck_assert_int_eq(admit(retry_at + 2, NULL), 0); /* still only one at a time */
    ck_assert_int_eq(breaker_success(&b), 1);
    ck_assert_int_eq(breaker_is_open(&b), 0);
}
END_TEST

START_TEST(lost_probe_without_abandon_stays_open)
{
    init(13);
    long long retry_at = open_at(0);

    /* the reason breaker_abandon exists: a probe nobody reports on blocks all
     * further probes, so only abandoning it lets the breaker recover */
    ck_assert_int_eq(admit(retry_at, NULL), 1);
    ck_assert_int_eq(admit(retry_at + 3600 * 1000LL, NULL), 0);
    breaker_abandon(&b);
    ck_assert_int_eq(admit(retry_at + 3600 * 1000LL, NULL), 1);
}
END_TEST

START_TEST(same_seed_same_schedule)
{
    long long a[4], c[4];

    init(42);
    long long t = open_at(0);
    for (int i = 0; i < 4; i++)
        t = a[i] = fail_probe(t, 400LL << i);
    init(42);
    t = open_at(0);
    for (int i = 0; i < 4; i++)
        t = c[i] = fail_probe(t, 400LL << i);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(a[i], c[i]);
}
END_TEST

START_TEST(threshold_one)
{
    breaker_init(&b, 1, BASE_MS, MAX_MS, 1);
    ck_assert_int_eq(admit(0, NULL), 1);
    ck_assert_int_eq(breaker_failure(&b, 0), 1);
    ck_assert_int_eq(breaker_is_open(&b), 1);
    ck_assert_int_eq(admit(0, NULL), 0);
}
END_TEST

static Suite *breaker_suite(void)
{
    Suite *s = suite_create("breaker");
    TCase *tc = tcase_create("states");
    TCase *bo = tcase_create("backoff");

    tcase_add_test(tc, closed_until_threshold);
    tcase_add_test(tc, success_resets_count);
    tcase_add_test(tc, open_refuses_until_retry);
    tcase_add_test(tc, exactly_one_probe);
    tcase_add_test(tc, late_failures_do_not_reschedule);
    tcase_add_test(tc, abandon_releases_probe);
    tcase_add_test(tc, lost_probe_without_abandon_stays_open);
    tcase_add_test(tc, threshold_one);
    tcase_add_test(bo, failed_probe_doubles_backoff);
    tcase_add_test(bo, jitter_spreads_front_ends);
    tcase_add_test(bo, success_closes_and_resets_backoff);
    tcase_add_test(bo, same_seed_same_schedule);
    suite_add_tcase(s, tc);
    suite_add_tcase(s, bo);
    return s;
}

int main(void)
{
    return tu_run(breaker_suite());
}
