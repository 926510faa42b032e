/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * lastread - the last answers of cluster nodes to staff-key reads; see
 * lastread.h.
 */
#include "lastread.h"

#include <stdlib.h>
#include <string.h>

#include "memo.h"

enum { KEY_MAX = LASTREAD_ENTRY_MAX - 1, MAX_DEPTH = 2 };

/* The command as one byte string: each argument's length, then its bytes,
 * so no two commands share a key. 0 when it is over KEY_MAX. */
static size_t make_key(const struct route_cmd *cmd, char *buf)
{
    size_t len = 0;

    for (int i = 0; i < cmd->argc; i++) {
        if (len + sizeof(size_t) + cmd->lens[i] > KEY_MAX)
            return 0;
        memcpy(buf + len, &cmd->lens[i], sizeof(size_t));
        memcpy(buf + len + sizeof(size_t), cmd->argv[i], cmd->lens[i]);
        len += sizeof(size_t) + cmd->lens[i];
    }
    return len;
}

/* A deep copy of r for freeReplyObject, within *budget bytes (counted down);
 * NULL when it does not fit or has a shape no read here answers with. Not
 * xmalloc: without memory the answer is simply not kept (xalloc.h). */
static redisReply *copy(const redisReply *r, size_t *budget, int depth)
{
    redisReply *c;

    if (depth > MAX_DEPTH || *budget < sizeof(*c) || (c = calloc(1, sizeof(*c))) == NULL)
        return NULL;
    *budget -= sizeof(*c);
    c->type = r->type;
    c->integer = r->integer;
    switch (r->type) {
    case REDIS_REPLY_INTEGER:
    case REDIS_REPLY_NIL:
        return c;
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        if (r->len + 1 > *budget || (c->str = malloc(r->len + 1)) == NULL)
            break;
        memcpy(c->str, r->str, r->len);
        c->str[r->len] = '\0';
        c->len = r->len;
        *budget -= r->len + 1;
        return c;
    case REDIS_REPLY_ARRAY:
        if (r->elements > *budget / sizeof(redisReply *) ||
            (c->element = calloc(r->elements + 1, sizeof(redisReply *))) == NULL)
            break;
        c->elements = r->elements;
        *budget -= r->elements * sizeof(redisReply *);
        for (size_t i = 0; i < r->elements; i++)
            if ((c->element[i] = copy(r->element[i], budget, depth + 1)) == NULL) {
                freeReplyObject(c);
                return NULL;
            }
        return c;
    default:
        break;
    }
    freeReplyObject(c);
    return NULL;
}

static void reply_free(void *r)
{
    freeReplyObject(r);
}

void lastread_init(struct lastread *l)
{
    memo_init(&l->m, LASTREAD_SLOTS, LASTREAD_WAYS, reply_free);
}

void lastread_free(struct lastread *l)
{
    memo_free(&l->m);
}

void lastread_put(struct lastread *l, const struct route_cmd *cmd,
                  const redisReply *reply)
{
    char key[KEY_MAX];
    size_t len = make_key(cmd, key), budget = LASTREAD_ENTRY_MAX - len;
    redisReply *c;

    /* copied outside the lock; an answer not kept just means no fallback */
    if (len != 0 && (c = copy(reply, &budget, 0)) != NULL)
        memo_put(&l->m, key, len, c);
}

static int copy_out(const void *val, void *out)
{
    size_t budget = LASTREAD_ENTRY_MAX;

    *(redisReply **)out = copy(val, &budget, 0);
    return *(redisReply **)out != NULL;
}

redisReply *lastread_get(struct lastread *l, const struct route_cmd *cmd)
{
    char key[KEY_MAX];
    size_t len = make_key(cmd, key);
    redisReply *r = NULL;

    return len != 0 && memo_get(&l->m, key, len, -1, copy_out, &r) ? r : NULL;
}
