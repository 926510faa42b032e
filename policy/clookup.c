/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * clookup - the MAIL FROM lookup on a Redis Cluster; see clookup.h.
 */
#include "clookup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blockset.h"
#include "domain.h"
#include "identity.h"
#include "keys.h"
#include "xalloc.h"

enum {
    KEY_BUF = 1024,
    /* a name of DOM_MAX octets has at most this many labels */
    MAX_LABELS = DOM_MAX / 2 + 1,
    /* HGET sasl, HGETALL limits, SCARD and SISMEMBER per suffix, the set */
    MAX_CMDS = 2 + 2 * MAX_LABELS + 1
};

/* One lookup: the keys, the commands of the round under way, and where in
 * it each read is. */
struct job {
    struct route *r;
    struct lastread *l;
    const struct clookup_in *in;
    char k_sasl[KEY_BUF], k_lim[KEY_BUF], k_blk[KEY_BUF], cap[24];
    char *k_dom[MAX_LABELS];
    const char *suffix[MAX_LABELS];
    int nlabels;
    char guess[STORE_NAME_MAX]; /* whose limits and membership round 1 reads */
    struct route_cmd cmd[MAX_CMDS];
    size_t n;
    int i_sasl, i_lim, i_dom, i_blk; /* -1: not in this round */
    int stale;
};

static int add(struct job *j, const char *verb, const char *key, const char *arg)
{
    struct route_cmd *c = &j->cmd[j->n];

    c->argc = arg ? 3 : 2;
    c->argv[0] = verb;
    c->argv[1] = key;
    c->argv[2] = arg;
    for (int i = 0; i < c->argc; i++)
        c->lens[i] = strlen(c->argv[i]);
    return (int)j->n++;
}

/* The answer to command i: fresh (and kept in lastread), else the one last
 * read when its node did not answer (counted), else NULL. */
static const redisReply *answer(struct job *j, int i)
{
    struct route_cmd *c = &j->cmd[i];

    if (i < 0)
        return NULL;
    if (c->reply != NULL)
        return c->reply;
    if ((c->reply = lastread_get(j->l, c)) != NULL)
        j->stale++;
    return c->reply;
}

static void round_free(struct job *j)
{
    for (size_t i = 0; i < j->n; i++)
        if (j->cmd[i].reply)
            freeReplyObject(j->cmd[i].reply);
    j->n = 0;
    j->i_sasl = j->i_lim = j->i_dom = j->i_blk = -1;
}

/* Send the round; keep every fresh answer but the blocked set's for a node
 * that fails later. */
static void round_send(struct job *j, char *err)
{
    route_batch(j->r, j->cmd, j->n, err);
    for (size_t i = 0; i < j->n; i++)
        if (j->cmd[i].reply != NULL && (int)i != j->i_blk)
            lastread_put(j->l, &j->cmd[i], j->cmd[i].reply);
}

/* The limits hash of who, and who's membership of the protected suffixes:
 * in round 1 (level ALL_LEVELS) with each suffix's SCARD, in round 2 of the
 * suffix that decides only (or of none, NO_LEVEL). */
enum { ALL_LEVELS = -1, NO_LEVEL = -2 };

static int add_reads(struct job *j, const char *who, int level)
{
    if (keys_limits(j->k_lim, sizeof(j->k_lim), j->in->prefix, who) < 0)
        return -1;
    j->i_lim = add(j, "HGETALL", j->k_lim, NULL);
    if (level >= 0)
        add(j, "SISMEMBER", j->k_dom[level], who);
    for (int k = 0; level == ALL_LEVELS && k < j->nlabels; k++) {
        int at = add(j, "SCARD", j->k_dom[k], NULL);
        add(j, "SISMEMBER", j->k_dom[k], who);
        if (k == 0)
            j->i_dom = at;
    }
    return 0;
}

/* "REASON (no copy of KEY to go on with)": why a read has no answer. */
static void no_copy(char *err, const char *key)
{
    size_t len = strlen(err);

    snprintf(err + len, STORE_ERR_MAX - len, " (no copy of %.100s to go on with)", key);
}

/* A customer name the sasl hash may give: none of the forbidden characters,
 * no reserved prefix (as lookup.lua's name_ok; identity.h). */
