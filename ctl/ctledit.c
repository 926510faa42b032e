/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ctledit - the writing commands of relaymilter-ctl; see ctledit.h.
 */
#include "ctledit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "ctlout.h"
#include "ctlredis.h"
#include "ctlusage.h"
#include "domain.h"
#include "events.h"
#include "keys.h"
#include "limits.h"
#include "login.h"
#include "xalloc.h"

/* A command whose reply is a number (HSET, HDEL, SADD, SREM, DEL, EXISTS). */
static int int_cmd(struct ctl *ctl, const char *key, int argc, const char **argv,
                   long long *n)
{
    redisReply *r = ctlredis_cmdv(ctl->redis, key, argc, argv);

    if (r == NULL)
        return CTL_EREDIS;
    int ok = r->type == REDIS_REPLY_INTEGER;
    *n = ok ? r->integer : 0;
    if (!ok)
        ctlout_err("%s: unexpected reply to %s", ctlout_shown(key), argv[0]);
    freeReplyObject(r);
    return ok ? CTL_OK : CTL_EREDIS;
}

/* The customer argument, and its limits key into key. */
static int customer_key(struct ctl *ctl, const char *customer, char *key, size_t len)
{
    int rc = ctlout_name_problem("customer", customer, 1);

    if (rc == CTL_OK && keys_limits(key, len, ctl->cfg->prefix, customer) < 0) {
        ctlout_err("the key name for customer \"%s\" is too long", customer);
        rc = CTL_EUSAGE;
    }
    return rc;
}

/* ---- limits, suspend, resume ------------------------------------------ */

/* VALUE as the daemon will read it (limits.h), in its one spelling. */
static int limit_value(int id, const char *s, char *out, size_t len)
{
    long long v;

    if (lim_parse_value(id, s, &v) == 0) {
        if (lim_field_kind(id) == LIM_KIND_ACTION)
            snprintf(out, len, "%s", lim_action_name((int)v));
        else
            snprintf(out, len, "%lld", v);
        return CTL_OK;
    }
    if (lim_field_kind(id) == LIM_KIND_ACTION)
        ctlout_err("action must be tempfail, reject, hold or monitor, not '%s'",
                   ctlout_shown(s));
    else if (lim_field_kind(id) == LIM_KIND_BOOL)
        ctlout_err("%s must be 0 or 1, not '%s'", lim_field_name(id), ctlout_shown(s));
    else
        ctlout_err("%s must be a whole number from 0 to %lld, or -1 for unlimited, "
                   "not '%s'",
                   lim_field_name(id), LIM_COUNT_MAX, ctlout_shown(s));
    return CTL_EUSAGE;
}

static int limits_unset(struct ctl *ctl, const char *key, const char *field)
{
    const char *cmd[] = {"HDEL", key, field};
    long long n;

    if (lim_field_find(field) < 0)
        ctlout_err("note: %s is not a limit field", ctlout_shown(field));
    if (int_cmd(ctl, key, 3, cmd, &n) != CTL_OK)
        return CTL_EREDIS;
    if (n > 0)
        printf("%s: removed %s (inherits the config again)\n", ctlout_shown(key),
               ctlout_shown(field));
    else
        printf("%s: %s was not set\n", ctlout_shown(key), ctlout_shown(field));
    return CTL_OK;
}

/* Each FIELD VALUE pair checked (a field at most once, so the command has
 * at most LIM_NFIELDS pairs), then all of them in one HSET: a refused pair
 * writes none. */
