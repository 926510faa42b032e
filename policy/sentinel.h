/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * sentinel - find the current Redis primary through Redis Sentinel.
 *
 * Interface:
 *   sentinel_resolve(o, host, hostlen, &port, err)
 *       asks each of o->addrs in turn ("HOST:PORT", "[V6]:PORT") for
 *       SENTINEL get-master-addr-by-name o->master, within o->connect_ms /
 *       o->command_ms per sentinel; the first answer wins. 0 ok, -1 with the
 *       reason in err (STORE_ERR_MAX) when none knows.
 *   sentinel_split(spec, host, hostlen, &port)   parse one sentinel address
 *
 * Sentinels get the same AUTH as Redis (redis.username / redis.password):
 * deployments that protect one protect both.
 */
#ifndef RM_SENTINEL_H
#define RM_SENTINEL_H

#include <stddef.h>

struct sentinel_opts {
    char *const *addrs;
    size_t naddrs;
    const char *master, *username, *password;
    int connect_ms, command_ms;
};

int sentinel_resolve(const struct sentinel_opts *o, char *host, size_t hostlen, int *port,
                     char *err);
int sentinel_split(const char *spec, char *host, size_t hostlen, int *port);

#endif
