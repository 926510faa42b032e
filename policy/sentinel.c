/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * sentinel - primary discovery through Redis Sentinel; see sentinel.h.
 */
#include "sentinel.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

/* Neither the config nor a sentinel's answer is trusted to be a number: "6379x", "", "-1"
 * and "99999999999" are all refused rather than read as some other port. */
static int parse_port(const char *text, int *port)
{
    char *end;
    long p = strtol(text, &end, 10);

    if (end == text || *end != '\0' || p < 1 || p > 65535)
        return -1;
    *port = (int)p;
    return 0;
}

int sentinel_split(const char *spec, char *host, size_t hostlen, int *port)
{
    const char *colon = strrchr(spec, ':');
    const char *h = spec;
    size_t len;

    if (colon == NULL || colon == spec)
        return -1;
    len = (size_t)(colon - spec);
    if (spec[0] == '[') { /* [2001:db8::1]:26379 */
        if (colon[-1] != ']')
            return -1;
        h = spec + 1;
        len -= 2;
        if (len == 0) /* "[]:PORT"; also keeps len - 1 below from wrapping */
            return -1;
    }
    /* An IPv6 address needs its brackets; no blanks anywhere. */
    if ((spec[0] != '[' && memchr(spec, ':', len) != NULL) ||
        (spec[0] == '[' && memchr(spec + 1, '[', len - 1) != NULL) ||
        strpbrk(spec, " \t"))
        return -1;
    if (parse_port(colon + 1, port) != 0 || len == 0 || len >= hostlen)
        return -1;
    memcpy(host, h, len);
    host[len] = '\0';
    return 0;
}

static redisReply *command(redisContext *c, int argc, const char **argv)
{
    size_t lens[4];
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    return redisCommandArgv(c, argc, argv, lens);
}

static int ask(redisContext *c, const struct sentinel_opts *o, char *host, size_t hostlen,
               int *port, char *err)
{
    redisReply *r;

    if (o->password) {
        const char *auth[] = {"AUTH", o->username ? o->username : o->password,
                              o->password};
        r = command(c, o->username ? 3 : 2, auth);
        int ok = r && r->type == REDIS_REPLY_STATUS;
        if (r)
            freeReplyObject(r);
        if (!ok) {
            snprintf(err, STORE_ERR_MAX, "sentinel: AUTH failed");
            return -1;
        }
    }
    const char *q[] = {"SENTINEL", "get-master-addr-by-name", o->master};
    r = command(c, 3, q);
    int rc = -1;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_STRING &&
        r->element[1]->type == REDIS_REPLY_STRING && r->element[0]->len < hostlen) {
        snprintf(host, hostlen, "%s", r->element[0]->str);
        rc = parse_port(r->element[1]->str, port);
    }
    if (rc != 0)
        snprintf(err, STORE_ERR_MAX, "sentinel: no primary known for \"%s\"", o->master);
    if (r)
        freeReplyObject(r);
    return rc;
}

int sentinel_resolve(const struct sentinel_opts *o, char *host, size_t hostlen, int *port,
                     char *err)
{
    struct timeval ctv = {o->connect_ms / 1000, (o->connect_ms % 1000) * 1000};
    struct timeval ttv = {o->command_ms / 1000, (o->command_ms % 1000) * 1000};
    char shost[256];
    int sport;

    snprintf(err, STORE_ERR_MAX, "sentinel: none configured");
    for (size_t i = 0; i < o->naddrs; i++) {
        if (sentinel_split(o->addrs[i], shost, sizeof(shost), &sport) != 0) {
            snprintf(err, STORE_ERR_MAX, "sentinel: bad address \"%s\"", o->addrs[i]);
            continue;
        }
        redisContext *c = redisConnectWithTimeout(shost, sport, ctv);
        if (c == NULL || c->err) {
            snprintf(err, STORE_ERR_MAX, "sentinel %s: %s", o->addrs[i],
                     c ? c->errstr : "cannot allocate");
            if (c)
                redisFree(c);
            continue;
        }
        redisSetTimeout(c, ttv);
        int rc = ask(c, o, host, hostlen, port, err);
        redisFree(c);
        if (rc == 0)
            return 0;
    }
    return -1;
}
