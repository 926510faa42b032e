/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_identity - address prefixes (netmatch) and the config-side customer
 * identity (identity_fallback).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "identity.h"
#include "netmatch.h"
#include "testutil.h"

static struct net_addr addr(const char *text)
{
    struct net_addr a;

    ck_assert_msg(net_parse_addr(text, &a) == 0, "%s refused", text);
    return a;
}

static struct net_prefix prefix(const char *text, int value)
{
    struct net_prefix p;

    ck_assert_msg(net_parse_prefix(text, &p) == 0, "%s refused", text);
    p.value = value;
    return p;
}

static int contains(const char *pfx, const char *a)
{
    struct net_prefix p = prefix(pfx, 0);
    struct net_addr na = addr(a);
    return net_contains(&p, &na);
}

START_TEST(parse_v4_prefix)
{
    struct net_prefix p = prefix("192.0.2.0/24", 0);
    struct net_addr want = addr("::ffff:192.0.2.0");

    ck_assert_int_eq(p.len, 96 + 24);
    ck_assert_mem_eq(p.addr.b, want.b, 16);
    ck_assert_int_eq(prefix("0.0.0.0/0", 0).len, 96);
    ck_assert_int_eq(prefix("192.0.2.1/32", 0).len, 128);
}
END_TEST

START_TEST(parse_v6_prefix)
{
    struct net_prefix p = prefix("2001:db8::/32", 0);
    struct net_addr want = addr("2001:db8::");

    ck_assert_int_eq(p.len, 32);
    ck_assert_mem_eq(p.addr.b, want.b, 16);
    ck_assert_int_eq(prefix("::/0", 0).len, 0);
    ck_assert_int_eq(prefix("2001:db8::1/128", 0).len, 128);
}
END_TEST

START_TEST(bare_address_is_host_prefix)
{
    ck_assert_int_eq(prefix("192.0.2.7", 0).len, 128);
    ck_assert_int_eq(prefix("2001:db8::7", 0).len, 128);
    ck_assert(contains("192.0.2.7", "192.0.2.7"));
    ck_assert(!contains("192.0.2.7", "192.0.2.8"));
    ck_assert(contains("2001:db8::7", "2001:db8::7"));
    ck_assert(!contains("2001:db8::7", "2001:db8::6"));
}
END_TEST

START_TEST(host_bits_cleared)
{
    struct net_prefix a = prefix("192.0.2.77/24", 0), b = prefix("192.0.2.0/24", 0);
    struct net_prefix c = prefix("2001:db8:abcd:1234::9/36", 0);
    struct net_addr want = addr("2001:db8:a000::");

    ck_assert_int_eq(a.len, b.len);
    ck_assert_mem_eq(a.addr.b, b.addr.b, 16);
    ck_assert_mem_eq(c.addr.b, want.b, 16);
    ck_assert(contains("192.0.2.77/24", "192.0.2.1"));
    ck_assert(contains("192.0.2.77/25", "192.0.2.127"));
    ck_assert(!contains("192.0.2.77/25", "192.0.2.128"));
}
END_TEST

static const char *const bad_prefixes[] = {
    "",
    "/24",
    "192.0.2.0/",
    "192.0.2.0/33",
    "192.0.2.0/-1",
    "192.0.2.0/+24",
    "192.0.2.0/ 24",
    "192.0.2.0/24x",
    "192.0.2.0/24/8",
    "192.0.2.0//24",
    "2001:db8::/129",
    "2001:db8::/1000000000000000000000",
    "192.0.2",
    "192.0.2.0.1/24",
    "300.0.2.0/24",
    " 192.0.2.0/24",
    "garbage",
    "2001:db8:::/32",
    "example.com/24",
    "0123456789012345678901234567890123456789012345678901234567890123456789/8",
};

START_TEST(bad_prefix_refused)
{
    struct net_prefix p;

    ck_assert_msg(net_parse_prefix(bad_prefixes[_i], &p) == -1, "\"%s\" accepted",
                  bad_prefixes[_i]);
}
END_TEST

