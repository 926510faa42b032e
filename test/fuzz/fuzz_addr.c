/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * fuzz_addr - envelope addresses, domain names and network prefixes: the text
 * a client or a config file controls before it becomes a Redis key or a
 * lookup.
 *
 * The input, as a NUL-terminated string (and cut at any NUL inside), goes to
 * addr_normalise, dom_canonical, net_parse_addr and net_parse_prefix. Beyond
 * "no crash", each result must keep the contract its header states:
 *   addr_normalise   ADDR_OK: lower case, no control characters, local part
 *                    1..64 and domain 1..255 octets, domain points into out at
 *                    the part after the last '@' (or at the end without one);
 *                    ADDR_NULL: out is "". Upper-casing the
 *                    input's ASCII letters gives the same result (a sender gets
 *                    no fresh quota by writing BOB@). A short out buffer is
 *                    refused, never overrun.
 *   dom_canonical    0: letters, digits, '-', '_' in labels of 1..63, at most
 *                    253 octets, idempotent, case and one trailing dot do not
 *                    matter.
 *   net_parse_*      length within 0..128, host bits clear, the prefix contains
 *                    its own address; a parsed address is a full-length prefix;
 *                    net_addr_key text parses back to (a prefix containing) it.
 *   sentinel_split   "HOST:PORT" / "[V6]:PORT" from the config: 0 gives a
 *                    non-empty host that fits, without blanks, with ':' only
 *                    when bracketed, and a port 1..65535; never reads outside
 *                    the text.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "domain.h"
#include "netmatch.h"
#include "sentinel.h"

#define FUZZ_ASSERT(cond, what)                                                          \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "fuzz_addr: %s: %s (input \"%.300s\")\n", what, #cond,       \
                    cur_input);                                                          \
            abort();                                                                     \
        }                                                                                \
    } while (0)

static const char *cur_input = "";

static void upper_ascii(const char *in, char *out)
{
    for (; *in; in++, out++)
        *out = (*in >= 'a' && *in <= 'z') ? (char)(*in - 'a' + 'A') : *in;
    *out = '\0';
}

static void check_addr(const char *in)
{
    char out[ADDR_MAX + 1], out2[ADDR_MAX + 1], small[8];
    const char *dom = NULL, *dom2 = NULL;
    size_t inlen = strlen(in);
    char *up = malloc(inlen + 1);

    if (up == NULL)
        abort();
    memset(out, 'x', sizeof(out));
    int rc = addr_normalise(in, out, sizeof(out), &dom);
    FUZZ_ASSERT(rc == ADDR_OK || rc == ADDR_NULL || rc == ADDR_BAD, "addr: result");
    FUZZ_ASSERT(dom != NULL, "addr: domain pointer");
    if (rc == ADDR_NULL)
        FUZZ_ASSERT(out[0] == '\0', "addr: null sender text");
    if (rc == ADDR_OK) {
        size_t len = strnlen(out, sizeof(out));
        FUZZ_ASSERT(len < sizeof(out), "addr: out terminated");
        FUZZ_ASSERT(len > 0, "addr: ADDR_OK with empty text");
        FUZZ_ASSERT(dom >= out && dom <= out + len, "addr: domain inside out");
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)out[i];
            FUZZ_ASSERT(!(c >= 'A' && c <= 'Z'), "addr: lower case");
            FUZZ_ASSERT(c >= 0x20 && c != 0x7f, "addr: no control characters");
        }
        const char *at = strrchr(out, '@');
        if (at == NULL) {
            FUZZ_ASSERT(*dom == '\0', "addr: no '@', no domain");
        } else {
            FUZZ_ASSERT(dom == at + 1, "addr: domain after the last '@'");
            FUZZ_ASSERT(at > out && (size_t)(at - out) <= ADDR_LOCAL_MAX,
                        "addr: local part length");
            FUZZ_ASSERT(*dom != '\0' && strlen(dom) <= ADDR_DOMAIN_MAX,
                        "addr: domain length");
        }
    }
    /* The same address in capitals: the same key. */
    upper_ascii(in, up);
    memset(out2, 'y', sizeof(out2));
    int rc2 = addr_normalise(up, out2, sizeof(out2), &dom2);
    FUZZ_ASSERT(rc2 == rc, "addr: case changes the verdict");
    if (rc == ADDR_OK) {
        FUZZ_ASSERT(strcmp(out, out2) == 0, "addr: case changes the text");
        FUZZ_ASSERT(dom2 - out2 == dom - out, "addr: case moves the domain");
    }
    /* Short buffers: refused or fitted, never overrun (ASan watches). */
    for (size_t n = 0; n <= sizeof(small); n++) {
        char *buf = malloc(n ? n : 1);
        if (buf == NULL)
            abort();
        int r = addr_normalise(in, buf, n, &dom2);
        if (r == ADDR_OK)
            FUZZ_ASSERT(strlen(buf) < n && strcmp(buf, out) == 0, "addr: short buffer");
        free(buf);
    }
    free(up);
}

static int valid_canonical(const char *d)
{
    size_t label = 0, total = strlen(d);

    if (total == 0 || total > DOM_MAX)
        return 0;
    for (const char *p = d;; p++) {
        if (*p == '.' || *p == '\0') {
            if (label == 0 || label > DOM_LABEL_MAX)
                return 0;
            if (*p == '\0')
                return 1;
            label = 0;
            continue;
        }
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return 0;
        label++;
    }
}

