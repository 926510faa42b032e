/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * it_auth - Redis AUTH: a password (requirepass) and an ACL user that may run
 * only what the milter needs. The store works with the right credentials
 * (lookup, charge with exact counting, refund, events), fails with a store
 * error and never crashes with wrong ones (wrong password, unknown user, no
 * password, a user missing a command the script calls), and no password ever
 * appears in an error text or in the log.
 *
 * The with-redis server is not used: this test starts its own redis-server
 * (loopback port and a unix socket in RM_REDIS_DIR/auth) with this ACL:
 *   default user    requirepass
 *   user relay      the commands of rpool.c / store_redis.c (AUTH,
 *                   SELECT, SCRIPT LOAD, EVALSHA, EVAL, XADD) and those
 *                   relay.lua calls (TIME, HGET, HGETALL, HMGET, HSET,
 *                   PEXPIREAT, SCARD, SISMEMBER, SMEMBERS, XADD), on keys
 *                   auth:* only
 *   user narrow     the same without TIME (the charge cannot run)
 * The log (stderr, debug level) is captured in a file for the password check;
 * check failures written meanwhile are copied to the real stderr at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
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
#include "log.h"
#include "store_redis.h"

#define DEFAULT_PW "Dflt-pw-7Qx2-requirepass"
#define RELAY_PW "Acl-pw-K9v4-relay-user"
#define NARROW_PW "Acl-pw-M3c8-narrow-user"
#define WRONG_PW "Wrong-pw-Z1z1-nobody"

static pid_t auth_pid = -1;
static int auth_port;
static char auth_dir[512], auth_sock[600], log_path[600];
static int saved_stderr = -1;

static void stop_auth_redis(void)
{
    if (auth_pid > 0) {
        kill(auth_pid, SIGTERM);
        waitpid(auth_pid, NULL, 0);
        auth_pid = -1;
    }
}

/* The commands the milter sends, and those relay.lua calls, nothing else. */
#define MILTER_COMMANDS                                                                  \
    "+auth +select +script|load +evalsha +eval +xadd +hget +hgetall +hmget +hset "       \
    "+pexpireat +scard +sismember +smembers"

static void start_auth_redis(void)
{
    char conf[700], logf[700];
    FILE *fp;

    snprintf(auth_dir, sizeof(auth_dir), "%s/auth", it_env("RM_REDIS_DIR"));
    snprintf(auth_sock, sizeof(auth_sock), "%s/redis.sock", auth_dir);
    snprintf(conf, sizeof(conf), "%s/redis.conf", auth_dir);
    snprintf(logf, sizeof(logf), "%s/redis.log", auth_dir);
    REQUIRE(mkdir(auth_dir, 0700) == 0 || errno == EEXIST, "mkdir %s", auth_dir);
    auth_port = it_free_port();
    REQUIRE((fp = fopen(conf, "w")) != NULL, "%s: %s", conf, strerror(errno));
    fprintf(fp,
            "bind 127.0.0.1\nport %d\nunixsocket %s\nunixsocketperm 700\n"
            "save \"\"\nappendonly no\ndir %s\nlogfile %s\ndaemonize no\n"
            "requirepass %s\n"
            "user relay on >%s ~auth:* resetchannels -@all " MILTER_COMMANDS " +time\n"
            "user narrow on >%s ~auth:* resetchannels -@all " MILTER_COMMANDS "\n",
            auth_port, auth_sock, auth_dir, logf, DEFAULT_PW, RELAY_PW, NARROW_PW);
    fclose(fp);
    auth_pid = fork();
    REQUIRE(auth_pid >= 0, "fork: %s", strerror(errno));
    if (auth_pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execlp("redis-server", "redis-server", conf, (char *)NULL);
        _exit(127);
    }
    atexit(stop_auth_redis);
    for (int i = 0; i < 100; i++) {
        struct timeval tv = {0, 200000};
        redisContext *c = redisConnectWithTimeout("127.0.0.1", auth_port, tv);
        redisReply *r = c && !c->err ? redisCommand(c, "AUTH %s", DEFAULT_PW) : NULL;
        int up = r && r->type == REDIS_REPLY_STATUS;
        if (r)
            freeReplyObject(r);
        redisFree(c);
        if (up)
            return;
        it_sleep_ms(50);
    }
    REQUIRE(0, "the redis-server with AUTH did not start (log: %s)", logf);
}

/* An admin connection (default user) for checking what the store wrote. */
static redisContext *admin(void)
{
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", auth_port, tv);

    REQUIRE(c != NULL && c->err == 0, "admin connect");
    redisSetTimeout(c, tv);
    it_cmd_ok(c, "AUTH %s", DEFAULT_PW);
    return c;
}

