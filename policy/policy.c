/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * policy - per-connection decisions; see policy.h.
 *
 * Store round trips per message: one at MAIL FROM (identity and staff limits),
 * one at DATA (all quotas), plus one on abort to refund; never one per
 * recipient (doc/OPERATIONS, "What happens to a message").
 */
#include "policy.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "addr.h"
#include "clock.h"
#include "domain.h"
#include "identity.h"
#include "login.h"
#include "log.h"
#include "metrics.h"
#include "quota.h"
#include "xalloc.h"

struct pol_conn {
    int has_addr;
    struct net_addr addr;
    /* the transaction; snap == NULL between transactions */
    struct snap *snap;
    char customer[STORE_NAME_MAX];
    char login[LOGIN_MAX + 1]; /* canonical (login.h); "" when none */
    struct lim_set lim;
    char sender[ADDR_MAX + 1];
    char sender_domain[DOM_MAX + 1]; /* canonical; "" null sender or none */
    long long nrcpt;
    int nblocked;           /* recipients refused for a blocked domain */
    char rcpts[512];        /* the first recipients, for the events stream */
    size_t dom_level_redis; /* length of the Redis-protected suffix, 0 none */
    int dom_member_redis;
    int charged;
    long long charged_ms;
    int hold;
    char hold_reason[320];
    struct quota_req q;
};

