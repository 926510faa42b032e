/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_domain - domain names as the policy compares them (domain.h): the
 * canonical form (case, trailing dot, IDN A-labels), what is refused as not a
 * domain, parent walks and list matching; and the sentinel address parser
 * (sentinel.h), which the config loader also uses to validate
 * redis.sentinels.
 */
#include <stdio.h>
#include <string.h>

#include "domain.h"
#include "sentinel.h"
#include "testutil.h"

/* ---- dom_canonical ---- */

static const struct {
    const char *in, *want;
} canon_cases[] = {
    {"example.com", "example.com"},
    {"Example.COM", "example.com"},
    {"example.com.", "example.com"},
    {"MAIL.Example.Com.", "mail.example.com"},
    {"localhost", "localhost"},
    {"_dmarc.example", "_dmarc.example"},
    {"a-b.1-2.example", "a-b.1-2.example"},
    /* internationalised names meet their ACE spelling at the A-label */
    {"B\xc3\xbc"
     "cher.Example.",
     "xn--bcher-kva.example"},
    {"b\xc3\xbc"
     "cher.example",
     "xn--bcher-kva.example"},
    {"XN--BCHER-KVA.example", "xn--bcher-kva.example"},
    {"xn--bcher-kva.example.", "xn--bcher-kva.example"},
    /* upper-case non-ASCII letters fold like ASCII ones (U+00DC) */
    {"B\xc3\x9c"
     "CHER.EXAMPLE",
     "xn--bcher-kva.example"},
    /* decomposed input (u + U+0308) is the same name as the composed one */
    {"bu\xcc\x88"
     "cher.example",
     "xn--bcher-kva.example"},
    {"M\xc3\xbc"
     "nchen.example",
     "xn--mnchen-3ya.example"},
    {"mail.b\xc3\xbc"
     "cher.example",
     "mail.xn--bcher-kva.example"},
};

START_TEST(canonical_forms)
{
    char out[DOM_MAX + 1];

    memset(out, 'x', sizeof(out));
    int rc = dom_canonical(canon_cases[_i].in, out, sizeof(out));
    ck_assert_msg(rc == 0, "\"%s\" refused", canon_cases[_i].in);
    ck_assert_str_eq(out, canon_cases[_i].want);
}
END_TEST

static const char *const bad_names[] = {
    "",
    ".",
    "..",
    "a..b",
    ".example.com",
    "example.com..",
    "exa mple.com",
    " example.com",
    "example.com ",
    "bob@example.com",
    "@example.com",
    "exa\x01mple.com",
    "example.com\r\n",
    "exa\tmple.com",
    "exa%mple.com",
    "exa/mple.com",
    "exa:mple.com",
    "b\xfc"
    "cher.example", /* Latin-1, not UTF-8 */
    "b\xc3"
    ".example",         /* truncated sequence */
    "\xff\xfe.example", /* bytes that are never UTF-8 */
    "b\xc3\xbc"
    "cher\x01.example", /* control byte in an IDN */
    "b\xc3\xbc"
    "cher..example", /* empty label in an IDN */
    "b\xc3\xbc"
    "cher.exa mple", /* space in an IDN */
};

START_TEST(malformed_refused)
{
    char out[DOM_MAX + 1] = "";

    ck_assert_msg(dom_canonical(bad_names[_i], out, sizeof(out)) == -1,
                  "bad name #%d accepted as \"%s\"", _i, out);
}
END_TEST

/* n copies of c followed by tail */
static void fill(char *buf, size_t n, char c, const char *tail)
{
    memset(buf, c, n);
    strcpy(buf + n, tail);
}

START_TEST(label_length_limit)
{
    char in[512], out[DOM_MAX + 1];

    fill(in, DOM_LABEL_MAX, 'a', ".example");
    ck_assert_int_eq(dom_canonical(in, out, sizeof(out)), 0);
    ck_assert_str_eq(out, in);
    fill(in, DOM_LABEL_MAX + 1, 'a', ".example");
    ck_assert_int_eq(dom_canonical(in, out, sizeof(out)), -1);
    fill(in, DOM_LABEL_MAX + 1, 'a', "");
    ck_assert_int_eq(dom_canonical(in, out, sizeof(out)), -1);
    /* the A-label is what must fit: 60 letters and a u-umlaut make one of
     * "xn--" + 60 + "-" + its code, longer than 63 */
    fill(in, 60, 'a', "\xc3\xbc.example");
    ck_assert_int_eq(dom_canonical(in, out, sizeof(out)), -1);
}
END_TEST

