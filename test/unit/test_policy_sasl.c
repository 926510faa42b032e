/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_policy_sasl - identity by SASL login in the policy engine
 * (relaymilter.conf(5), IDENTITY and SASL GROUP): canonical logins, the
 * sasl.unknown modes, hash entries that may not name a customer, logins that
 * cannot be used, and the login in events.
 */
#include <stdio.h>
#include <string.h>

#include "polharness.h"
#include "testutil.h"

static void start(const char *unknown, const char *on_store_error)
{
    char conf[1024];

    snprintf(
        conf, sizeof(conf),
        "on_store_error = \"%s\";\n"
        "sasl = { realm = \"Relay.Example\"; unknown = \"%s\"; };\n"
        "customers = (\n"
        "  { name = \"acme\"; sasl = [ \"Bob\" ]; domains = [ \"acme.example\" ]; },\n"
        "  { name = \"initech\"; domains = [ \"initech.example\" ];\n"
        "    networks = [ \"192.0.2.0/24\" ]; }\n"
        ");\n",
        on_store_error, unknown);
    ph_start(conf, "192.0.2.10");
}

static void send_one(const char *sender, const char *login, enum pol_verdict at_data)
{
    ph_mail(sender, login);
    ph_expect(POL_CONTINUE, NULL, NULL);
    ph_rcpt("<r@dest.example>");
    pol_data(ph_conn, "Q", &ph_r);
    ph_expect(at_data, NULL, NULL);
    pol_eom(ph_conn, "Q");
}

START_TEST(spellings_are_one_login)
{
    const char *spellings[] = {"bob", "BOB", "Bob@relay.example", "bob@RELAY.EXAMPLE"};

    start("own", "accept");
    for (size_t i = 0; i < sizeof(spellings) / sizeof(spellings[0]); i++) {
        send_one("<x@acme.example>", spellings[i], POL_CONTINUE);
        ck_assert_str_eq(fk.login, "bob@relay.example");
        ck_assert_str_eq(fk.fallback, "acme");
        ck_assert_ptr_nonnull(ph_charged(fake_ckey('h', "acme")));
    }
    ph_finish();
}
END_TEST

START_TEST(unknown_own)
{
    start("own", "accept");
    /* "initech" is a customer's name, not its login: the login is its own
     * customer, which may not use initech's domain */
    ph_mail("<x@initech.example>", "InITech");
    ph_expect(POL_REJECT, "550", "5.7.1");
    ck_assert_str_eq(ph_r.text, "sasl:initech@relay.example may not send as "
                                "initech.example");
    ck_assert_int_eq(fk.events, 1);
    ck_assert_str_eq(fk.event[0].customer, "sasl:initech@relay.example");
    ck_assert_str_eq(fk.event[0].login, "initech@relay.example");
    send_one("<x@free.example>", "initech", POL_CONTINUE);
    ck_assert_ptr_nonnull(ph_charged(fake_ckey('h', "sasl:initech@relay.example")));
    ck_assert_int_eq(ph_charged(fake_ckey('h', "sasl:initech@relay.example"))->lim_msg,
                     1000);
    ph_finish();
}
END_TEST

START_TEST(unknown_refuse_and_tempfail)
{
    const char *modes[] = {"refuse", "tempfail"};
    const enum pol_verdict want[] = {POL_REJECT, POL_TEMPFAIL};
    const char *codes[][2] = {{"550", "5.7.1"}, {"451", "4.7.1"}};

    for (int m = 0; m < 2; m++) {
        start(modes[m], "accept");
        ph_mail("<x@free.example>", "Stranger");
        ph_expect(want[m], codes[m][0], codes[m][1]);
        ck_assert_ptr_nonnull(strstr(ph_r.text,
                                     "SASL login stranger@relay.example is not "
                                     "provisioned on this relay"));
        ck_assert_int_eq(fk.events, 1);
        ck_assert_str_eq(fk.event[0].reason, "login_not_provisioned");
        ck_assert_str_eq(fk.event[0].action, m == 0 ? "reject" : "tempfail");
        ck_assert_str_eq(fk.event[0].login, "stranger@relay.example");
        pol_data(ph_conn, "Q", &ph_r); /* the transaction is over */
        ck_assert_int_eq(fk.charges, 0);
        /* a login the config maps, or the hash, is not affected */
        send_one("<x@acme.example>", "bob", POL_CONTINUE);
        snprintf(fk.customer, sizeof(fk.customer), "initech");
        send_one("<x@initech.example>", "carol", POL_CONTINUE);
        ck_assert_ptr_nonnull(ph_charged(fake_ckey('h', "initech")));
        ph_finish();
    }
}
END_TEST

