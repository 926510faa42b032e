/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_limits - limit fields and values (limits.h) and the quota request a
 * message is charged with (quota.h): counters, key strings, refusal text.
 */
#include <stdio.h>
#include <string.h>

#include "fakestore.h"
#include "keys.h"
#include "limits.h"
#include "quota.h"
#include "testkeys.h"
#include "testutil.h"

static const char *const field_names[LIM_NFIELDS] = {
    "messages_per_minute",
    "messages_per_hour",
    "messages_per_day",
    "recipients_per_minute",
    "recipients_per_hour",
    "recipients_per_day",
    "sender_messages_per_minute",
    "sender_messages_per_hour",
    "sender_messages_per_day",
    "sender_recipients_per_minute",
    "sender_recipients_per_hour",
    "sender_recipients_per_day",
    "max_recipients",
    "action",
    "suspended",
    "own_domains_only",
};

START_TEST(field_names_match_spec)
{
    for (int i = 0; i < LIM_NFIELDS; i++) {
        ck_assert_int_eq(lim_field_find(field_names[i]), i);
        ck_assert_str_eq(lim_field_name(i), field_names[i]);
    }
    ck_assert_int_eq(lim_field_find("messages_per_week"), -1);
    ck_assert_int_eq(lim_field_find("Messages_per_hour"), -1);
    ck_assert_int_eq(lim_field_find(""), -1);
    ck_assert_int_eq(lim_field_kind(LIM_MSG_HOUR), LIM_KIND_COUNT);
    ck_assert_int_eq(lim_field_kind(LIM_SUSPENDED), LIM_KIND_BOOL);
    ck_assert_int_eq(lim_field_kind(LIM_ACTION), LIM_KIND_ACTION);
}
END_TEST

static void parses(int id, const char *s, long long want)
{
    long long v = 12345;

    ck_assert_msg(lim_parse_value(id, s, &v) == 0, "%s \"%s\" refused",
                  lim_field_name(id), s);
    ck_assert_msg(v == want, "%s \"%s\" -> %lld, want %lld", lim_field_name(id), s, v,
                  want);
}

static void refused(int id, const char *s)
{
    long long v = 12345;

    ck_assert_msg(lim_parse_value(id, s, &v) == -1, "%s \"%s\" accepted as %lld",
                  lim_field_name(id), s, v);
}

