/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * it_override - support staff edit limits live with redis-cli: the lookup
 * returns the fields of PREFIX limits:CUSTOMER and the policy engine applies
 * them to the very next message; a malformed value is ignored (the config
 * value applies); PREFIX sasl maps a login to a customer. The store keeps
 * what a lookup said for at most LOOKCACHE_MAX_AGE_MS (lookcache.h): many messages
 * of one customer within that time cost one lookup, and an edit is in force
 * once that time has passed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "itest.h"
#include "lookcache.h"
#include "policy.h"
#include "snapshot.h"
#include "store_redis.h"

static void cli(const char *a, const char *b, const char *c, const char *d)
{
    char out[256];
    int rc = it_redis_cli(out, sizeof(out), a, b, c, d, (const char *)NULL);

    REQUIRE(rc == 0, "redis-cli %s %s %s %s: exit %d (%s)", a, b, c ? c : "", d ? d : "",
            rc, out);
    /* a staff edit is in force once the store's recent copy has aged out */
    usleep((LOOKCACHE_MAX_AGE_MS + 100) * 1000);
}

static void lookup(struct store *s, const char *login, const char *fallback,
                   struct store_lookup_res *res)
{
    char err[STORE_ERR_MAX] = "";
    struct store_lookup_req req = {login, fallback, ""};

    REQUIRE(store_lookup(s, &req, res, err) == 0, "lookup %s/%s: %s", login, fallback,
            err);
}

static const char *field(const struct store_lookup_res *res, const char *name)
{
    for (int i = 0; i < res->nfields; i++)
        if (strcmp(res->name[i], name) == 0)
            return res->value[i];
    return NULL;
}

/* One message through the engine: MAIL (login), one RCPT, DATA, end. The
 * DATA reply lands in rep. */
static void send_one(const char *login, struct pol_reply *rep)
{
    struct pol_conn *c = pol_conn_new(NULL);
    char sender[128];

    snprintf(sender, sizeof(sender), "<someone@%s.example>", login);
    pol_mail(c, snap_acquire(), sender, login, rep);
    REQUIRE(rep->verdict == POL_CONTINUE, "MAIL for %s refused: %s", login, rep->text);
    pol_rcpt(c, "<rcpt@dest.example>", rep);
    REQUIRE(rep->verdict == POL_CONTINUE, "RCPT for %s refused: %s", login, rep->text);
    pol_data(c, "QIDO", rep);
    if (rep->verdict == POL_CONTINUE)
        pol_eom(c, "QIDO");
    pol_conn_free(c);
}

/* Sends until the first refusal (at most max + 1); returns how many passed. */
static int admitted_before_refusal(const char *login, int max, struct pol_reply *rep)
{
    for (int i = 0; i <= max; i++) {
        send_one(login, rep);
        if (rep->verdict != POL_CONTINUE)
            return i;
    }
    return max + 1;
}

static void expect_refusal(const struct pol_reply *rep, const char *what)
{
    CHECK(rep->verdict == POL_TEMPFAIL && strcmp(rep->rcode, "451") == 0 &&
              strcmp(rep->xcode, "4.7.1") == 0,
          "expected 451 4.7.1, got %s %s %s", rep->rcode, rep->xcode, rep->text);
    CHECK(strstr(rep->text, what) != NULL, "reply \"%s\" does not name \"%s\"", rep->text,
          what);
}

