/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * domain - canonical domain names and parent walks; see domain.h.
 */
#include "domain.h"

#include <idn2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int ascii_only(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80)
            return 0;
    return 1;
}

/* Letters, digits, '-' and '_' (seen in real sender domains), labels 1..63. */
static int check_labels(const char *d)
{
    size_t label = 0, total = strlen(d);

    if (total == 0 || total > DOM_MAX)
        return -1;
    for (const char *p = d;; p++) {
        if (*p == '.' || *p == '\0') {
            if (label == 0 || label > DOM_LABEL_MAX)
                return -1;
            if (*p == '\0')
                return 0;
            label = 0;
            continue;
        }
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return -1;
        label++;
    }
}

int dom_canonical(const char *in, char *out, size_t outlen)
{
    char buf[4 * DOM_MAX + 2];
    size_t len = strlen(in);
    char *ascii = NULL;

    if (len == 0 || len >= sizeof(buf))
        return -1;
    memcpy(buf, in, len + 1);
    if (buf[len - 1] == '.')
        buf[--len] = '\0';
    if (ascii_only(buf)) {
        for (char *p = buf; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
        if (snprintf(out, outlen, "%s", buf) >= (int)outlen)
            return -1;
        return check_labels(out);
    }
    /* UTS 46 mapping (case folding, NFC) then A-labels: the UTF-8 and the
     * ACE spelling of one name must meet at the same key. */
    if (idn2_to_ascii_8z(buf, &ascii, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL) != IDN2_OK)
        return -1;
    int rc = snprintf(out, outlen, "%s", ascii) < (int)outlen ? 0 : -1;
    idn2_free(ascii);
    if (rc == 0)
        for (char *p = out; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
    return rc == 0 ? check_labels(out) : -1;
}

const char *dom_parent(const char *d)
{
    const char *dot = strchr(d, '.');
    return dot ? dot + 1 : NULL;
}

const char *dom_in_list(char *const *list, size_t n, const char *d)
{
    for (const char *s = d; s != NULL; s = dom_parent(s))
        for (size_t i = 0; i < n; i++)
            if (strcmp(list[i], s) == 0)
                return list[i];
    return NULL;
}
