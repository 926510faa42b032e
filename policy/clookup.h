/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * clookup - the MAIL FROM lookup (store.h, store_lookup) on a Redis Cluster:
 * what lookup.lua answers on one primary, read with routed single-key
 * commands, because the keys it reads lie in many slots.
 *
 * Why not a script: a script may only touch keys of one slot (relay.lua's
 * header), and the limits and domain keys to read depend on what the sasl
 * hash and the sender domain say. So the reads are single-key commands, sent
 * in one round trip per node they touch, to all those nodes at once
 * (route_batch): on a cluster MAIL FROM may cost one call per node it
 * touches (doc/CLUSTER, "One call per node"), and the lookup copy
 * (lookcache.h) keeps a busy customer at one lookup a second. The limits
 * hash read with them is that of the customer the sasl hash named the last
 * time (lastread.h), or the fallback: right nearly always, and when the hash
 * now names another customer, that customer's limits (and domain
 * membership) are read in a second round.
 *
 * When a node does not answer, the reads it would have answered are taken
 * from lastread.h (the answer last read), counted in out->stale; a read with
 * neither makes the lookup fail (a store error). The blocked-domain set is
 * not taken from lastread: the caller keeps its copy (blockset.h).
 *
 * Interface:
 *   clookup_run(route, lastread, in, res, out, err)
 *       0 with res filled as from lookup.lua (store_redis.c), or -1 with err.
 *       out->blocked: the blocked-domain set read now, when in->want_blocked
 *       and its node answered (the caller installs it and frees it)
 *   clookup_fields(reply, res)   a HGETALL reply into res's fields (shared
 *                                with the one-primary lookup); -1 malformed
 */
#ifndef RM_CLOOKUP_H
#define RM_CLOOKUP_H

#include <hiredis/hiredis.h>

#include "lastread.h"
#include "route.h"
#include "store.h"

struct clookup_in {
    const struct store_lookup_req *req;
    const char *prefix;
    int want_blocked; /* the blocked-domain copy is due */
};

struct clookup_out {
    redisReply *blocked; /* the blocked-domain set, read now; NULL when not */
    int blocked_missed;  /* it was due, and its node did not answer */
    int stale;           /* reads answered from lastread */
    int rounds;          /* round trips (1, or 2 when the guess was wrong) */
};

int clookup_run(struct route *r, struct lastread *l, const struct clookup_in *in,
                struct store_lookup_res *res, struct clookup_out *out, char *err);
int clookup_fields(const redisReply *f, struct store_lookup_res *res);

#endif
