/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ctlusage - a customer's limits and counters for relaymilter-ctl; see
 * ctlusage.h.
 */
#include "ctlusage.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctlout.h"
#include "ctlredis.h"
#include "keys.h"
#include "limits.h"
#include "rpool.h"
#include "xalloc.h"

/* The quota fields of a scope's first window, messages and recipients;
 * the windows follow in order (limits.h). */
static const int scope_field[2][2] = {{LIM_MSG_MINUTE, LIM_RCPT_MINUTE},
                                      {LIM_SMSG_MINUTE, LIM_SRCPT_MINUTE}};

/* One counter hash: the customer's (sender NULL) or one sender's. */
struct counter {
    char *key;
    char *sender;
    int window;
    /* as relay.lua's usage operation reports it, [0] messages [1] recipients */
    int garbage, present;
    double est[2], cur[2], prev[2];
    long long decay_ms[2];
};

struct usage {
    struct ctl *ctl;
    const char *customer;
    int known;
    struct lim_set lim; /* what the daemon applies */
    int src[LIM_NFIELDS];
    struct counter *c;
    size_t n, cap;
    long long now_ms;
    char **warn;
    size_t nwarn;
};

const char *ctlusage_source_name(int src)
{
    static const char *const names[] = {[CFG_LIM_BUILTIN] = "built-in",
                                        [CFG_LIM_LIMITS] = "limits",
                                        [CFG_LIM_CUSTOMER] = "customers[]",
                                        [CTLUSAGE_REDIS] = "redis"};
    return names[src];
}

void ctlusage_value(int id, long long v, char *buf, size_t len)
{
    if (lim_field_kind(id) == LIM_KIND_ACTION)
        snprintf(buf, len, "%s", lim_action_name((int)v));
    else if (lim_field_kind(id) == LIM_KIND_COUNT && v == LIM_UNLIMITED)
        snprintf(buf, len, "unlimited");
    else
        snprintf(buf, len, "%lld", v);
}

/* "minute", "hour", "day": the tail of the field names of window w. */
static const char *window_name(int w)
{
    return lim_field_name(LIM_MSG_MINUTE + w) + strlen("messages_per_");
}

static void warn(struct usage *u, const char *fmt, ...) RM_PRINTF(2, 3);

static void warn(struct usage *u, const char *fmt, ...)
{
    char line[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    u->warn = xrealloc(u->warn, (u->nwarn + 1) * sizeof(*u->warn));
    u->warn[u->nwarn++] = xstrdup(line);
}

/* ---- limits ----------------------------------------------------------- */

/* One field of the Redis hash over the config's value, as the daemon reads
 * it (policy.c): unknown fields and malformed values are ignored. */
static void apply_override(struct usage *u, const char *key, const char *name,
                           const char *value)
{
    int id = lim_field_find(name);
    long long v;

    if (id < 0) {
        warn(u, "warning: %s field %s is not a limit field: ignored", ctlout_shown(key),
             ctlout_shown(name));
    } else if (lim_parse_value(id, value, &v) != 0) {
        warn(u, "warning: %s field %s holds \"%s\": malformed, ignored",
             ctlout_shown(key), name, ctlout_shown(value));
    } else {
        u->lim.v[id] = v;
        u->src[id] = CTLUSAGE_REDIS;
    }
}

static int load_limits(struct usage *u)
{
    const struct rm_config *cfg = u->ctl->cfg;
    char key[CTLUSAGE_KEY_MAX];
    int cust = cfg_customer_find(cfg, u->customer);

    if (keys_limits(key, sizeof(key), cfg->prefix, u->customer) < 0) {
        ctlout_err("the key name for customer \"%s\" is too long", u->customer);
        return CTL_EUSAGE;
    }
    cfg_effective_limits(cfg, cust, &u->lim);
    for (int id = 0; id < LIM_NFIELDS; id++)
        u->src[id] = cfg_limit_source(cfg, cust, id);
    const char *argv[] = {"HGETALL", key};
    redisReply *r = ctlredis_cmdv(u->ctl->redis, key, 2, argv);
    if (r == NULL)
        return CTL_EREDIS;
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING &&
            r->element[i + 1]->type == REDIS_REPLY_STRING)
            apply_override(u, key, r->element[i]->str, r->element[i + 1]->str);
    u->known = cust >= 0 || r->elements > 0;
    freeReplyObject(r);
    return CTL_OK;
}