static void check_domain(const char *in)
{
    char out[DOM_MAX + 1], again[DOM_MAX + 1], tiny[4];
    size_t inlen = strlen(in);
    char *up = malloc(inlen + 2);

    if (up == NULL)
        abort();
    int rc = dom_canonical(in, out, sizeof(out));
    FUZZ_ASSERT(rc == 0 || rc == -1, "domain: result");
    if (rc == 0) {
        FUZZ_ASSERT(valid_canonical(out), "domain: canonical form");
        FUZZ_ASSERT(dom_canonical(out, again, sizeof(again)) == 0 &&
                        strcmp(out, again) == 0,
                    "domain: idempotent");
        /* dom_parent walks to NULL through suffixes of out. */
        int steps = 0;
        for (const char *p = out; p != NULL; p = dom_parent(p)) {
            FUZZ_ASSERT(p >= out && p <= out + strlen(out), "domain: parent inside");
            FUZZ_ASSERT(++steps <= DOM_MAX, "domain: parent walk ends");
        }
        char *list[1] = {out};
        FUZZ_ASSERT(dom_in_list(list, 1, out) == out, "domain: in its own list");
    }
    upper_ascii(in, up);
    int rc2 = dom_canonical(up, again, sizeof(again));
    FUZZ_ASSERT(rc2 == rc, "domain: case changes the verdict");
    if (rc == 0)
        FUZZ_ASSERT(strcmp(out, again) == 0, "domain: case changes the name");
    /* (Inputs the function takes whole: with a dot added they must still fit.) */
    if (inlen > 0 && inlen < 4 * DOM_MAX && in[inlen - 1] != '.') {
        memcpy(up, in, inlen);
        up[inlen] = '.';
        up[inlen + 1] = '\0';
        rc2 = dom_canonical(up, again, sizeof(again));
        FUZZ_ASSERT(rc2 == rc, "domain: a trailing dot changes the verdict");
        if (rc == 0)
            FUZZ_ASSERT(strcmp(out, again) == 0, "domain: a trailing dot changes it");
    }
    if (dom_canonical(in, tiny, sizeof(tiny)) == 0)
        FUZZ_ASSERT(strlen(tiny) < sizeof(tiny), "domain: short buffer");
    free(up);
}

static void check_net(const char *in)
{
    struct net_prefix p;
    struct net_addr a;
    char key[128];

    memset(&p, 0xa5, sizeof(p));
    if (net_parse_prefix(in, &p) == 0) {
        FUZZ_ASSERT(p.len >= 0 && p.len <= 128, "net: prefix length");
        for (int bit = p.len; bit < 128; bit++)
            FUZZ_ASSERT((p.addr.b[bit / 8] & (0x80 >> (bit % 8))) == 0,
                        "net: host bits clear");
        FUZZ_ASSERT(net_contains(&p, &p.addr), "net: contains its own address");
        struct net_prefix t[2] = {p, p};
        t[0].value = 7;
        t[1].value = 8;
        t[1].len = 0;
        net_table_sort(t, 2);
        int hit = net_table_lookup(t, 2, &p.addr);
        FUZZ_ASSERT(hit == 7 || (p.len == 0 && hit == 8), "net: longest prefix first");
    }
    memset(&a, 0x5a, sizeof(a));
    if (net_parse_addr(in, &a) == 0) {
        FUZZ_ASSERT(net_parse_prefix(in, &p) == 0, "net: an address is a prefix");
        FUZZ_ASSERT(p.len == 128 && memcmp(&p.addr, &a, sizeof(a)) == 0,
                    "net: an address is a full-length prefix");
        net_addr_key(&a, key, sizeof(key));
        FUZZ_ASSERT(strnlen(key, sizeof(key)) < sizeof(key), "net: key terminated");
        FUZZ_ASSERT(net_parse_prefix(key, &p) == 0 && net_contains(&p, &a),
                    "net: the key names a prefix containing the address");
        net_addr_key(&a, key, 4); /* truncation is allowed, overrun is not */
    }
}

static void check_sentinel(const char *in)
{
    char host[256], tiny[4];
    int port = -1;

    if (sentinel_split(in, host, sizeof(host), &port) == 0) {
        size_t len = strnlen(host, sizeof(host));
        FUZZ_ASSERT(len > 0 && len < sizeof(host), "sentinel: host length");
        FUZZ_ASSERT(strpbrk(host, " \t") == NULL, "sentinel: no blanks");
        FUZZ_ASSERT(in[0] == '[' || strchr(host, ':') == NULL,
                    "sentinel: an IPv6 address without brackets");
        FUZZ_ASSERT(port >= 1 && port <= 65535, "sentinel: port range");
    }
    if (sentinel_split(in, tiny, sizeof(tiny), &port) == 0)
        FUZZ_ASSERT(strnlen(tiny, sizeof(tiny)) < sizeof(tiny), "sentinel: short buffer");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);

    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    cur_input = s;
    check_addr(s);
    check_domain(s);
    check_net(s);
    check_sentinel(s);
    cur_input = "";
    free(s);
    return 0;
}
