/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * itcluster - the private Redis Cluster of test/lib/with-cluster, as the
 * cluster integration tests see it (RM_CLUSTER_PORTS). The test's own
 * commands are routed with Redis's answers (CLUSTER KEYSLOT, CLUSTER SLOTS),
 * never with the code under test.
 *
 * Interface:
 *   itc_start()                 connect to every node
 *   itc_redis_group(buf, len, prefix, command_ms, pool)
 *                               a redis { } group with cluster_nodes
 *   itc_slot(key)               CLUSTER KEYSLOT key
 *   itc_port_of(slot)           the primary serving slot now (CLUSTER SLOTS)
 *   itc_node(port)              the test's connection to that node
 *   itc_cmd(key, fmt, ...)      a command on the primary serving key's slot
 *   itc_cmd_ok(key, fmt, ...)   the same, REQUIRE-ing a non-error reply
 *   itc_primaries(ports, max)   the ports of the primaries, in slot order
 *   itc_flushall()              FLUSHALL on every primary
 *   itc_customer_on(port, tag, out, len)
 *                               a customer name (TAG-N) whose counters live on
 *                               the primary at port
 *   itc_counter_port(prefix, customer)
 *                               the port of the node where the customer's
 *                               minute counter exists (0: on none)
 */
#ifndef RM_ITCLUSTER_H
#define RM_ITCLUSTER_H

#include <hiredis/hiredis.h>
#include <stddef.h>

enum { ITC_MAX_NODES = 16 };

void itc_start(void);
void itc_redis_group(char *buf, size_t len, const char *prefix, int command_ms, int pool);
int itc_slot(const char *key);
int itc_port_of(int slot);
redisContext *itc_node(int port);
redisReply *itc_cmd(const char *key, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void itc_cmd_ok(const char *key, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int itc_primaries(int *ports, int max);
void itc_flushall(void);
void itc_customer_on(int port, const char *tag, char *out, size_t len);
int itc_counter_port(const char *prefix, const char *customer);

#endif
