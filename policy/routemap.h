/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * routemap - a Redis Cluster as the client sees it: its nodes (one
 * connection pool, so one circuit breaker, each) and which node serves which
 * slot. Part of route.h, which sends the commands; not used elsewhere.
 *
 * Interface:
 *   routemap_init(m, cfg) / routemap_free(m)
 *       the seeds of redis.cluster_nodes become the first nodes
 *   routemap_same(m, cfg)            same seeds and connection settings
 *   routemap_node(m, slot, err)      the node serving slot; without a map yet
 *                                    the map is read first (waiting for it),
 *                                    and an unserved slot asks for it again.
 *                                    NULL with err when none is known
 *   routemap_peek(m, slot)           the node the map names now, or NULL
 *   routemap_refresh(m, prefer)      read the map again (prefer: a node to ask
 *                                    first, or NULL); at most one thread at a
 *                                    time and every ROUTE_REFRESH_MIN_MS, so
 *                                    any caller may ask whenever in doubt
 *   routemap_redirected(m, from, rd) the node a MOVED or ASK names (added when
 *                                    new); a MOVED also points its slot there
 *                                    at once. NULL for an unknown endpoint
 *   routemap_any_open(m)             1 while the circuit of some node that
 *                                    serves slots is open
 *   routemap_metrics(m, buf, len)    per-node counters, Prometheus text
 *
 * The map is read with CLUSTER SLOTS (cluster.h parses it). Nodes are never
 * removed before routemap_free, so a node pointer stays valid; there are at
 * most ROUTE_MAX_NODES. A node's counters are atomics, bumped by route.c.
 */
#ifndef RM_ROUTEMAP_H
#define RM_ROUTEMAP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "cluster.h"
#include "config.h"
#include "route.h"
#include "rpool.h"

struct route_node {
    char host[CLUSTER_HOST_MAX];
    int port;
    struct rpool *pool;
    atomic_ulong moved, ask, tryagain, errors;
};

struct routemap {
    /* what new node pools are made from (a copy: the map outlives cfg) */
    struct rm_config tmpl;
    struct cfg_strlist seeds;
    pthread_rwlock_t lock; /* the node table and the slot map */
    struct route_node *node[ROUTE_MAX_NODES];
    int nnodes;
    uint16_t slot[CLUSTER_SLOTS]; /* node index, ROUTEMAP_NONE for none */
    int have_map;
    pthread_mutex_t refresh_lock; /* one refresh at a time */
    long long refreshed_ms;       /* the last attempt, under refresh_lock */
    unsigned next_ask;            /* which node a refresh asks first */
    atomic_ulong refresh_ok, refresh_failed;
};

enum { ROUTEMAP_NONE = 0xffff };

void routemap_init(struct routemap *m, const struct rm_config *cfg);
void routemap_free(struct routemap *m);
int routemap_same(const struct routemap *m, const struct rm_config *cfg);
struct route_node *routemap_node(struct routemap *m, int slot, char *err);
struct route_node *routemap_peek(struct routemap *m, int slot);
void routemap_refresh(struct routemap *m, struct route_node *prefer);
struct route_node *routemap_redirected(struct routemap *m, const struct route_node *from,
                                       const struct cluster_redirect *rd);
int routemap_any_open(struct routemap *m);
size_t routemap_metrics(struct routemap *m, char *buf, size_t len);

#endif
