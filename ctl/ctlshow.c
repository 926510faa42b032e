/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ctlshow - limits, fields, whois and events for relaymilter-ctl; see ctlshow.h.
 */
#include "ctlshow.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctlout.h"
#include "ctlredis.h"
#include "ctlusage.h"
#include "events.h"
#include "identity.h"
#include "keys.h"
#include "limits.h"
#include "login.h"
#include "xalloc.h"

/* ---- limits CUSTOMER ---------------------------------------------------- */

/* Why the daemon would ignore a field of the hash, or NULL. */
static const char *ignored_because(const redisReply *name, const redisReply *value)
{
    long long v;
    int id = lim_field_find(name->str);

    if (id < 0)
        return "not a limit field: ignored";
    if (lim_parse_value(id, value->str, &v) != 0)
        return "malformed: ignored";
    return NULL;
}

static void limits_json(const char *customer, const char *key, int known,
                        const redisReply *r)
{
    struct ctlout_json j = {.f = stdout};

    ctlout_json_open(&j, '{');
    ctlout_json_key(&j, "customer");
    ctlout_json_cstr(&j, customer);
    ctlout_json_key(&j, "key");
    ctlout_json_cstr(&j, key);
    ctlout_json_key(&j, "known");
    ctlout_json_bool(&j, known);
    ctlout_json_key(&j, "overrides");
    ctlout_json_open(&j, '[');
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        ctlout_json_open(&j, '{');
        ctlout_json_key(&j, "field");
        ctlout_json_str(&j, r->element[i]->str, r->element[i]->len);
        ctlout_json_key(&j, "value");
        ctlout_json_str(&j, r->element[i + 1]->str, r->element[i + 1]->len);
        ctlout_json_key(&j, "ignored");
        ctlout_json_cstr(&j, ignored_because(r->element[i], r->element[i + 1]));
        ctlout_json_close(&j, '}');
    }
    ctlout_json_close(&j, ']');
    ctlout_json_close(&j, '}');
}

static void limits_text(const char *customer, const char *key, const redisReply *r)
{
    if (r->elements == 0)
        printf("no overrides in %s: %s has the config's limits\n", ctlout_shown(key),
               ctlout_shown(customer));
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const char *why = ignored_because(r->element[i], r->element[i + 1]);
        printf("%-30s %s%s%s%s\n", ctlout_shown(r->element[i]->str),
               ctlout_shown(r->element[i + 1]->str), why ? "  (" : "", why ? why : "",
               why ? ")" : "");
    }
}

/* A hash reply whose fields and values are all strings. */
static int string_pairs(const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 0)
        return 0;
    for (size_t i = 0; i < r->elements; i++)
        if (r->element[i]->type != REDIS_REPLY_STRING)
            return 0;
    return 1;
}

int ctlshow_limits(struct ctl *ctl, int argc, char **argv)
{
    char key[CTLUSAGE_KEY_MAX];
    int known = 1, rc = ctlout_name_problem("customer", argv[0], 1);

    (void)argc;
    if (rc != CTL_OK)
        return rc;
    if (keys_limits(key, sizeof(key), ctl->cfg->prefix, argv[0]) < 0) {
        ctlout_err("the key name for customer \"%s\" is too long", argv[0]);
        return CTL_EUSAGE;
    }
    const char *cmd[] = {"HGETALL", key};
    redisReply *r = ctlredis_cmdv(ctl->redis, key, 2, cmd);
    if (r == NULL)
        return CTL_EREDIS;
    if (!string_pairs(r)) {
        ctlout_err("%s: unexpected reply to HGETALL", ctlout_shown(key));
        rc = CTL_EREDIS;
    } else if (r->elements == 0) {
        rc = ctlusage_known(ctl, argv[0], &known);
    }
    if (rc == CTL_OK && !known)
        ctlusage_note_unknown(ctl, argv[0]);
    if (rc == CTL_OK && ctl->json)
        limits_json(argv[0], key, known, r);
    else if (rc == CTL_OK)
        limits_text(argv[0], key, r);
    freeReplyObject(r);
    return rc;
}

