/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_lookcache - the process-local copy of MAIL FROM lookups (lookcache.h):
 * a copy answers only its own key, whole and unchanged; it ages out after
 * LOOKCACHE_MAX_AGE_MS; a thousand busy customers all stay (sets, not one slot per
 * hash); more keys than slots never mix answers; keys that differ only in
 * where one part ends and the next begins stay apart; an answer over
 * LOOKCACHE_ENTRY_MAX is not kept; concurrent use is safe.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lookcache.h"
#include "testutil.h"

static struct lookcache lc;

static void setup(void)
{
    lookcache_init(&lc);
}

static void teardown(void)
{
    lookcache_free(&lc);
}

static struct store_lookup_res answer(const char *customer, int nfields)
{
    struct store_lookup_res r;

    memset(&r, 0, sizeof(r));
    snprintf(r.customer, sizeof(r.customer), "%s", customer);
    snprintf(r.dom_level, sizeof(r.dom_level), "acme.example");
    r.dom_member = 1;
    r.garbage = 1;
    r.truncated = 1;
    r.nfields = nfields;
    for (int i = 0; i < nfields && i < STORE_FIELDS_MAX; i++) {
        snprintf(r.name[i], sizeof(r.name[i]), "field%d", i);
        snprintf(r.value[i], sizeof(r.value[i]), "%d", 1000 + i);
    }
    return r;
}

START_TEST(miss_then_hit_whole_copy)
{
    struct store_lookup_req req = {"login", "acme", "acme.example"};
    struct store_lookup_res in = answer("acme", STORE_FIELDS_MAX), out;

    ck_assert_int_eq(lookcache_get(&lc, &req, &out), 0);
    lookcache_put(&lc, &req, &in);
    memset(&out, 0x55, sizeof(out));
    ck_assert_int_eq(lookcache_get(&lc, &req, &out), 1);
    ck_assert_str_eq(out.customer, "acme");
    ck_assert_str_eq(out.dom_level, "acme.example");
    ck_assert_int_eq(out.dom_member, 1);
    ck_assert_int_eq(out.garbage, 1);
    ck_assert_int_eq(out.truncated, 1);
    ck_assert_int_eq(out.cached, 0); /* the store marks its answers, not the copy */
    ck_assert_int_eq(out.nfields, STORE_FIELDS_MAX);
    for (int i = 0; i < STORE_FIELDS_MAX; i++) {
        ck_assert_str_eq(out.name[i], in.name[i]);
        ck_assert_str_eq(out.value[i], in.value[i]);
    }
}
END_TEST

START_TEST(no_fields_and_null_parts)
{
    struct store_lookup_req req = {NULL, "ip:192.0.2.1", NULL};
    struct store_lookup_req same = {"", "ip:192.0.2.1", ""};
    struct store_lookup_res in = answer("", 0), out;

    lookcache_put(&lc, &req, &in);
    ck_assert_int_eq(lookcache_get(&lc, &same, &out), 1);
    ck_assert_int_eq(out.nfields, 0);
    ck_assert_str_eq(out.customer, "");
}
END_TEST

START_TEST(keys_stay_apart)
{
    struct store_lookup_req a = {"ab", "c", "d.example"};
    struct store_lookup_req b = {"a", "bc", "d.example"};
    struct store_lookup_req c = {"ab", "c", "e.example"};
    struct store_lookup_res ra = answer("first", 1), out;

    lookcache_put(&lc, &a, &ra);
    ck_assert_int_eq(lookcache_get(&lc, &b, &out), 0);
    ck_assert_int_eq(lookcache_get(&lc, &c, &out), 0);
    ck_assert_int_eq(lookcache_get(&lc, &a, &out), 1);
    ck_assert_str_eq(out.customer, "first");
}
END_TEST

START_TEST(newer_copy_replaces)
{
    struct store_lookup_req req = {"", "acme", "acme.example"};
    struct store_lookup_res one = answer("one", 3), two = answer("two", 1), out;

    lookcache_put(&lc, &req, &one);
    lookcache_put(&lc, &req, &two);
    ck_assert_int_eq(lookcache_get(&lc, &req, &out), 1);
    ck_assert_str_eq(out.customer, "two");
    ck_assert_int_eq(out.nfields, 1);
}
END_TEST

