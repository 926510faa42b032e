/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_localquota - the in-memory quota of on_store_error = "local"
 * (localquota.h), driven with an explicit clock: the share of each limit,
 * exact admission, recipients, all-or-nothing charging, the sliding window at
 * a window edge, refunds, expiry and the hard cap on entries.
 */
#include <stdio.h>
#include <string.h>

#include "fakestore.h"
#include "localquota.h"
#include "testutil.h"

enum { MINUTE = 60 * 1000, HOUR = 3600 * 1000 };

/* Window-aligned instants far from 0, like wall-clock milliseconds. */
#define EDGE(w, k) ((1700000000000LL / (w) + (k)) * (w))

static struct localquota *lq;
static struct quota_req q;
static struct quota_result res;

static void setup(void)
{
    lq = localquota_new(1000);
    memset(&q, 0, sizeof(q));
}

static void teardown(void)
{
    localquota_free(lq);
}

/* Append one counter to q. */
static void counter(const char *key, long long window_ms, long long lim_msg,
                    long long lim_rcpt)
{
    struct quota_counter *c = &q.c[q.n++];

    snprintf(c->key, sizeof(c->key), "%s", key);
    c->keylen = strlen(c->key);
    c->window_ms = window_ms;
    c->lim_msg = lim_msg;
    c->lim_rcpt = lim_rcpt;
}

static void one(const char *key, long long window_ms, long long lim_msg)
{
    q.n = 0;
    q.nrcpt = 1;
    counter(key, window_ms, lim_msg, LIM_UNLIMITED);
}

/* 1 admitted, 0 refused; the call itself must decide. */
static int charge(double share, long long now)
{
    ck_assert_int_eq(localquota_charge(lq, &q, share, now, &res), 0);
    if (res.admitted)
        ck_assert_int_eq(res.charged_ms, now);
    return res.admitted;
}

/* How many messages in a row are admitted at now (stops at 10000). */
static int admitted_run(double share, long long now)
{
    int n = 0;

    while (n < 10000 && charge(share, now))
        n++;
    return n;
}

START_TEST(share_limit)
{
    ck_assert_int_eq(localquota_share_limit(1000, 0.25), 250);
    ck_assert_int_eq(localquota_share_limit(10, 0.25), 2); /* floor of 2.5 */
    ck_assert_int_eq(localquota_share_limit(4, 0.25), 1);
    ck_assert_int_eq(localquota_share_limit(3, 0.25), 1); /* at least 1 */
    ck_assert_int_eq(localquota_share_limit(1, 0.01), 1);
    ck_assert_int_eq(localquota_share_limit(0, 0.25), 0); /* nothing stays nothing */
    ck_assert_int_eq(localquota_share_limit(0, 1.0), 0);
    ck_assert_int_eq(localquota_share_limit(LIM_UNLIMITED, 0.25), LIM_UNLIMITED);
    ck_assert_int_eq(localquota_share_limit(7, 1.0), 7);
    ck_assert_int_eq(localquota_share_limit(100, 0.333), 33);
    ck_assert_int_eq(localquota_share_limit(1000000000000LL, 0.5), 500000000000LL);
}
END_TEST

START_TEST(exact_admission_at_share)
{
    long long t = EDGE(HOUR, 0) + 1000;

    one(fake_ckey('h', "acme"), HOUR, 40);
    ck_assert_int_eq(admitted_run(0.25, t), 10);
    ck_assert_int_eq(res.admitted, 0);
    ck_assert_int_eq(res.counter, 0);
    ck_assert_int_eq(res.metric, 'm');
    /* relay.lua's retry time, as Redis would give it: the rest of this hour,
     * then a tenth of the next, when the first of the 10 has faded out. */
    ck_assert_int_eq(res.retry_ms, HOUR - 1000 + HOUR / 10);
    ck_assert_int_eq(res.local_limit, 10);
    /* another subject has its own count */
    one(fake_ckey('h', "beta"), HOUR, 40);
    ck_assert_int_eq(admitted_run(0.25, t), 10);
    /* whole limit with share 1; a tiny limit keeps one message */
    one(fake_ckey('h', "gamma"), HOUR, 3);
    ck_assert_int_eq(admitted_run(1.0, t), 3);
    one(fake_ckey('h', "delta"), HOUR, 3);
    ck_assert_int_eq(admitted_run(0.25, t), 1);
}
END_TEST

