/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * itest - shared code of the integration tests; see itest.h.
 */
#include "itest.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "limits.h"
#include "log.h"
#include "testkeys.h"

/* Checks run from several threads in the concurrency tests. */
_Atomic int it_failures;
static _Atomic int it_checks;
static const char *it_name = "integration";

int it_check(int ok, const char *file, int line, const char *expr, const char *fmt, ...)
{
    va_list ap;

    it_checks++;
    if (ok)
        return 1;
    it_failures++;
    fprintf(stderr, "%s:%d: FAIL: %s: ", file, line, expr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 0;
}

void it_bail(void)
{
    fprintf(stderr, "%s: stopped after a failed requirement (%d failures)\n", it_name,
            it_failures);
    exit(1);
}

void it_start(const char *name)
{
    it_name = name;
    log_open(name, 0);
    log_set_level(LOG_LVL_ERROR);
    setvbuf(stdout, NULL, _IOLBF, 0);
}

int it_done(void)
{
    printf("%s: %d checks, %d failures\n", it_name, it_checks, it_failures);
    return it_failures == 0 ? 0 : 1;
}

const char *it_env(const char *name)
{
    const char *v = getenv(name);

    REQUIRE(v != NULL && *v != '\0', "%s is not set: run under test/lib/with-redis",
            name);
    return v;
}

struct rm_config *it_config(const char *fmt, ...)
{
    char path[512], err[512], text[8192];
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    REQUIRE(n > 0 && (size_t)n < sizeof(text), "config text too long (%d)", n);
    const char *dir = getenv("RM_REDIS_DIR"); /* none beside a cluster */
    snprintf(path, sizeof(path), "%s/it-XXXXXX.conf", dir && *dir ? dir : "/tmp");
    int fd = mkstemps(path, 5);
    REQUIRE(fd >= 0, "mkstemps %s: %s", path, strerror(errno));
    REQUIRE(write(fd, text, (size_t)n) == n, "write %s: %s", path, strerror(errno));
    close(fd);
    struct rm_config *cfg = cfg_load(path, err, sizeof(err));
    REQUIRE(cfg != NULL, "cfg_load: %s\n--- config ---\n%s", err, text);
    unlink(path);
    return cfg;
}

void it_redis_group(char *buf, size_t len, const char *prefix, int command_ms, int pool)
{
    snprintf(buf, len,
             "redis = { host = \"127.0.0.1\"; port = %s; prefix = \"%s\";\n"
             "  connect_timeout_ms = 500; command_timeout_ms = %d; pool_size = %d; };\n",
             it_env("RM_REDIS_PORT"), prefix, command_ms, pool);
}

/* The value given for a field in "name=value;name=value", or NULL. */
static const char *override_for(const char *overrides, const char *name, char *val,
                                size_t len)
{
    size_t nlen = strlen(name);

    for (const char *p = overrides; p && *p;) {
        const char *end = strchr(p, ';');
        size_t plen = end ? (size_t)(end - p) : strlen(p);
        if (plen > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
            snprintf(val, len, "%.*s", (int)(plen - nlen - 1), p + nlen + 1);
            return val;
        }
        p = end ? end + 1 : NULL;
    }
    return NULL;
}

void it_limits_group(char *buf, size_t len, const char *overrides)
{
    size_t off = (size_t)snprintf(buf, len, "limits = {\n");

    for (int id = 0; id < LIM_NQUOTA && off < len; id++) {
        char val[64];
        const char *name = lim_field_name(id);
        const char *v = override_for(overrides, name, val, sizeof(val));
        off += (size_t)snprintf(buf + off, len - off, "  %s = %s;\n", name, v ? v : "-1");
    }
    if (off < len)
        snprintf(buf + off, len - off, "};\n");
}

redisContext *it_redis(void)
{
    struct timeval tv = {5, 0};
    redisContext *c =
        redisConnectWithTimeout("127.0.0.1", atoi(it_env("RM_REDIS_PORT")), tv);

    REQUIRE(c != NULL && c->err == 0, "cannot connect to the test redis: %s",
            c ? c->errstr : "out of memory");
    redisSetTimeout(c, tv);
    return c;
}

redisReply *it_cmd(redisContext *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    REQUIRE(r != NULL, "redis command \"%s\": %s", fmt, c->errstr);
    return r;
}

void it_cmd_ok(redisContext *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    REQUIRE(r != NULL, "redis command \"%s\": %s", fmt, c->errstr);
    REQUIRE(r->type != REDIS_REPLY_ERROR, "redis command \"%s\": %s", fmt, r->str);
    freeReplyObject(r);
}

int it_hget(redisContext *c, const char *key, const char *field, long long *v)
{
    redisReply *r = it_cmd(c, "HGET %s %s", key, field);
    int rc = 0;

    if (r->type == REDIS_REPLY_STRING) {
        char *end;
        errno = 0;
        *v = strtoll(r->str, &end, 10);
        rc = (errno == 0 && end != r->str && *end == '\0') ? 1 : -1;
    } else if (r->type != REDIS_REPLY_NIL) {
        rc = -1;
    }
    freeReplyObject(r);
    return rc;
}

int it_check_hget(redisContext *c, const char *key, const char *field, long long want,
                  const char *file, int line)
{
    long long v = 0;
    int got = it_hget(c, key, field, &v);

    if (got == 1 && v == want)
        return it_check(1, file, line, "", "%s", "");
    if (got == 1)
        return it_check(0, file, line, "HGET", "%s %s = %lld, expected %lld", key, field,
                        v, want);
    return it_check(0, file, line, "HGET", "%s %s is %s, expected %lld", key, field,
                    got == 0 ? "absent" : "not an integer", want);
}

long long it_redis_ms(redisContext *c)
{
    redisReply *r = it_cmd(c, "TIME");

    REQUIRE(r->type == REDIS_REPLY_ARRAY && r->elements == 2, "TIME: odd reply");
    long long ms = atoll(r->element[0]->str) * 1000 + atoll(r->element[1]->str) / 1000;
    freeReplyObject(r);
    return ms;
}

void it_avoid_boundary(redisContext *c, long long window_ms, long long margin_ms)
{
    long long left = window_ms - it_redis_ms(c) % window_ms;

    if (left < margin_ms)
        it_sleep_ms(left + 50);
}

int it_redis_cli(char *out, size_t len, const char *arg, ...)
{
    const char *argv[16] = {"redis-cli", "-p", it_env("RM_REDIS_PORT")};
    int argc = 3, fds[2], status;
    va_list ap;

    va_start(ap, arg);
    for (const char *a = arg; a != NULL && argc < 15; a = va_arg(ap, const char *))
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    REQUIRE(pipe(fds) == 0, "pipe: %s", strerror(errno));
    pid_t pid = fork();
    REQUIRE(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    char buf[1024];
    ssize_t n, got = 0;
    while ((n = read(fds[0], buf + got, sizeof(buf) - 1 - (size_t)got)) > 0)
        got += n;
    close(fds[0]);
    buf[got] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    if (out)
        snprintf(out, len, "%s", buf);
    REQUIRE(waitpid(pid, &status, 0) == pid, "waitpid: %s", strerror(errno));
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

const char *it_ckey(const char *prefix, char w, const char *customer)
{
    const char *k = testkeys_counter(prefix, w, customer, NULL);

    REQUIRE(k != NULL, "no counter key for window '%c' of %s", w, customer);
    return k;
}

const char *it_skey(const char *prefix, char w, const char *customer, const char *sender)
{
    const char *k = testkeys_counter(prefix, w, customer, sender);

    REQUIRE(k != NULL, "no counter key for window '%c' of %s, %s", w, customer, sender);
    return k;
}

void it_quota(struct quota_req *q, const struct rm_config *cfg, const char *customer,
              const char *sender, long long nrcpt)
{
    struct lim_set lim;

    cfg_effective_limits(cfg, cfg_customer_find(cfg, customer), &lim);
    REQUIRE(quota_build(q, cfg->prefix, customer, sender, &lim, nrcpt) == 0,
            "quota_build %s %s", customer, sender);
}

void it_charge(struct store *s, const struct quota_req *q, struct quota_result *res)
{
    char err[STORE_ERR_MAX] = "";

    REQUIRE(store_charge(s, q, res, err) == 0, "charge: store error: %s", err);
}

double it_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

void it_sleep_ms(long long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* A loopback TCP port free at the moment of the call (the kernel picks). */
int it_free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
                getsockname(fd, (struct sockaddr *)&sa, &len) == 0,
            "cannot find a free port: %s", strerror(errno));
    close(fd);
    return ntohs(sa.sin_port);
}
