/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * xalloc - memory allocation that cannot return NULL.
 *
 * Interface:
 *   xmalloc(size), xcalloc(n, size), xrealloc(p, size), xstrdup(s)
 *       as malloc, calloc, realloc and strdup; xcalloc(0, ...) and
 *       xmalloc(0) return a unique pointer, never NULL
 *   xstrdup_or_null(s)   NULL for NULL, else xstrdup(s)
 *
 * Out of memory is handled here and only here: the process logs it with
 * msg_fatal and exits, so a supervisor restarts it with a clean heap. A
 * daemon that limps on after a failed allocation in the middle of a decision
 * would have to guess an answer; Postfix's mymalloc makes the same choice.
 * The few places that can answer without the memory (a cache that skips an
 * entry, a per-message tempfail) call malloc themselves and say why.
 */
#ifndef RM_XALLOC_H
#define RM_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t size);
char *xstrdup(const char *s);
char *xstrdup_or_null(const char *s);

#endif
