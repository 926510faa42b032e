/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ctlredis - every Redis call of relaymilter-ctl goes through here, over the
 * daemon's connection layer (route.h on rpool.h: AUTH / ACL, db, unix
 * socket, Sentinel, Redis Cluster, timeouts). Each call names the key it is
 * about, and on a Redis Cluster goes to the node that serves it (MOVED and
 * ASK followed as the daemon follows them).
 *
 * Interface:
 *   ctlredis_new(cfg) / ctlredis_free(r)
 *       the connection is opened by the first call and kept to the end
 *   ctlredis_describe(cfg, buf, len)
 *       which Redis cfg points at, for messages: "127.0.0.1:6379",
 *       "unix socket /run/redis.sock", "master mymaster (sentinels a:1, b:2)",
 *       "Redis Cluster (seeds a:1, b:2)"
 *   ctlredis_cmd(r, key, argc, argv, lens)
 *       one command, each argument binary-safe; key is the key it reads or
 *       writes (NULL: none). The reply, or NULL when the connection failed
 *       or Redis answered with an error: then the reason is on stderr
 *   ctlredis_cmdv(r, key, argc, argv)      the same for C strings
 *   ctlredis_script(r, key, argc, argv, lens)
 *       relay.lua (rpool_script: argv[0] and argv[1] are filled in there),
 *       key the first of its keys; NULL as for ctlredis_cmd
 *   ctlredis_scan(r, hash, pattern, near, fn, arg)
 *       SCAN MATCH pattern over the keys (hash NULL), or HSCAN MATCH over
 *       the fields of hash; fn(arg, reply) gets each page's array (HSCAN:
 *       field, value, ...) and returns nonzero to stop. 0, or -1 as above.
 *       SCAN lists the keys of one server: on a Redis Cluster the node that
 *       serves near, a key of the one slot every key pattern matches lies in
 *       (a customer's counters share its hash tag: keys.h)
 *
 * Passwords are never part of a message: rpool's errors name the server's
 * reply, never the command sent.
 */
#ifndef RM_CTLREDIS_H
#define RM_CTLREDIS_H

#include <hiredis/hiredis.h>
#include <stddef.h>

#include "config.h"

struct ctlredis;

typedef int ctlredis_page_fn(void *arg, const redisReply *items);

struct ctlredis *ctlredis_new(const struct rm_config *cfg);
void ctlredis_free(struct ctlredis *r);
void ctlredis_describe(const struct rm_config *cfg, char *buf, size_t len);
redisReply *ctlredis_cmd(struct ctlredis *r, const char *key, int argc, const char **argv,
                         const size_t *lens);
redisReply *ctlredis_cmdv(struct ctlredis *r, const char *key, int argc,
                          const char **argv);
redisReply *ctlredis_script(struct ctlredis *r, const char *key, int argc,
                            const char **argv, size_t *lens);
int ctlredis_scan(struct ctlredis *r, const char *hash, const char *pattern,
                  const char *near, ctlredis_page_fn *fn, void *arg);

#endif