static int limits_set(struct ctl *ctl, const char *key, int n, char **pairs)
{
    char(*value)[32] = xmalloc((size_t)(n / 2) * sizeof(*value));
    const char **cmd = xmalloc((size_t)(n + 2) * sizeof(*cmd));
    unsigned char given[LIM_NFIELDS] = {0};
    int rc = CTL_OK;
    long long added;

    cmd[0] = "HSET";
    cmd[1] = key;
    for (int i = 0; rc == CTL_OK && i < n; i += 2) {
        int id = lim_field_find(pairs[i]);
        if (id < 0) {
            ctlout_err("unknown limit field '%s' (see relaymilter-ctl help)",
                       ctlout_shown(pairs[i]));
            rc = CTL_EUSAGE;
        } else if (given[id]++) {
            ctlout_err("limit field %s given twice", pairs[i]);
            rc = CTL_EUSAGE;
        } else {
            rc = limit_value(id, pairs[i + 1], value[i / 2], sizeof(value[i / 2]));
        }
        cmd[i + 2] = pairs[i];
        cmd[i + 3] = value[i / 2];
    }
    if (rc == CTL_OK && int_cmd(ctl, key, n + 2, cmd, &added) != CTL_OK)
        rc = CTL_EREDIS;
    for (int i = 0; rc == CTL_OK && i < n; i += 2)
        printf("%s: %s = %s\n", ctlout_shown(key), pairs[i], value[i / 2]);
    free(cmd);
    free(value);
    return rc;
}

int ctledit_limits(struct ctl *ctl, int argc, char **argv)
{
    char key[CTLUSAGE_KEY_MAX];
    int rc = customer_key(ctl, argv[0], key, sizeof(key));

    if (rc != CTL_OK)
        return rc;
    if (strcmp(argv[1], "unset") == 0 && argc >= 3) {
        for (int i = 2; rc == CTL_OK && i < argc; i++)
            rc = limits_unset(ctl, key, argv[i]);
        return rc;
    }
    if (argc % 2 == 0) {
        ctlout_err("usage: limits CUSTOMER FIELD VALUE [FIELD VALUE]..., or limits "
                   "CUSTOMER unset FIELD [FIELD]...");
        return CTL_EUSAGE;
    }
    return limits_set(ctl, key, argc - 1, argv + 1);
}

int ctledit_suspend(struct ctl *ctl, int argc, char **argv)
{
    char key[CTLUSAGE_KEY_MAX];
    long long n;
    int rc = customer_key(ctl, argv[0], key, sizeof(key));
    const char *cmd[] = {"HSET", key, lim_field_name(LIM_SUSPENDED), "1"};

    (void)argc;
    if (rc == CTL_OK && (rc = int_cmd(ctl, key, 4, cmd, &n)) == CTL_OK)
        printf("%s: suspended = 1 (every message of %s is refused)\n", ctlout_shown(key),
               ctlout_shown(argv[0]));
    return rc;
}

int ctledit_resume(struct ctl *ctl, int argc, char **argv)
{
    const struct rm_config *cfg = ctl->cfg;
    char key[CTLUSAGE_KEY_MAX];
    long long n;
    int rc = customer_key(ctl, argv[0], key, sizeof(key));
    const char *cmd[] = {"HDEL", key, lim_field_name(LIM_SUSPENDED)};
    struct lim_set lim;

    (void)argc;
    if (rc != CTL_OK || (rc = int_cmd(ctl, key, 3, cmd, &n)) != CTL_OK)
        return rc;
    printf("%s: suspended removed\n", ctlout_shown(key));
    int cust = cfg_customer_find(cfg, argv[0]);
    cfg_effective_limits(cfg, cust, &lim);
    if (lim.v[LIM_SUSPENDED])
        ctlout_err("note: %s is still suspended by %s (%s); \"limits %s suspended 0\" "
                   "overrides it",
                   ctlout_shown(argv[0]), ctl->conf ? ctl->conf : "the config",
                   ctlusage_source_name(cfg_limit_source(cfg, cust, LIM_SUSPENDED)),
                   ctlout_shown(argv[0]));
    return CTL_OK;
}

/* ---- own, disown, block, unblock ------------------------------------------ */

static int canonical_domain(const char *in, char *out, size_t len)
{
    if (dom_canonical(in, out, len) == 0)
        return CTL_OK;
    ctlout_err("'%s' is not a domain name (letters, digits, '-' and '_', labels of 1 "
               "to 63 octets, internationalised names in UTF-8)",
               ctlout_shown(in));
    return CTL_EUSAGE;
}