struct pol_conn *pol_conn_new(const struct net_addr *addr)
{
    struct pol_conn *c = xcalloc(1, sizeof(*c));

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

/* Text for the MTA (replies, quarantine reasons) carries customer names that
 * come from SASL logins and Redis: printable ASCII only, and no '%'. */
static void sanitise(char *text)
{
    for (char *p = text; *p; p++)
        if (*p < 0x20 || *p > 0x7e || *p == '%')
            *p = '?';
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
    sanitise(r->text);
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
    c->nblocked = 0;
    c->rcpts[0] = '\0';
    /* Redis's domain verdict belongs to one message: a later lookup that
     * fails must not judge another sender domain by it. */
    c->dom_level_redis = 0;
    c->dom_member_redis = 0;
}

/* The login as logs and events show it: canonical, "-" for none. */
static const char *login_text(const struct pol_conn *c)
{
    return c->login[0] ? c->login : "-";
}

/* An entry in the events stream for a refusal decided before DATA (those at
 * DATA travel inside the charge call). */
static void record_event(struct pol_conn *c, const char *reason, const char *action)
{
    struct store *st = c->snap->store;
    struct store_event ev = {"",       c->customer, login_text(c), c->sender,
                             c->rcpts, reason,      action};
    char err[STORE_ERR_MAX];

    if (store_event(st, &ev, err) != 0)
        msg_error("customer=%s: cannot record an event: %s", c->customer, err);
}

static void log_decision(const struct pol_conn *c, const char *qid, const char *action,
                         const char *reason)
{
    msg_info("%s: customer=%s login=%s sender=<%s> nrcpt=%lld action=%s%s%s",
             qid && *qid ? qid : "NOQUEUE", c->customer, login_text(c), c->sender,
             c->nrcpt, action, reason ? " reason=" : "", reason ? reason : "");
    metrics_decision(c->snap->metrics, action, reason);
}

/* Every round trip made for a message goes through here, to be timed. */
static int timed_lookup(struct pol_conn *c, const struct store_lookup_req *req,
                        struct store_lookup_res *res, char *err)
{
    long long t0 = clock_mono_us();
    int rc = store_lookup(c->snap->store, req, res, err);
    if (rc != 0 || !res->cached) /* a copy is no store call */
        metrics_store_call(c->snap->metrics, clock_mono_us() - t0, rc == 0);
    return rc;
}

static int timed_charge(struct pol_conn *c, struct quota_result *res, char *err)
{
    long long t0 = clock_mono_us();
    int rc = store_charge(c->snap->store, &c->q, res, err);
    metrics_store_call(c->snap->metrics, clock_mono_us() - t0, rc == 0 && !res->local);
    return rc;
}

/* A store failure: the configured on_store_error decides. It is logged in
 * the message's one decision line, never in extra lines: an outage must not
 * multiply the log volume (the pool logs the outage itself, once). */
static void store_failed(struct pol_conn *c, const char *qid, const char *what,
                         const char *err, struct pol_reply *r)
{
    const struct rm_config *cfg = c->snap->cfg;
    char reason[STORE_ERR_MAX + 64];

    /* MAIL FROM under "local" goes on with the config's limits; DATA gets
     * here under "local" only when the local table could not decide either. */
    if (cfg->on_store_error == CFG_SE_TEMPFAIL ||
        (cfg->on_store_error == CFG_SE_LOCAL && strcmp(what, "DATA") == 0))
        set_reply(r, POL_TEMPFAIL, "451", "4.3.0",
                  "policy service unavailable, try again later");
    snprintf(reason, sizeof(reason), "store_error at=%s error=\"%s\"", what, err);
    log_decision(c, qid, r->verdict == POL_CONTINUE ? "accept" : "tempfail", reason);
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

/* Identity and limits: one store round trip. Returns 1 when neither the
 * Redis hash nor the config maps the login and the store answered (then
 * sasl.unknown decides), 0 otherwise, -1 when the message is refused
 * because the store failed. */
static int resolve_customer(struct pol_conn *c, struct pol_reply *r)
{
    const struct rm_config *cfg = c->snap->cfg;
    struct store_lookup_req req = {c->login, c->customer, c->sender_domain};
    struct store_lookup_res res;
    char err[STORE_ERR_MAX];

    int unmapped =
        identity_fallback(cfg, c->login, c->has_addr ? &c->addr : NULL, c->customer,
                          sizeof(c->customer)) == ID_UNKNOWN_LOGIN;
    cfg_effective_limits(cfg, cfg_customer_find(cfg, c->customer), &c->lim);
    if (timed_lookup(c, &req, &res, err) != 0) {
        store_failed(c, NULL, "MAIL_FROM", err, r);
        /* Whether the hash maps the login is unknown: on_store_error rules,
         * not sasl.unknown (the login may well be provisioned). */
        return r->verdict == POL_CONTINUE ? 0 : -1;
    }
    if (res.bad_mapping) {
        const char *why = identity_name_problem(res.customer, 0);
        msg_warn("%ssasl: login %s names \"%.64s\", which %s; ignored", cfg->prefix,
                 c->login, res.customer, why ? why : "may not be a customer name");
    } else if (res.customer[0] != '\0') {
        if (strcmp(res.customer, c->customer) != 0) {
            snprintf(c->customer, sizeof(c->customer), "%s", res.customer);
            cfg_effective_limits(cfg, cfg_customer_find(cfg, c->customer), &c->lim);
        }
        unmapped = 0;
    }
    apply_store_limits(c, &res);
    c->dom_level_redis = res.dom_level[0] ? strlen(res.dom_level) : 0;
    c->dom_member_redis = res.dom_member;
    return unmapped;
}

/*
 * Sender domain protection (doc/OPERATIONS). The most specific protected suffix of
 * the sender domain decides, whether the config (customers[].domains) or Redis
 * (PREFIX domain:SUFFIX) protects it; at equal depth the owners of both count.
 * Suffixes of one name are ordered by length, so length compares depth.
 * Returns NULL when the sender may use the domain, else the reason.
 */
static const char *domain_refusal(const struct pol_conn *c)
{
    const struct rm_config *cfg = c->snap->cfg;
    const char *lvl =
        c->sender_domain[0] ? cfg_domain_level(cfg, c->sender_domain) : NULL;
    size_t cfg_len = lvl ? strlen(lvl) : 0;
    int owner;

    if (c->sender_domain[0] == '\0')
        return NULL; /* the null sender (bounces) is never refused for ownership */
    if (cfg_len == 0 && c->dom_level_redis == 0)
        owner = -1; /* nobody protects it */
    else if (cfg_len > c->dom_level_redis)
        owner = cfg_domain_owner(cfg, lvl, c->customer);
    else if (cfg_len < c->dom_level_redis)
        owner = c->dom_member_redis;
    else
        owner = c->dom_member_redis || cfg_domain_owner(cfg, lvl, c->customer);
    if (owner == 0)
        return "sender_domain_owned_by_other";
    if (owner < 0 && c->lim.v[LIM_OWN_DOMAINS_ONLY])
        return "sender_domain_not_owned";
    return NULL;
}

/* The SASL login in canonical form into c->login; NULL when it is usable,
 * else the reason it is refused. A login is never cut short: two cut logins
 * could share a customer. */
static const char *take_login(struct pol_conn *c, const char *login)
{
    c->login[0] = '\0';
    if (login == NULL || *login == '\0')
        return NULL;
    if (login_canonical(c->snap->cfg->sasl_realm, login, c->login, sizeof(c->login)) == 0)
        return NULL;
    c->login[0] = '\0';
    for (const char *p = login; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return "login_invalid";
    return "login_too_long";
}

/* A login that neither the Redis hash nor the config maps: sasl.unknown. */
static const char *unknown_login(struct pol_conn *c, struct pol_reply *r)
{
    switch (c->snap->cfg->sasl_unknown) {
    case CFG_SU_REFUSE:
        set_reply(r, POL_REJECT, "550", "5.7.1",
                  "SASL login %s is not provisioned on this relay, contact support",
                  c->login);
        return "login_not_provisioned";
    case CFG_SU_TEMPFAIL:
        set_reply(r, POL_TEMPFAIL, "451", "4.7.1",
                  "SASL login %s is not provisioned on this relay yet, try again later",
                  c->login);
        return "login_not_provisioned";
    default: /* own: the login is its customer, "sasl:LOGIN" */
        if (identity_name_problem(c->customer, 1) == NULL)
            return NULL;
        set_reply(r, POL_REJECT, "550", "5.7.1", "SASL login name not usable");
        return "login_invalid";
    }
}

/* A refusal at MAIL FROM: one decision line, one event, the end of it. */
static void refuse_mail(struct pol_conn *c, const char *reason, const struct pol_reply *r)
{
    const char *action = r->verdict == POL_TEMPFAIL ? "tempfail" : "reject";

    log_decision(c, NULL, action, reason);
    record_event(c, reason, action);
    end_transaction(c);
}

void pol_mail(struct pol_conn *c, struct snap *snap, const char *sender,
              const char *login, struct pol_reply *r)
{
    const char *domain, *reason;

    pol_abort(c); /* a MAIL without the previous transaction's end */
    c->snap = snap;
    reply_continue(r);
    int kind = addr_normalise(sender, c->sender, sizeof(c->sender), &domain);
    if ((reason = take_login(c, login)) != NULL) {
        snprintf(c->customer, sizeof(c->customer), "(unusable login)");
        set_reply(r, POL_REJECT, "550", "5.7.1", "SASL login name %s",
                  strcmp(reason, "login_too_long") == 0 ? "too long" : "not usable");
        log_decision(c, NULL, "reject", reason);
        end_transaction(c);
        return;
    }
    if (kind == ADDR_BAD) {
        snprintf(c->sender, sizeof(c->sender), "(malformed)");
        snprintf(c->customer, sizeof(c->customer), "(unknown)");
        set_reply(r, POL_REJECT, "550", "5.1.7", "malformed sender address");
        log_decision(c, NULL, "reject", "malformed_sender");
        end_transaction(c);
        return;
    }
    /* A domain that is not a valid name cannot be anyone's: no protection
     * applies, but own_domains_only still refuses it (nobody owns it). */
    c->sender_domain[0] = '\0';
    if (kind == ADDR_OK && (*domain == '\0' || dom_canonical(domain, c->sender_domain,
                                                             sizeof(c->sender_domain))))
        snprintf(c->sender_domain, sizeof(c->sender_domain), "invalid.");
    int unmapped = resolve_customer(c, r);
    if (unmapped < 0) {
        end_transaction(c);
        return;
    }
    if (unmapped && (reason = unknown_login(c, r)) != NULL) {
        refuse_mail(c, reason, r);
        return;
    }
    if (c->lim.v[LIM_SUSPENDED]) {
        reason = "suspended";
        set_reply(r, POL_REJECT, "550", "5.7.1",
                  "sending suspended for %s, contact support", c->customer);
    } else if ((reason = domain_refusal(c)) != NULL) {
        set_reply(r, POL_REJECT, "550", "5.7.1", "%s may not send as %s", c->customer,
                  c->sender_domain);
    }
    if (reason != NULL)
        refuse_mail(c, reason, r);
}

/* The blocked entry naming domain or its nearest parent, config or Redis. */
static const char *blocked_domain(struct pol_conn *c, const char *domain)
{
    const struct rm_config *cfg = c->snap->cfg;
    struct store *st = c->snap->store;
    const char *hit =
        dom_in_list(cfg->blocked_rcpt_domains.v, cfg->blocked_rcpt_domains.n, domain);

    for (const char *d = domain; hit == NULL && d != NULL; d = dom_parent(d))
        if (store_rcpt_blocked(st, d))
            hit = d;
    return hit;
}

static void note_rcpt(struct pol_conn *c, const char *addr)
{
    size_t len = strlen(c->rcpts);

    if (len + strlen(addr) + 2 < sizeof(c->rcpts))
        snprintf(c->rcpts + len, sizeof(c->rcpts) - len, "%s%s", len ? "," : "", addr);
}

void pol_rcpt(struct pol_conn *c, const char *rcpt, struct pol_reply *r)
{
    char addr[ADDR_MAX + 1], canon[DOM_MAX + 1];
    const char *domain, *hit;
    long long max;

    reply_continue(r);
    if (c->snap == NULL)
        return; /* RCPT outside a transaction: the MTA will refuse it */
    if (addr_normalise(rcpt, addr, sizeof(addr), &domain) == ADDR_OK && *domain &&
        dom_canonical(domain, canon, sizeof(canon)) == 0 &&
        (hit = blocked_domain(c, canon)) != NULL) {
        set_reply(r, POL_REJECT, "550", "5.7.1", "relaying to %s is not allowed", hit);
        msg_info("NOQUEUE: customer=%s login=%s sender=<%s> rcpt=<%s> action=reject "
                 "reason=blocked_recipient_domain",
                 c->customer, login_text(c), c->sender, addr);
        c->nblocked++;
        note_rcpt(c, addr);
        metrics_rcpt_refused(c->snap->metrics, "blocked_recipient_domain");
        return;
    }
    max = c->lim.v[LIM_MAX_RCPT];
    if (max != LIM_UNLIMITED && c->nrcpt >= max) {
        set_reply(r, POL_TEMPFAIL, "452", "4.5.3",
                  "too many recipients (max_recipients %lld)", max);
        metrics_rcpt_refused(c->snap->metrics, "max_recipients");
        return;
    }
    c->nrcpt++;
    note_rcpt(c, addr);
}

/* Over a quota: the customer's action decides what the message gets. */
static void over_quota(struct pol_conn *c, const char *qid,
                       const struct quota_result *res, struct pol_reply *r)
{
    char text[256], reason[64];
    const struct quota_counter *qc = &c->q.c[res->counter];
    int action = (int)c->lim.v[LIM_ACTION];

    quota_refusal_text(&c->q, res, c->customer, text, sizeof(text));
    snprintf(reason, sizeof(reason), "%s%s",
             lim_field_name(res->metric == 'm' ? qc->field_msg : qc->field_rcpt),
             res->local ? " fallback=local" : "");
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
        sanitise(c->hold_reason);
        break;
    default: /* monitor: a dry run */
        break;
    }
}

static void data_decide(struct pol_conn *c, const char *qid, struct pol_reply *r)
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
        return;
    }
    struct store_event ev = {qid ? qid : "",
                             c->customer,
                             login_text(c),
                             c->sender,
                             c->rcpts,
                             "",
                             lim_action_name((int)c->lim.v[LIM_ACTION])};
    c->q.event = &ev;
    int rc = timed_charge(c, &res, err);
    c->q.event = NULL;
    if (rc != 0) {
        store_failed(c, qid, "DATA", err, r);
        return;
    }
    if (!res.admitted) {
        over_quota(c, qid, &res, r);
        return;
    }
    c->charged = 1;
    c->charged_ms = res.charged_ms;
    c->q.local = res.local;
    log_decision(c, qid, "accept", res.local ? "store_error fallback=local" : NULL);
}

