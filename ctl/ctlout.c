/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ctlout - messages, times and JSON of relaymilter-ctl; see ctlout.h.
 */
#include "ctlout.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

#include "ctl.h"
#include "identity.h"
#include "login.h"

void ctlout_err(const char *fmt, ...)
{
    va_list ap;

    (void)fflush(stdout); /* a note belongs before the output it is about */
    fputs("relaymilter-ctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

const char *ctlout_shown(const char *s)
{
    static char bufs[CTLOUT_NSHOWN][4 * CTLOUT_SHOWN_MAX + 8];
    static int next;
    char *b = bufs[next];
    size_t n = 0, i;

    next = (next + 1) % CTLOUT_NSHOWN;
    for (i = 0; i < CTLOUT_SHOWN_MAX && s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            n += (size_t)snprintf(b + n, 5, "\\x%02x", c);
        else
            b[n++] = (char)c;
    }
    if (s[i])
        n += (size_t)snprintf(b + n, 4, "...");
    b[n] = '\0';
    return b;
}

void ctlout_utc(long long secs, char *buf, size_t len)
{
    time_t t = (time_t)(secs < 0 ? 0 : secs);
    struct tm tm;

    if (gmtime_r(&t, &tm) == NULL || strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm) == 0)
        snprintf(buf, len, "?");
}

void ctlout_duration(long long ms, char *buf, size_t len)
{
    long long s = (ms + 999) / 1000;

    if (s < 1)
        s = 1;
    if (s >= 3600)
        snprintf(buf, len, "%lldh%02lldm", s / 3600, s % 3600 / 60);
    else if (s >= 60)
        snprintf(buf, len, "%lldm%02llds", s / 60, s % 60);
    else
        snprintf(buf, len, "%llds", s);
}

int ctlout_name_problem(const char *what, const char *name, int derived)
{
    const char *why = identity_name_problem(name, derived);

    if (why == NULL)
        return 0;
    ctlout_err("%s name \"%s\" %s", what, ctlout_shown(name), why);
    return CTL_EUSAGE;
}

int ctlout_login_problem(const char *realm, const char *login, char *out, size_t len)
{
    if (login_canonical(realm, login, out, len) == 0)
        return 0;
    ctlout_err("login \"%s\" cannot be used: it is empty, holds a control character, or "
               "is longer than %d octets in canonical form",
               ctlout_shown(login), LOGIN_MAX);
    return CTL_EUSAGE;
}

/* ---- JSON ------------------------------------------------------------- */

/* Before a value or a member name: a comma unless it is the first. */
static void sep(struct ctlout_json *j)
{
    if (j->after_key) {
        j->after_key = 0;
        return;
    }
    if (j->depth > 0 && j->items[j->depth - 1]++ > 0)
        fputc(',', j->f);
}

void ctlout_json_open(struct ctlout_json *j, char bracket)
{
    sep(j);
    fputc(bracket, j->f);
    if (j->depth < CTLOUT_JSON_DEPTH)
        j->items[j->depth] = 0;
    j->depth++;
}

void ctlout_json_close(struct ctlout_json *j, char bracket)
{
    fputc(bracket, j->f);
    if (--j->depth == 0)
        fputc('\n', j->f);
}

void ctlout_json_key(struct ctlout_json *j, const char *name)
{
    ctlout_json_cstr(j, name);
    fputc(':', j->f);
    j->after_key = 1;
}

/* The length of the UTF-8 sequence at s (at most n octets), 0 when there is
 * none (RFC 3629 section 4: no overlong forms, no surrogates, at most
 * U+10FFFF). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;

    if (s[0] > 0xf4 || len == 0 || len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0) ||
        (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] >= 0x90))
        return 0;
    return len;
}

void ctlout_json_str(struct ctlout_json *j, const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;

    sep(j);
    fputc('"', j->f);
    for (size_t i = 0; i < len; i++) {
        size_t n;
        if (u[i] == '"' || u[i] == '\\')
            fprintf(j->f, "\\%c", u[i]);
        else if (u[i] < 0x20 || u[i] == 0x7f)
            fprintf(j->f, "\\u%04x", u[i]);
        else if (u[i] < 0x80)
            fputc(u[i], j->f);
        else if ((n = utf8_len(u + i, len - i)) == 0)
            fputs("\\ufffd", j->f);
        else {
            fprintf(j->f, "%.*s", (int)n, (const char *)(u + i));
            i += n - 1;
        }
    }
    fputc('"', j->f);
}

void ctlout_json_cstr(struct ctlout_json *j, const char *s)
{
    if (s == NULL) {
        sep(j);
        fputs("null", j->f);
        return;
    }
    ctlout_json_str(j, s, strlen(s));
}

void ctlout_json_int(struct ctlout_json *j, long long v)
{
    sep(j);
    fprintf(j->f, "%lld", v);
}

void ctlout_json_num(struct ctlout_json *j, double d)
{
    sep(j);
    if (isfinite(d))
        fprintf(j->f, "%.17g", d);
    else
        fputs("null", j->f);
}

void ctlout_json_bool(struct ctlout_json *j, int b)
{
    sep(j);
    fputs(b ? "true" : "false", j->f);
}
