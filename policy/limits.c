/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * limits - limit fields, values and inheritance; see limits.h.
 */
#include "limits.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

const int lim_window_seconds[LIM_NWINDOWS] = {60, 3600, 86400};
const char *const lim_window_tag[LIM_NWINDOWS] = {"m", "h", "d"};

static const struct lim_def {
    const char *name;
    enum lim_kind kind;
    long long builtin;
} lim_table[LIM_NFIELDS] = {
    [LIM_MSG_MINUTE] = {"messages_per_minute", LIM_KIND_COUNT, 60},
    [LIM_MSG_HOUR] = {"messages_per_hour", LIM_KIND_COUNT, 1000},
    [LIM_MSG_DAY] = {"messages_per_day", LIM_KIND_COUNT, 10000},
    [LIM_RCPT_MINUTE] = {"recipients_per_minute", LIM_KIND_COUNT, 300},
    [LIM_RCPT_HOUR] = {"recipients_per_hour", LIM_KIND_COUNT, 5000},
    [LIM_RCPT_DAY] = {"recipients_per_day", LIM_KIND_COUNT, 50000},
    [LIM_SMSG_MINUTE] = {"sender_messages_per_minute", LIM_KIND_COUNT, LIM_UNLIMITED},
    [LIM_SMSG_HOUR] = {"sender_messages_per_hour", LIM_KIND_COUNT, 500},
    [LIM_SMSG_DAY] = {"sender_messages_per_day", LIM_KIND_COUNT, LIM_UNLIMITED},
    [LIM_SRCPT_MINUTE] = {"sender_recipients_per_minute", LIM_KIND_COUNT, LIM_UNLIMITED},
    [LIM_SRCPT_HOUR] = {"sender_recipients_per_hour", LIM_KIND_COUNT, LIM_UNLIMITED},
    [LIM_SRCPT_DAY] = {"sender_recipients_per_day", LIM_KIND_COUNT, LIM_UNLIMITED},
    [LIM_MAX_RCPT] = {"max_recipients", LIM_KIND_COUNT, 100},
    [LIM_ACTION] = {"action", LIM_KIND_ACTION, LIM_ACT_TEMPFAIL},
    [LIM_SUSPENDED] = {"suspended", LIM_KIND_BOOL, 0},
    [LIM_OWN_DOMAINS_ONLY] = {"own_domains_only", LIM_KIND_BOOL, 0},
};

static const char *const action_names[] = {"tempfail", "reject", "hold", "monitor"};

int lim_field_find(const char *name)
{
    for (int i = 0; i < LIM_NFIELDS; i++)
        if (strcmp(lim_table[i].name, name) == 0)
            return i;
    return -1;
}

const char *lim_field_name(int id)
{
    return lim_table[id].name;
}

enum lim_kind lim_field_kind(int id)
{
    return lim_table[id].kind;
}

const char *lim_action_name(int action)
{
    return action_names[action];
}

int lim_check_value(int id, long long v)
{
    switch (lim_table[id].kind) {
    case LIM_KIND_COUNT:
        return (v == LIM_UNLIMITED || (v >= 0 && v <= LIM_COUNT_MAX)) ? 0 : -1;
    case LIM_KIND_BOOL:
        return (v == 0 || v == 1) ? 0 : -1;
    case LIM_KIND_ACTION:
        return (v >= LIM_ACT_TEMPFAIL && v <= LIM_ACT_MONITOR) ? 0 : -1;
    }
    return -1;
}

/* Strict: the whole string must be the number, no sign games, no blanks, so
 * that "10k" or "1e9" in a support person's HSET is noticed, not half-read. */
static int parse_integer(const char *s, long long *out)
{
    char *end;

    if (*s == '\0' || (*s != '-' && (*s < '0' || *s > '9')))
        return -1;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

int lim_parse_value(int id, const char *s, long long *out)
{
    long long v;

    if (lim_table[id].kind == LIM_KIND_ACTION) {
        for (int a = 0; a < (int)(sizeof(action_names) / sizeof(action_names[0])); a++)
            if (strcmp(s, action_names[a]) == 0) {
                *out = a;
                return 0;
            }
        return -1;
    }
    if (parse_integer(s, &v) != 0 || lim_check_value(id, v) != 0)
        return -1;
    *out = v;
    return 0;
}

void lim_overlay(struct lim_set *dst, const struct lim_set *src)
{
    for (int i = 0; i < LIM_NFIELDS; i++)
        if (src->set[i]) {
            dst->v[i] = src->v[i];
            dst->set[i] = 1;
        }
}

void lim_builtin(struct lim_set *dst)
{
    for (int i = 0; i < LIM_NFIELDS; i++) {
        dst->v[i] = lim_table[i].builtin;
        dst->set[i] = 1;
    }
}
