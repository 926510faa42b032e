/*
 * policy - per-connection decisions; see policy.h.
 *
 * Store round trips per message: one at MAIL FROM (identity and staff limits),
 * one at DATA (all quotas), plus one on abort to refund; never one per
 * recipient (SPEC 7).
 */
#include "policy.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "identity.h"
#include "log.h"
#include "quota.h"

struct pol_conn {
    int has_addr;
    struct net_addr addr;
    /* the transaction; snap == NULL between transactions */
    struct snap *snap;
    char customer[STORE_NAME_MAX];
    struct lim_set lim;
    char sender[ADDR_MAX + 1];
    long long nrcpt;
    int charged;
    long long charged_ms;
    int hold;
    char hold_reason[320];
    struct quota_req q;
};

struct pol_conn *pol_conn_new(const struct net_addr *addr)
{
    struct pol_conn *c = calloc(1, sizeof(*c));

    if (c == NULL)
        msg_fatal("out of memory");
    if (addr != NULL) {
        c->has_addr = 1;
        c->addr = *addr;
    }
    return c;
}

void pol_conn_free(struct pol_conn *c)
{
    if (c == NULL)
        return;
    pol_abort(c);
    free(c);
}

/* SMTP reply text goes to the client verbatim and to libmilter, which treats
 * '%' specially: keep it to printable ASCII without '%'. */
static void set_reply(struct pol_reply *r, enum pol_verdict v, const char *rcode,
                      const char *xcode, const char *fmt, ...) RM_PRINTF(5, 6);

static void set_reply(struct pol_reply *r, enum pol_verdict v, const char *rcode,
                      const char *xcode, const char *fmt, ...)
{
    va_list ap;

    r->verdict = v;
    snprintf(r->rcode, sizeof(r->rcode), "%s", rcode);
    snprintf(r->xcode, sizeof(r->xcode), "%s", xcode);
    va_start(ap, fmt);
    vsnprintf(r->text, sizeof(r->text), fmt, ap);
    va_end(ap);
    for (char *p = r->text; *p; p++)
        if (*p < 0x20 || *p > 0x7e || *p == '%')
            *p = '?';
}

static void reply_continue(struct pol_reply *r)
{
    memset(r, 0, sizeof(*r));
    r->verdict = POL_CONTINUE;
}

static void end_transaction(struct pol_conn *c)
{
    snap_release(c->snap);
    c->snap = NULL;
    c->charged = 0;
    c->hold = 0;
    c->nrcpt = 0;
}

static void log_decision(const struct pol_conn *c, const char *qid, const char *action,
                         const char *reason)
{
    msg_info("%s: customer=%s sender=<%s> nrcpt=%lld action=%s%s%s",
             qid && *qid ? qid : "NOQUEUE", c->customer, c->sender, c->nrcpt, action,
             reason ? " reason=" : "", reason ? reason : "");
}

/* A store failure: the configured on_store_error decides. */
static void store_failed(struct pol_conn *c, const char *qid, const char *what,
                         const char *err, struct pol_reply *r)
{
    const struct rm_config *cfg = c->snap->cfg;

    msg_error("%s: store error at %s: %s (on_store_error=%s)",
              qid && *qid ? qid : "NOQUEUE", what, err,
              cfg_store_error_name(cfg->on_store_error));
    if (cfg->on_store_error == CFG_SE_TEMPFAIL)
        set_reply(r, POL_TEMPFAIL, "451", "4.3.0",
                  "policy service unavailable, try again later");
}

/* Staff-edited fields over the config's: a malformed value is ignored with a
 * warning, so the inherited value applies; bad data never lifts a limit. */
static void apply_store_limits(struct pol_conn *c, const struct store_lookup_res *res)
{
    struct lim_set over = {0};
    const char *prefix = c->snap->cfg->prefix;

    if (res->garbage)
        msg_warn("%slimits:%s or %ssasl holds the wrong type; ignored", prefix,
                 c->customer, prefix);
    if (res->truncated)
        msg_warn("%slimits:%s: over-long or too many fields ignored", prefix,
                 c->customer);
    for (int i = 0; i < res->nfields; i++) {
        int id = lim_field_find(res->name[i]);
        long long v;
        if (id < 0) {
            msg_warn("%slimits:%s: unknown field \"%s\" ignored", prefix, c->customer,
                     res->name[i]);
        } else if (lim_parse_value(id, res->value[i], &v) != 0) {
            msg_warn("%slimits:%s: malformed %s \"%s\" ignored", prefix, c->customer,
                     res->name[i], res->value[i]);
        } else {
            over.v[id] = v;
            over.set[id] = 1;
        }
    }
    lim_overlay(&c->lim, &over);
}

/* Identity and limits: one store round trip. */
static int resolve_customer(struct pol_conn *c, const char *login, struct pol_reply *r)
{
    const struct rm_config *cfg = c->snap->cfg;
    struct store_lookup_req req = {login ? login : "", c->customer};
    struct store_lookup_res res;
    char err[STORE_ERR_MAX];

    id_fallback(cfg, login, c->has_addr ? &c->addr : NULL, c->customer,
                sizeof(c->customer));
    cfg_effective_limits(cfg, cfg_customer_find(cfg, c->customer), &c->lim);
    if (c->snap->store->ops->lookup(c->snap->store, &req, &res, err) != 0) {
        store_failed(c, NULL, "MAIL FROM", err, r);
        return r->verdict == POL_CONTINUE ? 0 : -1;
    }
    if (res.customer[0] != '\0' && strcmp(res.customer, c->customer) != 0) {
        snprintf(c->customer, sizeof(c->customer), "%s", res.customer);
        cfg_effective_limits(cfg, cfg_customer_find(cfg, c->customer), &c->lim);
    }
    apply_store_limits(c, &res);
    return 0;
}

