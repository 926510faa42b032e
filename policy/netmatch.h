/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * netmatch - IPv4/IPv6 prefixes and longest-prefix lookup.
 *
 * Interface:
 *   net_parse_prefix(text, &p)   "192.0.2.0/24", "2001:db8::/32", or a bare
 *                                address (a host prefix); 0 ok, -1 malformed
 *   net_parse_addr(text, &a)     an address; 0 ok, -1 malformed
 *   net_from_sockaddr(sa, &a)    from libmilter's connect info; -1 if not IP
 *   net_contains(&p, &a)         1 when a lies within p
 *   net_table_sort(t, n)         order a table for net_table_lookup
 *   net_table_lookup(t, n, &a)   index of the longest prefix containing a, or -1
 *   net_addr_key(&a, buf, len)   the identity text: IPv4 dotted, IPv6 as its /64
 *   net_prefix_text(&p, buf, len)  "192.0.2.0/24", "2001:db8::/32": the form
 *                                net_parse_prefix reads back
 *
 * IPv4 is kept as IPv4-mapped IPv6 (::ffff:a.b.c.d, prefix length + 96) so one
 * comparison serves both families and an IPv4 client reached over an IPv6
 * socket matches IPv4 prefixes.
 */
#ifndef RM_NETMATCH_H
#define RM_NETMATCH_H

#include <stddef.h>
#include <sys/socket.h>

struct net_addr {
    unsigned char b[16];
};

struct net_prefix {
    struct net_addr addr;
    int len; /* 0..128, in the mapped space */
    int value;
};

int net_parse_prefix(const char *text, struct net_prefix *p);
int net_parse_addr(const char *text, struct net_addr *a);
int net_from_sockaddr(const struct sockaddr *sa, struct net_addr *a);
int net_contains(const struct net_prefix *p, const struct net_addr *a);
void net_table_sort(struct net_prefix *t, size_t n);
int net_table_lookup(const struct net_prefix *t, size_t n, const struct net_addr *a);
void net_addr_key(const struct net_addr *a, char *buf, size_t len);
void net_prefix_text(const struct net_prefix *p, char *buf, size_t len);

#endif
