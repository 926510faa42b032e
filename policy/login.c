/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * login - canonical SASL logins; see login.h.
 */
#include "login.h"

#include <string.h>

/* ASCII only: a locale's idea of case must not change which customer pays. */
static char ascii_lower(char c)
{
    if (c >= 'A' && c <= 'Z')
        return (char)(c - 'A' + 'a');
    return c;
}

int login_canonical(const char *realm, const char *login, char *out, size_t len)
{
    size_t n = strlen(login);
    int with_realm = realm != NULL && *realm != '\0' && strchr(login, '@') == NULL;
    size_t total = n + (with_realm ? 1 + strlen(realm) : 0);

    if (n == 0 || total > LOGIN_MAX || total >= len)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)login[i] < 0x20 || login[i] == 0x7f)
            return -1;
        out[i] = ascii_lower(login[i]);
    }
    out[n] = '\0';
    if (with_realm) {
        out[n] = '@';
        for (size_t i = 0; realm[i]; i++)
            out[n + 1 + i] = ascii_lower(realm[i]);
        out[total] = '\0';
    }
    return 0;
}
