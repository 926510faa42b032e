/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * milterload - a load generator that speaks the milter protocol (version 6)
 * the way Postfix's smtpd does, against any milter, and measures throughput
 * and decision latency.
 *
 *   milterload -s inet:PORT@127.0.0.1 | unix:/path  [options]
 *
 * Each of -c connections is one thread with its own milter connection,
 * replaying what Postfix sends for an SMTP session (captured from Postfix
 * 3.7 with milter_protocol = 6):
 *
 *   O   option negotiation: version 6, every action and protocol step Postfix
 *       offers; the filter's answer decides which events are skipped, which
 *       need no reply (SMFIP_NR_*), and which macros each stage carries
 *       (SMFIF_SETSYMLIST lists replace Postfix's default macro lists)
 *   D C, C                 connect macros (j {daemon_name} {daemon_addr} v _)
 *   D H                    HELO macros (none without TLS; HELO itself is sent
 *                          unless skipped)
 *   per message:  D M, M   {auth_authen} = CUSTOMER (SASL), sender, SIZE=
 *                 D R, R   per recipient (i from the second recipient on)
 *                 D T, T   i
 *                 headers, EOH, body  only when the filter asks for them
 *                 D E, E   i; then the message's reset: A
 *   at the end:   A, Q
 *
 * Options:
 *   -c N     parallel connections (threads)                      default 1
 *   -n N     messages in all                                     default 1000
 *   -m N     messages per connection before it is closed and a
 *            new one opened (as many SMTP sessions)              default 5
 *   -r N     recipients per message                              default 1
 *   -u N     distinct customers: {auth_authen} = PREFIXk for
 *            k = message number mod N; 0: no SASL login          default 100
 *   -S N     distinct senders per customer                       default 1
 *   -p TEXT  customer name prefix                                default "cust"
 *   -o N     first customer number (customer = PREFIX(o + k))   default 0
 *   -b N     message size in bytes (SIZE=, and body if sent)    default 2048
 *   -d SEC   stop starting messages after SEC seconds            default 60
 *   -R N     paced: message k starts at k / N seconds (N messages/s
 *            offered in all, whatever the replies), not as soon as a
 *            thread is free; latency is then measured below
 *            saturation, where it shows the cost of a call rather than
 *            the queue in front of it. 0: as fast as possible       default 0
 *   -t SEC   read timeout per reply                              default 10
 *   -N       set TCP_NODELAY on the milter connections (Postfix does not)
 *   -P PID   report the CPU time and RSS of PID over the run (repeatable)
 *   -L TEXT  a label for the RESULT line
 *   -q       print only the RESULT line
 *
 * Output: a table of messages/s and latency percentiles (p50, p99, p99.9,
 * max, in microseconds) per message (MAIL to the decision: the EOM reply, or
 * an earlier refusal) and per stage, and one machine-readable line
 *   RESULT label=... conns=... msgs=... secs=... rate=... msg_p50=... ...
 * (with -R also late=N: messages that started 1 ms or more behind their
 * time, the sign that the rate offered was more than the filter could take).
 * The exit status is 0 when every message got a decision, 1 when some failed
 * on a protocol or connection error, 2 on bad usage.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

/* The milter protocol, as in libmilter's mfdef.h (kept here so the load
 * generator depends on nothing but libc). */
enum {
    MP_VERSION = 6,
    /* what Postfix 3.7 offers */
    MTA_ACTIONS = 0x1ff,
    MTA_PROTOCOL = 0x1fffff,
    P_NOCONNECT = 0x1,
    P_NOHELO = 0x2,
    P_NOMAIL = 0x4,
    P_NORCPT = 0x8,
    P_NOBODY = 0x10,
    P_NOHDRS = 0x20,
    P_NOEOH = 0x40,
    P_NR_HDR = 0x80,
    P_NODATA = 0x200,
    P_NR_CONN = 0x1000,
    P_NR_HELO = 0x2000,
    P_NR_MAIL = 0x4000,
    P_NR_RCPT = 0x8000,
    P_NR_DATA = 0x10000,
    P_NR_EOH = 0x40000,
    P_NR_BODY = 0x80000,
    MAX_PACKET = 1 << 18,
    BODY_CHUNK = 65535,
};

/* Macro stages (SMFIM_*) and the default lists of Postfix 3.7 (postconf -d). */
enum { ST_CONNECT, ST_HELO, ST_MAIL, ST_RCPT, ST_DATA, ST_EOM, ST_EOH, NSTAGES };
static const char *const default_macros[NSTAGES] = {
    "j {daemon_name} {daemon_addr} v _",
    "{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}",
    "i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} {mail_mailer}",
    "i {rcpt_addr} {rcpt_host} {rcpt_mailer}",
    "i",
    "i",
    "i",
};

/* Latency series: one per message, and one per milter event that waits for
 * a reply. */
enum { L_MSG, L_CONN, L_MAIL, L_RCPT, L_DATA, L_EOM, NLAT };
static const char *const lat_names[NLAT] = {
    "message (MAIL..decision)", "connect", "mail", "rcpt", "data", "eom"};
static const char *const lat_keys[NLAT] = {"msg", "conn", "mail", "rcpt", "data", "eom"};

/* What a message ended with. */
enum { O_ACCEPT, O_TEMPFAIL, O_REJECT, O_HELD, O_DISCARD, O_ERROR, NOUT };
static const char *const out_names[NOUT] = {"accepted", "tempfail", "reject",
                                            "held",     "discard",  "error"};

struct options {
    const char *socket;
    int conns;
    long msgs;
    int per_conn;
    int rcpts;
    long customers;
    long senders;
    const char *prefix;
    long first;
    long size;
    double duration;
    long rate; /* -R: messages/s offered, 0 unpaced */
    int timeout;
    int nodelay;
    int pids[8];
    int npids;
    const char *label;
    int quiet;
};

static struct options opt = {
    .conns = 1,
    .msgs = 1000,
    .per_conn = 5,
    .rcpts = 1,
    .customers = 100,
    .senders = 1,
    .prefix = "cust",
    .size = 2048,
    .duration = 60,
    .timeout = 10,
    .label = "",
};

static atomic_long next_msg;
static atomic_long late_starts; /* -R: messages started 1 ms or more late */
static double start_time;
static char body[BODY_CHUNK]; /* filled once, read by every thread */
static atomic_int stop_all;
static double deadline;

struct series {
    uint64_t *v; /* nanoseconds */
    size_t n, cap;
};

struct worker {
    pthread_t tid;
    int id;
    struct series lat[NLAT];
    long outcome[NOUT];
    long connections;
    char err[256];
};

/* One milter connection as the MTA sees it. */
struct conn {
    int fd;
    struct worker *w;
    unsigned long actions, proto;
    char *macros[NSTAGES]; /* the lists in force, space separated */
    char *in;              /* one reply packet */
    size_t inlen;
    char out[16384]; /* pending output: packets queued, sent with the next flush */
    size_t outlen;
};

/* What a message carries into the macros. */
struct msgctx {
    char login[128];
    char sender[192];
    char qid[16];
    char rcpt[192];
    int have_qid;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "milterload: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static void series_add(struct series *s, uint64_t ns)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 1024;
        s->v = realloc(s->v, s->cap * sizeof(*s->v));
        if (s->v == NULL)
            die("out of memory");
    }
    s->v[s->n++] = ns;
}

