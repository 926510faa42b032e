/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * blockset - a process-local copy of the staff-edited set of blocked
 * recipient domains (PREFIX blocked-rcpt-domains).
 *
 * RCPT TO must not cost a Redis round trip per recipient (doc/OPERATIONS: at
 * most two per message), so recipients are checked against this copy. It is refreshed
 * inside the MAIL FROM lookup's round trip whenever it is older than
 * BLOCKSET_MAX_AGE_MS, so what a RCPT sees is at most that old plus the time since
 * the transaction's MAIL FROM: well inside the 2 seconds doc/OPERATIONS promises.
 *
 * Interface:
 *   blockset_init / blockset_free
 *   blockset_stale(b)              1 when the next lookup should fetch a new copy
 *   blockset_replace(b, v, n)      install a fetched copy (takes v and its strings)
 *   blockset_contains(b, domain)   1 when the copy names exactly domain
 */
#ifndef RM_BLOCKSET_H
#define RM_BLOCKSET_H

#include <pthread.h>
#include <stddef.h>

enum { BLOCKSET_MAX_AGE_MS = 1000, BLOCKSET_MAX_MEMBERS = 100000 };

struct blockset {
    pthread_rwlock_t lock;
    char **v; /* sorted, canonical */
    size_t n;
    long long fetched_ms; /* CLOCK_MONOTONIC; 0 never */
};

void blockset_init(struct blockset *b);
void blockset_free(struct blockset *b);
int blockset_stale(struct blockset *b);
void blockset_replace(struct blockset *b, char **v, size_t n);
int blockset_contains(struct blockset *b, const char *domain);

#endif
