/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * fuzz_config - the configuration loader (cfg_load) on arbitrary files.
 *
 * The input is written to a private temp file and loaded. cfg_load must never
 * crash or leak (ASan/LSan watch), and its answer must keep the contract of
 * config.h and relaymilter.conf(5):
 *   refused   err is "FILE:LINE: what" for the file loaded;
 *   accepted  every value is within the range relaymilter.conf(5) states, the derived
 *             fields agree (socket_mode_bits, the sorted networks table),
 *             customer names are unique, domain lists are canonical, every
 *             limit is a valid value, and no whole number was silently
 *             changed: libconfig 1.5 reads a plain literal beyond 32 bits as
 *             a wrapped int (4294967295 becomes -1, "unlimited"), so an
 *             accepted file must not contain such a literal (the loader
 *             promises to refuse it and ask for the L suffix).
 * Loading the same file twice gives the same verdict and the same error.
 *
 * "@include" is refused by the loader before libconfig sees the text, so an
 * accepted file never contains it and no other file is read.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "identity.h"
#include "login.h"
#include "domain.h"
#include "limits.h"
#include "log.h"
#include "netmatch.h"
#include "sentinel.h"

static char dir[64], path[96];
static const uint8_t *cur_data;
static size_t cur_size;

static void fuzz_fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_config: %s%s%s\n--- input ---\n%.*s\n--- end ---\n", what,
            detail ? ": " : "", detail ? detail : "",
            (int)(cur_size > 4000 ? 4000 : cur_size), (const char *)cur_data);
    abort();
}

#define FUZZ_ASSERT(cond, what)                                                          \
    do {                                                                                 \
        if (!(cond))                                                                     \
            fuzz_fail(what, #cond);                                                      \
    } while (0)

static void cleanup(void)
{
    if (path[0])
        unlink(path);
    if (dir[0])
        rmdir(dir);
}

static int setup(void)
{
    if (dir[0])
        return 0;
    snprintf(dir, sizeof(dir), "/tmp/fuzz_config.XXXXXX");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        abort();
    }
    snprintf(path, sizeof(path), "%s/in.conf", dir);
    atexit(cleanup);
    log_set_level(LOG_LVL_ERROR + 1); /* the loader logs nothing we check */
    return 0;
}

/*
 * Plain whole-number literals that libconfig 1.5 does not keep as written:
 * decimal outside int32, hex above 0x7fffffff, without the L suffix. A small
 * scanner for libconfig's lexical rules (comments, strings, names, floats):
 * returns 1 when the text holds such a literal.
 */
static int is_name_start(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '*';
}

