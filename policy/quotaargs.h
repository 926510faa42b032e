/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * quotaargs - the argument vector of a relay.lua charge or refund for one
 * quota request: the script's calling convention, written once for both
 * places that run the script (Redis, through store_redis, and the local
 * fallback's own interpreter, through localquota).
 *
 * Interface:
 *   quotaargs_build(a, q, op, charged_ms, events_key, events_maxlen)
 *       fills a->argv[2 ..] (binary safe, lengths in a->lens) as relay.lua's
 *       header describes: NKEYS, the counter keys, events_key when not NULL,
 *       op, the recipients, NC, five values per counter, then charged_ms for
 *       a refund (charged_ms >= 0) or the event to record for a charge.
 *       argv[0] and argv[1] are the caller's (EVALSHA and the digest).
 *
 * The strings live in a or in q (and q->event): both must outlive the call.
 */
#ifndef RM_QUOTAARGS_H
#define RM_QUOTAARGS_H

#include <stddef.h>

#include "quota.h"

enum {
    QUOTAARGS_FIRST = 2, /* argv[0 .. 1]: the caller's */
    QUOTAARGS_MAX =
        QUOTAARGS_FIRST + 1 + QUOTA_MAX_COUNTERS + 1 + 3 + 5 * QUOTA_MAX_COUNTERS + 7
};

struct quotaargs {
    const char *argv[QUOTAARGS_MAX];
    size_t lens[QUOTAARGS_MAX];
    char num[QUOTAARGS_MAX][24];
    int argc, nnum;
};

void quotaargs_build(struct quotaargs *a, const struct quota_req *q, const char *op,
                     long long charged_ms, const char *events_key,
                     long long events_maxlen);

#endif
