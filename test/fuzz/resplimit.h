/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * resplimit - what the fuzz targets that hand RESP to hiredis skip.
 *
 * Interface:
 *   resp_huge_array(d, n, max)   1 when the bytes announce an array of more
 *                                than max elements (or a count of 19 digits
 *                                and more) anywhere: hiredis allocates the
 *                                element table from the announced count
 *                                before any element arrives (its behaviour,
 *                                not ours). Reads only d[0..n).
 */
#ifndef RM_RESPLIMIT_H
#define RM_RESPLIMIT_H

#include <stddef.h>
#include <stdint.h>

static inline int resp_huge_array(const uint8_t *d, size_t n, unsigned long long max)
{
    for (size_t i = 0; i < n; i++) {
        if (d[i] != '*')
            continue;
        size_t j = i + 1;
        if (j < n && (d[j] == '+' || d[j] == '-'))
            j++;
        unsigned long long v = 0;
        size_t digits = 0;
        while (j < n && d[j] >= '0' && d[j] <= '9' && digits < 20) {
            v = v * 10 + (unsigned)(d[j++] - '0');
            digits++;
        }
        if (digits >= 19 || v > max)
            return 1;
    }
    return 0;
}

#endif
