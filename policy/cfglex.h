/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * cfglex - checks on the raw text of a config file, before libconfig reads it.
 *
 * Interface:
 *   cfglex_read(path, fp, &len, err, errlen)
 *       the whole file (from fp when not NULL, else opened by path) as one
 *       NUL-terminated malloc'd string of len bytes; NULL with
 *       "PATH:0: why" in err when it cannot be read or exceeds 4 MiB
 *   cfglex_check(text, len, &line, what, whatlen)
 *       0 when the text is safe to hand to libconfig; -1 with the 1-based
 *       line and a message in what for the first problem:
 *         - a whole number written without the L suffix that does not fit
 *           32 bits (libconfig 1.5 wraps it silently: 4294967295 reads as -1,
 *           which would make a limit unlimited);
 *         - an @include directive (an included file would escape these checks
 *           and the reread of a root-only config after dropping root);
 *         - a NUL byte (libconfig would stop reading there).
 *
 * It is a small lexer of libconfig's syntax: comments (#, //, / * * /),
 * strings with escapes, names and numbers; nothing else is interpreted, so
 * a literal is judged wherever it sits, whatever the key, the line breaks or
 * the comments around it.
 */
#ifndef RM_CFGLEX_H
#define RM_CFGLEX_H

#include <stddef.h>
#include <stdio.h>

char *cfglex_read(const char *path, FILE *fp, size_t *len, char *err, size_t errlen);

int cfglex_check(const char *text, size_t len, int *line, char *what, size_t whatlen);

#endif