static int fail(struct conn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->w->err, sizeof(c->w->err), fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- packets ----------------------------------------------------------- */

static int flush_out(struct conn *c);
static int send_all(struct conn *c, const void *buf, size_t len);

/* Packets go into an output buffer, as into Postfix's VSTREAM, and leave in
 * one write when a reply is awaited (or the buffer is full). */
static int queue_packet(struct conn *c, char cmd, const void *data, size_t len)
{
    uint32_t n = htonl((uint32_t)(len + 1));

    if (c->outlen + 5 + len > sizeof(c->out)) {
        if (flush_out(c) != 0)
            return -1;
        if (5 + len > sizeof(c->out)) { /* a body chunk: header, then data */
            char hdr[5];
            memcpy(hdr, &n, 4);
            hdr[4] = cmd;
            return send_all(c, hdr, 5) == 0 && send_all(c, data, len) == 0 ? 0 : -1;
        }
    }
    memcpy(c->out + c->outlen, &n, 4);
    c->out[c->outlen + 4] = cmd;
    if (len)
        memcpy(c->out + c->outlen + 5, data, len);
    c->outlen += 5 + len;
    return 0;
}

static int send_all(struct conn *c, const void *buf, size_t len)
{
    size_t off = 0;

    while (off < len) {
        ssize_t k = send(c->fd, (const char *)buf + off, len - off, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return fail(c, "send: %s", k < 0 ? strerror(errno) : "closed");
        off += (size_t)k;
    }
    return 0;
}

static int flush_out(struct conn *c)
{
    int rc = send_all(c, c->out, c->outlen);
    c->outlen = 0;
    return rc;
}

static int read_full(struct conn *c, void *buf, size_t len)
{
    size_t off = 0;

    while (off < len) {
        ssize_t k = recv(c->fd, (char *)buf + off, len - off, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k == 0)
            return fail(c, "the filter closed the connection");
        if (k < 0)
            return fail(c, "recv: %s",
                        errno == EAGAIN || errno == EWOULDBLOCK ? "timed out"
                                                                : strerror(errno));
        off += (size_t)k;
    }
    return 0;
}

/* One reply packet into c->in (command byte first); returns its command. */
static int read_packet(struct conn *c)
{
    uint32_t n;

    if (read_full(c, &n, 4) != 0)
        return -1;
    n = ntohl(n);
    if (n == 0 || n > MAX_PACKET)
        return fail(c, "bad packet length %u", n);
    if (read_full(c, c->in, n) != 0)
        return -1;
    c->in[n] = '\0';
    c->inlen = n;
    return (unsigned char)c->in[0];
}

/* ---- macros ------------------------------------------------------------ */

static const char *macro_value(const char *name, int stage, const struct msgctx *m)
{
    if (strcmp(name, "j") == 0 || strcmp(name, "{daemon_name}") == 0)
        return "relay.bench.test";
    if (strcmp(name, "{daemon_addr}") == 0)
        return "127.0.0.1";
    if (strcmp(name, "v") == 0)
        return "Postfix 3.7.11";
    if (strcmp(name, "_") == 0)
        return "unknown [127.0.0.1]";
    if (m == NULL)
        return NULL;
    if (strcmp(name, "i") == 0)
        return m->have_qid ? m->qid : NULL;
    if (m->login[0] && strcmp(name, "{auth_type}") == 0)
        return "PLAIN";
    if (m->login[0] && strcmp(name, "{auth_authen}") == 0)
        return m->login;
    if (stage == ST_MAIL && strcmp(name, "{mail_addr}") == 0)
        return m->sender;
    if (stage == ST_MAIL && strcmp(name, "{mail_mailer}") == 0)
        return "smtp";
    if (stage == ST_RCPT && strcmp(name, "{rcpt_addr}") == 0)
        return m->rcpt;
    if (stage == ST_RCPT && strcmp(name, "{rcpt_host}") == 0)
        return "[127.0.0.1]:25";
    if (stage == ST_RCPT && strcmp(name, "{rcpt_mailer}") == 0)
        return "smtp";
    return NULL;
}

/* 'D' + the event's command byte + name/value pairs; Postfix sends the
 * packet even when no macro of the list has a value. */
static int queue_macros(struct conn *c, int stage, char cmd, const struct msgctx *m)
{
    char buf[2048], name[128];
    size_t len = 0;
    const char *p = c->macros[stage];

    buf[len++] = cmd;
    while (*p) {
        size_t k = strcspn(p, " ,");
        if (k > 0 && k < sizeof(name)) {
            memcpy(name, p, k);
            name[k] = '\0';
            const char *v = macro_value(name, stage, m);
            if (v != NULL) {
                size_t vl = strlen(v);
                if (len + k + vl + 2 > sizeof(buf))
                    return fail(c, "macros too long");
                memcpy(buf + len, name, k + 1);
                len += k + 1;
                memcpy(buf + len, v, vl + 1);
                len += vl + 1;
            }
        }
        p += k;
        p += strspn(p, " ,");
    }
    return queue_packet(c, 'D', buf, len);
}

/* ---- events ------------------------------------------------------------ */

/* Final replies of a command. Modification actions and progress come before
 * the final reply (at EOM); 'q' (quarantine) marks the message held. */
enum { R_CONTINUE, R_ACCEPT, R_TEMPFAIL, R_REJECT, R_DISCARD, R_SKIP };

static int await_reply(struct conn *c, int *held)
{
    for (;;) {
        int cmd = read_packet(c);
        switch (cmd) {
        case -1:
            return -1;
        case 'c':
            return R_CONTINUE;
        case 'a':
            return R_ACCEPT;
        case 't':
            return R_TEMPFAIL;
        case 'r':
            return R_REJECT;
        case 'd':
            return R_DISCARD;
        case 's':
            return R_SKIP;
        case 'y':
            return c->inlen > 1 && c->in[1] == '5' ? R_REJECT : R_TEMPFAIL;
        case 'q':
            if (held)
                *held = 1;
            continue;
        case 'p':
        case 'h':
        case 'i':
        case 'm':
        case 'e':
        case 'b':
        case '+':
        case '-':
        case '2':
        case 'l':
            continue;
        case '4':
        case 'f':
            return R_TEMPFAIL;
        default:
            return fail(c, "unexpected reply '%c' (0x%02x)", cmd, cmd);
        }
    }
}

/* One event: its macros, then the command unless the filter skips it, then
 * (unless the filter said it needs no reply) the reply, timed into lat. */
static int event(struct conn *c, int stage, char cmd, const void *data, size_t len,
                 unsigned long skip, unsigned long noreply, const struct msgctx *m,
                 struct series *lat, int *held)
{
    if (stage >= 0 && queue_macros(c, stage, cmd, m) != 0)
        return -1;
    if (c->proto & skip)
        return R_CONTINUE; /* the macros go out with the next flush */
    if (queue_packet(c, cmd, data, len) != 0)
        return -1;
    /* No reply wanted (SMFIP_NR_*): like Postfix, leave the packet in the
     * buffer; it goes out with the next command that awaits a reply. */
    if (c->proto & noreply)
        return R_CONTINUE;
    uint64_t t0 = now_ns();
    if (flush_out(c) != 0)
        return -1;
    int r = await_reply(c, held);
    if (r >= 0 && lat != NULL)
        series_add(lat, now_ns() - t0);
    return r;
}

/* ---- a session --------------------------------------------------------- */

static void free_conn(struct conn *c)
{
    struct worker *w = c->w;

    if (c->fd >= 0)
        close(c->fd);
    for (int i = 0; i < NSTAGES; i++)
        free(c->macros[i]);
    free(c->in);
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    c->w = w;
}

static int dial(struct conn *c)
{
    const char *s = opt.socket;
    struct timeval tv = {opt.timeout, 0};

    if (strncmp(s, "unix:", 5) == 0 || strncmp(s, "local:", 6) == 0 || s[0] == '/') {
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        const char *path = s[0] == '/' ? s : strchr(s, ':') + 1;
        if (strlen(path) >= sizeof(sun.sun_path))
            die("socket path too long: %s", path);
        strcpy(sun.sun_path, path);
        c->fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sun, sizeof(sun)) != 0)
            return fail(c, "connect %s: %s", s, strerror(errno));
    } else {
        /* inet:PORT@127.0.0.1 (libmilter's spelling) */
        struct sockaddr_in sin = {.sin_family = AF_INET};
        int port;
        char host[64];
        if (sscanf(s, "inet:%d@%63s", &port, host) != 2 || port < 1 || port > 65535 ||
            inet_pton(AF_INET, host, &sin.sin_addr) != 1)
            die("socket must be inet:PORT@IPv4 or unix:/path, not %s", s);
        sin.sin_port = htons((uint16_t)port);
        c->fd = socket(AF_INET, SOCK_STREAM, 0);
        if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sin, sizeof(sin)) != 0)
            return fail(c, "connect %s: %s", s, strerror(errno));
        int one = 1;
        if (opt.nodelay)
            setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return 0;
}