/* Redis down: whether the hash maps the login is unknown, so on_store_error
 * rules, not sasl.unknown. */
START_TEST(unknown_with_store_down)
{
    start("refuse", "accept");
    fk.fail_lookup = 1;
    ph_mail("<x@free.example>", "stranger");
    ph_expect(POL_CONTINUE, NULL, NULL);
    pol_abort(ph_conn);
    ph_finish();

    start("own", "tempfail");
    fk.fail_lookup = 1;
    ph_mail("<x@free.example>", "stranger");
    ph_expect(POL_TEMPFAIL, "451", "4.3.0");
    ph_finish();
}
END_TEST

START_TEST(bad_mapping_ignored)
{
    const char *bad[] = {"ip:192.0.2.1", "sasl:bob@relay.example", "a{b}", "x\ty"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        start("refuse", "accept");
        snprintf(fk.customer, sizeof(fk.customer), "%s", bad[i]);
        ph_mail("<x@free.example>", "mallory");
        /* no customer: sasl.unknown applies */
        ph_expect(POL_REJECT, "550", "5.7.1");
        ck_assert_str_eq(fk.event[0].customer, "sasl:mallory@relay.example");
        ph_finish();
    }
}
END_TEST

START_TEST(unusable_logins)
{
    char longer[300];

    start("own", "accept");
    ph_mail("<x@free.example>", "bob\r\nRCPT");
    ph_expect(POL_REJECT, "550", "5.7.1");
    ck_assert_str_eq(ph_r.text, "SASL login name not usable");
    memset(longer, 'l', sizeof(longer));
    longer[190] = '\0'; /* fits alone, not with "@relay.example" */
    ph_mail("<x@free.example>", longer);
    ph_expect(POL_REJECT, "550", "5.7.1");
    ck_assert_str_eq(ph_r.text, "SASL login name too long");
    /* a brace cannot be in a customer name: refused as its own customer... */
    ph_mail("<x@free.example>", "br{ace}");
    ph_expect(POL_REJECT, "550", "5.7.1");
    /* ...but usable when mapped */
    snprintf(fk.customer, sizeof(fk.customer), "acme");
    send_one("<x@acme.example>", "br{ace}", POL_CONTINUE);
    ck_assert_int_eq(fk.lookups, 2); /* the refusals before the lookup made none */
    ph_finish();
}
END_TEST

START_TEST(no_login_events_say_dash)
{
    start("own", "accept");
    ph_mail("<x@acme.example>", NULL); /* initech's network, acme's domain */
    ph_expect(POL_REJECT, "550", "5.7.1");
    ck_assert_str_eq(fk.event[0].customer, "initech");
    ck_assert_str_eq(fk.event[0].login, "-");
    send_one("<x@free.example>", "bob", POL_CONTINUE);
    ck_assert_int_eq(fk.charge_had_event, 1);
    ck_assert_str_eq(fk.charge_event.login, "bob@relay.example");
    ph_finish();
}
END_TEST

static Suite *sasl_suite(void)
{
    Suite *s = suite_create("policy_sasl");
    TCase *t = tcase_create("sasl");

    tcase_add_test(t, spellings_are_one_login);
    tcase_add_test(t, unknown_own);
    tcase_add_test(t, unknown_refuse_and_tempfail);
    tcase_add_test(t, unknown_with_store_down);
    tcase_add_test(t, bad_mapping_ignored);
    tcase_add_test(t, unusable_logins);
    tcase_add_test(t, no_login_events_say_dash);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return tu_run(sasl_suite());
}
