/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ctl - what every command of relaymilter-ctl (relaymilter-ctl(1)) is given.
 *
 * Interface:
 *   struct ctl     the loaded configuration, its redis settings already
 *                  overridden by the command-line flags; the Redis seam
 *                  (ctlredis.h); --json and --yes
 *   ctl_cmd_fn     a command: ctl, its arguments (after the command name);
 *                  returns the exit status
 *   CTL_OK, CTL_EREDIS, CTL_EUSAGE   the exit statuses (0, 1, 2)
 *
 * Commands live in ctlusage.c (usage), ctlshow.c (limits, whois, events)
 * and ctledit.c (every command that writes); main.c reads the options and
 * the configuration and dispatches.
 */
#ifndef RM_CTL_H
#define RM_CTL_H

#include "config.h"

enum { CTL_OK = 0, CTL_EREDIS = 1, CTL_EUSAGE = 2 };

struct ctlredis;

struct ctl {
    struct rm_config *cfg;
    const char *conf; /* the file read; NULL: built-in defaults only */
    struct ctlredis *redis;
    int json; /* --json: one JSON document on stdout */
    int yes;  /* -y / --yes: no confirmation */
};

typedef int ctl_cmd_fn(struct ctl *ctl, int argc, char **argv);

#endif
