/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * cluster - key slots, CLUSTER SLOTS and redirections; see cluster.h.
 */
#include "cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

unsigned cluster_crc16(const char *buf, size_t len)
{
    unsigned crc = 0;

    for (size_t i = 0; i < len; i++) {
        crc ^= (unsigned)(unsigned char)buf[i] << 8;
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
    return crc;
}

int cluster_keyslot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);

    if (open != NULL) {
        size_t at = (size_t)(open - key) + 1;
        const char *close = memchr(open + 1, '}', len - at);
        /* "{}" is no tag: the whole key is hashed */
        if (close != NULL && close > open + 1)
            return (int)(cluster_crc16(open + 1, (size_t)(close - open - 1)) &
                         (CLUSTER_SLOTS - 1));
    }
    return (int)(cluster_crc16(key, len) & (CLUSTER_SLOTS - 1));
}

static int reply_int(const redisReply *r, long long lo, long long hi, long long *out)
{
    if (r->type != REDIS_REPLY_INTEGER || r->integer < lo || r->integer > hi)
        return -1;
    *out = r->integer;
    return 0;
}

/* One range: [first, last, [host, port, ...], replicas...]. Returns 1 when it
 * was added, 0 when its primary has no endpoint, -1 when it is malformed. */
static int parse_range(const redisReply *e, const char *from_host,
                       struct cluster_range *out)
{
    long long first, last, port;

    if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
        reply_int(e->element[0], 0, CLUSTER_SLOTS - 1, &first) != 0 ||
        reply_int(e->element[1], first, CLUSTER_SLOTS - 1, &last) != 0)
        return -1;
    const redisReply *node = e->element[2];
    if (node->type != REDIS_REPLY_ARRAY || node->elements < 2 ||
        node->element[0]->type != REDIS_REPLY_STRING ||
        reply_int(node->element[1], 1, 65535, &port) != 0)
        return -1;
    const redisReply *h = node->element[0];
    if (h->len >= CLUSTER_HOST_MAX || memchr(h->str, '\0', h->len) != NULL)
        return -1;
    if (h->len == 1 && h->str[0] == '?')
        return 0;
    out->first = (int)first;
    out->last = (int)last;
    out->port = (int)port;
    snprintf(out->host, sizeof(out->host), "%s", h->len ? h->str : from_host);
    return 1;
}

int cluster_parse_slots(const redisReply *r, const char *from_host,
                        struct cluster_range *out, size_t *n, char *err)
{
    *n = 0;
    if (r->type != REDIS_REPLY_ARRAY || r->elements > CLUSTER_MAX_RANGES) {
        snprintf(err, STORE_ERR_MAX, "redis cluster: malformed CLUSTER SLOTS reply");
        return -1;
    }
    for (size_t i = 0; i < r->elements; i++) {
        int rc = parse_range(r->element[i], from_host, &out[*n]);
        if (rc < 0) {
            snprintf(err, STORE_ERR_MAX,
                     "redis cluster: malformed CLUSTER SLOTS entry %zu", i + 1);
            return -1;
        }
        *n += (size_t)rc;
    }
    return 0;
}

int cluster_is_error(const char *text, size_t len, const char *word)
{
    size_t w = strlen(word);

    return len >= w && memcmp(text, word, w) == 0 && (len == w || text[w] == ' ');
}

/* "SLOT HOST:PORT" after the word; the host may be an IPv6 address (the port
 * follows its last ':') or empty (the node that answered). */
int cluster_parse_redirect(const char *text, size_t len, struct cluster_redirect *r)
{
    char buf[CLUSTER_HOST_MAX + 32], *end;
    int ask = cluster_is_error(text, len, "ASK");

    if (!ask && !cluster_is_error(text, len, "MOVED"))
        return 0;
    size_t skip = ask ? 4 : 6;
    if (len <= skip || len - skip >= sizeof(buf))
        return 0;
    memcpy(buf, text + skip, len - skip);
    buf[len - skip] = '\0';
    long slot = strtol(buf, &end, 10);
    if (end == buf || *end != ' ' || slot < 0 || slot >= CLUSTER_SLOTS)
        return 0;
    char *addr = end + 1, *colon = strrchr(addr, ':');
    if (colon == NULL || strchr(addr, ' ') != NULL)
        return 0;
    long port = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end != '\0' || port < 1 || port > 65535)
        return 0;
    *colon = '\0';
    r->ask = ask;
    r->slot = (int)slot;
    r->port = (int)port;
    snprintf(r->host, sizeof(r->host), "%s", addr);
    return 1;
}