START_TEST(zero_and_unlimited)
{
    long long t = EDGE(MINUTE, 0);

    one(fake_ckey('m', "zero"), MINUTE, 0);
    ck_assert_int_eq(admitted_run(1.0, t), 0);
    one(fake_ckey('m', "free"), MINUTE, LIM_UNLIMITED);
    ck_assert_int_eq(admitted_run(0.25, t), 10000);
}
END_TEST

START_TEST(recipients_counted)
{
    long long t = EDGE(HOUR, 0) + 5;

    q.n = 0;
    counter(fake_ckey('h', "acme"), HOUR, LIM_UNLIMITED, 80); /* 20 at share 0.25 */
    q.nrcpt = 7;
    ck_assert_int_eq(admitted_run(0.25, t), 2); /* 14; 21 would not fit */
    ck_assert_int_eq(res.metric, 'r');
    q.nrcpt = 6; /* exactly 20 fits */
    ck_assert_int_eq(charge(0.25, t), 1);
    q.nrcpt = 1;
    ck_assert_int_eq(charge(0.25, t), 0);
    /* one message larger than the limit never fits */
    q.n = 0;
    counter(fake_ckey('h', "beta"), HOUR, LIM_UNLIMITED, 80);
    q.nrcpt = 21;
    ck_assert_int_eq(charge(0.25, t), 0);
}
END_TEST

START_TEST(all_or_nothing)
{
    long long t = EDGE(HOUR, 0) + 5;

    q.n = 0;
    q.nrcpt = 1;
    counter(fake_ckey('h', "acme"), HOUR, 3, LIM_UNLIMITED);
    counter(fake_skey('h', "acme", "bob@acme.example"), HOUR, 2, LIM_UNLIMITED);
    ck_assert_int_eq(admitted_run(1.0, t), 2);
    ck_assert_int_eq(res.counter, 1); /* the sender counter refused it */
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(charge(1.0, t), 0);
    /* the refusals charged nothing on the customer counter: one still fits */
    one(fake_ckey('h', "acme"), HOUR, 3);
    ck_assert_int_eq(admitted_run(1.0, t), 1);
}
END_TEST

/* No double burst: what was sent late in one window still counts right
 * after the edge and decays over the next window. */
START_TEST(sliding_window_edge)
{
    one(fake_ckey('m', "acme"), MINUTE, 10);
    ck_assert_int_eq(admitted_run(1.0, EDGE(MINUTE, 1) - 1000), 10);
    ck_assert_int_eq(admitted_run(1.0, EDGE(MINUTE, 1)), 0);
    ck_assert_int_eq(admitted_run(1.0, EDGE(MINUTE, 1) + 1), 0);
    /* half way: 10 * (1 - 0.5) = 5 still count */
    ck_assert_int_eq(admitted_run(1.0, EDGE(MINUTE, 1) + MINUTE / 2), 5);
    /* two windows on, the minute before has only those 5, at weight ~1 */
    ck_assert_int_eq(admitted_run(1.0, EDGE(MINUTE, 2) + 1), 5);
    /* after a quiet window, nothing of the past counts */
    ck_assert_int_eq(admitted_run(1.0, EDGE(MINUTE, 4) + 1), 10);
}
END_TEST

/* Threads stamp a message, then wait for the table: one stamped just before
 * a window edge may run after one stamped just after it. It is counted in
 * the later window; neither window's counts are lost. */
