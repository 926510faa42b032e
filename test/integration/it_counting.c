/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * it_counting - exact counting against a real Redis: N messages admitted then
 * refused, recipients counted, refusals charge nothing, sender scope counted
 * per sender, and the refusal names its limit and a retry time.
 */
#include <stdio.h>
#include <string.h>

#include "itest.h"
#include "policy.h"
#include "snapshot.h"
#include "store_redis.h"

enum { MINUTE_MS = 60000 };

static struct rm_config *counting_config(void)
{
    char redis[512], limits[2048];

    it_redis_group(redis, sizeof(redis), "ct:", 1000, 2);
    it_limits_group(limits, sizeof(limits),
                    "messages_per_minute=5;recipients_per_minute=12;"
                    "sender_messages_per_minute=3");
    return it_config("%s%scustomers = ( { name = \"five\"; sasl = [ \"five\" ]; } );\n",
                     redis, limits);
}

/* The counter key of q that belongs to field (a lim_field id), or NULL. */
static const struct quota_counter *counter_for(const struct quota_req *q, int field)
{
    for (int i = 0; i < q->n; i++)
        if (q->c[i].field_msg == field)
            return &q->c[i];
    return NULL;
}

/* A refusal when the current window alone is too full (nothing in the
 * previous one): the message fits once the next window has run far enough
 * that cur * (1 - g) + cost <= lim, i.e. the rest of this window plus
 * (1 - (lim - cost) / cur) of the next. t0 and t1 (server ms) bracket the
 * call. */
static void expect_retry(const struct quota_result *res, long long t0, long long t1,
                         double cur, double cost, double lim)
{
    double share = (1.0 - (lim - cost) / cur) * MINUTE_MS;
    double lo = (double)(MINUTE_MS - t1 % MINUTE_MS) + share - 2;
    double hi = (double)(MINUTE_MS - t0 % MINUTE_MS) + share + 2;

    CHECK(res->retry_ms > 0 && res->retry_ms <= 2 * MINUTE_MS,
          "retry_ms %lld not in (0, 2 windows]", res->retry_ms);
    CHECK((double)res->retry_ms >= lo && (double)res->retry_ms <= hi,
          "retry_ms %lld, expected %.0f..%.0f", res->retry_ms, lo, hi);
}

/* messages_per_minute 5: exactly 5 admitted, then refused with the metric,
 * the counter and the retry time; the refusals cost nothing. Note the retry
 * time may exceed one window: a full current window must first become the
 * previous one and then decay. */
static void test_messages_exact(struct store *s, const struct rm_config *cfg,
                                redisContext *rc)
{
    struct quota_req q;
    struct quota_result res;
    char text[256];
    int admitted = 0;
    long long t0 = 0, t1 = 0;

    for (int i = 0; i < 8; i++) {
        /* a fresh sender each time: only the customer limit can refuse */
        char sender[64];
        snprintf(sender, sizeof(sender), "s%d@one.example", i);
        it_quota(&q, cfg, "one", sender, 1);
        t0 = it_redis_ms(rc);
        it_charge(s, &q, &res);
        t1 = it_redis_ms(rc);
        if (i < 5)
            CHECK(res.admitted, "message %d of 5 refused", i + 1);
        else
            CHECK(!res.admitted, "message %d admitted over a limit of 5", i + 1);
        admitted += res.admitted;
    }
    CHECK(admitted == 5, "admitted %d messages, limit 5", admitted);
    const struct quota_counter *qc = counter_for(&q, LIM_MSG_MINUTE);
    REQUIRE(qc != NULL, "no messages_per_minute counter in the request");
    CHECK(strcmp(qc->key, it_ckey("ct:", 'm', "one")) == 0, "customer minute key is %s",
          qc->key);
    CHECK(&q.c[res.counter] == qc, "refusal names counter %d (%s), not the customer one",
          res.counter, q.c[res.counter].key);
    CHECK(res.metric == 'm', "refusal metric '%c', expected 'm'", res.metric);
    expect_retry(&res, t0, t1, 5, 1, 5);
    quota_refusal_text(&q, &res, "one", text, sizeof(text));
    CHECK(strncmp(text, "quota exceeded: messages_per_minute 5 for one, retry in ", 56) ==
              0,
          "refusal text \"%s\"", text);
    CHECK_HGET(rc, it_ckey("ct:", 'm', "one"), "m", 5);
    CHECK_HGET(rc, it_ckey("ct:", 'm', "one"), "r", 5);
}

