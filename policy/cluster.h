/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * cluster - what a Redis Cluster client must compute itself: key slots, the
 * slot map a node reports, and redirections. Pure functions, no I/O; the
 * routing over them is route.h.
 *
 * The rules are those of the Redis Cluster specification ("Key distribution
 * model", "Hash tags", "Redirection and resharding") and of the commands
 * CLUSTER SLOTS and CLUSTER KEYSLOT in the Redis documentation.
 *
 * Interface:
 *   cluster_crc16(buf, len)       CRC16-CCITT (XMODEM): polynomial 0x1021,
 *                                 initial value 0, as the specification's
 *                                 reference code
 *   cluster_keyslot(key, len)     the slot of a key: CRC16 of the hash tag
 *                                 (the text between the first '{' and the
 *                                 first '}' after it, when that is not
 *                                 empty), else of the whole key, mod 16384
 *   cluster_parse_slots(r, from_host, out, &n, err)
 *       a CLUSTER SLOTS reply as ranges {first, last, host, port} of their
 *       primaries (out holds r->elements entries). Fields after the port that
 *       newer servers add (node id, hostname, metadata) are ignored; an empty
 *       host means the node that answered (from_host); a range whose primary
 *       has no known endpoint ("?") is left out. 0, or -1 with err.
 *   cluster_parse_redirect(text, len, &r)
 *       "MOVED slot host:port" / "ASK slot host:port" (an error reply's text):
 *       1 and r filled, 0 when text is neither
 *   cluster_is_error(text, len, word)   1 when an error reply starts with word
 *                                       ("TRYAGAIN", "CLUSTERDOWN", ...)
 */
#ifndef RM_CLUSTER_H
#define RM_CLUSTER_H

#include <hiredis/hiredis.h>
#include <stddef.h>

enum {
    CLUSTER_SLOTS = 16384,
    CLUSTER_HOST_MAX = 256,
    /* every slot its own range: the most a reply can describe */
    CLUSTER_MAX_RANGES = CLUSTER_SLOTS
};

struct cluster_range {
    int first, last;
    char host[CLUSTER_HOST_MAX];
    int port;
};

struct cluster_redirect {
    int ask; /* 1 ASK (this command only), 0 MOVED (the slot has moved) */
    int slot;
    char host[CLUSTER_HOST_MAX]; /* "" when the reply names no host */
    int port;
};

unsigned cluster_crc16(const char *buf, size_t len);
int cluster_keyslot(const char *key, size_t len);
int cluster_parse_slots(const redisReply *r, const char *from_host,
                        struct cluster_range *out, size_t *n, char *err);
int cluster_parse_redirect(const char *text, size_t len, struct cluster_redirect *r);
int cluster_is_error(const char *text, size_t len, const char *word);

#endif
