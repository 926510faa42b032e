/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * localquota - relay.lua, run in process memory; see localquota.h.
 *
 * Why an interpreter here: the fallback has to judge a message exactly as
 * Redis would, at a share of each limit, and the only way to keep that true
 * as the script changes is to have one copy of the quota arithmetic. So the
 * compiled-in relay.lua runs unchanged on Lua 5.1, the version Redis embeds,
 * with a `redis` table whose commands act on this file's table of counter
 * hashes instead of a server. It offers the commands the charge and the
 * refund use (TIME, HMGET, HSET, PEXPIREAT, EXISTS); any other command is an
 * error, which fails the call as a store error would, never a silent no-op.
 *
 * The state is one lua_State behind the table's mutex: the fallback runs
 * only while Redis is unusable, and one call costs about 10 microseconds for
 * a message's four counters, less than the Redis round trip it stands in
 * for; the lock caps the fallback near 100 000 messages a second, far above
 * what one front-end takes, and saves a state per thread and its memory.
 */
#include "localquota.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "quotaargs.h"
#include "relay_lua.h"
#include "xalloc.h"

/* The fields of a counter hash (relay.lua's header). */
enum { F_E, F_M, F_R, F_PM, F_PR, NFIELDS };
static const char *const field_name[NFIELDS] = {"e", "m", "r", "pm", "pr"};

struct localquota_entry {
    struct localquota_entry *next;
    long long expire_ms; /* INT64_MAX until the script sets it */
    double v[NFIELDS];   /* Lua's numbers: exact for counts below 2^53 */
    unsigned have;       /* bit f: field f is set */
    size_t keylen;
    char key[];
};

struct localquota {
    pthread_mutex_t lock;
    struct localquota_entry **bucket;
    size_t nbuckets, count, max;
    lua_State *L;
    int chunk;        /* registry reference of the compiled relay.lua */
    long long now_ms; /* what TIME answers during a call */
    int failing;      /* the last call failed: logged once until one works */
};