static uint32_t get32(const char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return ntohl(v);
}

static void put32(char *p, uint32_t v)
{
    v = htonl(v);
    memcpy(p, &v, 4);
}

static int negotiate(struct conn *c)
{
    char o[12];

    put32(o, MP_VERSION);
    put32(o + 4, MTA_ACTIONS);
    put32(o + 8, MTA_PROTOCOL);
    if (queue_packet(c, 'O', o, sizeof(o)) != 0 || flush_out(c) != 0)
        return -1;
    int cmd = read_packet(c);
    if (cmd < 0)
        return -1;
    if (cmd != 'O' || c->inlen < 13)
        return fail(c, "negotiation: reply '%c' of %zu bytes", cmd, c->inlen);
    if (get32(c->in + 1) < 2)
        return fail(c, "negotiation: filter protocol version %u", get32(c->in + 1));
    c->actions = get32(c->in + 5) & MTA_ACTIONS;
    c->proto = get32(c->in + 9) & MTA_PROTOCOL;
    for (int i = 0; i < NSTAGES; i++)
        c->macros[i] = strdup(default_macros[i]);
    /* SMFIF_SETSYMLIST: (uint32 stage, NUL-terminated list)... */
    size_t off = 13;
    while (off + 5 <= c->inlen) {
        uint32_t st = get32(c->in + off);
        const char *list = c->in + off + 4;
        size_t l = strnlen(list, c->inlen - off - 4);
        if (st < NSTAGES) {
            free(c->macros[st]);
            c->macros[st] = strndup(list, l);
        }
        off += 4 + l + 1;
    }
    for (int i = 0; i < NSTAGES; i++)
        if (c->macros[i] == NULL)
            die("out of memory");
    return 0;
}

