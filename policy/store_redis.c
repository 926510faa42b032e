/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * store_redis - the store interface over Redis; see store_redis.h.
 */
#include "store_redis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blockset.h"
#include "identity.h"
#include "keys.h"
#include "lookcache.h"
#include "localquota.h"
#include "log.h"
#include "rpool.h"
#include "xalloc.h"

struct store_redis {
    struct store base;
    struct rpool *pool;
    char *prefix;
    int events_maxlen;
    struct blockset blocked;
    struct lookcache recent; /* MAIL FROM lookups, at most LOOKCACHE_MAX_AGE_MS old */
    /* on_store_error = local: counters kept here while Redis is unusable */
    struct localquota *local;
    double local_share;
    int local_max;
};

static long long wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* Every call ends here: the connection goes back with the call's outcome. */
static int finish(struct store_redis *s, struct rconn *c, redisReply *r, int rc)
{
    rpool_put(s->pool, c, rpool_status_of(c->ctx, r));
    if (r)
        freeReplyObject(r);
    return rc;
}

/* The blocked-domain members, canonicalised for bset (staff may type
 * "Spamtrap.Example."); names that are not domains are skipped. */
static void install_blocked(struct store_redis *s, const redisReply *set)
{
    char **v = xcalloc(set->elements, sizeof(char *));
    char canon[DOM_MAX + 1];
    size_t n = 0;

    for (size_t i = 0; i < set->elements; i++) {
        const redisReply *e = set->element[i];
        if (e->type != REDIS_REPLY_STRING || memchr(e->str, '\0', e->len) ||
            dom_canonical(e->str, canon, sizeof(canon)) != 0) {
            msg_warn("%sblocked-rcpt-domains: \"%.64s\" is not a domain; ignored",
                     s->prefix, e->type == REDIS_REPLY_STRING ? e->str : "?");
            continue;
        }
        v[n++] = xstrdup(canon);
    }
    blockset_replace(&s->blocked, v, n);
}

static int parse_fields(const redisReply *f, struct store_lookup_res *res)
{
    if (f->type != REDIS_REPLY_ARRAY || f->elements % 2 != 0)
        return -1;
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        int n = res->nfields;
        if (n == STORE_FIELDS_MAX) {
            res->truncated = 1;
            break;
        }
        int a = rpool_str(f, i, res->name[n], STORE_FIELD_LEN, &res->truncated);
        int b = rpool_str(f, i + 1, res->value[n], STORE_FIELD_LEN, &res->truncated);
        if (a < 0 || b < 0)
            return -1;
        if (a == 0 && b == 0)
            res->nfields++;
    }
    return 0;
}

/* { customer, garbage, {fields}, level, member, blocked-status, {blocked},
 *   bad-mapping } */
static int parse_lookup(struct store_redis *s, const redisReply *r,
                        struct store_lookup_res *res)
{
    long long garbage, member, bstatus, badmap;
    int trunc = 0;

    memset(res, 0, sizeof(*res));
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 8 ||
        rpool_int(r, 7, &badmap) != 0 ||
        rpool_str(r, 0, res->customer, sizeof(res->customer), &trunc) < 0 ||
        rpool_int(r, 1, &garbage) != 0 || parse_fields(r->element[2], res) != 0 ||
        rpool_str(r, 3, res->dom_level, sizeof(res->dom_level), &trunc) < 0 ||
        rpool_int(r, 4, &member) != 0 || rpool_int(r, 5, &bstatus) != 0 ||
        r->element[6]->type != REDIS_REPLY_ARRAY)
        return -1;
    if (trunc) { /* an over-long customer name is garbage, not a customer */
        res->customer[0] = '\0';
        res->dom_level[0] = '\0';
    }
    res->garbage = garbage != 0 || trunc || bstatus == 2;
    res->bad_mapping = badmap != 0 && res->customer[0] != '\0';
    res->dom_member = member != 0;
    if (bstatus == 1)
        install_blocked(s, r->element[6]);
    return 0;
}

static int redis_lookup(struct store *base, const struct store_lookup_req *req,
                        struct store_lookup_res *res, char *err)
{
    struct store_redis *s = (struct store_redis *)base;
    char k_sasl[512], k_lim[1024], k_pre[512], k_dom[512], k_blk[512], cap[24];
    int rc = -1;

