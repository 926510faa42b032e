/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * rpool - pooled hiredis connections, circuit breaker, Sentinel; see
 * rpool.h.
 */
#include "rpool.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "breaker.h"
#include "cluster.h"
#include "clock.h"
#include "log.h"
#include "lookup_lua.h"
#include "relay_lua.h"
#include "sentinel.h"
#include "store.h"
#include "xalloc.h"

struct rpool {
    /* settings, copied: a pool may outlive the config it was made from */
    char *host, *unix_path, *username, *password, *master;
    struct cfg_strlist sentinels;
    int port, db, connect_ms, command_ms, size;
    int node; /* a Redis Cluster node: fixed address, only relay.lua */
    char name[CLUSTER_HOST_MAX + 16]; /* in logs and errors: "redis", "redis HOST:PORT" */

    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct rconn **idle; /* stack of open, healthy connections */
    int nidle;
    int nopen; /* idle + lent out + being opened */
    char sha[RPOOL_NSCRIPTS][41];
    /* Sentinel mode: the primary's address, and a generation that moves on
     * whenever it must be asked again; connections of older generations are
     * closed instead of reused. */
    char primary_host[256];
    int primary_port;
    int primary_known;
    unsigned gen;
    struct breaker br;
};

static int same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static struct timeval ms_tv(int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return tv;
}

void rpool_reply_error(const redisReply *r, char *err)
{
    if (r->type == REDIS_REPLY_ERROR)
        snprintf(err, STORE_ERR_MAX, "redis: %.*s", (int)r->len, r->str);
    else
        snprintf(err, STORE_ERR_MAX, "redis: unexpected reply type %d", r->type);
}

void rpool_error(const redisContext *c, const redisReply *r, char *err)
{
    /* hiredis reports a read timeout as EAGAIN's text; say what it means. */
    if (r == NULL && c->err == REDIS_ERR_IO &&
        strstr(c->errstr, "temporarily unavailable"))
        snprintf(err, STORE_ERR_MAX,
                 "redis: timeout (no reply within command_timeout_ms)");
    else if (r == NULL)
        snprintf(err, STORE_ERR_MAX, "redis: %s", c->errstr[0] ? c->errstr : "no reply");
    else
        rpool_reply_error(r, err);
}

enum rpool_status rpool_status_of(const redisContext *c, const redisReply *r)
{
    if (r == NULL || c->err)
        return RPOOL_BROKEN;
    /* A replica (READONLY), a primary cut off from its replicas by
     * min-replicas (NOREPLICAS), a replica out of sync (MASTERDOWN), a server
     * still loading, a cluster node that has lost its quorum or slots
     * (CLUSTERDOWN): none can take our writes; another server may. */
    if (r->type == REDIS_REPLY_ERROR &&
        (strncmp(r->str, "READONLY", 8) == 0 || strncmp(r->str, "NOREPLICAS", 10) == 0 ||
         strncmp(r->str, "MASTERDOWN", 10) == 0 || strncmp(r->str, "LOADING", 7) == 0 ||
         strncmp(r->str, "CLUSTERDOWN", 11) == 0))
        return RPOOL_WRONG_SERVER;
    return RPOOL_OK;
}

/* One command on a fresh connection during setup: AUTH, SELECT, ROLE, SCRIPT
 * LOAD. The reply is returned for the caller to read, NULL on failure. */
static redisReply *setup_command(redisContext *c, int argc, const char **argv, char *err)
{
    size_t lens[4];
    for (int i = 0; i < argc; i++)
        lens[i] = argv[i] == relay_lua    ? relay_lua_len
                  : argv[i] == lookup_lua ? lookup_lua_len
                                          : strlen(argv[i]);
    redisReply *r = redisCommandArgv(c, argc, argv, lens);
    if (r && r->type != REDIS_REPLY_ERROR)
        return r;
    rpool_error(c, r, err);
    if (r)
        freeReplyObject(r);
    return NULL;
}

static int setup_ok(redisContext *c, int argc, const char **argv, char *err)
{
    redisReply *r = setup_command(c, argc, argv, err);
    if (r)
        freeReplyObject(r);
    return r ? 0 : -1;
}

/* With Sentinel, the server we reached must still be the primary: a stale
 * answer or a failover in progress would otherwise send writes to a replica. */
static int check_primary(redisContext *c, char *err)
{
    const char *role[] = {"ROLE"};
    redisReply *r = setup_command(c, 1, role, err);
    int ok = r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
             r->element[0]->type == REDIS_REPLY_STRING &&
             strcmp(r->element[0]->str, "master") == 0;
    if (r && !ok)
        snprintf(err, STORE_ERR_MAX,
                 "redis: the server named by the sentinels is not a primary");
    if (r)
        freeReplyObject(r);
    return ok ? 0 : -1;
}

