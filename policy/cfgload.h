/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * cfgload - the parts of the config loader (config.h) shared by its files:
 * config.c (scalar keys, groups, the whole file), cfgcust.c (the
 * customers list) and cfgredis.c (the redis { } group as a whole). Not for use outside
 * the loader.
 *
 * Interface:
 *   cfg_fail(ld, setting, fmt, ...)       "FILE:LINE: what" into the loader's
 *                                         error buffer; returns -1
 *   cfg_get_strlist(ld, s, what, out)     a list of non-empty strings
 *   cfg_canon_domains(ld, s, what, l)     l's domains in canonical form
 *   cfg_get_int(ld, s, what, min, max, out)  a whole number in range
 *   cfg_load_limits(ld, g, where, out)    a limits { } group, partial
 *   cfgcust_load(ld, cfg, list)           customers ( ... )
 *   cfgcust_canon_logins(ld, cfg, lc)     sasl.realm, then customers[].sasl,
 *                                         in canonical form
 *   cfgredis_check(ld, cfg, lc)           the rules joining redis { } keys:
 *                                         Sentinel, Redis Cluster, credentials,
 *                                         the prefix
 */
#ifndef RM_CFGLOAD_H
#define RM_CFGLOAD_H

#include <libconfig.h>
#include <stddef.h>

#include "config.h"
#include "log.h"

struct loader {
    const char *path;
    char *err;
    size_t errlen;
};

int cfg_fail(struct loader *ld, const config_setting_t *s, const char *fmt, ...)
    RM_PRINTF(3, 4);
int cfg_get_strlist(struct loader *ld, const config_setting_t *s, const char *what,
                    struct cfg_strlist *out);
int cfg_canon_domains(struct loader *ld, const config_setting_t *s, const char *what,
                      struct cfg_strlist *l);
int cfg_get_int(struct loader *ld, const config_setting_t *s, const char *what,
                long long min, long long max, long long *out);
int cfg_load_limits(struct loader *ld, const config_setting_t *g, const char *where,
                    struct lim_set *out);
int cfgcust_load(struct loader *ld, struct rm_config *cfg, const config_setting_t *l);
int cfgcust_canon_logins(struct loader *ld, struct rm_config *cfg, config_t *lc);
int cfgredis_check(struct loader *ld, struct rm_config *cfg, config_t *lc);

#endif