/* Only the end of the message tells that a charge stands (a transaction that
 * aborts after DATA gets it back), and waiting for it costs the MTA a round
 * trip to the milter per message and its cleanup server a milter of its own.
 * aborted_charge = keep makes the charge final here instead, so a message
 * that goes on is accepted now and the MTA skips the rest; a hold still needs
 * the end of the message, where quarantine is done. */
void pol_data(struct pol_conn *c, const char *qid, struct pol_reply *r)
{
    data_decide(c, qid, r);
    if (r->verdict != POL_CONTINUE || c->hold || c->snap == NULL ||
        c->snap->cfg->aborted_charge != CFG_AC_KEEP)
        return;
    r->verdict = POL_ACCEPT;
    end_transaction(c); /* the charge stands: nothing left to refund */
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
    if (c->nblocked > 0 && c->nrcpt == 0)
        record_event(c, "blocked_recipient_domain", "reject");
    if (c->charged) {
        if (store_refund(c->snap->store, &c->q, c->charged_ms, err) != 0)
            msg_error("customer=%s: refund of an aborted message failed: %s", c->customer,
                      err);
        else
            msg_info("customer=%s login=%s sender=<%s> nrcpt=%lld: transaction aborted, "
                     "charge refunded",
                     c->customer, login_text(c), c->sender, c->nrcpt);
    }
    end_transaction(c);
}

const char *pol_hold_reason(const struct pol_conn *c)
{
    return c->hold_reason;
}
