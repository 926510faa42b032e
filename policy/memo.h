/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * memo - a bounded table of recent answers, keyed by byte strings: what the
 * process-local copies (lookcache.h, lastread.h) are kept in.
 *
 * Memory is bounded: nslots entries in sets of ways chosen by a hash of the
 * key (hash.h), the oldest entry of a full set replaced. Sets rather than one
 * slot per hash: many busy keys in a direct-mapped table of as many slots
 * evict each other most of the time. Thread-safe; the sets are locked in
 * MEMO_STRIPES stripes.
 *
 * Interface:
 *   memo_init(m, nslots, ways, val_free)   val_free frees a value
 *   memo_free(m)
 *   memo_put(m, key, keylen, val)   keep val (the table owns it) for key,
 *                                   replacing the key's older value
 *   memo_get(m, key, keylen, max_age_ms, copy, out)
 *                                   1 when key has a value younger than
 *                                   max_age_ms (-1: any age), copied out by
 *                                   copy(val, out) under the lock (copy
 *                                   returns 0 for "not usable"); else 0
 */
#ifndef RM_MEMO_H
#define RM_MEMO_H

#include <pthread.h>
#include <stddef.h>

enum { MEMO_STRIPES = 16 };

struct memo_entry;

struct memo {
    size_t nsets;
    int ways;
    void (*val_free)(void *val);
    pthread_mutex_t lock[MEMO_STRIPES];
    struct memo_entry **slot;
};

void memo_init(struct memo *m, size_t nslots, int ways, void (*val_free)(void *));
void memo_free(struct memo *m);
void memo_put(struct memo *m, const char *key, size_t keylen, void *val);
int memo_get(struct memo *m, const char *key, size_t keylen, long long max_age_ms,
             int (*copy)(const void *val, void *out), void *out);

#endif
