/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * identity - customer identity from SASL login or client address; see
 * identity.h.
 */
#include "identity.h"

#include <stdio.h>
#include <string.h>

const char *const identity_reserved[IDENTITY_NRESERVED] = {IDENTITY_IP_PREFIX,
                                                           IDENTITY_SASL_PREFIX};
const char identity_forbidden[] = "{}\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c"
                                  "\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18"
                                  "\x19\x1a\x1b\x1c\x1d\x1e\x1f\x7f";

enum identity_source identity_fallback(const struct rm_config *cfg, const char *login,
                                       const struct net_addr *addr, char *out, size_t len)
{
    char key[64];
    int idx;

    if (login != NULL && *login != '\0') {
        if ((idx = cfg_customer_by_sasl(cfg, login)) >= 0) {
            snprintf(out, len, "%s", cfg->customers[idx].name);
            return ID_CONFIG;
        }
        snprintf(out, len, "%s%s", IDENTITY_SASL_PREFIX, login);
        return ID_UNKNOWN_LOGIN;
    }
    if (addr != NULL && (idx = cfg_customer_by_addr(cfg, addr)) >= 0) {
        snprintf(out, len, "%s", cfg->customers[idx].name);
        return ID_NETWORK;
    }
    if (addr == NULL) {
        snprintf(out, len, "%sunknown", IDENTITY_IP_PREFIX);
        return ID_ADDRESS;
    }
    net_addr_key(addr, key, sizeof(key));
    snprintf(out, len, "%s%s", IDENTITY_IP_PREFIX, key);
    return ID_ADDRESS;
}

const char *identity_name_problem(const char *name, int derived)
{
    if (*name == '\0')
        return "is empty";
    if (strlen(name) > IDENTITY_NAME_MAX)
        return "is too long";
    if (name[strcspn(name, identity_forbidden)] != '\0')
        return "holds '{', '}' or a control character";
    for (int i = 0; !derived && i < IDENTITY_NRESERVED; i++)
        if (strncmp(name, identity_reserved[i], strlen(identity_reserved[i])) == 0)
            return "begins with a reserved prefix (\"ip:\" and \"sasl:\" are "
                   "relaymilter's own names for unmapped logins and addresses)";
    return NULL;
}
