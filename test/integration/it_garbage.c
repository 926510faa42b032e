/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * it_garbage - garbage in Redis never lifts a limit and never crashes:
 * counter fields that are not numbers count as full (refused, nothing
 * admitted) and the key gets an expiry; staff keys of the wrong type make the
 * lookup report garbage, and the config limits apply; a counter stored in a
 * window ahead of the server's clock keeps its counts and its limit.
 */
#include <stdio.h>
#include <string.h>

#include "itest.h"
#include "policy.h"
#include "snapshot.h"
#include "store_redis.h"

enum { MINUTE_MS = 60000 };

static long long pttl(redisContext *rc, const char *key)
{
    redisReply *r = it_cmd(rc, "PTTL %s", key);
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -3;

    freeReplyObject(r);
    return v;
}

/* The customer's minute counter holds garbage written by hand: every charge
 * is refused, nothing is written but an expiry. */
static void garbage_counter(struct store *s, const struct rm_config *cfg,
                            redisContext *rc, const char *customer, const char *hset)
{
    char key[128];
    struct quota_req q;
    struct quota_result res;

    snprintf(key, sizeof(key), "%s", it_ckey("gb:", 'm', customer));
    it_cmd_ok(rc, "HSET %s e %lld", key, it_redis_ms(rc) / MINUTE_MS);
    /* hset: "field value field value ..." */
    char f[16], v[16];
    int used;
    for (const char *p = hset; sscanf(p, "%15s %15s%n", f, v, &used) == 2; p += used)
        it_cmd_ok(rc, "HSET %s %s %s", key, f, v);
    CHECK(pttl(rc, key) == -1, "%s: set up without expiry", key);
    /* more attempts than the limit (3): none may pass */
    int admitted = 0;
    for (int i = 0; i < 5; i++) {
        it_quota(&q, cfg, customer, "a@garbage.example", 1);
        it_charge(s, &q, &res);
        admitted += res.admitted;
        CHECK(res.admitted || (res.retry_ms > 0 && res.retry_ms <= 2 * MINUTE_MS),
              "%s (%s): retry_ms %lld not in (0, 2 windows]", customer, hset,
              res.retry_ms);
    }
    CHECK(admitted == 0, "%s (%s): %d of 5 admitted over a garbage counter (limit 3)",
          customer, hset, admitted);
    long long t = pttl(rc, key);
    CHECK(t > 0 && t <= 2 * MINUTE_MS, "%s (%s): PTTL %lld after refusals", customer,
          hset, t);
    /* the other counters (hour window) were not charged by the refusals */
    snprintf(key, sizeof(key), "%s", it_ckey("gb:", 'h', customer));
    redisReply *r = it_cmd(rc, "EXISTS %s", key);
    CHECK(admitted || (r->type == REDIS_REPLY_INTEGER && r->integer == 0),
          "%s: a refused message charged %s", customer, key);
    freeReplyObject(r);
}

static void test_counters(struct store *s, const struct rm_config *cfg, redisContext *rc)
{
    garbage_counter(s, cfg, rc, "g1", "m xyz");
    garbage_counter(s, cfg, rc, "g2", "r xyz");
    garbage_counter(s, cfg, rc, "g3", "m xyz r xyz pm xyz pr xyz");
    garbage_counter(s, cfg, rc, "g4", "m -7");
    /* Lua's tonumber() reads these as numbers: infinity and not-a-number */
    garbage_counter(s, cfg, rc, "g5", "m inf");
    garbage_counter(s, cfg, rc, "g8", "m nan");
    garbage_counter(s, cfg, rc, "g9", "r -nan");

    /* the window number itself is garbage */
    struct quota_req q;
    struct quota_result res;
    it_cmd_ok(rc, "HSET %s e xyz m 0", it_ckey("gb:", 'm', "g6"));
    it_quota(&q, cfg, "g6", "a@garbage.example", 1);
    it_charge(s, &q, &res);
    CHECK(!res.admitted, "garbage window number: admitted");
    long long t = pttl(rc, it_ckey("gb:", 'm', "g6"));
    CHECK(t > 0 && t <= 2 * MINUTE_MS, "garbage window number: PTTL %lld", t);
}

/* A counter written in a later window than Redis's clock says it is (the
 * clock stepped back: a failover to a server whose clock is behind) is
 * judged in its own window: the limit holds and its counts stay. */
static void test_counter_ahead(struct store *s, const struct rm_config *cfg,
                               redisContext *rc)
{
    struct quota_req q;
    struct quota_result res;
    const char *key = it_ckey("gb:", 'm', "g10");
    long long ahead = it_redis_ms(rc) / MINUTE_MS + 1, m = -1;

    it_cmd_ok(rc, "HSET %s e %lld m 2 r 2 pm 0 pr 0", key, ahead);
    it_quota(&q, cfg, "g10", "a@garbage.example", 1);
    it_charge(s, &q, &res);
    CHECK(res.admitted, "counter ahead, 2 of 3: refused");
    it_charge(s, &q, &res);
    CHECK(!res.admitted, "counter ahead, 3 of 3 counted: admitted");
    key = it_ckey("gb:", 'm', "g10");
    CHECK(it_hget(rc, key, "m", &m) == 1 && m == 3, "counter ahead: m %lld, want 3", m);
    CHECK(it_hget(rc, key, "e", &m) == 1 && m == ahead,
          "counter ahead: window %lld moved", m);
}

