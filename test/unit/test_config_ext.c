/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_config_ext - the configuration of the newer features (config.h): the
 * local store fallback, the events stream, aborted_charge, Redis Sentinel
 * addresses, domain lists in canonical form, and the domain ownership
 * lookups, and the effective configuration as relaymilter -p prints it
 * (cfg_print). Their malformed values are in test_config.c's table of errors with
 * their FILE:LINE.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "testutil.h"

static char err[1024];

static struct rm_config *load_ok(const char *text)
{
    struct rm_config *cfg = tu_load(text, err, sizeof(err));
    ck_assert_msg(cfg != NULL, "config refused: %s", err);
    return cfg;
}

START_TEST(fallback_defaults)
{
    struct rm_config *cfg = load_ok("# defaults only\n");

    ck_assert_int_eq(cfg->on_store_error, CFG_SE_ACCEPT);
    ck_assert_double_eq(cfg->local_share, 0.25);
    ck_assert_int_eq(cfg->local_max_entries, 100000);
    ck_assert_int_eq(cfg->events_maxlen, 10000);
    ck_assert_int_eq(cfg->aborted_charge, CFG_AC_REFUND);
    ck_assert_uint_eq(cfg->sentinels.n, 0);
    ck_assert_uint_eq(cfg->blocked_rcpt_domains.n, 0);
    cfg_free(cfg);
}
END_TEST

START_TEST(fallback_values)
{
    struct rm_config *cfg =
        load_ok("on_store_error = \"local\";\n"
                "redis = { local_share = 1; local_max_entries = 100;\n"
                "  events_maxlen = 0; };\n");

    ck_assert_int_eq(cfg->on_store_error, CFG_SE_LOCAL);
    ck_assert_str_eq(cfg_store_error_name(cfg->on_store_error), "local");
    ck_assert_double_eq(cfg->local_share, 1.0);
    ck_assert_int_eq(cfg->local_max_entries, 100);
    ck_assert_int_eq(cfg->events_maxlen, 0); /* no events stream */
    cfg_free(cfg);

    cfg = load_ok("redis = { local_share = 0.5; local_max_entries = 10000000;\n"
                  "  events_maxlen = 10000000; };\n");
    ck_assert_double_eq(cfg->local_share, 0.5);
    ck_assert_int_eq(cfg->local_max_entries, 10000000);
    ck_assert_int_eq(cfg->events_maxlen, 10000000);
    cfg_free(cfg);

    cfg = load_ok("redis = { local_share = 0.001; };\n");
    ck_assert_double_eq_tol(cfg->local_share, 0.001, 1e-12);
    cfg_free(cfg);
}
END_TEST

START_TEST(aborted_charge_values)
{
    struct rm_config *cfg = load_ok("aborted_charge = \"keep\";\n");

    ck_assert_int_eq(cfg->aborted_charge, CFG_AC_KEEP);
    cfg_free(cfg);
    cfg = load_ok("aborted_charge = \"refund\";\n");
    ck_assert_int_eq(cfg->aborted_charge, CFG_AC_REFUND);
    cfg_free(cfg);
}
END_TEST

START_TEST(store_error_names)
{
    ck_assert_str_eq(cfg_store_error_name(CFG_SE_ACCEPT), "accept");
    ck_assert_str_eq(cfg_store_error_name(CFG_SE_TEMPFAIL), "tempfail");
    ck_assert_str_eq(cfg_store_error_name(CFG_SE_LOCAL), "local");
}
END_TEST

START_TEST(sentinel_forms_accepted)
{
    struct rm_config *cfg =
        load_ok("redis = { master = \"mymaster\";\n"
                "  sentinels = [ \"10.0.0.1:26379\", \"[2001:db8::1]:26379\",\n"
                "                \"sentinel.example.net:1\" ]; };\n");

    ck_assert_uint_eq(cfg->sentinels.n, 3);
    ck_assert_str_eq(cfg->sentinels.v[0], "10.0.0.1:26379");
    ck_assert_str_eq(cfg->sentinels.v[1], "[2001:db8::1]:26379");
    ck_assert_str_eq(cfg->sentinels.v[2], "sentinel.example.net:1");
    ck_assert_str_eq(cfg->redis_master, "mymaster");
    cfg_free(cfg);
}
END_TEST

