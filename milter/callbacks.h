/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * callbacks - the libmilter callback table. Each callback turns one SMTP event
 * into one call on policy/ and its answer into a milter reply; no decisions
 * are made here.
 *
 * Interface:
 *   cb_filter   the struct smfiDesc to hand to smfi_register
 */
#ifndef RM_CALLBACKS_H
#define RM_CALLBACKS_H

#include <libmilter/mfapi.h>

extern struct smfiDesc cb_filter;

#endif
