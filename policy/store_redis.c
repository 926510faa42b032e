/*
 * store_redis - Redis store with a connection pool; see store_redis.h.
 */
#include "store_redis.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "relay_lua.h"

struct store_redis {
    struct store base;
    struct rm_config_redis {
        char *host, *unix_path, *username, *password, *prefix;
        int port, db, connect_ms, command_ms, size;
    } rc;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    redisContext **idle; /* stack of open, healthy connections */
    int nidle;
    int nopen; /* idle + lent out */
    char sha[41];
};

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static int same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static struct timeval ms_tv(int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return tv;
}

/* A reply's error text into err, for the caller's log line. */
static void reply_error(const redisContext *c, const redisReply *r, char *err)
{
    if (r == NULL)
        snprintf(err, STORE_ERR_MAX, "redis: %s", c->errstr[0] ? c->errstr : "no reply");
    else if (r->type == REDIS_REPLY_ERROR)
        snprintf(err, STORE_ERR_MAX, "redis: %.*s", (int)r->len, r->str);
    else
        snprintf(err, STORE_ERR_MAX, "redis: unexpected reply type %d", r->type);
}

/* One command on a fresh connection during setup: AUTH, SELECT, SCRIPT LOAD. */
static int setup_command(redisContext *c, int argc, const char **argv, char *out,
                         size_t outlen, char *err)
{
    size_t lens[4];
    for (int i = 0; i < argc; i++)
        lens[i] =
            (i == argc - 1 && argv[i] == relay_lua) ? relay_lua_len : strlen(argv[i]);
    redisReply *r = redisCommandArgv(c, argc, argv, lens);
    int ok = r && (r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_STRING);
    if (!ok)
        reply_error(c, r, err);
    else if (out)
        snprintf(out, outlen, "%.*s", (int)r->len, r->str);
    if (r)
        freeReplyObject(r);
    return ok ? 0 : -1;
}

static redisContext *conn_open(struct store_redis *s, char *err)
{
    const struct rm_config_redis *rc = &s->rc;
    char db[16], sha[64];
    redisContext *c =
        rc->unix_path
            ? redisConnectUnixWithTimeout(rc->unix_path, ms_tv(rc->connect_ms))
            : redisConnectWithTimeout(rc->host, rc->port, ms_tv(rc->connect_ms));

    if (c == NULL) {
        snprintf(err, STORE_ERR_MAX, "redis: cannot allocate a connection");
        return NULL;
    }
    if (c->err) {
        snprintf(err, STORE_ERR_MAX, "redis: connect: %s", c->errstr);
        goto fail;
    }
    if (redisSetTimeout(c, ms_tv(rc->command_ms)) != REDIS_OK) {
        snprintf(err, STORE_ERR_MAX, "redis: cannot set the command timeout");
        goto fail;
    }
    if (rc->password) {
        const char *auth[] = {"AUTH", rc->username ? rc->username : rc->password,
                              rc->password};
        if (setup_command(c, rc->username ? 3 : 2, auth, NULL, 0, err) != 0)
            goto fail;
    }
    if (rc->db != 0) {
        snprintf(db, sizeof(db), "%d", rc->db);
        const char *sel[] = {"SELECT", db};
        if (setup_command(c, 2, sel, NULL, 0, err) != 0)
            goto fail;
    }
    /* Load the script on every new connection: cheap, and after a Redis
     * restart or failover the new server has it before the first EVALSHA. */
    const char *load[] = {"SCRIPT", "LOAD", relay_lua};
    if (setup_command(c, 3, load, sha, sizeof(sha), err) != 0)
        goto fail;
    pthread_mutex_lock(&s->lock);
    snprintf(s->sha, sizeof(s->sha), "%.40s", sha);
    pthread_mutex_unlock(&s->lock);
    return c;
fail:
    redisFree(c);
    return NULL;
}

