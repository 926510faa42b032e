/*
 * test_policy - the policy engine (policy.h) event by event, against a fake
 * store with scripted answers, recorded calls and injected failures.
 */
#include <stdio.h>
#include <string.h>

#include "fakestore.h"
#include "policy.h"
#include "testutil.h"

/* ---- a connection over a snapshot of a config ---- */

static struct snap *snap;
static struct pol_conn *conn;
static struct pol_reply r;

static void start_conf(const char *conf, const char *client)
{
    char err[512];
    struct net_addr a;
    struct rm_config *cfg = tu_load(conf, err, sizeof(err));

    ck_assert_msg(cfg != NULL, "config refused: %s", err);
    memset(&fk, 0, sizeof(fk));
    fk.base.ops = &fake_ops;
    atomic_init(&fk.base.refs, 1); /* handed over to the snapshot */
    fk.clock_ms = 1700000000123LL;
    snap = snap_new(cfg, &fk.base);
    if (client != NULL)
        ck_assert_int_eq(net_parse_addr(client, &a), 0);
    conn = pol_conn_new(client ? &a : NULL);
}

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
    start_conf(conf, "192.0.2.10");
}

static void finish(void)
{
    pol_conn_free(conn);
    ck_assert_int_eq(atomic_load(&snap->refs), 1); /* every message let go */
    snap_release(snap);
    ck_assert_int_eq(fk.destroyed, 1);
}

static void mail(const char *sender, const char *login)
{
    atomic_fetch_add(&snap->refs, 1); /* pol_mail takes over one reference */
    pol_mail(conn, snap, sender, login, &r);
}

static void expect(enum pol_verdict v, const char *rcode, const char *xcode)
{
    ck_assert_msg(r.verdict == v, "verdict %d, want %d (%s %s %s)", r.verdict, v, r.rcode,
                  r.xcode, r.text);
    if (v == POL_CONTINUE)
        return;
    ck_assert_str_eq(r.rcode, rcode);
    ck_assert_str_eq(r.xcode, xcode);
    ck_assert_uint_gt(strlen(r.text), 0);
}

static void rcpts(int n, enum pol_verdict v)
{
    char rcpt[64];

    for (int i = 0; i < n; i++) {
        snprintf(rcpt, sizeof(rcpt), "<rcpt%d@example.net>", i);
        pol_rcpt(conn, rcpt, &r);
        ck_assert_msg(r.verdict == v, "rcpt %d: verdict %d (%s)", i, r.verdict, r.text);
    }
}

static const struct quota_counter *charged(const char *key)
{
    for (int i = 0; i < fk.charged.n; i++)
        if (strcmp(fk.charged.c[i].key, key) == 0)
            return &fk.charged.c[i];
    return NULL;
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
    mail("<Bob@Acme.Example>", NULL);
    expect(POL_CONTINUE, NULL, NULL);
    ck_assert_int_eq(fk.lookups, 1);
    ck_assert_str_eq(fk.login, "");
    ck_assert_str_eq(fk.fallback, "acme");
    rcpts(3, POL_CONTINUE);
    pol_data(conn, "QID1", &r);
    expect(POL_CONTINUE, NULL, NULL);
    ck_assert_int_eq(fk.lookups, 1); /* no round trip per recipient */
    ck_assert_int_eq(fk.charges, 1);
    ck_assert_int_eq(fk.charged.nrcpt, 3);
    ck_assert_int_eq(fk.charged.n, 4);
    const struct quota_counter *h = charged("relay:qc:h:acme");
    ck_assert_ptr_nonnull(h);
    ck_assert_int_eq(h->lim_msg, 5000);
    ck_assert_int_eq(h->lim_rcpt, 5000);
    ck_assert_ptr_nonnull(charged("relay:qc:m:acme"));
    ck_assert_ptr_nonnull(charged("relay:qc:d:acme"));
    ck_assert_ptr_nonnull(charged("relay:qs:h:4:acme:bob@acme.example"));
    ck_assert_int_eq(pol_eom(conn, "QID1"), 0);
    pol_abort(conn); /* after the end: nothing to give back */
    ck_assert_int_eq(fk.refunds, 0);
    finish();
}
END_TEST

START_TEST(suspended_by_store)
{
    start("accept", "tempfail");
    fake_field("suspended", "1");
    mail("<bob@acme.example>", NULL);
    expect(POL_REJECT, "550", "5.7.1");
    ck_assert_ptr_nonnull(strstr(r.text, "acme"));
    rcpts(1, POL_CONTINUE);
    pol_data(conn, "Q", &r);
    expect(POL_CONTINUE, NULL, NULL);
    ck_assert_int_eq(fk.charges, 0); /* the transaction ended at MAIL */
    finish();
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
    mail("<bob@acme.example>", NULL);
    expect(POL_CONTINUE, NULL, NULL);
    rcpts(5, POL_CONTINUE); /* config max_recipients 5 still applies */
    rcpts(1, POL_TEMPFAIL);
    pol_data(conn, "Q", &r);
    ck_assert_int_eq(charged("relay:qc:h:acme")->lim_msg, 5000);
    ck_assert_int_eq(charged("relay:qc:d:acme")->lim_msg, 10000);
    ck_assert_int_eq(charged("relay:qc:d:acme")->lim_rcpt, 50000);
    pol_eom(conn, "Q");
    finish();
}
END_TEST