START_TEST(late_stamp_at_edge)
{
    enum { DAY = 24 * HOUR };

    one(fake_ckey('d', "acme"), DAY, 100);
    for (int i = 0; i < 60; i++)
        ck_assert_int_eq(charge(1.0, EDGE(DAY, 1) - HOUR), 1);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(charge(1.0, EDGE(DAY, 1) + 1), 1);
    ck_assert_int_eq(charge(1.0, EDGE(DAY, 1) - 1), 1); /* the late one */
    /* 60 of the day before at full weight, and the 6 of this day */
    ck_assert_int_eq(admitted_run(1.0, EDGE(DAY, 1) + 2), 34);
}
END_TEST

START_TEST(refund_restores)
{
    long long t = EDGE(HOUR, 0) + 10;

    q.n = 0;
    counter(fake_ckey('h', "acme"), HOUR, 3, 9);
    q.nrcpt = 3;
    ck_assert_int_eq(admitted_run(1.0, t), 3);
    localquota_refund(lq, &q, t, t + 5);
    ck_assert_int_eq(admitted_run(1.0, t + 6), 1); /* both metrics given back */
    /* a refund never goes below zero: extra refunds add no room */
    q.n = 0;
    counter(fake_ckey('h', "beta"), HOUR, 2, LIM_UNLIMITED);
    q.nrcpt = 1;
    ck_assert_int_eq(charge(1.0, t), 1);
    for (int i = 0; i < 5; i++)
        localquota_refund(lq, &q, t, t);
    ck_assert_int_eq(admitted_run(1.0, t), 2);
}
END_TEST

START_TEST(refund_across_edge)
{
    long long late = EDGE(MINUTE, 1) - 100, next = EDGE(MINUTE, 1);

    one(fake_ckey('m', "acme"), MINUTE, 4);
    ck_assert_int_eq(admitted_run(1.0, late), 4);
    ck_assert_int_eq(admitted_run(1.0, next), 0);
    /* a charge of the window before is given back to that window */
    localquota_refund(lq, &q, late, next + 1);
    ck_assert_int_eq(admitted_run(1.0, next + 2), 1);
    /* a charge two windows old is gone already: nothing to give back */
    localquota_refund(lq, &q, EDGE(MINUTE, -1), next + 3);
    ck_assert_int_eq(admitted_run(1.0, next + 4), 0);
}
END_TEST

START_TEST(refund_of_unknown_subject)
{
    one(fake_ckey('h', "nobody"), HOUR, 5);
    localquota_refund(lq, &q, EDGE(HOUR, 0), EDGE(HOUR, 0));
    ck_assert_uint_eq(localquota_count(lq), 0); /* no entry made for it */
    ck_assert_int_eq(admitted_run(1.0, EDGE(HOUR, 0)), 5);
}
END_TEST

/* The counter of window w of customer fmt % i, as keys.h names it. */
static const char *nth_key(char w, const char *fmt, int i)
{
    char name[48];

    snprintf(name, sizeof(name), fmt, i);
    return fake_ckey(w, name);
}

/* The minute counters of n customers fmt % 0, fmt % 1, ... */
static void charge_keys(int n, const char *fmt, long long now, int want)
{
    for (int i = 0; i < n; i++) {
        const char *key = nth_key('m', fmt, i);
        one(key, MINUTE, 10);
        int rc = localquota_charge(lq, &q, 1.0, now, &res);
        ck_assert_msg(rc == want, "%s at %lld: %d, want %d", key, now, rc, want);
    }
}

static void refund_keys(int n, long long charged, long long now)
{
    for (int i = 0; i < n; i++) {
        one(nth_key('m', "c%d", i), MINUTE, 10);
        localquota_refund(lq, &q, charged, now);
    }
}

/* An entry lives until the end of the window after the one it was last
 * charged in, like its Redis key; looking it up after that drops it. */