    if (keys_sasl(k_sasl, sizeof(k_sasl), s->prefix) < 0 ||
        keys_limits(k_pre, sizeof(k_pre), s->prefix, NULL) < 0 ||
        keys_limits(k_lim, sizeof(k_lim), s->prefix, req->fallback) < 0 ||
        keys_domain(k_dom, sizeof(k_dom), s->prefix, NULL) < 0 ||
        keys_blocked(k_blk, sizeof(k_blk), s->prefix) < 0) {
        snprintf(err, STORE_ERR_MAX, "customer name too long for a key");
        return -1;
    }
    /* A recent copy answers, unless the blocked-domain copy is due (that
     * refresh rides on this round trip, so it is never skipped) or the
     * circuit is open: then the charge at DATA would fail anyway, and failing
     * here tells the client before it sends the message. */
    int blk_due = blockset_stale(&s->blocked);
    if (!blk_due && !rpool_circuit_open(s->pool) && lookcache_get(&s->recent, req, res)) {
        res->cached = 1;
        return 0;
    }
    if (!blk_due)
        k_blk[0] = '\0';
    snprintf(cap, sizeof(cap), "%d", BLOCKSET_MAX_MEMBERS);
    const char *argv[] = {NULL,
                          NULL,
                          "2",
                          k_sasl,
                          k_lim,
                          "lookup",
                          req->login,
                          k_pre,
                          req->sender_domain ? req->sender_domain : "",
                          k_dom,
                          k_blk,
                          cap,
                          identity_forbidden,
                          [12 + IDENTITY_NRESERVED] = NULL};
    enum { ARGC = sizeof(argv) / sizeof(argv[0]) };
    size_t lens[ARGC];
    for (int i = 0; i < IDENTITY_NRESERVED; i++)
        argv[13 + i] = identity_reserved[i];
    for (int i = 2; i < ARGC; i++)
        lens[i] = strlen(argv[i]);
    struct rconn *c = rpool_get(s->pool, err);
    if (c == NULL)
        return -1;
    redisReply *r = rpool_script(s->pool, c, ARGC, argv, lens);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        rpool_error(c->ctx, r, err);
    else if ((rc = parse_lookup(s, r, res)) != 0)
        snprintf(err, STORE_ERR_MAX, "redis: malformed lookup reply");
    else
        lookcache_put(&s->recent, req, res);
    return finish(s, c, r, rc);
}

enum { QARGS_MAX = 3 + QUOTA_MAX_COUNTERS + 2 + 5 * QUOTA_MAX_COUNTERS + 8 };

struct qargs {
    const char *argv[QARGS_MAX];
    size_t lens[QARGS_MAX];
    char num[QARGS_MAX][24];
    int argc, nnum;
};

static void push(struct qargs *a, const char *s, size_t len)
{
    a->argv[a->argc] = s;
    a->lens[a->argc++] = len;
}

static void push_str(struct qargs *a, const char *s)
{
    push(a, s ? s : "", s ? strlen(s) : 0);
}

static void push_num(struct qargs *a, long long v)
{
    snprintf(a->num[a->nnum], sizeof(a->num[0]), "%lld", v);
    push_str(a, a->num[a->nnum++]);
}

/* EVALSHA sha N key... op nrcpt (window lim_m lim_r name_m name_r)... tail */
static void quota_args(struct store_redis *s, const struct quota_req *q, const char *op,
                       long long charged_ms, struct qargs *a, char *events_key)
{
    a->argc = 2;
    a->nnum = 0;
    push_num(a, q->n);
    for (int i = 0; i < q->n; i++)
        push(a, q->c[i].key, q->c[i].keylen);
    push_str(a, op);
    push_num(a, q->nrcpt);
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
    push_str(a, ev && s->events_maxlen > 0 ? events_key : "");
    push_num(a, s->events_maxlen);
    push_str(a, ev ? ev->qid : "");
    push_str(a, ev ? ev->customer : "");
    push_str(a, ev ? ev->login : "");
    push_str(a, ev ? ev->sender : "");
    push_str(a, ev ? ev->recipients : "");
    push_str(a, ev ? ev->action : "");
}

static int parse_charge(const struct quota_req *q, const redisReply *r,
                        struct quota_result *res)
{
    long long ok, idx, retry;
    char metric[4];
    int trunc = 0;

    memset(res, 0, sizeof(*res));
    if (r->type != REDIS_REPLY_ARRAY || rpool_int(r, 0, &ok) != 0)
        return -1;
    if (ok == 1) {
        res->admitted = 1;
        return rpool_int(r, 1, &res->charged_ms);
    }
    if (rpool_int(r, 1, &idx) != 0 || idx < 1 || idx > q->n ||
        rpool_str(r, 2, metric, sizeof(metric), &trunc) != 0 ||
        (metric[0] != 'm' && metric[0] != 'r') || rpool_int(r, 3, &retry) != 0)
        return -1;
    res->counter = (int)idx - 1;
    res->metric = metric[0];
    /* A sliding window counter frees up within two windows (the previous
     * window's share fades out over the current one); anything beyond is
     * garbage from the store, bounded so later arithmetic cannot overflow. */
    long long most = 2 * q->c[res->counter].window_ms;
    res->retry_ms = retry < 0 ? 0 : retry > most ? most : retry;
    return 0;
}

