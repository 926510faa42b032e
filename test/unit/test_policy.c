/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_policy - the policy engine (policy.h) event by event, against a fake
 * store with scripted answers, recorded calls and injected failures.
 */
#include <stdio.h>
#include <string.h>

#include "polharness.h"
#include "testutil.h"

static void start(const char *on_store_error, const char *action)
{
    char conf[1024];

    snprintf(conf, sizeof(conf),
             "on_store_error = \"%s\";\n"
             "customers = (\n"
             "  { name = \"acme\"; sasl = [ \"acme-login\" ];\n"
             "    networks = [ \"192.0.2.0/24\" ];\n"
             "    limits = { messages_per_hour = 5000; max_recipients = 5;\n"
             "               action = \"%s\"; }; },\n"
             "  { name = \"bigco\";\n"
             "    limits = { messages_per_hour = 7000; action = \"reject\"; }; }\n"
             ");\n",
             on_store_error, action);
    ph_start(conf, "192.0.2.10");
}

static void rcpts(int n, enum pol_verdict v)
{
    char rcpt[64];

    for (int i = 0; i < n; i++) {
        snprintf(rcpt, sizeof(rcpt), "<rcpt%d@example.net>", i);
        pol_rcpt(ph_conn, rcpt, &ph_r);
        ck_assert_msg(ph_r.verdict == v, "rcpt %d: verdict %d (%s)", i, ph_r.verdict,
                      ph_r.text);
    }
}

/* Printable ASCII; '%' too unless allowed (libmilter formats reply text). */
static void assert_printable(const char *text, int percent_ok)
{
    for (const char *p = text; *p; p++)
        ck_assert_msg(*p >= 0x20 && *p <= 0x7e && (percent_ok || *p != '%'),
                      "byte 0x%02x in \"%s\"", (unsigned char)*p, text);
}

static void assert_clean_text(const char *text)
{
    assert_printable(text, 0);
}

/* ---- the cases ---- */

START_TEST(accept_path)
{
    start("accept", "tempfail");
    ph_mail("<Bob@Acme.Example>", NULL);
    ph_expect(POL_CONTINUE, NULL, NULL);
    ck_assert_int_eq(fk.lookups, 1);
    ck_assert_str_eq(fk.login, "");
    ck_assert_str_eq(fk.fallback, "acme");
    rcpts(3, POL_CONTINUE);
    pol_data(ph_conn, "QID1", &ph_r);
    ph_expect(POL_CONTINUE, NULL, NULL);
    ck_assert_int_eq(fk.lookups, 1); /* no round trip per recipient */
    ck_assert_int_eq(fk.charges, 1);
    ck_assert_int_eq(fk.charged.nrcpt, 3);
    ck_assert_int_eq(fk.charged.n, 4);
    const struct quota_counter *h = ph_charged(fake_ckey('h', "acme"));
    ck_assert_ptr_nonnull(h);
    ck_assert_int_eq(h->lim_msg, 5000);
    ck_assert_int_eq(h->lim_rcpt, 5000);
    ck_assert_ptr_nonnull(ph_charged(fake_ckey('m', "acme")));
    ck_assert_ptr_nonnull(ph_charged(fake_ckey('d', "acme")));
    ck_assert_ptr_nonnull(ph_charged(fake_skey('h', "acme", "bob@acme.example")));
    ck_assert_int_eq(pol_eom(ph_conn, "QID1"), 0);
    pol_abort(ph_conn); /* after the end: nothing to give back */
    ck_assert_int_eq(fk.refunds, 0);
    ph_finish();
}
END_TEST

START_TEST(suspended_by_store)
{
    start("accept", "tempfail");
    fake_field("suspended", "1");
    ph_mail("<bob@acme.example>", NULL);
    ph_expect(POL_REJECT, "550", "5.7.1");
    ck_assert_ptr_nonnull(strstr(ph_r.text, "acme"));
    rcpts(1, POL_CONTINUE);
    pol_data(ph_conn, "Q", &ph_r);
    ph_expect(POL_CONTINUE, NULL, NULL);
    ck_assert_int_eq(fk.charges, 0); /* the transaction ended at MAIL */
    ph_finish();
}
END_TEST