/* ---- fields ------------------------------------------------------------ */

/* A field's kind, and the value that lifts it (NULL: action restricts
 * nothing by itself). */
static const char *field_kind(int id, const char **lifted)
{
    static const char *const kinds[] = {[LIM_KIND_COUNT] = "count",
                                        [LIM_KIND_BOOL] = "bool",
                                        [LIM_KIND_ACTION] = "action"};
    static const char *const lift[] = {
        [LIM_KIND_COUNT] = "-1", [LIM_KIND_BOOL] = "0", [LIM_KIND_ACTION] = NULL};
    enum lim_kind k = lim_field_kind(id);

    *lifted = lift[k];
    return kinds[k];
}

int ctlshow_fields(struct ctl *ctl, int argc, char **argv)
{
    struct ctlout_json j = {.f = stdout};
    const char *lifted;

    (void)argc;
    (void)argv;
    if (ctl->json) {
        ctlout_json_open(&j, '{');
        ctlout_json_key(&j, "fields");
        ctlout_json_open(&j, '[');
    }
    for (int id = 0; id < LIM_NFIELDS; id++) {
        const char *kind = field_kind(id, &lifted);
        if (!ctl->json) {
            printf("%-30s %-7s %s\n", lim_field_name(id), kind, lifted ? lifted : "-");
            continue;
        }
        ctlout_json_open(&j, '{');
        ctlout_json_key(&j, "field");
        ctlout_json_cstr(&j, lim_field_name(id));
        ctlout_json_key(&j, "kind");
        ctlout_json_cstr(&j, kind);
        ctlout_json_key(&j, "lifted");
        ctlout_json_cstr(&j, lifted);
        ctlout_json_close(&j, '}');
    }
    if (ctl->json) {
        ctlout_json_close(&j, ']');
        ctlout_json_close(&j, '}');
    }
    return CTL_OK;
}

/* ---- whois LOGIN ---------------------------------------------------------- */

struct whois {
    const char *login;
    char canonical[LOGIN_MAX + 1];
    char sasl_key[CTLUSAGE_KEY_MAX];
    char customer[IDENTITY_NAME_MAX + 1]; /* "" when its mail is refused */
    const char *source;   /* "redis hash", "config entry", "sasl.unknown" */
    const char *rule;     /* sasl.unknown's value, when it decided */
    const char *unusable; /* why "sasl:LOGIN" cannot be a name */
    char *ignored;        /* a hash value the daemon ignores */
    const char *ignored_why;
};

static const char *const from_hash = "redis hash", *const from_config = "config entry";

/* The Redis hash first; a value that may not name a customer is ignored,
 * as the daemon ignores it (policy.c). */
static int whois_hash(struct ctl *ctl, struct whois *w)
{
    const char *cmd[] = {"HGET", w->sasl_key, w->canonical};
    redisReply *r = ctlredis_cmdv(ctl->redis, w->sasl_key, 3, cmd);

    if (r == NULL)
        return CTL_EREDIS;
    if (r->type == REDIS_REPLY_STRING && r->len > 0 &&
        memchr(r->str, '\0', r->len) == NULL) {
        w->ignored_why = identity_name_problem(r->str, 0);
        if (w->ignored_why != NULL) {
            w->ignored = xstrdup(r->str);
        } else {
            snprintf(w->customer, sizeof(w->customer), "%s", r->str);
            w->source = from_hash;
        }
    }
    freeReplyObject(r);
    return CTL_OK;
}

/* Then the config, then sasl.unknown (identity.h). */
static void whois_fallback(const struct rm_config *cfg, struct whois *w)
{
    if (identity_fallback(cfg, w->canonical, NULL, w->customer, sizeof(w->customer)) ==
        ID_CONFIG) {
        w->source = from_config;
        return;
    }
    w->source = "sasl.unknown";
    w->rule = cfg_sasl_unknown_name(cfg->sasl_unknown);
    if (cfg->sasl_unknown == CFG_SU_OWN)
        w->unusable = identity_name_problem(w->customer, 1);
    if (cfg->sasl_unknown != CFG_SU_OWN || w->unusable != NULL)
        w->customer[0] = '\0';
}

