/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * it_cluster_moves - a customer's slot moved by hand between primaries
 * (CLUSTER SETSLOT, MIGRATE; the Redis Cluster specification, "Live
 * reconfiguration"), one step at a time, with charges between the steps:
 *   - the slot migrating, the customer's counters still on the source: the
 *     source serves the charge;
 *   - some counters moved: the source answers TRYAGAIN; the store tries
 *     again a bounded number of times, then gives up with a store error,
 *     having charged nothing;
 *   - every counter moved: the source answers ASK; the store sends ASKING
 *     and the charge to the target;
 *   - the slot given to the target: the source answers MOVED; the store
 *     follows, and reads the slot map again;
 *   - the script cache flushed on the new owner: NOSCRIPT, then EVAL.
 * Every admitted charge is counted exactly once, wherever the counters are,
 * and the limit holds; the node metrics count each kind of answer.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itcluster.h"
#include "itest.h"
#include "store_redis.h"

#define PREFIX "mv:"
#define SENDER "a@mv.example"

static const char *node_id(int port)
{
    static char id[4][64];
    static int next;
    char *out = id[next++ % 4];
    redisReply *r = redisCommand(itc_node(port), "CLUSTER MYID");

    REQUIRE(r != NULL && r->type == REDIS_REPLY_STRING, "CLUSTER MYID on %d", port);
    snprintf(out, 64, "%s", r->str);
    freeReplyObject(r);
    return out;
}

static void on(int port, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void on(int port, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    redisReply *r = redisvCommand(itc_node(port), fmt, ap);
    va_end(ap);
    REQUIRE(r != NULL && r->type != REDIS_REPLY_ERROR, "on %d: %s: %s", port, fmt,
            r ? r->str : "no reply");
    freeReplyObject(r);
}

/* The customer's counters of this test: minute, hour, day and the sender's
 * hour (the limits group below makes exactly these four). */
static const char *counter(int i, const char *cust)
{
    return i < 3 ? it_ckey(PREFIX, "mhd"[i], cust) : it_skey(PREFIX, 'h', cust, SENDER);
}

static void migrate(int from, int to, const char *key)
{
    on(from, "MIGRATE 127.0.0.1 %d %s 0 5000", to, key);
}

static int charge(struct store *s, const struct rm_config *cfg, const char *cust,
                  struct quota_result *res, char *err)
{
    struct quota_req q;

    it_quota(&q, cfg, cust, SENDER, 1);
    err[0] = '\0';
    return store_charge(s, &q, res, err);
}

/* A node's counter in the store's metrics: name{node="127.0.0.1:PORT"} or,
 * with kind, name{node="...",kind="KIND"}; -1 when absent. */
static long long metric(struct store *s, const char *name, int port, const char *kind)
{
    char buf[16384], want[200];

    store_metrics(s, buf, sizeof(buf));
    if (kind)
        snprintf(want, sizeof(want), "%s{node=\"127.0.0.1:%d\",kind=\"%s\"} ", name, port,
                 kind);
    else
        snprintf(want, sizeof(want), "%s{node=\"127.0.0.1:%d\"} ", name, port);
    const char *at = strstr(buf, want);
    return at ? atoll(at + strlen(want)) : -1;
}

int main(void)
{
    char cust[64], err[STORE_ERR_MAX], redis[1024], lim[4096];
    int p[ITC_MAX_NODES];
    struct quota_result res;
    int admitted = 0;

    it_start("it_cluster_moves");
    itc_start();
    itc_flushall();
    int np = itc_primaries(p, ITC_MAX_NODES);
    REQUIRE(np >= 2, "two primaries needed");
    int src = p[0], dst = p[1];
    itc_customer_on(src, "mover", cust, sizeof(cust));
    int slot = itc_slot(counter(0, cust));
    itc_redis_group(redis, sizeof(redis), PREFIX, 200, 4);
    it_limits_group(lim, sizeof(lim),
                    "messages_per_minute=20;messages_per_hour=1000;messages_per_day=1000;"
                    "sender_messages_per_hour=1000");
    struct rm_config *cfg = it_config("%s%s", redis, lim);
    struct store *s = store_redis_new(cfg);

    for (int i = 0; i < 3; i++) /* the map is read; the counters exist */
        admitted += charge(s, cfg, cust, &res, err) == 0 && res.admitted;
    CHECK(admitted == 3, "before: %d of 3 admitted: %s", admitted, err);

    /* The slot migrating, every counter still on the source. */
    on(dst, "CLUSTER SETSLOT %d IMPORTING %s", slot, node_id(src));
    on(src, "CLUSTER SETSLOT %d MIGRATING %s", slot, node_id(dst));
    CHECK(charge(s, cfg, cust, &res, err) == 0 && res.admitted,
          "migrating, all on the source: %s", err);
    admitted += res.admitted;

    /* Some moved: TRYAGAIN until the retries are spent; nothing charged. */
    migrate(src, dst, counter(0, cust));
    migrate(src, dst, counter(1, cust));
    CHECK(charge(s, cfg, cust, &res, err) == -1 && strstr(err, "TRYAGAIN"),
          "half moved: charge did not fail with TRYAGAIN: %s", err);
    CHECK(metric(s, "relaymilter_redis_node_tryagain_total", src, NULL) >= 2,
          "TRYAGAIN not counted on %d", src);

    /* All moved: ASK, and the charge is made on the target. */
    migrate(src, dst, counter(2, cust));
    migrate(src, dst, counter(3, cust));
    CHECK(charge(s, cfg, cust, &res, err) == 0 && res.admitted, "all moved: %s", err);
    admitted += res.admitted;
    CHECK(metric(s, "relaymilter_redis_node_redirects_total", src, "ask") >= 1,
          "ASK not counted on %d", src);

    /* The slot given to the target: MOVED, followed. */
    for (int i = 0; i < np; i++)
        on(p[i], "CLUSTER SETSLOT %d NODE %s", slot, node_id(dst));
    long long moved = metric(s, "relaymilter_redis_node_redirects_total", src, "moved");
    CHECK(charge(s, cfg, cust, &res, err) == 0 && res.admitted, "moved: %s", err);
    admitted += res.admitted;
    CHECK(metric(s, "relaymilter_redis_node_redirects_total", src, "moved") > moved,
          "MOVED not counted on %d", src);

    /* The new owner lost its scripts (as a promoted replica may have). */
    on(dst, "SCRIPT FLUSH");
    CHECK(charge(s, cfg, cust, &res, err) == 0 && res.admitted, "after SCRIPT FLUSH: %s",
          err);
    admitted += res.admitted;

    /* Exact: every admitted charge counted once, on the new owner; the
     * limit of 20 holds. */
    while (charge(s, cfg, cust, &res, err) == 0 && res.admitted && admitted < 100)
        admitted++;
    CHECK(admitted == 20, "%d admitted under messages_per_minute 20", admitted);
    redisReply *r = redisCommand(itc_node(dst), "HGET %s m", counter(0, cust));
    CHECK(r && r->type == REDIS_REPLY_STRING && atoll(r->str) == admitted,
          "the minute counter on %d holds %s, %d were admitted", dst,
          r && r->type == REDIS_REPLY_STRING ? r->str : "?", admitted);
    freeReplyObject(r);
    store_unref(s);
    cfg_free(cfg);
    return it_done();
}
