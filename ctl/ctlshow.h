/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ctlshow - the read commands of relaymilter-ctl besides usage
 * (relaymilter-ctl(1)); each honours --json.
 *
 * Interface (ctl_cmd_fn, argv after the command name):
 *   ctlshow_limits(ctl, argc, argv)   limits CUSTOMER: the Redis hash
 *                                     PREFIX limits:CUSTOMER as stored, each
 *                                     field the daemon would ignore marked
 *   ctlshow_fields(ctl, argc, argv)   fields: every limit field (limits.h),
 *                                     its kind and the value that lifts it;
 *                                     reads no Redis
 *   ctlshow_whois(ctl, argc, argv)    whois LOGIN: the customer the login
 *                                     resolves to and why, as the daemon
 *                                     decides it (relaymilter.conf(5),
 *                                     "IDENTITY")
 *   ctlshow_events(ctl, argc, argv)   events [N]: the newest N entries of
 *                                     PREFIX events, newest first
 */
#ifndef RM_CTLSHOW_H
#define RM_CTLSHOW_H

#include "ctl.h"

int ctlshow_limits(struct ctl *ctl, int argc, char **argv);
int ctlshow_fields(struct ctl *ctl, int argc, char **argv);
int ctlshow_whois(struct ctl *ctl, int argc, char **argv);
int ctlshow_events(struct ctl *ctl, int argc, char **argv);

#endif
