/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * lookcache - recent MAIL FROM lookups; see lookcache.h.
 */
#include "lookcache.h"

#include <stdlib.h>
#include <string.h>

#include "memo.h"

/* One copy, packed into data[len] as NUL-terminated strings: the customer,
 * the domain level, then a name and a value per field (the key, login,
 * fallback and sender domain, is the memo's). Most answers are a few dozen
 * bytes, not the kilobytes of a store_lookup_res with its fixed arrays. */
struct lookcache_entry {
    size_t len;
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

void lookcache_init(struct lookcache *c)
{
    memo_init(&c->m, LOOKCACHE_SLOTS, LOOKCACHE_WAYS, free);
}

void lookcache_free(struct lookcache *c)
{
    memo_free(&c->m);
}

static int copy_out(const void *val, void *out)
{
    const struct lookcache_entry *e = val;
    struct store_lookup_res *res = out;
    const char *p = e->data;

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
    return 1;
}

int lookcache_get(struct lookcache *c, const struct store_lookup_req *req,
                  struct store_lookup_res *res)
{
    char key[LOOKCACHE_KEY_MAX];
    size_t len = make_key(req, key);

    return len != 0 && memo_get(&c->m, key, len, LOOKCACHE_MAX_AGE_MS, copy_out, res);
}

/* A packed copy of res, or NULL when it is over room bytes (with its key,
 * LOOKCACHE_ENTRY_MAX: a customer with many long overrides is simply looked
 * up every time). */
static struct lookcache_entry *pack_entry(const struct store_lookup_res *res, size_t room)
{
    int n = res->nfields < 0                  ? 0
            : res->nfields > STORE_FIELDS_MAX ? STORE_FIELDS_MAX
                                              : res->nfields;
    /* Not xmalloc: without memory the answer is simply not kept (xalloc.h). */
    struct lookcache_entry *e = malloc(sizeof(*e) + room);
    size_t len = 0;
    int bad = e == NULL;

    if (!bad)
        bad = pack(e->data, room, &len, res->customer) ||
              pack(e->data, room, &len, res->dom_level);
    for (int f = 0; f < n && !bad; f++)
        bad = pack(e->data, room, &len, res->name[f]) ||
              pack(e->data, room, &len, res->value[f]);
    if (bad) {
        free(e);
        return NULL;
    }
    struct lookcache_entry *small = realloc(e, sizeof(*e) + len);
    e = small ? small : e;
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
    if (len != 0 && len < LOOKCACHE_ENTRY_MAX &&
        (e = pack_entry(res, LOOKCACHE_ENTRY_MAX - len)) != NULL)
        memo_put(&c->m, key, len, e);
}