START_TEST(malformed_store_values_ignored)
{
    start("accept", "tempfail");
    fake_field("messages_per_hour", "abc");
    fake_field("messages_per_day", "10k");
    fake_field("recipients_per_day", "-2");
    fake_field("suspended", "2");
    fake_field("no_such_field", "5");
    fake_field("max_recipients", " 1");
    ph_mail("<bob@acme.example>", NULL);
    ph_expect(POL_CONTINUE, NULL, NULL);
    rcpts(5, POL_CONTINUE); /* config max_recipients 5 still applies */
    rcpts(1, POL_TEMPFAIL);
    pol_data(ph_conn, "Q", &ph_r);
    ck_assert_int_eq(ph_charged(fake_ckey('h', "acme"))->lim_msg, 5000);
    ck_assert_int_eq(ph_charged(fake_ckey('d', "acme"))->lim_msg, 10000);
    ck_assert_int_eq(ph_charged(fake_ckey('d', "acme"))->lim_rcpt, 50000);
    pol_eom(ph_conn, "Q");
    ph_finish();
}
END_TEST

START_TEST(store_overrides_and_unlimited)
{
    start("accept", "tempfail");
    fake_field("messages_per_hour", "-1");
    fake_field("recipients_per_hour", "-1");
    fake_field("messages_per_day", "7");
    ph_mail("<bob@acme.example>", NULL);
    rcpts(1, POL_CONTINUE);
    pol_data(ph_conn, "Q", &ph_r);
    ph_expect(POL_CONTINUE, NULL, NULL);
    ck_assert_ptr_null(ph_charged(fake_ckey('h', "acme")));
    ck_assert_int_eq(ph_charged(fake_ckey('d', "acme"))->lim_msg, 7);
    ck_assert_ptr_nonnull(ph_charged(fake_ckey('m', "acme")));
    ck_assert_int_eq(fk.charged.n, 3);
    pol_eom(ph_conn, "Q");
    ph_finish();
}
END_TEST

START_TEST(max_recipients)
{
    start("accept", "tempfail");
    fake_field("max_recipients", "2");
    ph_mail("<bob@acme.example>", NULL);
    rcpts(2, POL_CONTINUE);
    pol_rcpt(ph_conn, "<extra1@example.net>", &ph_r);
    ph_expect(POL_TEMPFAIL, "452", "4.5.3");
    pol_rcpt(ph_conn, "<extra2@example.net>", &ph_r);
    ph_expect(POL_TEMPFAIL, "452", "4.5.3");
    pol_data(ph_conn, "Q", &ph_r);
    ck_assert_int_eq(fk.charged.nrcpt, 2);
    pol_eom(ph_conn, "Q");
    /* the next transaction on the connection counts afresh */
    ph_mail("<bob@acme.example>", NULL);
    rcpts(2, POL_CONTINUE);
    pol_abort(ph_conn);
    ph_finish();
}
END_TEST

static void over_quota(const char *action)
{
    start("accept", action);
    fake_refuse(fake_ckey('h', "acme"));
    fk.refuse_metric = 'm';
    fk.retry_ms = 12 * 60000;
    ph_mail("<bob@acme.example>", NULL);
    rcpts(2, POL_CONTINUE);
    pol_data(ph_conn, "QID", &ph_r);
}

static const char *const quota_text =
    "quota exceeded: messages_per_hour 5000 for acme, retry in 12m";

START_TEST(over_quota_tempfail)
{
    over_quota("tempfail");
    ph_expect(POL_TEMPFAIL, "451", "4.7.1");
    ck_assert_str_eq(ph_r.text, quota_text);
    pol_abort(ph_conn); /* the MTA refuses the message */
    ck_assert_int_eq(fk.refunds, 0);
    ph_finish();
}
END_TEST

START_TEST(over_quota_reject)
{
    over_quota("reject");
    ph_expect(POL_REJECT, "550", "5.7.1");
    ck_assert_str_eq(ph_r.text, quota_text);
    pol_abort(ph_conn);
    ck_assert_int_eq(fk.refunds, 0);
    ph_finish();
}
END_TEST

START_TEST(over_quota_hold)
{
    over_quota("hold");
    ph_expect(POL_CONTINUE, NULL, NULL);
    ck_assert_int_eq(pol_eom(ph_conn, "QID"), 1);
    ck_assert_ptr_nonnull(strstr(pol_hold_reason(ph_conn), quota_text));
    assert_clean_text(pol_hold_reason(ph_conn));
    ck_assert_int_eq(fk.refunds, 0);
    /* the next message, within quota, is not held */
    fake_refuse(NULL);
    ph_mail("<bob@acme.example>", NULL);
    rcpts(1, POL_CONTINUE);
    pol_data(ph_conn, "QID2", &ph_r);
    ck_assert_int_eq(pol_eom(ph_conn, "QID2"), 0);
    ph_finish();
}
END_TEST