/* SADD or SREM of member; says[n != 0] tells what happened. */
static int set_member(struct ctl *ctl, const char *key, const char *op,
                      const char *member, const char *const says[2])
{
    const char *cmd[] = {op, key, member};
    long long n;

    if (int_cmd(ctl, key, 3, cmd, &n) != CTL_OK)
        return CTL_EREDIS;
    printf("%s: %s\n", ctlout_shown(key), says[n != 0]);
    return CTL_OK;
}

static int ownership(struct ctl *ctl, char **argv, const char *op, const char *verbs[2])
{
    char dom[DOM_MAX + 1], key[CTLUSAGE_KEY_MAX], says[2][2 * DOM_MAX + 1024];
    int rc = canonical_domain(argv[0], dom, sizeof(dom));

    if (rc == CTL_OK)
        rc = ctlout_name_problem("customer", argv[1], 1);
    if (rc != CTL_OK)
        return rc;
    keys_domain(key, sizeof(key), ctl->cfg->prefix, dom);
    for (int i = 0; i < 2; i++)
        snprintf(says[i], sizeof(says[i]), "%s %s %s", ctlout_shown(argv[1]), verbs[i],
                 dom);
    const char *const s[2] = {says[0], says[1]};
    return set_member(ctl, key, op, argv[1], s);
}

int ctledit_own(struct ctl *ctl, int argc, char **argv)
{
    const char *verbs[2] = {"already owns", "now owns"};

    (void)argc;
    return ownership(ctl, argv, "SADD", verbs);
}

int ctledit_disown(struct ctl *ctl, int argc, char **argv)
{
    const char *verbs[2] = {"did not own", "no longer owns"};

    (void)argc;
    return ownership(ctl, argv, "SREM", verbs);
}

static int blocking(struct ctl *ctl, const char *domain, const char *op,
                    const char *const says[2])
{
    char dom[DOM_MAX + 1], key[CTLUSAGE_KEY_MAX], line[2][DOM_MAX + 64];
    int rc = canonical_domain(domain, dom, sizeof(dom));

    if (rc != CTL_OK)
        return rc;
    keys_blocked(key, sizeof(key), ctl->cfg->prefix);
    for (int i = 0; i < 2; i++)
        snprintf(line[i], sizeof(line[i]), "%s %s", dom, says[i]);
    const char *const s[2] = {line[0], line[1]};
    return set_member(ctl, key, op, dom, s);
}

int ctledit_block(struct ctl *ctl, int argc, char **argv)
{
    const char *const says[2] = {"was already blocked", "blocked"};

    (void)argc;
    return blocking(ctl, argv[0], "SADD", says);
}

int ctledit_unblock(struct ctl *ctl, int argc, char **argv)
{
    const char *const says[2] = {"was not blocked (in Redis)", "unblocked"};

    (void)argc;
    return blocking(ctl, argv[0], "SREM", says);
}

/* ---- sasl, unsasl ---------------------------------------------------------- */

/* HSET of the canonical login to customer, or HDEL of it (customer NULL). */
static int sasl_edit(struct ctl *ctl, const char *login_arg, const char *customer)
{
    char login[LOGIN_MAX + 1], key[CTLUSAGE_KEY_MAX];
    long long n;
    int rc = ctlout_login_problem(ctl->cfg->sasl_realm, login_arg, login, sizeof(login));

    if (rc == CTL_OK && customer != NULL)
        rc = ctlout_name_problem("customer", customer, 0);
    if (rc != CTL_OK)
        return rc;
    keys_sasl(key, sizeof(key), ctl->cfg->prefix);
    const char *cmd[] = {customer ? "HSET" : "HDEL", key, login, customer};
    if (int_cmd(ctl, key, customer ? 4 : 3, cmd, &n) != CTL_OK)
        return CTL_EREDIS;
    if (customer != NULL)
        printf("%s: login %s -> customer %s\n", ctlout_shown(key), ctlout_shown(login),
               ctlout_shown(customer));
    else
        printf("%s: login %s %s\n", ctlout_shown(key), ctlout_shown(login),
               n ? "removed" : "was not mapped");
    return CTL_OK;
}