static int open_session(struct conn *c)
{
    char buf[256];
    size_t len;
    uint16_t port = htons((uint16_t)(40000 + c->w->id));

    if ((c->in = malloc(MAX_PACKET + 1)) == NULL)
        die("out of memory");
    if (dial(c) != 0 || negotiate(c) != 0)
        return -1;
    c->w->connections++;
    /* C: hostname, family '4', port (network order), address */
    len = (size_t)snprintf(buf, sizeof(buf), "[127.0.0.1]") + 1;
    buf[len++] = '4';
    memcpy(buf + len, &port, 2);
    len += 2;
    memcpy(buf + len, "127.0.0.1", 10);
    len += 10;
    int r = event(c, ST_CONNECT, 'C', buf, len, P_NOCONNECT, P_NR_CONN, NULL,
                  &c->w->lat[L_CONN], NULL);
    if (r < 0)
        return -1;
    if (r != R_CONTINUE && r != R_ACCEPT)
        return fail(c, "the filter refused the connection");
    r = event(c, ST_HELO, 'H', "client.bench.test", 18, P_NOHELO, P_NR_HELO, NULL, NULL,
              NULL);
    return r < 0 ? -1 : 0;
}

static void close_session(struct conn *c)
{
    if (c->fd >= 0 && queue_packet(c, 'A', NULL, 0) == 0 &&
        queue_packet(c, 'Q', NULL, 0) == 0)
        flush_out(c);
    free_conn(c);
}

