/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * cfglex - checks on the raw text of a config file; see cfglex.h.
 *
 * Why a lexer and not a look at the line libconfig reports: a key's line is
 * where its name is, and the value may follow on another line, after a
 * comment, or share the line with other keys. Judging every number token of
 * the file where it stands has no such blind spots.
 */
#include "cfglex.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lexer {
    const char *t;
    size_t len, i;
    int line;
};

static int at(const struct lexer *lx, size_t k)
{
    return lx->i + k < lx->len ? (unsigned char)lx->t[lx->i + k] : -1;
}

/* Moves past one character, counting lines. */
static void advance(struct lexer *lx)
{
    if (lx->t[lx->i] == '\n')
        lx->line++;
    lx->i++;
}

static void skip_to_eol(struct lexer *lx)
{
    while (lx->i < lx->len && lx->t[lx->i] != '\n')
        lx->i++;
}

static void skip_block_comment(struct lexer *lx)
{
    lx->i += 2;
    while (lx->i < lx->len && !(at(lx, 0) == '*' && at(lx, 1) == '/'))
        advance(lx);
    if (lx->i < lx->len)
        lx->i += 2;
}

static void skip_string(struct lexer *lx)
{
    lx->i++;
    while (lx->i < lx->len && lx->t[lx->i] != '"') {
        if (lx->t[lx->i] == '\\' && lx->i + 1 < lx->len)
            advance(lx);
        advance(lx);
    }
    if (lx->i < lx->len)
        lx->i++;
}

static int is_name_char(int c)
{
    return c >= 0 && (isalnum(c) || c == '_' || c == '-' || c == '*');
}

/*
 * One number token at lx->i (an optional sign, then digits). Returns 0 when
 * libconfig reads it as written, -1 when it is a plain int that would wrap.
 * The magnitude saturates, so any length of digits is judged correctly.
 */
static int number_fits(struct lexer *lx)
{
    const uint64_t cap = (uint64_t)1 << 40;
    int neg = at(lx, 0) == '-', hex;
    uint64_t mag = 0;

    if (at(lx, 0) == '-' || at(lx, 0) == '+')
        lx->i++;
    hex = at(lx, 0) == '0' && (at(lx, 1) == 'x' || at(lx, 1) == 'X');
    if (hex)
        lx->i += 2;
    for (int c; (c = at(lx, 0)) >= 0 && (hex ? isxdigit(c) : isdigit(c)); lx->i++) {
        unsigned d = isdigit(c) ? (unsigned)(c - '0') : (unsigned)(tolower(c) - 'a' + 10);
        mag = mag >= cap ? cap : mag * (hex ? 16 : 10) + d;
    }
    if (!hex && (at(lx, 0) == '.' || at(lx, 0) == 'e' || at(lx, 0) == 'E')) {
        while (at(lx, 0) >= 0 && (isdigit(at(lx, 0)) || strchr(".eE+-", at(lx, 0))))
            lx->i++;
        return 0; /* a float: read as a double, no wrap */
    }
    if (at(lx, 0) == 'L') {
        lx->i += at(lx, 1) == 'L' ? 2 : 1;
        return 0; /* 64-bit, read as written */
    }
    /* A hex literal is taken as 32 raw bits: 0x80000000 would read negative. */
    return mag <= (uint64_t)INT32_MAX + (neg && !hex) ? 0 : -1;
}

int cfglex_check(const char *text, size_t len, int *line, char *what, size_t whatlen)
{
    struct lexer lx = {text, len, 0, 1};

    while (lx.i < lx.len) {
        int c = at(&lx, 0), n = at(&lx, 1);
        size_t start = lx.i;

        if (c == '#' || (c == '/' && n == '/')) {
            skip_to_eol(&lx);
        } else if (c == '/' && n == '*') {
            skip_block_comment(&lx);
        } else if (c == '"') {
            skip_string(&lx);
        } else if (isalpha(c) || c == '*') {
            while (is_name_char(at(&lx, 0)))
                lx.i++;
        } else if (isdigit(c) || ((c == '-' || c == '+') && n >= 0 && isdigit(n))) {
            if (number_fits(&lx) != 0) {
                int w = (int)(lx.i - start) > 40 ? 40 : (int)(lx.i - start);
                *line = lx.line;
                snprintf(what, whatlen,
                         "%.*s does not fit a plain (32-bit) number; "
                         "write it with the L suffix: %.*sL",
                         w, text + start, w, text + start);
                return -1;
            }
        } else if (c == '@' && len - lx.i >= 8 &&
                   memcmp(text + lx.i, "@include", 8) == 0) {
            *line = lx.line;
            snprintf(what, whatlen,
                     "@include is not supported: keep the whole "
                     "configuration in one file");
            return -1;
        } else if (c == '\0') {
            *line = lx.line;
            snprintf(what, whatlen, "a NUL byte in the file");
            return -1;
        } else {
            advance(&lx);
        }
    }
    return 0;
}

/*
 * The whole file as one NUL-terminated string (from fp when given, else from
 * path). A config is a few KiB; the cap keeps a wrong path (a log, a device)
 * from being read without end.
 */
char *cfglex_read(const char *path, FILE *fp, size_t *len, char *err, size_t errlen)
{
    enum { CFG_MAX_BYTES = 4 << 20 };
    FILE *f = fp ? fp : fopen(path, "r");
    char *text = NULL;
    size_t n = 0;

    if (f == NULL)
        goto io_error;
    /* Not xcalloc: a reload that cannot get the memory fails and keeps the
     * configuration in force, rather than ending the daemon (xalloc.h). */
    if ((text = calloc(CFG_MAX_BYTES + 1, 1)) == NULL)
        goto io_error;
    n = fread(text, 1, CFG_MAX_BYTES + 1, f);
    if (ferror(f))
        goto io_error;
    if (n > CFG_MAX_BYTES) {
        snprintf(err, errlen, "%s:0: the file is larger than %d bytes", path,
                 CFG_MAX_BYTES);
        goto fail;
    }
    if (f != fp)
        fclose(f);
    *len = n;
    return text;
io_error:
    snprintf(err, errlen, "%s:0: cannot read the file", path);
fail:
    if (f != NULL && f != fp)
        fclose(f);
    free(text);
    return NULL;
}
