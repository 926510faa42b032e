/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * itcluster - the test cluster; see itcluster.h.
 */
#include "itcluster.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

static int nnodes;
static int port[ITC_MAX_NODES];
static redisContext *ctx[ITC_MAX_NODES];

void itc_start(void)
{
    char *ports = strdup(it_env("RM_CLUSTER_PORTS"));
    struct timeval tv = {5, 0};

    REQUIRE(ports != NULL, "out of memory");
    for (char *p = strtok(ports, " "); p && nnodes < ITC_MAX_NODES;
         p = strtok(NULL, " ")) {
        port[nnodes] = atoi(p);
        ctx[nnodes] = redisConnectWithTimeout("127.0.0.1", port[nnodes], tv);
        REQUIRE(ctx[nnodes] != NULL && ctx[nnodes]->err == 0, "cannot connect to %d",
                port[nnodes]);
        redisSetTimeout(ctx[nnodes], tv);
        nnodes++;
    }
    free(ports);
}

void itc_redis_group(char *buf, size_t len, const char *prefix, int command_ms, int pool)
{
    size_t off = (size_t)snprintf(buf, len, "redis = { cluster_nodes = [ ");

    for (int i = 0; i < nnodes && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s\"127.0.0.1:%d\"", i ? ", " : "",
                                port[i]);
    if (off < len)
        snprintf(buf + off, len - off,
                 " ];\n  prefix = \"%s\"; connect_timeout_ms = 500;"
                 " command_timeout_ms = %d; pool_size = %d; };\n",
                 prefix, command_ms, pool);
}

redisContext *itc_node(int p)
{
    for (int i = 0; i < nnodes; i++)
        if (port[i] == p)
            return ctx[i];
    REQUIRE(0, "no test connection to port %d", p);
    return NULL;
}

int itc_slot(const char *key)
{
    redisReply *r = redisCommand(ctx[0], "CLUSTER KEYSLOT %s", key);

    REQUIRE(r != NULL && r->type == REDIS_REPLY_INTEGER, "CLUSTER KEYSLOT %s", key);
    int slot = (int)r->integer;
    freeReplyObject(r);
    return slot;
}

/* [[first, last, [host, port, ...], ...], ...] as the first node sees it */
int itc_port_of(int slot)
{
    redisReply *r = redisCommand(ctx[0], "CLUSTER SLOTS");
    int found = 0;

    REQUIRE(r != NULL && r->type == REDIS_REPLY_ARRAY, "CLUSTER SLOTS");
    for (size_t i = 0; i < r->elements && !found; i++) {
        redisReply *e = r->element[i];
        if (e->element[0]->integer <= slot && slot <= e->element[1]->integer)
            found = (int)e->element[2]->element[1]->integer;
    }
    freeReplyObject(r);
    REQUIRE(found, "no primary serves slot %d", slot);
    return found;
}

static redisReply *vcmd(const char *key, const char *fmt, va_list ap)
{
    redisContext *c = itc_node(itc_port_of(itc_slot(key)));
    redisReply *r = redisvCommand(c, fmt, ap);

    REQUIRE(r != NULL, "redis command \"%s\": %s", fmt, c->errstr);
    return r;
}

redisReply *itc_cmd(const char *key, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    redisReply *r = vcmd(key, fmt, ap);
    va_end(ap);
    return r;
}

void itc_cmd_ok(const char *key, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    redisReply *r = vcmd(key, fmt, ap);
    va_end(ap);
    REQUIRE(r->type != REDIS_REPLY_ERROR, "redis command \"%s\": %s", fmt, r->str);
    freeReplyObject(r);
}

int itc_primaries(int *ports, int max)
{
    int n = 0;

    for (int slot = 0; slot < 16384 && n < max; slot += 1024) {
        int p = itc_port_of(slot), seen = 0;
        for (int i = 0; i < n; i++)
            seen |= ports[i] == p;
        if (!seen)
            ports[n++] = p;
    }
    return n;
}

void itc_flushall(void)
{
    int p[ITC_MAX_NODES], n = itc_primaries(p, ITC_MAX_NODES);

    for (int i = 0; i < n; i++) {
        redisReply *r = redisCommand(itc_node(p[i]), "FLUSHALL");
        REQUIRE(r != NULL && r->type != REDIS_REPLY_ERROR, "FLUSHALL on %d", p[i]);
        freeReplyObject(r);
    }
}

void itc_customer_on(int p, const char *tag, char *out, size_t len)
{
    for (int i = 0; i < 100000; i++) {
        snprintf(out, len, "%s-%d", tag, i);
        if (itc_port_of(itc_slot(it_ckey("", 'm', out))) == p)
            return;
    }
    REQUIRE(0, "no customer name lands on %d", p);
}

int itc_counter_port(const char *prefix, const char *customer)
{
    const char *key = it_ckey(prefix, 'm', customer);

    for (int i = 0; i < nnodes; i++) {
        redisReply *r = redisCommand(ctx[i], "EXISTS %s", key);
        int here = r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
        if (r)
            freeReplyObject(r);
        if (here)
            return port[i];
    }
    return 0;
}
