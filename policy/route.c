/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * route - one primary or Redis Cluster routing; see route.h.
 */
#include "route.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster.h"
#include "routemap.h"
#include "store.h"
#include "xalloc.h"

struct route {
    int cluster;
    struct route_node *single; /* one primary: the only node */
    struct routemap map;       /* a cluster */
};

/* ---- calls ------------------------------------------------------------- */

/* A failed call on n: counted, and on a cluster the map is asked for again
 * (the node may have failed over; its replica then serves its slots). */
static void node_failed(struct route *r, struct route_node *n)
{
    atomic_fetch_add(&n->errors, 1);
    if (r->cluster)
        routemap_refresh(&r->map, NULL);
}

static redisReply *node_call(struct route *r, struct route_node *n, int script,
                             int asking, int argc, const char **argv, size_t *lens,
                             char *err)
{
    struct rconn *c = rpool_get(n->pool, err);

    if (c == NULL) {
        node_failed(r, n);
        return NULL;
    }
    redisReply *rep = script == ROUTE_COMMAND
                          ? rpool_command(c, asking, argc, argv, lens)
                          : rpool_script(n->pool, c, script, asking, argc, argv, lens);
    enum rpool_status st = rpool_status_of(c->ctx, rep);
    if (st != RPOOL_OK) {
        rpool_error(c->ctx, rep, err);
        if (rep)
            freeReplyObject(rep);
        rep = NULL;
    }
    rpool_put(n->pool, c, st);
    if (rep == NULL)
        node_failed(r, n);
    return rep;
}

static void sleep_ms(long long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* State of one route_call's redirections. */
struct hops {
    int hops, again;
    long long waited_ms;
    struct route_node *ask_to;
};

/* rep is a redirection or TRYAGAIN: 1 to send the command again (h says
 * where), 0 when rep is the answer, -1 with err when the budget is spent. */
static int redirected(struct route *r, struct route_node *n, const redisReply *rep,
                      struct hops *h, char *err)
{
    struct cluster_redirect rd;

    if (rep->type != REDIS_REPLY_ERROR)
        return 0;
    if (cluster_parse_redirect(rep->str, rep->len, &rd)) {
        atomic_fetch_add(rd.ask ? &n->ask : &n->moved, 1);
        struct route_node *to = routemap_redirected(&r->map, n, &rd);
        if (++h->hops > ROUTE_MAX_HOPS || to == NULL) {
            snprintf(err, STORE_ERR_MAX, "redis cluster: %.*s (redirections exhausted)",
                     (int)(rep->len > 80 ? 80 : rep->len), rep->str);
            return -1;
        }
        if (rd.ask)
            h->ask_to = to;
        else
            routemap_refresh(&r->map, to);
        return 1;
    }
    if (!cluster_is_error(rep->str, rep->len, "TRYAGAIN"))
        return 0;
    atomic_fetch_add(&n->tryagain, 1);
    long long left = r->map.tmpl.command_timeout_ms - h->waited_ms;
    long long wait = 1LL << h->again;
    if (++h->again > ROUTE_TRYAGAIN_MAX || left <= 0) {
        snprintf(err, STORE_ERR_MAX, "redis cluster: TRYAGAIN (slot still migrating)");
        return -1;
    }
    wait = wait < left ? wait : left;
    sleep_ms(wait);
    h->waited_ms += wait;
    return 1;
}

redisReply *route_call(struct route *r, int slot, int script, int argc, const char **argv,
                       size_t *lens, char *err)
{
    struct hops h = {0, 0, 0, NULL};

    if (!r->cluster)
        return node_call(r, r->single, script, 0, argc, argv, lens, err);
    for (;;) {
        struct route_node *n = h.ask_to ? h.ask_to : routemap_node(&r->map, slot, err);
        int asking = h.ask_to != NULL;
        if (n == NULL)
            return NULL;
        h.ask_to = NULL;
        redisReply *rep = node_call(r, n, script, asking, argc, argv, lens, err);
        int again = rep ? redirected(r, n, rep, &h, err) : -1;
        if (again == 0)
            return rep;
        if (rep)
            freeReplyObject(rep);
        if (again < 0)
            return NULL;
    }
}

int route_is_cluster(const struct route *r)
{
    return r->cluster;
}

/* ---- batches ----------------------------------------------------------- */

/* One node's share of a batch: its commands, sent together. */
struct share {
    struct route_node *node;
    struct rconn *c;
    enum rpool_status st;
};

static void share_send(struct share *sh, struct route_cmd *cmds, size_t n)
{
    redisContext *ctx = sh->c->ctx;
    int done = 0;

    for (size_t i = 0; i < n; i++)
        if (cmds[i].node == sh->node &&
            redisAppendCommandArgv(ctx, cmds[i].argc, cmds[i].argv, cmds[i].lens) !=
                REDIS_OK)
            sh->st = RPOOL_BROKEN;
    /* Write now, read later: every node works on its share meanwhile. */
    while (sh->st == RPOOL_OK && !done)
        if (redisBufferWrite(ctx, &done) != REDIS_OK)
            sh->st = RPOOL_BROKEN;
}

static void share_read(struct share *sh, struct route_cmd *cmds, size_t n, char *err)
{
    for (size_t i = 0; i < n; i++) {
        if (cmds[i].node != sh->node)
            continue;
        void *rep = NULL;
        if (sh->st == RPOOL_OK && redisGetReply(sh->c->ctx, &rep) != REDIS_OK)
            rep = NULL;
        enum rpool_status st = rpool_status_of(sh->c->ctx, rep);
        if (st != RPOOL_OK) {
            if (sh->st == RPOOL_OK || st == RPOOL_BROKEN)
                rpool_error(sh->c->ctx, rep, err);
            if (sh->st != RPOOL_BROKEN)
                sh->st = st;
            if (rep)
                freeReplyObject(rep);
            rep = NULL;
        }
        cmds[i].reply = rep;
    }
}

/* The commands whose node is known get one round trip per node; the replies
 * that are redirections are sent again on their own. */
static void batch_nodes(struct route *r, struct route_cmd *cmds, size_t n, char *err)
{
    struct share *sh = xcalloc(n, sizeof(*sh));
    size_t ns = 0;

    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        while (k < ns && sh[k].node != cmds[i].node)
            k++;
        if (cmds[i].node != NULL && k == ns)
            sh[ns++].node = cmds[i].node;
    }
    for (size_t k = 0; k < ns; k++) {
        if ((sh[k].c = rpool_get(sh[k].node->pool, err)) == NULL)
            node_failed(r, sh[k].node);
        else
            share_send(&sh[k], cmds, n);
    }
    for (size_t k = 0; k < ns; k++) {
        if (sh[k].c == NULL)
            continue;
        share_read(&sh[k], cmds, n, err);
        rpool_put(sh[k].node->pool, sh[k].c, sh[k].st);
        if (sh[k].st != RPOOL_OK)
            node_failed(r, sh[k].node);
    }
    free(sh);
}

