/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * store_redis - the store interface over Redis; see store_redis.h.
 */
#include "store_redis.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blockset.h"
#include "clookup.h"
#include "cluster.h"
#include "events.h"
#include "identity.h"
#include "keys.h"
#include "lastread.h"
#include "lookcache.h"
#include "localquota.h"
#include "quotaargs.h"
#include "log.h"
#include "metrics.h"
#include "route.h"
#include "xalloc.h"

struct store_redis {
    struct store base;
    struct route *route;
    char *prefix;
    int events_maxlen;
    struct blockset blocked;
    struct lookcache recent; /* MAIL FROM lookups, at most LOOKCACHE_MAX_AGE_MS old */
    /* on_store_error = local: counters kept here while Redis is unusable */
    struct localquota *local;
    double local_share;
    int local_max;
    /* Redis Cluster: the answers last read of the staff-edited keys, and what
     * going on without a node costs (clookup.h; logged once, counted) */
    struct lastread *last;
    atomic_int lookups_degraded, events_degraded;
    atomic_ulong lookups_from_copy, events_lost;
};

static long long wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
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
        rpool_int(r, 1, &garbage) != 0 || clookup_fields(r->element[2], res) != 0 ||
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

/* The slot of customer's counters (keys.h gives them its hash tag): the
 * node its charge at DATA will go to. */
static int counter_slot(const char *prefix, const char *customer)
{
    char key[QUOTA_KEY_MAX];
    int n = keys_counter(key, sizeof(key), prefix, KEYS_CUSTOMER, 0, customer, NULL);

    return n < 0 ? 0 : cluster_keyslot(key, (size_t)n);
}

/* One primary: lookup.lua reads everything in one round trip. */
static int script_lookup(struct store_redis *s, const struct store_lookup_req *req,
                         int blk_due, struct store_lookup_res *res, char *err)
{
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
    if (!blk_due)
        k_blk[0] = '\0';
    snprintf(cap, sizeof(cap), "%d", BLOCKSET_MAX_MEMBERS);
    const char *argv[] = {NULL,
                          NULL,
                          "2",
                          k_sasl,
                          k_lim,
                          req->login,
                          k_pre,
                          req->sender_domain ? req->sender_domain : "",
                          k_dom,
                          k_blk,
                          cap,
                          identity_forbidden,
                          [12 + IDENTITY_NRESERVED - 1] = NULL};
    enum { ARGC = sizeof(argv) / sizeof(argv[0]) };
    size_t lens[ARGC];
    for (int i = 0; i < IDENTITY_NRESERVED; i++)
        argv[12 + i] = identity_reserved[i];
    for (int i = 2; i < ARGC; i++)
        lens[i] = strlen(argv[i]);
    redisReply *r = route_call(s->route, 0, RPOOL_LOOKUP, ARGC, argv, lens, err);
    if (r == NULL)
        return -1;
    if (r->type != REDIS_REPLY_ARRAY)
        rpool_reply_error(r, err);
    else if ((rc = parse_lookup(s, r, res)) != 0)
        snprintf(err, STORE_ERR_MAX, "redis: malformed lookup reply");
    freeReplyObject(r);
    return rc;
}

/* Log once when a node's failure makes MAIL FROM go on with copies (or
 * without a fresh blocked-domain set), and once when that ends. */
static void note_degraded(atomic_int *flag, int now, const char *what)
{
    if (atomic_exchange(flag, now) == now)
        return;
    if (now)
        msg_warn("redis cluster: a node does not answer; %s (logged once until it "
                 "answers again)",
                 what);
    else
        msg_info("redis cluster: every node answers again; %s", what);
}

/* A Redis Cluster: routed reads (clookup.h). */
static int cluster_lookup(struct store_redis *s, const struct store_lookup_req *req,
                          int blk_due, struct store_lookup_res *res, char *err)
{
    struct clookup_in in = {req, s->prefix, blk_due};
    struct clookup_out out;
    int rc = clookup_run(s->route, s->last, &in, res, &out, err);

    if (out.blocked != NULL) {
        install_blocked(s, out.blocked);
        freeReplyObject(out.blocked);
    }
    if (rc != 0)
        return -1;
    int degraded = out.stale > 0 || out.blocked_missed;
    if (degraded)
        atomic_fetch_add(&s->lookups_from_copy, 1);
    note_degraded(&s->lookups_degraded, degraded,
                  degraded ? "MAIL FROM goes on with the staff-edited keys last read "
                             "from it"
                           : "MAIL FROM reads the staff-edited keys afresh");
    return 0;
}

