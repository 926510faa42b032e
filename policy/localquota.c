/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * localquota - in-memory sliding window counters; see localquota.h.
 */
#include "localquota.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "xalloc.h"

struct localquota_entry {
    struct localquota_entry *next;
    long long expire_ms;
    long long e, m, r, pm, pr;
    char key[];
};

struct localquota {
    pthread_mutex_t lock;
    struct localquota_entry **bucket;
    size_t nbuckets, count, max;
};

static size_t hash(const char *s, size_t len)
{
    size_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

struct localquota *localquota_new(size_t max_entries)
{
    struct localquota *lq = xcalloc(1, sizeof(*lq));

    lq->max = max_entries;
    lq->nbuckets = max_entries / 2 + 1;
    lq->bucket = xcalloc(lq->nbuckets, sizeof(*lq->bucket));
    pthread_mutex_init(&lq->lock, NULL);
    return lq;
}

void localquota_free(struct localquota *lq)
{
    for (size_t i = 0; i < lq->nbuckets; i++)
        for (struct localquota_entry *e = lq->bucket[i], *n; e; e = n) {
            n = e->next;
            free(e);
        }
    free(lq->bucket);
    pthread_mutex_destroy(&lq->lock);
    free(lq);
}

/* Drop every expired entry. O(table) but only run when the table is full, so
 * a full table of mostly dead entries still takes new subjects. */
static void sweep(struct localquota *lq, long long now_ms)
{
    for (size_t i = 0; i < lq->nbuckets; i++)
        for (struct localquota_entry **pp = &lq->bucket[i]; *pp;) {
            struct localquota_entry *e = *pp;
            if (e->expire_ms > now_ms) {
                pp = &e->next;
                continue;
            }
            *pp = e->next;
            free(e);
            lq->count--;
        }
}

/* Find the live entry for key, dropping expired ones met on the way; with
 * create, add it when absent (NULL when the table is full). */
static struct localquota_entry *find(struct localquota *lq, const struct quota_counter *c,
                                     long long now_ms, int create)
{
    struct localquota_entry **head = &lq->bucket[hash(c->key, c->keylen) % lq->nbuckets];
    struct localquota_entry **pp = head;

    while (*pp) {
        struct localquota_entry *e = *pp;
        if (e->expire_ms <= now_ms) {
            *pp = e->next;
            free(e);
            lq->count--;
            continue;
        }
        if (strcmp(e->key, c->key) == 0)
            return e;
        pp = &e->next;
    }
    if (create && lq->count >= lq->max)
        sweep(lq, now_ms);
    if (!create || lq->count >= lq->max)
        return NULL;
    /* Not xcalloc: without memory the table is as good as full, and the
     * caller answers that (xalloc.h). */
    struct localquota_entry *e = calloc(1, sizeof(*e) + c->keylen + 1);
    if (e == NULL)
        return NULL;
    memcpy(e->key, c->key, c->keylen + 1);
    e->e = -1;
    e->next = *head;
    *head = e;
    lq->count++;
    return e;
}

/* Bring an entry to the window of now: the same roll as relay.lua's load(). */
static void roll(struct localquota_entry *e, long long epoch)
{
    if (e->e == epoch)
        return;
    if (e->e == epoch - 1) {
        e->pm = e->m;
        e->pr = e->r;
    } else {
        e->pm = e->pr = 0;
    }
    e->m = e->r = 0;
    e->e = epoch;
}

long long localquota_share_limit(long long limit, double share)
{
    if (limit <= 0)
        return limit; /* unlimited stays unlimited, 0 stays 0 */
    long long v = (long long)floor((double)limit * share);
    return v < 1 ? 1 : v; /* a customer allowed anything keeps at least one */
}

static int over(double prev, long long cur, double f, long long cost, long long lim)
{
    return lim >= 0 && prev * (1 - f) + (double)cur + (double)cost > (double)lim;
}

int localquota_charge(struct localquota *lq, const struct quota_req *q, double share,
                      long long now_ms, struct quota_result *res)
{
    struct localquota_entry *ent[QUOTA_MAX_COUNTERS];

    memset(res, 0, sizeof(*res));
    pthread_mutex_lock(&lq->lock);
    for (int i = 0; i < q->n; i++) {
        const struct quota_counter *c = &q->c[i];
        long long w = c->window_ms, epoch = now_ms / w;
        double f = (double)(now_ms % w) / (double)w;
        long long lm = localquota_share_limit(c->lim_msg, share);
        long long lr = localquota_share_limit(c->lim_rcpt, share);
        if ((ent[i] = find(lq, c, now_ms, 1)) == NULL) {
            pthread_mutex_unlock(&lq->lock);
            return -1;
        }
        roll(ent[i], epoch);
        int om = over((double)ent[i]->pm, ent[i]->m, f, 1, lm);
        if (om || over((double)ent[i]->pr, ent[i]->r, f, q->nrcpt, lr)) {
            res->counter = i;
            res->metric = om ? 'm' : 'r';
            res->local_limit = om ? lm : lr;
            res->retry_ms = w - now_ms % w; /* coarse: the next window edge */
            pthread_mutex_unlock(&lq->lock);
            return 0;
        }
    }
    for (int i = 0; i < q->n; i++) {
        ent[i]->m += 1;
        ent[i]->r += q->nrcpt;
        ent[i]->expire_ms = (ent[i]->e + 2) * q->c[i].window_ms;
    }
    pthread_mutex_unlock(&lq->lock);
    res->admitted = 1;
    res->charged_ms = now_ms;
    return 0;
}

void localquota_refund(struct localquota *lq, const struct quota_req *q,
                       long long charged_ms, long long now_ms)
{
    pthread_mutex_lock(&lq->lock);
    for (int i = 0; i < q->n; i++) {
        struct localquota_entry *e = find(lq, &q->c[i], now_ms, 0);
        long long epoch = charged_ms / q->c[i].window_ms;
        if (e == NULL)
            continue;
        long long *m = e->e == epoch ? &e->m : e->e == epoch + 1 ? &e->pm : NULL;
        long long *r = e->e == epoch ? &e->r : e->e == epoch + 1 ? &e->pr : NULL;
        if (m != NULL) {
            *m = *m > 0 ? *m - 1 : 0;
            *r = *r > q->nrcpt ? *r - q->nrcpt : 0;
        }
    }
    pthread_mutex_unlock(&lq->lock);
}

size_t localquota_count(struct localquota *lq)
{
    pthread_mutex_lock(&lq->lock);
    size_t n = lq->count;
    pthread_mutex_unlock(&lq->lock);
    return n;
}