START_TEST(store_overrides_and_unlimited)
{
    start("accept", "tempfail");
    fake_field("messages_per_hour", "-1");
    fake_field("recipients_per_hour", "-1");
    fake_field("messages_per_day", "7");
    mail("<bob@acme.example>", NULL);
    rcpts(1, POL_CONTINUE);
    pol_data(conn, "Q", &r);
    expect(POL_CONTINUE, NULL, NULL);
    ck_assert_ptr_null(charged("relay:qc:h:acme"));
    ck_assert_int_eq(charged("relay:qc:d:acme")->lim_msg, 7);
    ck_assert_ptr_nonnull(charged("relay:qc:m:acme"));
    ck_assert_int_eq(fk.charged.n, 3);
    pol_eom(conn, "Q");
    finish();
}
END_TEST

START_TEST(max_recipients)
{
    start("accept", "tempfail");
    fake_field("max_recipients", "2");
    mail("<bob@acme.example>", NULL);
    rcpts(2, POL_CONTINUE);
    pol_rcpt(conn, "<extra1@example.net>", &r);
    expect(POL_TEMPFAIL, "452", "4.5.3");
    pol_rcpt(conn, "<extra2@example.net>", &r);
    expect(POL_TEMPFAIL, "452", "4.5.3");
    pol_data(conn, "Q", &r);
    ck_assert_int_eq(fk.charged.nrcpt, 2);
    pol_eom(conn, "Q");
    /* the next transaction on the connection counts afresh */
    mail("<bob@acme.example>", NULL);
    rcpts(2, POL_CONTINUE);
    pol_abort(conn);
    finish();
}
END_TEST

static void over_quota(const char *action)
{
    start("accept", action);
    fk.refuse_key = "relay:qc:h:acme";
    fk.refuse_metric = 'm';
    fk.retry_ms = 12 * 60000;
    mail("<bob@acme.example>", NULL);
    rcpts(2, POL_CONTINUE);
    pol_data(conn, "QID", &r);
}

static const char *const quota_text =
    "quota exceeded: messages_per_hour 5000 for acme, retry in 12m";

START_TEST(over_quota_tempfail)
{
    over_quota("tempfail");
    expect(POL_TEMPFAIL, "451", "4.7.1");
    ck_assert_str_eq(r.text, quota_text);
    pol_abort(conn); /* the MTA refuses the message */
    ck_assert_int_eq(fk.refunds, 0);
    finish();
}
END_TEST

START_TEST(over_quota_reject)
{
    over_quota("reject");
    expect(POL_REJECT, "550", "5.7.1");
    ck_assert_str_eq(r.text, quota_text);
    pol_abort(conn);
    ck_assert_int_eq(fk.refunds, 0);
    finish();
}
END_TEST

START_TEST(over_quota_hold)
{
    over_quota("hold");
    expect(POL_CONTINUE, NULL, NULL);
    ck_assert_int_eq(pol_eom(conn, "QID"), 1);
    ck_assert_ptr_nonnull(strstr(pol_hold_reason(conn), quota_text));
    assert_clean_text(pol_hold_reason(conn));
    ck_assert_int_eq(fk.refunds, 0);
    /* the next message, within quota, is not held */
    fk.refuse_key = NULL;
    mail("<bob@acme.example>", NULL);
    rcpts(1, POL_CONTINUE);
    pol_data(conn, "QID2", &r);
    ck_assert_int_eq(pol_eom(conn, "QID2"), 0);
    finish();
}
END_TEST

START_TEST(over_quota_monitor)
{
    over_quota("monitor");
    expect(POL_CONTINUE, NULL, NULL);
    ck_assert_int_eq(pol_eom(conn, "QID"), 0);
    ck_assert_int_eq(fk.refunds, 0);
    finish();
}
END_TEST

