/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * it_script - what relay.lua's strict header (its shebang line and call() /
 * try()) makes of a key the script was not given, on a real server: one
 * primary (under test/lib/with-redis) or a Redis Cluster (under
 * test/lib/with-cluster). The header is the part of policy/relay.lua up to
 * "-- end of the strict header"; each case runs it with a body of its own.
 *   every topology: a key not in KEYS is an error through call() and try(),
 *   never a silent answer; declared keys work;
 *   a cluster: declared keys of two slots are refused (CROSSSLOT) before the
 *   script runs; a raw redis.call on a key of another slot of the same node
 *   is refused because of the shebang (Redis 7 allows it without one; the
 *   case with no shebang shows that).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itcluster.h"
#include "itest.h"

static char header[16384];

static void read_header(void)
{
    char path[1024];

    snprintf(path, sizeof(path), "%s/policy/relay.lua", RM_SOURCE_DIR);
    FILE *f = fopen(path, "r");
    REQUIRE(f != NULL, "cannot open %s", path);
    size_t n = fread(header, 1, sizeof(header) - 1, f);
    fclose(f);
    header[n] = '\0';
    char *end = strstr(header, "-- end of the strict header\n");
    REQUIRE(end != NULL, "relay.lua has no end of the strict header");
    end[strlen("-- end of the strict header\n")] = '\0';
    REQUIRE(strncmp(header, "#!lua\n", 6) == 0, "relay.lua does not start with #!lua");
}

/* EVAL header..body with the keys given, on key0's node (cluster) or the
 * server; the reply's error text, or "" when it is no error. */
static const char *run(redisContext *c, int raw, const char *body, int nkeys,
                       const char *k1, const char *k2)
{
    static char out[512];
    char script[20000];

    snprintf(script, sizeof(script), "%s%s", raw ? "" : header, body);
    const char *argv[] = {"EVAL", script, nkeys == 2 ? "2" : "1", k1, k2};
    redisReply *r = redisCommandArgv(c, 3 + nkeys, argv, NULL);
    REQUIRE(r != NULL, "EVAL: %s", c->errstr);
    snprintf(out, sizeof(out), "%s", r->type == REDIS_REPLY_ERROR ? r->str : "");
    freeReplyObject(r);
    return out;
}

static void every_topology(redisContext *c, const char *k)
{
    const char *e = run(c, 0, "return call('GET', KEYS[1])", 1, k, NULL);
    CHECK(*e == '\0', "a declared key refused: %s", e);
    e = run(c, 0, "return call('GET', 'it-script-undeclared')", 1, k, NULL);
    CHECK(strstr(e, "undeclared key") != NULL, "undeclared key through call(): \"%s\"",
          e);
    e = run(c, 0, "local r = try('HGET', ARGV[1] or 'x', 'f') return r", 1, k, NULL);
    CHECK(strstr(e, "undeclared key") != NULL, "undeclared key through try(): \"%s\"", e);
    /* a key of the same slot is not declared either: refused all the same */
    e = run(c, 0, "return call('GET', KEYS[1] .. 'x')", 1, k, NULL);
    CHECK(strstr(e, "undeclared key") != NULL, "same-slot undeclared key: \"%s\"", e);
}

/* On a cluster: keys of two slots of one node (other: a key on k's node in
 * another slot). */
static void cluster_only(redisContext *c, const char *k, const char *other)
{
    const char *e = run(c, 0, "return 1", 2, k, other);
    CHECK(strncmp(e, "CROSSSLOT", 9) == 0, "declared keys of two slots: \"%s\"", e);
    char body[256];
    snprintf(body, sizeof(body), "return redis.call('GET', '%s')", other);
    e = run(c, 0, body, 1, k, NULL);
    CHECK(strstr(e, "do not hash to the same slot") != NULL,
          "shebang: a raw call to another slot: \"%s\"", e);
    e = run(c, 1, body, 1, k, NULL);
    CHECK(*e == '\0', "without the shebang Redis 7 ran it: \"%s\"", e);
}

int main(void)
{
    char k[64], other[64];

    it_start("it_script");
    read_header();
    if (getenv("RM_CLUSTER_PORTS") == NULL) {
        redisContext *c = it_redis();
        every_topology(c, "it-script-key");
        redisFree(c);
        return it_done();
    }
    itc_start();
    int p[ITC_MAX_NODES];
    itc_primaries(p, ITC_MAX_NODES);
    redisContext *c = itc_node(p[0]);
    /* two keys of different slots that the same primary serves */
    int i = 0;
    do
        snprintf(k, sizeof(k), "it-script-%d", i++);
    while (itc_port_of(itc_slot(k)) != p[0]);
    do
        snprintf(other, sizeof(other), "it-script-%d", i++);
    while (itc_port_of(itc_slot(other)) != p[0] || itc_slot(other) == itc_slot(k));
    every_topology(c, k);
    cluster_only(c, k, other);
    return it_done();
}