static void whois_json(const struct whois *w)
{
    struct ctlout_json j = {.f = stdout};
    const char *names[] = {"login", "canonical",          "customer",      "source",
                           "rule",  "ignored_hash_value", "ignored_reason"};
    const char *values[] = {
        w->login,      w->canonical, w->customer[0] ? w->customer : NULL,
        w->source,     w->rule,      w->ignored,
        w->ignored_why};

    ctlout_json_open(&j, '{');
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        ctlout_json_key(&j, names[i]);
        ctlout_json_cstr(&j, values[i]);
    }
    ctlout_json_key(&j, "refused");
    ctlout_json_bool(&j, w->customer[0] == '\0');
    ctlout_json_close(&j, '}');
}

static void whois_because(const char *conf, const struct whois *w)
{
    if (w->source == from_hash)
        printf("because:   redis hash (%s field %s)\n", ctlout_shown(w->sasl_key),
               ctlout_shown(w->canonical));
    else if (w->source == from_config)
        printf("because:   config entry (customers[] \"%s\" lists it, in %s)\n",
               ctlout_shown(w->customer), conf ? conf : "the built-in defaults");
    else
        printf("because:   sasl.unknown = %s (neither %s nor the config maps the "
               "login)%s%s\n",
               w->rule, ctlout_shown(w->sasl_key), w->unusable ? "; sasl:LOGIN " : "",
               w->unusable ? w->unusable : "");
}

static void whois_text(const struct rm_config *cfg, const char *conf,
                       const struct whois *w)
{
    char realm[CTLOUT_SHOWN_MAX * 4 + 32] = "";

    if (cfg->sasl_realm)
        snprintf(realm, sizeof(realm), " (sasl.realm %s)", ctlout_shown(cfg->sasl_realm));
    printf("login:     %s\n", ctlout_shown(w->login));
    printf("canonical: %s%s\n", ctlout_shown(w->canonical), realm);
    if (w->ignored)
        printf("ignored:   %s field %s names \"%s\", which %s: the milter ignores it\n",
               ctlout_shown(w->sasl_key), ctlout_shown(w->canonical),
               ctlout_shown(w->ignored), w->ignored_why);
    if (w->customer[0])
        printf("customer:  %s\n", ctlout_shown(w->customer));
    else if (cfg->sasl_unknown == CFG_SU_TEMPFAIL)
        printf("customer:  none: its mail is refused for now (temporary error)\n");
    else
        printf("customer:  none: its mail is refused\n");
    whois_because(conf, w);
}

int ctlshow_whois(struct ctl *ctl, int argc, char **argv)
{
    const struct rm_config *cfg = ctl->cfg;
    struct whois w = {.login = argv[0]};
    int rc;

    (void)argc;
    if ((rc = ctlout_login_problem(cfg->sasl_realm, argv[0], w.canonical,
                                   sizeof(w.canonical))) != CTL_OK)
        return rc;
    keys_sasl(w.sasl_key, sizeof(w.sasl_key), cfg->prefix);
    if ((rc = whois_hash(ctl, &w)) != CTL_OK)
        return rc;
    if (w.source == NULL)
        whois_fallback(cfg, &w);
    if (ctl->json)
        whois_json(&w);
    else
        whois_text(cfg, ctl->conf, &w);
    free(w.ignored);
    return CTL_OK;
}

/* ---- events [N] ------------------------------------------------------------- */

/* One stream entry: its id and fields, NULL for a field it lacks. */
struct event {
    const char *id;
    const char *field[EV_NFIELDS];
    long long time;
};