/* Waiting for a free connection counts against the command timeout too: a
 * pool exhausted by a hung Redis must not queue every SMTP session behind it. */
static redisContext *pool_get(struct store_redis *s, char *err)
{
    struct timespec until;
    redisContext *c = NULL;
    int rc = 0;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += (long)s->rc.command_ms * 1000000L;
    until.tv_sec += until.tv_nsec / 1000000000L;
    until.tv_nsec %= 1000000000L;
    pthread_mutex_lock(&s->lock);
    while (s->nidle == 0 && s->nopen >= s->rc.size && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&s->cond, &s->lock, &until);
    if (s->nidle > 0)
        c = s->idle[--s->nidle];
    else if (s->nopen < s->rc.size)
        s->nopen++; /* reserve a slot; connect outside the lock */
    else {
        pthread_mutex_unlock(&s->lock);
        snprintf(err, STORE_ERR_MAX, "redis: all %d connections busy", s->rc.size);
        return NULL;
    }
    pthread_mutex_unlock(&s->lock);
    if (c == NULL && (c = conn_open(s, err)) == NULL) {
        pthread_mutex_lock(&s->lock);
        s->nopen--;
        pthread_cond_signal(&s->cond);
        pthread_mutex_unlock(&s->lock);
    }
    return c;
}

static void pool_put(struct store_redis *s, redisContext *c, int healthy)
{
    pthread_mutex_lock(&s->lock);
    if (healthy && c->err == 0) {
        s->idle[s->nidle++] = c;
    } else {
        s->nopen--;
        redisFree(c);
    }
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

/* Run the script: EVALSHA, and once more with the body if the server lost its
 * script cache (SCRIPT FLUSH, restart, failover). argv[1] is left for the sha. */
static redisReply *run_script(struct store_redis *s, redisContext *c, int argc,
                              const char **argv, size_t *lens)
{
    char sha[41];

    pthread_mutex_lock(&s->lock);
    memcpy(sha, s->sha, sizeof(sha));
    pthread_mutex_unlock(&s->lock);
    argv[0] = "EVALSHA";
    argv[1] = sha;
    lens[0] = 7;
    lens[1] = strlen(sha);
    redisReply *r = redisCommandArgv(c, argc, argv, lens);
    if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
        freeReplyObject(r);
        argv[0] = "EVAL";
        argv[1] = relay_lua;
        lens[0] = 4;
        lens[1] = relay_lua_len;
        r = redisCommandArgv(c, argc, argv, lens);
    }
    return r;
}

static int int_elem(const redisReply *r, size_t i, long long *out)
{
    if (i >= r->elements || r->element[i]->type != REDIS_REPLY_INTEGER)
        return -1;
    *out = r->element[i]->integer;
    return 0;
}

static int str_elem(const redisReply *r, size_t i, char *out, size_t len, int *trunc)
{
    if (i >= r->elements || r->element[i]->type != REDIS_REPLY_STRING)
        return -1;
    const redisReply *e = r->element[i];
    if (e->len >= len) {
        *trunc = 1;
        return 1;
    }
    memcpy(out, e->str, e->len);
    out[e->len] = '\0';
    /* A NUL inside a field would make the text mean something shorter. */
    if (strlen(out) != e->len) {
        *trunc = 1;
        return 1;
    }
    return 0;
}

static int parse_lookup(const redisReply *r, struct store_lookup_res *res)
{
    long long garbage;
    int trunc = 0;

    memset(res, 0, sizeof(*res));
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 || r->elements % 2 != 0)
        return -1;
    if (str_elem(r, 0, res->customer, sizeof(res->customer), &trunc) < 0 ||
        int_elem(r, 1, &garbage) != 0)
        return -1;
    if (trunc) /* an over-long customer name is garbage, not a customer */
        res->customer[0] = '\0';
    res->garbage = garbage != 0 || trunc;
    for (size_t i = 2; i + 1 < r->elements; i += 2) {
        int n = res->nfields;
        if (n == STORE_FIELDS_MAX) {
            res->truncated = 1;
            break;
        }
        int a = str_elem(r, i, res->name[n], STORE_FIELD_LEN, &res->truncated);
        int b = str_elem(r, i + 1, res->value[n], STORE_FIELD_LEN, &res->truncated);
        if (a < 0 || b < 0)
            return -1;
        if (a == 0 && b == 0)
            res->nfields++;
    }
    return 0;
}

