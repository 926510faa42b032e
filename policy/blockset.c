/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * blockset - local copy of the blocked recipient domains; see blockset.h.
 */
#include "blockset.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_list(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void blockset_init(struct blockset *b)
{
    memset(b, 0, sizeof(*b));
    pthread_rwlock_init(&b->lock, NULL);
}

void blockset_free(struct blockset *b)
{
    free_list(b->v, b->n);
    pthread_rwlock_destroy(&b->lock);
}

int blockset_stale(struct blockset *b)
{
    pthread_rwlock_rdlock(&b->lock);
    long long at = b->fetched_ms;
    pthread_rwlock_unlock(&b->lock);
    return at == 0 || clock_mono_ms() - at >= BLOCKSET_MAX_AGE_MS;
}

void blockset_replace(struct blockset *b, char **v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_str);
    pthread_rwlock_wrlock(&b->lock);
    char **old = b->v;
    size_t oldn = b->n;
    b->v = v;
    b->n = n;
    b->fetched_ms = clock_mono_ms();
    pthread_rwlock_unlock(&b->lock);
    free_list(old, oldn);
}

int blockset_contains(struct blockset *b, const char *domain)
{
    pthread_rwlock_rdlock(&b->lock);
    int hit = b->n > 0 && bsearch(&domain, b->v, b->n, sizeof(*b->v), cmp_str) != NULL;
    pthread_rwlock_unlock(&b->lock);
    return hit;
}
