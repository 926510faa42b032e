/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * it_concurrency - exact under concurrency: 16 threads spread over TWO store
 * instances (two connection pools, as two milter processes have) race for one
 * customer's quota; exactly the limit is admitted, never one more.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "itest.h"
#include "store_redis.h"

enum { NTHREADS = 16, ATTEMPTS = 25, HOUR_MS = 3600000 };

struct worker {
    struct store *store;
    const struct rm_config *cfg;
    const char *customer;
    long long nrcpt;
    atomic_int *admitted, *refused, *errors;
    pthread_barrier_t *start;
    int index;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    struct quota_req q;
    struct quota_result res;
    char err[STORE_ERR_MAX], sender[64];

    pthread_barrier_wait(w->start);
    for (int i = 0; i < ATTEMPTS; i++) {
        snprintf(sender, sizeof(sender), "t%d-%d@%s.example", w->index, i, w->customer);
        struct lim_set lim;
        cfg_effective_limits(w->cfg, cfg_customer_find(w->cfg, w->customer), &lim);
        if (quota_build(&q, w->cfg->prefix, w->customer, sender, &lim, w->nrcpt) != 0) {
            atomic_fetch_add(w->errors, 1);
            continue;
        }
        if (store_charge(w->store, &q, &res, err) != 0) {
            fprintf(stderr, "thread %d: store error: %s\n", w->index, err);
            atomic_fetch_add(w->errors, 1);
        } else if (res.admitted) {
            atomic_fetch_add(w->admitted, 1);
        } else {
            atomic_fetch_add(w->refused, 1);
        }
    }
    return NULL;
}

/* 16 threads x 25 attempts for customer, threads alternating between the
 * two stores; returns the number admitted. */
static int race(struct store *a, struct store *b, const struct rm_config *cfg,
                const char *customer, long long nrcpt)
{
    pthread_t tid[NTHREADS];
    struct worker w[NTHREADS];
    pthread_barrier_t start;
    atomic_int admitted = 0, refused = 0, errors = 0;

    pthread_barrier_init(&start, NULL, NTHREADS);
    for (int i = 0; i < NTHREADS; i++) {
        w[i] = (struct worker){i % 2 ? b : a, cfg,     customer, nrcpt, &admitted,
                               &refused,      &errors, &start,   i};
        REQUIRE(pthread_create(&tid[i], NULL, work, &w[i]) == 0, "pthread_create");
    }
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(tid[i], NULL);
    pthread_barrier_destroy(&start);
    int total = atomic_load(&admitted) + atomic_load(&refused);
    CHECK(atomic_load(&errors) == 0, "%s: %d store errors", customer,
          atomic_load(&errors));
    CHECK(total == NTHREADS * ATTEMPTS, "%s: %d answers for %d attempts", customer, total,
          NTHREADS * ATTEMPTS);
    return atomic_load(&admitted);
}

int main(void)
{
    char redis[512], limits[1024];

    it_start("it_concurrency");
    redisContext *rc = it_redis();
    it_redis_group(redis, sizeof(redis), "cc:", 2000, 4);
    it_limits_group(limits, sizeof(limits),
                    "messages_per_hour=100;recipients_per_hour=300");
    struct rm_config *cfg = it_config("%s%scustomers = ( { name = \"rcpts\"; limits = { "
                                      "messages_per_hour = -1; }; } );\n",
                                      redis, limits);
    /* two pools, as two milter processes would have */
    struct store *a = store_redis_new(cfg), *b = store_redis_new(cfg);

    it_avoid_boundary(rc, HOUR_MS, 30000);

    /* 400 one-recipient attempts at 100 messages per hour */
    int n = race(a, b, cfg, "msgs", 1);
    CHECK(n == 100, "messages_per_hour 100: %d admitted of 400 attempts", n);
    CHECK_HGET(rc, it_ckey("cc:", 'h', "msgs"), "m", 100);
    CHECK_HGET(rc, it_ckey("cc:", 'h', "msgs"), "r", 100);

    /* 400 four-recipient attempts at 300 recipients per hour (no message
     * limit for this customer): 75 fit */
    n = race(a, b, cfg, "rcpts", 4);
    CHECK(n == 75, "recipients_per_hour 300, 4 each: %d admitted of 400 attempts", n);
    CHECK_HGET(rc, it_ckey("cc:", 'h', "rcpts"), "r", 300);
    CHECK_HGET(rc, it_ckey("cc:", 'h', "rcpts"), "m", 75);

    store_unref(a);
    store_unref(b);
    cfg_free(cfg);
    redisFree(rc);
    return it_done();
}
