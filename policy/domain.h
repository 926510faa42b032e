/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * domain - domain names as relay policy compares them.
 *
 * Interface:
 *   dom_canonical(in, out, outlen)
 *       the one form every comparison and every Redis key uses: lower case,
 *       no trailing dot, internationalised names as A-labels ("bücher.example"
 *       and "XN--BCHER-KVA.example." both become "xn--bcher-kva.example").
 *       0 ok, -1 not a domain name (empty label, label over 63 octets, name
 *       over 253, characters outside letters, digits, '-' and '_').
 *   dom_parent(d)      "a.b.c" -> "b.c" -> "c" -> NULL
 *   dom_in_list(list, n, d)
 *       the entry of a canonical list naming d or its nearest parent, or NULL
 *       (a listed domain covers its subdomains)
 */
#ifndef RM_DOMAIN_H
#define RM_DOMAIN_H

#include <stddef.h>

enum { DOM_MAX = 253, DOM_LABEL_MAX = 63 };

int dom_canonical(const char *in, char *out, size_t outlen);
const char *dom_parent(const char *d);
const char *dom_in_list(char *const *list, size_t n, const char *d);

#endif
