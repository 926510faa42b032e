/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * addr - envelope address normalisation.
 *
 * Interface:
 *   addr_normalise(in, out, outlen, &domain)
 *       in is the MTA's view of MAIL FROM / RCPT TO ("<Bob@Example.COM>",
 *       possibly a source route "<@relay:bob@example.com>"). On success out
 *       holds the address lower-cased ("bob@example.com", "" for the null
 *       sender) and domain points into out at the domain part (empty when the
 *       address has none). Returns ADDR_OK, ADDR_NULL or ADDR_BAD.
 *
 * Lower-casing the whole address is deliberate: quotas count per sender, and a
 * sender must not get a fresh quota by writing BOB@ instead of bob@.
 * Control characters, NUL and over-long parts are refused (ADDR_BAD).
 */
#ifndef RM_ADDR_H
#define RM_ADDR_H

#include <stddef.h>

enum { ADDR_OK, ADDR_NULL, ADDR_BAD };

/* RFC 5321 4.5.3.1: 64 octets of local part, 255 of domain. */
enum { ADDR_LOCAL_MAX = 64, ADDR_DOMAIN_MAX = 255, ADDR_MAX = 64 + 1 + 255 };

int addr_normalise(const char *in, char *out, size_t outlen, const char **domain);

#endif