static int quota_call(struct store_redis *s, const struct quota_req *q, const char *op,
                      long long charged_ms, struct quota_result *res, char *err)
{
    struct qargs a;
    char events_key[512];
    int rc = -1;

    memset(res, 0, sizeof(*res));
    if (q->n == 0) { /* nothing limited: no round trip */
        res->admitted = 1;
        return 0;
    }
    keys_events(events_key, sizeof(events_key), s->prefix);
    quota_args(s, q, op, charged_ms, &a, events_key);
    struct rconn *c = rpool_get(s->pool, err);
    if (c == NULL)
        return -1;
    redisReply *r = rpool_script(s->pool, c, a.argc, a.argv, a.lens);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        rpool_error(c->ctx, r, err);
    else if ((rc = parse_charge(q, r, res)) != 0)
        snprintf(err, STORE_ERR_MAX, "redis: malformed %s reply", op);
    return finish(s, c, r, rc);
}

/* With the local fallback a failed Redis call is answered from process
 * memory: the local clock stands in for Redis's (window edges are the same
 * multiples of the window length), and limits shrink to local_share. */
static int redis_charge(struct store *base, const struct quota_req *q,
                        struct quota_result *res, char *err)
{
    struct store_redis *s = (struct store_redis *)base;

    if (quota_call(s, q, "charge", -1, res, err) == 0)
        return 0;
    if (s->local == NULL)
        return -1;
    if (localquota_charge(s->local, q, s->local_share, wall_ms(), res) != 0) {
        size_t len = strlen(err);
        snprintf(err + len, STORE_ERR_MAX - len, "; local table full");
        return -1;
    }
    res->local = 1;
    return 0;
}

static int redis_refund(struct store *base, const struct quota_req *q,
                        long long charged_ms, char *err)
{
    struct store_redis *s = (struct store_redis *)base;
    struct quota_result ignored;

    if (q->local) {
        if (s->local != NULL)
            localquota_refund(s->local, q, charged_ms, wall_ms());
        return 0;
    }
    return quota_call(s, q, "refund", charged_ms, &ignored, err);
}

static int redis_rcpt_blocked(struct store *base, const char *domain)
{
    return blockset_contains(&((struct store_redis *)base)->blocked, domain);
}

static int redis_event(struct store *base, const struct store_event *ev, char *err)
{
    struct store_redis *s = (struct store_redis *)base;
    char key[512], maxlen[24], now[24];
    int rc = -1;

    if (s->events_maxlen == 0)
        return 0;
    keys_events(key, sizeof(key), s->prefix);
    snprintf(maxlen, sizeof(maxlen), "%d", s->events_maxlen);
    snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
    const char *argv[] = {
        "XADD",   key,        "MAXLEN",   "~",        maxlen,       "*",
        "time",   now,        "queue_id", ev->qid,    "customer",   ev->customer,
        "login",  ev->login,  "sender",   ev->sender, "recipients", ev->recipients,
        "reason", ev->reason, "action",   ev->action};
    enum { ARGC = sizeof(argv) / sizeof(argv[0]) };
    size_t lens[ARGC];
    for (int i = 0; i < ARGC; i++)
        lens[i] = strlen(argv[i]);
    struct rconn *c = rpool_get(s->pool, err);
    if (c == NULL)
        return -1;
    redisReply *r = redisCommandArgv(c->ctx, ARGC, argv, lens);
    if (r != NULL && r->type == REDIS_REPLY_STRING)
        rc = 0;
    else
        rpool_error(c->ctx, r, err);
    return finish(s, c, r, rc);
}

static int redis_circuit_open(struct store *base)
{
    return rpool_circuit_open(((struct store_redis *)base)->pool);
}

static void redis_destroy(struct store *base)
{
    struct store_redis *s = (struct store_redis *)base;

    rpool_free(s->pool);
    blockset_free(&s->blocked);
    lookcache_free(&s->recent);
    if (s->local)
        localquota_free(s->local);
    free(s->prefix);
    free(s);
}

static const struct store_ops redis_ops = {
    .lookup = redis_lookup,
    .charge = redis_charge,
    .refund = redis_refund,
    .rcpt_blocked = redis_rcpt_blocked,
    .event = redis_event,
    .circuit_open = redis_circuit_open,
    .destroy = redis_destroy,
};

struct store *store_redis_new(const struct rm_config *cfg)
{
    struct store_redis *s = xcalloc(1, sizeof(*s));

    s->prefix = xstrdup(cfg->prefix);
    s->base.ops = &redis_ops;
    atomic_init(&s->base.refs, 1);
    s->pool = rpool_new(cfg);
    s->events_maxlen = cfg->events_maxlen;
    blockset_init(&s->blocked);
    lookcache_init(&s->recent);
    if (cfg->on_store_error == CFG_SE_LOCAL)
        s->local = localquota_new((size_t)cfg->local_max_entries);
    s->local_share = cfg->local_share;
    s->local_max = cfg->local_max_entries;
    return &s->base;
}

int store_redis_matches(const struct store *base, const struct rm_config *cfg)
{
    const struct store_redis *s = (const struct store_redis *)base;

    return rpool_matches(s->pool, cfg) && strcmp(s->prefix, cfg->prefix) == 0 &&
           s->events_maxlen == cfg->events_maxlen &&
           (s->local != NULL) == (cfg->on_store_error == CFG_SE_LOCAL) &&
           s->local_share == cfg->local_share && s->local_max == cfg->local_max_entries;
}
