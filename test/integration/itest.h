/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * itest - checks, config files and Redis access for the integration tests,
 * which all run against a real redis-server.
 *
 * Every test program runs under test/lib/with-redis, which exports
 * RM_REDIS_PORT, RM_REDIS_SOCK, RM_REDIS_DIR and RM_REDIS_PID.
 *
 * Interface:
 *   CHECK(cond, fmt, ...)      record a failure with file:line and the message;
 *                              evaluates to cond, the test goes on
 *   REQUIRE(cond, fmt, ...)    as CHECK, but ends the program when cond is false
 *   it_start(name)             once at the top of main
 *   it_done()                  summary line; the exit status for main
 *
 *   it_env(name)               a with-redis variable (the test bails without it)
 *   it_config(fmt, ...)        writes the text to a temp file (in RM_REDIS_DIR,
 *                              else /tmp), cfg_load()s it
 *   it_redis_group(buf, len, prefix, command_ms, pool)
 *                              a redis { } group for the private server's port
 *   it_limits_group(buf, len, overrides)
 *                              a limits { } group: every quota field -1
 *                              (unlimited) except "name=value;..." overrides
 *
 *   it_redis()                 a hiredis connection of the test's own
 *   it_cmd(c, fmt, ...)        redisCommand that bails on a connection error
 *   it_hget(c, key, field, &v) 1 and the integer value, 0 when absent, -1 when
 *                              the field is not an integer
 *   CHECK_HGET(c, key, field, want)
 *                              CHECK that the hash field holds the integer want
 *   it_redis_ms(c)             the server clock (TIME) in ms
 *   it_avoid_boundary(c, w, margin)
 *                              when less than margin ms remain in the current
 *                              window of w ms, sleep until just after it ends
 *   it_redis_cli(out, len, arg, ..., NULL)
 *                              runs redis-cli -p PORT ARG...; the exit status,
 *                              the first output line in out
 *
 *   it_ckey(prefix, w, customer)   the customer counter key of window w ('m',
 *                              'h', 'd'), named by keys.h
 *   it_skey(prefix, w, customer, sender)   the sender counter key
 *                              (both return one of a few rotating static
 *                              buffers: use them at once, from one thread)
 *
 *   it_quota(q, cfg, customer, sender, nrcpt)
 *                              quota_build with the config's limits for customer
 *   it_charge(s, q, res)       charge that bails on a store error
 *   it_mono_ms(), it_sleep_ms(ms)
 *   it_free_port()             a free loopback TCP port
 */
#ifndef RM_ITEST_H
#define RM_ITEST_H

#include <hiredis/hiredis.h>
#include <stddef.h>

#include "config.h"
#include "quota.h"
#include "store.h"

extern _Atomic int it_failures;

int it_check(int ok, const char *file, int line, const char *expr, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
_Noreturn void it_bail(void);

#define CHECK(cond, ...) it_check(!!(cond), __FILE__, __LINE__, #cond, __VA_ARGS__)
#define REQUIRE(cond, ...)                                                               \
    do {                                                                                 \
        if (!CHECK(cond, __VA_ARGS__))                                                   \
            it_bail();                                                                   \
    } while (0)

void it_start(const char *name);
int it_free_port(void);
int it_done(void);

const char *it_env(const char *name);
struct rm_config *it_config(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void it_redis_group(char *buf, size_t len, const char *prefix, int command_ms, int pool);
void it_limits_group(char *buf, size_t len, const char *overrides);

redisContext *it_redis(void);
redisReply *it_cmd(redisContext *c, const char *fmt, ...);
void it_cmd_ok(redisContext *c, const char *fmt, ...);
int it_hget(redisContext *c, const char *key, const char *field, long long *v);
int it_check_hget(redisContext *c, const char *key, const char *field, long long want,
                  const char *file, int line);
#define CHECK_HGET(c, key, field, want)                                                  \
    it_check_hget((c), (key), (field), (want), __FILE__, __LINE__)
long long it_redis_ms(redisContext *c);
void it_avoid_boundary(redisContext *c, long long window_ms, long long margin_ms);
int it_redis_cli(char *out, size_t len, const char *arg, ...);

const char *it_ckey(const char *prefix, char w, const char *customer);
const char *it_skey(const char *prefix, char w, const char *customer, const char *sender);

void it_quota(struct quota_req *q, const struct rm_config *cfg, const char *customer,
              const char *sender, long long nrcpt);
void it_charge(struct store *s, const struct quota_req *q, struct quota_result *res);
double it_mono_ms(void);
void it_sleep_ms(long long ms);

#endif