START_TEST(bad_address_refused)
{
    struct net_addr a;

    ck_assert_int_eq(net_parse_addr("", &a), -1);
    ck_assert_int_eq(net_parse_addr("192.0.2.0/24", &a), -1);
    ck_assert_int_eq(net_parse_addr("256.1.1.1", &a), -1);
    ck_assert_int_eq(net_parse_addr("host.example", &a), -1);
}
END_TEST

START_TEST(family_boundaries)
{
    ck_assert(contains("0.0.0.0/0", "203.0.113.9"));
    ck_assert(!contains("0.0.0.0/0", "2001:db8::1"));
    ck_assert(contains("::/0", "2001:db8::1"));
    ck_assert(contains("::/0", "203.0.113.9"));
    ck_assert(!contains("2001:db8::/32", "203.0.113.9"));
    ck_assert(!contains("10.0.0.0/8", "11.0.0.0"));
    ck_assert(contains("10.0.0.0/8", "10.255.255.255"));
}
END_TEST

START_TEST(ipv4_mapped)
{
    struct net_prefix p = prefix("192.0.2.0/24", 0);
    struct net_addr mapped = addr("::ffff:192.0.2.200");
    struct net_addr a;
    struct sockaddr_in6 s6;
    struct sockaddr_in s4;

    ck_assert(net_contains(&p, &mapped));
    memset(&s6, 0, sizeof(s6));
    s6.sin6_family = AF_INET6;
    ck_assert_int_eq(inet_pton(AF_INET6, "::ffff:192.0.2.9", &s6.sin6_addr), 1);
    ck_assert_int_eq(net_from_sockaddr((struct sockaddr *)&s6, &a), 0);
    ck_assert(net_contains(&p, &a));
    memset(&s4, 0, sizeof(s4));
    s4.sin_family = AF_INET;
    ck_assert_int_eq(inet_pton(AF_INET, "192.0.2.9", &s4.sin_addr), 1);
    struct net_addr b;
    ck_assert_int_eq(net_from_sockaddr((struct sockaddr *)&s4, &b), 0);
    ck_assert_mem_eq(a.b, b.b, 16);
    /* A mapped-form prefix in IPv6 notation means the same network. */
    struct net_prefix q = prefix("::ffff:192.0.2.0/120", 0);
    ck_assert_int_eq(q.len, p.len);
    ck_assert(net_contains(&q, &b));
}
END_TEST

START_TEST(sockaddr_not_ip)
{
    struct sockaddr_un su;
    struct net_addr a;

    memset(&su, 0, sizeof(su));
    su.sun_family = AF_UNIX;
    ck_assert_int_eq(net_from_sockaddr((struct sockaddr *)&su, &a), -1);
    ck_assert_int_eq(net_from_sockaddr(NULL, &a), -1);
}
END_TEST