/* ---- counters --------------------------------------------------------- */

static void add_counter(struct usage *u, const char *key, size_t keylen,
                        const char *sender, int w)
{
    if (u->n == u->cap) {
        u->cap = u->cap ? 2 * u->cap : 16;
        u->c = xrealloc(u->c, u->cap * sizeof(*u->c));
    }
    struct counter *c = &u->c[u->n++];
    memset(c, 0, sizeof(*c));
    c->key = xmalloc(keylen + 1);
    memcpy(c->key, key, keylen);
    c->key[keylen] = '\0';
    c->sender = sender ? xstrdup(sender) : NULL;
    c->window = w;
}

struct sender_scan {
    struct usage *u;
    int window;
};

static int take_senders(void *arg, const redisReply *items)
{
    const struct sender_scan *s = arg;
    const struct rm_config *cfg = s->u->ctl->cfg;

    for (size_t i = 0; i < items->elements; i++) {
        const redisReply *e = items->element[i];
        if (e->type != REDIS_REPLY_STRING || memchr(e->str, '\0', e->len) != NULL)
            continue;
        const char *sender =
            keys_counter_sender(e->str, e->len, cfg->prefix, s->window, s->u->customer);
        if (sender != NULL)
            add_counter(s->u, e->str, e->len, sender, s->window);
    }
    return 0;
}

/* Senders by name, each in window order. */
static int by_sender(const void *a, const void *b)
{
    const struct counter *x = a, *y = b;
    int d = strcmp(x->sender, y->sender);

    return d ? d : x->window - y->window;
}

static void drop_repeats(struct usage *u, size_t from)
{
    size_t out = from;

    for (size_t i = from; i < u->n; i++) {
        if (out > from && strcmp(u->c[out - 1].key, u->c[i].key) == 0) {
            free(u->c[i].key);
            free(u->c[i].sender);
            continue;
        }
        u->c[out++] = u->c[i];
    }
    u->n = out;
}

/* The customer's counters, then those of its senders that SCAN finds
 * (SCAN may return a key twice). */
static int collect_counters(struct usage *u)
{
    const struct rm_config *cfg = u->ctl->cfg;
    char buf[CTLUSAGE_KEY_MAX];

    for (int w = 0; w < LIM_NWINDOWS; w++) {
        int len = keys_counter(buf, sizeof(buf), cfg->prefix, KEYS_CUSTOMER, w,
                               u->customer, NULL);
        if (len < 0) {
            ctlout_err("the key names for customer \"%s\" are too long", u->customer);
            return CTL_EUSAGE;
        }
        add_counter(u, buf, (size_t)len, NULL, w);
    }
    for (int w = 0; w < LIM_NWINDOWS; w++) {
        struct sender_scan s = {u, w};
        if (keys_sender_pattern(buf, sizeof(buf), cfg->prefix, w, u->customer) < 0) {
            ctlout_err("the key names for customer \"%s\" are too long", u->customer);
            return CTL_EUSAGE;
        }
        /* the senders' counters share the customer's node (keys.h) */
        if (ctlredis_scan(u->ctl->redis, NULL, buf, u->c[w].key, take_senders, &s) != 0)
            return CTL_EREDIS;
    }
    qsort(u->c + LIM_NWINDOWS, u->n - LIM_NWINDOWS, sizeof(*u->c), by_sender);
    drop_repeats(u, LIM_NWINDOWS);
    return CTL_OK;
}

static int reply_num(const redisReply *e, double *out)
{
    char *end;

    if (e->type != REDIS_REPLY_STRING)
        return -1;
    *out = strtod(e->str, &end);
    return *end == '\0' && end != e->str && isfinite(*out) ? 0 : -1;
}

/* One key's entry of the usage reply (relay.lua): garbage, present, est_m,
 * est_r, m, r, pm, pr, decay_m_ms, decay_r_ms. */
