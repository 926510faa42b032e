/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * fakestore - a store (store.h) for unit tests: answers are scripted, calls
 * are recorded, failures are injected. No Redis, no network.
 *
 * Interface:
 *   fk                         the one fake; zero it, then set fk.base.ops to
 *                              &fake_ops and its refs before handing it over
 *   fake_field(name, value)    a staff-edited limit field the lookup returns
 *   fake_refuse(key)           refuse the charge on counter key (a copy is
 *                              kept); NULL admits again
 *   fake_ckey(w, customer) / fake_skey(w, customer, sender)
 *                              a counter name under the prefix "relay:", from
 *                              keys.h (testkeys.h: a rotating static buffer)
 *
 *   fake_owner(domain, customer)  SADD PREFIX domain:DOMAIN CUSTOMER
 *   fake_blocked(domain)       SADD PREFIX blocked-rcpt-domains DOMAIN
 *
 * Script: fail_* make the call return -1; customer is what the SASL hash
 * names (one that identity_name_problem refuses comes back as a bad mapping,
 * as from the real store); refuse_key refuses the charge on that counter (else it is
 * admitted at clock_ms); charge_local answers every charge as the local fallback would
 * (res.local = 1). The lookup answers domain ownership like the real store: the most
 * specific suffix of the sender domain with owners, and whether the customer (the SASL
 * hash's, else the fallback) is one of them. rcpt_blocked names exactly the blocked
 * domains (callers walk parents). Record: call counts, the lookup request, copies of the
 * charged and refunded requests, of the event each charge carried, and of the events
 * appended. destroy only counts, so the fake outlives every snapshot that
 * held it.
 */
#ifndef RM_FAKESTORE_H
#define RM_FAKESTORE_H

#include "addr.h"
#include "store.h"

enum { FAKE_MAX_OWNERS = 8, FAKE_MAX_BLOCKED = 8, FAKE_MAX_EVENTS = 4 };

/* A copy of a store_event: the original points into the caller's frame. */
struct fake_event {
    char qid[64], customer[STORE_NAME_MAX], login[STORE_NAME_MAX], sender[ADDR_MAX + 1];
    char recipients[512], reason[64], action[32];
};

struct fake {
    struct store base;
    /* script */
    int fail_lookup, fail_charge, fail_refund;
    char customer[STORE_NAME_MAX];
    int nfields;
    const char *fname[8], *fvalue[8];
    char refuse_key[QUOTA_KEY_MAX]; /* refuse the charge on this counter, "" admit */
    char refuse_metric;
    long long retry_ms;
    long long clock_ms;
    int charge_local;
    int fail_event;
    int nowners;
    const char *own_domain[FAKE_MAX_OWNERS], *own_customer[FAKE_MAX_OWNERS];
    int nblocked;
    const char *blocked[FAKE_MAX_BLOCKED];
    /* record */
    int lookups, charges, refunds, destroyed;
    char login[256], fallback[256], sender_domain[DOM_MAX + 1];
    struct quota_req charged, refunded;
    long long refund_ms;
    int charge_had_event;
    struct fake_event charge_event;           /* of the last charge that carried one */
    int events;                               /* event() calls */
    struct fake_event event[FAKE_MAX_EVENTS]; /* the first ones */
};

extern struct fake fk;
extern const struct store_ops fake_ops;

void fake_field(const char *name, const char *value);
void fake_refuse(const char *key);
const char *fake_ckey(char w, const char *customer);
const char *fake_skey(char w, const char *customer, const char *sender);
void fake_owner(const char *domain, const char *customer);
void fake_blocked(const char *domain);

#endif