/* Headers, EOH and body, each only when the filter wants it. */
static int content(struct conn *c, struct msgctx *m)
{
    char hdr[512];
    int r;

    if (!(c->proto & P_NOHDRS)) {
        const char *h[][2] = {{"From", m->sender},
                              {"To", m->rcpt},
                              {"Subject", "milterload"},
                              {"Message-ID", m->qid}};
        for (size_t i = 0; i < sizeof(h) / sizeof(h[0]); i++) {
            int n = snprintf(hdr, sizeof(hdr), "%s%c%s", h[i][0], '\0', h[i][1]);
            r = event(c, -1, 'L', hdr, (size_t)n + 1, P_NOHDRS, P_NR_HDR, m, NULL, NULL);
            if (r != R_CONTINUE)
                return r;
        }
    }
    /* Postfix sends the EOH macros only with EOH itself */
    if (!(c->proto & P_NOEOH)) {
        r = event(c, ST_EOH, 'N', NULL, 0, P_NOEOH, P_NR_EOH, m, NULL, NULL);
        if (r != R_CONTINUE)
            return r;
    }
    if (c->proto & P_NOBODY)
        return R_CONTINUE;
    for (long left = opt.size; left > 0;) {
        size_t n = left > BODY_CHUNK ? BODY_CHUNK : (size_t)left;
        r = event(c, -1, 'B', body, n, P_NOBODY, P_NR_BODY, m, NULL, NULL);
        if (r == R_SKIP)
            return R_CONTINUE;
        if (r != R_CONTINUE)
            return r;
        left -= (long)n;
    }
    return R_CONTINUE;
}

static int outcome_of(int r)
{
    switch (r) {
    case R_TEMPFAIL:
        return O_TEMPFAIL;
    case R_REJECT:
        return O_REJECT;
    case R_DISCARD:
        return O_DISCARD;
    default:
        return O_ACCEPT;
    }
}

