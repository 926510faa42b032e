/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * it_store_errors - a dead or hung Redis costs bounded time: a closed port
 * fails at once, a stopped server (SIGSTOP) fails within command_timeout_ms
 * plus a margin, also with the pool exhausted; the store recovers when the
 * server does. The script cache may be flushed between calls (NOSCRIPT), and
 * the unix socket transport works.
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "itest.h"
#include "store_redis.h"

enum { COMMAND_MS = 100, BOUND_MS = 1000 };

static pid_t hung_pid = -1;

static struct rm_config *tcp_config(int port, int pool)
{
    return it_config("redis = { host = \"127.0.0.1\"; port = %d; prefix = \"se:\";\n"
                     "  connect_timeout_ms = 200; command_timeout_ms = %d;"
                     " pool_size = %d; };\n"
                     "limits = { messages_per_minute = 1000; };\n",
                     port, COMMAND_MS, pool);
}

/* One charge that must fail with a reason within BOUND_MS; returns its ms. */
static double expect_fast_failure(struct store *s, const struct rm_config *cfg,
                                  const char *what)
{
    struct quota_req q;
    struct quota_result res;
    char err[STORE_ERR_MAX] = "";

    it_quota(&q, cfg, "err", "a@err.example", 1);
    double t0 = it_mono_ms();
    int rc = store_charge(s, &q, &res, err);
    double ms = it_mono_ms() - t0;
    CHECK(rc == -1, "%s: charge returned %d", what, rc);
    CHECK(err[0] != '\0', "%s: no error text", what);
    CHECK(ms < BOUND_MS, "%s: charge took %.0f ms (bound %d)", what, ms, BOUND_MS);
    printf("%s: failed in %.1f ms: %s\n", what, ms, err);
    return ms;
}

static void test_closed_port(void)
{
    struct rm_config *cfg = tcp_config(it_free_port(), 2);
    struct store *s = store_redis_new(cfg);
    struct store_lookup_req req = {"", "err", ""};
    struct store_lookup_res res;
    struct quota_req q;
    char err[STORE_ERR_MAX] = "";

    for (int i = 0; i < 3; i++)
        expect_fast_failure(s, cfg, "closed port");
    double t0 = it_mono_ms();
    CHECK(store_lookup(s, &req, &res, err) == -1 && err[0],
          "closed port: lookup did not fail");
    it_quota(&q, cfg, "err", "a@err.example", 1);
    err[0] = '\0';
    CHECK(store_refund(s, &q, 1, err) == -1 && err[0],
          "closed port: refund did not fail");
    CHECK(it_mono_ms() - t0 < BOUND_MS, "closed port: lookup + refund took %.0f ms",
          it_mono_ms() - t0);
    store_unref(s);
    cfg_free(cfg);
}

static void stop_hung(void)
{
    if (hung_pid > 0) {
        kill(hung_pid, SIGCONT);
        kill(hung_pid, SIGTERM);
        waitpid(hung_pid, NULL, 0);
        hung_pid = -1;
    }
}

/* A second private redis-server of our own; it dies with this program. */
static int start_hung(void)
{
    char dir[512], port[16], log[600];
    int p = it_free_port();

    snprintf(dir, sizeof(dir), "%s/hung", it_env("RM_REDIS_DIR"));
    snprintf(log, sizeof(log), "%s/redis.log", dir);
    snprintf(port, sizeof(port), "%d", p);
    REQUIRE(mkdir(dir, 0700) == 0 || errno == EEXIST, "mkdir %s", dir);
    hung_pid = fork();
    REQUIRE(hung_pid >= 0, "fork: %s", strerror(errno));
    if (hung_pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execlp("redis-server", "redis-server", "--bind", "127.0.0.1", "--port", port,
               "--save", "", "--appendonly", "no", "--dir", dir, "--logfile", log,
               "--daemonize", "no", (char *)NULL);
        _exit(127);
    }
    atexit(stop_hung);
    for (int i = 0; i < 100; i++) {
        struct timeval tv = {0, 200000};
        redisContext *c = redisConnectWithTimeout("127.0.0.1", p, tv);
        redisReply *r = c && !c->err ? redisCommand(c, "PING") : NULL;
        int up = r && r->type == REDIS_REPLY_STATUS;
        if (r)
            freeReplyObject(r);
        redisFree(c);
        if (up)
            return p;
        it_sleep_ms(50);
    }
    REQUIRE(0, "the second redis-server did not start (log: %s)", log);
    return -1;
}

struct racer {
    struct store *s;
    const struct rm_config *cfg;
    int rc;
    double ms;
};

static void *race_one(void *arg)
{
    struct racer *r = arg;
    struct quota_req q;
    struct quota_result res;
    char err[STORE_ERR_MAX];

    it_quota(&q, r->cfg, "err", "b@err.example", 1);
    double t0 = it_mono_ms();
    r->rc = store_charge(r->s, &q, &res, err);
    r->ms = it_mono_ms() - t0;
    return NULL;
}

/* More callers than connections while the server hangs: nobody queues
 * behind the hung ones for longer than the bound. */
static void test_hung_pool(struct store *s, const struct rm_config *cfg)
{
    enum { N = 6 };
    pthread_t t[N];
    struct racer r[N];

    for (int i = 0; i < N; i++) {
        r[i] = (struct racer){s, cfg, 0, 0};
        REQUIRE(pthread_create(&t[i], NULL, race_one, &r[i]) == 0, "pthread_create");
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        CHECK(r[i].rc == -1, "hung server, caller %d: charge returned %d", i, r[i].rc);
        CHECK(r[i].ms < BOUND_MS, "hung server, caller %d: took %.0f ms", i, r[i].ms);
    }
}