/* recipients_per_minute 12: a message with 5 recipients counts 5. */
static void test_recipients(struct store *s, const struct rm_config *cfg,
                            redisContext *rc)
{
    struct quota_req q;
    struct quota_result res;
    char text[256];

    it_quota(&q, cfg, "two", "a@two.example", 5);
    it_charge(s, &q, &res);
    CHECK(res.admitted, "first 5-recipient message refused");
    CHECK_HGET(rc, it_ckey("ct:", 'm', "two"), "r", 5);
    CHECK_HGET(rc, it_ckey("ct:", 'm', "two"), "m", 1);
    it_quota(&q, cfg, "two", "b@two.example", 5);
    it_charge(s, &q, &res);
    CHECK(res.admitted, "second 5-recipient message refused (10 of 12)");
    it_quota(&q, cfg, "two", "c@two.example", 3);
    long long t0 = it_redis_ms(rc);
    it_charge(s, &q, &res);
    long long t1 = it_redis_ms(rc);
    CHECK(!res.admitted, "3 more recipients admitted over 12 (10 used)");
    CHECK(res.metric == 'r', "refusal metric '%c', expected 'r'", res.metric);
    expect_retry(&res, t0, t1, 10, 3, 12);
    quota_refusal_text(&q, &res, "two", text, sizeof(text));
    CHECK(strstr(text, "recipients_per_minute 12 for two") != NULL, "refusal text \"%s\"",
          text);
    CHECK_HGET(rc, it_ckey("ct:", 'm', "two"), "r", 10);
    CHECK_HGET(rc, it_ckey("ct:", 'm', "two"), "m", 2);
    it_quota(&q, cfg, "two", "d@two.example", 2);
    it_charge(s, &q, &res);
    CHECK(res.admitted, "2 recipients refused with exactly 2 left");
    CHECK_HGET(rc, it_ckey("ct:", 'm', "two"), "r", 12);

    /* more recipients than the limit: never fits, and creates nothing */
    it_quota(&q, cfg, "three", "a@three.example", 13);
    it_charge(s, &q, &res);
    CHECK(!res.admitted && res.metric == 'r',
          "13 recipients admitted under a limit of 12");
    CHECK(res.retry_ms > 0 && res.retry_ms <= 2 * MINUTE_MS,
          "retry_ms %lld for a message that never fits", res.retry_ms);
    redisReply *r = it_cmd(rc, "EXISTS %s", it_ckey("ct:", 'm', "three"));
    CHECK(r->type == REDIS_REPLY_INTEGER && r->integer == 0,
          "a refused first message created its counter");
    freeReplyObject(r);
}

/* sender_messages_per_minute 3, counted per sender; a sender refusal charges
 * neither the sender nor the customer counter (all or nothing). */
static void test_sender_scope(struct store *s, const struct rm_config *cfg,
                              redisContext *rc)
{
    struct quota_req q;
    struct quota_result res;
    char text[256];
    int admitted_a = 0, admitted_b = 0;
    long long t0 = 0, t1 = 0;

    for (int i = 0; i < 5; i++) {
        it_quota(&q, cfg, "four", "a@four.example", 1);
        t0 = it_redis_ms(rc);
        it_charge(s, &q, &res);
        t1 = it_redis_ms(rc);
        admitted_a += res.admitted;
    }
    CHECK(admitted_a == 3, "sender a: %d admitted, limit 3", admitted_a);
    const struct quota_counter *qs = counter_for(&q, LIM_SMSG_MINUTE);
    REQUIRE(qs != NULL, "no sender_messages_per_minute counter");
    CHECK(strcmp(qs->key, it_skey("ct:", 'm', "four", "a@four.example")) == 0,
          "sender key is %s", qs->key);
    CHECK(!res.admitted && &q.c[res.counter] == qs && res.metric == 'm',
          "the refusal does not name the sender counter (counter %d metric %c)",
          res.counter, res.metric);
    expect_retry(&res, t0, t1, 3, 1, 3);
    quota_refusal_text(&q, &res, "four", text, sizeof(text));
    CHECK(strstr(text, "sender_messages_per_minute 3 for four") != NULL,
          "refusal text \"%s\"", text);
    for (int i = 0; i < 2; i++) {
        it_quota(&q, cfg, "four", "b@four.example", 1);
        it_charge(s, &q, &res);
        admitted_b += res.admitted;
    }
    CHECK(admitted_b == 2, "sender b: %d of 2 admitted after sender a's refusals",
          admitted_b);
    CHECK_HGET(rc, it_skey("ct:", 'm', "four", "a@four.example"), "m", 3);
    CHECK_HGET(rc, it_skey("ct:", 'm', "four", "b@four.example"), "m", 2);
    CHECK_HGET(rc, it_ckey("ct:", 'm', "four"), "m", 5);
}

/* The same through the policy engine: RCPT x5, DATA -> 5 recipients charged. */
static void test_policy_recipients(struct rm_config *cfg, struct store *s,
                                   redisContext *rc)
{
    struct snap *snap = snap_new(cfg, store_ref(s));
    struct net_addr a;
    struct pol_reply rep;

    REQUIRE(net_parse_addr("127.0.0.1", &a) == 0, "net_parse_addr");
    struct pol_conn *c = pol_conn_new(&a);
    pol_mail(c, snap, "<x@five.example>", "five", &rep);
    CHECK(rep.verdict == POL_CONTINUE, "MAIL refused: %s %s", rep.rcode, rep.text);
    for (int i = 0; i < 5; i++) {
        pol_rcpt(c, "<r@dest.example>", &rep);
        CHECK(rep.verdict == POL_CONTINUE, "RCPT %d refused: %s", i + 1, rep.text);
    }
    pol_data(c, "QID1", &rep);
    CHECK(rep.verdict == POL_CONTINUE, "DATA refused: %s %s", rep.rcode, rep.text);
    CHECK(pol_eom(c, "QID1") == 0, "message held");
    CHECK_HGET(rc, it_ckey("ct:", 'm', "five"), "r", 5);
    CHECK_HGET(rc, it_ckey("ct:", 'm', "five"), "m", 1);
    pol_conn_free(c);
}

int main(void)
{
    it_start("it_counting");
    redisContext *rc = it_redis();
    struct rm_config *cfg = counting_config();
    struct store *s = store_redis_new(cfg);

    /* everything below must happen inside one minute window */
    it_avoid_boundary(rc, MINUTE_MS, 15000);
    test_messages_exact(s, cfg, rc);
    test_recipients(s, cfg, rc);
    test_sender_scope(s, cfg, rc);
    test_policy_recipients(cfg, s, rc); /* the snapshot now owns cfg */
    store_unref(s);
    redisFree(rc);
    return it_done();
}
