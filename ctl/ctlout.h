/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ctlout - how relaymilter-ctl writes: messages, times, and JSON.
 *
 * Interface:
 *   ctlout_err(fmt, ...)        one line on stderr, "relaymilter-ctl: ..."
 *   ctlout_shown(s)             s fit for a terminal: control characters as
 *                               \xNN, cut with "..." past CTLOUT_SHOWN_MAX
 *                               octets; the result lives until CTLOUT_NSHOWN
 *                               more calls
 *   ctlout_utc(secs, buf, len)  "YYYY-MM-DD HH:MM:SS" (UTC)
 *   ctlout_duration(ms, buf, len)  "45s", "3m05s", "1h02m"
 *   ctlout_name_problem(what, name, derived)
 *       0 when name may name a customer (identity_name_problem: derived 1
 *       lets "ip:..." and "sasl:..." pass), else says why on stderr and
 *       returns CTL_EUSAGE
 *   ctlout_login_problem(realm, login, out, len)
 *       0 with the canonical form of a SASL login (login.h) in out, else
 *       says why there is none on stderr and returns CTL_EUSAGE
 *
 * JSON (relaymilter-ctl(1), "JSON OUTPUT"): a writer that places commas and
 * colons itself, on one struct ctlout_json:
 *   ctlout_json_open(j, '{' or '['), ctlout_json_close(j, '}' or ']')
 *   ctlout_json_key(j, name)    an object member's name; its value follows
 *   ctlout_json_str(j, s, len)  a string: UTF-8 as it is, bytes that are not
 *                               UTF-8 as U+FFFD, controls escaped
 *   ctlout_json_cstr(j, s)      the same for a C string, null for NULL
 *   ctlout_json_int(j, v), ctlout_json_num(j, d), ctlout_json_bool(j, b)
 * The document ends with a newline when its outermost value closes.
 */
#ifndef RM_CTLOUT_H
#define RM_CTLOUT_H

#include <stddef.h>
#include <stdio.h>

#include "log.h"

enum { CTLOUT_SHOWN_MAX = 1024, CTLOUT_NSHOWN = 8, CTLOUT_JSON_DEPTH = 8 };

void ctlout_err(const char *fmt, ...) RM_PRINTF(1, 2);
const char *ctlout_shown(const char *s);
void ctlout_utc(long long secs, char *buf, size_t len);
void ctlout_duration(long long ms, char *buf, size_t len);
int ctlout_name_problem(const char *what, const char *name, int derived);
int ctlout_login_problem(const char *realm, const char *login, char *out, size_t len);

struct ctlout_json {
    FILE *f;
    int depth;
    int after_key;
    int items[CTLOUT_JSON_DEPTH];
};

void ctlout_json_open(struct ctlout_json *j, char bracket);
void ctlout_json_close(struct ctlout_json *j, char bracket);
void ctlout_json_key(struct ctlout_json *j, const char *name);
void ctlout_json_str(struct ctlout_json *j, const char *s, size_t len);
void ctlout_json_cstr(struct ctlout_json *j, const char *s);
void ctlout_json_int(struct ctlout_json *j, long long v);
void ctlout_json_num(struct ctlout_json *j, double d);
void ctlout_json_bool(struct ctlout_json *j, int b);

#endif
