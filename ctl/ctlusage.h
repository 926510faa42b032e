/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ctlusage - relaymilter-ctl usage CUSTOMER, and what else needs to know
 * a customer's limits or whether the name is known at all.
 *
 * Interface:
 *   ctlusage_cmd(ctl, argc, argv)     the usage command: the customer's
 *       limits as the daemon applies them (Redis hash over customers[].limits
 *       over limits over the built-in defaults), and every counter of the
 *       customer and of each of its senders as relay.lua's usage operation
 *       reports it (the one place the window arithmetic lives)
 *   ctlusage_known(ctl, customer, &known)
 *       known 1 when the config names the customer, or Redis holds its limits
 *       hash, a counter of it, or a SASL login mapped to it; 0 or CTL_EREDIS
 *   ctlusage_note_unknown(ctl, customer)   says on stderr that it is not
 *   ctlusage_source_name(src)   "built-in", "limits", "customers[]" (enum
 *                               cfg_limit_source) or "redis" (CTLUSAGE_REDIS)
 *   ctlusage_value(id, v, buf, len)   a field's value as text: a number,
 *                               "unlimited" for -1 counts, an action name
 */
#ifndef RM_CTLUSAGE_H
#define RM_CTLUSAGE_H

#include <stddef.h>

#include "ctl.h"

enum { CTLUSAGE_REDIS = CFG_LIM_CUSTOMER + 1, CTLUSAGE_KEY_MAX = 1024 };

int ctlusage_cmd(struct ctl *ctl, int argc, char **argv);
int ctlusage_known(struct ctl *ctl, const char *customer, int *known);
void ctlusage_note_unknown(const struct ctl *ctl, const char *customer);
const char *ctlusage_source_name(int src);
void ctlusage_value(int id, long long v, char *buf, size_t len);

#endif