START_TEST(entries_expire)
{
    long long t = EDGE(MINUTE, 0) + 30000;

    charge_keys(20, "c%d", t, 0);
    ck_assert_uint_eq(localquota_count(lq), 20);
    refund_keys(20, t, EDGE(MINUTE, 2) - 1);
    ck_assert_uint_eq(localquota_count(lq), 20);
    refund_keys(20, t, EDGE(MINUTE, 2));
    ck_assert_uint_eq(localquota_count(lq), 0);
    /* each charge renews the lifetime */
    charge_keys(20, "c%d", EDGE(MINUTE, 3) - 1, 0);
    charge_keys(20, "c%d", EDGE(MINUTE, 4) - 1, 0);
    refund_keys(20, t, EDGE(MINUTE, 4));
    ck_assert_uint_eq(localquota_count(lq), 20);
    refund_keys(20, t, EDGE(MINUTE, 5));
    ck_assert_uint_eq(localquota_count(lq), 0);
}
END_TEST

/* The cap counts live entries: a table whose entries all expired takes new
 * subjects, whichever hash bucket they fall in. */
START_TEST(expired_entries_do_not_fill_table)
{
    char fmt[64];

    for (int trial = 0; trial < 30; trial++) {
        localquota_free(lq);
        lq = localquota_new(100);
        snprintf(fmt, sizeof(fmt), "old%d-%%d", trial);
        charge_keys(100, fmt, EDGE(MINUTE, 0), 0);
        snprintf(fmt, sizeof(fmt), "new%d-%%d", trial);
        charge_keys(1, fmt, EDGE(MINUTE, 5), 0);
    }
}
END_TEST

START_TEST(hard_cap_never_forgets)
{
    long long t = EDGE(HOUR, 0) + 1;

    localquota_free(lq);
    lq = localquota_new(4);
    for (int i = 0; i < 4; i++) {
        one(nth_key('h', "s%d", i), HOUR, 2);
        ck_assert_int_eq(charge(1.0, t), 1);
    }
    ck_assert_uint_eq(localquota_count(lq), 4);
    one(fake_ckey('h', "newcomer"), HOUR, 2);
    ck_assert_int_eq(localquota_charge(lq, &q, 1.0, t, &res), -1);
    ck_assert_int_eq(res.admitted, 0);
    ck_assert_uint_eq(localquota_count(lq), 4);
    /* the known subjects keep their counts: one more each, then refused */
    for (int i = 0; i < 4; i++) {
        one(nth_key('h', "s%d", i), HOUR, 2);
        ck_assert_int_eq(admitted_run(1.0, t + 1), 1);
    }
    /* a message with a known and a new counter is not half charged */
    q.n = 0;
    counter(fake_ckey('h', "s0"), HOUR, 100, LIM_UNLIMITED);
    counter(fake_ckey('h', "newcomer"), HOUR, 100, LIM_UNLIMITED);
    ck_assert_int_eq(localquota_charge(lq, &q, 1.0, t + 2, &res), -1);
    one(fake_ckey('h', "s0"), HOUR, 3);
    ck_assert_int_eq(admitted_run(1.0, t + 3), 1);
}
END_TEST

static Suite *localquota_suite(void)
{
    Suite *s = suite_create("localquota");
    TCase *adm = tcase_create("admission");
    TCase *mem = tcase_create("memory");

    tcase_add_checked_fixture(adm, setup, teardown);
    tcase_add_checked_fixture(mem, setup, teardown);
    tcase_add_test(adm, share_limit);
    tcase_add_test(adm, exact_admission_at_share);
    tcase_add_test(adm, zero_and_unlimited);
    tcase_add_test(adm, recipients_counted);
    tcase_add_test(adm, all_or_nothing);
    tcase_add_test(adm, sliding_window_edge);
    tcase_add_test(adm, late_stamp_at_edge);
    tcase_add_test(adm, refund_restores);
    tcase_add_test(adm, refund_across_edge);
    tcase_add_test(adm, refund_of_unknown_subject);
    tcase_add_test(mem, entries_expire);
    tcase_add_test(mem, expired_entries_do_not_fill_table);
    tcase_add_test(mem, hard_cap_never_forgets);
    suite_add_tcase(s, adm);
    suite_add_tcase(s, mem);
    return s;
}

int main(void)
{
    return tu_run(localquota_suite());
}
