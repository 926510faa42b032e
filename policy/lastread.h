/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * lastread - the last answer a Redis Cluster node gave to a read of a
 * staff-edited key, kept for when that node cannot be reached.
 *
 * Why: on one primary, Redis down is Redis down. On a cluster the keys every
 * customer shares (PREFIX sasl, blocked-rcpt-domains, each domain:DOMAIN set)
 * and each customer's limits:CUSTOMER lie in slots of their own, often on
 * another node than the customer's counters. Without a copy, one dead node
 * would turn every customer's MAIL FROM into a store error, though their
 * quotas live on healthy nodes. Those keys change rarely, and while their
 * node is down nobody can change them anyway, so the last answer read is the
 * best there is. It is used only when the node fails (never instead of a
 * fresh read), and counted and logged by the caller (clookup.h).
 *
 * Interface:
 *   lastread_init(l) / lastread_free(l)
 *   lastread_put(l, cmd, reply)   keep a copy of reply as the answer to the
 *                                 single-key read cmd (argv and lens)
 *   lastread_get(l, cmd)          a copy of the answer kept for cmd (the
 *                                 caller frees it with freeReplyObject), or
 *                                 NULL
 * Bounded like lookcache.h: LASTREAD_SLOTS answers in sets of LASTREAD_WAYS
 * (memo.h: the oldest of a full set replaced), an answer and its command
 * over LASTREAD_ENTRY_MAX bytes not kept: under 10 MB in all. Thread-safe.
 */
#ifndef RM_LASTREAD_H
#define RM_LASTREAD_H

#include <hiredis/hiredis.h>

#include "memo.h"
#include "route.h"

enum { LASTREAD_SLOTS = 8192, LASTREAD_WAYS = 4, LASTREAD_ENTRY_MAX = 1024 };

struct lastread {
    struct memo m;
};

void lastread_init(struct lastread *l);
void lastread_free(struct lastread *l);
void lastread_put(struct lastread *l, const struct route_cmd *cmd,
                  const redisReply *reply);
redisReply *lastread_get(struct lastread *l, const struct route_cmd *cmd);

#endif
