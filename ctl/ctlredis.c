/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ctlredis - relaymilter-ctl's Redis calls; see ctlredis.h.
 */
#include "ctlredis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "ctlout.h"
#include "log.h"
#include "route.h"
#include "store.h"
#include "xalloc.h"

/* The longest command: HSET KEY and a pair for each limit field (34). */
enum { CTLREDIS_ARGV_MAX = 64, CTLREDIS_SCAN_COUNT = 1000 };

struct ctlredis {
    struct route *route;
    int failed; /* Redis could not be reached, and that was said */
    char where[512];
};

struct ctlredis *ctlredis_new(const struct rm_config *cfg)
{
    struct ctlredis *r = xcalloc(1, sizeof(*r));

    r->route = route_new(cfg);
    ctlredis_describe(cfg, r->where, sizeof(r->where));
    return r;
}

void ctlredis_free(struct ctlredis *r)
{
    if (r == NULL)
        return;
    route_free(r->route);
    free(r);
}

/* "what (a, b, ...)" for a list of addresses */
static void describe_list(char *buf, size_t len, const char *what,
                          const struct cfg_strlist *l)
{
    size_t n;

    snprintf(buf, len, "%s", what);
    for (size_t i = 0; i < l->n && (n = strlen(buf)) < len; i++)
        snprintf(buf + n, len - n, "%s %s", i ? "," : "", l->v[i]);
    if ((n = strlen(buf)) < len)
        snprintf(buf + n, len - n, ")");
}

void ctlredis_describe(const struct rm_config *cfg, char *buf, size_t len)
{
    if (cfg->cluster_nodes.n > 0) {
        describe_list(buf, len, "Redis Cluster (seeds", &cfg->cluster_nodes);
        return;
    }
    if (cfg->sentinels.n == 0 && cfg->redis_unix != NULL) {
        snprintf(buf, len, "unix socket %s", cfg->redis_unix);
        return;
    }
    if (cfg->sentinels.n == 0) {
        int v6 = strchr(cfg->redis_host, ':') != NULL;
        snprintf(buf, len, "%s%s%s:%d", v6 ? "[" : "", cfg->redis_host, v6 ? "]" : "",
                 cfg->redis_port);
        return;
    }
    char what[300];
    snprintf(what, sizeof(what), "master %s (sentinels", cfg->redis_master);
    describe_list(buf, len, what, &cfg->sentinels);
}

/* The reply if it is one the caller can use, else NULL after saying why:
 * Redis out of reach is said once, an error reply each time. */
static redisReply *checked(struct ctlredis *r, const char *key, redisReply *reply,
                           const char *err)
{
    char why[STORE_ERR_MAX];

    if (reply != NULL && reply->type != REDIS_REPLY_ERROR)
        return reply;
    if (reply == NULL) {
        if (!r->failed)
            ctlout_err("cannot use Redis at %s: %s", r->where, err);
        r->failed = 1;
        return NULL;
    }
    rpool_reply_error(reply, why);
    if (key != NULL)
        ctlout_err("%s: %s", ctlout_shown(key), why);
    else
        ctlout_err("%s", why);
    freeReplyObject(reply);
    return NULL;
}

/* The slot a command goes to: its key's (route.h: on a Redis Cluster the
 * node serving it; on one server the only one). */
static int slot_of(const char *key)
{
    return key != NULL ? cluster_keyslot(key, strlen(key)) : 0;
}

static redisReply *call(struct ctlredis *r, const char *key, const char *route_key,
                        int script, int argc, const char **argv, size_t *lens)
{
    char err[STORE_ERR_MAX] = "";

    if (r->failed)
        return NULL;
    redisReply *reply =
        route_call(r->route, slot_of(route_key), script, argc, argv, lens, err);
    return checked(r, key, reply, err);
}

redisReply *ctlredis_cmd(struct ctlredis *r, const char *key, int argc, const char **argv,
                         const size_t *lens)
{
    size_t copy[CTLREDIS_ARGV_MAX];

    if (argc > CTLREDIS_ARGV_MAX)
        msg_panic("ctlredis_cmd: %d arguments", argc);
    memcpy(copy, lens, (size_t)argc * sizeof(*lens));
    return call(r, key, key, ROUTE_COMMAND, argc, argv, copy);
}

redisReply *ctlredis_cmdv(struct ctlredis *r, const char *key, int argc,
                          const char **argv)
{
    size_t lens[CTLREDIS_ARGV_MAX];

    if (argc > CTLREDIS_ARGV_MAX)
        msg_panic("ctlredis_cmdv: %d arguments", argc);
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    return ctlredis_cmd(r, key, argc, argv, lens);
}

redisReply *ctlredis_script(struct ctlredis *r, const char *key, int argc,
                            const char **argv, size_t *lens)
{
    return call(r, key, key, RPOOL_RELAY, argc, argv, lens);
}

/* One SCAN / HSCAN page: the next cursor into cursor, the items returned. */
static const redisReply *scan_page(const redisReply *rep, char *cursor, size_t len)
{
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_STRING || rep->element[0]->len >= len ||
        rep->element[1]->type != REDIS_REPLY_ARRAY)
        return NULL;
    memcpy(cursor, rep->element[0]->str, rep->element[0]->len);
    cursor[rep->element[0]->len] = '\0';
    return rep->element[1];
}

int ctlredis_scan(struct ctlredis *r, const char *hash, const char *pattern,
                  const char *near, ctlredis_page_fn *fn, void *arg)
{
    char cursor[32] = "0", count[16];
    int stop = 0;

    snprintf(count, sizeof(count), "%d", CTLREDIS_SCAN_COUNT);
    do {
        const char *argv[7];
        int n = 0;
        if (hash != NULL) {
            argv[n++] = "HSCAN";
            argv[n++] = hash;
        } else {
            argv[n++] = "SCAN";
        }
        argv[n++] = cursor;
        argv[n++] = "MATCH";
        argv[n++] = pattern;
        argv[n++] = "COUNT";
        argv[n++] = count;
        size_t lens[7];
        for (int i = 0; i < n; i++)
            lens[i] = strlen(argv[i]);
        /* HSCAN goes where its hash is; SCAN lists the keys of one node,
         * the one that holds near (and so every key the pattern means). */
        redisReply *rep = call(r, hash, hash ? hash : near, ROUTE_COMMAND, n, argv, lens);
        if (rep == NULL)
            return -1;
        const redisReply *items = scan_page(rep, cursor, sizeof(cursor));
        if (items == NULL) {
            ctlout_err("redis: unexpected reply to %s", argv[0]);
            freeReplyObject(rep);
            return -1;
        }
        stop = fn(arg, items);
        freeReplyObject(rep);
    } while (!stop && strcmp(cursor, "0") != 0);
    return 0;
}
