/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * config - the relaymilter.conf loader; see config.h.
 *
 * Every error is reported as "FILE:LINE: what is wrong" for the first problem
 * found, and loading stops there: a half-read config is never used.
 */
#include "config.h"

#include <libconfig.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfglex.h"
#include "cfgload.h"
#include "domain.h"
#include "log.h"
#include "xalloc.h"

enum cfg_type { CT_INT, CT_STR, CT_ENUM, CT_STRLIST, CT_SHARE };

/* One row per scalar key. Groups are "" (top level), "milter", "redis", "log";
 * the limits groups and customers are shaped differently and parsed by code. */
struct cfg_param {
    const char *group;
    const char *name;
    enum cfg_type type;
    size_t offset;
    long long def_int;
    const char *def_str;
    long long min, max;
    const char *const *choices; /* CT_ENUM: NULL-terminated */
};

static const char *const store_error_names[] = {"accept", "tempfail", "local", NULL};
static const char *const aborted_charge_names[] = {"refund", "keep", NULL};
static const char *const level_names[] = {"debug", "info", "warn", "error", NULL};
static const char *const sasl_unknown_names[] = {"own", "refuse", "tempfail", NULL};

#define OFF(f) offsetof(struct rm_config, f)
static const struct cfg_param cfg_params[] = {
    {"milter", "socket", CT_STR, OFF(socket), 0, "inet:8890@127.0.0.1", 0, 0, NULL},
    {"milter", "timeout", CT_INT, OFF(timeout), 30, NULL, 1, 3600, NULL},
    {"milter", "user", CT_STR, OFF(user), 0, NULL, 0, 0, NULL},
    {"milter", "socket_mode", CT_STR, OFF(socket_mode), 0, "0660", 0, 0, NULL},
    {"milter", "socket_group", CT_STR, OFF(socket_group), 0, NULL, 0, 0, NULL},
    {"redis", "host", CT_STR, OFF(redis_host), 0, "127.0.0.1", 0, 0, NULL},
    {"redis", "port", CT_INT, OFF(redis_port), 6379, NULL, 1, 65535, NULL},
    {"redis", "unix", CT_STR, OFF(redis_unix), 0, NULL, 0, 0, NULL},
    {"redis", "sentinels", CT_STRLIST, OFF(sentinels), 0, NULL, 0, 0, NULL},
    {"redis", "master", CT_STR, OFF(redis_master), 0, NULL, 0, 0, NULL},
    {"redis", "cluster_nodes", CT_STRLIST, OFF(cluster_nodes), 0, NULL, 0, 0, NULL},
    {"redis", "username", CT_STR, OFF(redis_username), 0, NULL, 0, 0, NULL},
    {"redis", "password", CT_STR, OFF(redis_password), 0, NULL, 0, 0, NULL},
    {"redis", "db", CT_INT, OFF(redis_db), 0, NULL, 0, 1023, NULL},
    {"redis", "prefix", CT_STR, OFF(prefix), 0, "relay:", 0, 0, NULL},
    {"redis", "connect_timeout_ms", CT_INT, OFF(connect_timeout_ms), 200, NULL, 1, 60000,
     NULL},
    {"redis", "command_timeout_ms", CT_INT, OFF(command_timeout_ms), 100, NULL, 1, 60000,
     NULL},
    {"redis", "pool_size", CT_INT, OFF(pool_size), 8, NULL, 1, 1024, NULL},
    {"redis", "local_share", CT_SHARE, OFF(local_share), 0, NULL, 0, 0, NULL},
    {"redis", "local_max_entries", CT_INT, OFF(local_max_entries), 100000, NULL, 100,
     10000000, NULL},
    {"redis", "events_maxlen", CT_INT, OFF(events_maxlen), 10000, NULL, 0, 10000000,
     NULL},
    {"", "on_store_error", CT_ENUM, OFF(on_store_error), CFG_SE_ACCEPT, NULL, 0, 0,
     store_error_names},
    {"", "aborted_charge", CT_ENUM, OFF(aborted_charge), CFG_AC_REFUND, NULL, 0, 0,
     aborted_charge_names},
    {"metrics", "listen", CT_STR, OFF(metrics_listen), 0, NULL, 0, 0, NULL},
    {"sasl", "realm", CT_STR, OFF(sasl_realm), 0, NULL, 0, 0, NULL},
    {"sasl", "unknown", CT_ENUM, OFF(sasl_unknown), CFG_SU_OWN, NULL, 0, 0,
     sasl_unknown_names},
    {"log", "level", CT_ENUM, OFF(log_level), LOG_LVL_INFO, NULL, 0, 0, level_names},
    {"", "blocked_recipient_domains", CT_STRLIST, OFF(blocked_rcpt_domains), 0, NULL, 0,
     0, NULL},
};
#define NPARAMS (sizeof(cfg_params) / sizeof(cfg_params[0]))