static int event_parse(const redisReply *e, struct event *ev)
{
    const redisReply *f;

    memset(ev, 0, sizeof(*ev));
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        e->element[0]->type != REDIS_REPLY_STRING ||
        (f = e->element[1])->type != REDIS_REPLY_ARRAY)
        return -1;
    ev->id = e->element[0]->str;
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        if (f->element[i]->type != REDIS_REPLY_STRING ||
            f->element[i + 1]->type != REDIS_REPLY_STRING)
            return -1;
        for (int k = 0; k < EV_NFIELDS; k++)
            if (strcmp(f->element[i]->str, events_field_name[k]) == 0)
                ev->field[k] = f->element[i + 1]->str;
    }
    /* the time field, else the stream id's milliseconds */
    char *end;
    const char *t = ev->field[EV_TIME];
    errno = 0;
    ev->time = t ? strtoll(t, &end, 10) : 0;
    if (t == NULL || *t == '\0' || *end != '\0' || errno != 0)
        ev->time = strtoll(ev->id, NULL, 10) / 1000;
    return 0;
}

static const char * or (const char *s, const char *fallback)
{
    return s && *s ? s : fallback;
}

static void event_text(const struct event *ev)
{
    char when[32];

    ctlout_utc(ev->time, when, sizeof(when));
    printf("%s UTC  %s  customer=%s login=%s sender=<%s> recipients=%s reason=%s "
           "action=%s\n",
           when, ctlout_shown(or (ev->field[EV_QUEUE_ID], "NOQUEUE")),
           ctlout_shown(or (ev->field[EV_CUSTOMER], "")),
           ctlout_shown(or (ev->field[EV_LOGIN], "-")),
           ctlout_shown(or (ev->field[EV_SENDER], "")),
           ctlout_shown(or (ev->field[EV_RECIPIENTS], "")),
           ctlout_shown(or (ev->field[EV_REASON], "")),
           ctlout_shown(or (ev->field[EV_ACTION], "")));
}

static void event_json(struct ctlout_json *j, const struct event *ev)
{
    char when[32];

    ctlout_utc(ev->time, when, sizeof(when));
    ctlout_json_open(j, '{');
    ctlout_json_key(j, "id");
    ctlout_json_cstr(j, ev->id);
    ctlout_json_key(j, "time");
    ctlout_json_int(j, ev->time);
    ctlout_json_key(j, "time_utc");
    ctlout_json_cstr(j, when);
    for (int k = 0; k < EV_NFIELDS; k++)
        if (k != EV_TIME) {
            ctlout_json_key(j, events_field_name[k]);
            ctlout_json_cstr(j, ev->field[k]);
        }
    ctlout_json_close(j, '}');
}

/* N: a whole number from 1 up. */
static int event_count(const char *s, char *out, size_t len)
{
    char *end;

    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (*s < '0' || *s > '9' || *end != '\0' || errno != 0 || n < 1) {
        ctlout_err("events: N must be a whole number of at least 1, not '%s'",
                   ctlout_shown(s));
        return CTL_EUSAGE;
    }
    snprintf(out, len, "%lld", n);
    return CTL_OK;
}

int ctlshow_events(struct ctl *ctl, int argc, char **argv)
{
    char key[CTLUSAGE_KEY_MAX], count[24] = "20";
    struct ctlout_json j = {.f = stdout};
    struct event ev;

    if (argc > 0 && event_count(argv[0], count, sizeof(count)) != CTL_OK)
        return CTL_EUSAGE;
    keys_events(key, sizeof(key), ctl->cfg->prefix);
    const char *cmd[] = {"XREVRANGE", key, "+", "-", "COUNT", count};
    redisReply *r = ctlredis_cmdv(ctl->redis, key, 6, cmd);
    if (r == NULL)
        return CTL_EREDIS;
    if (ctl->json) {
        ctlout_json_open(&j, '{');
        ctlout_json_key(&j, "events");
        ctlout_json_open(&j, '[');
    }
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        if (event_parse(r->element[i], &ev) != 0)
            continue;
        if (ctl->json)
            event_json(&j, &ev);
        else
            event_text(&ev);
    }
    if (ctl->json) {
        ctlout_json_close(&j, ']');
        ctlout_json_close(&j, '}');
    }
    freeReplyObject(r);
    return CTL_OK;
}