START_TEST(over_quota_monitor)
{
    over_quota("monitor");
    ph_expect(POL_CONTINUE, NULL, NULL);
    ck_assert_int_eq(pol_eom(ph_conn, "QID"), 0);
    ck_assert_int_eq(fk.refunds, 0);
    ph_finish();
}
END_TEST

START_TEST(recipient_metric_text)
{
    start("accept", "tempfail");
    fake_refuse(fake_skey('h', "acme", "bob@acme.example"));
    fk.refuse_metric = 'm';
    fk.retry_ms = 3 * 3600000LL;
    ph_mail("<bob@acme.example>", NULL);
    rcpts(1, POL_CONTINUE);
    pol_data(ph_conn, "Q", &ph_r);
    ph_expect(POL_TEMPFAIL, "451", "4.7.1");
    ck_assert_str_eq(
        ph_r.text, "quota exceeded: sender_messages_per_hour 500 for acme, retry in 3h");
    fake_refuse(fake_ckey('d', "acme"));
    fk.refuse_metric = 'r';
    fk.retry_ms = 30000;
    ph_mail("<bob@acme.example>", NULL);
    rcpts(1, POL_CONTINUE);
    pol_data(ph_conn, "Q", &ph_r);
    ck_assert_str_eq(ph_r.text,
                     "quota exceeded: recipients_per_day 50000 for acme, retry in 30s");
    pol_abort(ph_conn);
    ph_finish();
}
END_TEST

START_TEST(abort_after_data_refunds)
{
    start("accept", "tempfail");
    ph_mail("<bob@acme.example>", NULL);
    rcpts(3, POL_CONTINUE);
    pol_data(ph_conn, "Q", &ph_r);
    ck_assert_int_eq(fk.refunds, 0);
    pol_abort(ph_conn);
    ck_assert_int_eq(fk.refunds, 1);
    ck_assert_int_eq(fk.refund_ms, fk.clock_ms);
    ck_assert_int_eq(fk.refunded.n, fk.charged.n);
    ck_assert_int_eq(fk.refunded.nrcpt, 3);
    for (int i = 0; i < fk.charged.n; i++)
        ck_assert_str_eq(fk.refunded.c[i].key, fk.charged.c[i].key);
    pol_abort(ph_conn); /* only once */
    ck_assert_int_eq(fk.refunds, 1);
    ph_finish();
}
END_TEST

START_TEST(new_mail_after_data_refunds)
{
    start("accept", "tempfail");
    ph_mail("<bob@acme.example>", NULL);
    rcpts(1, POL_CONTINUE);
    pol_data(ph_conn, "Q", &ph_r);
    fk.clock_ms = 5; /* the next charge's time must not be the one refunded */
    ph_mail("<bob@acme.example>", NULL);
    ck_assert_int_eq(fk.refunds, 1);
    ck_assert_int_eq(fk.refund_ms, PH_CLOCK_MS);
    pol_abort(ph_conn);
    ck_assert_int_eq(fk.refunds, 1);
    ph_finish();
}
END_TEST

START_TEST(disconnect_after_data_refunds)
{
    start("accept", "tempfail");
    fk.fail_refund = 1; /* a failed refund is logged, nothing else */
    ph_mail("<bob@acme.example>", NULL);
    rcpts(1, POL_CONTINUE);
    pol_data(ph_conn, "Q", &ph_r);
    ph_finish(); /* pol_conn_free: the client went away */
    ck_assert_int_eq(fk.refunds, 1);
}
END_TEST

START_TEST(abort_before_data_no_refund)
{
    start("accept", "tempfail");
    ph_mail("<bob@acme.example>", NULL);
    rcpts(2, POL_CONTINUE);
    pol_abort(ph_conn);
    ck_assert_int_eq(fk.charges, 0);
    ck_assert_int_eq(fk.refunds, 0);
    pol_data(ph_conn, "Q", &ph_r); /* DATA outside a transaction */
    ph_expect(POL_CONTINUE, NULL, NULL);
    ck_assert_int_eq(fk.charges, 0);
    ph_finish();
}
END_TEST