START_TEST(recipient_metric_text)
{
    start("accept", "tempfail");
    fk.refuse_key = "relay:qs:h:4:acme:bob@acme.example";
    fk.refuse_metric = 'm';
    fk.retry_ms = 3 * 3600000LL;
    mail("<bob@acme.example>", NULL);
    rcpts(1, POL_CONTINUE);
    pol_data(conn, "Q", &r);
    expect(POL_TEMPFAIL, "451", "4.7.1");
    ck_assert_str_eq(
        r.text, "quota exceeded: sender_messages_per_hour 500 for acme, retry in 3h");
    fk.refuse_key = "relay:qc:d:acme";
    fk.refuse_metric = 'r';
    fk.retry_ms = 30000;
    mail("<bob@acme.example>", NULL);
    rcpts(1, POL_CONTINUE);
    pol_data(conn, "Q", &r);
    ck_assert_str_eq(r.text,
                     "quota exceeded: recipients_per_day 50000 for acme, retry in 30s");
    pol_abort(conn);
    finish();
}
END_TEST

START_TEST(abort_after_data_refunds)
{
    start("accept", "tempfail");
    mail("<bob@acme.example>", NULL);
    rcpts(3, POL_CONTINUE);
    pol_data(conn, "Q", &r);
    ck_assert_int_eq(fk.refunds, 0);
    pol_abort(conn);
    ck_assert_int_eq(fk.refunds, 1);
    ck_assert_int_eq(fk.refund_ms, fk.clock_ms);
    ck_assert_int_eq(fk.refunded.n, fk.charged.n);
    ck_assert_int_eq(fk.refunded.nrcpt, 3);
    for (int i = 0; i < fk.charged.n; i++)
        ck_assert_str_eq(fk.refunded.c[i].key, fk.charged.c[i].key);
    pol_abort(conn); /* only once */
    ck_assert_int_eq(fk.refunds, 1);
    finish();
}
END_TEST

START_TEST(new_mail_after_data_refunds)
{
    start("accept", "tempfail");
    mail("<bob@acme.example>", NULL);
    rcpts(1, POL_CONTINUE);
    pol_data(conn, "Q", &r);
    fk.clock_ms = 5; /* the next charge's time must not be the one refunded */
    mail("<bob@acme.example>", NULL);
    ck_assert_int_eq(fk.refunds, 1);
    ck_assert_int_eq(fk.refund_ms, 1700000000123LL);
    pol_abort(conn);
    ck_assert_int_eq(fk.refunds, 1);
    finish();
}
END_TEST

START_TEST(disconnect_after_data_refunds)
{
    start("accept", "tempfail");
    fk.fail_refund = 1; /* a failed refund is logged, nothing else */
    mail("<bob@acme.example>", NULL);
    rcpts(1, POL_CONTINUE);
    pol_data(conn, "Q", &r);
    finish(); /* pol_conn_free: the client went away */
    ck_assert_int_eq(fk.refunds, 1);
}
END_TEST

START_TEST(abort_before_data_no_refund)
{
    start("accept", "tempfail");
    mail("<bob@acme.example>", NULL);
    rcpts(2, POL_CONTINUE);
    pol_abort(conn);
    ck_assert_int_eq(fk.charges, 0);
    ck_assert_int_eq(fk.refunds, 0);
    pol_data(conn, "Q", &r); /* DATA outside a transaction */
    expect(POL_CONTINUE, NULL, NULL);
    ck_assert_int_eq(fk.charges, 0);
    finish();
}
END_TEST

START_TEST(store_down_at_mail)
{
    start("accept", "tempfail");
    fk.fail_lookup = 1;
    mail("<bob@acme.example>", NULL);
    expect(POL_CONTINUE, NULL, NULL);
    rcpts(5, POL_CONTINUE);
    rcpts(1, POL_TEMPFAIL); /* the config's limits still hold */
    pol_data(conn, "Q", &r);
    expect(POL_CONTINUE, NULL, NULL);
    ck_assert_int_eq(charged("relay:qc:h:acme")->lim_msg, 5000);
    pol_eom(conn, "Q");
    finish();

    start("tempfail", "tempfail");
    fk.fail_lookup = 1;
    mail("<bob@acme.example>", NULL);
    expect(POL_TEMPFAIL, "451", "4.3.0");
    pol_data(conn, "Q", &r);
    ck_assert_int_eq(fk.charges, 0);
    finish();
}
END_TEST

START_TEST(store_down_at_data)
{
    start("accept", "tempfail");
    fk.fail_charge = 1;
    mail("<bob@acme.example>", NULL);
    rcpts(1, POL_CONTINUE);
    pol_data(conn, "Q", &r);
    expect(POL_CONTINUE, NULL, NULL);
    pol_abort(conn);
    ck_assert_int_eq(fk.refunds, 0); /* nothing was charged */
    finish();

    start("tempfail", "tempfail");
    fk.fail_charge = 1;
    mail("<bob@acme.example>", NULL);
    rcpts(1, POL_CONTINUE);
    pol_data(conn, "Q", &r);
    expect(POL_TEMPFAIL, "451", "4.3.0");
    pol_abort(conn);
    ck_assert_int_eq(fk.refunds, 0);
    finish();
}
END_TEST