/* A name of exactly len octets: labels of 63 separated by dots. */
static void name_of(char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (i % 64 == 63) ? '.' : 'a';
    if (buf[len - 1] == '.') { /* no empty last label */
        buf[len - 1] = 'b';
        buf[len - 2] = '.';
    }
    buf[len] = '\0';
}

START_TEST(name_length_limit)
{
    char in[600], out[DOM_MAX + 8];

    name_of(in, DOM_MAX);
    ck_assert_int_eq(dom_canonical(in, out, sizeof(out)), 0);
    ck_assert_uint_eq(strlen(out), DOM_MAX);
    strcat(in, "."); /* the root dot does not count */
    ck_assert_int_eq(dom_canonical(in, out, sizeof(out)), 0);
    ck_assert_uint_eq(strlen(out), DOM_MAX);
    name_of(in, DOM_MAX + 1);
    ck_assert_int_eq(dom_canonical(in, out, sizeof(out)), -1);
    name_of(in, 590);
    ck_assert_int_eq(dom_canonical(in, out, sizeof(out)), -1);
    /* 248 octets of UTF-8, but 254 as A-labels: the canonical form counts */
    strcpy(in, "b\xc3\xbc"
               "cher.");
    name_of(in + strlen(in), DOM_MAX - strlen("xn--bcher-kva."));
    ck_assert_int_eq(dom_canonical(in, out, sizeof(out)), 0);
    ck_assert_uint_eq(strlen(out), DOM_MAX);
    strcpy(in, "b\xc3\xbc"
               "cher.");
    name_of(in + strlen(in), DOM_MAX + 1 - strlen("xn--bcher-kva."));
    ck_assert_int_eq(dom_canonical(in, out, sizeof(out)), -1);
}
END_TEST

START_TEST(output_buffer_respected)
{
    char out[8];

    memset(out, 'x', sizeof(out));
    ck_assert_int_eq(dom_canonical("example.com", out, sizeof(out)), -1);
    ck_assert_ptr_nonnull(memchr(out, '\0', sizeof(out)));
    ck_assert_int_eq(dom_canonical("b\xc3\xbc"
                                   "cher.example",
                                   out, sizeof(out)),
                     -1);
    ck_assert_ptr_nonnull(memchr(out, '\0', sizeof(out)));
    ck_assert_int_eq(dom_canonical("a.b.c", out, sizeof(out)), 0);
    ck_assert_str_eq(out, "a.b.c");
}
END_TEST

/* ---- parents and lists ---- */

START_TEST(parent_walk)
{
    const char *d = "a.b.c";

    ck_assert_ptr_eq(dom_parent(d), d + 2);
    ck_assert_str_eq(dom_parent(d), "b.c");
    ck_assert_str_eq(dom_parent(dom_parent(d)), "c");
    ck_assert_ptr_null(dom_parent(dom_parent(dom_parent(d))));
    ck_assert_ptr_null(dom_parent("localhost"));
    int steps = 0;
    for (const char *p = "w.x.y.z.example"; p != NULL; p = dom_parent(p))
        steps++;
    ck_assert_int_eq(steps, 5);
}
END_TEST

