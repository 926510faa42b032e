/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * noop_raw - a reference filter for the Postfix comparison without
 * libmilter: milter protocol 6 spoken directly, one thread per MTA
 * connection reading whole buffers and writing each reply with one call.
 * It negotiates what relaymilter negotiates (the same skipped stages, no
 * reply to CONNECT, the same macro lists) and answers "continue" at once.
 *
 *   noop_raw [-a] inet:PORT@127.0.0.1 | unix:PATH
 *
 * What Postfix loses with it is the cost of the milter protocol itself, the
 * floor for any filter; noop_libmilter's extra cost is libmilter's.
 *
 * -a answers DATA with "accept" instead of "continue": Postfix then sends no
 * end-of-message to the filter and hands it no connection for the cleanup
 * server. relaymilter does that only with aborted_charge = "keep": by default
 * it must see the end of the message to know that a charge stands (doc/OPERATIONS:
 * an aborted message costs no quota). The difference between the two runs
 * is what that end-of-message stage costs.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define NR_MAX (1u << 20) /* largest packet accepted */

/* Protocol constants of milter version 6 (libmilter/mfdef.h). */
enum { F_QUARANTINE = 0x20, F_SETSYMLIST = 0x100 };
enum {
    P_NOHELO = 0x8,
    P_NOBODY = 0x10,
    P_NOHDRS = 0x20,
    P_NOEOH = 0x40,
    P_NOUNKNOWN = 0x100,
    P_NR_CONN = 0x1000
};
enum { M_ENVFROM = 2, M_DATA = 4, M_EOM = 5 };

static int accept_at_data; /* -a: "accept" at DATA */

struct buf {
    unsigned char *p;
    size_t len, cap;
};

static int put(struct buf *b, const void *d, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = (b->len + n) * 2;
        unsigned char *p = realloc(b->p, cap);
        if (p == NULL)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
    return 0;
}

static void put32(struct buf *b, uint32_t v)
{
    v = htonl(v);
    put(b, &v, 4);
}

static void symlist(struct buf *b, uint32_t stage, const char *list)
{
    put32(b, stage);
    put(b, list, strlen(list) + 1);
}

/* The reply to OPTNEG, as relaymilter's negotiation makes it; returns the
 * protocol flags agreed. */
static uint32_t optneg(struct buf *out, const unsigned char *d, uint32_t n)
{
    uint32_t v[3] = {6, 0, 0}, f0, f1;
    const uint32_t skip = P_NOHELO | P_NOHDRS | P_NOEOH | P_NOBODY | P_NOUNKNOWN;
    size_t at = out->len;

    if (n >= 12)
        for (int i = 0; i < 3; i++) {
            memcpy(&v[i], d + 4 * i, 4);
            v[i] = ntohl(v[i]);
        }
    f0 = v[1] & (F_QUARANTINE | F_SETSYMLIST);
    f1 = v[2] & (skip | P_NR_CONN);
    put32(out, 0); /* length, set below */
    put(out, "O", 1);
    put32(out, 6);
    put32(out, f0);
    put32(out, f1);
    if (f0 & F_SETSYMLIST) {
        symlist(out, M_ENVFROM, "{auth_authen}");
        symlist(out, M_DATA, "i");
        symlist(out, M_EOM, "i");
    }
    uint32_t len = htonl((uint32_t)(out->len - at - 4));
    memcpy(out->p + at, &len, 4);
    return f1;
}

/* Handles the whole packets in in[0..n); returns the bytes used, or -1 at
 * QUIT or on a protocol error. Replies are appended to out. */
static long packets(const unsigned char *in, size_t n, struct buf *out, int *nr_conn)
{
    static const unsigned char cont[5] = {0, 0, 0, 1, 'c'};
    static const unsigned char acc[5] = {0, 0, 0, 1, 'a'};
    size_t at = 0;

    while (n - at >= 5) {
        uint32_t len;
        memcpy(&len, in + at, 4);
        len = ntohl(len);
        if (len == 0 || len > NR_MAX)
            return -1;
        if (n - at - 4 < len)
            break;
        unsigned char cmd = in[at + 4];
        const unsigned char *d = in + at + 5;
        at += 4 + len;
        switch (cmd) {
        case 'O':
            *nr_conn = (optneg(out, d, len - 1) & P_NR_CONN) != 0;
            break;
        case 'D': /* macros */
        case 'A': /* abort */
        case 'K': /* quit, new connection follows */
            break;
        case 'C':
            if (!*nr_conn)
                put(out, cont, 5);
            break;
        case 'Q':
            return -1;
        case 'T':
            put(out, accept_at_data ? acc : cont, 5);
            break;
        default:
            put(out, cont, 5);
        }
    }
    return (long)at;
}

static void *session(void *arg)
{
    int fd = (int)(intptr_t)arg, nr_conn = 1;
    unsigned char *in = malloc(NR_MAX + 5);
    size_t have = 0;
    struct buf out = {0};

    while (in != NULL) {
        ssize_t r = read(fd, in + have, NR_MAX + 5 - have);
        if (r <= 0)
            break;
        have += (size_t)r;
        out.len = 0;
        long used = packets(in, have, &out, &nr_conn);
        if (out.len > 0 && write(fd, out.p, out.len) != (ssize_t)out.len)
            break;
        if (used < 0)
            break;
        memmove(in, in + used, have - (size_t)used);
        have -= (size_t)used;
    }
    free(in);
    free(out.p);
    close(fd);
    return NULL;
}

static int listener(const char *spec)
{
    int fd, one = 1;

    if (strncmp(spec, "unix:", 5) == 0) {
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", spec + 5);
        unlink(sun.sun_path);
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        umask(0);
        if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0)
            return -1;
    } else {
        struct sockaddr_in sin = {.sin_family = AF_INET};
        if (sscanf(spec, "inet:%hu@", &sin.sin_port) != 1)
            return -1;
        sin.sin_port = htons(sin.sin_port);
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0)
            return -1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0)
            return -1;
    }
    return listen(fd, 128) == 0 ? fd : -1;
}

int main(int argc, char **argv)
{
    int lfd, one = 1;
    pthread_attr_t attr;

    if (argc == 3 && strcmp(argv[1], "-a") == 0) {
        accept_at_data = 1;
        argv++;
        argc--;
    }
    if (argc != 2 || (lfd = listener(argv[1])) < 0) {
        fprintf(stderr, "usage: noop_raw [-a] inet:PORT@127.0.0.1 | unix:PATH\n");
        return 2;
    }
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (;;) {
        pthread_t t;
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0)
            continue;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (pthread_create(&t, &attr, session, (void *)(intptr_t)fd) != 0)
            close(fd);
    }
}
