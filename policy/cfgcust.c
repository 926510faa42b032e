/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * cfgcust - the customers list of relaymilter.conf; see cfgload.h.
 */
#include <stdlib.h>
#include <string.h>

#include "cfgload.h"
#include "identity.h"
#include "login.h"
#include "xalloc.h"

static int same_network(const struct net_prefix *t, size_t n, const struct net_prefix *p)
{
    for (size_t i = 0; i < n; i++)
        if (t[i].len == p->len && t[i].value != p->value && net_contains(&t[i], &p->addr))
            return t[i].value;
    return -1;
}

static int load_customer(struct loader *ld, struct rm_config *cfg,
                         const config_setting_t *g, struct cfg_customer *c,
                         struct net_prefix **nets, size_t *nnets)
{
    struct cfg_strlist networks = {0};
    int rc = 0;

    if (!config_setting_is_group(g))
        return cfg_fail(ld, g, "each customers entry must be a group { name = ...; }");
    for (int i = 0; i < config_setting_length(g) && rc == 0; i++) {
        const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        const char *name = config_setting_name(s);
        if (strcmp(name, "name") == 0) {
            const char *str = config_setting_get_string(s);
            if (str == NULL || *str == '\0')
                rc = cfg_fail(ld, s, "customers.name must be a non-empty string");
            else
                c->name = xstrdup(str);
        } else if (strcmp(name, "sasl") == 0) {
            rc = cfg_get_strlist(ld, s, "customers.sasl", &c->sasl);
        } else if (strcmp(name, "domains") == 0) {
            rc = cfg_get_strlist(ld, s, "customers.domains", &c->domains);
            if (rc == 0)
                rc = cfg_canon_domains(ld, s, "customers.domains", &c->domains);
        } else if (strcmp(name, "networks") == 0) {
            rc = cfg_get_strlist(ld, s, "customers.networks", &networks);
        } else if (strcmp(name, "limits") == 0) {
            rc = cfg_load_limits(ld, s, "customers.limits", &c->limits);
        } else {
            rc = cfg_fail(ld, s, "unknown key customers.%s", name);
        }
    }
    const char *why;
    if (rc == 0 && c->name == NULL)
        rc = cfg_fail(ld, g, "customer without a name");
    if (rc == 0 && (why = identity_name_problem(c->name, 0)) != NULL)
        rc = cfg_fail(ld, config_setting_get_member(g, "name"),
                      "customers.name \"%s\" %s", c->name, why);
    if (rc == 0 && cfg_customer_find(cfg, c->name) >= 0)
        rc = cfg_fail(ld, g, "customer \"%s\" is defined twice", c->name);
    const config_setting_t *ns = config_setting_get_member(g, "networks");
    for (size_t i = 0; rc == 0 && i < networks.n; i++) {
        struct net_prefix p;
        if (net_parse_prefix(networks.v[i], &p) != 0) {
            rc = cfg_fail(ld, config_setting_get_elem(ns, (unsigned)i),
                          "customers.networks: \"%s\" is not an address or prefix",
                          networks.v[i]);
            break;
        }
        p.value = (int)(c - cfg->customers);
        int other = same_network(*nets, *nnets, &p);
        if (other >= 0) {
            rc = cfg_fail(
                ld, config_setting_get_elem(ns, (unsigned)i),
                "customers.networks: \"%s\" is also a network of customer \"%s\"",
                networks.v[i], cfg->customers[other].name);
            break;
        }
        *nets = xrealloc(*nets, (*nnets + 1) * sizeof(**nets));
        (*nets)[(*nnets)++] = p;
    }
    for (size_t i = 0; i < networks.n; i++)
        free(networks.v[i]);
    free(networks.v);
    return rc;
}

int cfgcust_load(struct loader *ld, struct rm_config *cfg, const config_setting_t *l)
{
    if (!config_setting_is_list(l) &&
        !(config_setting_is_array(l) && !config_setting_length(l)))
        return cfg_fail(ld, l, "customers must be a list ( { ... }, { ... } )");
    size_t n = (size_t)config_setting_length(l);
    cfg->customers = xcalloc(n, sizeof(*cfg->customers));
    for (size_t i = 0; i < n; i++) {
        cfg->ncustomers = i; /* cfg_customer_find sees the ones before */
        if (load_customer(ld, cfg, config_setting_get_elem(l, (unsigned)i),
                          &cfg->customers[i], &cfg->networks, &cfg->nnetworks) != 0) {
            cfg->ncustomers = i + 1;
            return -1;
        }
    }
    cfg->ncustomers = n;
    net_table_sort(cfg->networks, cfg->nnetworks);
    return 0;
}

/* The customer of an entry already in canonical form that equals canon: the
 * entries of customers before i, and those before j of customer i. */
static int login_seen(const struct rm_config *cfg, size_t i, size_t j, const char *canon)
{
    for (size_t k = 0; k <= i; k++) {
        const struct cfg_strlist *l = &cfg->customers[k].sasl;
        for (size_t m = 0; m < (k < i ? l->n : j); m++)
            if (strcmp(l->v[m], canon) == 0)
                return (int)k;
    }
    return -1;
}

/*
 * customers[].sasl in canonical form (login.h), which needs sasl.realm, so it
 * runs once the whole file is read. Two entries that canonicalise alike are
 * one account: within one customer a typo, across two a login that would
 * charge one customer for the other's mail depending on file order. Both are
 * refused at the second entry.
 */
/* sasl.realm: one form, lower case; it is appended after '@'. */
static int canon_realm(struct loader *ld, struct rm_config *cfg, config_t *lc)
{
    char *r = cfg->sasl_realm;

    if (r == NULL)
        return 0;
    for (char *p = r; *p; p++) {
        if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '@')
            return cfg_fail(ld, config_lookup(lc, "sasl.realm"),
                            "sasl.realm \"%s\" must be a realm name without '@', blanks "
                            "or control characters, e.g. \"relay.example\"",
                            r);
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    }
    return 0;
}

int cfgcust_canon_logins(struct loader *ld, struct rm_config *cfg, config_t *lc)
{
    const config_setting_t *cs = config_lookup(lc, "customers");
    char canon[LOGIN_MAX + 1];

    if (canon_realm(ld, cfg, lc) != 0)
        return -1;
    for (size_t i = 0; i < cfg->ncustomers; i++) {
        struct cfg_strlist *l = &cfg->customers[i].sasl;
        const config_setting_t *ls =
            config_setting_get_member(config_setting_get_elem(cs, (unsigned)i), "sasl");
        for (size_t j = 0; j < l->n; j++) {
            const config_setting_t *at = config_setting_get_elem(ls, (unsigned)j);
            if (login_canonical(cfg->sasl_realm, l->v[j], canon, sizeof(canon)) != 0)
                return cfg_fail(ld, at,
                                "customers.sasl: \"%s\" is not a usable login (a control "
                                "character, or over %d octets with the realm)",
                                l->v[j], LOGIN_MAX);
            int other = login_seen(cfg, i, j, canon);
            if (other >= 0)
                return cfg_fail(ld, at,
                                "customers.sasl: \"%s\" is the login \"%s\" of customer "
                                "\"%s\" again (logins compare in canonical form)",
                                l->v[j], canon, cfg->customers[other].name);
            free(l->v[j]);
            l->v[j] = xstrdup(canon);
        }
    }
    return 0;
}
