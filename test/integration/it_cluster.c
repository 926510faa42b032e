/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * it_cluster - the store on a Redis Cluster (test/lib/with-cluster: three
 * primaries and three replicas on loopback):
 *   - each customer's counters land on the primary serving the slot of its
 *     hash tag, for customers on every primary, and its limit holds exactly;
 *   - cluster_keyslot agrees with CLUSTER KEYSLOT (hash tags and all);
 *   - the MAIL FROM lookup reads what lookup.lua reads on one primary: the
 *     sasl hash (also when it names another customer than the last time: a
 *     second round), the limits hash, domain ownership at the most specific
 *     protected suffix, the blocked-domain set; with the lookup copy;
 *   - a refusal at DATA is written to the events stream (a call of its own)
 *     and MAIL FROM events too; refunds reach the right node;
 *   - per-node metrics name every node.
 */
#include <stdio.h>
#include <string.h>

#include "cluster.h"
#include "itcluster.h"
#include "itest.h"
#include "store_redis.h"

#define PREFIX "cl:"

static struct rm_config *config(const char *limits)
{
    char redis[1024], lim[4096];

    itc_redis_group(redis, sizeof(redis), PREFIX, 500, 4);
    it_limits_group(lim, sizeof(lim), limits);
    return it_config("%s%s", redis, lim);
}

/* Customers on each primary: the counters go to the slot's node, and a
 * limit of 3 admits exactly 3 of 5, counted on that node. */
static void test_counters_on_their_node(struct store *s, const struct rm_config *cfg)
{
    int p[ITC_MAX_NODES], n = itc_primaries(p, ITC_MAX_NODES);

    CHECK(n == 3, "%d primaries, want 3", n);
    for (int i = 0; i < n; i++) {
        char cust[64];
        struct quota_req q;
        struct quota_result res;
        int admitted = 0;
        itc_customer_on(p[i], "cust", cust, sizeof(cust));
        for (int k = 0; k < 5; k++) {
            it_quota(&q, cfg, cust, "a@x.example", 2);
            it_charge(s, &q, &res);
            admitted += res.admitted;
        }
        CHECK(admitted == 3, "%s on %d: %d of 5 admitted, limit 3", cust, p[i], admitted);
        CHECK(itc_counter_port(PREFIX, cust) == p[i], "%s: counter on %d, want %d", cust,
              itc_counter_port(PREFIX, cust), p[i]);
        redisReply *r =
            itc_cmd(it_ckey(PREFIX, 'm', cust), "HGET %s m", it_ckey(PREFIX, 'm', cust));
        CHECK(r->type == REDIS_REPLY_STRING && strcmp(r->str, "3") == 0,
              "%s: m = %s, want 3", cust, r->type == REDIS_REPLY_STRING ? r->str : "?");
        freeReplyObject(r);
        /* the sender counter shares the slot (one script call) */
        CHECK(itc_slot(it_skey(PREFIX, 'm', cust, "a@x.example")) ==
                  itc_slot(it_ckey(PREFIX, 'm', cust)),
              "%s: sender counter in another slot", cust);
    }
}

static void test_keyslot(void)
{
    static const char *const keys[] = {"foo",
                                       "{user1000}.following",
                                       "foo{}{bar}",
                                       "foo{{bar}}zap",
                                       "foo{bar}{zap}",
                                       "{",
                                       "}{x}",
                                       "",
                                       "relay:qc:m:{acme}",
                                       "a\xc3\xa4{\xff}"};

    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        CHECK(cluster_keyslot(keys[i], strlen(keys[i])) == itc_slot(keys[i]),
              "slot of \"%s\": %d, CLUSTER KEYSLOT says %d", keys[i],
              cluster_keyslot(keys[i], strlen(keys[i])), itc_slot(keys[i]));
}

static int lookup(struct store *s, const char *login, const char *fallback,
                  const char *domain, struct store_lookup_res *res)
{
    struct store_lookup_req req = {login, fallback, domain};
    char err[STORE_ERR_MAX] = "";
    int rc = store_lookup(s, &req, res, err);

    CHECK(rc == 0, "lookup %s/%s/%s: %s", login, fallback, domain, err);
    return rc;
}

static const char *field(const struct store_lookup_res *res, const char *name)
{
    for (int i = 0; i < res->nfields; i++)
        if (strcmp(res->name[i], name) == 0)
            return res->value[i];
    return NULL;
}

/* The lookup copy is at most 1 s old: wait it out between edits. */
static void settle(void)
{
    it_sleep_ms(1100);
}

