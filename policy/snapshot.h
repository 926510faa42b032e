/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * snapshot - the configuration in force, shared by all threads and swapped
 * on reload.
 *
 * A snapshot pairs a loaded config with the store built for it. Each message
 * takes a reference when it starts (MAIL FROM) and drops it when it ends, so
 * a reload never changes the rules under a running message; the old snapshot
 * is freed when its last message ends.
 *
 * Interface:
 *   snap_new(cfg, store)      a snapshot owning cfg and one store reference
 *   snap_publish(snap)        make it current (the previous one is released)
 *   snap_acquire()            the current one, referenced; NULL before publish
 *   snap_release(snap)        drop a reference
 *   snap_shutdown()           release the current one at exit
 */
#ifndef RM_SNAPSHOT_H
#define RM_SNAPSHOT_H

#include <stdatomic.h>

#include "config.h"
#include "store.h"

struct snap {
    atomic_int refs;
    unsigned long generation;
    struct rm_config *cfg;
    struct store *store;
    struct metrics *metrics; /* not owned: lives as long as the process; may be NULL */
};

struct snap *snap_new(struct rm_config *cfg, struct store *store);
void snap_publish(struct snap *snap);
struct snap *snap_acquire(void);
void snap_release(struct snap *snap);
void snap_shutdown(void);

#endif