static int name_ok(const char *c)
{
    if (c[strcspn(c, identity_forbidden)] != '\0')
        return 0;
    for (int i = 0; i < IDENTITY_NRESERVED; i++)
        if (strncmp(c, identity_reserved[i], strlen(identity_reserved[i])) == 0)
            return 0;
    return 1;
}

/* The sasl hash's answer into res; who becomes the customer whose limits
 * apply. -1 when neither an answer nor a copy of one is there. */
static int take_sasl(struct job *j, struct store_lookup_res *res, char *who, char *err)
{
    snprintf(who, STORE_NAME_MAX, "%s", j->in->req->fallback);
    if (j->in->req->login[0] == '\0')
        return 0;
    const redisReply *c = answer(j, j->i_sasl);
    if (c == NULL) {
        no_copy(err, j->k_sasl);
        return -1;
    }
    if (c->type == REDIS_REPLY_ERROR) {
        res->garbage = 1;
    } else if (c->type == REDIS_REPLY_STRING && c->len > 0) {
        if (c->len >= STORE_NAME_MAX || memchr(c->str, '\0', c->len) != NULL) {
            res->garbage = 1; /* an over-long name is garbage, not a customer */
            return 0;
        }
        snprintf(res->customer, sizeof(res->customer), "%s", c->str);
        res->bad_mapping = !name_ok(c->str);
        if (!res->bad_mapping)
            snprintf(who, STORE_NAME_MAX, "%s", c->str);
    }
    return 0;
}

/* The most specific suffix with owners decides (lookup.lua's owners()); a
 * set of the wrong type counts as no owners. Returns its index, -1 for
 * none, -2 when a suffix that could decide has no answer. */
static int find_level(struct job *j)
{
    for (int k = 0; k < j->nlabels; k++) {
        const redisReply *n = answer(j, j->i_dom + 2 * k);
        if (n == NULL)
            return -2;
        if (n->type == REDIS_REPLY_INTEGER && n->integer > 0)
            return k;
    }
    return -1;
}

static int take_limits(struct job *j, struct store_lookup_res *res, int level,
                       int member_at, char *err)
{
    const redisReply *f = answer(j, j->i_lim);
    const redisReply *m = level >= 0 ? answer(j, member_at) : NULL;

    if (f == NULL || (level >= 0 && m == NULL)) {
        no_copy(err, f == NULL ? j->k_lim : j->k_dom[level]);
        return -1;
    }
    if (f->type == REDIS_REPLY_ERROR)
        res->garbage = 1;
    else if (clookup_fields(f, res) != 0) {
        snprintf(err, STORE_ERR_MAX, "redis: malformed HGETALL reply");
        return -1;
    }
    if (level >= 0) {
        snprintf(res->dom_level, sizeof(res->dom_level), "%s", j->suffix[level]);
        res->dom_member = m->type == REDIS_REPLY_INTEGER && m->integer != 0;
    }
    return 0;
}

/* The blocked-domain set read now: handed over, or garbage (the wrong type,
 * more members than kept) that leaves the copy as it is. */
static void take_blocked(struct job *j, struct store_lookup_res *res,
                         struct clookup_out *out)
{
    redisReply *b = j->i_blk >= 0 ? j->cmd[j->i_blk].reply : NULL;

    if (j->i_blk < 0)
        return;
    if (b == NULL) {
        out->blocked_missed = 1;
        return;
    }
    if (b->type != REDIS_REPLY_ARRAY || b->elements > BLOCKSET_MAX_MEMBERS) {
        res->garbage = 1;
        return;
    }
    out->blocked = b;
    j->cmd[j->i_blk].reply = NULL;
}

/* Round 1: everything, with the guessed customer's limits and membership. */
static int round_one(struct job *j)
{
    const struct store_lookup_req *req = j->in->req;

    if (req->login[0]) {
        j->i_sasl = add(j, "HGET", j->k_sasl, req->login);
        redisReply *last = lastread_get(j->l, &j->cmd[j->i_sasl]);
        if (last && last->type == REDIS_REPLY_STRING && last->len > 0 &&
            last->len < STORE_NAME_MAX && !memchr(last->str, '\0', last->len) &&
            name_ok(last->str))
            snprintf(j->guess, sizeof(j->guess), "%s", last->str);
        if (last)
            freeReplyObject(last);
    }
    if (add_reads(j, j->guess, ALL_LEVELS) != 0)
        return -1;
    if (j->in->want_blocked)
        j->i_blk = add(j, "SRANDMEMBER", j->k_blk, j->cap);
    return 0;
}