static int redis_lookup(struct store *base, const struct store_lookup_req *req,
                        struct store_lookup_res *res, char *err)
{
    struct store_redis *s = (struct store_redis *)base;
    char k_sasl[512], k_lim[1024], k_pre[512];
    int rc = -1;

    snprintf(k_sasl, sizeof(k_sasl), "%ssasl", s->rc.prefix);
    snprintf(k_pre, sizeof(k_pre), "%slimits:", s->rc.prefix);
    int n = snprintf(k_lim, sizeof(k_lim), "%s%s", k_pre, req->fallback);
    if (n < 0 || (size_t)n >= sizeof(k_lim)) {
        snprintf(err, STORE_ERR_MAX, "customer name too long for a key");
        return -1;
    }
    const char *argv[] = {NULL, NULL, "2", k_sasl, k_lim, "lookup", req->login, k_pre};
    size_t lens[8];
    for (int i = 2; i < 8; i++)
        lens[i] = strlen(argv[i]);
    redisContext *c = pool_get(s, err);
    if (c == NULL)
        return -1;
    redisReply *r = run_script(s, c, 8, argv, lens);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        reply_error(c, r, err);
    else if ((rc = parse_lookup(r, res)) != 0)
        snprintf(err, STORE_ERR_MAX, "redis: malformed lookup reply");
    if (r)
        freeReplyObject(r);
    pool_put(s, c, r != NULL);
    return rc;
}

enum { QARGS_MAX = 3 + QUOTA_MAX_COUNTERS + 2 + 3 * QUOTA_MAX_COUNTERS + 1 };

/* EVALSHA sha N key... op nrcpt (window lim_msg lim_rcpt)... [charged_ms] */
static int quota_argv(const struct quota_req *q, const char *op, long long charged_ms,
                      const char **argv, size_t *lens, char num[][24])
{
    int argc = 2, k = 0;

#define PUSH_NUM(v)                                                                      \
    (snprintf(num[k], 24, "%lld", (long long)(v)), lens[argc] = strlen(num[k]),          \
     argv[argc++] = num[k++])
    PUSH_NUM(q->n);
    for (int i = 0; i < q->n; i++) {
        lens[argc] = q->c[i].keylen;
        argv[argc++] = q->c[i].key;
    }
    lens[argc] = strlen(op);
    argv[argc++] = op;
    PUSH_NUM(q->nrcpt);
    for (int i = 0; i < q->n; i++) {
        PUSH_NUM(q->c[i].window_ms);
        PUSH_NUM(q->c[i].lim_msg);
        PUSH_NUM(q->c[i].lim_rcpt);
    }
    if (charged_ms >= 0)
        PUSH_NUM(charged_ms);
#undef PUSH_NUM
    return argc;
}

static int parse_charge(const struct quota_req *q, const redisReply *r,
                        struct quota_result *res)
{
    long long ok, idx, retry;
    char metric[4];
    int trunc = 0;

    memset(res, 0, sizeof(*res));
    if (r->type != REDIS_REPLY_ARRAY || int_elem(r, 0, &ok) != 0)
        return -1;
    if (ok == 1) {
        res->admitted = 1;
        return int_elem(r, 1, &res->charged_ms);
    }
    if (int_elem(r, 1, &idx) != 0 || idx < 1 || idx > q->n ||
        str_elem(r, 2, metric, sizeof(metric), &trunc) != 0 ||
        (metric[0] != 'm' && metric[0] != 'r') || int_elem(r, 3, &retry) != 0)
        return -1;
    res->counter = (int)idx - 1;
    res->metric = metric[0];
    res->retry_ms = retry < 0 ? 0 : retry;
    return 0;
}

