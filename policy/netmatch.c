/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * netmatch - prefixes and longest-prefix lookup; see netmatch.h.
 */
#include "netmatch.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static int is_v4(const struct net_addr *a)
{
    return memcmp(a->b, v4mapped, sizeof(v4mapped)) == 0;
}

int net_parse_addr(const char *text, struct net_addr *a)
{
    struct in_addr in4;

    if (inet_pton(AF_INET, text, &in4) == 1) {
        memcpy(a->b, v4mapped, sizeof(v4mapped));
        memcpy(a->b + 12, &in4, 4);
        return 0;
    }
    return inet_pton(AF_INET6, text, a->b) == 1 ? 0 : -1;
}

int net_parse_prefix(const char *text, struct net_prefix *p)
{
    char buf[64];
    const char *slash = strchr(text, '/');
    size_t alen = slash ? (size_t)(slash - text) : strlen(text);

    if (alen == 0 || alen >= sizeof(buf))
        return -1;
    memcpy(buf, text, alen);
    buf[alen] = '\0';
    if (net_parse_addr(buf, &p->addr) != 0)
        return -1;
    int v4 = is_v4(&p->addr) && strchr(buf, ':') == NULL;
    int max = v4 ? 32 : 128;
    int len = max;
    if (slash) {
        char *end;
        const char *digits = slash + 1;
        if (*digits < '0' || *digits > '9')
            return -1;
        long l = strtol(digits, &end, 10);
        if (*end != '\0' || l < 0 || l > max)
            return -1;
        len = (int)l;
    }
    p->len = v4 ? len + 96 : len;
    /* Clear host bits so "192.0.2.7/24" means the network, as routers read it. */
    for (int bit = p->len; bit < 128; bit++)
        p->addr.b[bit / 8] &= (unsigned char)~(0x80 >> (bit % 8));
    return 0;
}

int net_from_sockaddr(const struct sockaddr *sa, struct net_addr *a)
{
    if (sa == NULL)
        return -1;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        memcpy(a->b, v4mapped, sizeof(v4mapped));
        memcpy(a->b + 12, &s4->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        memcpy(a->b, &s6->sin6_addr, 16);
        return 0;
    }
    return -1;
}

int net_contains(const struct net_prefix *p, const struct net_addr *a)
{
    int full = p->len / 8, rest = p->len % 8;

    if (memcmp(p->addr.b, a->b, (size_t)full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (p->addr.b[full] & mask) == (a->b[full] & mask);
}

static int by_len_desc(const void *x, const void *y)
{
    const struct net_prefix *a = x, *b = y;
    return b->len - a->len;
}

void net_table_sort(struct net_prefix *t, size_t n)
{
    if (n > 1)
        qsort(t, n, sizeof(*t), by_len_desc);
}

/* The table is sorted longest prefix first, so the first hit is the most
 * specific one; it is small (the config's networks), so a scan is cheap. */
int net_table_lookup(const struct net_prefix *t, size_t n, const struct net_addr *a)
{
    for (size_t i = 0; i < n; i++)
        if (net_contains(&t[i], a))
            return t[i].value;
    return -1;
}

void net_addr_key(const struct net_addr *a, char *buf, size_t len)
{
    if (is_v4(a)) {
        inet_ntop(AF_INET, a->b + 12, buf, (socklen_t)len);
        return;
    }
    /* One host usually owns a whole /64: counting per address would let it
     * rotate addresses to escape its quota. */
    struct net_addr net = *a;
    memset(net.b + 8, 0, 8);
    char tmp[INET6_ADDRSTRLEN];
    inet_ntop(AF_INET6, net.b, tmp, sizeof(tmp));
    snprintf(buf, len, "%s/64", tmp);
}

void net_prefix_text(const struct net_prefix *p, char *buf, size_t len)
{
    char tmp[INET6_ADDRSTRLEN];
    int v4 = is_v4(&p->addr) && p->len >= 96;

    if (v4)
        inet_ntop(AF_INET, p->addr.b + 12, tmp, sizeof(tmp));
    else
        inet_ntop(AF_INET6, p->addr.b, tmp, sizeof(tmp));
    snprintf(buf, len, "%s/%d", tmp, v4 ? p->len - 96 : p->len);
}
