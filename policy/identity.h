/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * identity - who the customer behind a message is, from facts the client
 * cannot forge (SPEC 5).
 *
 * Interface:
 *   identity_fallback(cfg, login, addr, out, len)
 *       the customer as far as the config knows: a customers[].sasl entry,
 *       else the SASL login itself; without a login, the most specific
 *       customers[].networks prefix; else "ip:ADDRESS" (IPv6 per /64).
 *       login is "" or NULL when the client did not authenticate; addr NULL
 *       when the client is not an IP peer (then "ip:unknown").
 *   The store's lookup may still replace it: the relay:sasl hash, consulted
 *   in the same round trip as the limits, outranks the config.
 */
#ifndef RM_IDENTITY_H
#define RM_IDENTITY_H

#include <stddef.h>

#include "config.h"
#include "netmatch.h"

void identity_fallback(const struct rm_config *cfg, const char *login,
                       const struct net_addr *addr, char *out, size_t len);

#endif
