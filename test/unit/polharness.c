/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * polharness - a policy connection over the fake store; see polharness.h.
 */
#include "polharness.h"

#include <check.h>
#include <string.h>

#include "testutil.h"

struct snap *ph_snap;
struct pol_conn *ph_conn;
struct pol_reply ph_r;

void ph_start(const char *conf, const char *client)
{
    char err[512];
    struct net_addr a;
    struct rm_config *cfg = tu_load(conf, err, sizeof(err));

    ck_assert_msg(cfg != NULL, "config refused: %s", err);
    memset(&fk, 0, sizeof(fk));
    fk.base.ops = &fake_ops;
    atomic_init(&fk.base.refs, 1); /* handed over to the snapshot */
    fk.clock_ms = PH_CLOCK_MS;
    ph_snap = snap_new(cfg, &fk.base);
    if (client != NULL)
        ck_assert_int_eq(net_parse_addr(client, &a), 0);
    ph_conn = pol_conn_new(client ? &a : NULL);
}

void ph_finish(void)
{
    pol_conn_free(ph_conn);
    ph_conn = NULL;
    ck_assert_int_eq(atomic_load(&ph_snap->refs), 1); /* every message let go */
    snap_release(ph_snap);
    ph_snap = NULL;
    ck_assert_int_eq(fk.destroyed, 1);
}

void ph_mail(const char *sender, const char *login)
{
    atomic_fetch_add(&ph_snap->refs, 1); /* pol_mail takes over one reference */
    pol_mail(ph_conn, ph_snap, sender, login, &ph_r);
}

void ph_rcpt(const char *rcpt)
{
    pol_rcpt(ph_conn, rcpt, &ph_r);
}

void ph_expect(enum pol_verdict v, const char *rcode, const char *xcode)
{
    ck_assert_msg(ph_r.verdict == v, "verdict %d, want %d (%s %s %s)", ph_r.verdict, v,
                  ph_r.rcode, ph_r.xcode, ph_r.text);
    if (v == POL_CONTINUE || v == POL_ACCEPT)
        return;
    ck_assert_str_eq(ph_r.rcode, rcode);
    ck_assert_str_eq(ph_r.xcode, xcode);
    ck_assert_uint_gt(strlen(ph_r.text), 0);
}

const struct quota_counter *ph_charged(const char *key)
{
    for (int i = 0; i < fk.charged.n; i++)
        if (strcmp(fk.charged.c[i].key, key) == 0)
            return &fk.charged.c[i];
    return NULL;
}
