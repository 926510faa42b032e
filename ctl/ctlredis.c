/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ctlredis - relaymilter-ctl's Redis calls; see ctlredis.h.
 */
#include "ctlredis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctlout.h"
#include "log.h"
#include "rpool.h"
#include "store.h"
#include "xalloc.h"

enum { CTLREDIS_ARGV_MAX = 32, CTLREDIS_SCAN_COUNT = 1000 };

struct ctlredis {
    struct rpool *pool;
    struct rconn *conn;
    int failed; /* the connection could not be opened, and that was said */
    char where[512];
};

struct ctlredis *ctlredis_new(const struct rm_config *cfg)
{
    struct ctlredis *r = xcalloc(1, sizeof(*r));

    r->pool = rpool_new(cfg);
    ctlredis_describe(cfg, r->where, sizeof(r->where));
    return r;
}

void ctlredis_free(struct ctlredis *r)
{
    if (r == NULL)
        return;
    if (r->conn != NULL)
        rpool_put(r->pool, r->conn, r->conn->ctx->err ? RPOOL_BROKEN : RPOOL_OK);
    rpool_free(r->pool);
    free(r);
}

void ctlredis_describe(const struct rm_config *cfg, char *buf, size_t len)
{
    size_t n;

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
    snprintf(buf, len, "master %s (sentinels", cfg->redis_master);
    for (size_t i = 0; i < cfg->sentinels.n && (n = strlen(buf)) < len; i++)
        snprintf(buf + n, len - n, "%s %s", i ? "," : "", cfg->sentinels.v[i]);
    if ((n = strlen(buf)) < len)
        snprintf(buf + n, len - n, ")");
}

/* The connection, opened on first use; NULL (said once) when it cannot be. */
static struct rconn *conn(struct ctlredis *r)
{
    char err[STORE_ERR_MAX];

    if (r->conn == NULL && !r->failed) {
        r->conn = rpool_get(r->pool, err);
        if (r->conn == NULL) {
            r->failed = 1;
            ctlout_err("cannot use Redis at %s: %s", r->where, err);
        }
    }
    return r->conn;
}

/* The reply if it is one the caller can use, else NULL after saying why. */
static redisReply *checked(struct ctlredis *r, const char *key, redisReply *reply)
{
    char err[STORE_ERR_MAX];

    if (reply != NULL && reply->type != REDIS_REPLY_ERROR)
        return reply;
    rpool_error(r->conn->ctx, reply, err);
    if (key != NULL)
        ctlout_err("%s: %s", ctlout_shown(key), err);
    else
        ctlout_err("%s", err);
    if (reply != NULL)
        freeReplyObject(reply);
    return NULL;
}

/* key names the key a command is about: one connection serves every key
 * here, a client of a Redis Cluster would pick the node by it. */
redisReply *ctlredis_cmd(struct ctlredis *r, const char *key, int argc, const char **argv,
                         const size_t *lens)
{
    if (conn(r) == NULL)
        return NULL;
    return checked(r, key, redisCommandArgv(r->conn->ctx, argc, argv, lens));
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
    if (conn(r) == NULL)
        return NULL;
    return checked(r, key, rpool_script(r->pool, r->conn, argc, argv, lens));
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
                  ctlredis_page_fn *fn, void *arg)
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
        redisReply *rep = ctlredis_cmdv(r, hash, n, argv);
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
