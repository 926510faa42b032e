/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * httpd - /metrics over libmicrohttpd; see httpd.h.
 */
#include "httpd.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "sentinel.h"
#include "snapshot.h"

enum { METRICS_BUF = 256 * 1024 }; /* a cluster of a few hundred nodes */

struct httpd {
    struct MHD_Daemon *d;
    struct metrics *m;
};

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned code, const char *type,
                             char *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result ret = MHD_queue_response(conn, code, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_len, void **state)
{
    struct httpd *h = cls;
    static char not_found[] = "not found: try /metrics\n";

    (void)version, (void)upload, (void)upload_len, (void)state;
    if (strcmp(method, "GET") != 0 || strcmp(url, "/metrics") != 0)
        return reply(conn, MHD_HTTP_NOT_FOUND, "text/plain", not_found,
                     sizeof(not_found) - 1, MHD_RESPMEM_PERSISTENT);
    char *buf = malloc(METRICS_BUF);
    if (buf == NULL)
        return MHD_NO;
    struct snap *s = snap_acquire();
    int open = s ? store_circuit_open(s->store) : 0;
    size_t len = metrics_render(h->m, open, buf, METRICS_BUF);
    if (s != NULL) /* per Redis Cluster node, when there is a cluster */
        len += store_metrics(s->store, buf + len, METRICS_BUF - len);
    snap_release(s);
    return reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4", buf, len,
                 MHD_RESPMEM_MUST_FREE);
}

static int parse_listen(const char *listen, struct sockaddr_storage *ss)
{
    char host[256];
    int port;

    memset(ss, 0, sizeof(*ss));
    if (sentinel_split(listen, host, sizeof(host), &port) != 0)
        return -1;
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((unsigned short)port);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((unsigned short)port);
        return 0;
    }
    return -1;
}

struct httpd *httpd_start(const char *listen, struct metrics *m)
{
    struct sockaddr_storage ss;
    struct httpd *h = calloc(1, sizeof(*h));

    if (h == NULL || parse_listen(listen, &ss) != 0) {
        msg_error("metrics.listen \"%s\": not an IP:PORT", listen);
        free(h);
        return NULL;
    }
    h->m = m;
    unsigned flags =
        MHD_USE_INTERNAL_POLLING_THREAD | (ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    h->d = MHD_start_daemon(flags, 0, NULL, NULL, handle, h, MHD_OPTION_SOCK_ADDR,
                            (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_TIMEOUT,
                            (unsigned)10, MHD_OPTION_END);
    if (h->d == NULL) {
        msg_error("metrics: cannot listen on %s", listen);
        free(h);
        return NULL;
    }
    msg_info("metrics on http://%s/metrics", listen);
    return h;
}

void httpd_stop(struct httpd *h)
{
    if (h == NULL)
        return;
    MHD_stop_daemon(h->d);
    free(h);
}
