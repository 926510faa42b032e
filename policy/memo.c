/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * memo - a bounded table of recent answers; see memo.h.
 */
#include "memo.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "hash.h"
#include "xalloc.h"

struct memo_entry {
    long long at_ms;
    void *val;
    size_t keylen;
    char key[];
};

void memo_init(struct memo *m, size_t nslots, int ways, void (*val_free)(void *))
{
    m->ways = ways;
    m->nsets = nslots / (size_t)ways;
    m->val_free = val_free;
    m->slot = xcalloc(m->nsets * (size_t)ways, sizeof(struct memo_entry *));
    for (int i = 0; i < MEMO_STRIPES; i++)
        pthread_mutex_init(&m->lock[i], NULL);
}

static void entry_free(struct memo *m, struct memo_entry *e)
{
    if (e != NULL)
        m->val_free(e->val);
    free(e);
}

void memo_free(struct memo *m)
{
    for (size_t i = 0; i < m->nsets * (size_t)m->ways; i++)
        entry_free(m, m->slot[i]);
    free(m->slot);
    m->slot = NULL;
    for (int i = 0; i < MEMO_STRIPES; i++)
        pthread_mutex_destroy(&m->lock[i]);
}

static int same_key(const struct memo_entry *e, const char *key, size_t keylen)
{
    return e != NULL && e->keylen == keylen && memcmp(e->key, key, keylen) == 0;
}

void memo_put(struct memo *m, const char *key, size_t keylen, void *val)
{
    /* Not xmalloc: without memory the answer is simply not kept (xalloc.h). */
    struct memo_entry *e = malloc(sizeof(*e) + keylen);

    if (e == NULL) {
        m->val_free(val);
        return;
    }
    e->at_ms = clock_mono_ms();
    e->val = val;
    e->keylen = keylen;
    memcpy(e->key, key, keylen);
    size_t set = hash_bytes(key, keylen) % m->nsets;
    struct memo_entry **way = &m->slot[set * (size_t)m->ways], *old;
    int victim = 0;

    pthread_mutex_lock(&m->lock[set % MEMO_STRIPES]);
    /* the same key's older entry, else a free way, else the oldest entry */
    for (int w = 0; w < m->ways; w++) {
        if (way[w] == NULL || same_key(way[w], key, keylen)) {
            victim = w;
            break;
        }
        if (way[w]->at_ms < way[victim]->at_ms)
            victim = w;
    }
    old = way[victim];
    way[victim] = e;
    pthread_mutex_unlock(&m->lock[set % MEMO_STRIPES]);
    entry_free(m, old);
}

int memo_get(struct memo *m, const char *key, size_t keylen, long long max_age_ms,
             int (*copy)(const void *val, void *out), void *out)
{
    size_t set = hash_bytes(key, keylen) % m->nsets;
    int hit = 0;

    pthread_mutex_lock(&m->lock[set % MEMO_STRIPES]);
    for (int w = 0; w < m->ways && !hit; w++) {
        const struct memo_entry *e = m->slot[set * (size_t)m->ways + w];
        if (same_key(e, key, keylen) &&
            (max_age_ms < 0 || clock_mono_ms() - e->at_ms < max_age_ms))
            hit = copy(e->val, out);
    }
    pthread_mutex_unlock(&m->lock[set % MEMO_STRIPES]);
    return hit;
}
