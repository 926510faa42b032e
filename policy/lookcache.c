/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * lookcache - recent MAIL FROM lookups; see lookcache.h.
 */
#include "lookcache.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"

/* One copy, packed into data[len] as NUL-terminated strings: the key (login,
 * fallback, sender domain), the customer, the domain level, then a name and
 * a value per field. Most answers are a few dozen bytes, not the kilobytes
 * of a store_lookup_res with its fixed arrays. */
struct lookcache_entry {
    long long at_ms;
    size_t keylen, len;
    int garbage, truncated, dom_member, nfields, bad_mapping;
    char data[];
};

enum { LOOKCACHE_KEY_MAX = STORE_NAME_MAX * 2 + DOM_MAX + 4 };

/* Appends s and its NUL to buf[*len..size); -1 when it does not fit. */
static int pack(char *buf, size_t size, size_t *len, const char *s)
{
    size_t n = strlen(s ? s : "") + 1;

    if (*len + n > size)
        return -1;
    memcpy(buf + *len, s ? s : "", n);
    *len += n;
    return 0;
}

/* The next string of an entry into dst (size bytes, always terminated). */
static const char *unpack(const char *p, char *dst, size_t size)
{
    size_t n = strlen(p);

    if (n >= size)
        n = size - 1;
    memcpy(dst, p, n);
    dst[n] = '\0';
    return p + strlen(p) + 1;
}

static size_t make_key(const struct store_lookup_req *req, char *buf)
{
    size_t len = 0;

    if (pack(buf, LOOKCACHE_KEY_MAX, &len, req->login) ||
        pack(buf, LOOKCACHE_KEY_MAX, &len, req->fallback) ||
        pack(buf, LOOKCACHE_KEY_MAX, &len, req->sender_domain))
        return 0;
    return len;
}

static unsigned set_of(const char *key, size_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)key[i]) * 16777619u;
    /* FNV's low bits depend on the input's low bits only: keys that share a
     * suffix crowd into few sets. A final mix (MurmurHash3's) spreads them. */
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h % (LOOKCACHE_SLOTS / LOOKCACHE_WAYS);
}

void lookcache_init(struct lookcache *c)
{
    memset(c->slot, 0, sizeof(c->slot));
    for (int i = 0; i < LOOKCACHE_STRIPES; i++)
        pthread_mutex_init(&c->lock[i], NULL);
}

void lookcache_free(struct lookcache *c)
{
    for (int i = 0; i < LOOKCACHE_SLOTS; i++) {
        free(c->slot[i]);
        c->slot[i] = NULL;
    }
    for (int i = 0; i < LOOKCACHE_STRIPES; i++)
        pthread_mutex_destroy(&c->lock[i]);
}

static void copy_out(const struct lookcache_entry *e, struct store_lookup_res *res)
{
    const char *p = e->data + e->keylen;

    memset(res, 0, sizeof(*res));
    p = unpack(p, res->customer, sizeof(res->customer));
    p = unpack(p, res->dom_level, sizeof(res->dom_level));
    for (int f = 0; f < e->nfields; f++) {
        p = unpack(p, res->name[f], sizeof(res->name[f]));
        p = unpack(p, res->value[f], sizeof(res->value[f]));
    }
    res->garbage = e->garbage;
    res->bad_mapping = e->bad_mapping;
    res->truncated = e->truncated;
    res->dom_member = e->dom_member;
    res->nfields = e->nfields;
}

int lookcache_get(struct lookcache *c, const struct store_lookup_req *req,
                  struct store_lookup_res *res)
{
    char key[LOOKCACHE_KEY_MAX];
    size_t len = make_key(req, key);
    unsigned set = set_of(key, len);
    int hit = 0;

    if (len == 0)
        return 0;
    pthread_mutex_lock(&c->lock[set % LOOKCACHE_STRIPES]);
    for (int w = 0; w < LOOKCACHE_WAYS && !hit; w++) {
        const struct lookcache_entry *e = c->slot[(size_t)set * LOOKCACHE_WAYS + w];
        if (e != NULL && e->keylen == len && memcmp(e->data, key, len) == 0 &&
            clock_mono_ms() - e->at_ms < LOOKCACHE_MAX_AGE_MS) {
            copy_out(e, res);
            hit = 1;
        }
    }
    pthread_mutex_unlock(&c->lock[set % LOOKCACHE_STRIPES]);
    return hit;
}

/* A packed copy of res under key, or NULL when it is over LOOKCACHE_ENTRY_MAX (a
 * customer with many long overrides is simply looked up every time). */
static struct lookcache_entry *pack_entry(const char *key, size_t keylen,
                                          const struct store_lookup_res *res)
{
    int n = res->nfields < 0                  ? 0
            : res->nfields > STORE_FIELDS_MAX ? STORE_FIELDS_MAX
                                              : res->nfields;
    /* Not xmalloc: without memory the answer is simply not kept (xalloc.h). */
    struct lookcache_entry *e = malloc(sizeof(*e) + LOOKCACHE_ENTRY_MAX);
    size_t len = keylen;
    int bad = e == NULL || keylen > LOOKCACHE_ENTRY_MAX;

    if (!bad) {
        memcpy(e->data, key, keylen);
        bad = pack(e->data, LOOKCACHE_ENTRY_MAX, &len, res->customer) ||
              pack(e->data, LOOKCACHE_ENTRY_MAX, &len, res->dom_level);
    }
    for (int f = 0; f < n && !bad; f++)
        bad = pack(e->data, LOOKCACHE_ENTRY_MAX, &len, res->name[f]) ||
              pack(e->data, LOOKCACHE_ENTRY_MAX, &len, res->value[f]);
    if (bad) {
        free(e);
        return NULL;
    }
    struct lookcache_entry *small = realloc(e, sizeof(*e) + len);
    e = small ? small : e;
    e->at_ms = clock_mono_ms();
    e->keylen = keylen;
    e->len = len;
    e->garbage = res->garbage;
    e->bad_mapping = res->bad_mapping;
    e->truncated = res->truncated;
    e->dom_member = res->dom_member;
    e->nfields = n;
    return e;
}

void lookcache_put(struct lookcache *c, const struct store_lookup_req *req,
                   const struct store_lookup_res *res)
{
    char key[LOOKCACHE_KEY_MAX];
    size_t len = make_key(req, key);
    struct lookcache_entry *e;

    /* built outside the lock; a copy not kept just means a later miss */
    if (len == 0 || (e = pack_entry(key, len, res)) == NULL)
        return;
    unsigned set = set_of(key, len);
    struct lookcache_entry **way = &c->slot[(size_t)set * LOOKCACHE_WAYS], *old;
    int victim = 0;

    pthread_mutex_lock(&c->lock[set % LOOKCACHE_STRIPES]);
    /* the same key's older copy, else a free way, else the oldest copy */
    for (int w = 0; w < LOOKCACHE_WAYS; w++) {
        if (way[w] == NULL ||
            (way[w]->keylen == len && memcmp(way[w]->data, key, len) == 0)) {
            victim = w;
            break;
        }
        if (way[w]->at_ms < way[victim]->at_ms)
            victim = w;
    }
    old = way[victim];
    way[victim] = e;
    pthread_mutex_unlock(&c->lock[set % LOOKCACHE_STRIPES]);
    free(old);
}
