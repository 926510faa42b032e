/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * keys - Redis key names; see keys.h.
 */
#include "keys.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "limits.h"
#include "log.h"

static int fmt(char *buf, size_t len, const char *f, ...) RM_PRINTF(3, 4);

static int fmt(char *buf, size_t len, const char *f, ...)
{
    va_list ap;

    va_start(ap, f);
    int n = vsnprintf(buf, len, f, ap);
    va_end(ap);
    return (n < 0 || (size_t)n >= len) ? -1 : n;
}

int keys_sasl(char *buf, size_t len, const char *prefix)
{
    return fmt(buf, len, "%ssasl", prefix);
}

int keys_limits(char *buf, size_t len, const char *prefix, const char *customer)
{
    return fmt(buf, len, "%slimits:%s", prefix, customer ? customer : "");
}

int keys_domain(char *buf, size_t len, const char *prefix, const char *domain)
{
    return fmt(buf, len, "%sdomain:%s", prefix, domain ? domain : "");
}

int keys_blocked(char *buf, size_t len, const char *prefix)
{
    return fmt(buf, len, "%sblocked-rcpt-domains", prefix);
}

int keys_events(char *buf, size_t len, const char *prefix)
{
    return fmt(buf, len, "%sevents", prefix);
}

int keys_counter(char *buf, size_t len, const char *prefix, enum keys_scope scope,
                 int window, const char *customer, const char *sender)
{
    if (window < 0 || window >= LIM_NWINDOWS)
        msg_panic("keys_counter: window %d", window);
    /* The braces are the Redis Cluster hash tag: every counter of one
     * customer hashes to one slot, so the charge of a message stays one
     * atomic script call on one node. Customer names and the prefix hold no
     * brace (identity_name_problem, redis.prefix), so the tag is exactly the
     * customer, and no sender text can end it early or forge another's key. */
    if (scope == KEYS_CUSTOMER)
        return fmt(buf, len, "%sqc:%s:{%s}", prefix, lim_window_tag[window], customer);
    return fmt(buf, len, "%sqs:%s:{%s}:%s", prefix, lim_window_tag[window], customer,
               sender);
}

/* Redis's glob (SCAN MATCH) treats * ? [ ] and \ specially. */
static int glob_escape(char *buf, size_t len, const char *s)
{
    size_t n = 0;

    for (; *s; s++) {
        if (strchr("*?[]\\", *s) != NULL) {
            if (n + 1 >= len)
                return -1;
            buf[n++] = '\\';
        }
        if (n + 1 >= len)
            return -1;
        buf[n++] = *s;
    }
    buf[n] = '\0';
    return (int)n;
}

int keys_sender_pattern(char *buf, size_t len, const char *prefix, int window,
                        const char *customer)
{
    char key[1024], esc[2100];

    /* The key of an empty sender is the literal part every sender key of
     * this customer and window starts with. */
    if (keys_counter(key, sizeof(key), prefix, KEYS_SENDER, window, customer, "") < 0 ||
        glob_escape(esc, sizeof(esc), key) < 0)
        return -1;
    return fmt(buf, len, "%s*", esc);
}

const char *keys_counter_sender(const char *key, size_t keylen, const char *prefix,
                                int window, const char *customer)
{
    char head[1024];
    int n = keys_counter(head, sizeof(head), prefix, KEYS_SENDER, window, customer, "");

    if (n < 0 || keylen < (size_t)n || memcmp(key, head, (size_t)n) != 0)
        return NULL;
    return key + n;
}