/* Top-level names parsed by code rather than by the table. */
static const char *const cfg_groups[] = {"milter", "redis",     "log",  "metrics",
                                         "limits", "customers", "sasl", NULL};

int cfg_fail(struct loader *ld, const config_setting_t *s, const char *fmt, ...)
{
    char what[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    const char *file =
        s && config_setting_source_file(s) ? config_setting_source_file(s) : ld->path;
    snprintf(ld->err, ld->errlen, "%s:%d: %s", file,
             s ? config_setting_source_line(s) : 0, what);
    return -1;
}

int cfg_get_strlist(struct loader *ld, const config_setting_t *s, const char *what,
                    struct cfg_strlist *out)
{
    if (!config_setting_is_array(s) && !config_setting_is_list(s))
        return cfg_fail(ld, s, "%s must be a list of strings, e.g. [ \"a\", \"b\" ]",
                        what);
    int n = config_setting_length(s);
    out->v = xcalloc((size_t)n, sizeof(char *));
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        if (config_setting_type(e) != CONFIG_TYPE_STRING ||
            !*config_setting_get_string(e))
            return cfg_fail(ld, e, "%s: element %d must be a non-empty string", what,
                            i + 1);
        out->v[out->n++] = xstrdup(config_setting_get_string(e));
    }
    return 0;
}

/* Domain lists are kept in canonical form (domain.h), so matching is a plain
 * string compare whatever spelling the file used. */
int cfg_canon_domains(struct loader *ld, const config_setting_t *s, const char *what,
                      struct cfg_strlist *l)
{
    char canon[DOM_MAX + 1];

    for (size_t i = 0; i < l->n; i++) {
        if (dom_canonical(l->v[i], canon, sizeof(canon)) != 0)
            return cfg_fail(ld, config_setting_get_elem(s, (unsigned)i),
                            "%s: \"%s\" is not a domain name", what, l->v[i]);
        free(l->v[i]);
        l->v[i] = xstrdup(canon);
    }
    return 0;
}

int cfg_get_int(struct loader *ld, const config_setting_t *s, const char *what,
                long long min, long long max, long long *out)
{
    int t = config_setting_type(s);
    if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
        return cfg_fail(ld, s, "%s must be a whole number", what);
    long long v = config_setting_get_int64(s);
    if (v < min || v > max)
        return cfg_fail(ld, s, "%s = %lld is out of range (%lld..%lld)", what, v, min,
                        max);
    *out = v;
    return 0;
}

static int choice_index(const char *const *choices, const char *s)
{
    for (int i = 0; choices[i]; i++)
        if (strcmp(choices[i], s) == 0)
            return i;
    return -1;
}