START_TEST(store_down_at_mail)
{
    start("accept", "tempfail");
    fk.fail_lookup = 1;
    ph_mail("<bob@acme.example>", NULL);
    ph_expect(POL_CONTINUE, NULL, NULL);
    rcpts(5, POL_CONTINUE);
    rcpts(1, POL_TEMPFAIL); /* the config's limits still hold */
    pol_data(ph_conn, "Q", &ph_r);
    ph_expect(POL_CONTINUE, NULL, NULL);
    ck_assert_int_eq(ph_charged(fake_ckey('h', "acme"))->lim_msg, 5000);
    pol_eom(ph_conn, "Q");
    ph_finish();

    start("tempfail", "tempfail");
    fk.fail_lookup = 1;
    ph_mail("<bob@acme.example>", NULL);
    ph_expect(POL_TEMPFAIL, "451", "4.3.0");
    pol_data(ph_conn, "Q", &ph_r);
    ck_assert_int_eq(fk.charges, 0);
    ph_finish();
}
END_TEST

START_TEST(store_down_at_data)
{
    start("accept", "tempfail");
    fk.fail_charge = 1;
    ph_mail("<bob@acme.example>", NULL);
    rcpts(1, POL_CONTINUE);
    pol_data(ph_conn, "Q", &ph_r);
    ph_expect(POL_CONTINUE, NULL, NULL);
    pol_abort(ph_conn);
    ck_assert_int_eq(fk.refunds, 0); /* nothing was charged */
    ph_finish();

    start("tempfail", "tempfail");
    fk.fail_charge = 1;
    ph_mail("<bob@acme.example>", NULL);
    rcpts(1, POL_CONTINUE);
    pol_data(ph_conn, "Q", &ph_r);
    ph_expect(POL_TEMPFAIL, "451", "4.3.0");
    pol_abort(ph_conn);
    ck_assert_int_eq(fk.refunds, 0);
    ph_finish();
}
END_TEST

START_TEST(sasl_customer_from_store)
{
    start("accept", "tempfail");
    snprintf(fk.customer, sizeof(fk.customer), "bigco");
    fake_refuse(fake_ckey('h', "bigco"));
    fk.refuse_metric = 'm';
    fk.retry_ms = 60000;
    ph_mail("<x@bigco.example>", "someone");
    ph_expect(POL_CONTINUE, NULL, NULL);
    ck_assert_str_eq(fk.login, "someone");
    ck_assert_str_eq(fk.fallback, "sasl:someone");
    rcpts(1, POL_CONTINUE);
    pol_data(ph_conn, "Q", &ph_r);
    ck_assert_int_eq(ph_charged(fake_ckey('h', "bigco"))->lim_msg, 7000);
    ck_assert_ptr_null(
        ph_charged(fake_ckey('h', "acme"))); /* not the network's customer */
    ph_expect(POL_REJECT, "550", "5.7.1");   /* bigco's action */
    ck_assert_str_eq(ph_r.text,
                     "quota exceeded: messages_per_hour 7000 for bigco, retry in 60s");
    pol_abort(ph_conn);
    ph_finish();
}
END_TEST

START_TEST(sasl_customer_from_config)
{
    start("accept", "tempfail");
    ph_mail("<x@acme.example>", "acme-login");
    ck_assert_str_eq(fk.fallback, "acme");
    rcpts(1, POL_CONTINUE);
    pol_data(ph_conn, "Q", &ph_r);
    ck_assert_ptr_nonnull(ph_charged(fake_ckey('h', "acme")));
    pol_eom(ph_conn, "Q");
    ph_finish();
}
END_TEST

START_TEST(fallback_identities)
{
    ph_start("# defaults only\n", NULL);
    ph_mail("<a@b.example>", "");
    ck_assert_str_eq(fk.fallback, "ip:unknown");
    pol_abort(ph_conn);
    ph_finish();

    ph_start("# defaults only\n", "2001:db8:5:6:7:8:9:a");
    ph_mail("<a@b.example>", NULL);
    ck_assert_str_eq(fk.fallback, "ip:2001:db8:5:6::/64");
    rcpts(1, POL_CONTINUE);
    pol_data(ph_conn, "Q", &ph_r);
    ck_assert_ptr_nonnull(ph_charged(fake_ckey('h', "ip:2001:db8:5:6::/64")));
    ck_assert_int_eq(ph_charged(fake_ckey('h', "ip:2001:db8:5:6::/64"))->lim_msg, 1000);
    pol_eom(ph_conn, "Q");
    ph_finish();
}
END_TEST

