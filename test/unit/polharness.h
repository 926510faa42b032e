/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * polharness - one policy connection (policy.h) over a snapshot of a test
 * config and the fake store (fakestore.h), for the policy test suites.
 *
 * Interface:
 *   ph_start(conf, client)     load conf, reset the fake (its clock at a fixed
 *                              instant), open a connection from client (an IP
 *                              address, or NULL for a non-IP peer)
 *   ph_finish()                free the connection; every message must have
 *                              let go of the snapshot and the store
 *   ph_mail(sender, login)     pol_mail with one more snapshot reference
 *   ph_rcpt(rcpt)              pol_rcpt
 *   ph_expect(v, rcode, xcode) the last reply is v (with these codes and some
 *                              text unless v is POL_CONTINUE or POL_ACCEPT)
 *   ph_charged(key)            the counter of the last charge named key, or NULL
 *   ph_conn, ph_snap, ph_r     the connection, its snapshot, the last reply
 */
#ifndef RM_POLHARNESS_H
#define RM_POLHARNESS_H

#include "fakestore.h"
#include "policy.h"

#define PH_CLOCK_MS 1700000000123LL

extern struct snap *ph_snap;
extern struct pol_conn *ph_conn;
extern struct pol_reply ph_r;

void ph_start(const char *conf, const char *client);
void ph_finish(void);
void ph_mail(const char *sender, const char *login);
void ph_rcpt(const char *rcpt);
void ph_expect(enum pol_verdict v, const char *rcode, const char *xcode);
const struct quota_counter *ph_charged(const char *key);

#endif