static int set_param(struct loader *ld, struct rm_config *cfg, const struct cfg_param *p,
                     const config_setting_t *s)
{
    char *base = (char *)cfg + p->offset;
    long long v;
    const char *str;

    switch (p->type) {
    case CT_INT:
        if (cfg_get_int(ld, s, p->name, p->min, p->max, &v) != 0)
            return -1;
        *(int *)base = (int)v;
        return 0;
    case CT_STR:
        if ((str = config_setting_get_string(s)) == NULL || *str == '\0')
            return cfg_fail(ld, s, "%s must be a non-empty string", p->name);
        free(*(char **)base);
        *(char **)base = xstrdup(str);
        return 0;
    case CT_ENUM:
        if ((str = config_setting_get_string(s)) == NULL ||
            (v = choice_index(p->choices, str)) < 0) {
            char list[128] = "";
            for (int i = 0; p->choices[i]; i++)
                snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
                         i ? " | " : "", p->choices[i]);
            return cfg_fail(ld, s, "%s must be one of: %s", p->name, list);
        }
        *(int *)base = (int)v;
        return 0;
    case CT_STRLIST:
        return cfg_get_strlist(ld, s, p->name, (struct cfg_strlist *)base);
    case CT_SHARE: {
        int t = config_setting_type(s);
        double d = t == CONFIG_TYPE_FLOAT ? config_setting_get_float(s)
                   : (t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64)
                       ? (double)config_setting_get_int64(s)
                       : -1.0;
        if (!(d > 0.0 && d <= 1.0))
            return cfg_fail(ld, s, "%s must be a number above 0 and at most 1, e.g. 0.25",
                            p->name);
        *(double *)base = d;
        return 0;
    }
    }
    msg_panic("config: unknown parameter type %d", p->type);
}

static void set_defaults(struct rm_config *cfg)
{
    for (size_t i = 0; i < NPARAMS; i++) {
        const struct cfg_param *p = &cfg_params[i];
        char *base = (char *)cfg + p->offset;
        if (p->type == CT_INT || p->type == CT_ENUM)
            *(int *)base = (int)p->def_int;
        else if (p->type == CT_STR && p->def_str)
            *(char **)base = xstrdup(p->def_str);
    }
    cfg->local_share = 0.25;
    lim_builtin(&cfg->limits);
}

static const struct cfg_param *find_param(const char *group, const char *name)
{
    for (size_t i = 0; i < NPARAMS; i++)
        if (strcmp(cfg_params[i].group, group) == 0 &&
            strcmp(cfg_params[i].name, name) == 0)
            return &cfg_params[i];
    return NULL;
}

/* Parse a limits { } group into a partial lim_set. */
int cfg_load_limits(struct loader *ld, const config_setting_t *g, const char *where,
                    struct lim_set *out)
{
    if (!config_setting_is_group(g))
        return cfg_fail(ld, g, "%s must be a group { ... }", where);
    for (int i = 0; i < config_setting_length(g); i++) {
        const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        const char *name = config_setting_name(s);
        int id = lim_field_find(name);
        long long v;
        if (id < 0)
            return cfg_fail(ld, s, "unknown key %s.%s", where, name);
        if (lim_field_kind(id) == LIM_KIND_ACTION) {
            const char *str = config_setting_get_string(s);
            if (str == NULL || lim_parse_value(id, str, &v) != 0)
                return cfg_fail(
                    ld, s, "%s.action must be one of: tempfail | reject | hold | monitor",
                    where);
        } else if (config_setting_type(s) == CONFIG_TYPE_BOOL &&
                   lim_field_kind(id) == LIM_KIND_BOOL) {
            v = config_setting_get_bool(s);
        } else if (lim_field_kind(id) == LIM_KIND_BOOL) {
            if (cfg_get_int(ld, s, name, 0, 1, &v) != 0)
                return -1;
        } else if (cfg_get_int(ld, s, name, -1, LIM_COUNT_MAX, &v) != 0) {
            return -1;
        }
        out->v[id] = v;
        out->set[id] = 1;
    }
    return 0;
}

