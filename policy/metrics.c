/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * metrics - atomic counters and Prometheus text; see metrics.h.
 */
#include "metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "limits.h"
#include "log.h"
#include "xalloc.h"

static const char *const actions[] = {"accept", "tempfail", "reject", "hold", "monitor"};
enum { NACTIONS = sizeof(actions) / sizeof(actions[0]) };

/* Reason classes: a limit field name counts as "quota". */
static const char *const reasons[] = {"none",
                                      "quota",
                                      "suspended",
                                      "sender_domain_owned_by_other",
                                      "sender_domain_not_owned",
                                      "malformed_sender",
                                      "login_too_long",
                                      "store_error"};
enum { NREASONS = sizeof(reasons) / sizeof(reasons[0]), R_QUOTA = 1 };

static const char *const rcpt_reasons[] = {"blocked_recipient_domain", "max_recipients"};
enum { NRCPT = 2 };

/* Store latency buckets in microseconds, upper bounds. */
static const long long buckets_us[] = {250,   500,   1000,   2500,   5000,   10000,
                                       25000, 50000, 100000, 250000, 500000, 1000000};
enum { NBUCKETS = sizeof(buckets_us) / sizeof(buckets_us[0]) };

struct metrics {
    atomic_ulong decisions[NACTIONS][NREASONS];
    atomic_ulong limit_refusals[LIM_NQUOTA];
    atomic_ulong local_decisions;
    atomic_ulong rcpt_refused[NRCPT];
    atomic_ulong store_calls, store_errors, store_usec_sum;
    atomic_ulong store_bucket[NBUCKETS + 1]; /* last: +Inf */
    atomic_long connections;
    atomic_ulong reloads_ok, reloads_failed, generation;
    atomic_int last_reload_ok;
};

struct metrics *metrics_new(void)
{
    struct metrics *m = xcalloc(1, sizeof(*m));
    atomic_store(&m->last_reload_ok, 1);
    atomic_store(&m->generation, 1); /* the configuration the daemon started with */
    return m;
}

void metrics_free(struct metrics *m)
{
    free(m);
}

static int index_of(const char *const *names, int n, const char *s, size_t len)
{
    for (int i = 0; i < n; i++)
        if (strlen(names[i]) == len && strncmp(names[i], s, len) == 0)
            return i;
    return -1;
}

void metrics_decision(struct metrics *m, const char *action, const char *reason)
{
    int a = index_of(actions, NACTIONS, action, strlen(action));
    int r = 0;

    if (m == NULL || a < 0)
        return;
    if (reason != NULL) {
        size_t len = strcspn(reason, " ");
        char field[64];
        snprintf(field, sizeof(field), "%.*s", (int)len, reason);
        int id = lim_field_find(field);
        if (id >= 0 && id < LIM_NQUOTA) {
            r = R_QUOTA;
            atomic_fetch_add(&m->limit_refusals[id], 1);
        } else if ((r = index_of(reasons, NREASONS, reason, len)) < 0) {
            r = 0;
        }
        if (strstr(reason, "fallback=local") != NULL)
            atomic_fetch_add(&m->local_decisions, 1);
    }
    atomic_fetch_add(&m->decisions[a][r], 1);
}

void metrics_rcpt_refused(struct metrics *m, const char *why)
{
    int i = m ? index_of(rcpt_reasons, NRCPT, why, strlen(why)) : -1;
    if (i >= 0)
        atomic_fetch_add(&m->rcpt_refused[i], 1);
}

void metrics_store_call(struct metrics *m, long long usec, int ok)
{
    int b = 0;

    if (m == NULL)
        return;
    while (b < NBUCKETS && usec > buckets_us[b])
        b++;
    atomic_fetch_add(&m->store_bucket[b], 1);
    atomic_fetch_add(&m->store_calls, 1);
    atomic_fetch_add(&m->store_usec_sum, (unsigned long)(usec < 0 ? 0 : usec));
    if (!ok)
        atomic_fetch_add(&m->store_errors, 1);
}

void metrics_connection(struct metrics *m, int delta)
{
    if (m != NULL)
        atomic_fetch_add(&m->connections, delta);
}

void metrics_reload(struct metrics *m, int ok, unsigned long generation)
{
    if (m == NULL)
        return;
    atomic_fetch_add(ok ? &m->reloads_ok : &m->reloads_failed, 1);
    atomic_store(&m->last_reload_ok, ok);
    if (ok)
        atomic_store(&m->generation, generation);
}

void metrics_put(struct metrics_text *o, const char *fmt, ...)
{
    va_list ap;
    if (o->used >= o->len)
        return;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->used, o->len - o->used, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->used += (size_t)n < o->len - o->used ? (size_t)n : o->len - o->used - 1;
}

void metrics_counter(struct metrics_text *t, const char *name, const char *help,
                     unsigned long v)
{
    metrics_put(t, "# HELP %s %s\n# TYPE %s counter\n%s %lu\n", name, help, name, name,
                v);
}

