/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * fuzz_reply - every Redis reply the store reads, through the real path.
 *
 * The reply parsers of store_redis.c, rpool.c and sentinel.c are static
 * and sit behind hiredis, so the input is played by a fake Redis server on a
 * loopback socket inside this program, and the store is driven through its
 * interface (store.h) exactly as the milter drives it:
 *     lookup, charge, refund, event, rcpt_blocked, lookup, charge
 * Whatever the client sends (AUTH, SELECT, ROLE, SCRIPT LOAD, EVALSHA, EVAL,
 * XADD, SENTINEL ...), the server answers with the next RESP reply cut from
 * the input; when the input has no complete reply left it sends what is left
 * and closes the connection. So the input is a transcript of replies: nil,
 * errors (NOSCRIPT, READONLY, LOADING ...), wrong types, huge arrays, bad
 * integers, NUL bytes, truncated packets.
 *
 * Input: byte 0 selects the configuration (bit 0 password, bit 1 ACL user,
 * bit 2 db 3, bit 3 Sentinel mode, bit 4 on_store_error local, bit 5 no events
 * stream, bit 6 a SASL login); the rest is the reply stream.
 *
 * Checked beyond "no crash, no leak, no undefined behaviour": a store call
 * returns 0 or -1; -1 comes with an error text; results are within their
 * bounds (fields, lengths, refused counter index, metric, retry time); the
 * refusal text and the staff-limit parsing the policy engine does next work on
 * whatever came back.
 *
 * Loopback only: in Sentinel mode a reply that would name a primary is
 * replaced by this server's own address, so no input makes the store connect
 * anywhere else. Arrays announcing more than 100000 elements are skipped:
 * hiredis allocates the element table from the announced count before any
 * element arrives (its behaviour, not ours).
 */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "limits.h"
#include "log.h"
#include "quota.h"
#include "resplimit.h"
#include "store.h"
#include "store_redis.h"

enum { MAX_ELEMENTS = 100000, NVARIANTS = 128 };

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int listen_fd = -1, port;
static const char *stream; /* the replies still to play, under lock */
static size_t stream_len;
static int conn_open_now; /* the server holds a client connection */
static char tmpdir[64];
static struct rm_config *configs[NVARIANTS];

#define FUZZ_ASSERT(cond, what)                                                          \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "fuzz_reply: %s: %s\n", what, #cond);                        \
            abort();                                                                     \
        }                                                                                \
    } while (0)

static void send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) {
            if (w < 0 && errno == EINTR)
                continue;
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

/* Bytes of the first complete reply in s[0..n), 0 when there is none. */
static size_t first_reply(const char *s, size_t n, redisReply **out)
{
    redisReader *rd = redisReaderCreate();
    void *reply = NULL;
    size_t used = 0;

    if (rd == NULL)
        abort();
    if (redisReaderFeed(rd, s, n) == REDIS_OK &&
        redisReaderGetReply(rd, &reply) == REDIS_OK && reply != NULL)
        used = n - (rd->len - rd->pos);
    redisReaderFree(rd);
    if (out)
        *out = reply;
    else if (reply)
        freeReplyObject(reply);
    return used;
}

/* The SENTINEL answer naming a primary is always this server. */
static int sentinel_answer(const redisReply *r, char *buf, size_t len)
{
    char p[16];

    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[1]->type != REDIS_REPLY_STRING)
        return 0;
    snprintf(p, sizeof(p), "%d", port);
    return snprintf(buf, len, "*2\r\n$9\r\n127.0.0.1\r\n$%zu\r\n%s\r\n", strlen(p), p);
}

/* Answer one command; returns 0 when the connection is to be closed. The
 * reply is copied under the lock: the input belongs to the fuzzer and is gone
 * as soon as the client has read the last reply. */
static int answer(int fd, const redisReply *cmd)
{
    int sentinel = cmd->type == REDIS_REPLY_ARRAY && cmd->elements > 0 &&
                   cmd->element[0]->type == REDIS_REPLY_STRING &&
                   strcasecmp(cmd->element[0]->str, "SENTINEL") == 0;
    redisReply *r = NULL;
    char fixed[128];

    pthread_mutex_lock(&lock);
    if (stream == NULL || stream_len == 0) {
        pthread_mutex_unlock(&lock);
        return 0;
    }
    size_t used = first_reply(stream, stream_len, sentinel ? &r : NULL);
    size_t n = used ? used : stream_len;
    char *chunk = malloc(n);
    if (chunk == NULL)
        abort();
    memcpy(chunk, stream, n);
    stream += n;
    stream_len -= n;
    pthread_mutex_unlock(&lock);
    int k = sentinel ? sentinel_answer(r, fixed, sizeof(fixed)) : 0;
    if (r)
        freeReplyObject(r);
    if (k > 0)
        send_all(fd, fixed, (size_t)k);
    else
        send_all(fd, chunk, n);
    free(chunk);
    return used != 0;
}