START_TEST(list_matching)
{
    char *list[] = {"spamtrap.example", "example.org", "mail.example.org"};
    const size_t n = sizeof(list) / sizeof(list[0]);

    ck_assert_ptr_eq(dom_in_list(list, n, "spamtrap.example"), list[0]);
    ck_assert_ptr_eq(dom_in_list(list, n, "x.spamtrap.example"), list[0]);
    ck_assert_ptr_eq(dom_in_list(list, n, "a.b.c.spamtrap.example"), list[0]);
    /* a suffix that is not at a label boundary is another domain */
    ck_assert_ptr_null(dom_in_list(list, n, "notspamtrap.example"));
    ck_assert_ptr_null(dom_in_list(list, n, "spamtrap.example.net"));
    ck_assert_ptr_null(dom_in_list(list, n, "example")); /* a parent is not covered */
    ck_assert_ptr_null(dom_in_list(list, n, "trap.example"));
    /* the nearest listed parent is the one named */
    ck_assert_ptr_eq(dom_in_list(list, n, "www.mail.example.org"), list[2]);
    ck_assert_ptr_eq(dom_in_list(list, n, "mail.example.org"), list[2]);
    ck_assert_ptr_eq(dom_in_list(list, n, "www.example.org"), list[1]);
    ck_assert_ptr_null(dom_in_list(list, 0, "spamtrap.example"));
    ck_assert_ptr_null(dom_in_list(NULL, 0, "spamtrap.example"));
}
END_TEST

/* ---- sentinel_split ---- */

static void split_ok(const char *spec, const char *host, int port)
{
    char h[64];
    int p = -7;

    ck_assert_msg(sentinel_split(spec, h, sizeof(h), &p) == 0, "\"%s\" refused", spec);
    ck_assert_str_eq(h, host);
    ck_assert_int_eq(p, port);
}

START_TEST(sentinel_good_forms)
{
    split_ok("host:26379", "host", 26379);
    split_ok("10.0.0.1:26379", "10.0.0.1", 26379);
    split_ok("sentinel-1.example.net:1", "sentinel-1.example.net", 1);
    split_ok("h:65535", "h", 65535);
    split_ok("[::1]:26379", "::1", 26379);
    split_ok("[2001:db8::7]:26380", "2001:db8::7", 26380);
}
END_TEST

static const char *const bad_specs[] = {
    "",           "host",        ":26379",    "host:",     "host:0",       "host:65536",
    "host:-1",    "host:26379x", "host:263 ", "host:0x10", "[::1]",        "[::1]26379",
    "[::1:26379", "[]:26379",    "[::1]:",    "[::1]:0",   "host:9999999", "host:x",
};

START_TEST(sentinel_bad_forms)
{
    char h[64];
    int p = -7;

    ck_assert_msg(sentinel_split(bad_specs[_i], h, sizeof(h), &p) == -1,
                  "\"%s\" accepted as host \"%s\" port %d", bad_specs[_i], h, p);
    ck_assert_int_eq(p, -7); /* nothing half-written */
}
END_TEST

START_TEST(sentinel_host_too_long)
{
    char h[8];
    int p;

    ck_assert_int_eq(sentinel_split("1234567:1", h, sizeof(h), &p), 0);
    ck_assert_str_eq(h, "1234567");
    ck_assert_int_eq(sentinel_split("12345678:1", h, sizeof(h), &p), -1);
    ck_assert_int_eq(sentinel_split("[1234:5678::1]:1", h, sizeof(h), &p), -1);
}
END_TEST

static Suite *domain_suite(void)
{
    Suite *s = suite_create("domain");
    TCase *canon = tcase_create("canonical");
    TCase *walk = tcase_create("walk");
    TCase *sent = tcase_create("sentinel");

    tcase_add_loop_test(canon, canonical_forms, 0,
                        (int)(sizeof(canon_cases) / sizeof(canon_cases[0])));
    tcase_add_loop_test(canon, malformed_refused, 0,
                        (int)(sizeof(bad_names) / sizeof(bad_names[0])));
    tcase_add_test(canon, label_length_limit);
    tcase_add_test(canon, name_length_limit);
    tcase_add_test(canon, output_buffer_respected);
    tcase_add_test(walk, parent_walk);
    tcase_add_test(walk, list_matching);
    tcase_add_test(sent, sentinel_good_forms);
    tcase_add_loop_test(sent, sentinel_bad_forms, 0,
                        (int)(sizeof(bad_specs) / sizeof(bad_specs[0])));
    tcase_add_test(sent, sentinel_host_too_long);
    suite_add_tcase(s, canon);
    suite_add_tcase(s, walk);
    suite_add_tcase(s, sent);
    return s;
}

int main(void)
{
    return tu_run(domain_suite());
}
