/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * quota - what one message must be checked and charged against, and the SMTP
 * text when it does not fit.
 *
 * Interface:
 *   quota_build(q, prefix, customer, sender, lim, nrcpt)
 *       fills q with one counter per (subject, window) that has a finite limit:
 *       the customer scope and the sender scope, minute / hour / day, each
 *       carrying its message and recipient limit. 0 ok, -1 a key too long.
 *   quota_refusal_text(q, res, customer, buf, len)
 *       "quota exceeded: messages_per_hour 1000 for acme, retry in 12m"
 *   quota_format_duration(ms, buf, len)   "45s", "12m", "3h"
 *   quota_retry_bound(q, counter, retry_ms)
 *       a refusal's retry time as a store answered it, within [0, 2 windows]
 *
 * Counter keys are named by keys.h.
 */
#ifndef RM_QUOTA_H
#define RM_QUOTA_H

#include <stddef.h>

#include "limits.h"

enum { QUOTA_MAX_COUNTERS = 2 * LIM_NWINDOWS, QUOTA_KEY_MAX = 768 };

struct quota_counter {
    char key[QUOTA_KEY_MAX];
    size_t keylen;
    long long window_ms;
    long long lim_msg, lim_rcpt; /* LIM_UNLIMITED when not limited */
    int field_msg, field_rcpt;   /* lim_field ids, for the reply text */
};

struct store_event;

struct quota_req {
    struct quota_counter c[QUOTA_MAX_COUNTERS];
    int n;
    long long nrcpt;
    /* recorded in the events stream by the store if the charge is refused;
     * NULL for none (its reason and action are filled in by the store) */
    const struct store_event *event;
    int local; /* refund: the charge was made by the local fallback */
};

struct quota_result {
    int admitted;
    long long charged_ms;  /* the store's clock at the charge, for a refund */
    int counter;           /* refused: index into quota_req.c */
    char metric;           /* refused: 'm' messages, 'r' recipients */
    long long retry_ms;    /* refused: when the message would fit */
    int local;             /* decided by the local fallback (Redis unusable) */
    long long local_limit; /* refused locally: the share of the limit enforced */
};

int quota_build(struct quota_req *q, const char *prefix, const char *customer,
                const char *sender, const struct lim_set *lim, long long nrcpt);
void quota_refusal_text(const struct quota_req *q, const struct quota_result *res,
                        const char *customer, char *buf, size_t len);
void quota_format_duration(long long ms, char *buf, size_t len);
long long quota_retry_bound(const struct quota_req *q, int counter, long long retry_ms);

#endif