static int parse_counter(const redisReply *e, struct counter *c)
{
    long long garbage, present;

    if (e->type != REDIS_REPLY_ARRAY || e->elements != 10 ||
        rpool_int(e, 0, &garbage) != 0 || rpool_int(e, 1, &present) != 0 ||
        rpool_int(e, 8, &c->decay_ms[0]) != 0 || rpool_int(e, 9, &c->decay_ms[1]) != 0)
        return -1;
    c->garbage = garbage != 0;
    c->present = present != 0;
    for (int m = 0; m < 2; m++)
        if (reply_num(e->element[2 + m], &c->est[m]) != 0 ||
            reply_num(e->element[4 + m], &c->cur[m]) != 0 ||
            reply_num(e->element[6 + m], &c->prev[m]) != 0)
            return -1;
    return 0;
}

/* One call of relay.lua's usage operation for every counter. */
static int read_counters(struct usage *u)
{
    size_t argc = 3 + 2 * u->n + 1, a = 2;
    const char **argv = xcalloc(argc, sizeof(*argv));
    size_t *lens = xcalloc(argc, sizeof(*lens));
    char(*num)[24] = xcalloc(u->n + 1, sizeof(*num));
    int rc = CTL_EREDIS;

    snprintf(num[u->n], sizeof(num[0]), "%zu", u->n);
    argv[a++] = num[u->n];
    for (size_t i = 0; i < u->n; i++)
        argv[a++] = u->c[i].key;
    argv[a++] = "usage";
    for (size_t i = 0; i < u->n; i++) {
        snprintf(num[i], sizeof(num[0]), "%lld",
                 lim_window_seconds[u->c[i].window] * 1000LL);
        argv[a++] = num[i];
    }
    for (size_t i = 2; i < argc; i++)
        lens[i] = strlen(argv[i]);
    redisReply *r = ctlredis_script(u->ctl->redis, u->c[0].key, (int)argc, argv, lens);
    if (r != NULL) {
        int ok = r->type == REDIS_REPLY_ARRAY && r->elements == u->n + 1 &&
                 rpool_int(r, 0, &u->now_ms) == 0;
        for (size_t i = 0; ok && i < u->n; i++)
            ok = parse_counter(r->element[i + 1], &u->c[i]) == 0;
        if (ok)
            rc = CTL_OK;
        else
            ctlout_err("redis: unexpected reply from relay.lua usage");
        freeReplyObject(r);
    }
    free(argv);
    free(lens);
    free(num);
    return rc;
}

/* ---- is the name known? ------------------------------------------------ */

struct value_search {
    const char *value;
    int found;
};

/* HSCAN pages: field, value, field, value ... */
static int find_value(void *arg, const redisReply *items)
{
    struct value_search *s = arg;
    size_t len = strlen(s->value);

    for (size_t i = 1; i < items->elements; i += 2) {
        const redisReply *e = items->element[i];
        if (e->type == REDIS_REPLY_STRING && e->len == len &&
            memcmp(e->str, s->value, len) == 0)
            s->found = 1;
    }
    return s->found;
}

/* After load_limits and read_counters: the counters, then the SASL hash
 * (read only when nothing else knows the name, as it may be large). */
static int find_known(struct usage *u)
{
    char key[CTLUSAGE_KEY_MAX];
    struct value_search s = {u->customer, 0};

    for (size_t i = 0; i < u->n && !u->known; i++)
        u->known = u->c[i].present;
    if (u->known)
        return CTL_OK;
    keys_sasl(key, sizeof(key), u->ctl->cfg->prefix);
    if (ctlredis_scan(u->ctl->redis, key, "*", NULL, find_value, &s) != 0)
        return CTL_EREDIS;
    u->known = s.found;
    return CTL_OK;
}

/* The steps every caller takes, in order, stopping at the first failure. */
static int gather(struct usage *u)
{
    int rc = load_limits(u);

    if (rc == CTL_OK)
        rc = collect_counters(u);
    if (rc == CTL_OK)
        rc = read_counters(u);
    if (rc == CTL_OK)
        rc = find_known(u);
    return rc;
}

