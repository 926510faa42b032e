/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * routemap - Redis Cluster nodes and slot map; see routemap.h.
 */
#include "routemap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "sentinel.h"
#include "store.h"
#include "xalloc.h"

static struct route_node *node_new(const struct rm_config *cfg, const char *host,
                                   int port)
{
    struct route_node *n = xcalloc(1, sizeof(*n));

    snprintf(n->host, sizeof(n->host), "%s", host);
    n->port = port;
    n->pool = rpool_new_node(cfg, host, port);
    return n;
}

/* Called with the lock held for writing: the node at host:port, added when
 * new; NULL when the table is full. */
static struct route_node *node_find_add(struct routemap *m, const char *host, int port)
{
    for (int i = 0; i < m->nnodes; i++)
        if (m->node[i]->port == port && strcmp(m->node[i]->host, host) == 0)
            return m->node[i];
    if (m->nnodes == ROUTE_MAX_NODES)
        return NULL;
    m->node[m->nnodes] = node_new(&m->tmpl, host, port);
    return m->node[m->nnodes++];
}

static int node_index(const struct routemap *m, const struct route_node *n)
{
    for (int i = 0; i < m->nnodes; i++)
        if (m->node[i] == n)
            return i;
    return ROUTEMAP_NONE;
}

/* ---- the slot map ------------------------------------------------------ */

/* Called with refresh_lock held: one CLUSTER SLOTS asked of n. */
static int ask_slots(struct routemap *m, struct route_node *n, char *err)
{
    const char *argv[] = {"CLUSTER", "SLOTS"};
    size_t lens[] = {7, 5};
    struct rconn *c = rpool_get(n->pool, err);

    if (c == NULL)
        return -1;
    redisReply *rep = rpool_command(c, 0, 2, argv, lens);
    enum rpool_status st = rpool_status_of(c->ctx, rep);
    int rc = -1;
    if (st != RPOOL_OK || rep->type != REDIS_REPLY_ARRAY) {
        rpool_error(c->ctx, rep, err);
    } else {
        struct cluster_range *rg = xcalloc(rep->elements, sizeof(*rg));
        size_t nr;
        if ((rc = cluster_parse_slots(rep, n->host, rg, &nr, err)) == 0) {
            pthread_rwlock_wrlock(&m->lock);
            for (int s = 0; s < CLUSTER_SLOTS; s++)
                m->slot[s] = ROUTEMAP_NONE;
            for (size_t i = 0; i < nr; i++) {
                struct route_node *owner = node_find_add(m, rg[i].host, rg[i].port);
                for (int s = rg[i].first; owner && s <= rg[i].last; s++)
                    m->slot[s] = (uint16_t)node_index(m, owner);
            }
            m->have_map = 1;
            pthread_rwlock_unlock(&m->lock);
        }
        free(rg);
    }
    rpool_put(n->pool, c, st);
    if (rep)
        freeReplyObject(rep);
    return rc;
}

/* Ask for the slot map: prefer first (a node known to answer), then the known
 * nodes in turn, skipping those whose circuit is open. wait: block until the
 * refresh under way ends (no map yet), else leave it to whoever is at it. */
static void refresh(struct routemap *m, struct route_node *prefer, int wait)
{
    char err[STORE_ERR_MAX] = "no node to ask";
    long long now = clock_mono_ms();

    if (wait ? pthread_mutex_lock(&m->refresh_lock) != 0
             : pthread_mutex_trylock(&m->refresh_lock) != 0)
        return;
    int due = now - m->refreshed_ms >= ROUTE_REFRESH_MIN_MS || m->refreshed_ms == 0;
    if (!due) {
        pthread_mutex_unlock(&m->refresh_lock);
        return;
    }
    for (int tries = 0; due && tries < ROUTE_REFRESH_TRIES; tries++) {
        struct route_node *n = prefer;
        prefer = NULL;
        if (n == NULL) {
            pthread_rwlock_rdlock(&m->lock);
            int count = m->nnodes;
            for (int k = 0; n == NULL && k < count; k++) {
                struct route_node *c = m->node[m->next_ask++ % (unsigned)count];
                if (!rpool_circuit_open(c->pool))
                    n = c;
            }
            pthread_rwlock_unlock(&m->lock);
        }
        if (n == NULL)
            break;
        if (ask_slots(m, n, err) == 0) {
            atomic_fetch_add(&m->refresh_ok, 1);
            due = 0;
        }
    }
    if (due) {
        atomic_fetch_add(&m->refresh_failed, 1);
        msg_warn("redis cluster: cannot read the slot map (%s)", err);
    }
    m->refreshed_ms = clock_mono_ms();
    pthread_mutex_unlock(&m->refresh_lock);
}

