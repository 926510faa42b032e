/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * it_cluster_threads - one store, many threads, a Redis Cluster whose slot
 * map changes under them (test/lib/with-cluster):
 *   8 threads charge 6 customers, two on each primary, until each is
 *   refused, while the main thread moves one customer's slot to another
 *   primary (MIGRATE of its counters, then SETSLOT NODE on every primary),
 *   so threads meet MOVED and ASK and read the slot map while others use it.
 *   Every customer is admitted exactly its limit, counted on the node that
 *   serves it at the end. scripts/sanitize.sh runs this under
 *   ThreadSanitizer as well.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itcluster.h"
#include "itest.h"
#include "store_redis.h"

#define PREFIX "th:"
#define SENDER "a@th.example"

enum { NTHREADS = 8, NCUST = 6, LIMIT = 60 };

static struct store *store;
static struct rm_config *cfg;
static char cust[NCUST][64];
static atomic_int admitted[NCUST], refused[NCUST], slot_moved;

static void *charger(void *arg)
{
    int first = (int)(size_t)arg;

    /* until every customer was refused and the slot has moved: the
     * threads are still at work while it moves */
    for (int round = 0; round < 1000 * LIMIT; round++) {
        int c = (first + round) % NCUST, done = atomic_load(&slot_moved);
        struct quota_req q;
        struct quota_result res;
        char err[STORE_ERR_MAX] = "";
        for (int k = 0; k < NCUST; k++)
            done &= atomic_load(&refused[k]) > 0;
        if (done)
            break;
        it_quota(&q, cfg, cust[c], SENDER, 1);
        if (!CHECK(store_charge(store, &q, &res, err) == 0, "%s: %s", cust[c], err))
            continue;
        atomic_fetch_add(res.admitted ? &admitted[c] : &refused[c], 1);
    }
    return NULL;
}

static void ok(redisReply *r, const char *what)
{
    REQUIRE(r != NULL && r->type != REDIS_REPLY_ERROR, "%s: %s", what,
            r && r->type == REDIS_REPLY_ERROR ? r->str : "no reply");
    freeReplyObject(r);
}

static void node_id(int port, char *out, size_t len)
{
    redisReply *r = redisCommand(itc_node(port), "CLUSTER MYID");

    REQUIRE(r != NULL && r->type == REDIS_REPLY_STRING, "CLUSTER MYID");
    snprintf(out, len, "%s", r->str);
    freeReplyObject(r);
}

/* cust[0]'s slot from its primary to another, the way redis-cli reshard
 * moves a slot (Redis Cluster specification, "Live reconfiguration"). */
static void move_slot(const int *p, int np)
{
    char slot[16], port[16], src_id[64], dst_id[64];
    int src = itc_port_of(itc_slot(it_ckey(PREFIX, 'h', cust[0])));
    int dst = p[0] == src ? p[1] : p[0];

    snprintf(slot, sizeof(slot), "%d", itc_slot(it_ckey(PREFIX, 'h', cust[0])));
    snprintf(port, sizeof(port), "%d", dst);
    node_id(src, src_id, sizeof(src_id));
    node_id(dst, dst_id, sizeof(dst_id));
    ok(redisCommand(itc_node(dst), "CLUSTER SETSLOT %s IMPORTING %s", slot, src_id),
       "IMPORTING");
    ok(redisCommand(itc_node(src), "CLUSTER SETSLOT %s MIGRATING %s", slot, dst_id),
       "MIGRATING");
    redisReply *keys = redisCommand(itc_node(src), "CLUSTER GETKEYSINSLOT %s 100", slot);
    REQUIRE(keys != NULL && keys->type == REDIS_REPLY_ARRAY, "GETKEYSINSLOT");
    for (size_t i = 0; i < keys->elements; i++)
        ok(redisCommand(itc_node(src), "MIGRATE 127.0.0.1 %s %s 0 5000", port,
                        keys->element[i]->str),
           "MIGRATE");
    freeReplyObject(keys);
    for (int i = 0; i < np; i++)
        ok(redisCommand(itc_node(p[i]), "CLUSTER SETSLOT %s NODE %s", slot, dst_id),
           "SETSLOT NODE");
}

/* MOVED and ASK answers the store met, from its metrics. */
static long redirections(void)
{
    static char buf[65536];
    const char *name = "relaymilter_redis_node_redirects_total{";
    long n = 0;

    store_metrics(store, buf, sizeof(buf));
    for (const char *at = strstr(buf, name); at; at = strstr(at + 1, name))
        n += atol(strchr(at, '}') + 2);
    return n;
}

int main(void)
{
    char redis[1024], lim[4096];
    pthread_t t[NTHREADS];
    int p[ITC_MAX_NODES];

    it_start("it_cluster_threads");
    itc_start();
    itc_flushall();
    int np = itc_primaries(p, ITC_MAX_NODES);
    REQUIRE(np >= 2, "two primaries needed");
    for (int c = 0; c < NCUST; c++)
        itc_customer_on(p[c % np], c < np ? "tha" : "thb", cust[c], sizeof(cust[c]));
    itc_redis_group(redis, sizeof(redis), PREFIX, 1000, 4);
    it_limits_group(lim, sizeof(lim), "messages_per_hour=60");
    cfg = it_config("%s%s", redis, lim);
    it_avoid_boundary(itc_node(p[0]), 3600000, 60000);
    store = store_redis_new(cfg);
    for (int i = 0; i < NTHREADS; i++)
        REQUIRE(pthread_create(&t[i], NULL, charger, (void *)(size_t)i) == 0, "thread");
    it_sleep_ms(20);
    move_slot(p, np);
    atomic_store(&slot_moved, 1);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(t[i], NULL);
    for (int c = 0; c < NCUST; c++) {
        CHECK(admitted[c] == LIMIT, "%s: %d admitted, limit %d", cust[c], admitted[c],
              LIMIT);
        redisReply *r = itc_cmd(it_ckey(PREFIX, 'h', cust[c]), "HGET %s m",
                                it_ckey(PREFIX, 'h', cust[c]));
        CHECK(r->type == REDIS_REPLY_STRING && atoi(r->str) == LIMIT,
              "%s: counter %s, limit %d", cust[c],
              r->type == REDIS_REPLY_STRING ? r->str : "?", LIMIT);
        freeReplyObject(r);
    }
    CHECK(redirections() > 0, "the threads met no MOVED or ASK");
    store_unref(store);
    cfg_free(cfg);
    return it_done();
}