int ctledit_sasl(struct ctl *ctl, int argc, char **argv)
{
    (void)argc;
    return sasl_edit(ctl, argv[0], argv[1]);
}

int ctledit_unsasl(struct ctl *ctl, int argc, char **argv)
{
    (void)argc;
    return sasl_edit(ctl, argv[0], NULL);
}

/* ---- reset ------------------------------------------------------------------ */

struct reset {
    struct ctl *ctl;
    const char *customer;
    const char *sender; /* NULL: the customer and all its senders */
    char **keys;
    size_t n;
};

static void reset_add(struct reset *rs, const char *key, size_t len)
{
    rs->keys = xrealloc(rs->keys, (rs->n + 1) * sizeof(*rs->keys));
    rs->keys[rs->n] = xmalloc(len + 1);
    memcpy(rs->keys[rs->n], key, len);
    rs->keys[rs->n++][len] = '\0';
}

static int reset_take(void *arg, const redisReply *items)
{
    for (size_t i = 0; i < items->elements; i++)
        if (items->element[i]->type == REDIS_REPLY_STRING)
            reset_add(arg, items->element[i]->str, items->element[i]->len);
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted, each once (SCAN may return a key twice). */
static void reset_unique(struct reset *rs)
{
    size_t out = 0;

    if (rs->n == 0) /* no array at all: qsort may not be given NULL */
        return;
    qsort(rs->keys, rs->n, sizeof(*rs->keys), by_name);
    for (size_t i = 0; i < rs->n; i++) {
        if (out > 0 && strcmp(rs->keys[out - 1], rs->keys[i]) == 0)
            free(rs->keys[i]);
        else
            rs->keys[out++] = rs->keys[i];
    }
    rs->n = out;
}

static int too_long(const struct reset *rs)
{
    ctlout_err("the key names for customer \"%s\" are too long",
               ctlout_shown(rs->customer));
    return CTL_EUSAGE;
}

/* The counter keys that exist: one sender's, or the customer's and (by
 * SCAN, never KEYS) all its senders'. */
static int reset_collect(struct reset *rs)
{
    const struct rm_config *cfg = rs->ctl->cfg;
    enum keys_scope scope = rs->sender ? KEYS_SENDER : KEYS_CUSTOMER;
    char key[CTLUSAGE_KEY_MAX];
    long long n;

    for (int w = 0; w < LIM_NWINDOWS; w++) {
        const char *cmd[] = {"EXISTS", key};
        if (keys_counter(key, sizeof(key), cfg->prefix, scope, w, rs->customer,
                         rs->sender) < 0)
            return too_long(rs);
        if (int_cmd(rs->ctl, key, 2, cmd, &n) != CTL_OK)
            return CTL_EREDIS;
        if (n > 0)
            reset_add(rs, key, strlen(key));
    }
    for (int w = 0; rs->sender == NULL && w < LIM_NWINDOWS; w++) {
        char near[CTLUSAGE_KEY_MAX]; /* the customer's counter: its senders' node */
        if (keys_sender_pattern(key, sizeof(key), cfg->prefix, w, rs->customer) < 0 ||
            keys_counter(near, sizeof(near), cfg->prefix, KEYS_CUSTOMER, w, rs->customer,
                         NULL) < 0)
            return too_long(rs);
        if (ctlredis_scan(rs->ctl->redis, NULL, key, near, reset_take, rs) != 0)
            return CTL_EREDIS;
    }
    reset_unique(rs);
    return CTL_OK;
}

static const char *reset_what(const struct reset *rs, char *buf, size_t len)
{
    if (rs->sender)
        snprintf(buf, len, "%s sender <%s>", ctlout_shown(rs->customer),
                 ctlout_shown(rs->sender));
    else
        snprintf(buf, len, "%s (the customer and each of its senders)",
                 ctlout_shown(rs->customer));
    return buf;
}

/* Asked only of a person: a script's standard input is no terminal. */
static int reset_confirmed(const struct reset *rs)
{
    char what[CTLOUT_SHOWN_MAX * 8 + 64], answer[16];

    if (rs->ctl->yes || !isatty(STDIN_FILENO))
        return 1;
    fprintf(stderr, "delete %zu counter key%s of %s, every window? [y/N] ", rs->n,
            rs->n == 1 ? "" : "s", reset_what(rs, what, sizeof(what)));
    (void)fflush(stderr);
    if (fgets(answer, sizeof(answer), stdin) == NULL)
        return 0;
    return strcmp(answer, "y\n") == 0 || strcmp(answer, "yes\n") == 0 ||
           strcmp(answer, "Y\n") == 0;
}

/* The reset in the events stream, as the daemon writes its entries. */
static int reset_event(const struct reset *rs)
{
    const struct rm_config *cfg = rs->ctl->cfg;
    char key[CTLUSAGE_KEY_MAX], maxlen[24], now[24];
    const char *argv[EVENTS_XADD_ARGC];
    struct store_event ev = {"", rs->customer, "-",    rs->sender ? rs->sender : "",
                             "", "reset",      "reset"};

    if (cfg->events_maxlen == 0)
        return CTL_OK;
    keys_events(key, sizeof(key), cfg->prefix);
    snprintf(maxlen, sizeof(maxlen), "%d", cfg->events_maxlen);
    snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
    int argc = events_xadd_argv(argv, key, maxlen, now, &ev);
    redisReply *r = ctlredis_cmdv(rs->ctl->redis, key, argc, argv);
    if (r == NULL)
        return CTL_EREDIS;
    freeReplyObject(r);
    return CTL_OK;
}

static int reset_delete(struct reset *rs, long long *deleted)
{
    long long n;

    *deleted = 0;
    for (size_t i = 0; i < rs->n; i++) {
        const char *cmd[] = {"DEL", rs->keys[i]};
        if (int_cmd(rs->ctl, rs->keys[i], 2, cmd, &n) != CTL_OK)
            return CTL_EREDIS;
        *deleted += n;
    }
    return reset_event(rs);
}

int ctledit_reset(struct ctl *ctl, int argc, char **argv)
{
    struct reset rs = {.ctl = ctl, .customer = argv[0]};
    char sender[ADDR_MAX + 1], what[CTLOUT_SHOWN_MAX * 8 + 64];
    const char *domain;
    long long deleted;
    int rc = ctlout_name_problem("customer", argv[0], 1);

    if (rc == CTL_OK && argc == 2) {
        if (addr_normalise(argv[1], sender, sizeof(sender), &domain) == ADDR_BAD) {
            ctlout_err("'%s' is not an envelope sender address", ctlout_shown(argv[1]));
            return CTL_EUSAGE;
        }
        rs.sender = sender;
    }
    if (rc == CTL_OK)
        rc = reset_collect(&rs);
    if (rc == CTL_OK && rs.n == 0) {
        printf("nothing to reset: no counters of %s\n",
               reset_what(&rs, what, sizeof(what)));
    } else if (rc == CTL_OK && !reset_confirmed(&rs)) {
        ctlout_err("nothing reset");
        rc = CTL_EUSAGE;
    } else if (rc == CTL_OK && (rc = reset_delete(&rs, &deleted)) == CTL_OK) {
        printf("reset %s: %lld counter key%s deleted, every window\n",
               reset_what(&rs, what, sizeof(what)), deleted, deleted == 1 ? "" : "s");
    }
    for (size_t i = 0; i < rs.n; i++)
        free(rs.keys[i]);
    free(rs.keys);
    return rc;
}
