/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * hash - the hash the process-local tables (lookcache.h, lastread.h) place
 * their entries by.
 *
 * Interface:
 *   hash_bytes(buf, len)   FNV-1a over the bytes, then MurmurHash3's final
 *                          mix: FNV's low bits depend on the input's low bits
 *                          only, so keys that share a suffix would crowd into
 *                          few sets of a table indexed by h % n
 */
#ifndef RM_HASH_H
#define RM_HASH_H

#include <stddef.h>
#include <stdint.h>

static inline uint32_t hash_bytes(const char *buf, size_t len)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)buf[i]) * 16777619u;
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

#endif
