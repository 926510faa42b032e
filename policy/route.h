/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * route - where a Redis command goes: the one primary (host/port, unix or
 * Sentinel, one rpool.h pool), or on a Redis Cluster (redis.cluster_nodes)
 * the node that serves the slot of its key. The store (store_redis.c) calls
 * through here in every topology; only a cluster has more than one node.
 *
 * Interface:
 *   route_new(cfg) / route_free(r)
 *   route_matches(r, cfg)        1 when cfg names the same servers with the
 *                                same connection settings (a reload keeps r)
 *   route_is_cluster(r)
 *   route_call(r, slot, script, argc, argv, lens, err)
 *       one command (script ROUTE_COMMAND) or a script call (RPOOL_RELAY,
 *       RPOOL_LOOKUP: argv[0..1] are filled in, see rpool_script) on the node
 *       serving slot (ignored on one primary). Returns the reply, which the
 *       caller frees: an error reply that is about the command (WRONGTYPE,
 *       a script error) included. Returns NULL with a store error in err when
 *       no answer could be had: no connection, a timeout, a server that cannot
 *       serve (READONLY, CLUSTERDOWN, ...), a slot no node serves, or
 *       redirections past ROUTE_MAX_HOPS.
 *   route_batch(r, cmds, n, err)
 *       single-key commands (argv[1] is the key) sent with one round trip per
 *       node touched, all nodes at once; each cmds[i].reply is the reply (the
 *       caller frees it) or NULL when its node could not answer (err holds
 *       the first such reason). Redirected commands are sent again one by one
 *       through route_call. Returns the number of commands without a reply.
 *   route_slot_circuit_open(r, slot)   1 while the circuit breaker of the
 *                                      node serving slot is open
 *   route_circuit_open(r)              1 while any node's circuit is open (on
 *                                      a cluster: of a node serving slots)
 *   route_metrics(r, buf, len)         a cluster's per-node counters in the
 *                                      Prometheus text format (nothing for
 *                                      one primary); returns the length
 *
 * Redis Cluster (its specification, "Redirection and resharding"):
 *   - the slot map comes from CLUSTER SLOTS, asked of a known node (seeds
 *     first) when there is none yet, after a MOVED, and after a node failed;
 *     at most one thread asks at a time, at most every ROUTE_REFRESH_MIN_MS;
 *   - MOVED: the slot is pointed at the new node at once, the map is asked
 *     for again, and the command goes to the new node;
 *   - ASK: ASKING and the command go to the named node, once; the map stays;
 *   - TRYAGAIN (a multi-key command while its slot migrates): sent again
 *     after 1, 2, 4, ... ms, at most ROUTE_TRYAGAIN_MAX times and waiting
 *     command_timeout_ms at most in all, so a stage still ends within the
 *     bounds of doc/OPERATIONS, "Operations: when Redis fails";
 *   - every node has its own connection pool, and so its own circuit breaker
 *     (rpool.h): a dead node costs the customers of its slots a failed call
 *     each, and nobody else anything.
 * Nodes are added as the map names them (at most ROUTE_MAX_NODES) and kept
 * until r is freed, so a node pointer never dangles.
 */
#ifndef RM_ROUTE_H
#define RM_ROUTE_H

#include <hiredis/hiredis.h>
#include <stddef.h>

#include "config.h"
#include "rpool.h"

enum {
    ROUTE_COMMAND = -1, /* route_call: a plain command, no script */
    ROUTE_MAX_NODES = 1024,
    ROUTE_MAX_HOPS = 5,
    ROUTE_TRYAGAIN_MAX = 12,
    ROUTE_REFRESH_MIN_MS = 100,
    ROUTE_REFRESH_TRIES = 3,
    ROUTE_CMD_ARGS = 4
};

struct route;

struct route_cmd {
    int argc;
    const char *argv[ROUTE_CMD_ARGS];
    size_t lens[ROUTE_CMD_ARGS];
    redisReply *reply; /* out */
    /* private to route_batch */
    int slot;
    struct route_node *node;
};

struct route *route_new(const struct rm_config *cfg);
void route_free(struct route *r);
int route_matches(const struct route *r, const struct rm_config *cfg);
int route_is_cluster(const struct route *r);
redisReply *route_call(struct route *r, int slot, int script, int argc, const char **argv,
                       size_t *lens, char *err);
size_t route_batch(struct route *r, struct route_cmd *cmds, size_t n, char *err);
int route_slot_circuit_open(struct route *r, int slot);
int route_circuit_open(struct route *r);
size_t route_metrics(struct route *r, char *buf, size_t len);

#endif
