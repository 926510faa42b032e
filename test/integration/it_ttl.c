/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * it_ttl - every key the store writes expires: after charges (and a refund),
 * each key under the prefix has a PTTL in (0, 2 * its window], and expires
 * exactly at the end of the window after the one it was charged in. The one
 * key without an expiry is the events stream, and it is capped.
 */
#include <stdio.h>
#include <string.h>

#include "itest.h"
#include "store_redis.h"

#define PREFIX "tt:"

static const struct {
    const char *customer, *sender;
    long long nrcpt;
} traffic[] = {
    {"alpha", "a@alpha.example", 1},
    {"alpha", "b@alpha.example", 3},
    {"alpha", "a@alpha.example", 2},
    {"beta", "x@beta.example", 7},
    {"gamma", "", 1}, /* the null sender has its own sender-scope keys */
};
enum { NTRAFFIC = sizeof(traffic) / sizeof(traffic[0]) };

/* 3 customers x 3 windows + 4 distinct (customer, sender) x 3 windows */
enum { EXPECTED_KEYS = 3 * 3 + 4 * 3 };

/* refusals recorded in the events stream, and its configured cap */
enum { NREFUSED = 250, EVENTS_MAXLEN = 10, STREAM_NODE = 100 };

/* The window of a counter key this test's traffic wrote (names from keys.h),
 * or -1. */
static long long window_of(const char *key)
{
    static const long long win[] = {60000, 3600000, 86400000};

    for (int w = 0; w < 3; w++)
        for (int i = 0; i < NTRAFFIC; i++)
            if (strcmp(key, it_ckey(PREFIX, "mhd"[w], traffic[i].customer)) == 0 ||
                strcmp(key, it_skey(PREFIX, "mhd"[w], traffic[i].customer,
                                    traffic[i].sender)) == 0)
                return win[w];
    return -1;
}

static long long pttl(redisContext *rc, const char *key)
{
    redisReply *r = it_cmd(rc, "PTTL %s", key);
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -3;

    freeReplyObject(r);
    return v;
}

/* One key: a known window, a TTL within (0, 2 W], and an expiry at the end of
 * the window after the charge's (first or last charge, should a window have
 * turned between them). */
static void check_key(redisContext *rc, const char *key, long long first_ms,
                      long long last_ms)
{
    long long w = window_of(key);
    long long now = it_redis_ms(rc);
    long long t = pttl(rc, key);

    if (!CHECK(w > 0, "key %s: not a counter key this test wrote", key))
        return;
    CHECK(t > 0, "key %s: PTTL %lld (no expiry)", key, t);
    CHECK(t <= 2 * w, "key %s: PTTL %lld ms is longer than 2 windows (%lld)", key, t,
          2 * w);
    long long at = now + t;
    long long e1 = (first_ms / w + 2) * w, e2 = (last_ms / w + 2) * w;
    long long d1 = at > e1 ? at - e1 : e1 - at, d2 = at > e2 ? at - e2 : e2 - at;
    CHECK(d1 <= 1000 || d2 <= 1000,
          "key %s: expires at %lld, not at the end of the next window (%lld)", key, at,
          e2);
}