static int quota_call(struct store_redis *s, const struct quota_req *q, const char *op,
                      long long charged_ms, struct quota_result *res, char *err)
{
    const char *argv[QARGS_MAX];
    size_t lens[QARGS_MAX];
    char num[QARGS_MAX][24];
    struct quota_result ignored;
    int rc = -1;

    if (q->n == 0) { /* nothing limited: no round trip */
        memset(res ? res : &ignored, 0, sizeof(ignored));
        if (res)
            res->admitted = 1;
        return 0;
    }
    int argc = quota_argv(q, op, charged_ms, argv, lens, num);
    redisContext *c = pool_get(s, err);
    if (c == NULL)
        return -1;
    redisReply *r = run_script(s, c, argc, argv, lens);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        reply_error(c, r, err);
    else if ((rc = parse_charge(q, r, res ? res : &ignored)) != 0)
        snprintf(err, STORE_ERR_MAX, "redis: malformed %s reply", op);
    if (r)
        freeReplyObject(r);
    pool_put(s, c, r != NULL);
    return rc;
}

static int redis_charge(struct store *base, const struct quota_req *q,
                        struct quota_result *res, char *err)
{
    return quota_call((struct store_redis *)base, q, "charge", -1, res, err);
}

static int redis_refund(struct store *base, const struct quota_req *q,
                        long long charged_ms, char *err)
{
    return quota_call((struct store_redis *)base, q, "refund", charged_ms, NULL, err);
}

static void redis_destroy(struct store *base)
{
    struct store_redis *s = (struct store_redis *)base;

    for (int i = 0; i < s->nidle; i++)
        redisFree(s->idle[i]);
    free(s->idle);
    free(s->rc.host);
    free(s->rc.unix_path);
    free(s->rc.username);
    free(s->rc.password);
    free(s->rc.prefix);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    free(s);
}

static const struct store_ops redis_ops = {redis_lookup, redis_charge, redis_refund,
                                           redis_destroy};

struct store *store_redis_new(const struct rm_config *cfg)
{
    struct store_redis *s = calloc(1, sizeof(*s));

    if (s == NULL || (s->idle = calloc((size_t)cfg->pool_size, sizeof(*s->idle))) == NULL)
        msg_fatal("out of memory");
    s->base.ops = &redis_ops;
    atomic_init(&s->base.refs, 1);
    s->rc.host = dup_or_null(cfg->redis_host);
    s->rc.unix_path = dup_or_null(cfg->redis_unix);
    s->rc.username = dup_or_null(cfg->redis_username);
    s->rc.password = dup_or_null(cfg->redis_password);
    s->rc.prefix = dup_or_null(cfg->prefix);
    s->rc.port = cfg->redis_port;
    s->rc.db = cfg->redis_db;
    s->rc.connect_ms = cfg->connect_timeout_ms;
    s->rc.command_ms = cfg->command_timeout_ms;
    s->rc.size = cfg->pool_size;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    return &s->base;
}

int store_redis_matches(const struct store *base, const struct rm_config *cfg)
{
    const struct store_redis *s = (const struct store_redis *)base;
    const struct rm_config_redis *rc = &s->rc;

    return same_str(rc->host, cfg->redis_host) &&
           same_str(rc->unix_path, cfg->redis_unix) &&
           same_str(rc->username, cfg->redis_username) &&
           same_str(rc->password, cfg->redis_password) &&
           same_str(rc->prefix, cfg->prefix) && rc->port == cfg->redis_port &&
           rc->db == cfg->redis_db && rc->connect_ms == cfg->connect_timeout_ms &&
           rc->command_ms == cfg->command_timeout_ms && rc->size == cfg->pool_size;
}
