/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * log - graded logging to syslog (facility mail) and, when it is a tty, stderr.
 *
 * Interface:
 *   log_open(ident, to_stderr)   once, before any thread starts; ident names
 *                                the program in syslog and on stderr (it must
 *                                stay valid: a string literal)
 *   log_set_level(level)         LOG_LVL_* from the config; safe at any time
 *   log_level_parse(name)        "debug".."error" -> level, -1 when unknown
 *   msg_debug/info/warn/error()  one line each, printf-style
 *   msg_fatal()                  bad configuration or environment: logs, exit(1)
 *   msg_panic()                  a broken invariant (a bug): logs, abort()
 *
 * The grades follow Postfix: warn is something odd that the daemon survives,
 * error is a failed operation (e.g. a store call), fatal is a configuration the
 * daemon cannot run with, panic is a bug.
 */
#ifndef RM_LOG_H
#define RM_LOG_H

enum { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR };

void log_open(const char *ident, int to_stderr);
void log_set_level(int level);
int log_level_parse(const char *name);
const char *log_level_name(int level);

#define RM_PRINTF(a, b) __attribute__((format(printf, a, b)))
void msg_debug(const char *fmt, ...) RM_PRINTF(1, 2);
void msg_info(const char *fmt, ...) RM_PRINTF(1, 2);
void msg_warn(const char *fmt, ...) RM_PRINTF(1, 2);
void msg_error(const char *fmt, ...) RM_PRINTF(1, 2);
_Noreturn void msg_fatal(const char *fmt, ...) RM_PRINTF(1, 2);
_Noreturn void msg_panic(const char *fmt, ...) RM_PRINTF(1, 2);

#endif
