/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * store_redis - the store interface (store.h) over Redis with hiredis.
 *
 * Interface:
 *   store_redis_new(cfg)          a pool of up to redis.pool_size connections,
 *                                 opened lazily; never fails (connection errors
 *                                 surface as store errors per call)
 *   store_redis_matches(s, cfg)   1 when s was made from the same redis{} settings,
 *                                 so a reload can keep the pool (and its connections)
 *
 * Connections come from rpool.h; the blocked recipient domains are kept
 * locally in a blockset.h copy refreshed by lookup.
 */
#ifndef RM_STORE_REDIS_H
#define RM_STORE_REDIS_H

#include "config.h"
#include "store.h"

struct store *store_redis_new(const struct rm_config *cfg);
int store_redis_matches(const struct store *s, const struct rm_config *cfg);

#endif