START_TEST(sender_forms)
{
    start("accept", "tempfail");
    ph_mail("<>", NULL); /* bounces pass */
    ph_expect(POL_CONTINUE, NULL, NULL);
    pol_abort(ph_conn);
    ph_mail("<bob\r\n@acme.example>", NULL);
    ph_expect(POL_REJECT, "550", "5.1.7");
    ck_assert_int_eq(fk.lookups, 1);
    assert_clean_text(ph_r.text);
    ph_finish();
}
END_TEST

START_TEST(reply_text_sanitised)
{
    /* control characters never get this far (identity_name_problem) */
    const char *evil = "ev%il name\xc3\xa9%n";

    start("accept", "tempfail");
    snprintf(fk.customer, sizeof(fk.customer), "%s", evil);
    fake_field("suspended", "1");
    ph_mail("<bob@acme.example>", "someone");
    ph_expect(POL_REJECT, "550", "5.7.1");
    assert_clean_text(ph_r.text);
    ph_finish();

    start("accept", "tempfail");
    snprintf(fk.customer, sizeof(fk.customer), "%s", evil);
    fk.refuse_metric = 'm';
    fk.retry_ms = 1000;
    ph_mail("<bob@acme.example>", "someone");
    rcpts(1, POL_CONTINUE);
    fake_refuse(fake_ckey('h', evil));
    pol_data(ph_conn, "Q", &ph_r);
    ph_expect(POL_TEMPFAIL, "451", "4.7.1");
    assert_clean_text(ph_r.text);
    ck_assert_ptr_nonnull(strstr(ph_r.text, "messages_per_hour 1000 for ev"));
    pol_abort(ph_conn);
    ph_finish();
}
END_TEST

START_TEST(hold_reason_sanitised)
{
    start("accept", "hold");
    snprintf(fk.customer, sizeof(fk.customer), "ev%%il n\xc3\xa4me");
    fake_field("action", "hold");
    fake_refuse(fake_ckey('h', "ev%il n\xc3\xa4me"));
    fk.refuse_metric = 'm';
    fk.retry_ms = 1000;
    ph_mail("<bob@acme.example>", "someone");
    rcpts(1, POL_CONTINUE);
    pol_data(ph_conn, "Q", &ph_r);
    ph_expect(POL_CONTINUE, NULL, NULL);
    ck_assert_int_eq(pol_eom(ph_conn, "Q"), 1);
    /* the MTA logs the reason: no line breaks or other control bytes */
    assert_printable(pol_hold_reason(ph_conn), 1);
    ph_finish();
}
END_TEST

static Suite *policy_suite(void)
{
    Suite *s = suite_create("policy");
    TCase *flow = tcase_create("flow");
    TCase *quota = tcase_create("quota");
    TCase *store = tcase_create("store");
    TCase *text = tcase_create("text");

    tcase_add_test(flow, accept_path);
    tcase_add_test(flow, suspended_by_store);
    tcase_add_test(flow, max_recipients);
    tcase_add_test(flow, sender_forms);
    tcase_add_test(flow, fallback_identities);
    tcase_add_test(quota, over_quota_tempfail);
    tcase_add_test(quota, over_quota_reject);
    tcase_add_test(quota, over_quota_hold);
    tcase_add_test(quota, over_quota_monitor);
    tcase_add_test(quota, recipient_metric_text);
    tcase_add_test(quota, abort_after_data_refunds);
    tcase_add_test(quota, new_mail_after_data_refunds);
    tcase_add_test(quota, disconnect_after_data_refunds);
    tcase_add_test(quota, abort_before_data_no_refund);
    tcase_add_test(store, malformed_store_values_ignored);
    tcase_add_test(store, store_overrides_and_unlimited);
    tcase_add_test(store, store_down_at_mail);
    tcase_add_test(store, store_down_at_data);
    tcase_add_test(store, sasl_customer_from_store);
    tcase_add_test(store, sasl_customer_from_config);
    tcase_add_test(text, reply_text_sanitised);
    tcase_add_test(text, hold_reason_sanitised);
    suite_add_tcase(s, flow);
    suite_add_tcase(s, quota);
    suite_add_tcase(s, store);
    suite_add_tcase(s, text);
    return s;
}

int main(void)
{
    return tu_run(policy_suite());
}
