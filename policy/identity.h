/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * identity - who the customer behind a message is, from facts the client
 * cannot forge (relaymilter.conf(5), "IDENTITY").
 *
 * Interface:
 *   identity_fallback(cfg, login, addr, out, len)
 *       the customer as far as the config knows. login is the canonical SASL
 *       login (login.h), "" or NULL when the client did not authenticate:
 *       its customers[].sasl entry (ID_CONFIG), else "sasl:LOGIN"
 *       (ID_UNKNOWN_LOGIN: sasl.unknown decides what happens to it). Without
 *       a login: the most specific customers[].networks prefix (ID_NETWORK),
 *       else "ip:ADDRESS", IPv6 per /64 (ID_ADDRESS); addr NULL when the
 *       client is not an IP peer ("ip:unknown").
 *       The store's lookup may still replace it: the Redis hash PREFIX sasl,
 *       read in the same round trip as the limits, outranks the config.
 *   identity_name_problem(name, derived)
 *       NULL when name may name a customer, else what is wrong with it. A
 *       name from the config or the Redis hash (derived 0) may not begin
 *       with a reserved prefix ("ip:", "sasl:"), which only names that
 *       relaymilter makes itself carry, so that a login or an address can
 *       never become a configured customer. No name may be empty, be longer
 *       than IDENTITY_NAME_MAX, or hold '{', '}' or a control character
 *       (relaymilter.conf(5), "REDIS KEYS").
 *   identity_reserved[]    the IDENTITY_NRESERVED reserved prefixes
 *   identity_forbidden[]   the characters no name may hold: '{', '}' (a
 *                          Redis Cluster hash tag) and the control characters
 */
#ifndef RM_IDENTITY_H
#define RM_IDENTITY_H

#include <stddef.h>

#include "config.h"
#include "login.h"
#include "netmatch.h"

#define IDENTITY_IP_PREFIX "ip:"
#define IDENTITY_SASL_PREFIX "sasl:"

/* "sasl:" and the longest canonical login. */
enum { IDENTITY_NAME_MAX = 5 + LOGIN_MAX };

enum { IDENTITY_NRESERVED = 2 };

enum identity_source { ID_CONFIG, ID_UNKNOWN_LOGIN, ID_NETWORK, ID_ADDRESS };

extern const char *const identity_reserved[IDENTITY_NRESERVED];
extern const char identity_forbidden[];

enum identity_source identity_fallback(const struct rm_config *cfg, const char *login,
                                       const struct net_addr *addr, char *out,
                                       size_t len);
const char *identity_name_problem(const char *name, int derived);

#endif