static void serve_connection(int fd)
{
    redisReader *rd = redisReaderCreate();
    char buf[16384];
    int open = 1;

    if (rd == NULL)
        abort();
    while (open) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0 || redisReaderFeed(rd, buf, (size_t)n) != REDIS_OK)
            break;
        void *cmd;
        while (open && redisReaderGetReply(rd, &cmd) == REDIS_OK && cmd != NULL) {
            open = answer(fd, cmd);
            freeReplyObject(cmd);
        }
        if (rd->err)
            break;
    }
    redisReaderFree(rd);
    close(fd);
}

static void *server(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = accept(listen_fd, NULL, NULL);
        if (fd < 0)
            continue;
        pthread_mutex_lock(&lock);
        conn_open_now = 1;
        pthread_mutex_unlock(&lock);
        serve_connection(fd);
        pthread_mutex_lock(&lock);
        conn_open_now = 0;
        pthread_cond_broadcast(&cond);
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

static struct rm_config *make_config(int v)
{
    char path[128], err[600];
    snprintf(path, sizeof(path), "%s/v%d.conf", tmpdir, v);
    FILE *fp = fopen(path, "w");

    if (fp == NULL)
        abort();
    fprintf(fp, "redis = {\n");
    if (v & 8)
        fprintf(fp, "  sentinels = [ \"127.0.0.1:%d\" ]; master = \"fuzzmaster\";\n",
                port);
    else
        fprintf(fp, "  host = \"127.0.0.1\"; port = %d;\n", port);
    if (v & 1)
        fprintf(fp, "  password = \"fuzz-secret\";\n");
    if ((v & 3) == 3)
        fprintf(fp, "  username = \"fuzz-user\";\n");
    if (v & 4)
        fprintf(fp, "  db = 3;\n");
    if (v & 32)
        fprintf(fp, "  events_maxlen = 0;\n");
    fprintf(fp,
            "  prefix = \"fz:\"; connect_timeout_ms = 5000; command_timeout_ms = 5000;\n"
            "  pool_size = 1; local_max_entries = 100; };\n");
    if (v & 16)
        fprintf(fp, "on_store_error = \"local\";\n");
    fprintf(fp, "limits = { messages_per_minute = 3; recipients_per_hour = 50;\n"
                "  sender_messages_per_day = 7; sender_recipients_per_minute = 9; };\n"
                "customers = ( { name = \"acme\"; sasl = [ \"acme-relay\" ]; } );\n");
    fclose(fp);
    struct rm_config *cfg = cfg_load(path, err, sizeof(err));
    if (cfg == NULL) {
        fprintf(stderr, "fuzz_reply: %s\n", err);
        abort();
    }
    unlink(path);
    return cfg;
}

static void cleanup(void)
{
    for (int i = 0; i < NVARIANTS; i++)
        cfg_free(configs[i]);
    if (tmpdir[0])
        rmdir(tmpdir);
}

static void setup(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof(sa);
    pthread_t tid;

    if (listen_fd >= 0)
        return;
    log_set_level(LOG_LVL_DEBUG);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/fuzz_reply.XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        abort();
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        getsockname(listen_fd, (struct sockaddr *)&sa, &len) != 0 ||
        listen(listen_fd, 16) != 0) {
        perror("fuzz_reply: listen");
        abort();
    }
    port = ntohs(sa.sin_port);
    if (pthread_create(&tid, NULL, server, NULL) != 0)
        abort();
    pthread_detach(tid);
    atexit(cleanup);
}

static void check_err(int rc, const char *err, const char *what)
{
    FUZZ_ASSERT(rc == 0 || rc == -1, what);
    if (rc != 0) {
        FUZZ_ASSERT(strnlen(err, STORE_ERR_MAX) < STORE_ERR_MAX, "error text terminated");
        FUZZ_ASSERT(err[0] != '\0', "a store error without a reason");
    }
}