/* After repeated failures the store stops paying the timeout per call: of a
 * quick run of calls, at most the occasional probe waits for the server. */
static void test_circuit_open(struct store *s, const struct rm_config *cfg)
{
    int fast = 0;

    for (int i = 0; i < 5; i++) {
        struct quota_req q;
        struct quota_result res;
        char err[STORE_ERR_MAX];
        it_quota(&q, cfg, "err", "c@err.example", 1);
        double t0 = it_mono_ms();
        int rc = store_charge(s, &q, &res, err);
        CHECK(rc == -1, "hung server: charge returned %d", rc);
        fast += it_mono_ms() - t0 < COMMAND_MS / 5;
    }
    CHECK(fast >= 3, "after repeated failures only %d of 5 calls failed at once", fast);
}

/* The store resumes by itself once the server answers again (allowing for
 * the back-off after failures). */
static void expect_recovery(struct store *s, const struct rm_config *cfg,
                            const char *what)
{
    struct quota_req q;
    struct quota_result res;
    char err[STORE_ERR_MAX] = "";
    int rc = -1;

    it_quota(&q, cfg, "err", "d@err.example", 1);
    double t0 = it_mono_ms();
    while (rc != 0 && it_mono_ms() - t0 < 10000) {
        rc = store_charge(s, &q, &res, err);
        if (rc != 0)
            it_sleep_ms(50);
    }
    CHECK(rc == 0 && res.admitted, "%s: no recovery after SIGCONT: %s", what, err);
    printf("%s: recovered after %.0f ms\n", what, it_mono_ms() - t0);
}

static void test_hung_server(void)
{
    int port = start_hung();
    struct rm_config *cfg = tcp_config(port, 2);
    struct store *pooled = store_redis_new(cfg);
    struct quota_req q;
    struct quota_result res;

    it_quota(&q, cfg, "err", "a@err.example", 1);
    it_charge(pooled, &q, &res); /* an open, pooled connection */
    CHECK(res.admitted, "the second server refused a first message");
    REQUIRE(kill(hung_pid, SIGSTOP) == 0, "SIGSTOP %d: %s", (int)hung_pid,
            strerror(errno));
    /* the first call really waits for the hung server, then gives up */
    double ms = expect_fast_failure(pooled, cfg, "hung server, pooled connection");
    CHECK(ms >= COMMAND_MS / 2, "hung server: failed after %.0f ms, before any timeout",
          ms);
    struct store *fresh = store_redis_new(cfg);
    expect_fast_failure(fresh, cfg, "hung server, new connection");
    test_hung_pool(fresh, cfg);
    test_circuit_open(fresh, cfg);
    REQUIRE(kill(hung_pid, SIGCONT) == 0, "SIGCONT: %s", strerror(errno));
    expect_recovery(pooled, cfg, "pooled store");
    expect_recovery(fresh, cfg, "store with an open circuit");
    store_unref(pooled);
    store_unref(fresh);
    cfg_free(cfg);
    stop_hung();
}

/* SCRIPT FLUSH between calls: the store reloads the script by itself. */
static void test_noscript(redisContext *rc)
{
    struct rm_config *cfg = tcp_config(atoi(it_env("RM_REDIS_PORT")), 1);
    struct store *s = store_redis_new(cfg);
    struct store_lookup_req lreq = {"", "ns", ""};
    struct store_lookup_res lres;
    struct quota_req q;
    struct quota_result r1, r2;
    char err[STORE_ERR_MAX] = "";

    it_avoid_boundary(rc, 60000, 3000);
    it_quota(&q, cfg, "ns", "a@ns.example", 1);
    it_charge(s, &q, &r1);
    it_cmd_ok(rc, "SCRIPT FLUSH");
    CHECK(store_charge(s, &q, &r2, err) == 0 && r2.admitted,
          "charge after SCRIPT FLUSH: %s", err);
    CHECK_HGET(rc, it_ckey("se:", 'm', "ns"), "m", 2);
    it_cmd_ok(rc, "SCRIPT FLUSH");
    CHECK(store_refund(s, &q, r2.charged_ms, err) == 0, "refund after flush: %s", err);
    CHECK_HGET(rc, it_ckey("se:", 'm', "ns"), "m", 1);
    it_cmd_ok(rc, "SCRIPT FLUSH");
    CHECK(store_lookup(s, &lreq, &lres, err) == 0, "lookup after flush: %s", err);
    store_unref(s);
    cfg_free(cfg);
}

static void test_unix_socket(redisContext *rc)
{
    struct rm_config *cfg = it_config("redis = { unix = \"%s\"; prefix = \"ux:\"; };\n"
                                      "limits = { messages_per_minute = 2; };\n",
                                      it_env("RM_REDIS_SOCK"));
    struct store *s = store_redis_new(cfg);
    struct quota_req q;
    struct quota_result res;
    int admitted = 0;

    it_avoid_boundary(rc, 60000, 3000);
    for (int i = 0; i < 3; i++) {
        it_quota(&q, cfg, "sock", "a@sock.example", 1);
        it_charge(s, &q, &res);
        admitted += res.admitted;
    }
    CHECK(admitted == 2, "unix socket: %d admitted, limit 2", admitted);
    CHECK_HGET(rc, it_ckey("ux:", 'm', "sock"), "m", 2);
    store_unref(s);
    cfg_free(cfg);
}

int main(void)
{
    it_start("it_store_errors");
    redisContext *rc = it_redis();

    test_closed_port();
    test_hung_server();
    test_noscript(rc);
    test_unix_socket(rc);
    redisFree(rc);
    return it_done();
}