size_t route_batch(struct route *r, struct route_cmd *cmds, size_t n, char *err)
{
    size_t missing = 0;

    for (size_t i = 0; i < n; i++) {
        cmds[i].reply = NULL;
        cmds[i].slot = cluster_keyslot(cmds[i].argv[1], cmds[i].lens[1]);
        cmds[i].node = r->cluster ? routemap_node(&r->map, cmds[i].slot, err) : r->single;
    }
    batch_nodes(r, cmds, n, err);
    for (size_t i = 0; i < n; i++) {
        redisReply *rep = cmds[i].reply;
        struct cluster_redirect rd;
        if (rep != NULL && rep->type == REDIS_REPLY_ERROR &&
            (cluster_parse_redirect(rep->str, rep->len, &rd) ||
             cluster_is_error(rep->str, rep->len, "TRYAGAIN"))) {
            freeReplyObject(rep);
            cmds[i].reply = route_call(r, cmds[i].slot, ROUTE_COMMAND, cmds[i].argc,
                                       cmds[i].argv, cmds[i].lens, err);
        }
        missing += cmds[i].reply == NULL;
    }
    return missing;
}

/* ---- state --------------------------------------------------------------- */

int route_slot_circuit_open(struct route *r, int slot)
{
    struct route_node *n = r->cluster ? routemap_peek(&r->map, slot) : r->single;

    return n != NULL && rpool_circuit_open(n->pool);
}

int route_circuit_open(struct route *r)
{
    return r->cluster ? routemap_any_open(&r->map) : rpool_circuit_open(r->single->pool);
}

size_t route_metrics(struct route *r, char *buf, size_t len)
{
    return r->cluster ? routemap_metrics(&r->map, buf, len) : 0;
}

struct route *route_new(const struct rm_config *cfg)
{
    struct route *r = xcalloc(1, sizeof(*r));

    r->cluster = cfg->cluster_nodes.n > 0;
    if (r->cluster) {
        routemap_init(&r->map, cfg);
    } else {
        r->single = xcalloc(1, sizeof(*r->single));
        r->single->pool = rpool_new(cfg);
    }
    return r;
}

void route_free(struct route *r)
{
    if (r->cluster) {
        routemap_free(&r->map);
    } else {
        rpool_free(r->single->pool);
        free(r->single);
    }
    free(r);
}

int route_matches(const struct route *r, const struct rm_config *cfg)
{
    if (r->cluster)
        return routemap_same(&r->map, cfg);
    return cfg->cluster_nodes.n == 0 && rpool_matches(r->single->pool, cfg);
}