void pol_mail(struct pol_conn *c, struct snap *snap, const char *sender,
              const char *login, struct pol_reply *r)
{
    const char *domain;

    pol_abort(c); /* a MAIL without the previous transaction's end */
    c->snap = snap;
    reply_continue(r);
    int kind = addr_normalise(sender, c->sender, sizeof(c->sender), &domain);
    if (kind == ADDR_BAD) {
        snprintf(c->sender, sizeof(c->sender), "(malformed)");
        snprintf(c->customer, sizeof(c->customer), "(unknown)");
        set_reply(r, POL_REJECT, "550", "5.1.7", "malformed sender address");
        log_decision(c, NULL, "reject", "malformed_sender");
        end_transaction(c);
        return;
    }
    if (resolve_customer(c, login, r) != 0) {
        log_decision(c, NULL, "tempfail", "store_error");
        end_transaction(c);
        return;
    }
    if (c->lim.v[LIM_SUSPENDED]) {
        set_reply(r, POL_REJECT, "550", "5.7.1",
                  "sending suspended for %s, contact support", c->customer);
        log_decision(c, NULL, "reject", "suspended");
        end_transaction(c);
    }
}

void pol_rcpt(struct pol_conn *c, const char *rcpt, struct pol_reply *r)
{
    long long max;

    (void)rcpt;
    reply_continue(r);
    if (c->snap == NULL)
        return; /* RCPT outside a transaction: the MTA will refuse it */
    max = c->lim.v[LIM_MAX_RCPT];
    if (max != LIM_UNLIMITED && c->nrcpt >= max) {
        set_reply(r, POL_TEMPFAIL, "452", "4.5.3",
                  "too many recipients (max_recipients %lld)", max);
        return;
    }
    c->nrcpt++;
}

/* Over a quota: the customer's action decides what the message gets. */
static void over_quota(struct pol_conn *c, const char *qid,
                       const struct quota_result *res, struct pol_reply *r)
{
    char text[256], reason[64];
    const struct quota_counter *qc = &c->q.c[res->counter];
    int action = (int)c->lim.v[LIM_ACTION];

    quota_refusal_text(&c->q, res, c->customer, text, sizeof(text));
    snprintf(reason, sizeof(reason), "%s",
             lim_field_name(res->metric == 'm' ? qc->field_msg : qc->field_rcpt));
    log_decision(c, qid, lim_action_name(action), reason);
    switch (action) {
    case LIM_ACT_TEMPFAIL:
        set_reply(r, POL_TEMPFAIL, "451", "4.7.1", "%s", text);
        break;
    case LIM_ACT_REJECT:
        set_reply(r, POL_REJECT, "550", "5.7.1", "%s", text);
        break;
    case LIM_ACT_HOLD:
        c->hold = 1;
        snprintf(c->hold_reason, sizeof(c->hold_reason), "relaymilter: %s", text);
        break;
    default: /* monitor: a dry run */
        break;
    }
}

void pol_data(struct pol_conn *c, const char *qid, struct pol_reply *r)
{
    struct quota_result res;
    char err[STORE_ERR_MAX];

    reply_continue(r);
    if (c->snap == NULL)
        return;
    const struct rm_config *cfg = c->snap->cfg;
    if (quota_build(&c->q, cfg->prefix, c->customer, c->sender, &c->lim, c->nrcpt) != 0) {
        snprintf(err, sizeof(err), "key for customer %.64s too long", c->customer);
        store_failed(c, qid, "DATA", err, r);
        log_decision(c, qid, r->verdict == POL_CONTINUE ? "accept" : "tempfail",
                     "key_error");
        return;
    }
    if (c->snap->store->ops->charge(c->snap->store, &c->q, &res, err) != 0) {
        store_failed(c, qid, "DATA", err, r);
        log_decision(c, qid, r->verdict == POL_CONTINUE ? "accept" : "tempfail",
                     "store_error");
        return;
    }
    if (!res.admitted) {
        over_quota(c, qid, &res, r);
        return;
    }
    c->charged = 1;
    c->charged_ms = res.charged_ms;
    log_decision(c, qid, "accept", NULL);
}

int pol_eom(struct pol_conn *c, const char *qid)
{
    int hold = c->hold;

    (void)qid;
    c->charged = 0; /* the message is in: its charge stands */
    end_transaction(c);
    return hold;
}

void pol_abort(struct pol_conn *c)
{
    char err[STORE_ERR_MAX];

    if (c->snap == NULL)
        return;
    if (c->charged) {
        if (c->snap->store->ops->refund(c->snap->store, &c->q, c->charged_ms, err) != 0)
            msg_error("customer=%s: refund of an aborted message failed: %s", c->customer,
                      err);
        else
            msg_info("customer=%s sender=<%s> nrcpt=%lld: transaction aborted, charge "
                     "refunded",
                     c->customer, c->sender, c->nrcpt);
    }
    end_transaction(c);
}

const char *pol_hold_reason(const struct pol_conn *c)
{
    return c->hold_reason;
}