static void do_lookup(struct store *s, const char *login)
{
    struct store_lookup_req req = {login, "acme", "mail.acme.example"};
    struct store_lookup_res res;
    char err[STORE_ERR_MAX] = "";

    memset(&res, 0x5a, sizeof(res));
    int rc = store_lookup(s, &req, &res, err);
    check_err(rc, err, "lookup result");
    if (rc != 0)
        return;
    FUZZ_ASSERT(strnlen(res.customer, sizeof(res.customer)) < sizeof(res.customer),
                "customer terminated");
    FUZZ_ASSERT(strnlen(res.dom_level, sizeof(res.dom_level)) < sizeof(res.dom_level),
                "dom_level terminated");
    FUZZ_ASSERT(res.nfields >= 0 && res.nfields <= STORE_FIELDS_MAX, "nfields");
    /* What the policy engine does with the fields next. */
    for (int i = 0; i < res.nfields; i++) {
        long long v;
        FUZZ_ASSERT(strnlen(res.name[i], STORE_FIELD_LEN) < STORE_FIELD_LEN, "name");
        FUZZ_ASSERT(strnlen(res.value[i], STORE_FIELD_LEN) < STORE_FIELD_LEN, "value");
        int id = lim_field_find(res.name[i]);
        if (id >= 0 && lim_parse_value(id, res.value[i], &v) == 0)
            FUZZ_ASSERT(lim_check_value(id, v) == 0, "a staff limit out of range");
    }
}

static void do_charge(struct store *s, const struct rm_config *cfg, long long nrcpt,
                      long long *charged_ms, int *admitted, int *local)
{
    struct quota_req q;
    struct quota_result res;
    struct lim_set lim;
    char err[STORE_ERR_MAX] = "", text[256];
    struct store_event ev = {"4XyZ",        "acme", "bob",     "bob@acme.example",
                             "a@x.example", "",     "tempfail"};

    cfg_effective_limits(cfg, cfg_customer_find(cfg, "acme"), &lim);
    FUZZ_ASSERT(quota_build(&q, cfg->prefix, "acme", "bob@acme.example", &lim, nrcpt) ==
                    0,
                "quota_build");
    q.event = &ev;
    memset(&res, 0x5a, sizeof(res));
    int rc = store_charge(s, &q, &res, err);
    check_err(rc, err, "charge result");
    *admitted = 0;
    if (rc != 0)
        return;
    if (res.admitted) {
        *admitted = 1;
        *charged_ms = res.charged_ms;
        *local = res.local;
        return;
    }
    FUZZ_ASSERT(res.counter >= 0 && res.counter < q.n, "refused counter index");
    FUZZ_ASSERT(res.metric == 'm' || res.metric == 'r', "refused metric");
    FUZZ_ASSERT(res.retry_ms >= 0, "retry time");
    quota_refusal_text(&q, &res, "acme", text, sizeof(text));
    FUZZ_ASSERT(strnlen(text, sizeof(text)) < sizeof(text), "refusal text");
}

static void do_refund(struct store *s, const struct rm_config *cfg, long long charged_ms,
                      int local)
{
    struct quota_req q;
    struct lim_set lim;
    char err[STORE_ERR_MAX] = "";

    cfg_effective_limits(cfg, cfg_customer_find(cfg, "acme"), &lim);
    FUZZ_ASSERT(quota_build(&q, cfg->prefix, "acme", "bob@acme.example", &lim, 2) == 0,
                "quota_build");
    q.local = local;
    check_err(store_refund(s, &q, charged_ms, err), err, "refund result");
}

static void do_event(struct store *s)
{
    struct store_event ev = {"", "acme",      "bob",   "bob@acme.example",
                             "", "suspended", "reject"};
    char err[STORE_ERR_MAX] = "";

    check_err(store_event(s, &ev, err), err, "event result");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct timespec until;

    if (size < 1 || size > 65536 || resp_huge_array(data + 1, size - 1, MAX_ELEMENTS))
        return 0;
    setup();
    int v = data[0] % NVARIANTS;
    if (configs[v] == NULL)
        configs[v] = make_config(v);
    const struct rm_config *cfg = configs[v];

    /* The previous input's connections are closed before this one plays. */
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&lock);
    while (conn_open_now)
        if (pthread_cond_timedwait(&cond, &lock, &until) == ETIMEDOUT) {
            fprintf(stderr, "fuzz_reply: the fake server is stuck on a connection\n");
            abort();
        }
    stream = (const char *)data + 1;
    stream_len = size - 1;
    pthread_mutex_unlock(&lock);

    struct store *s = store_redis_new(cfg);
    const char *login = (v & 64) ? "acme-relay" : "";
    long long charged_ms = 0;
    int admitted = 0, local = 0;

    do_lookup(s, login);
    do_charge(s, cfg, 3, &charged_ms, &admitted, &local);
    if (admitted)
        do_refund(s, cfg, charged_ms, local);
    do_event(s);
    int open_now = store_circuit_open(s);
    FUZZ_ASSERT(open_now == 0 || open_now == 1, "circuit_open result");
    (void)store_rcpt_blocked(s, "spamtrap.example");
    (void)store_rcpt_blocked(s, "example");
    do_lookup(s, login);
    do_charge(s, cfg, 1000, &charged_ms, &admitted, &local);
    store_unref(s);

    pthread_mutex_lock(&lock);
    stream = NULL;
    stream_len = 0;
    pthread_mutex_unlock(&lock);
    return 0;
}
