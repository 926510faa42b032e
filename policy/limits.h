/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * limits - the limit fields of a customer (relaymilter.conf(5), LIMIT FIELDS) and their
 * inheritance.
 *
 * One table names every field once; the config loader, the Redis override
 * parser and the quota builder all index it, so a field name is spelled in one
 * place only.
 *
 * Interface:
 *   lim_field_find(name)           field id, or -1 for an unknown name
 *   lim_field_name(id)             the field's name
 *   lim_parse_value(id, s, &v)     text from Redis or a string config value;
 *                                  0 ok, -1 malformed
 *   lim_overlay(dst, src)          fields set in src replace dst's
 *   lim_builtin(dst)               the built-in defaults (every field set)
 *   lim_action_name(a)             "tempfail" ...
 *
 * Values: counts are >= 0, LIM_UNLIMITED (-1) lifts the limit; suspended and
 * own_domains_only are 0/1; action is an enum lim_action.
 */
#ifndef RM_LIMITS_H
#define RM_LIMITS_H

enum lim_field {
    LIM_MSG_MINUTE,
    LIM_MSG_HOUR,
    LIM_MSG_DAY,
    LIM_RCPT_MINUTE,
    LIM_RCPT_HOUR,
    LIM_RCPT_DAY,
    LIM_SMSG_MINUTE,
    LIM_SMSG_HOUR,
    LIM_SMSG_DAY,
    LIM_SRCPT_MINUTE,
    LIM_SRCPT_HOUR,
    LIM_SRCPT_DAY,
    LIM_MAX_RCPT,
    LIM_ACTION,
    LIM_SUSPENDED,
    LIM_OWN_DOMAINS_ONLY,
    LIM_NFIELDS
};

/* The quota fields come in blocks of three windows; these give their layout. */
enum { LIM_NWINDOWS = 3, LIM_NQUOTA = LIM_MAX_RCPT };
extern const int lim_window_seconds[LIM_NWINDOWS];
extern const char *const lim_window_tag[LIM_NWINDOWS];

enum lim_action { LIM_ACT_TEMPFAIL, LIM_ACT_REJECT, LIM_ACT_HOLD, LIM_ACT_MONITOR };

enum lim_kind { LIM_KIND_COUNT, LIM_KIND_BOOL, LIM_KIND_ACTION };

#define LIM_UNLIMITED (-1LL)
/* Larger counts are refused as typos: nobody sends 10^12 messages a day. */
#define LIM_COUNT_MAX 1000000000000LL

struct lim_set {
    long long v[LIM_NFIELDS];
    unsigned char set[LIM_NFIELDS];
};

int lim_field_find(const char *name);
const char *lim_field_name(int id);
enum lim_kind lim_field_kind(int id);
int lim_parse_value(int id, const char *s, long long *out);
int lim_check_value(int id, long long v);
void lim_overlay(struct lim_set *dst, const struct lim_set *src);
void lim_builtin(struct lim_set *dst);
const char *lim_action_name(int action);

#endif