/* Where to connect; in Sentinel mode ask the sentinels once per generation. */
static int target(struct rpool *p, char *host, size_t hostlen, int *port, unsigned *gen,
                  char *err)
{
    struct sentinel_opts so = {p->sentinels.v, p->sentinels.n, p->master,    p->username,
                               p->password,    p->connect_ms,  p->command_ms};

    pthread_mutex_lock(&p->lock);
    *gen = p->gen;
    int known = p->primary_known;
    snprintf(host, hostlen, "%s", known ? p->primary_host : (p->host ? p->host : ""));
    *port = known ? p->primary_port : p->port;
    pthread_mutex_unlock(&p->lock);
    if (p->sentinels.n == 0 || known)
        return 0;
    if (sentinel_resolve(&so, host, hostlen, port, err) != 0)
        return -1;
    pthread_mutex_lock(&p->lock);
    if (p->gen == *gen) {
        snprintf(p->primary_host, sizeof(p->primary_host), "%s", host);
        p->primary_port = *port;
        p->primary_known = 1;
    }
    pthread_mutex_unlock(&p->lock);
    msg_info("redis: primary for \"%s\" is %s:%d", p->master, host, *port);
    return 0;
}

static const char *const script_text[RPOOL_NSCRIPTS] = {relay_lua, lookup_lua};

/* Load the scripts on every new connection: cheap, and after a Redis restart
 * or failover the new server has them before the first EVALSHA. A cluster
 * node never runs the lookup script (lookup.lua says why). */
static int load_scripts(struct rpool *p, redisContext *c, char *err)
{
    for (int i = 0; i < (p->node ? 1 : RPOOL_NSCRIPTS); i++) {
        const char *load[] = {"SCRIPT", "LOAD", script_text[i]};
        redisReply *r = setup_command(c, 3, load, err);
        if (r == NULL)
            return -1;
        pthread_mutex_lock(&p->lock);
        if (r->type == REDIS_REPLY_STRING)
            snprintf(p->sha[i], sizeof(p->sha[i]), "%.40s", r->str);
        pthread_mutex_unlock(&p->lock);
        freeReplyObject(r);
    }
    return 0;
}

static struct rconn *conn_open(struct rpool *p, char *err)
{
    char host[256], db[16];
    int port;
    unsigned gen;
    redisContext *c;

    if (target(p, host, sizeof(host), &port, &gen, err) != 0)
        return NULL;
    c = p->unix_path && p->sentinels.n == 0
            ? redisConnectUnixWithTimeout(p->unix_path, ms_tv(p->connect_ms))
            : redisConnectWithTimeout(host, port, ms_tv(p->connect_ms));
    if (c == NULL) {
        snprintf(err, STORE_ERR_MAX, "redis: cannot allocate a connection");
        return NULL;
    }
    if (c->err) {
        snprintf(err, STORE_ERR_MAX, "%.64s: connect: %.80s", p->name, c->errstr);
        goto fail;
    }
    if (redisSetTimeout(c, ms_tv(p->command_ms)) != REDIS_OK) {
        snprintf(err, STORE_ERR_MAX, "redis: cannot set the command timeout");
        goto fail;
    }
    if (p->password) {
        const char *auth[] = {"AUTH", p->username ? p->username : p->password,
                              p->password};
        if (setup_ok(c, p->username ? 3 : 2, auth, err) != 0)
            goto fail;
    }
    snprintf(db, sizeof(db), "%d", p->db);
    const char *sel[] = {"SELECT", db};
    if (p->db != 0 && setup_ok(c, 2, sel, err) != 0)
        goto fail;
    if (p->sentinels.n > 0 && check_primary(c, err) != 0)
        goto fail;
    if (load_scripts(p, c, err) != 0)
        goto fail;
    struct rconn *rc = xmalloc(sizeof(*rc));
    rc->ctx = c;
    rc->gen = gen;
    return rc;
fail:
    redisFree(c);
    return NULL;
}

static void conn_close(struct rconn *rc)
{
    redisFree(rc->ctx);
    free(rc);
}

/* Called with the lock held. In Sentinel mode any failure may be a failover:
 * ask the sentinels again before the next connect, and retire the idle
 * connections to the old primary. */
static void forget_primary(struct rpool *p)
{
    if (p->sentinels.n == 0)
        return;
    p->primary_known = 0;
    p->gen++;
    while (p->nidle > 0) {
        conn_close(p->idle[--p->nidle]);
        p->nopen--;
    }
}