/* A counter key that is not a hash (somebody SET it): never an admission. */
static void test_counter_wrong_type(struct store *s, const struct rm_config *cfg,
                                    redisContext *rc)
{
    struct quota_req q;
    struct quota_result res;
    char err[STORE_ERR_MAX] = "";

    it_cmd_ok(rc, "SET %s hello", it_ckey("gb:", 'm', "g7"));
    it_quota(&q, cfg, "g7", "a@garbage.example", 1);
    int r = store_charge(s, &q, &res, err);
    CHECK(r == -1 || !res.admitted, "counter of the wrong type: admitted");
    CHECK(r == 0 || err[0] != '\0', "store error without a reason");
}

static void test_limits_wrong_type(struct store *s, redisContext *rc)
{
    struct store_lookup_res res;
    struct store_lookup_req req = {"", "w1", ""};
    char err[STORE_ERR_MAX] = "";

    it_cmd_ok(rc, "SET gb:limits:w1 messages_per_minute=1000");
    CHECK(store_lookup(s, &req, &res, err) == 0, "lookup on a string key: %s", err);
    CHECK(res.garbage == 1, "string limits key: garbage flag %d", res.garbage);
    CHECK(res.nfields == 0, "string limits key: %d fields", res.nfields);

    /* the sasl hash of the wrong type */
    it_cmd_ok(rc, "RPUSH gb:sasl login1");
    struct store_lookup_req req2 = {"login1", "login1", ""};
    CHECK(store_lookup(s, &req2, &res, err) == 0, "lookup on a list sasl key: %s", err);
    CHECK(res.garbage == 1 && res.customer[0] == '\0',
          "list sasl key: garbage %d customer \"%s\"", res.garbage, res.customer);
}

/* Over-long and binary values are dropped, flagged, and nothing crashes. */
static void test_odd_fields(struct store *s, redisContext *rc)
{
    struct store_lookup_res res;
    struct store_lookup_req req = {"", "w2", ""};
    char err[STORE_ERR_MAX] = "", big[300];

    memset(big, '9', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    it_cmd_ok(rc, "HSET gb:limits:w2 messages_per_minute %s", big);
    it_cmd_ok(rc, "HSET gb:limits:w2 %b 1", "a\0b", (size_t)3);
    it_cmd_ok(rc, "HSET gb:limits:w2 messages_per_hour 7");
    CHECK(store_lookup(s, &req, &res, err) == 0, "lookup with odd fields: %s", err);
    CHECK(res.truncated == 1, "over-long / binary fields not flagged");
    CHECK(res.nfields == 1 && strcmp(res.name[0], "messages_per_hour") == 0 &&
              strcmp(res.value[0], "7") == 0,
          "%d fields kept, expected only messages_per_hour 7", res.nfields);
}

/* One message through the engine for login; 1 when it was admitted. */
static int send_one(const char *login, struct pol_reply *rep)
{
    struct pol_conn *c = pol_conn_new(NULL);
    int admitted = 0;

    pol_mail(c, snap_acquire(), "<a@garbage.example>", login, rep);
    CHECK(rep->verdict == POL_CONTINUE, "MAIL refused: %s", rep->text);
    pol_rcpt(c, "<b@dest.example>", rep);
    pol_data(c, "QIDG", rep);
    if (rep->verdict == POL_CONTINUE) {
        admitted = 1;
        pol_eom(c, "QIDG");
    }
    pol_conn_free(c);
    return admitted;
}

/* Through the engine: a limits key of the wrong type, config limits apply;
 * a counter key of the wrong type never lets a message through. */
static void test_policy(struct rm_config *cfg, struct store *s)
{
    struct pol_reply rep;
    int admitted = 0;

    snap_publish(snap_new(cfg, store_ref(s)));
    for (int i = 0; i < 4; i++)
        admitted += send_one("w1", &rep);
    CHECK(admitted == 3, "string limits key: %d admitted, config says 3", admitted);
    CHECK(strstr(rep.text, "messages_per_minute 3 for w1") != NULL, "last reply \"%s\"",
          rep.text);
    admitted = 0;
    for (int i = 0; i < 5; i++)
        admitted += send_one("g7", &rep);
    CHECK(admitted == 0, "counter key of the wrong type: %d of 5 admitted (limit 3)",
          admitted);
    snap_shutdown();
}

int main(void)
{
    char redis[512], limits[1024];

    it_start("it_garbage");
    redisContext *rc = it_redis();
    it_redis_group(redis, sizeof(redis), "gb:", 1000, 2);
    it_limits_group(
        limits, sizeof(limits),
        "messages_per_minute=3;recipients_per_minute=10;messages_per_hour=100");
    /* the logins of test_policy stand for customers of the same name */
    struct rm_config *cfg =
        it_config("%s%scustomers = ( { name = \"w1\"; sasl = [ \"w1\" ]; },\n"
                  "  { name = \"g7\"; sasl = [ \"g7\" ]; } );\n",
                  redis, limits);
    struct store *s = store_redis_new(cfg);

    it_avoid_boundary(rc, MINUTE_MS, 10000);
    test_counters(s, cfg, rc);
    test_counter_wrong_type(s, cfg, rc);
    test_counter_ahead(s, cfg, rc);
    test_limits_wrong_type(s, rc);
    test_odd_fields(s, rc);
    test_policy(cfg, s); /* the snapshot owns cfg from here */
    store_unref(s);
    redisFree(rc);
    return it_done();
}