static size_t hash(const char *s, size_t len)
{
    size_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

/* ---- the table of counter hashes --------------------------------------- */

/* Drop every expired entry. O(table) but only run when the table is full, so
 * a full table of mostly dead entries still takes new subjects. */
static void sweep(struct localquota *lq, long long now_ms)
{
    for (size_t i = 0; i < lq->nbuckets; i++)
        for (struct localquota_entry **pp = &lq->bucket[i]; *pp;) {
            struct localquota_entry *e = *pp;
            if (e->expire_ms > now_ms) {
                pp = &e->next;
                continue;
            }
            *pp = e->next;
            free(e);
            lq->count--;
        }
}

/* Find the live entry for key, dropping expired ones met on the way; with
 * create, add it when absent (NULL when the table is full). */
static struct localquota_entry *find(struct localquota *lq, const char *key, size_t len,
                                     long long now_ms, int create)
{
    struct localquota_entry **head = &lq->bucket[hash(key, len) % lq->nbuckets];
    struct localquota_entry **pp = head;

    while (*pp) {
        struct localquota_entry *e = *pp;
        if (e->expire_ms <= now_ms) {
            *pp = e->next;
            free(e);
            lq->count--;
            continue;
        }
        if (e->keylen == len && memcmp(e->key, key, len) == 0)
            return e;
        pp = &e->next;
    }
    if (create && lq->count >= lq->max)
        sweep(lq, now_ms);
    if (!create || lq->count >= lq->max)
        return NULL;
    struct localquota_entry *e = xcalloc(1, sizeof(*e) + len);
    memcpy(e->key, key, len);
    e->keylen = len;
    e->expire_ms = INT64_MAX;
    e->next = *head;
    *head = e;
    lq->count++;
    return e;
}

/* Room for every counter of q: checked before the script runs, so that a
 * full table refuses the whole message rather than charge part of it. */
static int room_for(struct localquota *lq, const struct quota_req *q, long long now_ms)
{
    size_t missing = 0;

    for (int i = 0; i < q->n; i++)
        missing += find(lq, q->c[i].key, q->c[i].keylen, now_ms, 0) == NULL;
    if (lq->count + missing > lq->max)
        sweep(lq, now_ms);
    return lq->count + missing <= lq->max;
}

/* ---- the redis table the script sees ------------------------------------ */

static struct localquota *self(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

/* The entry named by argument 2; with create, a full table is an error. */
static struct localquota_entry *key_arg(lua_State *L, int create)
{
    struct localquota *lq = self(L);
    size_t len;
    const char *key = luaL_checklstring(L, 2, &len);
    struct localquota_entry *e = find(lq, key, len, lq->now_ms, create);

    if (e == NULL && create)
        luaL_error(L, "relaymilter: local table full");
    return e;
}

static int field_arg(lua_State *L, int idx)
{
    const char *f = luaL_checkstring(L, idx);

    for (int i = 0; i < NFIELDS; i++)
        if (strcmp(f, field_name[i]) == 0)
            return i;
    return luaL_error(L, "relaymilter: no field %s in a local counter", f);
}

static int cmd_time(lua_State *L)
{
    long long now = self(L)->now_ms;
    char buf[24];

    lua_createtable(L, 2, 0);
    snprintf(buf, sizeof(buf), "%lld", now / 1000);
    lua_pushstring(L, buf);
    lua_rawseti(L, -2, 1);
    snprintf(buf, sizeof(buf), "%lld", now % 1000 * 1000);
    lua_pushstring(L, buf);
    lua_rawseti(L, -2, 2);
    return 1;
}

/* As Redis hands them to Lua: a value as text (Redis keeps the text of a
 * number a script wrote, "%.17g"), a missing field as false (a nil bulk
 * reply), so the script sees here what it sees in Redis. */
static int cmd_hmget(lua_State *L)
{
    struct localquota_entry *e = key_arg(L, 0);
    int n = lua_gettop(L) - 2;
    char buf[32];

    lua_createtable(L, n, 0);
    for (int i = 1; i <= n; i++) {
        int f = field_arg(L, i + 2);
        if (e != NULL && (e->have & 1u << f)) {
            snprintf(buf, sizeof(buf), "%.17g", e->v[f]);
            lua_pushstring(L, buf);
        } else {
            lua_pushboolean(L, 0);
        }
        lua_rawseti(L, -2, i);
    }
    return 1;
}

/* Every field and value is checked before the entry is made or changed. */
static int cmd_hset(lua_State *L)
{
    int top = lua_gettop(L), added = 0;

    if (top < 4 || top % 2 != 0)
        return luaL_error(L, "relaymilter: wrong number of arguments for HSET");
    for (int i = 3; i <= top; i += 2) {
        field_arg(L, i);
        luaL_checknumber(L, i + 1);
    }
    struct localquota_entry *e = key_arg(L, 1);
    for (int i = 3; i <= top; i += 2) {
        int f = field_arg(L, i);
        added += !(e->have & 1u << f);
        e->have |= 1u << f;
        e->v[f] = lua_tonumber(L, i + 1);
    }
    lua_pushinteger(L, added);
    return 1;
}

static int cmd_pexpireat(lua_State *L)
{
    struct localquota_entry *e = key_arg(L, 0);
    double at = luaL_checknumber(L, 3);

    if (e != NULL)
        e->expire_ms = (long long)at;
    lua_pushinteger(L, e != NULL);
    return 1;
}

static int cmd_exists(lua_State *L)
{
    lua_pushinteger(L, key_arg(L, 0) != NULL);
    return 1;
}

static const struct {
    const char *name;
    lua_CFunction fn;
} commands[] = {{"TIME", cmd_time},
                {"HMGET", cmd_hmget},
                {"HSET", cmd_hset},
                {"PEXPIREAT", cmd_pexpireat},
                {"EXISTS", cmd_exists}};

/* redis.call: upvalue 1 is the table; the command runs in this frame, so
 * its self() sees the same upvalue. */
static int redis_call(lua_State *L)
{
    const char *cmd = luaL_checkstring(L, 1);

    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcasecmp(cmd, commands[i].name) == 0)
            return commands[i].fn(L);
    return luaL_error(L, "relaymilter: the local fallback has no command %s", cmd);
}

/* An error as a table { err = text }, as Redis gives it to a script. */
static int error_table(lua_State *L, int msg)
{
    lua_createtable(L, 0, 1);
    lua_pushvalue(L, msg);
    lua_setfield(L, -2, "err");
    return 1;
}

/* redis.pcall: upvalue 1 is redis.call. */
static int redis_pcall(lua_State *L)
{
    int n = lua_gettop(L);

    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    if (lua_pcall(L, n, 1, 0) == 0)
        return 1;
    return error_table(L, lua_gettop(L));
}

static int redis_error_reply(lua_State *L)
{
    luaL_checkstring(L, 1);
    return error_table(L, 1);
}

/* Lua's memory through xalloc, so running out is handled in one place. */
static void *lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    (void)ud;
    (void)osize;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    return xrealloc(ptr, nsize);
}

