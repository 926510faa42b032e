/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * localquota - the quota of relay.lua in process memory, for
 * on_store_error = "local": while Redis is unusable every limit still holds,
 * at a share of its value (several front-ends each admit their share).
 * relay.lua itself runs here, on Lua 5.1 against a table of counter hashes
 * (localquota.c says why), so a message is judged by the same arithmetic as
 * in Redis: the same sliding window, the same retry time.
 *
 * Interface:
 *   localquota_new(max_entries) / localquota_free(lq)
 *   localquota_charge(lq, q, share, now_ms, res)   check and charge like the script;
 *                                          0 ok (res says admitted or not), -1
 *                                          when the table is full of live
 *                                          entries, -2 the script failed (logged)
 *   localquota_refund(lq, q, charged_ms, now_ms)   give a local charge back
 *   localquota_count(lq)                           live entries (for tests and metrics)
 *   localquota_share_limit(limit, share)           a limit's share, at least 1
 *
 * Memory is bounded twice: every entry expires like its Redis key (end of the
 * window after its current one), and the table never holds more than
 * max_entries. A full table refuses to track a new subject rather than forget
 * an old one: forgetting would lift that subject's limit.
 */
#ifndef RM_LOCALQUOTA_H
#define RM_LOCALQUOTA_H

#include <stddef.h>

#include "quota.h"

struct localquota;

struct localquota *localquota_new(size_t max_entries);
void localquota_free(struct localquota *lq);
int localquota_charge(struct localquota *lq, const struct quota_req *q, double share,
                      long long now_ms, struct quota_result *res);
void localquota_refund(struct localquota *lq, const struct quota_req *q,
                       long long charged_ms, long long now_ms);
size_t localquota_count(struct localquota *lq);
long long localquota_share_limit(long long limit, double share);

#endif