static int split_domain(struct job *j)
{
    const char *d = j->in->req->sender_domain ? j->in->req->sender_domain : "";
    char pre[KEY_BUF];

    if (keys_domain(pre, sizeof(pre), j->in->prefix, NULL) < 0)
        return -1;
    for (; *d && j->nlabels < MAX_LABELS; d = strchr(d, '.') ? strchr(d, '.') + 1 : "") {
        size_t len = strlen(pre) + strlen(d) + 1;
        j->suffix[j->nlabels] = d;
        j->k_dom[j->nlabels] = xmalloc(len);
        snprintf(j->k_dom[j->nlabels++], len, "%s%s", pre, d);
    }
    return 0;
}

static int run(struct job *j, struct store_lookup_res *res, struct clookup_out *out,
               char *err)
{
    char who[STORE_NAME_MAX];

    if (round_one(j) != 0) {
        snprintf(err, STORE_ERR_MAX, "customer name too long for a key");
        return -1;
    }
    round_send(j, err);
    take_blocked(j, res, out);
    if (take_sasl(j, res, who, err) != 0)
        return -1;
    int level = find_level(j), member_at = level >= 0 ? j->i_dom + 2 * level + 1 : -1;
    if (level == -2) {
        no_copy(err, "a domain set");
        return -1;
    }
    if (strcmp(who, j->guess) != 0) { /* the guess was wrong: who's own reads */
        round_free(j);
        out->rounds++;
        if (add_reads(j, who, level >= 0 ? level : NO_LEVEL) != 0) {
            snprintf(err, STORE_ERR_MAX, "customer name too long for a key");
            return -1;
        }
        member_at = level >= 0 ? j->i_lim + 1 : -1;
        round_send(j, err);
    }
    return take_limits(j, res, level, member_at, err);
}

int clookup_run(struct route *r, struct lastread *l, const struct clookup_in *in,
                struct store_lookup_res *res, struct clookup_out *out, char *err)
{
    struct job *j = xcalloc(1, sizeof(*j));
    int rc = -1;

    memset(res, 0, sizeof(*res));
    memset(out, 0, sizeof(*out));
    out->rounds = 1;
    j->r = r;
    j->l = l;
    j->in = in;
    j->i_sasl = j->i_lim = j->i_dom = j->i_blk = -1;
    snprintf(j->guess, sizeof(j->guess), "%s", in->req->fallback);
    snprintf(j->cap, sizeof(j->cap), "%d", BLOCKSET_MAX_MEMBERS + 1);
    err[0] = '\0';
    if (keys_sasl(j->k_sasl, sizeof(j->k_sasl), in->prefix) < 0 ||
        keys_blocked(j->k_blk, sizeof(j->k_blk), in->prefix) < 0 || split_domain(j) != 0)
        snprintf(err, STORE_ERR_MAX, "prefix too long for a key");
    else
        rc = run(j, res, out, err);
    out->stale = j->stale;
    round_free(j);
    for (int k = 0; k < j->nlabels; k++)
        free(j->k_dom[k]);
    free(j);
    if (rc != 0) {
        if (out->blocked)
            freeReplyObject(out->blocked);
        out->blocked = NULL;
    }
    return rc;
}

int clookup_fields(const redisReply *f, struct store_lookup_res *res)
{
    if (f->type != REDIS_REPLY_ARRAY || f->elements % 2 != 0)
        return -1;
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        int n = res->nfields;
        if (n == STORE_FIELDS_MAX) {
            res->truncated = 1;
            break;
        }
        int a = rpool_str(f, i, res->name[n], STORE_FIELD_LEN, &res->truncated);
        int b = rpool_str(f, i + 1, res->value[n], STORE_FIELD_LEN, &res->truncated);
        if (a < 0 || b < 0)
            return -1;
        if (a == 0 && b == 0)
            res->nfields++;
    }
    return 0;
}
