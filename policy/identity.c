/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * identity - customer identity from SASL login or client address; see identity.h.
 */
#include "identity.h"

#include <stdio.h>

void identity_fallback(const struct rm_config *cfg, const char *login,
                       const struct net_addr *addr, char *out, size_t len)
{
    char key[64];
    int idx;

    if (login != NULL && *login != '\0') {
        idx = cfg_customer_by_sasl(cfg, login);
        snprintf(out, len, "%s", idx >= 0 ? cfg->customers[idx].name : login);
        return;
    }
    if (addr == NULL) {
        snprintf(out, len, "ip:unknown");
        return;
    }
    if ((idx = cfg_customer_by_addr(cfg, addr)) >= 0) {
        snprintf(out, len, "%s", cfg->customers[idx].name);
        return;
    }
    net_addr_key(addr, key, sizeof(key));
    snprintf(out, len, "ip:%s", key);
}
