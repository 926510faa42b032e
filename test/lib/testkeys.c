/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * testkeys - counter key names for the tests; see testkeys.h.
 */
#include "testkeys.h"

#include <string.h>

#include "keys.h"
#include "quota.h"

const char *testkeys_counter(const char *prefix, char w, const char *customer,
                             const char *sender)
{
    static char ring[8][QUOTA_KEY_MAX];
    static int next;
    char *buf = ring[next++ % 8];
    const char *at = w != '\0' ? strchr("mhd", w) : NULL;

    if (at == NULL ||
        keys_counter(buf, QUOTA_KEY_MAX, prefix, sender ? KEYS_SENDER : KEYS_CUSTOMER,
                     (int)(at - "mhd"), customer, sender) < 0)
        return NULL;
    return buf;
}