/* More keys than slots: every answer given is the one put for that key. */
START_TEST(collisions_never_mix)
{
    enum { N = LOOKCACHE_SLOTS * 3 };
    char name[32];
    int hits = 0;

    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "cust%d", i);
        struct store_lookup_req req = {"", name, ""};
        struct store_lookup_res in = answer(name, i % 4);
        lookcache_put(&lc, &req, &in);
    }
    for (int i = 0; i < N; i++) {
        struct store_lookup_res out;
        snprintf(name, sizeof(name), "cust%d", i);
        struct store_lookup_req req = {"", name, ""};
        if (lookcache_get(&lc, &req, &out)) {
            hits++;
            ck_assert_str_eq(out.customer, name);
            ck_assert_int_eq(out.nfields, i % 4);
        }
    }
    ck_assert_int_gt(hits, 0);
    ck_assert_int_le(hits, LOOKCACHE_SLOTS);
}
END_TEST

/* The working set of a busy relay, a few thousand customers, stays whole. */
START_TEST(working_set_kept)
{
    enum { N = LOOKCACHE_SLOTS / 2 };
    char name[32];
    int hits = 0;

    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "customer-%d", i);
        struct store_lookup_req req = {name, name, "example.com"};
        struct store_lookup_res in = answer(name, 1);
        lookcache_put(&lc, &req, &in);
    }
    for (int i = 0; i < N; i++) {
        struct store_lookup_res out;
        snprintf(name, sizeof(name), "customer-%d", i);
        struct store_lookup_req req = {name, name, "example.com"};
        hits += lookcache_get(&lc, &req, &out);
    }
    ck_assert_int_ge(hits, N * 95 / 100);
}
END_TEST

/* Long values in every field: more than LOOKCACHE_ENTRY_MAX, looked up every time. */
START_TEST(large_answer_not_kept)
{
    struct store_lookup_req req = {"", "acme", ""};
    struct store_lookup_res in = answer("acme", STORE_FIELDS_MAX), out;

    for (int i = 0; i < STORE_FIELDS_MAX; i++)
        memset(in.value[i], '7', STORE_FIELD_LEN - 1);
    lookcache_put(&lc, &req, &in);
    ck_assert_int_eq(lookcache_get(&lc, &req, &out), 0);
}
END_TEST

START_TEST(ages_out)
{
    struct store_lookup_req req = {"", "acme", ""};
    struct store_lookup_res in = answer("acme", 1), out;

    lookcache_put(&lc, &req, &in);
    ck_assert_int_eq(lookcache_get(&lc, &req, &out), 1);
    usleep((LOOKCACHE_MAX_AGE_MS + 50) * 1000);
    ck_assert_int_eq(lookcache_get(&lc, &req, &out), 0);
}
END_TEST

/* A key too long to build is never kept (and never wrongly answered). */
START_TEST(over_long_key_not_kept)
{
    char big[STORE_NAME_MAX * 3];
    struct store_lookup_req req = {big, big, "x.example"};
    struct store_lookup_res in = answer("acme", 1), out;

    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    lookcache_put(&lc, &req, &in);
    ck_assert_int_eq(lookcache_get(&lc, &req, &out), 0);
}
END_TEST

static void *hammer(void *arg)
{
    char name[32];
    int id = *(int *)arg;

    for (int i = 0; i < 20000; i++) {
        snprintf(name, sizeof(name), "c%d", (i + id) % 300);
        struct store_lookup_req req = {"", name, ""};
        struct store_lookup_res out;
        if (lookcache_get(&lc, &req, &out)) {
            ck_assert_str_eq(out.customer, name);
        } else {
            struct store_lookup_res in = answer(name, i % 5);
            lookcache_put(&lc, &req, &in);
        }
    }
    return NULL;
}

START_TEST(threads)
{
    pthread_t t[4];
    int id[4] = {0, 7, 13, 101};

    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, hammer, &id[i]), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("lookcache");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, miss_then_hit_whole_copy);
    tcase_add_test(tc, no_fields_and_null_parts);
    tcase_add_test(tc, keys_stay_apart);
    tcase_add_test(tc, newer_copy_replaces);
    tcase_add_test(tc, collisions_never_mix);
    tcase_add_test(tc, working_set_kept);
    tcase_add_test(tc, large_answer_not_kept);
    tcase_add_test(tc, ages_out);
    tcase_add_test(tc, over_long_key_not_kept);
    tcase_add_test(tc, threads);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