static void test_override(struct store *s)
{
    struct store_lookup_res res;
    struct pol_reply rep;

    cli("HSET", "relay:limits:cust1", "messages_per_minute", "1");
    lookup(s, "", "cust1", &res);
    CHECK(res.nfields == 1 && !res.garbage, "lookup: %d fields, garbage %d", res.nfields,
          res.garbage);
    const char *v = field(&res, "messages_per_minute");
    CHECK(v && strcmp(v, "1") == 0, "lookup: messages_per_minute = %s", v ? v : "(none)");
    int n = admitted_before_refusal("cust1", 5, &rep);
    CHECK(n == 1, "override messages_per_minute 1: %d admitted", n);
    expect_refusal(&rep, "messages_per_minute 1 for cust1");

    /* a change applies to the next message: lift it, then lower it again */
    cli("HSET", "relay:limits:cust1", "messages_per_minute", "3");
    n = admitted_before_refusal("cust1", 5, &rep);
    CHECK(n == 2, "override raised to 3 with 1 used: %d admitted", n);
    expect_refusal(&rep, "messages_per_minute 3 for cust1");
    cli("HDEL", "relay:limits:cust1", "messages_per_minute", NULL);
    n = admitted_before_refusal("cust1", 5, &rep);
    CHECK(n == 2, "override removed, config 5 with 3 used: %d admitted", n);
    expect_refusal(&rep, "messages_per_minute 5 for cust1");
}

static void test_malformed(struct store *s)
{
    struct store_lookup_res res;
    struct pol_reply rep;

    cli("HSET", "relay:limits:cust2", "messages_per_minute", "abc");
    lookup(s, "", "cust2", &res);
    const char *v = field(&res, "messages_per_minute");
    CHECK(v && strcmp(v, "abc") == 0, "lookup: messages_per_minute = %s",
          v ? v : "(none)");
    int n = admitted_before_refusal("cust2", 8, &rep);
    CHECK(n == 5, "malformed override: %d admitted, config says 5", n);
    expect_refusal(&rep, "messages_per_minute 5 for cust2");

    /* "-5", "1e3" and " 2" are no numbers either; "-1" would lift the limit */
    cli("HSET", "relay:limits:cust3", "messages_per_minute", "-5");
    cli("HSET", "relay:limits:cust3", "recipients_per_minute", "1e3");
    cli("HSET", "relay:limits:cust3", "sender_messages_per_minute", " 2");
    n = admitted_before_refusal("cust3", 8, &rep);
    CHECK(n == 5, "malformed overrides: %d admitted, config says 5", n);
}

static void test_sasl_map(struct store *s)
{
    struct store_lookup_res res;
    struct pol_reply rep;

    cli("HSET", "relay:sasl", "bob-login", "acme2");
    cli("HSET", "relay:limits:acme2", "messages_per_minute", "2");
    lookup(s, "bob-login", "bob-login", &res);
    CHECK(strcmp(res.customer, "acme2") == 0, "sasl hash: customer \"%s\"", res.customer);
    const char *v = field(&res, "messages_per_minute");
    CHECK(v && strcmp(v, "2") == 0, "limits of the mapped customer not returned (%s)",
          v ? v : "(none)");
    lookup(s, "nobody", "nobody", &res);
    CHECK(res.customer[0] == '\0' && res.nfields == 0,
          "unmapped login: customer \"%s\", %d fields", res.customer, res.nfields);

    int n = admitted_before_refusal("bob-login", 5, &rep);
    CHECK(n == 2, "mapped login: %d admitted, acme2's override says 2", n);
    expect_refusal(&rep, "messages_per_minute 2 for acme2");
    redisContext *rc = it_redis();
    CHECK_HGET(rc, it_ckey("relay:", 'm', "acme2"), "m", 2);
    redisReply *r = it_cmd(rc, "EXISTS %s %s", it_ckey("relay:", 'm', "sasl:bob-login"),
                           it_ckey("relay:", 'm', "bob-login"));
    CHECK(r->type == REDIS_REPLY_INTEGER && r->integer == 0,
          "the login itself was charged as a customer");
    freeReplyObject(r);
    redisFree(rc);

    /* the Redis hash outranks the config's sasl list */
    cli("HSET", "relay:sasl", "cfg-login", "acme2");
    send_one("cfg-login", &rep);
    expect_refusal(&rep, "for acme2");
}

/* A hash entry that names a reserved or malformed customer name is ignored:
 * the login keeps its own identity and the fallback's limits. */
