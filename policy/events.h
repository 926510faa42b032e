/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * events - the entries of the events stream PREFIX events (doc/OPERATIONS,
 * "Events"): their field names, and the XADD that writes one.
 *
 * Interface:
 *   events_field_name[]   the field names, in the order an entry is written:
 *                         time, queue_id, customer, login, sender, recipients,
 *                         reason, action
 *   events_xadd_argv(argv, key, maxlen, now, ev)
 *       fills argv with "XADD key MAXLEN ~ maxlen * time now queue_id ..."
 *       (the values of ev, now the time in seconds as text) and returns
 *       the count, EVENTS_XADD_ARGC. The daemon (store_redis.c) and
 *       relaymilter-ctl write entries through it; relay.lua writes the same
 *       fields for a refused charge.
 */
#ifndef RM_EVENTS_H
#define RM_EVENTS_H

#include "store.h"

enum events_field {
    EV_TIME,
    EV_QUEUE_ID,
    EV_CUSTOMER,
    EV_LOGIN,
    EV_SENDER,
    EV_RECIPIENTS,
    EV_REASON,
    EV_ACTION,
    EV_NFIELDS
};

enum { EVENTS_XADD_ARGC = 6 + 2 * EV_NFIELDS };

extern const char *const events_field_name[EV_NFIELDS];

int events_xadd_argv(const char **argv, const char *key, const char *maxlen,
                     const char *now, const struct store_event *ev);

#endif