static int is_name_char(int c)
{
    return is_name_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static int is_hex(int c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Length of the float token at s (libconfig's float rule), 0 if none. */
static size_t float_len(const char *s, const char *end)
{
    const char *p = s;
    size_t nd = 0, best = 0;

    if (p < end && (*p == '-' || *p == '+'))
        p++;
    while (p < end && is_digit(*p))
        p++, nd++;
    if (p < end && *p == '.') { /* [0-9]*\.[0-9]*([eE][-+]?[0-9]+)? */
        p++;
        while (p < end && is_digit(*p))
            p++;
        best = (size_t)(p - s);
    } else if (nd == 0) {
        return 0;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        const char *q = p + 1;
        if (q < end && (*q == '-' || *q == '+'))
            q++;
        if (q < end && is_digit(*q)) {
            while (q < end && is_digit(*q))
                q++;
            best = (size_t)(q - s);
        }
    }
    return best;
}

static int wrapping_literal(const char *s, size_t n)
{
    const char *p = s, *end = s + n;

    while (p < end) {
        if (*p == '#' || (*p == '/' && p + 1 < end && p[1] == '/')) {
            while (p < end && *p != '\n')
                p++;
        } else if (*p == '/' && p + 1 < end && p[1] == '*') {
            const char *q = p + 2;
            while (q + 1 < end && !(q[0] == '*' && q[1] == '/'))
                q++;
            p = q + 2 <= end ? q + 2 : end;
        } else if (*p == '"') {
            p++;
            while (p < end && *p != '"') {
                if (*p == '\\' && p + 1 < end)
                    p++;
                p++;
            }
            p++;
        } else if (is_name_start((unsigned char)*p)) {
            while (p < end && is_name_char((unsigned char)*p))
                p++;
        } else if (is_digit(*p) || ((*p == '-' || *p == '+' || *p == '.') &&
                                    p + 1 < end && (is_digit(p[1]) || p[1] == '.'))) {
            size_t fl = float_len(p, end);
            const char *q = p;
            int neg = 0;
            if (*q == '-' || *q == '+')
                neg = *q++ == '-';
            if (q + 1 < end && q[0] == '0' && (q[1] == 'x' || q[1] == 'X') &&
                q + 2 < end && is_hex(q[2]) && !neg && q == p) {
                const char *h = q + 2;
                unsigned long long v = 0;
                int big = 0;
                while (h < end && is_hex(*h)) {
                    int d = is_digit(*h) ? *h - '0' : (*h | 0x20) - 'a' + 10;
                    if (v > 0x7fffffffULL)
                        big = 1;
                    v = v * 16 + (unsigned)d;
                    h++;
                }
                int has_l = h < end && *h == 'L';
                if (!has_l && (big || v > 0x7fffffffULL))
                    return 1;
                p = h + has_l;
                continue;
            }
            const char *d = q;
            unsigned long long v = 0;
            int big = 0;
            while (d < end && is_digit(*d)) {
                if (v > 1000000000000ULL)
                    big = 1;
                v = v * 10 + (unsigned)(*d - '0');
                d++;
            }
            size_t il = (size_t)(d - p);
            if (fl > il || d == q) { /* a float (or a lone sign/dot) */
                p += fl ? fl : 1;
                continue;
            }
            int has_l = d < end && *d == 'L';
            if (!has_l && (big || (neg ? v > 2147483648ULL : v > 2147483647ULL)))
                return 1;
            p = d + has_l;
        } else {
            p++;
        }
    }
    return 0;
}

static int canonical(const char *d)
{
    char out[DOM_MAX + 1];
    return dom_canonical(d, out, sizeof(out)) == 0 && strcmp(out, d) == 0;
}

static void check_limits(const struct lim_set *l, int all)
{
    for (int id = 0; id < LIM_NFIELDS; id++) {
        if (all)
            FUZZ_ASSERT(l->set[id], "a limit field without a value");
        if (l->set[id])
            FUZZ_ASSERT(lim_check_value(id, l->v[id]) == 0, "a limit out of range");
    }
}

static void check_strlist(const struct cfg_strlist *l)
{
    FUZZ_ASSERT(l->n == 0 || l->v != NULL, "list without storage");
    for (size_t i = 0; i < l->n; i++)
        FUZZ_ASSERT(l->v[i] != NULL && l->v[i][0] != '\0', "empty list element");
}

#define IN_RANGE(v, lo, hi, what) FUZZ_ASSERT((v) >= (lo) && (v) <= (hi), what)

static void check_accepted(const struct rm_config *c)
{
    FUZZ_ASSERT(c->path && strcmp(c->path, path) == 0, "path");
    FUZZ_ASSERT(c->socket && *c->socket, "milter.socket");
    FUZZ_ASSERT(c->prefix && *c->prefix, "redis.prefix");
    FUZZ_ASSERT(c->redis_host && *c->redis_host, "redis.host");
    FUZZ_ASSERT(c->socket_mode && *c->socket_mode, "milter.socket_mode");
    FUZZ_ASSERT(!c->user || *c->user, "milter.user");
    FUZZ_ASSERT(!c->redis_unix || *c->redis_unix, "redis.unix");
    FUZZ_ASSERT(!c->redis_password || *c->redis_password, "redis.password");
    FUZZ_ASSERT(!c->redis_username || *c->redis_username, "redis.username");
    FUZZ_ASSERT(!c->redis_username || c->redis_password, "username without password");
    IN_RANGE(c->timeout, 1, 3600, "milter.timeout");
    IN_RANGE(c->redis_port, 1, 65535, "redis.port");
    IN_RANGE(c->redis_db, 0, 1023, "redis.db");
    IN_RANGE(c->connect_timeout_ms, 1, 60000, "redis.connect_timeout_ms");
    IN_RANGE(c->command_timeout_ms, 1, 60000, "redis.command_timeout_ms");
    IN_RANGE(c->pool_size, 1, 1024, "redis.pool_size");
    IN_RANGE(c->local_max_entries, 100, 10000000, "redis.local_max_entries");
    IN_RANGE(c->events_maxlen, 0, 10000000, "redis.events_maxlen");
    FUZZ_ASSERT(c->local_share > 0.0 && c->local_share <= 1.0, "redis.local_share");
    IN_RANGE(c->on_store_error, CFG_SE_ACCEPT, CFG_SE_LOCAL, "on_store_error");
    IN_RANGE(c->aborted_charge, CFG_AC_REFUND, CFG_AC_KEEP, "aborted_charge");
    IN_RANGE(c->sasl_unknown, CFG_SU_OWN, CFG_SU_TEMPFAIL, "sasl.unknown");
    for (const char *p = c->sasl_realm; p && *p; p++)
        FUZZ_ASSERT(*p != '@' && !(*p >= 'A' && *p <= 'Z') && (unsigned char)*p > 0x20,
                    "sasl.realm canonical");
    IN_RANGE(c->log_level, LOG_LVL_DEBUG, LOG_LVL_ERROR, "log.level");
    FUZZ_ASSERT(cfg_store_error_name(c->on_store_error) != NULL, "on_store_error name");
    FUZZ_ASSERT(log_level_name(c->log_level) != NULL, "log level name");

    char *end;
    long mode = strtol(c->socket_mode, &end, 8);
    FUZZ_ASSERT(*end == '\0' && mode == c->socket_mode_bits, "socket_mode_bits");
    IN_RANGE(c->socket_mode_bits, 0, 0777, "milter.socket_mode");

    check_strlist(&c->sentinels);
    FUZZ_ASSERT((c->sentinels.n > 0) == (c->redis_master != NULL), "sentinels/master");
    for (size_t i = 0; i < c->sentinels.n; i++) {
        char host[256];
        int port;
        FUZZ_ASSERT(sentinel_split(c->sentinels.v[i], host, sizeof(host), &port) == 0,
                    "a sentinel address that does not parse");
        IN_RANGE(port, 1, 65535, "sentinel port");
    }

    check_limits(&c->limits, 1);
    check_strlist(&c->blocked_rcpt_domains);
    for (size_t i = 0; i < c->blocked_rcpt_domains.n; i++)
        FUZZ_ASSERT(canonical(c->blocked_rcpt_domains.v[i]), "blocked domain canonical");

    FUZZ_ASSERT(c->ncustomers == 0 || c->customers != NULL, "customers storage");
    for (size_t i = 0; i < c->ncustomers; i++) {
        const struct cfg_customer *cu = &c->customers[i];
        struct lim_set eff;
        FUZZ_ASSERT(cu->name && identity_name_problem(cu->name, 0) == NULL,
                    "customer name allowed");
        FUZZ_ASSERT(cfg_customer_find(c, cu->name) == (int)i, "customer names unique");
        check_limits(&cu->limits, 0);
        cfg_effective_limits(c, (int)i, &eff);
        check_limits(&eff, 1);
        check_strlist(&cu->sasl);
        check_strlist(&cu->domains);
        for (size_t j = 0; j < cu->sasl.n; j++) {
            char canon[LOGIN_MAX + 1];
            FUZZ_ASSERT(cfg_customer_by_sasl(c, cu->sasl.v[j]) == (int)i, "sasl lookup");
            FUZZ_ASSERT(login_canonical(c->sasl_realm, cu->sasl.v[j], canon,
                                        sizeof(canon)) == 0 &&
                            strcmp(canon, cu->sasl.v[j]) == 0,
                        "customers[].sasl canonical");
        }
        for (size_t j = 0; j < cu->domains.n; j++) {
            FUZZ_ASSERT(canonical(cu->domains.v[j]), "customer domain canonical");
            const char *lvl = cfg_domain_level(c, cu->domains.v[j]);
            FUZZ_ASSERT(lvl && strcmp(lvl, cu->domains.v[j]) == 0, "domain level");
            FUZZ_ASSERT(cfg_domain_owner(c, lvl, cu->name), "domain owner");
        }
    }
    FUZZ_ASSERT(c->nnetworks == 0 || c->networks != NULL, "networks storage");
    for (size_t i = 0; i < c->nnetworks; i++) {
        const struct net_prefix *p = &c->networks[i];
        IN_RANGE(p->value, 0, (int)c->ncustomers - 1, "network owner index");
        IN_RANGE(p->len, 0, 128, "network prefix length");
        if (i > 0)
            FUZZ_ASSERT(c->networks[i - 1].len >= p->len, "networks sorted");
        int hit = cfg_customer_by_addr(c, &p->addr);
        FUZZ_ASSERT(hit >= 0 && hit < (int)c->ncustomers, "network lookup");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[600], err2[600];

    if (size > 65536)
        return 0;
    setup();
    cur_data = data;
    cur_size = size;
    FILE *fp = fopen(path, "w");
    if (fp == NULL || fwrite(data, 1, size, fp) != size || fclose(fp) != 0) {
        perror(path);
        abort();
    }
    memset(err, 0, sizeof(err));
    struct rm_config *cfg = cfg_load(path, err, sizeof(err));
    if (cfg == NULL) {
        size_t plen = strlen(path);
        FUZZ_ASSERT(strnlen(err, sizeof(err)) < sizeof(err), "err terminated");
        FUZZ_ASSERT(strncmp(err, path, plen) == 0 && err[plen] == ':',
                    "error does not start with FILE:");
        const char *p = err + plen + 1;
        FUZZ_ASSERT(is_digit(*p), "error without a line number");
        while (is_digit(*p))
            p++;
        FUZZ_ASSERT(p[0] == ':' && p[1] == ' ' && p[2] != '\0', "error text");
    } else {
        check_accepted(cfg);
        if (wrapping_literal((const char *)data, size))
            fuzz_fail(
                "accepted a whole number libconfig changed (plain literal beyond 32 "
                "bits, no L suffix)",
                NULL);
    }
    memset(err2, 0, sizeof(err2));
    struct rm_config *again = cfg_load(path, err2, sizeof(err2));
    FUZZ_ASSERT((again == NULL) == (cfg == NULL), "same file, different verdict");
    if (cfg == NULL)
        FUZZ_ASSERT(strcmp(err, err2) == 0, "same file, different error");
    cfg_free(again);
    cfg_free(cfg);
    cur_data = NULL;
    cur_size = 0;
    return 0;
}