static int redis_lookup(struct store *base, const struct store_lookup_req *req,
                        struct store_lookup_res *res, char *err)
{
    struct store_redis *s = (struct store_redis *)base;
    int cluster = route_is_cluster(s->route);

    /* A recent copy answers, unless the blocked-domain copy is due (that
     * refresh rides on this round trip, so it is never skipped) or the
     * circuit of the node the charge will go to is open: then the charge at
     * DATA would fail anyway, and failing here tells the client before it
     * sends the message. */
    int blk_due = blockset_stale(&s->blocked);
    if (!blk_due &&
        !route_slot_circuit_open(s->route, counter_slot(s->prefix, req->fallback)) &&
        lookcache_get(&s->recent, req, res)) {
        res->cached = 1;
        return 0;
    }
    /* Two ways to one answer. On one server, lookup.lua reads the sasl hash,
     * then the limits of the customer it names, the domain sets and the
     * blocked set in one round trip: its keys are chosen as it runs, which
     * is fine where every key is on that server. On a cluster those keys lie
     * in many slots, so they are read with routed single-key commands, one
     * round trip per node touched (clookup.h): more calls, each cheap, and
     * the 1 s copy keeps it to one lookup a second per busy customer. */
    int rc = cluster ? cluster_lookup(s, req, blk_due, res, err)
                     : script_lookup(s, req, blk_due, res, err);
    /* An answer made of copies is not kept: the next message reads again,
     * so the node's return is seen at once. */
    if (rc == 0 && !(cluster && atomic_load(&s->lookups_degraded)))
        lookcache_put(&s->recent, req, res);
    return rc;
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
    res->retry_ms = quota_retry_bound(q, res->counter, retry);
    return 0;
}

/* One entry of the events stream, a call of its own (XADD, capped). */
static int write_event(struct store_redis *s, const struct store_event *ev,
                       const char *reason, char *err)
{
    char key[512], maxlen[24], now[24];

    if (keys_events(key, sizeof(key), s->prefix) < 0) {
        snprintf(err, STORE_ERR_MAX, "prefix too long for a key");
        return -1;
    }
    snprintf(maxlen, sizeof(maxlen), "%d", s->events_maxlen);
    snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
    struct store_event e = *ev;
    const char *argv[EVENTS_XADD_ARGC];
    size_t lens[EVENTS_XADD_ARGC];
    e.reason = reason;
    int argc = events_xadd_argv(argv, key, maxlen, now, &e);
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    redisReply *r = route_call(s->route, cluster_keyslot(key, strlen(key)), ROUTE_COMMAND,
                               argc, argv, lens, err);
    int rc = r != NULL && r->type == REDIS_REPLY_STRING ? 0 : -1;
    if (r != NULL && rc != 0)
        rpool_reply_error(r, err);
    if (r != NULL)
        freeReplyObject(r);
    return rc;
}

/* On a cluster the events stream lives on one node, which may be down: the
 * refusal stands all the same; the loss is counted and logged once. */
static int cluster_event(struct store_redis *s, const struct store_event *ev,
                         const char *reason)
{
    char err[STORE_ERR_MAX];
    int rc = write_event(s, ev, reason, err);

    if (rc != 0)
        atomic_fetch_add(&s->events_lost, 1);
    if (atomic_exchange(&s->events_degraded, rc != 0) != (rc != 0)) {
        if (rc != 0)
            msg_warn("redis cluster: cannot write %sevents (%s); refusals stand, their "
                     "events are lost (logged once until a write succeeds)",
                     s->prefix, err);
        else
            msg_info("redis cluster: %sevents written again", s->prefix);
    }
    return 0;
}