static struct route_node *lookup(struct routemap *m, int slot, int *have)
{
    pthread_rwlock_rdlock(&m->lock);
    unsigned idx = m->slot[slot];
    struct route_node *n = idx == ROUTEMAP_NONE ? NULL : m->node[idx];
    *have = m->have_map;
    pthread_rwlock_unlock(&m->lock);
    return n;
}

struct route_node *routemap_node(struct routemap *m, int slot, char *err)
{
    int have;
    struct route_node *n = lookup(m, slot, &have);

    if (n != NULL)
        return n;
    refresh(m, NULL, !have);
    if ((n = lookup(m, slot, &have)) == NULL)
        snprintf(err, STORE_ERR_MAX, "redis cluster: %s",
                 have ? "no node serves the slot" : "no slot map (CLUSTER SLOTS failed)");
    return n;
}

struct route_node *routemap_peek(struct routemap *m, int slot)
{
    int have;

    return lookup(m, slot, &have);
}

void routemap_refresh(struct routemap *m, struct route_node *prefer)
{
    refresh(m, prefer, 0);
}

/* Host "" is the node that answered; "?" (no known endpoint) is nowhere. */
struct route_node *routemap_redirected(struct routemap *m, const struct route_node *from,
                                       const struct cluster_redirect *rd)
{
    if (strcmp(rd->host, "?") == 0)
        return NULL;
    pthread_rwlock_wrlock(&m->lock);
    struct route_node *n =
        node_find_add(m, rd->host[0] ? rd->host : from->host, rd->port);
    if (n != NULL && !rd->ask)
        m->slot[rd->slot] = (uint16_t)node_index(m, n);
    pthread_rwlock_unlock(&m->lock);
    return n;
}

/* Called with the lock held: how many slots each node serves now (count
 * holds ROUTE_MAX_NODES). */
static void slot_counts(const struct routemap *m, int *count)
{
    memset(count, 0, ROUTE_MAX_NODES * sizeof(*count));
    for (int s = 0; s < CLUSTER_SLOTS; s++)
        if (m->slot[s] != ROUTEMAP_NONE)
            count[m->slot[s]]++;
}

/* Only nodes that serve slots count: a primary that failed over and never
 * came back keeps its open circuit (nothing probes it), and must not look
 * like a failing cluster forever. */
int routemap_any_open(struct routemap *m)
{
    int open = 0, count[ROUTE_MAX_NODES];

    pthread_rwlock_rdlock(&m->lock);
    slot_counts(m, count);
    for (int i = 0; i < m->nnodes && !open; i++)
        open = count[i] > 0 && rpool_circuit_open(m->node[i]->pool);
    pthread_rwlock_unlock(&m->lock);
    return open;
}

/* ---- metrics ------------------------------------------------------------- */

/* A node as a label value: its address, with anything that could break the
 * text format replaced. */
