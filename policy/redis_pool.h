/*
 * redis_pool - a bounded pool of hiredis connections shared by the milter's
 * threads, and the helpers every Redis call needs.
 *
 * Interface:
 *   rpool_new(cfg) / rpool_free(p)
 *   rpool_matches(p, cfg)        1 when cfg has the same connection settings
 *   rpool_get(p, err)            a connection for this thread alone, or NULL
 *                                (store error in err) within command_timeout_ms
 *   rpool_put(p, c, healthy)     give it back; an unhealthy one is closed
 *   rpool_script(p, c, argc, argv, lens)
 *                                run relay.lua: argv[0] and argv[1] are filled
 *                                in here (EVALSHA sha, or EVAL body once the
 *                                server lost its script cache)
 *   rpool_error(c, r, err)       describe a failed or unexpected reply
 *   rpool_int / rpool_str        typed access to array reply elements
 *
 * hiredis contexts are not thread-safe: a context belongs to one thread between
 * get and put. A context that saw any error (timeout, EOF, protocol) is freed,
 * never reused: a late reply would otherwise answer the next command.
 */
#ifndef RM_REDIS_POOL_H
#define RM_REDIS_POOL_H

#include <hiredis/hiredis.h>
#include <stddef.h>

#include "config.h"

struct rpool;

struct rpool *rpool_new(const struct rm_config *cfg);
void rpool_free(struct rpool *p);
int rpool_matches(const struct rpool *p, const struct rm_config *cfg);
redisContext *rpool_get(struct rpool *p, char *err);
void rpool_put(struct rpool *p, redisContext *c, int healthy);
redisReply *rpool_script(struct rpool *p, redisContext *c, int argc, const char **argv,
                         size_t *lens);
void rpool_error(const redisContext *c, const redisReply *r, char *err);
int rpool_int(const redisReply *r, size_t i, long long *out);
int rpool_str(const redisReply *r, size_t i, char *out, size_t len, int *trunc);

#endif
