/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ctledit - the commands of relaymilter-ctl that write to Redis
 * (relaymilter-ctl(1)). Every value is checked before anything is written
 * (CTL_EUSAGE when refused), with the library's rules: limits.h for limit
 * values, domain.h for domains, login.h for logins, identity.h for customer
 * names, addr.h for senders; every key name comes from keys.h.
 *
 * Interface (ctl_cmd_fn, argv after the command name):
 *   ctledit_limits    limits CUSTOMER FIELD VALUE [FIELD VALUE]... (every pair
 *                     checked, then one HSET) | limits CUSTOMER unset FIELD...
 *   ctledit_suspend, ctledit_resume              CUSTOMER
 *   ctledit_own, ctledit_disown                  DOMAIN CUSTOMER
 *   ctledit_block, ctledit_unblock               DOMAIN
 *   ctledit_sasl      LOGIN CUSTOMER (the canonical login is stored)
 *   ctledit_unsasl    LOGIN
 *   ctledit_reset     CUSTOMER [SENDER]: deletes the counters, records the
 *                     reset in the events stream; asks first when standard
 *                     input is a terminal, unless --yes
 */
#ifndef RM_CTLEDIT_H
#define RM_CTLEDIT_H

#include "ctl.h"

int ctledit_limits(struct ctl *ctl, int argc, char **argv);
int ctledit_suspend(struct ctl *ctl, int argc, char **argv);
int ctledit_resume(struct ctl *ctl, int argc, char **argv);
int ctledit_own(struct ctl *ctl, int argc, char **argv);
int ctledit_disown(struct ctl *ctl, int argc, char **argv);
int ctledit_block(struct ctl *ctl, int argc, char **argv);
int ctledit_unblock(struct ctl *ctl, int argc, char **argv);
int ctledit_sasl(struct ctl *ctl, int argc, char **argv);
int ctledit_unsasl(struct ctl *ctl, int argc, char **argv);
int ctledit_reset(struct ctl *ctl, int argc, char **argv);

#endif
