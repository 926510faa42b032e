/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * keys - the name of every Redis key relaymilter reads or writes, built in
 * one place (doc/OPERATIONS, "Redis keys"). The daemon, relaymilter-ctl
 * and the tests take key names from here; nothing else spells them.
 *
 * Interface (each writes a NUL-terminated name into buf and returns its
 * length, or -1 when it does not fit in len):
 *   keys_sasl(buf, len, prefix)               PREFIX sasl
 *   keys_limits(buf, len, prefix, customer)   PREFIX limits:CUSTOMER
 *                                             (customer NULL: "PREFIX limits:",
 *                                             the part before the name)
 *   keys_domain(buf, len, prefix, domain)     PREFIX domain:DOMAIN (NULL: the
 *                                             part before the name)
 *   keys_blocked(buf, len, prefix)            PREFIX blocked-rcpt-domains
 *   keys_events(buf, len, prefix)             PREFIX events
 *   keys_counter(buf, len, prefix, scope, window, customer, sender)
 *       a usage counter: scope KEYS_CUSTOMER (sender ignored) or KEYS_SENDER,
 *       window an index into lim_window_tag
 *   keys_sender_pattern(buf, len, prefix, window, customer)
 *       a SCAN MATCH pattern that matches the sender counters of customer in
 *       one window and nothing else (glob characters in the names escaped)
 *   keys_counter_sender(key, keylen, prefix, window, customer)
 *       the sender part of a sender counter key of customer, or NULL
 *
 * Counter layout (the same in every topology: one primary, Sentinel, Redis
 * Cluster):
 *   PREFIX qc:W:{CUSTOMER}               customer scope, W = m | h | d
 *   PREFIX qs:W:{CUSTOMER}:SENDER        sender scope
 * {CUSTOMER} is the Redis Cluster hash tag (Redis Cluster specification,
 * "Hash tags"): all counters of one customer share one slot, so one script
 * call charges them atomically on one node. Customer names and redis.prefix
 * may not hold '{' or '}', so the first '}' ends the customer and no
 * customer or sender text can forge another's key. Counters written under the
 * older layout (qc:W:CUSTOMER, qs:W:LEN:CUSTOMER:SENDER) are not read: after
 * an upgrade usage restarts from zero, and the old keys expire by themselves
 * within two of their windows.
 */
#ifndef RM_KEYS_H
#define RM_KEYS_H

#include <stddef.h>

enum keys_scope { KEYS_CUSTOMER, KEYS_SENDER };

int keys_sasl(char *buf, size_t len, const char *prefix);
int keys_limits(char *buf, size_t len, const char *prefix, const char *customer);
int keys_domain(char *buf, size_t len, const char *prefix, const char *domain);
int keys_blocked(char *buf, size_t len, const char *prefix);
int keys_events(char *buf, size_t len, const char *prefix);
int keys_counter(char *buf, size_t len, const char *prefix, enum keys_scope scope,
                 int window, const char *customer, const char *sender);
int keys_sender_pattern(char *buf, size_t len, const char *prefix, int window,
                        const char *customer);
const char *keys_counter_sender(const char *key, size_t keylen, const char *prefix,
                                int window, const char *customer);

#endif