/* One message; returns its outcome, or -1 on a connection error. */
static int message(struct conn *c, long k)
{
    struct worker *w = c->w;
    struct msgctx m;
    char buf[512];
    int n, r, held = 0, accepted = 0;
    long cust = opt.customers > 0 ? k % opt.customers : 0;
    long snd = opt.customers > 0 ? (k / opt.customers) % opt.senders : k % opt.senders;

    memset(&m, 0, sizeof(m));

    if (opt.customers > 0)
        snprintf(m.login, sizeof(m.login), "%s%ld", opt.prefix, opt.first + cust);
    snprintf(m.sender, sizeof(m.sender), "s%ld@%s%ld.example", snd, opt.prefix,
             opt.first + cust);
    snprintf(m.qid, sizeof(m.qid), "%03X%08lX", (unsigned)w->id & 0xfff,
             (unsigned long)k & 0xffffffffUL);
    uint64_t t0 = now_ns();

    /* MAIL FROM:<sender> SIZE=n (plus the HELO macros still queued) */
    n = snprintf(buf, sizeof(buf), "<%s>%cSIZE=%ld", m.sender, '\0', opt.size);
    r = event(c, ST_MAIL, 'M', buf, (size_t)n + 1, P_NOMAIL, P_NR_MAIL, &m,
              &w->lat[L_MAIL], NULL);
    if (r < 0)
        return -1;
    accepted = r == R_ACCEPT;
    if (r != R_CONTINUE && r != R_ACCEPT)
        goto done;
    int nok = 0;
    for (int i = 0; i < opt.rcpts; i++) {
        snprintf(m.rcpt, sizeof(m.rcpt), "r%d@dest%d.example", i, (int)(k % 50));
        if (accepted) {
            nok++;
            continue;
        }
        n = snprintf(buf, sizeof(buf), "<%s>", m.rcpt);
        r = event(c, ST_RCPT, 'R', buf, (size_t)n + 1, P_NORCPT, P_NR_RCPT, &m,
                  &w->lat[L_RCPT], NULL);
        if (r < 0)
            return -1;
        if (r == R_CONTINUE || r == R_ACCEPT)
            nok++;
        /* Postfix creates the queue file, and so the queue id, at the first
         * accepted recipient */
        m.have_qid = nok > 0;
    }
    if (nok == 0)
        goto done; /* every recipient refused: no DATA */
    m.have_qid = 1;
    if (!accepted) {
        r = event(c, ST_DATA, 'T', NULL, 0, P_NODATA, P_NR_DATA, &m, &w->lat[L_DATA],
                  NULL);
        if (r < 0)
            return -1;
        accepted = r == R_ACCEPT;
        if (r != R_CONTINUE && r != R_ACCEPT)
            goto done;
    }
    if (!accepted) {
        r = content(c, &m);
        if (r < 0)
            return -1;
        if (r != R_CONTINUE && r != R_ACCEPT)
            goto done;
        if (queue_macros(c, ST_EOM, 'E', &m) != 0 || queue_packet(c, 'E', NULL, 0) != 0)
            return -1;
        uint64_t t1 = now_ns();
        if (flush_out(c) != 0 || (r = await_reply(c, &held)) < 0)
            return -1;
        series_add(&w->lat[L_EOM], now_ns() - t1);
    }
done:
    series_add(&w->lat[L_MSG], now_ns() - t0);
    /* The transaction's end: Postfix resets the milter after every message.
     * The abort needs no reply, so Postfix leaves it in its stream buffer,
     * and it goes out in one write with the next command. Sending it alone
     * would let Nagle hold the next command until the filter's delayed ACK
     * (40 ms on Linux), a stall Postfix never sees. */
    if (queue_packet(c, 'A', NULL, 0) != 0)
        return -1;
    if (held && outcome_of(r) == O_ACCEPT)
        return O_HELD;
    return outcome_of(r);
}

/* -R: waits for message k's time. A message 1 ms or more late starts at once
 * and is counted; the schedule stays fixed, so a filter that falls behind
 * gets the missed messages in a burst, as an MTA's queue would send them. */
