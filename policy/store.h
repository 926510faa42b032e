/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * store - where shared limit state lives. The policy engine talks to this
 * interface only; store_redis.c implements it over Redis, and unit tests use
 * a fake.
 *
 * Interface (each call is one round trip, bounded by the store's timeouts).
 * Callers use the inline wrappers below, never the function table itself (as
 * Postfix's dict.h does), so optional operations are checked in one place:
 *   store_lookup(store, req, res, err)    MAIL FROM: the customer named by the
 *                                         SASL hash, and its staff-edited limit
 *                                         fields (raw name/value text); may be
 *                                         answered by a copy at most 1 s old
 *                                         (res->cached, no round trip)
 *   store_charge(store, q, res, err)      DATA: check and charge every counter
 *                                         of q, all or nothing
 *   store_refund(store, q, ms, err)       an aborted message gives back a charge
 *                                         made at store time ms
 *   store_rcpt_blocked(store, dom)        1 when the staff-edited set of blocked
 *                                         recipient domains names dom (canonical,
 *                                         the exact name; callers walk parents).
 *                                         No round trip: a local copy refreshed
 *                                         by lookup, never more than 2 s old
 *   store_event(store, ev, err)           append one entry to the events stream
 *                                         (refusals before DATA; refusals at DATA
 *                                         are recorded by charge, in its round trip)
 *   store_circuit_open(store)             1 while calls are suspended (the
 *                                         circuit breaker is open; on a Redis
 *                                         Cluster: of some node)
 *   store_metrics(store, buf, len)        the store's own metrics (per Redis
 *                                         Cluster node), Prometheus text;
 *                                         returns the length written
 *   store_ref(s) / store_unref(s)         shared by config snapshots; the last
 *                                         unref destroys it
 * All return 0, or -1 with a reason in err (a store error: timeout, refused
 * connection, unexpected reply); never block past the configured timeouts.
 */
#ifndef RM_STORE_H
#define RM_STORE_H

#include <stdatomic.h>
#include <stddef.h>

#include "domain.h"
#include "quota.h"

enum {
    STORE_NAME_MAX = 256,
    STORE_FIELDS_MAX = 32,
    STORE_FIELD_LEN = 64,
    STORE_ERR_MAX = 160
};

struct store_lookup_req {
    const char *login;         /* SASL login in canonical form, "" when none */
    const char *fallback;      /* the customer when the sasl hash does not name one */
    const char *sender_domain; /* canonical, "" for none: ownership is looked up */
};

struct store_lookup_res {
    char customer[STORE_NAME_MAX]; /* "" when the sasl hash does not name one */
    int bad_mapping;               /* the hash names customer, which may not be a customer
                                    * name (identity.h): ignored, the fallback's limits are
                                    * in the fields */
    int garbage;                   /* a key held the wrong type */
    int nfields;
    int truncated; /* more fields (or longer ones) than kept */
    char name[STORE_FIELDS_MAX][STORE_FIELD_LEN];
    char value[STORE_FIELDS_MAX][STORE_FIELD_LEN];
    /* sender domain protection: the most specific suffix of sender_domain
     * with a non-empty PREFIX domain:SUFFIX set ("" when none), and whether the
     * customer is among its members */
    char dom_level[DOM_MAX + 1];
    int dom_member;
    int cached; /* answered from the store's recent copy, without a round trip */
};

/* One entry of the events stream; fields are text, "" when unknown. */
struct store_event {
    const char *qid, *customer, *login, *sender, *recipients, *reason, *action;
};

struct store;

struct store_ops {
    int (*lookup)(struct store *s, const struct store_lookup_req *req,
                  struct store_lookup_res *res, char *err);
    int (*charge)(struct store *s, const struct quota_req *q, struct quota_result *res,
                  char *err);
    int (*refund)(struct store *s, const struct quota_req *q, long long charged_ms,
                  char *err);
    int (*rcpt_blocked)(struct store *s, const char *domain);
    int (*event)(struct store *s, const struct store_event *ev, char *err);
    int (*circuit_open)(struct store *s); /* optional: 1 while calls are suspended */
    size_t (*metrics)(struct store *s, char *buf, size_t len); /* optional */
    void (*destroy)(struct store *s);
};

struct store {
    const struct store_ops *ops;
    atomic_int refs;
};

static inline int store_lookup(struct store *s, const struct store_lookup_req *req,
                               struct store_lookup_res *res, char *err)
{
    return s->ops->lookup(s, req, res, err);
}

static inline int store_charge(struct store *s, const struct quota_req *q,
                               struct quota_result *res, char *err)
{
    return s->ops->charge(s, q, res, err);
}

static inline int store_refund(struct store *s, const struct quota_req *q,
                               long long charged_ms, char *err)
{
    return s->ops->refund(s, q, charged_ms, err);
}

static inline int store_rcpt_blocked(struct store *s, const char *domain)
{
    return s->ops->rcpt_blocked != NULL && s->ops->rcpt_blocked(s, domain);
}

static inline int store_event(struct store *s, const struct store_event *ev, char *err)
{
    return s->ops->event != NULL ? s->ops->event(s, ev, err) : 0;
}

static inline int store_circuit_open(struct store *s)
{
    return s->ops->circuit_open != NULL && s->ops->circuit_open(s);
}

static inline size_t store_metrics(struct store *s, char *buf, size_t len)
{
    return s->ops->metrics != NULL ? s->ops->metrics(s, buf, len) : 0;
}

static inline struct store *store_ref(struct store *s)
{
    atomic_fetch_add(&s->refs, 1);
    return s;
}

static inline void store_unref(struct store *s)
{
    if (s != NULL && atomic_fetch_sub(&s->refs, 1) == 1)
        s->ops->destroy(s);
}

#endif
