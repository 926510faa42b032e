/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_cluster - what a Redis Cluster client computes itself (cluster.h):
 * CRC16 and key slots (the Redis Cluster specification's examples), the
 * slot map from CLUSTER SLOTS replies as Redis 6 and 7 send them (parsed by
 * hiredis's own reader from RESP text), and MOVED / ASK / TRYAGAIN.
 */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "store.h"
#include "testutil.h"

/* The reply hiredis makes of RESP text. */
static redisReply *reply_of(const char *resp)
{
    redisReader *rd = redisReaderCreate();
    void *r = NULL;

    ck_assert_ptr_nonnull(rd);
    ck_assert_int_eq(redisReaderFeed(rd, resp, strlen(resp)), REDIS_OK);
    ck_assert_int_eq(redisReaderGetReply(rd, &r), REDIS_OK);
    ck_assert_ptr_nonnull(r);
    redisReaderFree(rd);
    return r;
}

static int slot(const char *key)
{
    return cluster_keyslot(key, strlen(key));
}

START_TEST(crc16_and_slots)
{
    /* the specification's check value, and its examples */
    ck_assert_uint_eq(cluster_crc16("123456789", 9), 0x31c3);
    ck_assert_int_eq(slot("foo"), 12182);
    ck_assert_int_eq(slot("{user1000}.following"), slot("{user1000}.followers"));
    ck_assert_int_eq(slot("{user1000}.following"), slot("user1000"));
    ck_assert_int_eq(slot("foo{}{bar}"), (int)(cluster_crc16("foo{}{bar}", 10) & 16383));
    ck_assert_int_eq(slot("foo{{bar}}zap"), slot("{bar"));
    ck_assert_int_eq(slot("foo{bar}{zap}"), slot("bar"));
    ck_assert_int_eq(slot("{"), (int)(cluster_crc16("{", 1) & 16383));
    ck_assert_int_eq(slot(""), 0);
    /* every counter of a customer in its slot, whatever the sender holds */
    ck_assert_int_eq(slot("relay:qc:m:{acme}"), slot("relay:qs:d:{acme}:a{b}@x"));
    ck_assert_int_ne(slot("relay:qc:m:{acme}"), slot("relay:qc:m:{acme2}"));
    /* a NUL is part of the key */
    ck_assert_int_ne(cluster_keyslot("a\0b", 3), slot("a"));
}
END_TEST

/* Redis 7: node id and a metadata map (an array under RESP2) after the port;
 * Redis 6: the id only; replicas after the primary. */
static const char redis7[] =
    "*3\r\n"
    "*4\r\n:0\r\n:5460\r\n*4\r\n$8\r\n10.0.0.1\r\n:7000\r\n$3\r\nid1\r\n*0\r\n"
    "*4\r\n$8\r\n10.0.0.4\r\n:7003\r\n$3\r\nid4\r\n*2\r\n$8\r\nhostname\r\n$2\r\nh4\r\n"
    "*3\r\n:5461\r\n:10922\r\n*3\r\n$0\r\n\r\n:7001\r\n$3\r\nid2\r\n"
    "*3\r\n:10923\r\n:16383\r\n*2\r\n$5\r\n[::1]\r\n:7002\r\n";

START_TEST(slots_redis7)
{
    redisReply *r = reply_of(redis7);
    struct cluster_range rg[3];
    char err[STORE_ERR_MAX];
    size_t n;

    ck_assert_int_eq(cluster_parse_slots(r, "10.0.0.9", rg, &n, err), 0);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(rg[0].first, 0);
    ck_assert_int_eq(rg[0].last, 5460);
    ck_assert_str_eq(rg[0].host, "10.0.0.1");
    ck_assert_int_eq(rg[0].port, 7000);
    ck_assert_str_eq(rg[1].host, "10.0.0.9"); /* "": the node that answered */
    ck_assert_int_eq(rg[1].port, 7001);
    ck_assert_str_eq(rg[2].host, "[::1]");
    ck_assert_int_eq(rg[2].last, 16383);
    freeReplyObject(r);
}
END_TEST

START_TEST(slots_unknown_endpoint_and_garbage)
{
    struct cluster_range rg[4];
    char err[STORE_ERR_MAX];
    size_t n;
    redisReply *r = reply_of("*2\r\n*3\r\n:0\r\n:9\r\n*2\r\n$1\r\n?\r\n:7000\r\n"
                             "*3\r\n:10\r\n:20\r\n*2\r\n$1\r\na\r\n:7001\r\n");

    /* "?": no known endpoint, the range is left out */
    ck_assert_int_eq(cluster_parse_slots(r, "x", rg, &n, err), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(rg[0].first, 10);
    freeReplyObject(r);
    /* each with its length: one holds a NUL */
#define RESP(text)                                                                       \
    {                                                                                    \
        text, sizeof(text) - 1                                                           \
    }
    static const struct {
        const char *text;
        size_t len;
    } bad[] = {
        RESP(":1\r\n"),                                              /* not an array */
        RESP("*1\r\n:5\r\n"),                                        /* not a range */
        RESP("*1\r\n*3\r\n:9\r\n:0\r\n*2\r\n$1\r\na\r\n:1\r\n"),     /* last < first */
        RESP("*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\na\r\n:1\r\n"), /* slot 16384 */
        RESP("*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\na\r\n:0\r\n"),     /* port 0 */
        RESP("*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\na\r\n$4\r\n7000\r\n"), /* port text */
        RESP("*1\r\n*3\r\n:0\r\n:1\r\n*1\r\n$1\r\na\r\n"),               /* no port */
        RESP("*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$3\r\na\0b\r\n:1\r\n"),      /* NUL in host */
        RESP("*1\r\n*2\r\n:0\r\n:1\r\n"),                                /* no node */
    };
#undef RESP
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        redisReader *rd = redisReaderCreate();
        void *b = NULL;
        ck_assert_int_eq(redisReaderFeed(rd, bad[i].text, bad[i].len), REDIS_OK);
        ck_assert_int_eq(redisReaderGetReply(rd, &b), REDIS_OK);
        ck_assert_ptr_nonnull(b);
        err[0] = '\0';
        ck_assert_msg(cluster_parse_slots(b, "x", rg, &n, err) == -1, "case %zu", i);
        ck_assert_msg(err[0] != '\0', "case %zu: no reason", i);
        freeReplyObject(b);
        redisReaderFree(rd);
    }
}
END_TEST

static void redirect(const char *text, int ok, int ask, int slotno, const char *host,
                     int port)
{
    struct cluster_redirect rd;

    memset(&rd, 0, sizeof(rd));
    ck_assert_msg(cluster_parse_redirect(text, strlen(text), &rd) == ok, "\"%s\"", text);
    if (!ok)
        return;
    ck_assert_int_eq(rd.ask, ask);
    ck_assert_int_eq(rd.slot, slotno);
    ck_assert_str_eq(rd.host, host);
    ck_assert_int_eq(rd.port, port);
}

START_TEST(redirections)
{
    redirect("MOVED 3999 127.0.0.1:6381", 1, 0, 3999, "127.0.0.1", 6381);
    redirect("ASK 3999 127.0.0.1:6381", 1, 1, 3999, "127.0.0.1", 6381);
    redirect("MOVED 1 ::1:7000", 1, 0, 1, "::1", 7000);   /* IPv6: the last ':' */
    redirect("MOVED 16383 :7000", 1, 0, 16383, "", 7000); /* the node that answered */
    redirect("MOVED 2 ?:7000", 1, 0, 2, "?", 7000);       /* endpoint unknown */
    redirect("MOVED 16384 a:1", 0, 0, 0, "", 0);
    redirect("MOVED -1 a:1", 0, 0, 0, "", 0);
    redirect("MOVED x a:1", 0, 0, 0, "", 0);
    redirect("MOVEDX 1 a:1", 0, 0, 0, "", 0);
    redirect("ASK 1 a:99999", 0, 0, 0, "", 0);
    redirect("ASK 1 a", 0, 0, 0, "", 0);
    redirect("ASK 1 a:1 b", 0, 0, 0, "", 0);
    redirect("ERR unknown command", 0, 0, 0, "", 0);
    redirect("MOVED", 0, 0, 0, "", 0);
    ck_assert(cluster_is_error("TRYAGAIN Multiple keys request during rehashing", 47,
                               "TRYAGAIN"));
    ck_assert(cluster_is_error("CLUSTERDOWN", 11, "CLUSTERDOWN"));
    ck_assert(!cluster_is_error("TRYAGAINX", 9, "TRYAGAIN"));
    ck_assert(!cluster_is_error("TRY", 3, "TRYAGAIN"));
}
END_TEST

static Suite *cluster_suite(void)
{
    Suite *s = suite_create("cluster");
    TCase *t = tcase_create("cluster");

    tcase_add_test(t, crc16_and_slots);
    tcase_add_test(t, slots_redis7);
    tcase_add_test(t, slots_unknown_endpoint_and_garbage);
    tcase_add_test(t, redirections);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return tu_run(cluster_suite());
}