static void open_lib(lua_State *L, lua_CFunction open)
{
    lua_pushcfunction(L, open);
    lua_call(L, 0, 0);
}

/* A state with the libraries Redis gives scripts that relay.lua uses, the
 * redis table, and relay.lua compiled. Redis reads the "#!lua" first line
 * itself; here it becomes a comment, so line numbers in errors match. */
static void script_init(struct localquota *lq)
{
    lua_State *L = lq->L = lua_newstate(lua_alloc, NULL);
    char *text = xmalloc(relay_lua_len);

    open_lib(L, luaopen_base);
    open_lib(L, luaopen_string);
    open_lib(L, luaopen_math);
    lua_createtable(L, 0, 3);
    lua_pushlightuserdata(L, lq);
    lua_pushcclosure(L, redis_call, 1);
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, redis_pcall, 1);
    lua_setfield(L, -3, "pcall");
    lua_setfield(L, -2, "call");
    lua_pushcfunction(L, redis_error_reply);
    lua_setfield(L, -2, "error_reply");
    lua_setglobal(L, "redis");
    memcpy(text, relay_lua, relay_lua_len);
    if (relay_lua_len >= 2 && text[0] == '#' && text[1] == '!')
        text[0] = text[1] = '-';
    if (luaL_loadbuffer(L, text, relay_lua_len, "=relay.lua") != 0)
        msg_panic("localquota: relay.lua: %s", lua_tostring(L, -1));
    free(text);
    lq->chunk = luaL_ref(L, LUA_REGISTRYINDEX);
}

/* ---- running the script --------------------------------------------------- */

static void set_array(lua_State *L, const char *name, const struct quotaargs *a, int from,
                      int to)
{
    lua_createtable(L, to - from, 0);
    for (int i = from; i < to; i++) {
        lua_pushlstring(L, a->argv[i], a->lens[i]);
        lua_rawseti(L, -2, i - from + 1);
    }
    lua_setglobal(L, name);
}

/* A failing script is logged when it starts failing and when it works again,
 * not for every message: an outage must not multiply log lines. err: the
 * failure, or NULL for a call that worked. 0, or -1 for a failure. */
static int note_state(struct localquota *lq, const char *err)
{
    if (err != NULL && !lq->failing)
        msg_warn("local fallback: relay.lua failed: %s (logged once until it works)",
                 err);
    else if (err == NULL && lq->failing)
        msg_info("local fallback: relay.lua works again");
    lq->failing = err != NULL;
    return err != NULL ? -1 : 0;
}

/* relay.lua with a's nkeys KEYS and its ARGV at now_ms: its reply on the stack, 0; or
 * -1, logged (a reply that is an error counts as one). */
static int run(struct localquota *lq, const struct quotaargs *a, int nkeys,
               long long now_ms)
{
    lua_State *L = lq->L;
    int keys = QUOTAARGS_FIRST + 1;

    lq->now_ms = now_ms;
    set_array(L, "KEYS", a, keys, keys + nkeys);
    set_array(L, "ARGV", a, keys + nkeys, a->argc);
    lua_rawgeti(L, LUA_REGISTRYINDEX, lq->chunk);
    if (lua_pcall(L, 0, 1, 0) == 0) {
        if (!lua_istable(L, -1)) {
            lua_pop(L, 1);
            lua_pushliteral(L, "a reply that is not a table");
        } else {
            lua_getfield(L, -1, "err");
            if (!lua_isstring(L, -1)) {
                lua_pop(L, 1);
                return note_state(lq, NULL); /* the reply stays */
            }
            lua_replace(L, -2); /* the error text in place of the reply */
        }
    }
    note_state(lq, lua_tostring(L, -1)); /* the error text, alone on the stack */
    lua_pop(L, 1);
    return -1;
}

