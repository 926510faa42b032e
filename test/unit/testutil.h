/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * testutil - shared pieces of the unit tests: temporary config files and a
 * suite runner.
 *
 * Interface:
 *   tu_write_temp(text)          a new temporary file holding text; returns its
 *                                path (malloc'd); the caller unlinks and frees it
 *   tu_load(text, err, errlen)   cfg_load of text written to a temporary file
 *                                (removed again); NULL with err on failure
 *   tu_load_path(text, path...)  the same, also handing back the file's path
 *                                (already removed) so errors can be matched
 *   tu_run(suite)                run a suite, return the process exit status
 *
 * The library's log lines are silenced; RM_UNIT_LOG=1 in the environment sends
 * them (every grade) to stderr.
 */
#ifndef RM_TESTUTIL_H
#define RM_TESTUTIL_H

#include <check.h>
#include <stddef.h>

#include "config.h"

char *tu_write_temp(const char *text);
struct rm_config *tu_load(const char *text, char *err, size_t errlen);
struct rm_config *tu_load_path(const char *text, char *err, size_t errlen, char *path,
                               size_t pathlen);
int tu_run(Suite *s);

#endif
