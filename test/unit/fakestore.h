/*
 * fakestore - a store (store.h) for unit tests: answers are scripted, calls
 * are recorded, failures are injected. No Redis, no network.
 *
 * Interface:
 *   fk                         the one fake; zero it, then set fk.base.ops to
 *                              &fake_ops and its refs before handing it over
 *   fake_field(name, value)    a staff-edited limit field the lookup returns
 *
 * Script: fail_* make the call return -1; customer is what the SASL hash
 * names; refuse_key refuses the charge on that counter (else it is admitted
 * at clock_ms). Record: call counts, the lookup request, copies of the
 * charged and refunded requests. destroy only counts, so the fake outlives
 * every snapshot that held it.
 */
#ifndef RM_FAKESTORE_H
#define RM_FAKESTORE_H

#include "store.h"

struct fake {
    struct store base;
    /* script */
    int fail_lookup, fail_charge, fail_refund;
    char customer[STORE_NAME_MAX];
    int nfields;
    const char *fname[8], *fvalue[8];
    const char *refuse_key; /* refuse the charge on this counter, NULL admit */
    char refuse_metric;
    long long retry_ms;
    long long clock_ms;
    /* record */
    int lookups, charges, refunds, destroyed;
    char login[256], fallback[256];
    struct quota_req charged, refunded;
    long long refund_ms;
};

extern struct fake fk;
extern const struct store_ops fake_ops;

void fake_field(const char *name, const char *value);

#endif