/* Called with the lock held: one outcome for the breaker. */
static void record(struct rpool *p, int ok, const char *err)
{
    if (ok) {
        if (breaker_success(&p->br))
            msg_info("%s: reachable again; circuit closed", p->name);
        return;
    }
    if (breaker_failure(&p->br, clock_mono_ms()))
        msg_error("%s: %d failures in a row (last: %s); circuit open, messages get "
                  "on_store_error without waiting until a probe succeeds",
                  p->name, RPOOL_FAIL_THRESHOLD, err);
    else if (breaker_is_open(&p->br))
        msg_warn("%s: probe failed (%s); next try in at most %lld ms", p->name, err,
                 p->br.backoff_ms);
}

/* Waiting for a free connection counts against the command timeout too: a
 * pool exhausted by a hung Redis must not queue every SMTP session behind it. */
static int wait_slot(struct rpool *p, struct rconn **out)
{
    struct timespec until;
    int rc = 0;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += (long)p->command_ms * 1000000L;
    until.tv_sec += until.tv_nsec / 1000000000L;
    until.tv_nsec %= 1000000000L;
    while (p->nidle == 0 && p->nopen >= p->size && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&p->cond, &p->lock, &until);
    while (p->nidle > 0) {
        struct rconn *c = p->idle[--p->nidle];
        if (c->gen == p->gen) {
            *out = c;
            return 0;
        }
        conn_close(c);
        p->nopen--;
    }
    if (p->nopen >= p->size)
        return -1;
    p->nopen++; /* reserve a slot; connect outside the lock */
    *out = NULL;
    return 0;
}

int rpool_circuit_open(struct rpool *p)
{
    pthread_mutex_lock(&p->lock);
    int open = breaker_is_open(&p->br);
    pthread_mutex_unlock(&p->lock);
    return open;
}

struct rconn *rpool_get(struct rpool *p, char *err)
{
    struct rconn *c = NULL;
    long long wait_ms;

    pthread_mutex_lock(&p->lock);
    if (!breaker_admit(&p->br, clock_mono_ms(), &wait_ms)) {
        pthread_mutex_unlock(&p->lock);
        snprintf(err, STORE_ERR_MAX,
                 "%.64s: unavailable (circuit open, next probe in %lld ms)", p->name,
                 wait_ms);
        return NULL;
    }
    if (wait_slot(p, &c) != 0) {
        breaker_abandon(&p->br);
        pthread_mutex_unlock(&p->lock);
        snprintf(err, STORE_ERR_MAX, "%.64s: all %d connections busy", p->name, p->size);
        return NULL;
    }
    pthread_mutex_unlock(&p->lock);
    if (c != NULL || (c = conn_open(p, err)) != NULL)
        return c;
    pthread_mutex_lock(&p->lock);
    p->nopen--;
    record(p, 0, err);
    forget_primary(p);
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

void rpool_put(struct rpool *p, struct rconn *c, enum rpool_status status)
{
    char err[STORE_ERR_MAX];

    pthread_mutex_lock(&p->lock);
    if (status == RPOOL_OK && c->ctx->err == 0 && c->gen == p->gen) {
        p->idle[p->nidle++] = c;
        record(p, 1, NULL);
    } else {
        snprintf(err, sizeof(err), "%s",
                 status == RPOOL_WRONG_SERVER ? "not a writable primary"
                 : c->ctx->errstr[0]          ? c->ctx->errstr
                                              : "connection retired");
        if (status != RPOOL_OK)
            record(p, 0, err);
        if (status != RPOOL_OK)
            forget_primary(p);
        p->nopen--;
        conn_close(c);
    }
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

redisReply *rpool_command(struct rconn *rc, int asking, int argc, const char **argv,
                          const size_t *lens)
{
    redisContext *c = rc->ctx;
    redisReply *a = NULL, *r = NULL;

    if (!asking)
        return redisCommandArgv(c, argc, argv, lens);
    /* ASKING and the command in one round trip; an error to ASKING itself
     * (a server that is no cluster node) is the answer. */
    if (redisAppendCommand(c, "ASKING") != REDIS_OK ||
        redisAppendCommandArgv(c, argc, argv, lens) != REDIS_OK ||
        redisGetReply(c, (void **)&a) != REDIS_OK)
        return NULL;
    if (redisGetReply(c, (void **)&r) != REDIS_OK) {
        freeReplyObject(a);
        return NULL;
    }
    if (a->type == REDIS_REPLY_ERROR) {
        freeReplyObject(r);
        return a;
    }
    freeReplyObject(a);
    return r;
}

redisReply *rpool_script(struct rpool *p, struct rconn *rc, enum rpool_script script,
                         int asking, int argc, const char **argv, size_t *lens)
{
    char sha[41];

    pthread_mutex_lock(&p->lock);
    memcpy(sha, p->sha[script], sizeof(sha));
    pthread_mutex_unlock(&p->lock);
    argv[0] = "EVALSHA";
    argv[1] = sha;
    lens[0] = 7;
    lens[1] = strlen(sha);
    redisReply *r = rpool_command(rc, asking, argc, argv, lens);
    if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
        /* SCRIPT FLUSH, a server that lost its cache, a replica promoted
         * since the script was loaded: EVAL loads it again. */
        freeReplyObject(r);
        argv[0] = "EVAL";
        argv[1] = script_text[script];
        lens[0] = 4;
        lens[1] = script == RPOOL_RELAY ? relay_lua_len : lookup_lua_len;
        r = rpool_command(rc, asking, argc, argv, lens);
    }
    return r;
}

int rpool_int(const redisReply *r, size_t i, long long *out)
{
    if (i >= r->elements || r->element[i]->type != REDIS_REPLY_INTEGER)
        return -1;
    *out = r->element[i]->integer;
    return 0;
}

int rpool_str(const redisReply *r, size_t i, char *out, size_t len, int *trunc)
{
    if (i >= r->elements || r->element[i]->type != REDIS_REPLY_STRING)
        return -1;
    const redisReply *e = r->element[i];
    /* Too long, or a NUL inside that would make the text mean something
     * shorter: not used, and said so. */
    if (e->len >= len || memchr(e->str, '\0', e->len) != NULL) {
        *trunc = 1;
        return 1;
    }
    memcpy(out, e->str, e->len);
    out[e->len] = '\0';
    return 0;
}

/* What every pool takes from cfg, whatever its address. */
static struct rpool *pool_alloc(const struct rm_config *cfg, size_t nsentinels)
{
    struct rpool *p = xcalloc(1, sizeof(*p));