static void pace(long k)
{
    double at = start_time + (double)k / (double)opt.rate, now = now_s();

    if (now - at >= 0.001) {
        atomic_fetch_add(&late_starts, 1);
        return;
    }
    if (at <= now)
        return;
    struct timespec ts = {(time_t)at, (long)((at - (double)(time_t)at) * 1e9)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

static void *run_worker(void *arg)
{
    struct worker *w = arg;
    struct conn c = {.fd = -1, .w = w};
    int in_conn = 0, errors = 0;

    for (;;) {
        if (atomic_load(&stop_all) || now_s() > deadline)
            break;
        long k = atomic_fetch_add(&next_msg, 1);
        if (k >= opt.msgs)
            break;
        if (opt.rate > 0)
            pace(k);
        if (c.fd < 0) {
            if (open_session(&c) != 0) {
                w->outcome[O_ERROR]++;
                free_conn(&c);
                if (++errors >= 10)
                    break; /* a filter that keeps failing: stop, say why */
                continue;
            }
            in_conn = 0;
        }
        int o = message(&c, k);
        if (o < 0) {
            w->outcome[O_ERROR]++;
            free_conn(&c);
            if (++errors >= 10)
                break;
            continue;
        }
        w->outcome[o]++;
        if (++in_conn >= opt.per_conn)
            close_session(&c);
    }
    if (c.fd >= 0)
        close_session(&c);
    else
        free_conn(&c);
    return NULL;
}

/* ---- results ----------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile, in microseconds. */
static double pct(const struct series *s, double p)
{
    if (s->n == 0)
        return 0;
    size_t i = (size_t)(p / 100.0 * (double)s->n + 0.999999);
    if (i < 1)
        i = 1;
    if (i > s->n)
        i = s->n;
    return (double)s->v[i - 1] / 1000.0;
}

struct cpu_sample {
    double cpu_s; /* utime + stime, every thread */
    long rss_kb;
};

static int proc_sample(int pid, struct cpu_sample *out)
{
    char path[64], buf[4096];
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    if ((f = fopen(path, "r")) == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* fields after the command name, which may hold spaces: find its ')' */
    char *p = strrchr(buf, ')');
    unsigned long long ut = 0, st = 0;
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
               &st) != 2)
        return -1;
    out->cpu_s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
    out->rss_kb = -1;
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    if ((f = fopen(path, "r")) != NULL) {
        while (fgets(buf, sizeof(buf), f))
            if (sscanf(buf, "VmRSS: %ld", &out->rss_kb) == 1)
                break;
        fclose(f);
    }
    return 0;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: milterload -s inet:PORT@127.0.0.1|unix:/path [-c conns] [-n msgs]\n"
            "         [-m msgs-per-conn] [-r rcpts] [-u customers] [-S senders]\n"
            "         [-p prefix] [-o first] [-b size] [-d secs] [-R rate] [-t secs]\n"
            "         [-N] [-P pid]... [-L label] [-q]\n");
    exit(2);
}

static long num(const char *s, long lo, long hi, const char *what)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi)
        die("%s: %s is not a number in %ld..%ld", what, s, lo, hi);
    return v;
}