static void test_bad_mapping(struct store *s)
{
    const char *bad[] = {"ip:192.0.2.1", "sasl:other", "br{ace}", "ip:"};
    struct store_lookup_res res;

    cli("HSET", "relay:limits:sasl:mallory", "messages_per_minute", "4");
    cli("HSET", "relay:limits:ip:192.0.2.1", "messages_per_minute", "999");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cli("HSET", "relay:sasl", "mallory", bad[i]);
        lookup(s, "mallory", "sasl:mallory", &res);
        CHECK(res.bad_mapping && strcmp(res.customer, bad[i]) == 0,
              "hash names %s: bad_mapping %d, customer \"%s\"", bad[i], res.bad_mapping,
              res.customer);
        const char *v = field(&res, "messages_per_minute");
        CHECK(v && strcmp(v, "4") == 0, "hash names %s: the fallback's limits (%s)",
              bad[i], v ? v : "(none)");
    }
    cli("HDEL", "relay:sasl", "mallory", NULL);
}

/* calls of a command since the server started (INFO commandstats) */
static long long calls_of(redisContext *rc, const char *cmd)
{
    char needle[64];
    long long n = 0;
    redisReply *r = it_cmd(rc, "INFO commandstats");

    snprintf(needle, sizeof(needle), "cmdstat_%s:calls=", cmd);
    const char *p = r->type == REDIS_REPLY_STRING ? strstr(r->str, needle) : NULL;
    if (p != NULL)
        n = strtoll(p + strlen(needle), NULL, 10);
    freeReplyObject(r);
    return n;
}

/* Ten messages of one customer within a second: ten charges at DATA, but
 * the lookup at MAIL FROM goes to Redis once; each message is still counted. */
static void test_recent_copy(void)
{
    struct pol_reply rep;
    redisContext *rc = it_redis();
    const char *cmds[] = {"evalsha", "eval"};
    long long before = 0, after = 0;

    cli("HSET", "relay:limits:copy-login", "messages_per_minute", "100");
    send_one("copy-login", &rep); /* fills the copy */
    for (int i = 0; i < 2; i++)
        before += calls_of(rc, cmds[i]);
    for (int i = 0; i < 10; i++)
        send_one("copy-login", &rep);
    for (int i = 0; i < 2; i++)
        after += calls_of(rc, cmds[i]);
    /* 10 charges, plus a lookup when the copy (or the blocked-domain copy,
     * refreshed in the lookup's round trip) aged out meanwhile */
    CHECK(after - before >= 10 && after - before <= 12,
          "10 messages cost %lld script calls, expected 10 charges and at most 2 lookups",
          after - before);
    CHECK_HGET(rc, it_ckey("relay:", 'm', "copy-login"), "m", 11);
    redisFree(rc);
}

int main(void)
{
    char redis[512], limits[1024];

    it_start("it_override");
    redisContext *rc = it_redis();
    it_redis_group(redis, sizeof(redis), "relay:", 1000, 2);
    it_limits_group(limits, sizeof(limits), "messages_per_minute=5");
    /* Logins that stand for customers of the same name are mapped by the
     * config: an unmapped login would be the customer "sasl:LOGIN". */
    struct rm_config *cfg =
        it_config("%s%scustomers = ( { name = \"cfgcust\"; sasl = [ \"cfg-login\" ]; },\n"
                  "  { name = \"cust1\"; sasl = [ \"cust1\" ]; },\n"
                  "  { name = \"cust2\"; sasl = [ \"cust2\" ]; },\n"
                  "  { name = \"cust3\"; sasl = [ \"cust3\" ]; },\n"
                  "  { name = \"copy-login\"; sasl = [ \"copy-login\" ]; } );\n",
                  redis, limits);
    struct store *s = store_redis_new(cfg);

    snap_publish(snap_new(cfg, store_ref(s)));
    it_avoid_boundary(rc, 60000, 30000); /* the edits wait out the copy: ~12 s */
    test_override(s);
    test_malformed(s);
    test_sasl_map(s);
    test_bad_mapping(s);
    test_recent_copy();
    snap_shutdown();
    store_unref(s);
    redisFree(rc);
    return it_done();
}
