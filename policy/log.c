/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * log - graded logging; see log.h for the interface.
 */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

/* The level may change on reload while other threads log: an atomic int is
 * all the synchronisation that needs. */
static atomic_int log_level = LOG_LVL_INFO;
static int log_stderr;
static int log_syslog = 1;
static const char *log_ident = "relaymilter"; /* the program, on stderr lines */

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_open(const char *ident, int to_stderr)
{
    openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
    log_ident = ident;
    log_stderr = to_stderr;
    /* Without a syslog socket (a container), glibc retries socket() and
     * connect() for every line, under its lock; with the stderr copy on,
     * that line has somewhere to go: skip syslog. */
    log_syslog = !(to_stderr && access("/dev/log", W_OK) != 0);
}

void log_set_level(int level)
{
    atomic_store(&log_level, level);
}

int log_level_parse(const char *name)
{
    for (int i = 0; i < (int)(sizeof(level_names) / sizeof(level_names[0])); i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

const char *log_level_name(int level)
{
    return level_names[level];
}

static void log_vemit(int prio, const char *tag, const char *fmt, va_list ap)
{
    char line[2048];

    vsnprintf(line, sizeof(line), fmt, ap);
    if (log_syslog)
        syslog(prio, "%s%s", tag, line);
    if (log_stderr)
        fprintf(stderr, "%s: %s%s\n", log_ident, tag, line);
}

#define LOG_BODY(lvl, prio, tag)                                                         \
    do {                                                                                 \
        if (atomic_load(&log_level) > (lvl))                                             \
            return;                                                                      \
        va_list ap;                                                                      \
        va_start(ap, fmt);                                                               \
        log_vemit(prio, tag, fmt, ap);                                                   \
        va_end(ap);                                                                      \
    } while (0)

void msg_debug(const char *fmt, ...)
{
    LOG_BODY(LOG_LVL_DEBUG, LOG_DEBUG, "");
}

void msg_info(const char *fmt, ...)
{
    LOG_BODY(LOG_LVL_INFO, LOG_INFO, "");
}

void msg_warn(const char *fmt, ...)
{
    LOG_BODY(LOG_LVL_WARN, LOG_WARNING, "warning: ");
}

void msg_error(const char *fmt, ...)
{
    LOG_BODY(LOG_LVL_ERROR, LOG_ERR, "error: ");
}

void msg_fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vemit(LOG_CRIT, "fatal: ", fmt, ap);
    va_end(ap);
    exit(1);
}

void msg_panic(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vemit(LOG_CRIT, "panic: ", fmt, ap);
    va_end(ap);
    abort();
}