START_TEST(domain_lists_canonical)
{
    struct rm_config *cfg =
        load_ok("customers = (\n"
                "  { name = \"a\";\n"
                "    domains = [ \"B\xc3\xbc"
                "cher.Example.\", \"XN--MNCHEN-3YA.example\",\n"
                "                \"Acme.EXAMPLE\", \"_Mail.acme.example\" ]; }\n"
                ");\n"
                "blocked_recipient_domains = [ \"SpamTrap.Example.\", \"b\xc3\xbc"
                "cher.test\",\n"
                "  \"XN--BCHER-KVA.Test2\" ];\n");
    const struct cfg_strlist *d = &cfg->customers[0].domains;
    const struct cfg_strlist *b = &cfg->blocked_rcpt_domains;

    ck_assert_uint_eq(d->n, 4);
    ck_assert_str_eq(d->v[0], "xn--bcher-kva.example");
    ck_assert_str_eq(d->v[1], "xn--mnchen-3ya.example");
    ck_assert_str_eq(d->v[2], "acme.example");
    ck_assert_str_eq(d->v[3], "_mail.acme.example");
    ck_assert_uint_eq(b->n, 3);
    ck_assert_str_eq(b->v[0], "spamtrap.example");
    ck_assert_str_eq(b->v[1], "xn--bcher-kva.test");
    ck_assert_str_eq(b->v[2], "xn--bcher-kva.test2");
    cfg_free(cfg);
}
END_TEST

static const char *const owners_conf =
    "customers = (\n"
    "  { name = \"acme\"; domains = [ \"Example.COM\", \"b\xc3\xbc"
    "cher.example\" ]; },\n"
    "  { name = \"beta\"; domains = [ \"mail.example.com\" ]; },\n"
    "  { name = \"gamma\"; domains = [ \"example.com\" ]; },\n"
    "  { name = \"nodomains\"; }\n"
    ");\n";

START_TEST(domain_level_most_specific)
{
    struct rm_config *cfg = load_ok(owners_conf);
    const char *d;

    d = "www.mail.example.com";
    ck_assert_ptr_eq(cfg_domain_level(cfg, d), d + 4); /* a pointer into d */
    ck_assert_str_eq(cfg_domain_level(cfg, d), "mail.example.com");
    ck_assert_str_eq(cfg_domain_level(cfg, "mail.example.com"), "mail.example.com");
    ck_assert_str_eq(cfg_domain_level(cfg, "www.example.com"), "example.com");
    ck_assert_str_eq(cfg_domain_level(cfg, "example.com"), "example.com");
    ck_assert_str_eq(cfg_domain_level(cfg, "a.b.xn--bcher-kva.example"),
                     "xn--bcher-kva.example");
    ck_assert_ptr_null(cfg_domain_level(cfg, "notexample.com"));
    ck_assert_ptr_null(cfg_domain_level(cfg, "com"));
    ck_assert_ptr_null(cfg_domain_level(cfg, "example.com.au"));
    cfg_free(cfg);

    cfg = load_ok("# no customers\n");
    ck_assert_ptr_null(cfg_domain_level(cfg, "example.com"));
    cfg_free(cfg);
}
END_TEST

START_TEST(domain_owner_at_level)
{
    struct rm_config *cfg = load_ok(owners_conf);

    ck_assert_int_eq(cfg_domain_owner(cfg, "example.com", "acme"), 1);
    ck_assert_int_eq(cfg_domain_owner(cfg, "example.com", "gamma"), 1); /* shared */
    ck_assert_int_eq(cfg_domain_owner(cfg, "example.com", "beta"), 0);
    ck_assert_int_eq(cfg_domain_owner(cfg, "mail.example.com", "beta"), 1);
    /* owning the parent does not make acme an owner of the deeper level */
    ck_assert_int_eq(cfg_domain_owner(cfg, "mail.example.com", "acme"), 0);
    ck_assert_int_eq(cfg_domain_owner(cfg, "xn--bcher-kva.example", "acme"), 1);
    ck_assert_int_eq(cfg_domain_owner(cfg, "example.com", "nodomains"), 0);
    ck_assert_int_eq(cfg_domain_owner(cfg, "example.com", "nobody"), 0);
    ck_assert_int_eq(cfg_domain_owner(cfg, "example.com", "ACME"), 0);
    cfg_free(cfg);
}
END_TEST

