/*
 * redis_pool - pooled hiredis connections; see redis_pool.h.
 */
#include "redis_pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "relay_lua.h"
#include "store.h"

struct rpool {
    char *host, *unix_path, *username, *password;
    int port, db, connect_ms, command_ms, size;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    redisContext **idle; /* stack of open, healthy connections */
    int nidle;
    int nopen; /* idle + lent out + being opened */
    char sha[41];
};

static char *dup_or_null(const char *s)
{
    char *d = s ? strdup(s) : NULL;
    if (s && !d)
        msg_fatal("out of memory");
    return d;
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

void rpool_error(const redisContext *c, const redisReply *r, char *err)
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
        lens[i] = argv[i] == relay_lua ? relay_lua_len : strlen(argv[i]);
    redisReply *r = redisCommandArgv(c, argc, argv, lens);
    int ok = r && (r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_STRING);
    if (!ok)
        rpool_error(c, r, err);
    else if (out)
        snprintf(out, outlen, "%.*s", (int)r->len, r->str);
    if (r)
        freeReplyObject(r);
    return ok ? 0 : -1;
}

static redisContext *conn_open(struct rpool *p, char *err)
{
    char db[16], sha[64];
    redisContext *c =
        p->unix_path ? redisConnectUnixWithTimeout(p->unix_path, ms_tv(p->connect_ms))
                     : redisConnectWithTimeout(p->host, p->port, ms_tv(p->connect_ms));

    if (c == NULL) {
        snprintf(err, STORE_ERR_MAX, "redis: cannot allocate a connection");
        return NULL;
    }
    if (c->err) {
        snprintf(err, STORE_ERR_MAX, "redis: connect: %s", c->errstr);
        goto fail;
    }
    if (redisSetTimeout(c, ms_tv(p->command_ms)) != REDIS_OK) {
        snprintf(err, STORE_ERR_MAX, "redis: cannot set the command timeout");
        goto fail;
    }
    if (p->password) {
        const char *auth[] = {"AUTH", p->username ? p->username : p->password,
                              p->password};
        if (setup_command(c, p->username ? 3 : 2, auth, NULL, 0, err) != 0)
            goto fail;
    }
    if (p->db != 0) {
        snprintf(db, sizeof(db), "%d", p->db);
        const char *sel[] = {"SELECT", db};
        if (setup_command(c, 2, sel, NULL, 0, err) != 0)
            goto fail;
    }
    /* Load the script on every new connection: cheap, and after a Redis
     * restart or failover the new server has it before the first EVALSHA. */
    const char *load[] = {"SCRIPT", "LOAD", relay_lua};
    if (setup_command(c, 3, load, sha, sizeof(sha), err) != 0)
        goto fail;
    pthread_mutex_lock(&p->lock);
    snprintf(p->sha, sizeof(p->sha), "%.40s", sha);
    pthread_mutex_unlock(&p->lock);
    return c;
fail:
    redisFree(c);
    return NULL;
}

/* Waiting for a free connection counts against the command timeout too: a
 * pool exhausted by a hung Redis must not queue every SMTP session behind it. */
redisContext *rpool_get(struct rpool *p, char *err)
{
    struct timespec until;
    redisContext *c = NULL;
    int rc = 0;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += (long)p->command_ms * 1000000L;
    until.tv_sec += until.tv_nsec / 1000000000L;
    until.tv_nsec %= 1000000000L;
    pthread_mutex_lock(&p->lock);
    while (p->nidle == 0 && p->nopen >= p->size && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&p->cond, &p->lock, &until);
    if (p->nidle > 0) {
        c = p->idle[--p->nidle];
    } else if (p->nopen < p->size) {
        p->nopen++; /* reserve a slot; connect outside the lock */
    } else {
        pthread_mutex_unlock(&p->lock);
        snprintf(err, STORE_ERR_MAX, "redis: all %d connections busy", p->size);
        return NULL;
    }
    pthread_mutex_unlock(&p->lock);
    if (c == NULL && (c = conn_open(p, err)) == NULL) {
        pthread_mutex_lock(&p->lock);
        p->nopen--;
        pthread_cond_signal(&p->cond);
        pthread_mutex_unlock(&p->lock);
    }
    return c;
}

void rpool_put(struct rpool *p, redisContext *c, int healthy)
{
    pthread_mutex_lock(&p->lock);
    if (healthy && c->err == 0) {
        p->idle[p->nidle++] = c;
    } else {
        p->nopen--;
        redisFree(c);
    }
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

redisReply *rpool_script(struct rpool *p, redisContext *c, int argc, const char **argv,
                         size_t *lens)
{
    char sha[41];

    pthread_mutex_lock(&p->lock);
    memcpy(sha, p->sha, sizeof(sha));
    pthread_mutex_unlock(&p->lock);
    argv[0] = "EVALSHA";
    argv[1] = sha;
    lens[0] = 7;
    lens[1] = strlen(sha);
    redisReply *r = redisCommandArgv(c, argc, argv, lens);
    if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
        /* SCRIPT FLUSH, or a server that lost its cache: EVAL loads it again. */
        freeReplyObject(r);
        argv[0] = "EVAL";
        argv[1] = relay_lua;
        lens[0] = 4;
        lens[1] = relay_lua_len;
        r = redisCommandArgv(c, argc, argv, lens);
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

struct rpool *rpool_new(const struct rm_config *cfg)
{
    struct rpool *p = calloc(1, sizeof(*p));

    if (p == NULL || (p->idle = calloc((size_t)cfg->pool_size, sizeof(*p->idle))) == NULL)
        msg_fatal("out of memory");
    p->host = dup_or_null(cfg->redis_host);
    p->unix_path = dup_or_null(cfg->redis_unix);
    p->username = dup_or_null(cfg->redis_username);
    p->password = dup_or_null(cfg->redis_password);
    p->port = cfg->redis_port;
    p->db = cfg->redis_db;
    p->connect_ms = cfg->connect_timeout_ms;
    p->command_ms = cfg->command_timeout_ms;
    p->size = cfg->pool_size;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    return p;
}

void rpool_free(struct rpool *p)
{
    for (int i = 0; i < p->nidle; i++)
        redisFree(p->idle[i]);
    free(p->idle);
    free(p->host);
    free(p->unix_path);
    free(p->username);
    free(p->password);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
    free(p);
}

int rpool_matches(const struct rpool *p, const struct rm_config *cfg)
{
    return same_str(p->host, cfg->redis_host) &&
           same_str(p->unix_path, cfg->redis_unix) &&
           same_str(p->username, cfg->redis_username) &&
           same_str(p->password, cfg->redis_password) && p->port == cfg->redis_port &&
           p->db == cfg->redis_db && p->connect_ms == cfg->connect_timeout_ms &&
           p->command_ms == cfg->command_timeout_ms && p->size == cfg->pool_size;
}