START_TEST(count_values_strict)
{
    parses(LIM_MSG_HOUR, "0", 0);
    parses(LIM_MSG_HOUR, "10", 10);
    parses(LIM_MSG_HOUR, "-1", LIM_UNLIMITED);
    parses(LIM_MSG_HOUR, "1000000000000", LIM_COUNT_MAX);
    parses(LIM_MAX_RCPT, "007", 7);
    static const char *const bad[] = {"10k",
                                      " 5",
                                      "5 ",
                                      "5\n",
                                      "",
                                      "1e9",
                                      "1.5",
                                      "+5",
                                      "0x10",
                                      "-2",
                                      "-",
                                      "--1",
                                      "- 1",
                                      "1000000000001",
                                      "99999999999999999999",
                                      "-99999999999999999999",
                                      "abc",
                                      "unlimited"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        refused(LIM_MSG_HOUR, bad[i]);
}
END_TEST

START_TEST(action_values)
{
    parses(LIM_ACTION, "tempfail", LIM_ACT_TEMPFAIL);
    parses(LIM_ACTION, "reject", LIM_ACT_REJECT);
    parses(LIM_ACTION, "hold", LIM_ACT_HOLD);
    parses(LIM_ACTION, "monitor", LIM_ACT_MONITOR);
    refused(LIM_ACTION, "Reject");
    refused(LIM_ACTION, "reject ");
    refused(LIM_ACTION, "");
    refused(LIM_ACTION, "1");
    refused(LIM_ACTION, "drop");
    ck_assert_str_eq(lim_action_name(LIM_ACT_TEMPFAIL), "tempfail");
    ck_assert_str_eq(lim_action_name(LIM_ACT_REJECT), "reject");
    ck_assert_str_eq(lim_action_name(LIM_ACT_HOLD), "hold");
    ck_assert_str_eq(lim_action_name(LIM_ACT_MONITOR), "monitor");
}
END_TEST

START_TEST(bool_values)
{
    parses(LIM_SUSPENDED, "0", 0);
    parses(LIM_SUSPENDED, "1", 1);
    parses(LIM_OWN_DOMAINS_ONLY, "1", 1);
    refused(LIM_SUSPENDED, "2");
    refused(LIM_SUSPENDED, "-1");
    refused(LIM_SUSPENDED, "true");
    refused(LIM_SUSPENDED, "");
    refused(LIM_OWN_DOMAINS_ONLY, "yes");
}
END_TEST

START_TEST(check_value_ranges)
{
    ck_assert_int_eq(lim_check_value(LIM_RCPT_DAY, -1), 0);
    ck_assert_int_eq(lim_check_value(LIM_RCPT_DAY, -2), -1);
    ck_assert_int_eq(lim_check_value(LIM_RCPT_DAY, LIM_COUNT_MAX), 0);
    ck_assert_int_eq(lim_check_value(LIM_RCPT_DAY, LIM_COUNT_MAX + 1), -1);
    ck_assert_int_eq(lim_check_value(LIM_SUSPENDED, 2), -1);
    ck_assert_int_eq(lim_check_value(LIM_ACTION, LIM_ACT_MONITOR), 0);
    ck_assert_int_eq(lim_check_value(LIM_ACTION, LIM_ACT_MONITOR + 1), -1);
    ck_assert_int_eq(lim_check_value(LIM_ACTION, -1), -1);
}
END_TEST

START_TEST(builtin_defaults)
{
    struct lim_set l;

    memset(&l, 0, sizeof(l));
    lim_builtin(&l);
    for (int i = 0; i < LIM_NFIELDS; i++)
        ck_assert_msg(l.set[i], "%s not set", lim_field_name(i));
    ck_assert_int_eq(l.v[LIM_MSG_MINUTE], 60);
    ck_assert_int_eq(l.v[LIM_MSG_HOUR], 1000);
    ck_assert_int_eq(l.v[LIM_MSG_DAY], 10000);
    ck_assert_int_eq(l.v[LIM_RCPT_MINUTE], 300);
    ck_assert_int_eq(l.v[LIM_RCPT_HOUR], 5000);
    ck_assert_int_eq(l.v[LIM_RCPT_DAY], 50000);
    ck_assert_int_eq(l.v[LIM_SMSG_HOUR], 500);
    ck_assert_int_eq(l.v[LIM_MAX_RCPT], 100);
    ck_assert_int_eq(l.v[LIM_ACTION], LIM_ACT_TEMPFAIL);
    ck_assert_int_eq(l.v[LIM_SUSPENDED], 0);
    ck_assert_int_eq(l.v[LIM_OWN_DOMAINS_ONLY], 0);
}
END_TEST

START_TEST(overlay_only_set_fields)
{
    struct lim_set dst, src;

    lim_builtin(&dst);
    memset(&src, 0, sizeof(src));
    src.v[LIM_MSG_HOUR] = LIM_UNLIMITED;
    src.set[LIM_MSG_HOUR] = 1;
    src.v[LIM_ACTION] = LIM_ACT_HOLD;
    src.set[LIM_ACTION] = 1;
    src.v[LIM_MSG_DAY] = 999; /* not set: must be ignored */
    lim_overlay(&dst, &src);
    ck_assert_int_eq(dst.v[LIM_MSG_HOUR], LIM_UNLIMITED);
    ck_assert_int_eq(dst.v[LIM_ACTION], LIM_ACT_HOLD);
    ck_assert_int_eq(dst.v[LIM_MSG_DAY], 10000);

    struct lim_set partial;
    memset(&partial, 0, sizeof(partial));
    lim_overlay(&partial, &src);
    ck_assert_int_eq(partial.set[LIM_MSG_HOUR], 1);
    ck_assert_int_eq(partial.set[LIM_MSG_DAY], 0);
    ck_assert_int_eq(partial.v[LIM_MSG_HOUR], LIM_UNLIMITED);
}
END_TEST

/* ---- quota_build ---- */

static struct lim_set all_unlimited(void)
{
    struct lim_set l;

    lim_builtin(&l);
    for (int i = 0; i < LIM_NQUOTA; i++)
        l.v[i] = LIM_UNLIMITED;
    return l;
}

static const struct quota_counter *find_key(const struct quota_req *q, const char *key)
{
    for (int i = 0; i < q->n; i++)
        if (strcmp(q->c[i].key, key) == 0)
            return &q->c[i];
    return NULL;
}

START_TEST(build_builtin_counters)
{
    struct quota_req q;
    struct lim_set l;

    lim_builtin(&l);
    ck_assert_int_eq(quota_build(&q, "relay:", "acme", "bob@acme.example", &l, 3), 0);
    ck_assert_int_eq(q.nrcpt, 3);
    /* customer m/h/d; sender: only the hour has a finite built-in limit */
    ck_assert_int_eq(q.n, 4);
    const char *keys[4];
    char names[4][QUOTA_KEY_MAX];
    for (int i = 0; i < 4; i++)
        keys[i] = strcpy(names[i], i < 3 ? fake_ckey("mhd"[i], "acme")
                                         : fake_skey('h', "acme", "bob@acme.example"));
    static const long long win[] = {60000, 3600000, 86400000, 3600000};
    static const long long lmsg[] = {60, 1000, 10000, 500};
    static const long long lrcpt[] = {300, 5000, 50000, LIM_UNLIMITED};
    for (int i = 0; i < 4; i++) {
        const struct quota_counter *c = find_key(&q, keys[i]);
        ck_assert_msg(c != NULL, "no counter %s", keys[i]);
        ck_assert_uint_eq(c->keylen, strlen(keys[i]));
        ck_assert_int_eq(c->window_ms, win[i]);
        ck_assert_int_eq(c->lim_msg, lmsg[i]);
        ck_assert_int_eq(c->lim_rcpt, lrcpt[i]);
    }
    const struct quota_counter *s = find_key(&q, keys[3]);
    ck_assert_int_eq(s->field_msg, LIM_SMSG_HOUR);
    ck_assert_int_eq(s->field_rcpt, LIM_SRCPT_HOUR);
    ck_assert_int_eq(find_key(&q, keys[0])->field_msg, LIM_MSG_MINUTE);
    ck_assert_int_eq(find_key(&q, keys[2])->field_rcpt, LIM_RCPT_DAY);
}
END_TEST

START_TEST(build_only_finite_limits)
{
    struct quota_req q;
    struct lim_set l = all_unlimited();

    ck_assert_int_eq(quota_build(&q, "relay:", "acme", "bob@x", &l, 1), 0);
    ck_assert_int_eq(q.n, 0);

    l.v[LIM_RCPT_DAY] = 0; /* 0 is a limit: nothing allowed */
    l.v[LIM_SRCPT_MINUTE] = 9;
    ck_assert_int_eq(quota_build(&q, "p:", "acme", "bob@x", &l, 2), 0);
    ck_assert_int_eq(q.n, 2);
    const struct quota_counter *d =
        find_key(&q, testkeys_counter("p:", 'd', "acme", NULL));
    const struct quota_counter *m =
        find_key(&q, testkeys_counter("p:", 'm', "acme", "bob@x"));
    ck_assert_ptr_nonnull(d);
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(d->lim_msg, LIM_UNLIMITED);
    ck_assert_int_eq(d->lim_rcpt, 0);
    ck_assert_int_eq(m->lim_msg, LIM_UNLIMITED);
    ck_assert_int_eq(m->lim_rcpt, 9);
    ck_assert_int_eq(m->window_ms, 60000);

    l = all_unlimited();
    for (int i = 0; i < LIM_NQUOTA; i++)
        l.v[i] = 1;
    ck_assert_int_eq(quota_build(&q, "", "c", "", &l, 0), 0);
    ck_assert_int_eq(q.n, QUOTA_MAX_COUNTERS);
    ck_assert_ptr_nonnull(find_key(&q, testkeys_counter("", 'd', "c", "")));
}
END_TEST

/* The counter layout (keys.h), spelled here and in policy/keys.c only: the
 * customer in braces is the Redis Cluster hash tag of all its counters. */
START_TEST(counter_key_layout)
{
    char buf[QUOTA_KEY_MAX];

    ck_assert_int_gt(
        keys_counter(buf, sizeof(buf), "relay:", KEYS_CUSTOMER, 1, "acme", NULL), 0);
    ck_assert_str_eq(buf, "relay:qc:h:{acme}");
    ck_assert_int_gt(keys_counter(buf, sizeof(buf), "relay:", KEYS_SENDER, 0, "acme",
                                  "bob@acme.example"),
                     0);
    ck_assert_str_eq(buf, "relay:qs:m:{acme}:bob@acme.example");
    ck_assert_int_gt(
        keys_counter(buf, sizeof(buf), "", KEYS_SENDER, 2, "ip:192.0.2.1", ""), 0);
    ck_assert_str_eq(buf, "qs:d:{ip:192.0.2.1}:");
    ck_assert_int_eq(keys_counter(buf, 10, "relay:", KEYS_CUSTOMER, 1, "acme", NULL), -1);
}
END_TEST

START_TEST(sender_keys_cannot_collide)
{
    /* The customer is closed by a brace that no customer name may hold, so
     * ("a", "b:c@x") and ("a:b", "c@x") cannot share a key; nor can a sender
     * holding braces reach into another customer's tag. */
    static const char *const pairs[][2] = {
        {"a", "b:c@x"},   {"a:b", "c@x"},   {"a:b:c", "@x"},  {"a", "1:a:b:c@x"},
        {"1:a", "b:c@x"}, {"a", "}:b:c@x"}, {"a", "{b}:c@x"},
    };
    enum { NP = sizeof(pairs) / sizeof(pairs[0]) };
    char keys[NP][QUOTA_KEY_MAX];
    struct quota_req q;
    struct lim_set l = all_unlimited();

    l.v[LIM_SMSG_HOUR] = 5;
    for (int i = 0; i < NP; i++) {
        ck_assert_int_eq(quota_build(&q, "relay:", pairs[i][0], pairs[i][1], &l, 1), 0);
        ck_assert_int_eq(q.n, 1);
        snprintf(keys[i], sizeof(keys[i]), "%s", q.c[0].key);
    }
    for (int i = 0; i < NP; i++)
        for (int j = i + 1; j < NP; j++)
            ck_assert_msg(strcmp(keys[i], keys[j]) != 0, "collision: %s", keys[i]);
    ck_assert_str_eq(keys[1], testkeys_counter("relay:", 'h', "a:b", "c@x"));
}
END_TEST

START_TEST(build_key_too_long)
{
    char customer[QUOTA_KEY_MAX + 10];
    struct quota_req q;
    struct lim_set l;

    lim_builtin(&l);
    memset(customer, 'c', sizeof(customer) - 1);
    customer[sizeof(customer) - 1] = '\0';
    ck_assert_int_eq(quota_build(&q, "relay:", customer, "bob@x", &l, 1), -1);

    /* The customer key fits, the sender key does not. */
    char sender[QUOTA_KEY_MAX];
    memset(sender, 's', sizeof(sender) - 1);
    sender[sizeof(sender) - 1] = '\0';
    ck_assert_int_eq(quota_build(&q, "relay:", "acme", sender, &l, 1), -1);
}
END_TEST

/* ---- refusal text ---- */

static void refusal(const struct lim_set *l, const char *key, char metric,
                    long long retry, const char *want)
{
    struct quota_req q;
    struct quota_result res = {0};
    char buf[256];

    ck_assert_int_eq(quota_build(&q, "relay:", "acme", "bob@acme.example", l, 1), 0);
    res.counter = -1;
    for (int i = 0; i < q.n; i++)
        if (strcmp(q.c[i].key, key) == 0)
            res.counter = i;
    ck_assert_msg(res.counter >= 0, "no counter %s", key);
    res.metric = metric;
    res.retry_ms = retry;
    quota_refusal_text(&q, &res, "acme", buf, sizeof(buf));
    ck_assert_str_eq(buf, want);
}

START_TEST(refusal_text_exact)
{
    struct lim_set l;

    lim_builtin(&l);
    refusal(&l, fake_ckey('h', "acme"), 'm', 12 * 60000,
            "quota exceeded: messages_per_hour 1000 for acme, retry in 12m");
    refusal(&l, fake_ckey('d', "acme"), 'r', 5 * 3600000LL,
            "quota exceeded: recipients_per_day 50000 for acme, retry in 5h");
    refusal(&l, fake_ckey('m', "acme"), 'm', 45000,
            "quota exceeded: messages_per_minute 60 for acme, retry in 45s");
    refusal(&l, fake_skey('h', "acme", "bob@acme.example"), 'm', 30 * 60000,
            "quota exceeded: sender_messages_per_hour 500 for acme, retry in 30m");
    l.v[LIM_RCPT_HOUR] = 0;
    refusal(&l, fake_ckey('h', "acme"), 'r', 3600000,
            "quota exceeded: recipients_per_hour 0 for acme, retry in 60m");
}
END_TEST

static void duration(long long ms, const char *want)
{
    char buf[32];

    quota_format_duration(ms, buf, sizeof(buf));
    ck_assert_msg(strcmp(buf, want) == 0, "%lld ms -> \"%s\", want \"%s\"", ms, buf,
                  want);
}

START_TEST(duration_boundaries)
{
    duration(-5000, "1s");
    duration(0, "1s");
    duration(1, "1s");
    duration(1000, "1s");
    duration(1001, "2s");
    duration(45000, "45s");
    duration(119000, "119s");
    duration(119001, "2m");
    duration(120000, "2m");
    duration(120001, "3m");
    duration(12 * 60000, "12m");
    duration(7199000, "120m");
    duration(7200000, "2h");
    duration(7200001, "3h");
    duration(86400000, "24h");
    duration(9223372036854775807LL, "8784h"); /* garbage from a store: bounded */

    char small[3];
    memset(small, 'x', sizeof(small));
    quota_format_duration(86400000, small, sizeof(small));
    ck_assert_str_eq(small, "24");
}
END_TEST

static Suite *limits_suite(void)
{
    Suite *s = suite_create("limits");
    TCase *lim = tcase_create("fields");
    TCase *q = tcase_create("quota");

    tcase_add_test(lim, field_names_match_spec);
    tcase_add_test(lim, count_values_strict);
    tcase_add_test(lim, action_values);
    tcase_add_test(lim, bool_values);
    tcase_add_test(lim, check_value_ranges);
    tcase_add_test(lim, builtin_defaults);
    tcase_add_test(lim, overlay_only_set_fields);
    tcase_add_test(q, build_builtin_counters);
    tcase_add_test(q, build_only_finite_limits);
    tcase_add_test(q, counter_key_layout);
    tcase_add_test(q, sender_keys_cannot_collide);
    tcase_add_test(q, build_key_too_long);
    tcase_add_test(q, refusal_text_exact);
    tcase_add_test(q, duration_boundaries);
    suite_add_tcase(s, lim);
    suite_add_tcase(s, q);
    return s;
}

int main(void)
{
    return tu_run(limits_suite());
}