static void test_lookup(struct store *s)
{
    struct store_lookup_res res;
    const char *f = NULL;

    itc_cmd_ok(PREFIX "limits:acme", "HSET " PREFIX "limits:acme messages_per_hour 77");
    itc_cmd_ok(PREFIX "limits:beta", "HSET " PREFIX "limits:beta suspended 1");
    itc_cmd_ok(PREFIX "sasl", "HSET " PREFIX "sasl bob@x acme eve@x ip:1.2.3.4");
    itc_cmd_ok(PREFIX "domain:acme.example", "SADD " PREFIX "domain:acme.example acme");
    itc_cmd_ok(PREFIX "domain:mail.acme.example",
               "SADD " PREFIX "domain:mail.acme.example beta");
    itc_cmd_ok(PREFIX "blocked-rcpt-domains",
               "SADD " PREFIX "blocked-rcpt-domains Spamtrap.Example.");

    if (lookup(s, "bob@x", "sasl:bob@x", "www.acme.example", &res) == 0) {
        CHECK(strcmp(res.customer, "acme") == 0, "sasl hash: customer \"%s\"",
              res.customer);
        CHECK((f = field(&res, "messages_per_hour")) && strcmp(f, "77") == 0,
              "acme's limits not read");
        CHECK(strcmp(res.dom_level, "acme.example") == 0 && res.dom_member == 1,
              "www.acme.example: level \"%s\" member %d", res.dom_level, res.dom_member);
        CHECK(!res.garbage && !res.bad_mapping && !res.cached, "flags %d %d %d",
              res.garbage, res.bad_mapping, res.cached);
    }
    CHECK(store_rcpt_blocked(s, "spamtrap.example"), "blocked set not read");
    /* the most specific protected suffix decides: beta's, acme not a member */
    if (lookup(s, "", "acme", "x.mail.acme.example", &res) == 0)
        CHECK(strcmp(res.dom_level, "mail.acme.example") == 0 && res.dom_member == 0,
              "x.mail.acme.example: level \"%s\" member %d", res.dom_level,
              res.dom_member);
    /* a name the hash may not give: a bad mapping, the fallback's limits */
    if (lookup(s, "eve@x", "beta", "", &res) == 0) {
        f = field(&res, "suspended");
        CHECK(res.bad_mapping && f && strcmp(f, "1") == 0, "bad mapping %d, suspended %s",
              res.bad_mapping, f ? f : "-");
    }
    /* the copy answers within the second, and a remap is read after it */
    if (lookup(s, "bob@x", "sasl:bob@x", "www.acme.example", &res) == 0)
        CHECK(res.cached, "second lookup not from the copy");
    itc_cmd_ok(PREFIX "sasl", "HSET " PREFIX "sasl bob@x beta");
    settle();
    if (lookup(s, "bob@x", "sasl:bob@x", "www.acme.example", &res) == 0) {
        CHECK(strcmp(res.customer, "beta") == 0, "remap: customer \"%s\"", res.customer);
        CHECK((f = field(&res, "suspended")) && strcmp(f, "1") == 0 &&
                  field(&res, "messages_per_hour") == NULL,
              "remap: beta's limits not read");
        CHECK(res.dom_member == 0, "remap: beta counted as owner of acme.example");
    }
    /* wrong types are garbage, never a crash or a lifted limit */
    itc_cmd_ok(PREFIX "limits:gamma", "SET " PREFIX "limits:gamma x");
    if (lookup(s, "", "gamma", "", &res) == 0)
        CHECK(res.garbage && res.nfields == 0, "wrong-type limits: garbage %d, %d fields",
              res.garbage, res.nfields);
}

static long long xlen(void)
{
    redisReply *r = itc_cmd(PREFIX "events", "XLEN " PREFIX "events");
    long long n = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;

    freeReplyObject(r);
    return n;
}

static void test_events_and_refunds(struct store *s, const struct rm_config *cfg)
{
    struct store_event ev = {"QID1",        "full", "-",       "a@full.example",
                             "b@d.example", "",     "tempfail"};
    struct quota_req q;
    struct quota_result res;
    char err[STORE_ERR_MAX] = "";

    long long before = xlen();
    for (int i = 0; i < 4; i++) {
        it_quota(&q, cfg, "full", "a@full.example", 1);
        q.event = &ev;
        it_charge(s, &q, &res);
    }
    CHECK(xlen() == before + 1,
          "events after 4 charges under a limit of 3: %lld, want %lld", xlen(),
          before + 1);
    redisReply *r = itc_cmd(PREFIX "events", "XREVRANGE " PREFIX "events + - COUNT 1");
    CHECK(r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
              strstr(r->element[0]->element[1]->element[13]->str, "messages_per_minute"),
          "the event does not name the limit");
    freeReplyObject(r);
    struct store_event mail = {"", "sus",       "-",     "a@sus.example",
                               "", "suspended", "reject"};
    CHECK(store_event(s, &mail, err) == 0 && xlen() == before + 2, "MAIL FROM event: %s",
          err);
    /* a refund goes to the counters' node */
    it_quota(&q, cfg, "refunded", "a@r.example", 1);
    it_charge(s, &q, &res);
    CHECK(store_refund(s, &q, res.charged_ms, err) == 0, "refund: %s", err);
    r = itc_cmd(it_ckey(PREFIX, 'm', "refunded"), "HGET %s m",
                it_ckey(PREFIX, 'm', "refunded"));
    CHECK(r->type == REDIS_REPLY_STRING && strcmp(r->str, "0") == 0,
          "after refund m = %s", r->type == REDIS_REPLY_STRING ? r->str : "?");
    freeReplyObject(r);
}

static void test_metrics(struct store *s)
{
    char buf[16384];
    int p[ITC_MAX_NODES], n = itc_primaries(p, ITC_MAX_NODES);

    CHECK(store_metrics(s, buf, sizeof(buf)) > 0, "no metrics");
    for (int i = 0; i < n; i++) {
        char want[128];
        snprintf(want, sizeof(want),
                 "relaymilter_redis_node_circuit_open{node=\"127.0.0.1:%d\"} 0", p[i]);
        CHECK(strstr(buf, want) != NULL, "metrics lack %s", want);
    }
    CHECK(strstr(buf, "relaymilter_redis_slot_map_refreshes_total{result=\"ok\"} ") !=
              NULL,
          "no refresh count");
}

int main(void)
{
    it_start("it_cluster");
    itc_start();
    itc_flushall();
    struct rm_config *cfg = config("messages_per_minute=3");
    struct store *s = store_redis_new(cfg);

    test_keyslot();
    test_counters_on_their_node(s, cfg);
    test_lookup(s);
    test_events_and_refunds(s, cfg);
    test_metrics(s);
    store_unref(s);
    cfg_free(cfg);
    return it_done();
}
