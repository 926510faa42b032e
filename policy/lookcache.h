/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * lookcache - a process-local copy of recent MAIL FROM lookups: what the
 * staff-edited keys (PREFIX sasl, limits:CUSTOMER, domain:SUFFIX) said about
 * one login, fallback customer and sender domain.
 *
 * Why: the lookup is one of the two Redis round trips a message costs, and
 * every front-end makes it for every message against the one shared Redis.
 * A customer who sends much sends the same lookup many times a second; a
 * copy at most LOOKCACHE_MAX_AGE_MS old answers those without Redis, which halves
 * the commands a busy relay sends to the shared store. Staff edits must be in
 * force within 2 seconds (doc/OPERATIONS, "Redis keys"); with 1 second, a staff
 * edit is in force within 1 second (plus a transaction in progress), as the
 * blocked-domain copy (blockset.h) is.
 *
 * Memory is bounded: LOOKCACHE_SLOTS entries in sets of LOOKCACHE_WAYS
 * (memo.h: sets, the oldest of a full set replaced); each entry packed into
 * at most LOOKCACHE_ENTRY_MAX bytes (a larger answer is not kept): under 10
 * MB in all, about 1 MB for common answers. Entries are never used past
 * their age, so a bounded table cannot serve a stale answer, only miss.
 * Counters are never cached: the charge at DATA always goes to Redis.
 *
 * Interface:
 *   lookcache_init(c) / lookcache_free(c)
 *   lookcache_get(c, req, res)   1 and res filled when a copy younger than
 *                         LOOKCACHE_MAX_AGE_MS exists for req, else 0
 *   lookcache_put(c, req, res)   keep a copy of res, the answer for req now
 * Thread-safe (memo.h).
 */
#ifndef RM_LOOKCACHE_H
#define RM_LOOKCACHE_H

#include "memo.h"
#include "store.h"

enum {
    LOOKCACHE_SLOTS = 8192,
    LOOKCACHE_WAYS = 4,
    LOOKCACHE_ENTRY_MAX = 1024,
    LOOKCACHE_MAX_AGE_MS = 1000
};

struct lookcache {
    struct memo m;
};

void lookcache_init(struct lookcache *c);
void lookcache_free(struct lookcache *c);
int lookcache_get(struct lookcache *c, const struct store_lookup_req *req,
                  struct store_lookup_res *res);
void lookcache_put(struct lookcache *c, const struct store_lookup_req *req,
                   const struct store_lookup_res *res);

#endif