static int load_group(struct loader *ld, struct rm_config *cfg, const config_setting_t *g)
{
    const char *gname = config_setting_name(g);

    if (!config_setting_is_group(g))
        return cfg_fail(ld, g, "%s must be a group { ... }", gname);
    for (int i = 0; i < config_setting_length(g); i++) {
        const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        const struct cfg_param *p = find_param(gname, config_setting_name(s));
        if (p == NULL)
            return cfg_fail(ld, s, "unknown key %s.%s", gname, config_setting_name(s));
        if (set_param(ld, cfg, p, s) != 0)
            return -1;
    }
    return 0;
}

static int load_top(struct loader *ld, struct rm_config *cfg, const config_setting_t *s)
{
    const char *name = config_setting_name(s);
    const struct cfg_param *p = find_param("", name);

    if (p && set_param(ld, cfg, p, s) != 0)
        return -1;
    if (p && p->offset == OFF(blocked_rcpt_domains))
        return cfg_canon_domains(ld, s, name, &cfg->blocked_rcpt_domains);
    if (p)
        return 0;
    if (strcmp(name, "limits") == 0) {
        struct lim_set over = {0};
        if (cfg_load_limits(ld, s, "limits", &over) != 0)
            return -1;
        lim_overlay(&cfg->limits, &over);
        lim_overlay(&cfg->limits_given, &over);
        return 0;
    }
    if (strcmp(name, "customers") == 0)
        return cfgcust_load(ld, cfg, s);
    if (choice_index(cfg_groups, name) >= 0)
        return load_group(ld, cfg, s);
    return cfg_fail(ld, s, "unknown key %s", name);
}

/* Rules that join several keys. */
static int check_whole(struct loader *ld, struct rm_config *cfg, config_t *lc)
{
    const config_setting_t *mode = config_lookup(lc, "milter.socket_mode");
    char *end;
    long m = strtol(cfg->socket_mode, &end, 8);
    if (*end != '\0' || m < 0 || m > 0777 || cfg->socket_mode[0] != '0')
        return cfg_fail(ld, mode,
                        "milter.socket_mode must be an octal mode like \"0660\"");
    cfg->socket_mode_bits = (int)m;
    if (cfgredis_check(ld, cfg, lc) != 0)
        return -1;
    return cfgcust_canon_logins(ld, cfg, lc);
}

struct rm_config *cfg_load(const char *path, char *err, size_t errlen)
{
    return cfg_load_fp(path, NULL, err, errlen);
}

struct rm_config *cfg_load_fp(const char *path, FILE *fp, char *err, size_t errlen)
{
    struct loader ld = {path, err, errlen};
    struct rm_config *cfg = xcalloc(1, sizeof(*cfg));
    config_t lc;
    char *text = NULL, what[256];
    size_t len = 0;
    int rc = 0, line = 0;

    config_init(&lc);
    cfg->path = xstrdup(path);
    set_defaults(cfg);
    if ((text = cfglex_read(path, fp, &len, err, errlen)) == NULL) {
        rc = -1;
        goto out;
    }
    if (cfglex_check(text, len, &line, what, sizeof(what)) != 0) {
        snprintf(err, errlen, "%s:%d: %s", path, line, what);
        rc = -1;
        goto out;
    }
    if (config_read_string(&lc, text) != CONFIG_TRUE) {
        snprintf(err, errlen, "%s:%d: %s", path, config_error_line(&lc),
                 config_error_text(&lc));
        rc = -1;
        goto out;
    }
    const config_setting_t *root = config_root_setting(&lc);
    for (int i = 0; i < config_setting_length(root) && rc == 0; i++)
        rc = load_top(&ld, cfg, config_setting_get_elem(root, (unsigned)i));
    if (rc == 0)
        rc = check_whole(&ld, cfg, &lc);
out:
    config_destroy(&lc);
    free(text);
    if (rc != 0) {
        cfg_free(cfg);
        return NULL;
    }
    return cfg;
}

