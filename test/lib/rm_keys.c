/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * rm-keys - print a Redis key name as policy/keys.c builds it, for the tests
 * written in Python and shell, so that no test spells the key layout.
 *
 *   rm-keys counter PREFIX W CUSTOMER [SENDER]   a usage counter, W = m|h|d;
 *                                                the sender scope with SENDER
 *   rm-keys sender-pattern PREFIX W CUSTOMER     SCAN MATCH pattern of the
 *                                                customer's sender counters
 *   rm-keys limits|domain PREFIX NAME            PREFIX limits:NAME, domain:NAME
 *   rm-keys sasl|blocked|events PREFIX
 *
 * The name goes to stdout without a newline; exit 0, or 2 on a usage error.
 */
#include <stdio.h>
#include <string.h>

#include "keys.h"

static int window(const char *w)
{
    const char *at = strlen(w) == 1 ? strchr("mhd", w[0]) : NULL;

    return at ? (int)(at - "mhd") : -1;
}

static int build(char *buf, size_t len, int argc, char **argv)
{
    const char *what = argv[1], *prefix = argv[2];

    if (strcmp(what, "counter") == 0 && (argc == 5 || argc == 6) && window(argv[3]) >= 0)
        return keys_counter(buf, len, prefix, argc == 6 ? KEYS_SENDER : KEYS_CUSTOMER,
                            window(argv[3]), argv[4], argc == 6 ? argv[5] : NULL);
    if (strcmp(what, "sender-pattern") == 0 && argc == 5 && window(argv[3]) >= 0)
        return keys_sender_pattern(buf, len, prefix, window(argv[3]), argv[4]);
    if (strcmp(what, "limits") == 0 && argc == 4)
        return keys_limits(buf, len, prefix, argv[3]);
    if (strcmp(what, "domain") == 0 && argc == 4)
        return keys_domain(buf, len, prefix, argv[3]);
    if (strcmp(what, "sasl") == 0 && argc == 3)
        return keys_sasl(buf, len, prefix);
    if (strcmp(what, "blocked") == 0 && argc == 3)
        return keys_blocked(buf, len, prefix);
    if (strcmp(what, "events") == 0 && argc == 3)
        return keys_events(buf, len, prefix);
    return -1;
}

int main(int argc, char **argv)
{
    char buf[4096];

    if (argc < 3 || build(buf, sizeof(buf), argc, argv) < 0) {
        fputs(
            "usage: rm-keys counter PREFIX W CUSTOMER [SENDER] | sender-pattern PREFIX W "
            "CUSTOMER | limits|domain PREFIX NAME | sasl|blocked|events PREFIX\n",
            stderr);
        return 2;
    }
    fputs(buf, stdout);
    return 0;
}