START_TEST(sasl_customer_from_store)
{
    start("accept", "tempfail");
    snprintf(fk.customer, sizeof(fk.customer), "bigco");
    fk.refuse_key = "relay:qc:h:bigco";
    fk.refuse_metric = 'm';
    fk.retry_ms = 60000;
    mail("<x@bigco.example>", "someone");
    expect(POL_CONTINUE, NULL, NULL);
    ck_assert_str_eq(fk.login, "someone");
    ck_assert_str_eq(fk.fallback, "someone");
    rcpts(1, POL_CONTINUE);
    pol_data(conn, "Q", &r);
    ck_assert_int_eq(charged("relay:qc:h:bigco")->lim_msg, 7000);
    ck_assert_ptr_null(charged("relay:qc:h:acme")); /* not the network's customer */
    expect(POL_REJECT, "550", "5.7.1");             /* bigco's action */
    ck_assert_str_eq(r.text,
                     "quota exceeded: messages_per_hour 7000 for bigco, retry in 60s");
    pol_abort(conn);
    finish();
}
END_TEST

START_TEST(sasl_customer_from_config)
{
    start("accept", "tempfail");
    mail("<x@acme.example>", "acme-login");
    ck_assert_str_eq(fk.fallback, "acme");
    rcpts(1, POL_CONTINUE);
    pol_data(conn, "Q", &r);
    ck_assert_ptr_nonnull(charged("relay:qc:h:acme"));
    pol_eom(conn, "Q");
    finish();
}
END_TEST

START_TEST(fallback_identities)
{
    start_conf("# defaults only\n", NULL);
    mail("<a@b.example>", "");
    ck_assert_str_eq(fk.fallback, "ip:unknown");
    pol_abort(conn);
    finish();

    start_conf("# defaults only\n", "2001:db8:5:6:7:8:9:a");
    mail("<a@b.example>", NULL);
    ck_assert_str_eq(fk.fallback, "ip:2001:db8:5:6::/64");
    rcpts(1, POL_CONTINUE);
    pol_data(conn, "Q", &r);
    ck_assert_ptr_nonnull(charged("relay:qc:h:ip:2001:db8:5:6::/64"));
    ck_assert_int_eq(charged("relay:qc:h:ip:2001:db8:5:6::/64")->lim_msg, 1000);
    pol_eom(conn, "Q");
    finish();
}
END_TEST

START_TEST(sender_forms)
{
    start("accept", "tempfail");
    mail("<>", NULL); /* bounces pass */
    expect(POL_CONTINUE, NULL, NULL);
    pol_abort(conn);
    mail("<bob\r\n@acme.example>", NULL);
    expect(POL_REJECT, "550", "5.1.7");
    ck_assert_int_eq(fk.lookups, 1);
    assert_clean_text(r.text);
    finish();
}
END_TEST

START_TEST(reply_text_sanitised)
{
    const char *evil = "ev%il\r\nname\x01\x7f\xc3\xa9%n";

    start("accept", "tempfail");
    snprintf(fk.customer, sizeof(fk.customer), "%s", evil);
    fake_field("suspended", "1");
    mail("<bob@acme.example>", "someone");
    expect(POL_REJECT, "550", "5.7.1");
    assert_clean_text(r.text);
    finish();

    start("accept", "tempfail");
    snprintf(fk.customer, sizeof(fk.customer), "%s", evil);
    fk.refuse_metric = 'm';
    fk.retry_ms = 1000;
    mail("<bob@acme.example>", "someone");
    rcpts(1, POL_CONTINUE);
    char key[256];
    snprintf(key, sizeof(key), "relay:qc:h:%s", evil);
    fk.refuse_key = key;
    pol_data(conn, "Q", &r);
    expect(POL_TEMPFAIL, "451", "4.7.1");
    assert_clean_text(r.text);
    ck_assert_ptr_nonnull(strstr(r.text, "messages_per_hour 1000 for ev"));
    pol_abort(conn);
    finish();
}
END_TEST

START_TEST(hold_reason_sanitised)
{
    start("accept", "hold");
    snprintf(fk.customer, sizeof(fk.customer), "ev%%il\r\nname");
    fake_field("action", "hold");
    fk.refuse_key = "relay:qc:h:ev%il\r\nname";
    fk.refuse_metric = 'm';
    fk.retry_ms = 1000;
    mail("<bob@acme.example>", "someone");
    rcpts(1, POL_CONTINUE);
    pol_data(conn, "Q", &r);
    expect(POL_CONTINUE, NULL, NULL);
    ck_assert_int_eq(pol_eom(conn, "Q"), 1);
    /* the MTA logs the reason: no line breaks or other control bytes */
    assert_printable(pol_hold_reason(conn), 1);
    finish();
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
