/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * metrics - counters that show the milter's health, and their Prometheus text.
 *
 * Interface:
 *   metrics_new() / metrics_free(m)
 *   metrics_decision(m, action, reason)  one message decision: action as
 *                                        logged ("accept", "tempfail", ...),
 *                                        reason as logged (NULL, a limit field
 *                                        name, "suspended", "store_error ...")
 *   metrics_rcpt_refused(m, why)         "blocked_recipient_domain" | "max_recipients"
 *   metrics_store_call(m, usec, ok)      one store round trip and its latency
 *   metrics_connection(m, delta)         +1 on connect, -1 on close
 *   metrics_reload(m, ok, generation)    a reload attempt and its result
 *   metrics_render(m, circuit_open, buf, len)
 *                                        the text exposition format; returns
 *                                        the length written (truncated at len)
 *   metrics_put(t, fmt, ...)             append printf-style to text being
 *                                        rendered (truncated at t->len; for
 *                                        the store's own metrics too)
 *   metrics_counter(t, name, help, v)    a counter without labels: HELP, TYPE
 *                                        and its value
 *
 * Every counter is an atomic: milter threads update them without a lock, and
 * a scrape reads each one once (a scrape is not a consistent snapshot across
 * counters, which Prometheus does not need).
 */
#ifndef RM_METRICS_H
#define RM_METRICS_H

#include <stddef.h>

struct metrics;

struct metrics_text {
    char *buf;
    size_t len, used;
};

struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);
void metrics_decision(struct metrics *m, const char *action, const char *reason);
void metrics_rcpt_refused(struct metrics *m, const char *why);
void metrics_store_call(struct metrics *m, long long usec, int ok);
void metrics_connection(struct metrics *m, int delta);
void metrics_reload(struct metrics *m, int ok, unsigned long generation);
size_t metrics_render(struct metrics *m, int circuit_open, char *buf, size_t len);
void metrics_put(struct metrics_text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void metrics_counter(struct metrics_text *t, const char *name, const char *help,
                     unsigned long v);

#endif