int main(int argc, char **argv)
{
    int ch;

    while ((ch = getopt(argc, argv, "s:c:n:m:r:u:S:p:o:b:d:R:t:NP:L:q")) != -1) {
        switch (ch) {
        case 's':
            opt.socket = optarg;
            break;
        case 'c':
            opt.conns = (int)num(optarg, 1, 4096, "-c");
            break;
        case 'n':
            opt.msgs = num(optarg, 1, 1000000000L, "-n");
            break;
        case 'm':
            opt.per_conn = (int)num(optarg, 1, 1000000, "-m");
            break;
        case 'r':
            opt.rcpts = (int)num(optarg, 1, 10000, "-r");
            break;
        case 'u':
            opt.customers = num(optarg, 0, 1000000000L, "-u");
            break;
        case 'S':
            opt.senders = num(optarg, 1, 1000000000L, "-S");
            break;
        case 'p':
            opt.prefix = optarg;
            break;
        case 'o':
            opt.first = num(optarg, 0, 1000000000L, "-o");
            break;
        case 'b':
            opt.size = num(optarg, 0, 100000000L, "-b");
            break;
        case 'd':
            opt.duration = (double)num(optarg, 1, 86400, "-d");
            break;
        case 'R':
            opt.rate = num(optarg, 0, 10000000L, "-R");
            break;
        case 't':
            opt.timeout = (int)num(optarg, 1, 3600, "-t");
            break;
        case 'N':
            opt.nodelay = 1;
            break;
        case 'P':
            if (opt.npids == (int)(sizeof(opt.pids) / sizeof(opt.pids[0])))
                die("too many -P");
            opt.pids[opt.npids++] = (int)num(optarg, 1, 1 << 30, "-P");
            break;
        case 'L':
            opt.label = optarg;
            break;
        case 'q':
            opt.quiet = 1;
            break;
        default:
            usage();
        }
    }
    if (opt.socket == NULL || optind != argc)
        usage();

    struct worker *ws = calloc((size_t)opt.conns, sizeof(*ws));
    struct cpu_sample before[8], after[8];
    if (ws == NULL)
        die("out of memory");
    for (int i = 0; i < opt.npids; i++)
        if (proc_sample(opt.pids[i], &before[i]) != 0)
            die("cannot read /proc/%d", opt.pids[i]);
    static const char line[] =
        "The quick brown fox jumps over the lazy dog, a load test body line.\r\n";
    for (size_t i = 0; i < sizeof(body); i++)
        body[i] = line[i % (sizeof(line) - 1)];
    double t0 = now_s();
    deadline = t0 + opt.duration;
    start_time = t0;
    for (int i = 0; i < opt.conns; i++) {
        ws[i].id = i;
        if (pthread_create(&ws[i].tid, NULL, run_worker, &ws[i]) != 0)
            die("cannot start thread %d", i);
    }
    for (int i = 0; i < opt.conns; i++)
        pthread_join(ws[i].tid, NULL);
    double secs = now_s() - t0;
    for (int i = 0; i < opt.npids; i++)
        if (proc_sample(opt.pids[i], &after[i]) != 0)
            after[i] = before[i];

    /* merge */
    struct series all[NLAT];
    memset(all, 0, sizeof(all));
    long out[NOUT] = {0}, conns = 0;
    const char *err = NULL;
    for (int i = 0; i < opt.conns; i++) {
        for (int l = 0; l < NLAT; l++)
            for (size_t j = 0; j < ws[i].lat[l].n; j++)
                series_add(&all[l], ws[i].lat[l].v[j]);
        for (int o = 0; o < NOUT; o++)
            out[o] += ws[i].outcome[o];
        conns += ws[i].connections;
        if (ws[i].err[0] && err == NULL)
            err = ws[i].err;
    }
    for (int l = 0; l < NLAT; l++)
        qsort(all[l].v, all[l].n, sizeof(uint64_t), cmp_u64);
    long done = all[L_MSG].n;
    double rate = secs > 0 ? (double)done / secs : 0;

    if (!opt.quiet) {
        printf("milterload: %s, %d connection(s), %d message(s) per connection, "
               "%d recipient(s), %ld customer(s) x %ld sender(s)\n",
               opt.socket, opt.conns, opt.per_conn, opt.rcpts, opt.customers,
               opt.senders);
        printf("%ld messages in %.3f s over %ld milter connections: %.1f messages/s\n",
               done, secs, conns, rate);
        printf("outcomes:");
        for (int o = 0; o < NOUT; o++)
            printf(" %s %ld", out_names[o], out[o]);
        printf("\n");
        printf("%-26s %9s %9s %9s %9s %9s\n", "latency (us)", "n", "p50", "p99", "p99.9",
               "max");
        for (int l = 0; l < NLAT; l++) {
            if (all[l].n == 0)
                continue;
            printf("%-26s %9zu %9.0f %9.0f %9.0f %9.0f\n", lat_names[l], all[l].n,
                   pct(&all[l], 50), pct(&all[l], 99), pct(&all[l], 99.9),
                   pct(&all[l], 100));
        }
        for (int i = 0; i < opt.npids; i++)
            printf("pid %d: cpu %.3f s (%.1f us/message), rss %ld -> %ld kB\n",
                   opt.pids[i], after[i].cpu_s - before[i].cpu_s,
                   done ? (after[i].cpu_s - before[i].cpu_s) * 1e6 / (double)done : 0,
                   before[i].rss_kb, after[i].rss_kb);
        if (opt.rate > 0)
            printf("paced at %ld messages/s: %ld started 1 ms or more late\n", opt.rate,
                   atomic_load(&late_starts));
        if (err)
            printf("first error: %s\n", err);
    }
    printf("RESULT label=%s conns=%d msgs=%ld secs=%.3f rate=%.1f",
           opt.label[0] ? opt.label : "-", opt.conns, done, secs, rate);
    for (int o = 0; o < NOUT; o++)
        printf(" %s=%ld", out_names[o], out[o]);
    for (int l = 0; l < NLAT; l++)
        printf(" %s_p50=%.0f %s_p99=%.0f %s_p999=%.0f %s_max=%.0f", lat_keys[l],
               pct(&all[l], 50), lat_keys[l], pct(&all[l], 99), lat_keys[l],
               pct(&all[l], 99.9), lat_keys[l], pct(&all[l], 100));
    double cpu_total = 0;
    for (int i = 0; i < opt.npids; i++) {
        double d = after[i].cpu_s - before[i].cpu_s;
        cpu_total += d;
        printf(" cpu%d_us=%.1f rss%d_before=%ld rss%d_after=%ld", i,
               done ? d * 1e6 / (double)done : 0, i, before[i].rss_kb, i,
               after[i].rss_kb);
    }
    if (opt.npids)
        printf(" cpu_us=%.1f", done ? cpu_total * 1e6 / (double)done : 0);
    if (opt.rate > 0)
        printf(" late=%ld", atomic_load(&late_starts));
    printf("\n");
    if (err && opt.quiet)
        fprintf(stderr, "milterload: first error: %s\n", err);
    for (int l = 0; l < NLAT; l++)
        free(all[l].v);
    for (int i = 0; i < opt.conns; i++)
        for (int l = 0; l < NLAT; l++)
            free(ws[i].lat[l].v);
    free(ws);
    return out[O_ERROR] ? 1 : 0;
}
