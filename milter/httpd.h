/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * httpd - the Prometheus endpoint: GET /metrics on metrics.listen.
 *
 * Interface:
 *   httpd_start(listen, metrics)   "HOST:PORT" (IPv4 or [IPv6]); NULL on error
 *                                  (logged). Serves from its own thread.
 *   httpd_stop(h)
 *
 * The circuit state is read from the snapshot in force at each scrape.
 */
#ifndef RM_HTTPD_H
#define RM_HTTPD_H

struct metrics;
struct httpd;

struct httpd *httpd_start(const char *listen, struct metrics *m);
void httpd_stop(struct httpd *h);

#endif
