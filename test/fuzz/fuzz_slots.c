/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * fuzz_slots - what a Redis Cluster node may answer that the client reads
 * itself (cluster.h): CLUSTER SLOTS replies, MOVED / ASK / TRYAGAIN errors,
 * and the keys it computes slots of.
 *
 * The input is RESP, read by hiredis's own reader as from a node (arrays
 * announcing more than 100000 elements are skipped: hiredis allocates the
 * table before any element arrives). Each reply goes to
 * cluster_parse_slots, and a string or error reply's text to
 * cluster_parse_redirect and cluster_keyslot. Beyond "no crash", the
 * contracts of cluster.h hold:
 *   cluster_parse_slots  0: at most one range per element, each with
 *                        0 <= first <= last <= 16383, a port 1..65535 and a
 *                        terminated host that is not "?"; -1: a reason
 *   cluster_parse_redirect  1: a slot 0..16383, a port 1..65535, a
 *                        terminated host
 *   cluster_keyslot      0..16383, and equal for a key and "{tag}" when the
 *                        key's tag is tag
 */
#include <hiredis/hiredis.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "resplimit.h"
#include "store.h"

enum { MAX_ELEMENTS = 100000 };

#define FUZZ_ASSERT(cond, what)                                                          \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "fuzz_slots: %s: %s\n", what, #cond);                        \
            abort();                                                                     \
        }                                                                                \
    } while (0)

static void check_slots(const redisReply *r)
{
    char err[STORE_ERR_MAX] = "";
    size_t n = 99;
    struct cluster_range *rg = calloc(r->elements + 1, sizeof(*rg));

    FUZZ_ASSERT(rg != NULL, "memory");
    int rc = cluster_parse_slots(r, "from.example", rg, &n, err);
    FUZZ_ASSERT(rc == 0 || rc == -1, "result");
    if (rc == -1)
        FUZZ_ASSERT(err[0] != '\0', "a failure has a reason");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        FUZZ_ASSERT(n <= r->elements, "ranges");
        FUZZ_ASSERT(0 <= rg[i].first && rg[i].first <= rg[i].last &&
                        rg[i].last < CLUSTER_SLOTS,
                    "range bounds");
        FUZZ_ASSERT(rg[i].port >= 1 && rg[i].port <= 65535, "port");
        FUZZ_ASSERT(memchr(rg[i].host, '\0', sizeof(rg[i].host)) != NULL, "host ends");
        FUZZ_ASSERT(strcmp(rg[i].host, "?") != 0, "unknown endpoint kept");
    }
    free(rg);
}

static void check_text(const char *s, size_t len)
{
    struct cluster_redirect rd;
    char tagged[CLUSTER_HOST_MAX + 2];

    if (cluster_parse_redirect(s, len, &rd)) {
        FUZZ_ASSERT(rd.slot >= 0 && rd.slot < CLUSTER_SLOTS, "redirect slot");
        FUZZ_ASSERT(rd.port >= 1 && rd.port <= 65535, "redirect port");
        FUZZ_ASSERT(memchr(rd.host, '\0', sizeof(rd.host)) != NULL, "redirect host ends");
    }
    int slot = cluster_keyslot(s, len);
    FUZZ_ASSERT(slot >= 0 && slot < CLUSTER_SLOTS, "key slot");
    const char *open = memchr(s, '{', len);
    const char *close = open ? memchr(open + 1, '}', len - (size_t)(open - s) - 1) : NULL;
    size_t tag = close ? (size_t)(close - open - 1) : 0;
    if (tag > 0 && tag < CLUSTER_HOST_MAX) { /* the tag's bytes, NULs and all */
        tagged[0] = '{';
        memcpy(tagged + 1, open + 1, tag);
        tagged[tag + 1] = '}';
        FUZZ_ASSERT(cluster_keyslot(tagged, tag + 2) == slot, "the tag decides");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    redisReader *rd;
    void *reply = NULL;

    if (resp_huge_array(data, size, MAX_ELEMENTS) || (rd = redisReaderCreate()) == NULL)
        return 0;
    if (redisReaderFeed(rd, (const char *)data, size) == REDIS_OK)
        while (redisReaderGetReply(rd, &reply) == REDIS_OK && reply != NULL) {
            const redisReply *r = reply;
            if (r->type == REDIS_REPLY_ARRAY)
                check_slots(r);
            else if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_ERROR ||
                     r->type == REDIS_REPLY_STATUS)
                check_text(r->str, r->len);
            freeReplyObject(reply);
            reply = NULL;
        }
    redisReaderFree(rd);
    return 0;
}