    p->idle = xcalloc((size_t)cfg->pool_size, sizeof(*p->idle));
    p->sentinels.v = xcalloc(nsentinels + 1, sizeof(char *));
    p->username = xstrdup_or_null(cfg->redis_username);
    p->password = xstrdup_or_null(cfg->redis_password);
    snprintf(p->name, sizeof(p->name), "redis");
    p->connect_ms = cfg->connect_timeout_ms;
    p->command_ms = cfg->command_timeout_ms;
    p->size = cfg->pool_size;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    breaker_init(&p->br, RPOOL_FAIL_THRESHOLD, RPOOL_BACKOFF_BASE_MS,
                 RPOOL_BACKOFF_MAX_MS, (unsigned)time(NULL) ^ (unsigned)(size_t)p);
    return p;
}

struct rpool *rpool_new(const struct rm_config *cfg)
{
    struct rpool *p = pool_alloc(cfg, cfg->sentinels.n);

    p->host = xstrdup_or_null(cfg->redis_host);
    p->unix_path = xstrdup_or_null(cfg->redis_unix);
    p->master = xstrdup_or_null(cfg->redis_master);
    for (size_t i = 0; i < cfg->sentinels.n; i++)
        p->sentinels.v[p->sentinels.n++] = xstrdup_or_null(cfg->sentinels.v[i]);
    p->port = cfg->redis_port;
    p->db = cfg->redis_db;
    return p;
}

struct rpool *rpool_new_node(const struct rm_config *cfg, const char *host, int port)
{
    struct rpool *p = pool_alloc(cfg, 0);

    p->host = xstrdup(host);
    p->port = port;
    p->node = 1;
    snprintf(p->name, sizeof(p->name),
             strchr(host, ':') ? "redis [%s]:%d" : "redis %s:%d", host, port);
    return p;
}

void rpool_free(struct rpool *p)
{
    for (int i = 0; i < p->nidle; i++)
        conn_close(p->idle[i]);
    for (size_t i = 0; i < p->sentinels.n; i++)
        free(p->sentinels.v[i]);
    free(p->sentinels.v);
    free(p->idle);
    free(p->host);
    free(p->unix_path);
    free(p->username);
    free(p->password);
    free(p->master);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
    free(p);
}

static int same_list(const struct cfg_strlist *a, const struct cfg_strlist *b)
{
    if (a->n != b->n)
        return 0;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->v[i], b->v[i]) != 0)
            return 0;
    return 1;
}

int rpool_same_settings(const struct rpool *p, const struct rm_config *cfg)
{
    return same_str(p->username, cfg->redis_username) &&
           same_str(p->password, cfg->redis_password) &&
           p->connect_ms == cfg->connect_timeout_ms &&
           p->command_ms == cfg->command_timeout_ms && p->size == cfg->pool_size;
}

int rpool_matches(const struct rpool *p, const struct rm_config *cfg)
{
    return !p->node && rpool_same_settings(p, cfg) &&
           same_str(p->host, cfg->redis_host) &&
           same_str(p->unix_path, cfg->redis_unix) &&
           same_str(p->master, cfg->redis_master) &&
           same_list(&p->sentinels, &cfg->sentinels) && p->port == cfg->redis_port &&
           p->db == cfg->redis_db;
}