static void node_label(const struct route_node *n, char *out, size_t len)
{
    snprintf(out, len, "%s:%d", n->host, n->port);
    for (char *p = out; *p; p++)
        if (!(*p == '.' || *p == ':' || *p == '-' || *p == '[' || *p == ']' ||
              (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
              (*p >= 'A' && *p <= 'Z')))
            *p = '_';
}

static void node_metrics(struct route_node *n, int slots, struct metrics_text *t)
{
    char l[CLUSTER_HOST_MAX + 16];

    node_label(n, l, sizeof(l));
    metrics_put(t, "relaymilter_redis_node_slots{node=\"%s\"} %d\n", l, slots);
    metrics_put(
        t, "relaymilter_redis_node_redirects_total{node=\"%s\",kind=\"moved\"} %lu\n", l,
        atomic_load(&n->moved));
    metrics_put(t,
                "relaymilter_redis_node_redirects_total{node=\"%s\",kind=\"ask\"} %lu\n",
                l, atomic_load(&n->ask));
    metrics_put(t, "relaymilter_redis_node_tryagain_total{node=\"%s\"} %lu\n", l,
                atomic_load(&n->tryagain));
    metrics_put(t, "relaymilter_redis_node_errors_total{node=\"%s\"} %lu\n", l,
                atomic_load(&n->errors));
    metrics_put(t, "relaymilter_redis_node_circuit_open{node=\"%s\"} %d\n", l,
                rpool_circuit_open(n->pool));
}

size_t routemap_metrics(struct routemap *m, char *buf, size_t len)
{
    struct metrics_text t = {buf, len, 0};

    if (len == 0)
        return 0;
    buf[0] = '\0';
    metrics_put(
        &t, "# HELP relaymilter_redis_node_redirects_total Redis Cluster redirections "
            "(MOVED, ASK) a node answered with.\n"
            "# TYPE relaymilter_redis_node_redirects_total counter\n"
            "# HELP relaymilter_redis_node_tryagain_total TRYAGAIN answers of a node "
            "(a slot migrating).\n"
            "# TYPE relaymilter_redis_node_tryagain_total counter\n"
            "# HELP relaymilter_redis_node_errors_total Failed calls to a node.\n"
            "# TYPE relaymilter_redis_node_errors_total counter\n"
            "# HELP relaymilter_redis_node_circuit_open 1 while calls to a node are "
            "suspended.\n"
            "# TYPE relaymilter_redis_node_circuit_open gauge\n"
            "# HELP relaymilter_redis_node_slots Slots a node serves in the slot map.\n"
            "# TYPE relaymilter_redis_node_slots gauge\n");
    int count[ROUTE_MAX_NODES];
    pthread_rwlock_rdlock(&m->lock);
    slot_counts(m, count);
    for (int i = 0; i < m->nnodes; i++)
        node_metrics(m->node[i], count[i], &t);
    pthread_rwlock_unlock(&m->lock);
    metrics_put(
        &t,
        "# HELP relaymilter_redis_slot_map_refreshes_total Redis Cluster slot maps "
        "read (CLUSTER SLOTS).\n"
        "# TYPE relaymilter_redis_slot_map_refreshes_total counter\n"
        "relaymilter_redis_slot_map_refreshes_total{result=\"ok\"} %lu\n"
        "relaymilter_redis_slot_map_refreshes_total{result=\"failed\"} %lu\n",
        atomic_load(&m->refresh_ok), atomic_load(&m->refresh_failed));
    return t.used;
}

/* ---- life ---------------------------------------------------------------- */

void routemap_init(struct routemap *m, const struct rm_config *cfg)
{
    m->tmpl.redis_username = xstrdup_or_null(cfg->redis_username);
    m->tmpl.redis_password = xstrdup_or_null(cfg->redis_password);
    m->tmpl.connect_timeout_ms = cfg->connect_timeout_ms;
    m->tmpl.command_timeout_ms = cfg->command_timeout_ms;
    m->tmpl.pool_size = cfg->pool_size;
    m->seeds.v = xcalloc(cfg->cluster_nodes.n, sizeof(char *));
    pthread_rwlock_init(&m->lock, NULL);
    pthread_mutex_init(&m->refresh_lock, NULL);
    for (int s = 0; s < CLUSTER_SLOTS; s++)
        m->slot[s] = ROUTEMAP_NONE;
    /* The seeds are the first nodes: a refresh asks them first. */
    for (size_t i = 0; i < cfg->cluster_nodes.n; i++) {
        char host[CLUSTER_HOST_MAX];
        int port;
        m->seeds.v[m->seeds.n++] = xstrdup(cfg->cluster_nodes.v[i]);
        if (sentinel_split(cfg->cluster_nodes.v[i], host, sizeof(host), &port) == 0)
            node_find_add(m, host, port);
    }
}

void routemap_free(struct routemap *m)
{
    for (int i = 0; i < m->nnodes; i++) {
        rpool_free(m->node[i]->pool);
        free(m->node[i]);
    }
    for (size_t i = 0; i < m->seeds.n; i++)
        free(m->seeds.v[i]);
    free(m->seeds.v);
    free(m->tmpl.redis_username);
    free(m->tmpl.redis_password);
    pthread_rwlock_destroy(&m->lock);
    pthread_mutex_destroy(&m->refresh_lock);
}

int routemap_same(const struct routemap *m, const struct rm_config *cfg)
{
    if (cfg->cluster_nodes.n != m->seeds.n || m->nnodes == 0 ||
        !rpool_same_settings(m->node[0]->pool, cfg))
        return 0;
    for (size_t i = 0; i < m->seeds.n; i++)
        if (strcmp(m->seeds.v[i], cfg->cluster_nodes.v[i]) != 0)
            return 0;
    return 1;
}
