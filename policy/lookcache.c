/*
 * lookcache - recent MAIL FROM lookups; see lookcache.h.
 */
#include "lookcache.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"

/* One copy, packed: the fields of store_lookup_res without its fixed arrays
 * of STORE_FIELDS_MAX name/value pairs (most customers have none or a few),
 * then the key, login NUL fallback NUL sender-domain NUL. */
struct lc_entry {
    long long at_ms;
    size_t keylen;
    int garbage, truncated, dom_member, nfields;
    char customer[STORE_NAME_MAX];
    char dom_level[DOM_MAX + 1];
    char *key;
    char pair[][2][STORE_FIELD_LEN];
};

/* The key of req, written to buf; returns its length, 0 when it does not fit. */
static size_t make_key(const struct store_lookup_req *req, char *buf, size_t size)
{
    const char *part[3] = {req->login, req->fallback, req->sender_domain};
    size_t len = 0;

    for (int i = 0; i < 3; i++) {
        const char *p = part[i] ? part[i] : "";
        size_t n = strlen(p) + 1;
        if (len + n > size)
            return 0;
        memcpy(buf + len, p, n);
        len += n;
    }
    return len;
}

static unsigned slot_of(const char *key, size_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)key[i]) * 16777619u;
    return h % LC_SLOTS;
}

void lc_init(struct lookcache *c)
{
    memset(c->slot, 0, sizeof(c->slot));
    for (int i = 0; i < LC_STRIPES; i++)
        pthread_mutex_init(&c->lock[i], NULL);
}

void lc_free(struct lookcache *c)
{
    for (int i = 0; i < LC_SLOTS; i++) {
        free(c->slot[i]);
        c->slot[i] = NULL;
    }
    for (int i = 0; i < LC_STRIPES; i++)
        pthread_mutex_destroy(&c->lock[i]);
}

int lc_get(struct lookcache *c, const struct store_lookup_req *req,
           struct store_lookup_res *res)
{
    char key[STORE_NAME_MAX * 2 + DOM_MAX + 4];
    size_t len = make_key(req, key, sizeof(key));
    unsigned i = slot_of(key, len);
    int hit = 0;

    if (len == 0)
        return 0;
    pthread_mutex_lock(&c->lock[i % LC_STRIPES]);
    const struct lc_entry *e = c->slot[i];
    if (e != NULL && e->keylen == len && memcmp(e->key, key, len) == 0 &&
        clock_mono_ms() - e->at_ms < LC_MAX_AGE_MS) {
        memset(res, 0, sizeof(*res));
        memcpy(res->customer, e->customer, sizeof(res->customer));
        memcpy(res->dom_level, e->dom_level, sizeof(res->dom_level));
        res->garbage = e->garbage;
        res->truncated = e->truncated;
        res->dom_member = e->dom_member;
        res->nfields = e->nfields;
        for (int f = 0; f < e->nfields; f++) {
            memcpy(res->name[f], e->pair[f][0], STORE_FIELD_LEN);
            memcpy(res->value[f], e->pair[f][1], STORE_FIELD_LEN);
        }
        hit = 1;
    }
    pthread_mutex_unlock(&c->lock[i % LC_STRIPES]);
    return hit;
}

void lc_put(struct lookcache *c, const struct store_lookup_req *req,
            const struct store_lookup_res *res)
{
    char key[STORE_NAME_MAX * 2 + DOM_MAX + 4];
    size_t len = make_key(req, key, sizeof(key));
    int n = res->nfields < 0                  ? 0
            : res->nfields > STORE_FIELDS_MAX ? STORE_FIELDS_MAX
                                              : res->nfields;
    size_t pairs = sizeof(((struct lc_entry *)0)->pair[0]) * (size_t)n;
    struct lc_entry *e;

    /* built outside the lock; a failed allocation just leaves a miss */
    if (len == 0 || (e = malloc(sizeof(*e) + pairs + len)) == NULL)
        return;
    e->at_ms = clock_mono_ms();
    e->keylen = len;
    e->garbage = res->garbage;
    e->truncated = res->truncated;
    e->dom_member = res->dom_member;
    e->nfields = n;
    memcpy(e->customer, res->customer, sizeof(e->customer));
    memcpy(e->dom_level, res->dom_level, sizeof(e->dom_level));
    for (int f = 0; f < n; f++) {
        memcpy(e->pair[f][0], res->name[f], STORE_FIELD_LEN);
        memcpy(e->pair[f][1], res->value[f], STORE_FIELD_LEN);
    }
    e->key = (char *)e->pair + pairs;
    memcpy(e->key, key, len);

    unsigned i = slot_of(key, len);
    pthread_mutex_lock(&c->lock[i % LC_STRIPES]);
    struct lc_entry *old = c->slot[i];
    c->slot[i] = e;
    pthread_mutex_unlock(&c->lock[i % LC_STRIPES]);
    free(old);
}
