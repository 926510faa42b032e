/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_addr - envelope address normalisation (addr.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "testutil.h"

static char out[ADDR_MAX + 1];
static const char *dom;

static int norm(const char *in)
{
    memset(out, 'x', sizeof(out));
    dom = NULL;
    return addr_normalise(in, out, sizeof(out), &dom);
}

static void ok(const char *in, const char *want, const char *want_domain)
{
    int rc = norm(in);

    ck_assert_msg(rc == ADDR_OK, "\"%s\": %d, want ADDR_OK", in, rc);
    ck_assert_str_eq(out, want);
    ck_assert_ptr_nonnull(dom);
    ck_assert_msg(dom >= out && dom <= out + strlen(out), "domain outside out");
    ck_assert_str_eq(dom, want_domain);
}

static void bad(const char *in)
{
    int rc = norm(in);

    ck_assert_msg(rc == ADDR_BAD, "\"%s\": %d, want ADDR_BAD (out \"%.40s\")", in, rc,
                  out);
}

START_TEST(plain_and_bracketed)
{
    ok("<bob@example.com>", "bob@example.com", "example.com");
    ok("bob@example.com", "bob@example.com", "example.com");
    ok("<a.b+tag@sub.example.org>", "a.b+tag@sub.example.org", "sub.example.org");
}
END_TEST

START_TEST(null_sender)
{
    ck_assert_int_eq(norm("<>"), ADDR_NULL);
    ck_assert_str_eq(out, "");
    ck_assert_int_eq(norm(""), ADDR_NULL);
    ck_assert_str_eq(out, "");
    ck_assert_ptr_nonnull(dom);
    ck_assert_str_eq(dom, "");
}
END_TEST

START_TEST(case_folded)
{
    ok("<Bob@Example.COM>", "bob@example.com", "example.com");
    ok("<BOB@EXAMPLE.COM>", "bob@example.com", "example.com");
}
END_TEST

START_TEST(trailing_dot)
{
    ok("<bob@example.com.>", "bob@example.com", "example.com");
    bad("<bob@.>");
}
END_TEST

START_TEST(source_route)
{
    ok("<@relay.example:Bob@Example.com>", "bob@example.com", "example.com");
    ok("<@a.example,@b.example:bob@c.example>", "bob@c.example", "c.example");
    bad("<@relay.example>");
}
END_TEST

START_TEST(no_domain)
{
    ok("<Postmaster>", "postmaster", "");
    ok("bob", "bob", "");
}
END_TEST

START_TEST(empty_parts)
{
    bad("<@example.com>");
    bad("@example.com");
    bad("<bob@>");
}
END_TEST

START_TEST(control_characters)
{
    bad("<bob\r@example.com>");
    bad("<bob@example.com\n>");
    bad("<b\tob@example.com>");
    bad("<bob@exa\x7fmple.com>");
    bad("<\x01@example.com>");
    bad("<@relay:bob\x1b@example.com>");
}
END_TEST

static char *repeat(char c, size_t n, const char *suffix)
{
    char *s = malloc(n + strlen(suffix) + 1);

    ck_assert_ptr_nonnull(s);
    memset(s, c, n);
    strcpy(s + n, suffix);
    return s;
}

START_TEST(part_lengths)
{
    char *local64 = repeat('a', 64, "@example.com");
    char *local65 = repeat('a', 65, "@example.com");
    char *d255 = repeat('d', 253, ".x");
    char *d256 = repeat('d', 254, ".x");
    char in[600], want[600];

    ok(local64, local64, "example.com");
    bad(local65);
    snprintf(in, sizeof(in), "<B@%s>", d255);
    snprintf(want, sizeof(want), "b@%s", d255);
    ok(in, want, d255);
    snprintf(in, sizeof(in), "<b@%s>", d256);
    bad(in);
    /* both parts at their maximum: exactly ADDR_MAX octets */
    snprintf(in, sizeof(in), "%s", local64);
    snprintf(in + 64, sizeof(in) - 64, "@%s", d255);
    ck_assert_uint_eq(strlen(in), ADDR_MAX);
    ck_assert_int_eq(norm(in), ADDR_OK);
    ck_assert_uint_eq(strlen(out), ADDR_MAX);
    free(local64);
    free(local65);
    free(d255);
    free(d256);
}
END_TEST

START_TEST(huge_input)
{
    char *huge = repeat('a', 100000, "@example.com");
    char *huge_domain = repeat('d', 100000, "");

    bad(huge);
    huge_domain[0] = '<';
    huge_domain[1] = 'b';
    huge_domain[2] = '@';
    huge_domain[99999] = '>';
    bad(huge_domain);
    free(huge);
    free(huge_domain);
}
END_TEST

START_TEST(small_output)
{
    char small[8];
    const char *d = NULL;

    memset(small, 'x', sizeof(small));
    ck_assert_int_eq(addr_normalise("<bob@example.com>", small, sizeof(small), &d),
                     ADDR_BAD);
    ck_assert_ptr_nonnull(memchr(small, '\0', sizeof(small)));
    ck_assert_int_eq(addr_normalise("<b@x.y>", small, sizeof(small), &d), ADDR_OK);
    ck_assert_str_eq(small, "b@x.y");
    ck_assert_int_eq(addr_normalise("<bob@example.com>", small, 0, &d), ADDR_BAD);
    ck_assert_int_eq(addr_normalise(NULL, small, sizeof(small), &d), ADDR_BAD);
}
END_TEST

static Suite *addr_suite(void)
{
    Suite *s = suite_create("addr");
    TCase *tc = tcase_create("normalise");

    tcase_add_test(tc, plain_and_bracketed);
    tcase_add_test(tc, null_sender);
    tcase_add_test(tc, case_folded);
    tcase_add_test(tc, trailing_dot);
    tcase_add_test(tc, source_route);
    tcase_add_test(tc, no_domain);
    tcase_add_test(tc, empty_parts);
    tcase_add_test(tc, control_characters);
    tcase_add_test(tc, part_lengths);
    tcase_add_test(tc, huge_input);
    tcase_add_test(tc, small_output);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(addr_suite());
}