static int scan_and_check(redisContext *rc, long long first_ms, long long last_ms)
{
    char cursor[32] = "0";
    int nkeys = 0;

    do {
        redisReply *r = it_cmd(rc, "SCAN %s MATCH %s* COUNT 100", cursor, PREFIX);
        REQUIRE(r->type == REDIS_REPLY_ARRAY && r->elements == 2, "SCAN: odd reply");
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            const char *key = r->element[1]->element[i]->str;
            if (strcmp(key, PREFIX "events") == 0)
                continue; /* checked by check_events */
            check_key(rc, key, first_ms, last_ms);
            nkeys++;
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    return nkeys;
}

/* A customer allowed nothing: each message is refused and recorded. */
static void refuse_many(struct store *s, const struct rm_config *cfg)
{
    struct store_event ev = {"QIDT",           "capped", "-",       "a@capped.example",
                             "b@dest.example", "",       "tempfail"};
    struct quota_req q;
    struct quota_result res;
    int refused = 0;

    for (int i = 0; i < NREFUSED; i++) {
        it_quota(&q, cfg, "capped", "a@capped.example", 1);
        q.event = &ev;
        it_charge(s, &q, &res);
        refused += !res.admitted;
    }
    CHECK(refused == NREFUSED, "%d of %d refused at messages_per_minute 0", refused,
          NREFUSED);
}

/* The events stream has no expiry by design: MAXLEN ~ keeps it short (Redis
 * trims whole nodes of up to 100 entries). */
static void check_events(redisContext *rc)
{
    redisReply *r = it_cmd(rc, "TYPE " PREFIX "events");
    CHECK(r->type == REDIS_REPLY_STATUS && strcmp(r->str, "stream") == 0,
          PREFIX "events is of type %s", r->str ? r->str : "?");
    freeReplyObject(r);
    r = it_cmd(rc, "XLEN " PREFIX "events");
    CHECK(r->type == REDIS_REPLY_INTEGER && r->integer > 0 &&
              r->integer <= EVENTS_MAXLEN + STREAM_NODE,
          "%lld entries after %d refusals, cap %d", r->integer, NREFUSED, EVENTS_MAXLEN);
    freeReplyObject(r);
    r = it_cmd(rc, "XREVRANGE " PREFIX "events + - COUNT 1");
    int found = 0;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1) {
        const redisReply *f = r->element[0]->element[1];
        for (size_t i = 0; i + 1 < f->elements; i += 2)
            found += (strcmp(f->element[i]->str, "customer") == 0 &&
                      strcmp(f->element[i + 1]->str, "capped") == 0) ||
                     (strcmp(f->element[i]->str, "reason") == 0 &&
                      strcmp(f->element[i + 1]->str, "messages_per_minute") == 0);
    }
    CHECK(found == 2, "the last event does not name customer capped and its limit");
    freeReplyObject(r);
}

int main(void)
{
    char redis[512], limits[2048], err[STORE_ERR_MAX];
    struct quota_req q;
    struct quota_result res;
    long long first_ms = -1, last_ms = -1;

    it_start("it_ttl");
    redisContext *rc = it_redis();
    it_redis_group(redis, sizeof(redis), PREFIX, 1000, 2);
    /* it_redis_group ends in "};\n": add the events cap inside the group */
    snprintf(strstr(redis, "};\n"), 64, "events_maxlen = %d; };\n", EVENTS_MAXLEN);
    it_limits_group(limits, sizeof(limits),
                    "messages_per_minute=1000;messages_per_hour=1000;"
                    "messages_per_day=1000;recipients_per_minute=1000;"
                    "recipients_per_hour=1000;recipients_per_day=1000;"
                    "sender_messages_per_minute=1000;sender_messages_per_hour=1000;"
                    "sender_messages_per_day=1000;sender_recipients_per_minute=1000;"
                    "sender_recipients_per_hour=1000;sender_recipients_per_day=1000");
    struct rm_config *cfg = it_config("%s%s"
                                      "customers = ( { name = \"capped\"; limits = { "
                                      "messages_per_minute = 0; }; } );\n",
                                      redis, limits);
    struct store *s = store_redis_new(cfg);

    it_avoid_boundary(rc, 60000, 5000);
    for (int i = 0; i < NTRAFFIC; i++) {
        it_quota(&q, cfg, traffic[i].customer, traffic[i].sender, traffic[i].nrcpt);
        CHECK(q.n == 6, "%d counters for %s, expected 6", q.n, traffic[i].customer);
        it_charge(s, &q, &res);
        CHECK(res.admitted, "message %d refused", i);
        if (first_ms < 0)
            first_ms = res.charged_ms;
        last_ms = res.charged_ms;
    }
    /* a refund rewrites counters; the expiry stays */
    CHECK(store_refund(s, &q, last_ms, err) == 0, "refund: %s", err);

    /* a lookup writes nothing */
    struct store_lookup_req lreq = {"nobody", "alpha", ""};
    struct store_lookup_res lres;
    CHECK(store_lookup(s, &lreq, &lres, err) == 0, "lookup: %s", err);

    refuse_many(s, cfg);
    check_events(rc);
    int nkeys = scan_and_check(rc, first_ms, last_ms);
    CHECK(nkeys == EXPECTED_KEYS, "%d keys under %s, expected %d", nkeys, PREFIX,
          EXPECTED_KEYS);

    redisReply *r = it_cmd(rc, "DBSIZE");
    CHECK(r->type == REDIS_REPLY_INTEGER && r->integer == nkeys + 1,
          "%lld keys in the database, %d counters + the events stream under the prefix",
          r->integer, nkeys);
    freeReplyObject(r);
    store_unref(s);
    cfg_free(cfg);
    redisFree(rc);
    return it_done();
}
