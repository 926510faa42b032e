/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_aborted_charge - aborted_charge (config.h) in the policy engine: with
 * "refund" (the default) a message waits for its end and an abort after DATA
 * gives the charge back; with "keep" the charge is final at DATA and a
 * message that goes on is accepted there (POL_ACCEPT: the MTA skips the end
 * of the message), except a hold, which needs the end of the message.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "polharness.h"
#include "testutil.h"

static void start(const char *aborted_charge, const char *on_store_error,
                  const char *action)
{
    char conf[512];

    snprintf(conf, sizeof(conf),
             "aborted_charge = \"%s\";\n"
             "on_store_error = \"%s\";\n"
             "customers = ( { name = \"acme\"; networks = [ \"192.0.2.0/24\" ];\n"
             "  limits = { messages_per_hour = 5000; action = \"%s\"; }; } );\n",
             aborted_charge, on_store_error, action);
    ph_start(conf, "192.0.2.10");
}

/* The customer's hourly message counter refuses the next charge. */
static void over_limit(void)
{
    fake_refuse(fake_ckey('h', "acme"));
    fk.refuse_metric = 'm';
    fk.retry_ms = 60000;
}

/* MAIL, two recipients, DATA: the reply to DATA is in ph_r. */
static void message(const char *qid)
{
    ph_mail("<bob@acme.example>", NULL);
    ph_expect(POL_CONTINUE, NULL, NULL);
    for (int i = 0; i < 2; i++) {
        ph_rcpt("<rcpt@example.net>");
        ph_expect(POL_CONTINUE, NULL, NULL);
    }
    pol_data(ph_conn, qid, &ph_r);
}

START_TEST(refund_waits_for_the_end)
{
    start("refund", "accept", "tempfail");
    message("Q1");
    ph_expect(POL_CONTINUE, NULL, NULL);
    ck_assert_int_eq(fk.charges, 1);
    pol_abort(ph_conn);
    ck_assert_int_eq(fk.refunds, 1);
    ph_finish();
}
END_TEST

START_TEST(keep_accepts_at_data)
{
    start("keep", "accept", "tempfail");
    message("Q1");
    ph_expect(POL_ACCEPT, NULL, NULL);
    ck_assert_int_eq(fk.charges, 1);
    ck_assert_int_eq(fk.charged.nrcpt, 2);
    /* the transaction is over: the message let go of its snapshot */
    ck_assert_int_eq(atomic_load(&ph_snap->refs), 1);
    pol_abort(ph_conn); /* what the MTA sends after the message, or a drop */
    ck_assert_int_eq(fk.refunds, 0);
    /* an MTA that sends the end of the message all the same: nothing happens */
    ck_assert_int_eq(pol_eom(ph_conn, "Q1"), 0);
    ck_assert_int_eq(fk.refunds, 0);
    /* the connection goes on: the next message is judged afresh */
    message("Q2");
    ph_expect(POL_ACCEPT, NULL, NULL);
    ck_assert_int_eq(fk.charges, 2);
    ck_assert_int_eq(fk.lookups, 2);
    ph_finish(); /* the client goes away: still nothing given back */
    ck_assert_int_eq(fk.refunds, 0);
}
END_TEST

START_TEST(keep_refusals_unchanged)
{
    start("keep", "accept", "reject");
    over_limit();
    message("Q1");
    ph_expect(POL_REJECT, "550", "5.7.1");
    ph_finish();
}
END_TEST

START_TEST(keep_hold_waits_for_the_end)
{
    start("keep", "accept", "hold");
    over_limit();
    message("Q1");
    ph_expect(POL_CONTINUE, NULL, NULL); /* quarantine is an end-of-message act */
    ck_assert_int_eq(pol_eom(ph_conn, "Q1"), 1);
    fake_refuse(NULL);
    message("Q2");
    ph_expect(POL_ACCEPT, NULL, NULL);
    ph_finish();
}
END_TEST

START_TEST(keep_monitor_and_store_errors)
{
    start("keep", "accept", "monitor");
    over_limit();
    message("Q1"); /* over the limit, a dry run: accepted, nothing charged */
    ph_expect(POL_ACCEPT, NULL, NULL);
    fake_refuse(NULL);
    fk.fail_charge = 1;
    message("Q2"); /* on_store_error = accept */
    ph_expect(POL_ACCEPT, NULL, NULL);
    ph_finish();

    start("keep", "tempfail", "tempfail");
    fk.fail_charge = 1;
    message("Q3");
    ph_expect(POL_TEMPFAIL, "451", "4.3.0");
    ph_finish();
}
END_TEST

static Suite *aborted_charge_suite(void)
{
    Suite *s = suite_create("aborted_charge");
    TCase *tc = tcase_create("aborted_charge");

    tcase_add_test(tc, refund_waits_for_the_end);
    tcase_add_test(tc, keep_accepts_at_data);
    tcase_add_test(tc, keep_refusals_unchanged);
    tcase_add_test(tc, keep_hold_waits_for_the_end);
    tcase_add_test(tc, keep_monitor_and_store_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(aborted_charge_suite());
}
