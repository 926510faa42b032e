/*
 * fakestore - the scripted store of the unit tests; see fakestore.h.
 */
#include "fakestore.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

struct fake fk;

static int fake_lookup(struct store *s, const struct store_lookup_req *req,
                       struct store_lookup_res *res, char *err)
{
    struct fake *f = (struct fake *)s;

    f->lookups++;
    snprintf(f->login, sizeof(f->login), "%s", req->login ? req->login : "(null)");
    snprintf(f->fallback, sizeof(f->fallback), "%s", req->fallback);
    if (f->fail_lookup) {
        snprintf(err, STORE_ERR_MAX, "fake: connection refused");
        return -1;
    }
    memset(res, 0, sizeof(*res));
    snprintf(res->customer, sizeof(res->customer), "%s", f->customer);
    res->nfields = f->nfields;
    for (int i = 0; i < f->nfields; i++) {
        snprintf(res->name[i], STORE_FIELD_LEN, "%s", f->fname[i]);
        snprintf(res->value[i], STORE_FIELD_LEN, "%s", f->fvalue[i]);
    }
    return 0;
}

static int fake_charge(struct store *s, const struct quota_req *q,
                       struct quota_result *res, char *err)
{
    struct fake *f = (struct fake *)s;

    f->charges++;
    f->charged = *q;
    f->charged.event = NULL; /* points into the caller's frame */
    if (f->fail_charge) {
        snprintf(err, STORE_ERR_MAX, "fake: timeout");
        return -1;
    }
    memset(res, 0, sizeof(*res));
    res->admitted = 1;
    res->charged_ms = f->clock_ms;
    for (int i = 0; f->refuse_key && i < q->n; i++)
        if (strcmp(q->c[i].key, f->refuse_key) == 0) {
            res->admitted = 0;
            res->counter = i;
            res->metric = f->refuse_metric;
            res->retry_ms = f->retry_ms;
        }
    ck_assert_msg(!f->refuse_key || !res->admitted, "no counter %s", f->refuse_key);
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
    (void)s;
    (void)domain;
    return 0;
}

static int fake_event(struct store *s, const struct store_event *ev, char *err)
{
    (void)s;
    (void)ev;
    (void)err;
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