static void usage_free(struct usage *u)
{
    for (size_t i = 0; i < u->n; i++) {
        free(u->c[i].key);
        free(u->c[i].sender);
    }
    free(u->c);
    for (size_t i = 0; i < u->nwarn; i++)
        free(u->warn[i]);
    free(u->warn);
}

int ctlusage_known(struct ctl *ctl, const char *customer, int *known)
{
    struct usage u = {.ctl = ctl, .customer = customer};
    int rc = gather(&u);

    *known = u.known;
    usage_free(&u);
    return rc;
}

void ctlusage_note_unknown(const struct ctl *ctl, const char *customer)
{
    ctlout_err("note: \"%s\" is not a customer the config or Redis knows (%s%s, "
               "no limits hash, no counters, no SASL login mapped to it): check the "
               "spelling",
               ctlout_shown(customer), ctl->conf ? "not in " : "no config file",
               ctl->conf ? ctl->conf : "");
}

/* ---- text ---------------------------------------------------------------- */

static const char *scope_text(const struct counter *c, char *buf, size_t len)
{
    if (c->sender == NULL)
        return "customer";
    snprintf(buf, len, "sender %s", ctlout_shown(c->sender));
    return buf;
}

static void print_row(const struct usage *u, const struct counter *c, int m, int width)
{
    int id = scope_field[c->sender != NULL][m] + c->window;
    char scope[CTLOUT_SHOWN_MAX * 4 + 16], used[32], limit[32], reset[32] = "-";

    if (c->garbage)
        snprintf(used, sizeof(used), "full");
    else
        snprintf(used, sizeof(used), "%.0f", ceil(c->est[m]));
    if (c->garbage)
        snprintf(reset, sizeof(reset), "?");
    else if (c->decay_ms[m] > 0)
        ctlout_duration(c->decay_ms[m], reset, sizeof(reset));
    ctlusage_value(id, u->lim.v[id], limit, sizeof(limit));
    printf("%-*s  %-6s  %-28s  %9s  %9s  %-11s  %s\n", width,
           scope_text(c, scope, sizeof(scope)), window_name(c->window),
           lim_field_name(id), used, limit, ctlusage_source_name(u->src[id]), reset);
}

/* "lead field value (source), field value (source), ..." */
static void print_fields(const struct usage *u, const char *lead, int from, int to)
{
    char v[32];

    fputs(lead, stdout);
    for (int id = from; id < to; id++) {
        ctlusage_value(id, u->lim.v[id], v, sizeof(v));
        printf("%s%s %s (%s)", id > from ? ", " : "", lim_field_name(id), v,
               ctlusage_source_name(u->src[id]));
    }
    fputc('\n', stdout);
}

static void print_text(const struct usage *u)
{
    char when[32], scope[CTLOUT_SHOWN_MAX * 4 + 16];
    int width = (int)strlen("SCOPE");

    for (size_t i = 0; i < u->n; i++) {
        int len = (int)strlen(scope_text(&u->c[i], scope, sizeof(scope)));
        width = len > width ? len : width;
    }
    ctlout_utc(u->now_ms / 1000, when, sizeof(when));
    printf("usage of %s at %s UTC (Redis time)\n", ctlout_shown(u->customer), when);
    printf("%-*s  %-6s  %-28s  %9s  %9s  %-11s  %s\n", width, "SCOPE", "WINDOW", "FIELD",
           "USED", "LIMIT", "SOURCE", "RESETS IN");
    for (size_t i = 0; i < u->n; i++)
        for (int m = 0; m < 2; m++)
            print_row(u, &u->c[i], m, width);
    print_fields(u, "", LIM_MAX_RCPT, LIM_NFIELDS);
    print_fields(u, "sender limits: ", LIM_SMSG_MINUTE, LIM_MAX_RCPT);
    for (size_t i = 0; i < u->nwarn; i++)
        puts(u->warn[i]);
}

/* ---- JSON (relaymilter-ctl(1), "JSON OUTPUT") ------------------------------ */

static void json_value(struct ctlout_json *j, int id, long long v)
{
    if (lim_field_kind(id) == LIM_KIND_ACTION)
        ctlout_json_cstr(j, lim_action_name((int)v));
    else
        ctlout_json_int(j, v);
}

