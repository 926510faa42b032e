/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * snapshot - the refcounted config in force; see snapshot.h.
 */
#include "snapshot.h"

#include <pthread.h>
#include <stdlib.h>

#include "log.h"
#include "xalloc.h"

/* The one piece of global mutable state besides the store's pool. The mutex
 * only covers taking a reference to the pointer, never any work on it. */
static pthread_mutex_t snap_lock = PTHREAD_MUTEX_INITIALIZER;
static struct snap *snap_current;
static unsigned long snap_generation;

struct snap *snap_new(struct rm_config *cfg, struct store *store)
{
    struct snap *s = xcalloc(1, sizeof(*s));

    atomic_init(&s->refs, 1);
    s->cfg = cfg;
    s->store = store;
    return s;
}

void snap_publish(struct snap *snap)
{
    pthread_mutex_lock(&snap_lock);
    struct snap *old = snap_current;
    snap->generation = ++snap_generation;
    snap_current = snap;
    pthread_mutex_unlock(&snap_lock);
    snap_release(old);
}

struct snap *snap_acquire(void)
{
    pthread_mutex_lock(&snap_lock);
    struct snap *s = snap_current;
    if (s)
        atomic_fetch_add(&s->refs, 1);
    pthread_mutex_unlock(&snap_lock);
    return s;
}

void snap_release(struct snap *snap)
{
    if (snap == NULL || atomic_fetch_sub(&snap->refs, 1) != 1)
        return;
    store_unref(snap->store);
    cfg_free(snap->cfg);
    free(snap);
}

void snap_shutdown(void)
{
    pthread_mutex_lock(&snap_lock);
    struct snap *old = snap_current;
    snap_current = NULL;
    pthread_mutex_unlock(&snap_lock);
    snap_release(old);
}