static int quota_call(struct store_redis *s, const struct quota_req *q, const char *op,
                      long long charged_ms, struct quota_result *res, char *err)
{
    struct quotaargs a;
    char events_key[512];
    int rc = -1, cluster = route_is_cluster(s->route);
    /* One primary records a refusal inside the charge; a cluster cannot (the
     * stream's slot is not the counters'), so it writes it afterwards. */
    int in_call = !cluster && charged_ms < 0 && q->event != NULL &&
                  s->events_maxlen > 0 &&
                  keys_events(events_key, sizeof(events_key), s->prefix) >= 0;

    memset(res, 0, sizeof(*res));
    if (q->n == 0) { /* nothing limited: no round trip */
        res->admitted = 1;
        return 0;
    }
    quotaargs_build(&a, q, op, charged_ms, in_call ? events_key : NULL, s->events_maxlen);
    /* Every counter of the message has the customer's hash tag (keys.h):
     * the first one's slot is all of theirs. */
    redisReply *r = route_call(s->route, cluster_keyslot(q->c[0].key, q->c[0].keylen),
                               RPOOL_RELAY, a.argc, a.argv, a.lens, err);
    if (r == NULL)
        return -1;
    if (r->type != REDIS_REPLY_ARRAY)
        rpool_reply_error(r, err);
    else if ((rc = parse_charge(q, r, res)) != 0)
        snprintf(err, STORE_ERR_MAX, "redis: malformed %s reply", op);
    freeReplyObject(r);
    if (rc == 0 && cluster && !res->admitted && q->event != NULL &&
        s->events_maxlen > 0) {
        const struct quota_counter *c = &q->c[res->counter];
        cluster_event(s, q->event,
                      lim_field_name(res->metric == 'm' ? c->field_msg : c->field_rcpt));
    }
    return rc;
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
    int rc = localquota_charge(s->local, q, s->local_share, wall_ms(), res);
    if (rc != 0) {
        size_t len = strlen(err);
        snprintf(err + len, STORE_ERR_MAX - len, "; %s",
                 rc == -1 ? "local table full" : "local fallback failed");
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

    if (s->events_maxlen == 0)
        return 0;
    if (route_is_cluster(s->route))
        return cluster_event(s, ev, ev->reason);
    return write_event(s, ev, ev->reason, err);
}

static int redis_circuit_open(struct store *base)
{
    return route_circuit_open(((struct store_redis *)base)->route);
}

static size_t redis_metrics(struct store *base, char *buf, size_t len)
{
    struct store_redis *s = (struct store_redis *)base;
    struct metrics_text t = {buf, len, route_metrics(s->route, buf, len)};

    if (!route_is_cluster(s->route))
        return t.used;
    metrics_counter(&t, "relaymilter_redis_lookups_from_copy_total",
                    "MAIL FROM lookups that went on with staff-edited keys last read, "
                    "a node not answering.",
                    atomic_load(&s->lookups_from_copy));
    metrics_counter(&t, "relaymilter_redis_events_lost_total",
                    "Events that could not be written (the refusals stood).",
                    atomic_load(&s->events_lost));
    return t.used;
}

static void redis_destroy(struct store *base)
{
    struct store_redis *s = (struct store_redis *)base;

    route_free(s->route);
    blockset_free(&s->blocked);
    lookcache_free(&s->recent);
    if (s->last) {
        lastread_free(s->last);
        free(s->last);
    }
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
    .metrics = redis_metrics,
    .destroy = redis_destroy,
};

struct store *store_redis_new(const struct rm_config *cfg)
{
    struct store_redis *s = xcalloc(1, sizeof(*s));

    s->prefix = xstrdup(cfg->prefix);
    s->base.ops = &redis_ops;
    atomic_init(&s->base.refs, 1);
    s->route = route_new(cfg);
    s->events_maxlen = cfg->events_maxlen;
    blockset_init(&s->blocked);
    lookcache_init(&s->recent);
    if (route_is_cluster(s->route)) {
        s->last = xmalloc(sizeof(*s->last));
        lastread_init(s->last);
    }
    if (cfg->on_store_error == CFG_SE_LOCAL)
        s->local = localquota_new((size_t)cfg->local_max_entries);
    s->local_share = cfg->local_share;
    s->local_max = cfg->local_max_entries;
    return &s->base;
}

int store_redis_matches(const struct store *base, const struct rm_config *cfg)
{
    const struct store_redis *s = (const struct store_redis *)base;

    return route_matches(s->route, cfg) && strcmp(s->prefix, cfg->prefix) == 0 &&
           s->events_maxlen == cfg->events_maxlen &&
           (s->local != NULL) == (cfg->on_store_error == CFG_SE_LOCAL) &&
           s->local_share == cfg->local_share && s->local_max == cfg->local_max_entries;
}