/* Log lines go to a file from here on (fd 2 is the log's stderr). */
static void capture_log(void)
{
    snprintf(log_path, sizeof(log_path), "%s/milter.log", auth_dir);
    int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    REQUIRE(fd >= 0, "%s: %s", log_path, strerror(errno));
    fflush(stderr);
    saved_stderr = dup(2);
    REQUIRE(saved_stderr >= 0 && dup2(fd, 2) == 2, "dup2: %s", strerror(errno));
    close(fd);
    log_open("it_auth", 1);
    log_set_level(LOG_LVL_DEBUG);
}

/* Back to the real stderr; failures recorded meanwhile are shown there. */
static void end_capture(void)
{
    char line[2048];

    fflush(stderr);
    log_set_level(LOG_LVL_ERROR);
    if (saved_stderr >= 0) {
        dup2(saved_stderr, 2);
        close(saved_stderr);
        saved_stderr = -1;
    }
    FILE *fp = fopen(log_path, "r");
    while (fp && fgets(line, sizeof(line), fp))
        if (strstr(line, ": FAIL: "))
            fputs(line, stderr);
    if (fp)
        fclose(fp);
}

static const char *const secrets[] = {DEFAULT_PW, RELAY_PW, NARROW_PW, WRONG_PW};

static void check_no_secret(const char *text, const char *what)
{
    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
        CHECK(strstr(text, secrets[i]) == NULL, "%s shows a password: %s", what, text);
}

/* transport: 't' tcp, 'u' unix socket */
static struct rm_config *auth_config(char transport, const char *user, const char *pw)
{
    char where[800], cred[300] = "";

    if (transport == 'u')
        snprintf(where, sizeof(where), "unix = \"%s\";", auth_sock);
    else
        snprintf(where, sizeof(where), "host = \"127.0.0.1\"; port = %d;", auth_port);
    if (user && pw)
        snprintf(cred, sizeof(cred), "username = \"%s\"; password = \"%s\";", user, pw);
    else if (pw)
        snprintf(cred, sizeof(cred), "password = \"%s\";", pw);
    return it_config("redis = { %s %s prefix = \"auth:\"; db = 0;\n"
                     "  connect_timeout_ms = 1000; command_timeout_ms = 1000;"
                     " pool_size = 2; };\n"
                     "limits = { messages_per_minute = 3; messages_per_hour = -1;"
                     " messages_per_day = -1; recipients_per_minute = -1;"
                     " recipients_per_hour = -1; recipients_per_day = -1;"
                     " sender_messages_per_hour = -1; };\n",
                     where, cred);
}

/* Right credentials: every store call works, and the limit is exact. */
static void expect_works(char transport, const char *user, const char *pw,
                         const char *customer)
{
    struct rm_config *cfg = auth_config(transport, user, pw);
    struct store *s = store_redis_new(cfg);
    struct store_lookup_req req = {"", customer, "auth.example"};
    struct store_lookup_res lres;
    struct store_event ev = {"Q1", customer,    "-",     "a@auth.example",
                             "",   "suspended", "reject"};
    struct quota_req q;
    struct quota_result res;
    char err[STORE_ERR_MAX] = "", what[128], key[256];
    int admitted = 0;
    long long last_ms = 0;
    redisContext *rc = admin();

    snprintf(what, sizeof(what), "%s user %s over %s", transport == 'u' ? "unix" : "tcp",
             user ? user : "default", pw ? "a password" : "no password");
    CHECK(store_lookup(s, &req, &lres, err) == 0, "%s: lookup failed: %s", what, err);
    for (int i = 0; i < 4; i++) {
        it_quota(&q, cfg, customer, "a@auth.example", 1);
        err[0] = '\0';
        if (!CHECK(store_charge(s, &q, &res, err) == 0, "%s: charge %d: %s", what, i,
                   err))
            break;
        admitted += res.admitted;
        if (res.admitted)
            last_ms = res.charged_ms;
    }
    CHECK(admitted == 3, "%s: %d of 4 admitted under messages_per_minute 3", what,
          admitted);
    snprintf(key, sizeof(key), "%s", it_ckey("auth:", 'm', customer));
    CHECK_HGET(rc, key, "m", 3);
    err[0] = '\0';
    CHECK(store_refund(s, &q, last_ms, err) == 0, "%s: refund: %s", what, err);
    CHECK_HGET(rc, key, "m", 2);
    err[0] = '\0';
    CHECK(store_event(s, &ev, err) == 0, "%s: event: %s", what, err);
    redisReply *r = it_cmd(rc, "XLEN auth:events");
    CHECK(r->type == REDIS_REPLY_INTEGER && r->integer >= 1, "%s: no event written",
          what);
    freeReplyObject(r);
    printf("%s: works\n", what);
    redisFree(rc);
    store_unref(s);
    cfg_free(cfg);
}

