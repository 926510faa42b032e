/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * xalloc - allocation that exits on out of memory; see xalloc.h.
 */
#include "xalloc.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

static _Noreturn void out_of_memory(size_t size)
{
    msg_fatal("out of memory (%zu bytes)", size);
}

void *xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);

    if (p == NULL)
        out_of_memory(size);
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);

    if (p == NULL)
        out_of_memory(n * size);
    return p;
}

void *xrealloc(void *old, size_t size)
{
    void *p = realloc(old, size ? size : 1);

    if (p == NULL)
        out_of_memory(size);
    return p;
}

char *xstrdup(const char *s)
{
    size_t len = strlen(s) + 1;

    return memcpy(xmalloc(len), s, len);
}

char *xstrdup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}
