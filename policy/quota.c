/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * quota - counters for a message and refusal text; see quota.h.
 */
#include "quota.h"

#include <stdio.h>
#include <string.h>

#include "keys.h"

/* Field ids of each scope's first window; windows follow in order. */
static const struct scope {
    int msg, rcpt;
} scopes[2] = {{LIM_MSG_MINUTE, LIM_RCPT_MINUTE}, {LIM_SMSG_MINUTE, LIM_SRCPT_MINUTE}};

static int add_counter(struct quota_req *q, const struct lim_set *lim, int scope, int w,
                       const char *prefix, const char *customer, const char *sender)
{
    const struct scope *s = &scopes[scope];
    struct quota_counter *c = &q->c[q->n];
    int len;

    c->field_msg = s->msg + w;
    c->field_rcpt = s->rcpt + w;
    c->lim_msg = lim->v[c->field_msg];
    c->lim_rcpt = lim->v[c->field_rcpt];
    if (c->lim_msg == LIM_UNLIMITED && c->lim_rcpt == LIM_UNLIMITED)
        return 0;
    c->window_ms = lim_window_seconds[w] * 1000LL;
    len = keys_counter(c->key, sizeof(c->key), prefix,
                       scope == 0 ? KEYS_CUSTOMER : KEYS_SENDER, w, customer, sender);
    if (len < 0)
        return -1;
    c->keylen = (size_t)len;
    q->n++;
    return 0;
}

int quota_build(struct quota_req *q, const char *prefix, const char *customer,
                const char *sender, const struct lim_set *lim, long long nrcpt)
{
    q->n = 0;
    q->nrcpt = nrcpt;
    q->event = NULL;
    q->local = 0;
    for (int scope = 0; scope < 2; scope++)
        for (int w = 0; w < LIM_NWINDOWS; w++)
            if (add_counter(q, lim, scope, w, prefix, customer, sender) != 0)
                return -1;
    return 0;
}

void quota_format_duration(long long ms, char *buf, size_t len)
{
    /* Bounded so ms + 999 cannot overflow; no window is anywhere near a year. */
    const long long cap = 1000LL * 86400 * 366;
    long long s = ((ms > cap ? cap : ms) + 999) / 1000;

    if (s < 1)
        s = 1;
    if (s < 120)
        snprintf(buf, len, "%llds", s);
    else if (s < 2 * 3600)
        snprintf(buf, len, "%lldm", (s + 59) / 60);
    else
        snprintf(buf, len, "%lldh", (s + 3599) / 3600);
}

void quota_refusal_text(const struct quota_req *q, const struct quota_result *res,
                        const char *customer, char *buf, size_t len)
{
    const struct quota_counter *c = &q->c[res->counter];
    int field = res->metric == 'm' ? c->field_msg : c->field_rcpt;
    long long limit = res->metric == 'm' ? c->lim_msg : c->lim_rcpt;
    char when[32];

    quota_format_duration(res->retry_ms, when, sizeof(when));
    if (res->local) /* say what was enforced: the share, not the configured limit */
        snprintf(buf, len,
                 "quota exceeded: %s %lld (local share of %lld) for %s, retry in %s",
                 lim_field_name(field), res->local_limit, limit, customer, when);
    else
        snprintf(buf, len, "quota exceeded: %s %lld for %s, retry in %s",
                 lim_field_name(field), limit, customer, when);
}

/* A sliding window counter frees up within two windows (the previous
 * window's share fades out over the current one); anything beyond is garbage
 * from the store, bounded so later arithmetic cannot overflow. */
long long quota_retry_bound(const struct quota_req *q, int counter, long long retry_ms)
{
    long long most = 2 * q->c[counter].window_ms;
    return retry_ms < 0 ? 0 : retry_ms > most ? most : retry_ms;
}
