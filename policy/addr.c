/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * addr - envelope address normalisation; see addr.h.
 */
#include "addr.h"

#include <string.h>

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

int addr_normalise(const char *in, char *out, size_t outlen, const char **domain)
{
    size_t len;
    const char *p, *at;

    *domain = out;
    if (outlen == 0)
        return ADDR_BAD;
    out[0] = '\0';
    if (in == NULL)
        return ADDR_BAD;
    p = in;
    len = strlen(p);
    if (len >= 2 && p[0] == '<' && p[len - 1] == '>') {
        p++;
        len -= 2;
    }
    /* A source route "@a,@b:user@dom" names relays, not the mailbox. */
    if (len > 0 && p[0] == '@') {
        const char *colon = memchr(p, ':', len);
        if (colon == NULL)
            return ADDR_BAD;
        len -= (size_t)(colon + 1 - p);
        p = colon + 1;
    }
    if (len == 0)
        return ADDR_NULL;
    if (len > ADDR_MAX || len >= outlen)
        return ADDR_BAD;
    at = NULL;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x20 || c == 0x7f)
            return ADDR_BAD;
        if (c == '@')
            at = p + i;
        out[i] = lower((char)c);
    }
    out[len] = '\0';
    if (at == NULL) {
        *domain = out + len;
        return ADDR_OK;
    }
    size_t local = (size_t)(at - p), dom = len - local - 1;
    if (local == 0 || local > ADDR_LOCAL_MAX || dom == 0 || dom > ADDR_DOMAIN_MAX)
        return ADDR_BAD;
    /* "example.com." is the same domain as "example.com". */
    if (out[len - 1] == '.') {
        out[--len] = '\0';
        if (len == local + 1)
            return ADDR_BAD;
    }
    *domain = out + local + 1;
    return ADDR_OK;
}
