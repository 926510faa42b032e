/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * policy - the decisions for one SMTP connection, event by event. The milter
 * callbacks are a thin layer over this; unit tests drive it with a fake store.
 *
 * Interface:
 *   pol_conn_new(addr)         addr NULL when the client is not an IP peer
 *   pol_mail(c, snap, sender, login, reply)
 *                              starts a transaction; takes over one reference to
 *                              snap (the rules this message is judged by).
 *                              Identity + staff limits (one store round trip),
 *                              suspension.
 *   pol_rcpt(c, rcpt, reply)   max_recipients
 *   pol_data(c, qid, reply)    every quota, checked and charged at once. With
 *                              aborted_charge = keep the charge is final here
 *                              and a message that goes on gets POL_ACCEPT: the
 *                              transaction is over for the policy, and the
 *                              MTA need not send the end of the message.
 *   pol_eom(c, qid)            the message is in: the charge stands. Returns 1
 *                              when the message goes to the hold queue.
 *   pol_abort(c)               the transaction ended without the message: any
 *                              charge is given back (after POL_ACCEPT there is
 *                              none: that charge was final)
 *   pol_conn_free(c)           pol_abort, then free
 *   pol_hold_reason(c)         text for the hold queue entry
 *
 * A reply with verdict POL_CONTINUE or POL_ACCEPT carries no text. Text is printable
 * ASCII without '%', safe to hand to smfi_setreply.
 */
#ifndef RM_POLICY_H
#define RM_POLICY_H

#include "netmatch.h"
#include "snapshot.h"

enum pol_verdict { POL_CONTINUE, POL_ACCEPT, POL_TEMPFAIL, POL_REJECT };

struct pol_reply {
    enum pol_verdict verdict;
    char rcode[4];
    char xcode[8];
    char text[320];
};

struct pol_conn;

struct pol_conn *pol_conn_new(const struct net_addr *addr);
void pol_conn_free(struct pol_conn *c);
void pol_mail(struct pol_conn *c, struct snap *snap, const char *sender,
              const char *login, struct pol_reply *reply);
void pol_rcpt(struct pol_conn *c, const char *rcpt, struct pol_reply *reply);
void pol_data(struct pol_conn *c, const char *qid, struct pol_reply *reply);
int pol_eom(struct pol_conn *c, const char *qid);
void pol_abort(struct pol_conn *c);
const char *pol_hold_reason(const struct pol_conn *c);

#endif