static void strlist_free(struct cfg_strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
}

void cfg_free(struct rm_config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < NPARAMS; i++) {
        char *base = (char *)cfg + cfg_params[i].offset;
        if (cfg_params[i].type == CT_STR)
            free(*(char **)base);
        else if (cfg_params[i].type == CT_STRLIST)
            strlist_free((struct cfg_strlist *)base);
    }
    for (size_t i = 0; i < cfg->ncustomers; i++) {
        free(cfg->customers[i].name);
        strlist_free(&cfg->customers[i].sasl);
        strlist_free(&cfg->customers[i].domains);
    }
    free(cfg->customers);
    free(cfg->networks);
    free(cfg->path);
    free(cfg);
}

int cfg_customer_find(const struct rm_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->ncustomers; i++)
        if (cfg->customers[i].name && strcmp(cfg->customers[i].name, name) == 0)
            return (int)i;
    return -1;
}

int cfg_customer_by_sasl(const struct rm_config *cfg, const char *login)
{
    for (size_t i = 0; i < cfg->ncustomers; i++)
        for (size_t j = 0; j < cfg->customers[i].sasl.n; j++)
            if (strcmp(cfg->customers[i].sasl.v[j], login) == 0)
                return (int)i;
    return -1;
}

int cfg_customer_by_addr(const struct rm_config *cfg, const struct net_addr *addr)
{
    return net_table_lookup(cfg->networks, cfg->nnetworks, addr);
}

void cfg_effective_limits(const struct rm_config *cfg, int cust, struct lim_set *out)
{
    *out = cfg->limits;
    if (cust >= 0)
        lim_overlay(out, &cfg->customers[cust].limits);
}

enum cfg_limit_source cfg_limit_source(const struct rm_config *cfg, int cust, int field)
{
    if (cust >= 0 && cfg->customers[cust].limits.set[field])
        return CFG_LIM_CUSTOMER;
    return cfg->limits_given.set[field] ? CFG_LIM_LIMITS : CFG_LIM_BUILTIN;
}

const char *cfg_domain_level(const struct rm_config *cfg, const char *domain)
{
    for (const char *d = domain; d != NULL; d = dom_parent(d))
        for (size_t i = 0; i < cfg->ncustomers; i++)
            for (size_t j = 0; j < cfg->customers[i].domains.n; j++)
                if (strcmp(cfg->customers[i].domains.v[j], d) == 0)
                    return d;
    return NULL;
}

int cfg_domain_owner(const struct rm_config *cfg, const char *level, const char *customer)
{
    int idx = cfg_customer_find(cfg, customer);

    if (idx < 0)
        return 0;
    for (size_t j = 0; j < cfg->customers[idx].domains.n; j++)
        if (strcmp(cfg->customers[idx].domains.v[j], level) == 0)
            return 1;
    return 0;
}

const char *cfg_store_error_name(int mode)
{
    return store_error_names[mode];
}

const char *cfg_sasl_unknown_name(int mode)
{
    return sasl_unknown_names[mode];
}

/* ---- printing (relaymilter -p) ---------------------------------------- */

/* A libconfig string: quotes, backslashes and control characters escaped. */
static void print_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(out, "\\%c", *s);
        else if ((unsigned char)*s < 0x20 || *s == 0x7f)
            fprintf(out, "\\x%02x", (unsigned char)*s);
        else
            fputc(*s, out);
    }
    fputc('"', out);
}

static void print_strlist(FILE *out, const struct cfg_strlist *l)
{
    fputs("[ ", out);
    for (size_t i = 0; i < l->n; i++) {
        print_string(out, l->v[i]);
        fputs(i + 1 < l->n ? ", " : " ", out);
    }
    fputs("]", out);
}

