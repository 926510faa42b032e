/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * it_refund - an aborted message gives its charge back: to the current
 * bucket (m, r) when its window is still current, to the previous one
 * (pm, pr) when the window has turned since, to nothing when older; and
 * counters never go below zero.
 */
#include <stdio.h>
#include <string.h>

#include "itest.h"
#include "policy.h"
#include "snapshot.h"
#include "store_redis.h"

enum { HOUR_MS = 3600000 };

static void expect_fields(redisContext *rc, const char *key, long long m, long long r,
                          long long pm, long long pr, const char *when)
{
    const char *names[] = {"m", "r", "pm", "pr"};
    long long want[] = {m, r, pm, pr};

    for (int i = 0; i < 4; i++)
        if (!CHECK_HGET(rc, key, names[i], want[i]))
            fprintf(stderr, "    (%s)\n", when);
}

static int refund(struct store *s, const struct quota_req *q, long long ms)
{
    char err[STORE_ERR_MAX] = "";
    int rc = store_refund(s, q, ms, err);

    CHECK(rc == 0, "refund at %lld: %s", ms, err);
    return rc;
}

/* Charges in the current window come back off m and r, down to zero only. */
static void test_current_window(struct store *s, const struct rm_config *cfg,
                                redisContext *rc)
{
    struct quota_req q;
    struct quota_result r1, r2;

    it_quota(&q, cfg, "cur", "a@cur.example", 3);
    it_charge(s, &q, &r1);
    it_charge(s, &q, &r2);
    CHECK(r1.admitted && r2.admitted, "charges refused");
    expect_fields(rc, it_ckey("rf:", 'h', "cur"), 2, 6, 0, 0, "two charges");
    refund(s, &q, r1.charged_ms);
    expect_fields(rc, it_ckey("rf:", 'h', "cur"), 1, 3, 0, 0, "one refund");
    expect_fields(rc, it_skey("rf:", 'h', "cur", "a@cur.example"), 1, 3, 0, 0,
                  "one refund (sender)");
    refund(s, &q, r2.charged_ms);
    expect_fields(rc, it_ckey("rf:", 'h', "cur"), 0, 0, 0, 0, "two refunds");
    refund(s, &q, r2.charged_ms); /* a refund too many */
    expect_fields(rc, it_ckey("rf:", 'h', "cur"), 0, 0, 0, 0, "a third refund");
    expect_fields(rc, it_skey("rf:", 'h', "cur", "a@cur.example"), 0, 0, 0, 0,
                  "third refund (sender)");

    /* more recipients than are left: r stops at zero */
    it_charge(s, &q, &r1);
    it_quota(&q, cfg, "cur", "a@cur.example", 50);
    refund(s, &q, r1.charged_ms);
    expect_fields(rc, it_ckey("rf:", 'h', "cur"), 0, 0, 0, 0,
                  "refund of 50 recipients from 3");
}

/* A charge made in the previous window: the window has turned, its bucket is
 * now pm / pr, and that is where the refund goes. Older charges are gone. */
static void test_previous_window(struct store *s, const struct rm_config *cfg,
                                 redisContext *rc)
{
    struct quota_req q;
    struct quota_result res;
    const char *key = it_ckey("rf:", 'h', "prev");

    it_quota(&q, cfg, "prev", "a@prev.example", 2);
    it_charge(s, &q, &res);
    /* as if the previous hour had seen 4 messages / 10 recipients */
    it_cmd_ok(rc, "HSET %s pm 4 pr 10", key);
    expect_fields(rc, key, 1, 2, 4, 10, "set up");
    refund(s, &q, res.charged_ms - HOUR_MS);
    expect_fields(rc, key, 1, 2, 3, 8, "refund of a previous-window charge");
    expect_fields(rc, it_skey("rf:", 'h', "prev", "a@prev.example"), 1, 2, 0, 0,
                  "previous-window refund (sender, nothing there)");
    refund(s, &q, res.charged_ms - 2 * HOUR_MS);
    expect_fields(rc, key, 1, 2, 3, 8, "refund of a charge two windows old");

    it_cmd_ok(rc, "HSET %s pm 0 pr 1", key);
    refund(s, &q, res.charged_ms - HOUR_MS);
    expect_fields(rc, key, 1, 2, 0, 0, "previous-window refund below zero");
}

/* A refund for counters that do not exist creates nothing. */
static void test_no_key(struct store *s, const struct rm_config *cfg, redisContext *rc)
{
    struct quota_req q;

    it_quota(&q, cfg, "ghost", "a@ghost.example", 1);
    refund(s, &q, it_redis_ms(rc));
    redisReply *r = it_cmd(rc, "EXISTS %s %s", it_ckey("rf:", 'h', "ghost"),
                           it_skey("rf:", 'h', "ghost", "a@ghost.example"));
    CHECK(r->type == REDIS_REPLY_INTEGER && r->integer == 0,
          "a refund created %lld counter keys", r->integer);
    freeReplyObject(r);
}

/* Through the policy engine: abort after DATA refunds, end of message keeps. */
static void test_policy_abort(struct rm_config *cfg, struct store *s, redisContext *rc)
{
    struct snap *snap = snap_new(cfg, store_ref(s));
    struct pol_reply rep;
    struct pol_conn *c = pol_conn_new(NULL);

    snap_publish(snap);
    for (int round = 0; round < 2; round++) {
        pol_mail(c, snap_acquire(), "<a@pol.example>", "pol", &rep);
        CHECK(rep.verdict == POL_CONTINUE, "MAIL refused: %s", rep.text);
        pol_rcpt(c, "<x@dest.example>", &rep);
        pol_rcpt(c, "<y@dest.example>", &rep);
        pol_data(c, "QIDR", &rep);
        CHECK(rep.verdict == POL_CONTINUE, "DATA refused: %s", rep.text);
        expect_fields(rc, it_ckey("rf:", 'h', "pol"), 1, 2, 0, 0, "after DATA");
        if (round == 0)
            pol_abort(c);
        else
            pol_eom(c, "QIDR");
        expect_fields(rc, it_ckey("rf:", 'h', "pol"), round, 2 * round, 0, 0,
                      round == 0 ? "after abort" : "after end of message");
    }
    pol_conn_free(c);
    snap_shutdown();
}

int main(void)
{
    char redis[512], limits[1024];

    it_start("it_refund");
    redisContext *rc = it_redis();
    it_redis_group(redis, sizeof(redis), "rf:", 1000, 2);
    it_limits_group(limits, sizeof(limits),
                    "messages_per_hour=100;recipients_per_hour=1000;"
                    "sender_messages_per_hour=50");
    struct rm_config *cfg = it_config(
        "%s%scustomers = ( { name = \"pol\"; sasl = [ \"pol\" ]; } );\n", redis, limits);
    struct store *s = store_redis_new(cfg);

    it_avoid_boundary(rc, HOUR_MS, 10000);
    test_current_window(s, cfg, rc);
    test_previous_window(s, cfg, rc);
    test_no_key(s, cfg, rc);
    test_policy_abort(cfg, s, rc); /* the snapshot owns cfg from here */
    store_unref(s);
    redisFree(rc);
    return it_done();
}
