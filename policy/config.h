/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * config - the relaymilter.conf loader (libconfig syntax, relaymilter.conf(5)).
 *
 * Interface:
 *   cfg_load(path, err, errlen)   parse and validate; NULL with "FILE:LINE: what"
 *                                 in err on any error (unknown key, bad type,
 *                                 value out of range, missing required key)
 *   cfg_load_fp(path, fp, err, errlen)  the same from an open stream (path
 *                                 names it in errors)
 *   cfg_free(cfg)
 *   cfg_print(cfg, out)                 the effective configuration, every key
 *                                       with the defaults filled in, as a
 *                                       config file that loads to the same
 *                                       configuration (relaymilter -p); a
 *                                       password is not shown
 *   cfg_customer_by_sasl(cfg, login)    customer index or -1; login canonical
 *   cfg_customer_by_addr(cfg, addr)     longest networks prefix, or -1
 *   cfg_customer_find(cfg, name)        customer index by name, or -1
 *   cfg_sasl_unknown_name(mode)         "own", "refuse", "tempfail"
 *   cfg_effective_limits(cfg, cust, out)  built-in < limits < customers[].limits
 *   cfg_limit_source(cfg, cust, field)  which of those three gives a field its
 *                                       value (CFG_LIM_BUILTIN ...)
 *   cfg_domain_level(cfg, domain)       the most specific suffix of a canonical
 *                                       domain that some customers[].domains
 *                                       names (pointer into domain), or NULL
 *   cfg_domain_owner(cfg, level, name)  1 when customer name lists level
 *
 * Domain lists (customers[].domains, blocked_recipient_domains) are stored in
 * canonical form (domain.h), and customers[].sasl in the canonical login form
 * (login.h) under sasl.realm. Customer names obey identity_name_problem().
 *
 * Scalar keys are described by a table (type, default, min, max), so parsing
 * and range checks are data and every key is named once. A loaded config is
 * immutable: threads share it through snapshot.h.
 */
#ifndef RM_CONFIG_H
#define RM_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "limits.h"
#include "netmatch.h"

enum cfg_store_error { CFG_SE_ACCEPT, CFG_SE_TEMPFAIL, CFG_SE_LOCAL };
/* aborted_charge: what a transaction aborted after DATA does to its charge */
enum cfg_aborted_charge { CFG_AC_REFUND, CFG_AC_KEEP };
/* sasl.unknown: what a login that names no customer gets */
enum cfg_sasl_unknown { CFG_SU_OWN, CFG_SU_REFUSE, CFG_SU_TEMPFAIL };
/* where a limit field's value in the config comes from */
enum cfg_limit_source { CFG_LIM_BUILTIN, CFG_LIM_LIMITS, CFG_LIM_CUSTOMER };

struct cfg_strlist {
    char **v;
    size_t n;
};

struct cfg_customer {
    char *name;
    struct cfg_strlist sasl; /* canonical logins (login.h) */
    struct cfg_strlist domains;
    struct lim_set limits; /* only the fields the customer sets */
};

struct rm_config {
    char *path;
    /* milter */
    char *socket;
    int timeout;
    char *user;
    char *socket_mode; /* unix socket: octal text, as written */
    int socket_mode_bits;
    char *socket_group;
    /* redis */
    char *redis_host;
    int redis_port;
    char *redis_unix;
    struct cfg_strlist sentinels;
    char *redis_master;
    struct cfg_strlist cluster_nodes; /* Redis Cluster seeds; empty: no cluster */
    char *redis_username;
    char *redis_password;
    int redis_db;
    char *prefix;
    int connect_timeout_ms;
    int command_timeout_ms;
    int pool_size;
    int events_maxlen;     /* 0: no events stream */
    double local_share;    /* on_store_error = local: share of each limit */
    int local_max_entries; /* on_store_error = local: counters kept at most */

    int on_store_error;
    int aborted_charge;
    char *sasl_realm; /* canonical (lower case); NULL: no realm */
    int sasl_unknown;
    char *metrics_listen; /* "HOST:PORT" of /metrics, NULL: off */
    int log_level;
    struct lim_set limits;       /* every field set: built-in overlaid by limits{} */
    struct lim_set limits_given; /* only the fields limits{} sets */
    struct cfg_customer *customers;
    size_t ncustomers;
    struct net_prefix *networks; /* value = customer index */
    size_t nnetworks;
    struct cfg_strlist blocked_rcpt_domains;
};

struct rm_config *cfg_load(const char *path, char *err, size_t errlen);
struct rm_config *cfg_load_fp(const char *path, FILE *fp, char *err, size_t errlen);
void cfg_free(struct rm_config *cfg);
void cfg_print(const struct rm_config *cfg, FILE *out);
int cfg_customer_by_sasl(const struct rm_config *cfg, const char *login);
int cfg_customer_by_addr(const struct rm_config *cfg, const struct net_addr *addr);
int cfg_customer_find(const struct rm_config *cfg, const char *name);
void cfg_effective_limits(const struct rm_config *cfg, int cust, struct lim_set *out);
enum cfg_limit_source cfg_limit_source(const struct rm_config *cfg, int cust, int field);
const char *cfg_domain_level(const struct rm_config *cfg, const char *domain);
int cfg_domain_owner(const struct rm_config *cfg, const char *level,
                     const char *customer);
const char *cfg_store_error_name(int mode);
const char *cfg_sasl_unknown_name(int mode);

#endif
