/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * cfgredis - the rules that join the keys of the redis { } group; see
 * cfgload.h (cfgredis_check).
 */
#include <string.h>

#include "cfgload.h"
#include "sentinel.h"

/* Every element of the list key (redis.sentinels, redis.cluster_nodes) must
 * be an address "HOST:PORT" or "[V6]:PORT". */
static int check_addresses(struct loader *ld, config_t *lc, const char *key,
                           const struct cfg_strlist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        char host[256];
        int port;
        if (sentinel_split(l->v[i], host, sizeof(host), &port) != 0)
            return cfg_fail(ld,
                            config_setting_get_elem(config_lookup(lc, key), (unsigned)i),
                            "%s: \"%s\" is not HOST:PORT", key, l->v[i]);
    }
    return 0;
}

/* A Redis Cluster has database 0 only and no Sentinel, and is reached by TCP
 * (Redis Cluster specification; redis.conf "cluster-enabled"): the keys that
 * name another topology are refused where they stand, not ignored. */
static int check_cluster(struct loader *ld, const struct rm_config *cfg, config_t *lc)
{
    if (cfg->cluster_nodes.n == 0)
        return 0;
    if (cfg->sentinels.n > 0)
        return cfg_fail(
            ld, config_lookup(lc, "redis.sentinels"),
            "redis.sentinels cannot be used with redis.cluster_nodes: a Redis "
            "Cluster fails over by itself");
    if (cfg->redis_unix != NULL)
        return cfg_fail(ld, config_lookup(lc, "redis.unix"),
                        "redis.unix cannot be used with redis.cluster_nodes: cluster "
                        "nodes are reached by TCP");
    if (cfg->redis_db != 0)
        return cfg_fail(ld, config_lookup(lc, "redis.db"),
                        "redis.db must be 0 with redis.cluster_nodes: a Redis Cluster "
                        "has database 0 only");
    return 0;
}

int cfgredis_check(struct loader *ld, struct rm_config *cfg, config_t *lc)
{
    const config_setting_t *redis = config_lookup(lc, "redis");

    if (cfg->sentinels.n > 0 && cfg->redis_master == NULL)
        return cfg_fail(ld, redis,
                        "redis.sentinels needs redis.master (the monitored name)");
    if (cfg->redis_master != NULL && cfg->sentinels.n == 0)
        return cfg_fail(ld, redis, "redis.master needs redis.sentinels");
    if (check_addresses(ld, lc, "redis.sentinels", &cfg->sentinels) != 0 ||
        check_addresses(ld, lc, "redis.cluster_nodes", &cfg->cluster_nodes) != 0 ||
        check_cluster(ld, cfg, lc) != 0)
        return -1;
    if (cfg->redis_username != NULL && cfg->redis_password == NULL)
        return cfg_fail(ld, redis, "redis.username needs redis.password");
    /* The usage counters carry the customer as their hash tag, "{CUSTOMER}"
     * (keys.h); a brace in the prefix would become the tag instead, and put
     * every customer in one slot or split one customer's counters. */
    if (strpbrk(cfg->prefix, "{}") != NULL)
        return cfg_fail(ld, config_lookup(lc, "redis.prefix"),
                        "redis.prefix \"%s\" may not hold '{' or '}' (they would make "
                        "the Redis Cluster hash tag of every counter)",
                        cfg->prefix);
    return 0;
}
