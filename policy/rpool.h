/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * rpool - a bounded pool of hiredis connections shared by the milter's
 * threads, with a circuit breaker and Sentinel discovery.
 *
 * Interface:
 *   rpool_new(cfg) / rpool_free(p)
 *                                the pool of the one primary (host/port, unix
 *                                or Sentinel)
 *   rpool_new_node(cfg, host, port)
 *                                the pool of one Redis Cluster node: cfg's
 *                                credentials, timeouts and pool size, no
 *                                SELECT (a cluster has database 0 only)
 *   rpool_matches(p, cfg)        1 when cfg has the same connection settings
 *   rpool_same_settings(p, cfg)  1 when cfg has the same credentials, timeouts
 *                                and pool size (whatever the address)
 *   rpool_get(p, err)            a connection for this thread alone, or NULL
 *                                with a store error in err; never waits longer
 *                                than connect_timeout_ms + command_timeout_ms,
 *                                and returns at once while the circuit is open
 *   rpool_put(p, rc, status)     give it back with the outcome of its call
 *   rpool_status_of(c, r)        the outcome of a reply (RPOOL_OK, RPOOL_BROKEN,
 *                                RPOOL_WRONG_SERVER)
 *   rpool_script(p, rc, script, asking, argc, argv, lens)
 *                                run a script (RPOOL_RELAY: relay.lua,
 *                                RPOOL_LOOKUP: lookup.lua, which a cluster node
 *                                pool does not load): argv[0] and argv[1] are
 *                                filled in here (EVALSHA sha, or EVAL body
 *                                once the server lost its script cache, as
 *                                after a failover: NOSCRIPT)
 *   rpool_command(rc, asking, argc, argv, lens)
 *                                one command; asking: preceded by ASKING in
 *                                the same round trip (a Redis Cluster ASK
 *                                redirection holds for one command only)
 *   rpool_error(c, r, err)       describe a failed or unexpected reply
 *   rpool_reply_error(r, err)    describe an unexpected reply (r not NULL)
 *   rpool_int / rpool_str        typed access to array reply elements
 *
 * hiredis contexts are not thread-safe: a context belongs to one thread between
 * get and put. A context that saw any error (timeout, EOF, protocol) is freed,
 * never reused: a late reply would otherwise answer the next command.
 *
 * Circuit breaker: after RPOOL_FAIL_THRESHOLD failures in a row the circuit opens
 * and every call fails at once (no timeout paid per message); one probe call
 * is let through after a back-off that doubles up to RPOOL_BACKOFF_MAX_MS, with
 * jitter so that many front-ends do not reconnect in lock step. A successful
 * call closes the circuit. Transitions are logged, not every failure.
 */
#ifndef RM_RPOOL_H
#define RM_RPOOL_H

#include <hiredis/hiredis.h>
#include <stddef.h>

#include "config.h"

enum {
    RPOOL_FAIL_THRESHOLD = 3,
    RPOOL_BACKOFF_BASE_MS = 200,
    RPOOL_BACKOFF_MAX_MS = 4000
};

enum rpool_script { RPOOL_RELAY, RPOOL_LOOKUP, RPOOL_NSCRIPTS };

enum rpool_status {
    RPOOL_OK,          /* the server answered (even with an error reply) */
    RPOOL_BROKEN,      /* timeout, EOF, protocol error: the connection is dead */
    RPOOL_WRONG_SERVER /* READONLY and kin: a replica or a demoted primary; a
                        * cluster node that cannot serve (CLUSTERDOWN) */
};

struct rpool;

struct rconn {
    redisContext *ctx;
    unsigned gen; /* the primary's generation it was opened for */
};

struct rpool *rpool_new(const struct rm_config *cfg);
struct rpool *rpool_new_node(const struct rm_config *cfg, const char *host, int port);
void rpool_free(struct rpool *p);
int rpool_matches(const struct rpool *p, const struct rm_config *cfg);
int rpool_same_settings(const struct rpool *p, const struct rm_config *cfg);
int rpool_circuit_open(struct rpool *p);
struct rconn *rpool_get(struct rpool *p, char *err);
void rpool_put(struct rpool *p, struct rconn *rc, enum rpool_status status);
enum rpool_status rpool_status_of(const redisContext *c, const redisReply *r);
redisReply *rpool_script(struct rpool *p, struct rconn *rc, enum rpool_script script,
                         int asking, int argc, const char **argv, size_t *lens);
redisReply *rpool_command(struct rconn *rc, int asking, int argc, const char **argv,
                          const size_t *lens);
void rpool_error(const redisContext *c, const redisReply *r, char *err);
void rpool_reply_error(const redisReply *r, char *err);
int rpool_int(const redisReply *r, size_t i, long long *out);
int rpool_str(const redisReply *r, size_t i, char *out, size_t len, int *trunc);

#endif
