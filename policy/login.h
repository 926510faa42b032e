/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * login - the canonical form of a SASL login (relaymilter.conf(5),
 * "IDENTITY").
 *
 * SASL back ends accept one account under several spellings: Cyrus's sasldb
 * takes "bob" and "bob@relay.test" for the same account when relay.test is
 * its realm, and many back ends fold case. The MTA hands the milter the login
 * exactly as the client typed it ({auth_authen}). Every place that compares
 * or stores a login (customers[].sasl, the Redis hash PREFIX sasl, the
 * "sasl:LOGIN" customer of an unmapped login, relaymilter-ctl) uses this one
 * form, so no spelling of an account reaches another account's quota.
 *
 * Interface:
 *   login_canonical(realm, login, out, len)
 *       ASCII letters in lower case (other octets unchanged), then "@REALM"
 *       appended when realm is non-NULL and non-empty and login has no '@'.
 *       0 ok; -1 when login is empty, holds a control character, or the
 *       result does not fit in len or is longer than LOGIN_MAX.
 */
#ifndef RM_LOGIN_H
#define RM_LOGIN_H

#include <stddef.h>

/* Longest canonical login accepted; a longer one is refused, never cut
 * short (two cut logins could share a customer). */
enum { LOGIN_MAX = 200 };

int login_canonical(const char *realm, const char *login, char *out, size_t len);

#endif