static void json_limits(struct ctlout_json *j, const struct usage *u)
{
    ctlout_json_key(j, "limits");
    ctlout_json_open(j, '{');
    for (int id = 0; id < LIM_NFIELDS; id++) {
        ctlout_json_key(j, lim_field_name(id));
        ctlout_json_open(j, '{');
        ctlout_json_key(j, "value");
        json_value(j, id, u->lim.v[id]);
        ctlout_json_key(j, "source");
        ctlout_json_cstr(j, ctlusage_source_name(u->src[id]));
        ctlout_json_close(j, '}');
    }
    ctlout_json_close(j, '}');
}

static void json_row(struct ctlout_json *j, const struct usage *u,
                     const struct counter *c, int m)
{
    int id = scope_field[c->sender != NULL][m] + c->window;
    const char *names[] = {"scope", "sender", "window", "field", "key", "source"};
    const char *values[] = {c->sender ? "sender" : "customer",
                            c->sender,
                            window_name(c->window),
                            lim_field_name(id),
                            c->key,
                            ctlusage_source_name(u->src[id])};

    ctlout_json_open(j, '{');
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        ctlout_json_key(j, names[i]);
        ctlout_json_cstr(j, values[i]);
    }
    ctlout_json_key(j, "limit");
    ctlout_json_int(j, u->lim.v[id]);
    ctlout_json_key(j, "present");
    ctlout_json_bool(j, c->present);
    ctlout_json_key(j, "garbage");
    ctlout_json_bool(j, c->garbage);
    ctlout_json_key(j, "used");
    if (c->garbage)
        ctlout_json_cstr(j, NULL);
    else
        ctlout_json_int(j, (long long)ceil(c->est[m]));
    ctlout_json_key(j, "estimate");
    ctlout_json_num(j, c->est[m]);
    ctlout_json_key(j, "current");
    ctlout_json_num(j, c->cur[m]);
    ctlout_json_key(j, "previous");
    ctlout_json_num(j, c->prev[m]);
    ctlout_json_key(j, "resets_in_ms");
    if (c->garbage)
        ctlout_json_cstr(j, NULL);
    else
        ctlout_json_int(j, c->decay_ms[m]);
    ctlout_json_close(j, '}');
}

static void print_json(const struct usage *u)
{
    struct ctlout_json j = {.f = stdout};
    char when[32];

    ctlout_utc(u->now_ms / 1000, when, sizeof(when));
    ctlout_json_open(&j, '{');
    ctlout_json_key(&j, "customer");
    ctlout_json_cstr(&j, u->customer);
    ctlout_json_key(&j, "known");
    ctlout_json_bool(&j, u->known);
    ctlout_json_key(&j, "time_ms");
    ctlout_json_int(&j, u->now_ms);
    ctlout_json_key(&j, "time");
    ctlout_json_cstr(&j, when);
    json_limits(&j, u);
    ctlout_json_key(&j, "counters");
    ctlout_json_open(&j, '[');
    for (size_t i = 0; i < u->n; i++)
        for (int m = 0; m < 2; m++)
            json_row(&j, u, &u->c[i], m);
    ctlout_json_close(&j, ']');
    ctlout_json_key(&j, "warnings");
    ctlout_json_open(&j, '[');
    for (size_t i = 0; i < u->nwarn; i++)
        ctlout_json_cstr(&j, u->warn[i]);
    ctlout_json_close(&j, ']');
    ctlout_json_close(&j, '}');
}

int ctlusage_cmd(struct ctl *ctl, int argc, char **argv)
{
    struct usage u = {.ctl = ctl, .customer = argv[0]};
    int rc = ctlout_name_problem("customer", argv[0], 1);

    (void)argc;
    if (rc == CTL_OK)
        rc = gather(&u);
    if (rc == CTL_OK) {
        for (size_t i = 0; i < u.n; i++)
            if (u.c[i].garbage)
                warn(&u,
                     "warning: %s holds a value that is not a number: the milter "
                     "counts it as full",
                     ctlout_shown(u.c[i].key));
        if (!u.known)
            ctlusage_note_unknown(ctl, u.customer);
        if (ctl->json)
            print_json(&u);
        else
            print_text(&u);
    }
    usage_free(&u);
    return rc;
}
