/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * events - entries of the events stream; see events.h.
 */
#include "events.h"

const char *const events_field_name[EV_NFIELDS] = {
    [EV_TIME] = "time",     [EV_QUEUE_ID] = "queue_id", [EV_CUSTOMER] = "customer",
    [EV_LOGIN] = "login",   [EV_SENDER] = "sender",     [EV_RECIPIENTS] = "recipients",
    [EV_REASON] = "reason", [EV_ACTION] = "action"};

int events_xadd_argv(const char **argv, const char *key, const char *maxlen,
                     const char *now, const struct store_event *ev)
{
    const char *value[EV_NFIELDS] = {[EV_TIME] = now,
                                     [EV_QUEUE_ID] = ev->qid,
                                     [EV_CUSTOMER] = ev->customer,
                                     [EV_LOGIN] = ev->login,
                                     [EV_SENDER] = ev->sender,
                                     [EV_RECIPIENTS] = ev->recipients,
                                     [EV_REASON] = ev->reason,
                                     [EV_ACTION] = ev->action};
    int n = 0;

    argv[n++] = "XADD";
    argv[n++] = key;
    argv[n++] = "MAXLEN";
    argv[n++] = "~";
    argv[n++] = maxlen;
    argv[n++] = "*";
    for (int i = 0; i < EV_NFIELDS; i++) {
        argv[n++] = events_field_name[i];
        argv[n++] = value[i];
    }
    return n;
}