static void render_decisions(struct metrics *m, struct metrics_text *o)
{
    metrics_put(
        o, "# HELP relaymilter_decisions_total Message decisions by action and reason.\n"
           "# TYPE relaymilter_decisions_total counter\n");
    for (int a = 0; a < NACTIONS; a++)
        for (int r = 0; r < NREASONS; r++)
            metrics_put(o,
                        "relaymilter_decisions_total{action=\"%s\",reason=\"%s\"} %lu\n",
                        actions[a], reasons[r], atomic_load(&m->decisions[a][r]));
    metrics_put(o,
                "# HELP relaymilter_limit_refusals_total Over-quota messages by limit.\n"
                "# TYPE relaymilter_limit_refusals_total counter\n");
    for (int i = 0; i < LIM_NQUOTA; i++)
        metrics_put(o, "relaymilter_limit_refusals_total{limit=\"%s\"} %lu\n",
                    lim_field_name(i), atomic_load(&m->limit_refusals[i]));
    metrics_put(
        o, "# HELP relaymilter_recipients_refused_total Recipients refused at RCPT TO.\n"
           "# TYPE relaymilter_recipients_refused_total counter\n");
    for (int i = 0; i < NRCPT; i++)
        metrics_put(o, "relaymilter_recipients_refused_total{reason=\"%s\"} %lu\n",
                    rcpt_reasons[i], atomic_load(&m->rcpt_refused[i]));
    metrics_put(
        o,
        "# HELP relaymilter_local_fallback_decisions_total Quota decisions made in "
        "memory "
        "while Redis was unusable.\n# TYPE relaymilter_local_fallback_decisions_total "
        "counter\nrelaymilter_local_fallback_decisions_total %lu\n",
        atomic_load(&m->local_decisions));
}

static void render_store(struct metrics *m, int circuit_open, struct metrics_text *o)
{
    unsigned long cum = 0;

    metrics_put(
        o, "# HELP relaymilter_store_call_seconds Redis round trips made for messages.\n"
           "# TYPE relaymilter_store_call_seconds histogram\n");
    for (int b = 0; b <= NBUCKETS; b++) {
        cum += atomic_load(&m->store_bucket[b]);
        if (b < NBUCKETS)
            metrics_put(o, "relaymilter_store_call_seconds_bucket{le=\"%g\"} %lu\n",
                        (double)buckets_us[b] / 1e6, cum);
        else
            metrics_put(o, "relaymilter_store_call_seconds_bucket{le=\"+Inf\"} %lu\n",
                        cum);
    }
    metrics_put(
        o,
        "relaymilter_store_call_seconds_sum %.6f\nrelaymilter_store_call_seconds_count "
        "%lu\n",
        (double)atomic_load(&m->store_usec_sum) / 1e6, atomic_load(&m->store_calls));
    metrics_put(
        o,
        "# HELP relaymilter_store_errors_total Failed Redis round trips.\n"
        "# TYPE relaymilter_store_errors_total counter\nrelaymilter_store_errors_total "
        "%lu\n",
        atomic_load(&m->store_errors));
    metrics_put(
        o,
        "# HELP relaymilter_store_circuit_open 1 while calls to Redis are suspended.\n"
        "# TYPE relaymilter_store_circuit_open gauge\nrelaymilter_store_circuit_open "
        "%d\n",
        circuit_open);
}

size_t metrics_render(struct metrics *m, int circuit_open, char *buf, size_t len)
{
    struct metrics_text o = {buf, len, 0};

    if (len == 0)
        return 0;
    buf[0] = '\0';
    render_decisions(m, &o);
    render_store(m, circuit_open, &o);
    metrics_put(&o,
                "# HELP relaymilter_connections Open MTA connections.\n"
                "# TYPE relaymilter_connections gauge\nrelaymilter_connections %ld\n",
                atomic_load(&m->connections));
    metrics_put(
        &o,
        "# HELP relaymilter_config_generation Configuration in force (1 = as started).\n"
        "# TYPE relaymilter_config_generation gauge\nrelaymilter_config_generation %lu\n",
        atomic_load(&m->generation));
    metrics_put(&o,
                "# HELP relaymilter_config_reloads_total Reload attempts by result.\n"
                "# TYPE relaymilter_config_reloads_total counter\n"
                "relaymilter_config_reloads_total{result=\"ok\"} %lu\n"
                "relaymilter_config_reloads_total{result=\"failed\"} %lu\n",
                atomic_load(&m->reloads_ok), atomic_load(&m->reloads_failed));
    metrics_put(
        &o,
        "# HELP relaymilter_config_last_reload_ok 1 when the last reload succeeded.\n"
        "# TYPE relaymilter_config_last_reload_ok gauge\n"
        "relaymilter_config_last_reload_ok %d\n",
        atomic_load(&m->last_reload_ok));
#ifndef RM_VERSION
#define RM_VERSION "unknown"
#endif
    metrics_put(
        &o,
        "# HELP relaymilter_build_info Version of the running daemon.\n"
        "# TYPE relaymilter_build_info gauge\nrelaymilter_build_info{version=\"%s\"} 1\n",
        RM_VERSION);
    return o.used;
}
