/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * quotaargs - relay.lua's argument vector; see quotaargs.h.
 */
#include "quotaargs.h"

#include <stdio.h>
#include <string.h>

#include "limits.h"
#include "store.h"

static void push(struct quotaargs *a, const char *s, size_t len)
{
    a->argv[a->argc] = s;
    a->lens[a->argc++] = len;
}

static void push_str(struct quotaargs *a, const char *s)
{
    push(a, s ? s : "", s ? strlen(s) : 0);
}

static void push_num(struct quotaargs *a, long long v)
{
    snprintf(a->num[a->nnum], sizeof(a->num[0]), "%lld", v);
    push_str(a, a->num[a->nnum++]);
}

void quotaargs_build(struct quotaargs *a, const struct quota_req *q, const char *op,
                     long long charged_ms, const char *events_key,
                     long long events_maxlen)
{
    a->argc = QUOTAARGS_FIRST;
    a->nnum = 0;
    push_num(a, q->n + (events_key != NULL));
    for (int i = 0; i < q->n; i++)
        push(a, q->c[i].key, q->c[i].keylen);
    if (events_key != NULL)
        push_str(a, events_key);
    push_str(a, op);
    push_num(a, q->nrcpt);
    push_num(a, q->n);
    for (int i = 0; i < q->n; i++) {
        push_num(a, q->c[i].window_ms);
        push_num(a, q->c[i].lim_msg);
        push_num(a, q->c[i].lim_rcpt);
        push_str(a, lim_field_name(q->c[i].field_msg));
        push_str(a, lim_field_name(q->c[i].field_rcpt));
    }
    if (charged_ms >= 0) {
        push_num(a, charged_ms);
        return;
    }
    const struct store_event *ev = q->event;
    push_num(a, events_maxlen);
    push_str(a, ev ? ev->qid : "");
    push_str(a, ev ? ev->customer : "");
    push_str(a, ev ? ev->login : "");
    push_str(a, ev ? ev->sender : "");
    push_str(a, ev ? ev->recipients : "");
    push_str(a, ev ? ev->action : "");
}