/* libconfig reads a plain whole number as 32 bits; wider ones need L. */
static void print_number(FILE *out, long long v)
{
    fprintf(out, "%lld%s", v, (v > 2147483647LL || v < -2147483648LL) ? "L" : "");
}

static void print_param(FILE *out, const struct rm_config *cfg, const struct cfg_param *p,
                        const char *indent)
{
    const char *base = (const char *)cfg + p->offset;
    const char *str = p->type == CT_STR ? *(char *const *)base : NULL;

    if (p->type == CT_STR && str == NULL) {
        fprintf(out, "%s# %s: not set\n", indent, p->name);
        return;
    }
    if (p->offset == OFF(redis_password)) {
        fprintf(out, "%s# %s: set, not shown\n", indent, p->name);
        return;
    }
    fprintf(out, "%s%s = ", indent, p->name);
    switch (p->type) {
    case CT_INT:
        print_number(out, *(const int *)base);
        break;
    case CT_STR:
        print_string(out, str);
        break;
    case CT_ENUM:
        print_string(out, p->choices[*(const int *)base]);
        break;
    case CT_STRLIST:
        print_strlist(out, (const struct cfg_strlist *)base);
        break;
    case CT_SHARE: {
        double d;
        memcpy(&d, base, sizeof(d)); /* base points at a double member */
        fprintf(out, "%.6f", d);
        break;
    }
    }
    fputs(";\n", out);
}

/* The fields set in l, one per line. */
static void print_limits(FILE *out, const struct lim_set *l, const char *indent)
{
    for (int id = 0; id < LIM_NFIELDS; id++) {
        if (!l->set[id])
            continue;
        fprintf(out, "%s%s = ", indent, lim_field_name(id));
        if (lim_field_kind(id) == LIM_KIND_ACTION)
            print_string(out, lim_action_name((int)l->v[id]));
        else
            print_number(out, l->v[id]);
        fputs(";\n", out);
    }
}

static void print_customer(FILE *out, const struct rm_config *cfg, size_t i)
{
    const struct cfg_customer *c = &cfg->customers[i];
    struct cfg_strlist nets = {xcalloc(cfg->nnetworks, sizeof(char *)), 0};
    char text[64 * 2];

    for (size_t n = 0; n < cfg->nnetworks; n++)
        if (cfg->networks[n].value == (int)i) {
            net_prefix_text(&cfg->networks[n], text, sizeof(text));
            nets.v[nets.n++] = xstrdup(text);
        }
    fputs("  {\n    name = ", out);
    print_string(out, c->name);
    fputs(";\n    sasl = ", out);
    print_strlist(out, &c->sasl);
    fputs(";\n    networks = ", out);
    print_strlist(out, &nets);
    fputs(";\n    domains = ", out);
    print_strlist(out, &c->domains);
    fputs(";\n    limits = {\n", out);
    print_limits(out, &c->limits, "      ");
    fprintf(out, "    };\n  }%s\n", i + 1 < cfg->ncustomers ? "," : "");
    strlist_free(&nets);
}

void cfg_print(const struct rm_config *cfg, FILE *out)
{
    static const char *const groups[] = {"", "milter", "redis", "sasl", "log", "metrics"};

    fprintf(out, "# effective configuration of %s (relaymilter -p)\n", cfg->path);
    for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
        const char *indent = *groups[g] ? "  " : "";
        if (*groups[g])
            fprintf(out, "%s = {\n", groups[g]);
        for (size_t i = 0; i < NPARAMS; i++)
            if (strcmp(cfg_params[i].group, groups[g]) == 0)
                print_param(out, cfg, &cfg_params[i], indent);
        if (*groups[g])
            fputs("};\n", out);
    }
    fputs("limits = {\n", out);
    print_limits(out, &cfg->limits, "  ");
    fputs("};\ncustomers = (\n", out);
    for (size_t i = 0; i < cfg->ncustomers; i++)
        print_customer(out, cfg, i);
    fputs(");\n", out);
}