static double reply_at(lua_State *L, int i)
{
    lua_rawgeti(L, -1, i);
    double v = lua_tonumber(L, -1);
    lua_pop(L, 1);
    return v;
}

/* The charge reply on the stack: { 1, now } or { 0, i, metric, retry }. */
static int parse_charge(lua_State *L, const struct quota_req *q, struct quota_result *res)
{
    if (reply_at(L, 1) == 1) {
        res->admitted = 1;
        res->charged_ms = (long long)reply_at(L, 2);
        return 0;
    }
    int i = (int)reply_at(L, 2) - 1;
    lua_rawgeti(L, -1, 3);
    const char *metric = lua_tostring(L, -1);
    char m = 0;
    if (metric != NULL)
        m = metric[0];
    lua_pop(L, 1);
    if (i < 0 || i >= q->n || (m != 'm' && m != 'r'))
        return -1;
    res->counter = i;
    res->metric = m;
    res->local_limit = m == 'm' ? q->c[i].lim_msg : q->c[i].lim_rcpt;
    res->retry_ms = quota_retry_bound(q, i, (long long)reply_at(L, 4));
    return 0;
}

/* ---- interface ------------------------------------------------------------ */

struct localquota *localquota_new(size_t max_entries)
{
    struct localquota *lq = xcalloc(1, sizeof(*lq));

    lq->max = max_entries;
    lq->nbuckets = max_entries / 2 + 1;
    lq->bucket = xcalloc(lq->nbuckets, sizeof(*lq->bucket));
    pthread_mutex_init(&lq->lock, NULL);
    script_init(lq);
    return lq;
}

void localquota_free(struct localquota *lq)
{
    for (size_t i = 0; i < lq->nbuckets; i++)
        for (struct localquota_entry *e = lq->bucket[i], *n; e; e = n) {
            n = e->next;
            free(e);
        }
    lua_close(lq->L);
    free(lq->bucket);
    pthread_mutex_destroy(&lq->lock);
    free(lq);
}

long long localquota_share_limit(long long limit, double share)
{
    if (limit <= 0)
        return limit; /* unlimited stays unlimited, 0 stays 0 */
    long long v = (long long)floor((double)limit * share);
    return v < 1 ? 1 : v; /* a customer allowed anything keeps at least one */
}

int localquota_charge(struct localquota *lq, const struct quota_req *q, double share,
                      long long now_ms, struct quota_result *res)
{
    struct quota_req local = *q;
    struct quotaargs a;
    int rc = -2;

    for (int i = 0; i < local.n; i++) {
        local.c[i].lim_msg = localquota_share_limit(q->c[i].lim_msg, share);
        local.c[i].lim_rcpt = localquota_share_limit(q->c[i].lim_rcpt, share);
    }
    local.event = NULL; /* no events stream here: the caller logs the refusal */
    quotaargs_build(&a, &local, "charge", -1, NULL, 0);
    memset(res, 0, sizeof(*res));
    pthread_mutex_lock(&lq->lock);
    if (!room_for(lq, &local, now_ms))
        rc = -1;
    else if (run(lq, &a, local.n, now_ms) == 0) {
        rc = parse_charge(lq->L, &local, res) == 0 ? 0 : -2;
        lua_pop(lq->L, 1);
    }
    pthread_mutex_unlock(&lq->lock);
    return rc;
}

void localquota_refund(struct localquota *lq, const struct quota_req *q,
                       long long charged_ms, long long now_ms)
{
    struct quotaargs a;

    quotaargs_build(&a, q, "refund", charged_ms, NULL, 0);
    pthread_mutex_lock(&lq->lock);
    if (run(lq, &a, q->n, now_ms) == 0)
        lua_pop(lq->L, 1);
    pthread_mutex_unlock(&lq->lock);
}

size_t localquota_count(struct localquota *lq)
{
    pthread_mutex_lock(&lq->lock);
    size_t n = lq->count;
    pthread_mutex_unlock(&lq->lock);
    return n;
}