/* Wrong credentials: each call is a store error with a reason, quickly, and
 * the reason names no password. */
static void expect_fails(char transport, const char *user, const char *pw,
                         const char *customer, const char *want)
{
    struct rm_config *cfg = auth_config(transport, user, pw);
    struct store *s = store_redis_new(cfg);
    struct store_lookup_req req = {"", customer, ""};
    struct store_lookup_res lres;
    struct store_event ev = {"Q2", customer,    "-",     "a@auth.example",
                             "",   "suspended", "reject"};
    struct quota_req q;
    struct quota_result res;
    char err[STORE_ERR_MAX] = "", what[160];

    snprintf(what, sizeof(what), "%s user %s, %s", transport == 'u' ? "unix" : "tcp",
             user ? user : "default", want);
    CHECK(store_lookup(s, &req, &lres, err) == -1, "%s: lookup did not fail", what);
    CHECK(strstr(err, want) != NULL, "%s: lookup error \"%s\" lacks \"%s\"", what, err,
          want);
    check_no_secret(err, "lookup error");
    printf("%s: lookup fails: %s\n", what, err);
    for (int i = 0; i < 4; i++) {
        it_quota(&q, cfg, customer, "a@auth.example", 1);
        err[0] = '\0';
        CHECK(store_charge(s, &q, &res, err) == -1 && err[0], "%s: charge %d: %d", what,
              i, res.admitted);
        check_no_secret(err, "charge error");
    }
    err[0] = '\0';
    CHECK(store_refund(s, &q, 1, err) == -1 && err[0], "%s: refund did not fail", what);
    check_no_secret(err, "refund error");
    err[0] = '\0';
    CHECK(store_event(s, &ev, err) == -1 && err[0], "%s: event did not fail", what);
    check_no_secret(err, "event error");
    store_unref(s);
    cfg_free(cfg);
}

/* A user that may not run a command the script calls (TIME): the lookup
 * (which does not call it) works, every charge is a store error. */
static void expect_charge_denied(const char *user, const char *pw, const char *customer)
{
    struct rm_config *cfg = auth_config('u', user, pw);
    struct store *s = store_redis_new(cfg);
    struct store_lookup_req req = {"", customer, ""};
    struct store_lookup_res lres;
    struct quota_req q;
    struct quota_result res;
    char err[STORE_ERR_MAX] = "";

    CHECK(store_lookup(s, &req, &lres, err) == 0, "%s: lookup: %s", user, err);
    for (int i = 0; i < 4; i++) {
        it_quota(&q, cfg, customer, "a@auth.example", 1);
        err[0] = '\0';
        CHECK(store_charge(s, &q, &res, err) == -1 && err[0], "%s: charge %d not refused",
              user, i);
        check_no_secret(err, "charge error");
        if (i == 0)
            printf("user %s without TIME: charge fails: %s\n", user, err);
    }
    CHECK(strstr(err, "NOPERM") != NULL || strstr(err, "can't run this command") != NULL,
          "%s: charge error \"%s\"", user, err);
    store_unref(s);
    cfg_free(cfg);
}

static void check_log(void)
{
    char buf[65536];
    FILE *fp = fopen(log_path, "r");
    size_t n;

    REQUIRE(fp != NULL, "%s: %s", log_path, strerror(errno));
    n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    /* the capture worked: the failures above were logged */
    CHECK(strstr(buf, "WRONGPASS") != NULL || strstr(buf, "circuit open") != NULL,
          "the log capture saw no store failure (%zu bytes)", n);
    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
        CHECK(strstr(buf, secrets[i]) == NULL, "the log shows password %zu", i);
    printf("log: %zu bytes, no password in it\n", n);
}

int main(void)
{
    it_start("it_auth");
    start_auth_redis();
    capture_log();

    expect_works('u', NULL, DEFAULT_PW, "pw-unix");
    expect_works('t', NULL, DEFAULT_PW, "pw-tcp");
    expect_works('u', "relay", RELAY_PW, "acl-unix");
    expect_works('t', "relay", RELAY_PW, "acl-tcp");

    expect_fails('u', NULL, WRONG_PW, "bad-pw", "WRONGPASS");
    expect_fails('t', NULL, WRONG_PW, "bad-pw-tcp", "WRONGPASS");
    expect_fails('u', NULL, NULL, "no-pw", "NOAUTH");
    expect_fails('u', "relay", WRONG_PW, "bad-acl", "WRONGPASS");
    expect_fails('t', "nobody", RELAY_PW, "no-user", "WRONGPASS");
    /* a user the script cannot run for (no TIME): NOPERM from inside it */
    expect_charge_denied("narrow", NARROW_PW, "narrow");

    end_capture();
    check_log();
    stop_auth_redis();
    return it_done();
}
