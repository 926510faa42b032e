/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * fakestore - the scripted store of the unit tests; see fakestore.h.
 */
#include "fakestore.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

#include "identity.h"
#include "testkeys.h"

struct fake fk;

/* SMEMBERS of PREFIX domain:DOMAIN: 1 when someone owns domain, and *member
 * when customer is among them. */
static int owned(const struct fake *f, const char *domain, const char *customer,
                 int *member)
{
    int any = 0;

    *member = 0;
    for (int i = 0; i < f->nowners; i++)
        if (strcmp(f->own_domain[i], domain) == 0) {
            any = 1;
            *member |= strcmp(f->own_customer[i], customer) == 0;
        }
    return any;
}

static void lookup_domain(const struct fake *f, const char *domain,
                          struct store_lookup_res *res)
{
    const char *customer =
        res->customer[0] && !res->bad_mapping ? res->customer : f->fallback;

    for (const char *d = domain; d != NULL && *d; d = dom_parent(d))
        if (owned(f, d, customer, &res->dom_member)) {
            snprintf(res->dom_level, sizeof(res->dom_level), "%s", d);
            return;
        }
}

static int fake_lookup(struct store *s, const struct store_lookup_req *req,
                       struct store_lookup_res *res, char *err)
{
    struct fake *f = (struct fake *)s;

    f->lookups++;
    snprintf(f->login, sizeof(f->login), "%s", req->login ? req->login : "(null)");
    snprintf(f->fallback, sizeof(f->fallback), "%s", req->fallback);
    snprintf(f->sender_domain, sizeof(f->sender_domain), "%s",
             req->sender_domain ? req->sender_domain : "(null)");
    if (f->fail_lookup) {
        snprintf(err, STORE_ERR_MAX, "fake: connection refused");
        return -1;
    }
    memset(res, 0, sizeof(*res));
    snprintf(res->customer, sizeof(res->customer), "%s", f->customer);
    res->bad_mapping = f->customer[0] && identity_name_problem(f->customer, 0) != NULL;
    res->nfields = f->nfields;
    for (int i = 0; i < f->nfields; i++) {
        snprintf(res->name[i], STORE_FIELD_LEN, "%s", f->fname[i]);
        snprintf(res->value[i], STORE_FIELD_LEN, "%s", f->fvalue[i]);
    }
    lookup_domain(f, req->sender_domain ? req->sender_domain : "", res);
    return 0;
}

static void copy_event(struct fake_event *dst, const struct store_event *ev)
{
    snprintf(dst->qid, sizeof(dst->qid), "%s", ev->qid);
    snprintf(dst->customer, sizeof(dst->customer), "%s", ev->customer);
    snprintf(dst->login, sizeof(dst->login), "%s", ev->login);
    snprintf(dst->sender, sizeof(dst->sender), "%s", ev->sender);
    snprintf(dst->recipients, sizeof(dst->recipients), "%s", ev->recipients);
    snprintf(dst->reason, sizeof(dst->reason), "%s", ev->reason);
    snprintf(dst->action, sizeof(dst->action), "%s", ev->action);
}

static int fake_charge(struct store *s, const struct quota_req *q,
                       struct quota_result *res, char *err)
{
    struct fake *f = (struct fake *)s;

    f->charges++;
    f->charged = *q;
    f->charged.event = NULL; /* points into the caller's frame */
    f->charge_had_event = q->event != NULL;
    if (q->event != NULL)
        copy_event(&f->charge_event, q->event);
    if (f->fail_charge) {
        snprintf(err, STORE_ERR_MAX, "fake: timeout");
        return -1;
    }
    memset(res, 0, sizeof(*res));
    res->admitted = 1;
    res->charged_ms = f->clock_ms;
    res->local = f->charge_local;
    for (int i = 0; f->refuse_key[0] && i < q->n; i++)
        if (strcmp(q->c[i].key, f->refuse_key) == 0) {
            res->admitted = 0;
            res->counter = i;
            res->metric = f->refuse_metric;
            res->retry_ms = f->retry_ms;
        }
    ck_assert_msg(!f->refuse_key[0] || !res->admitted, "no counter %s", f->refuse_key);
    return 0;
}

static int fake_refund(struct store *s, const struct quota_req *q, long long charged_ms,
                       char *err)
{
    struct fake *f = (struct fake *)s;

    f->refunds++;
    f->refunded = *q;
    f->refunded.event = NULL;
    f->refund_ms = charged_ms;
    if (f->fail_refund) {
        snprintf(err, STORE_ERR_MAX, "fake: timeout");
        return -1;
    }
    return 0;
}

static int fake_rcpt_blocked(struct store *s, const char *domain)
{
    struct fake *f = (struct fake *)s;

    for (int i = 0; i < f->nblocked; i++)
        if (strcmp(f->blocked[i], domain) == 0)
            return 1;
    return 0;
}

static int fake_event(struct store *s, const struct store_event *ev, char *err)
{
    struct fake *f = (struct fake *)s;

    if (f->events < FAKE_MAX_EVENTS)
        copy_event(&f->event[f->events], ev);
    f->events++;
    if (f->fail_event) {
        snprintf(err, STORE_ERR_MAX, "fake: timeout");
        return -1;
    }
    return 0;
}

static void fake_destroy(struct store *s)
{
    ((struct fake *)s)->destroyed++;
}

const struct store_ops fake_ops = {
    .lookup = fake_lookup,
    .charge = fake_charge,
    .refund = fake_refund,
    .rcpt_blocked = fake_rcpt_blocked,
    .event = fake_event,
    .destroy = fake_destroy,
};

void fake_field(const char *name, const char *value)
{
    ck_assert_int_lt(fk.nfields, 8);
    fk.fname[fk.nfields] = name;
    fk.fvalue[fk.nfields++] = value;
}

void fake_refuse(const char *key)
{
    ck_assert(key == NULL || strlen(key) < sizeof(fk.refuse_key));
    snprintf(fk.refuse_key, sizeof(fk.refuse_key), "%s", key ? key : "");
}

const char *fake_ckey(char w, const char *customer)
{
    const char *k = testkeys_counter("relay:", w, customer, NULL);

    ck_assert_msg(k != NULL, "no counter key for %c %s", w, customer);
    return k;
}

const char *fake_skey(char w, const char *customer, const char *sender)
{
    const char *k = testkeys_counter("relay:", w, customer, sender);

    ck_assert_msg(k != NULL, "no counter key for %c %s %s", w, customer, sender);
    return k;
}

void fake_owner(const char *domain, const char *customer)
{
    ck_assert_int_lt(fk.nowners, FAKE_MAX_OWNERS);
    fk.own_domain[fk.nowners] = domain;
    fk.own_customer[fk.nowners++] = customer;
}

void fake_blocked(const char *domain)
{
    ck_assert_int_lt(fk.nblocked, FAKE_MAX_BLOCKED);
    fk.blocked[fk.nblocked++] = domain;
}