/* Longest prefix wins whatever order the config listed them in. */
START_TEST(longest_prefix_any_order)
{
    static const int orders[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2},
                                     {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    const char *texts[3] = {"10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24"};
    struct net_prefix t[4];

    for (int o = 0; o < 6; o++) {
        for (int i = 0; i < 3; i++)
            t[i] = prefix(texts[orders[o][i]], orders[o][i]);
        t[3] = prefix("2001:db8::/32", 7);
        net_table_sort(t, 4);
        struct net_addr a = addr("10.1.2.3"), b = addr("10.1.3.3"), c = addr("10.2.0.1");
        struct net_addr d = addr("11.0.0.1"), e = addr("2001:db8::5");
        ck_assert_int_eq(net_table_lookup(t, 4, &a), 2);
        ck_assert_int_eq(net_table_lookup(t, 4, &b), 1);
        ck_assert_int_eq(net_table_lookup(t, 4, &c), 0);
        ck_assert_int_eq(net_table_lookup(t, 4, &d), -1);
        ck_assert_int_eq(net_table_lookup(t, 4, &e), 7);
    }
    struct net_addr any = addr("10.1.2.3");
    ck_assert_int_eq(net_table_lookup(t, 0, &any), -1);
}
END_TEST

static void key_of(const char *text, const char *want)
{
    struct net_addr a = addr(text);
    char buf[64];

    memset(buf, 'x', sizeof(buf));
    net_addr_key(&a, buf, sizeof(buf));
    ck_assert_str_eq(buf, want);
}

START_TEST(addr_key_text)
{
    key_of("192.0.2.5", "192.0.2.5");
    key_of("::ffff:10.0.0.1", "10.0.0.1");
    key_of("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64");
    key_of("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64");
    key_of("2001:db8::1", "2001:db8::/64");
    key_of("::1", "::/64");
}
END_TEST

/* ---- identity_fallback ---- */

static const char *id_conf =
    "customers = (\n"
    "  { name = \"acme\"; sasl = [ \"acme\", \"acme-relay\" ];\n"
    "    networks = [ \"192.0.2.0/24\", \"2001:db8:1::/48\" ]; },\n"
    "  { name = \"sub\"; networks = [ \"192.0.2.128/25\" ]; }\n"
    ");\n";

static void fallback(const char *login, const char *address, const char *want)
{
    char err[512], out[256];
    struct rm_config *cfg = tu_load(id_conf, err, sizeof(err));
    struct net_addr a;

    ck_assert_msg(cfg != NULL, "%s", err);
    if (address != NULL)
        a = addr(address);
    identity_fallback(cfg, login, address ? &a : NULL, out, sizeof(out));
    ck_assert_msg(strcmp(out, want) == 0, "login=%s addr=%s: got \"%s\", want \"%s\"",
                  login ? login : "(null)", address ? address : "(null)", out, want);
    cfg_free(cfg);
}

START_TEST(fallback_sasl)
{
    fallback("acme-relay", "198.51.100.1", "acme");
    fallback("acme", NULL, "acme");
    /* an unmapped login is its own customer under a name no config entry
     * can have, and outranks the network */
    fallback("stranger", "192.0.2.1", "sasl:stranger");
    fallback("sub", NULL, "sasl:sub"); /* a customer's name is not its login */
}
END_TEST

START_TEST(fallback_network)
{
    fallback(NULL, "192.0.2.1", "acme");
    fallback("", "192.0.2.1", "acme");
    fallback("", "192.0.2.200", "sub");
    fallback("", "::ffff:192.0.2.3", "acme");
    fallback("", "2001:db8:1:ff::1", "acme");
}
END_TEST

START_TEST(fallback_ip)
{
    fallback("", "198.51.100.7", "ip:198.51.100.7");
    fallback(NULL, "2001:db8:ffff:1:2:3:4:5", "ip:2001:db8:ffff:1::/64");
    fallback("", NULL, "ip:unknown");
    fallback(NULL, NULL, "ip:unknown");
}
END_TEST

START_TEST(fallback_small_buffer)
{
    char err[512], out[6];
    struct rm_config *cfg = tu_load(id_conf, err, sizeof(err));

    ck_assert_ptr_nonnull(cfg);
    memset(out, 'x', sizeof(out));
    identity_fallback(cfg, "a-very-long-login-name", NULL, out, sizeof(out));
    ck_assert_str_eq(out, "sasl:");
    cfg_free(cfg);
}
END_TEST

static void canon(const char *realm, const char *login, const char *want)
{
    char out[LOGIN_MAX + 1];
    int rc = login_canonical(realm, login, out, sizeof(out));

    if (want == NULL) {
        ck_assert_msg(rc == -1, "\"%s\" (realm %s) accepted as \"%s\"", login,
                      realm ? realm : "-", out);
        return;
    }
    ck_assert_msg(rc == 0 && strcmp(out, want) == 0, "\"%s\" (realm %s): %d \"%s\"",
                  login, realm ? realm : "-", rc, rc == 0 ? out : "");
}

START_TEST(login_forms)
{
    char long_login[LOGIN_MAX + 2];

    canon(NULL, "Bob", "bob");
    canon(NULL, "bob@Relay.Example", "bob@relay.example");
    canon("", "bob", "bob");
    canon("relay.example", "bob", "bob@relay.example");
    canon("relay.example", "BOB", "bob@relay.example");
    canon("relay.example", "bob@relay.example", "bob@relay.example");
    canon("relay.example", "bob@other.example", "bob@other.example");
    /* only ASCII folds: "BÖb" keeps its Ö */
    canon("relay.example",
          "B\xc3\x96"
          "b",
          "b\xc3\x96"
          "b@relay.example");
    canon(NULL, "", NULL);
    canon(NULL, "a\rb", NULL);
    canon(NULL, "a\x7f", NULL);
    memset(long_login, 'x', sizeof(long_login));
    long_login[LOGIN_MAX] = '\0';
    canon(NULL, long_login, long_login);
    canon("r.example", long_login, NULL); /* over the limit with the realm */
    long_login[LOGIN_MAX] = 'x';
    long_login[LOGIN_MAX + 1] = '\0';
    canon(NULL, long_login, NULL);
}
END_TEST

START_TEST(login_small_buffer)
{
    char out[8];

    ck_assert_int_eq(login_canonical("relay.example", "bob", out, sizeof(out)), -1);
    ck_assert_int_eq(login_canonical(NULL, "bob", out, sizeof(out)), 0);
    ck_assert_str_eq(out, "bob");
}
END_TEST

START_TEST(customer_names)
{
    ck_assert_ptr_null(identity_name_problem("acme", 0));
    ck_assert_ptr_null(identity_name_problem("acme:eu-1", 0));
    ck_assert_ptr_null(identity_name_problem("sasl:bob@relay.example", 1));
    ck_assert_ptr_null(identity_name_problem("ip:192.0.2.1", 1));
    ck_assert_ptr_nonnull(identity_name_problem("ip:192.0.2.1", 0));
    ck_assert_ptr_nonnull(identity_name_problem("sasl:bob", 0));
    ck_assert_ptr_nonnull(identity_name_problem("ip:", 0));
    ck_assert_ptr_null(identity_name_problem("ipx", 0));
    ck_assert_ptr_null(identity_name_problem("SASL:bob", 0)); /* prefixes are exact */
    ck_assert_ptr_nonnull(identity_name_problem("", 0));
    ck_assert_ptr_nonnull(identity_name_problem("a{b", 0));
    ck_assert_ptr_nonnull(identity_name_problem("sasl:a}b", 1));
    ck_assert_ptr_nonnull(identity_name_problem("a\tb", 0));
    ck_assert_ptr_nonnull(identity_name_problem("a\x7f", 1));
    char big[IDENTITY_NAME_MAX + 2];
    memset(big, 'n', sizeof(big));
    big[IDENTITY_NAME_MAX] = '\0';
    ck_assert_ptr_null(identity_name_problem(big, 0));
    big[IDENTITY_NAME_MAX] = 'n';
    big[IDENTITY_NAME_MAX + 1] = '\0';
    ck_assert_ptr_nonnull(identity_name_problem(big, 0));
}
END_TEST

static Suite *identity_suite(void)
{
    Suite *s = suite_create("identity");
    TCase *net = tcase_create("netmatch");
    TCase *id = tcase_create("fallback");
    TCase *names = tcase_create("names");

    tcase_add_test(names, login_forms);
    tcase_add_test(names, login_small_buffer);
    tcase_add_test(names, customer_names);
    suite_add_tcase(s, names);
    tcase_add_test(net, parse_v4_prefix);
    tcase_add_test(net, parse_v6_prefix);
    tcase_add_test(net, bare_address_is_host_prefix);
    tcase_add_test(net, host_bits_cleared);
    tcase_add_loop_test(net, bad_prefix_refused, 0,
                        (int)(sizeof(bad_prefixes) / sizeof(bad_prefixes[0])));
    tcase_add_test(net, bad_address_refused);
    tcase_add_test(net, family_boundaries);
    tcase_add_test(net, ipv4_mapped);
    tcase_add_test(net, sockaddr_not_ip);
    tcase_add_test(net, longest_prefix_any_order);
    tcase_add_test(net, addr_key_text);
    tcase_add_test(id, fallback_sasl);
    tcase_add_test(id, fallback_network);
    tcase_add_test(id, fallback_ip);
    tcase_add_test(id, fallback_small_buffer);
    suite_add_tcase(s, net);
    suite_add_tcase(s, id);
    return s;
}

int main(void)
{
    return tu_run(identity_suite());
}