/* cfg_print of cfg into a string (malloc'd). */
static char *printed(const struct rm_config *cfg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    ck_assert_ptr_nonnull(f);
    cfg_print(cfg, f);
    fclose(f);
    return buf;
}

/* The printed configuration is a config file that loads to the same
 * configuration: printing it again gives the same text (after the first line,
 * which names the file). A password is never printed, so it cannot come back;
 * the cases here have none. */
static void assert_round_trip(const char *text)
{
    struct rm_config *cfg = load_ok(text);
    char *one = printed(cfg);
    struct rm_config *again = tu_load(one, err, sizeof(err));

    ck_assert_msg(again != NULL, "printed config refused: %s\n%s", err, one);
    char *two = printed(again);
    ck_assert_str_eq(strchr(one, '\n'), strchr(two, '\n'));
    cfg_free(cfg);
    cfg_free(again);
    free(one);
    free(two);
}

START_TEST(print_round_trip)
{
    FILE *f = fopen(RM_SOURCE_DIR "/postfix-example/relaymilter.conf", "r");
    char sample[16384];

    ck_assert_ptr_nonnull(f);
    sample[fread(sample, 1, sizeof(sample) - 1, f)] = '\0';
    fclose(f);
    assert_round_trip(sample);
    assert_round_trip("# defaults only\n");
    assert_round_trip(
        "redis = { cluster_nodes = [ \"10.0.0.1:7000\", \"[::1]:7001\" ]; };\n");
    assert_round_trip(
        "redis = { sentinels = [ \"[::1]:26379\", \"10.0.0.1:26379\" ]; master = \"m\";\n"
        "  prefix = \"p\\\"re\\\\fix:\"; local_share = 0.5; };\n"
        "sasl = { realm = \"R.Example\"; unknown = \"tempfail\"; };\n"
        "limits = { messages_per_day = 5000000000L; action = \"hold\"; };\n"
        "customers = ( { name = \"q\\\"uote\"; sasl = [ \"Bob\" ];\n"
        "  networks = [ \"192.0.2.7\", \"2001:db8::/33\" ];\n"
        "  domains = [ \"B\xc3\xbc"
        "cher.Example.\" ];\n"
        "  limits = { suspended = 1; }; } );\n");
}
END_TEST

START_TEST(print_shows_defaults_not_secrets)
{
    struct rm_config *cfg = load_ok("redis = { password = \"hunter2\"; };\n");
    char *text = printed(cfg);

    ck_assert_ptr_null(strstr(text, "hunter2"));
    ck_assert_ptr_nonnull(strstr(text, "# password: set, not shown"));
    ck_assert_ptr_nonnull(strstr(text, "  socket = \"inet:8890@127.0.0.1\";\n"));
    ck_assert_ptr_nonnull(strstr(text, "  prefix = \"relay:\";\n"));
    ck_assert_ptr_nonnull(strstr(text, "  messages_per_hour = 1000;\n"));
    ck_assert_ptr_nonnull(strstr(text, "  sender_messages_per_day = -1;\n"));
    ck_assert_ptr_nonnull(strstr(text, "  unknown = \"own\";\n"));
    ck_assert_ptr_nonnull(strstr(text, "  # realm: not set\n"));
    cfg_free(cfg);
    free(text);
}
END_TEST

static Suite *config_ext_suite(void)
{
    Suite *s = suite_create("config_ext");
    TCase *fb = tcase_create("fallback");
    TCase *dom = tcase_create("domains");

    tcase_add_test(fb, fallback_defaults);
    tcase_add_test(fb, fallback_values);
    tcase_add_test(fb, store_error_names);
    tcase_add_test(fb, aborted_charge_values);
    tcase_add_test(fb, sentinel_forms_accepted);
    tcase_add_test(dom, domain_lists_canonical);
    tcase_add_test(dom, domain_level_most_specific);
    tcase_add_test(dom, domain_owner_at_level);
    tcase_add_test(fb, print_round_trip);
    tcase_add_test(fb, print_shows_defaults_not_secrets);
    suite_add_tcase(s, fb);
    suite_add_tcase(s, dom);
    return s;
}

int main(void)
{
    return tu_run(config_ext_suite());
}
