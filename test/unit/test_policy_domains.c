/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_policy_domains - sender domain protection, blocked recipient domains
 * and the events stream in the policy engine (policy.h), and the local
 * fallback's part in it, against the fake store: ownership comes from the
 * config and from the fake's PREFIX domain:* sets, blocked domains from the
 * config and the fake's PREFIX blocked-rcpt-domains.
 */
#include <stdio.h>
#include <string.h>

#include "polharness.h"
#include "testutil.h"

/* Clients, each inside one customer's networks. */
#define ACME "192.0.2.10"
#define BETA "198.51.100.10"
#define GAMMA "203.0.113.10"
#define DELTA "10.0.0.4"

static void start_mode(const char *on_store_error, const char *client)
{
    char conf[2048];

    snprintf(conf, sizeof(conf),
             "on_store_error = \"%s\";\n"
             "customers = (\n"
             "  { name = \"acme\"; networks = [ \"192.0.2.0/24\" ];\n"
             "    domains = [ \"acme.example\", \"B\xc3\xbc"
             "cher.Example.\" ];\n"
             "    limits = { max_recipients = 3; }; },\n"
             "  { name = \"beta\"; networks = [ \"198.51.100.0/24\" ];\n"
             "    domains = [ \"mail.acme.example\", \"BETA.example\" ]; },\n"
             "  { name = \"gamma\"; networks = [ \"203.0.113.0/24\" ];\n"
             "    domains = [ \"shared.example\", \"xn--mnchen-3ya.example\" ];\n"
             "    limits = { own_domains_only = 1; }; },\n"
             "  { name = \"delta\"; networks = [ \"10.0.0.4\" ];\n"
             "    domains = [ \"shared.example\" ]; }\n"
             ");\n"
             "blocked_recipient_domains = [ \"SpamTrap.Example\" ];\n",
             on_store_error);
    ph_start(conf, client);
}

static void start(const char *client)
{
    start_mode("accept", client);
}

static void assert_event(int i, const char *customer, const char *sender,
                         const char *reason)
{
    ck_assert_int_gt(fk.events, i);
    ck_assert_str_eq(fk.event[i].customer, customer);
    ck_assert_str_eq(fk.event[i].sender, sender);
    ck_assert_str_eq(fk.event[i].reason, reason);
    ck_assert_str_eq(fk.event[i].action, "reject");
}

/* MAIL FROM <sender> goes on; the transaction is then ended. */
static void allowed(const char *sender)
{
    int events = fk.events;

    ph_mail(sender, NULL);
    ck_assert_msg(ph_r.verdict == POL_CONTINUE, "%s refused: %s %s %s", sender,
                  ph_r.rcode, ph_r.xcode, ph_r.text);
    pol_abort(ph_conn);
    ck_assert_int_eq(fk.events, events);
}

/* MAIL FROM <sender> is refused for the domain, with one event for reason. */
static void refused(const char *sender, const char *reason)
{
    int events = fk.events;

    ph_mail(sender, NULL);
    ck_assert_msg(ph_r.verdict == POL_REJECT, "%s not refused", sender);
    ph_expect(POL_REJECT, "550", "5.7.1");
    ck_assert_ptr_nonnull(strstr(ph_r.text, " may not send as "));
    ck_assert_int_eq(fk.events, events + 1);
    if (events < FAKE_MAX_EVENTS)
        ck_assert_str_eq(fk.event[events].reason, reason);
}

static const char *const other = "sender_domain_owned_by_other";
static const char *const unowned = "sender_domain_not_owned";

/* ---- sender domain protection ---- */

START_TEST(owned_by_other_refused)
{
    start(ACME);
    refused("<Bob@Beta.Example>", other);
    ck_assert_str_eq(ph_r.text, "acme may not send as beta.example");
    ck_assert_str_eq(fk.sender_domain, "beta.example"); /* canonical to the store */
    assert_event(0, "acme", "bob@beta.example", other);
    ck_assert_str_eq(fk.event[0].qid, "");
    /* the transaction ended at MAIL: nothing is counted or charged */
    ph_rcpt("<x@example.net>");
    pol_data(ph_conn, "Q", &ph_r);
    ph_expect(POL_CONTINUE, NULL, NULL);
    ck_assert_int_eq(fk.charges, 0);
    allowed("<bob@acme.example>");
    allowed("<bob@notbeta.example>"); /* another domain, not a subdomain */
    ph_finish();
}
END_TEST

START_TEST(owned_by_other_in_store)
{
    start(ACME);
    fake_owner("redis-owned.example", "beta");
    refused("<bob@redis-owned.example>", other);
    assert_event(0, "acme", "bob@redis-owned.example", other);
    ph_finish();

    start(BETA);
    fake_owner("redis-owned.example", "beta");
    allowed("<bob@redis-owned.example>");
    ph_finish();
}
END_TEST

START_TEST(subdomains_covered)
{
    start(ACME);
    fake_owner("r.example", "beta");
    refused("<bob@x.y.beta.example>", other);
    refused("<bob@deep.r.example>", other);
    allowed("<bob@x.acme.example>");
    ph_finish();
}
END_TEST

/* acme owns acme.example, beta owns mail.acme.example (both config). */
START_TEST(deeper_config_level_decides)
{
    start(ACME);
    refused("<bob@mail.acme.example>", other);
    refused("<bob@www.mail.acme.example>", other);
    allowed("<bob@www.acme.example>");
    ph_finish();

    start(BETA);
    allowed("<bob@mail.acme.example>");
    allowed("<bob@www.mail.acme.example>");
    refused("<bob@www.acme.example>", other);
    ph_finish();
}
END_TEST

START_TEST(config_deeper_than_store)
{
    start(ACME);
    fake_owner("example", "acme"); /* a shallower Redis entry */
    refused("<bob@beta.example>", other);
    allowed("<bob@other.example>");
    ph_finish();

    start(BETA);
    fake_owner("example", "acme");
    refused("<bob@other.example>", other);
    allowed("<bob@beta.example>");
    ph_finish();
}
END_TEST

START_TEST(store_deeper_than_config)
{
    start(ACME);
    fake_owner("x.beta.example", "acme");
    fake_owner("y.acme.example", "beta");
    allowed("<bob@x.beta.example>");
    allowed("<bob@www.x.beta.example>");
    refused("<bob@y.beta.example>", other);
    refused("<bob@y.acme.example>", other);
    ph_finish();

    start(BETA);
    fake_owner("x.beta.example", "acme");
    fake_owner("y.acme.example", "beta");
    refused("<bob@x.beta.example>", other);
    allowed("<bob@y.acme.example>");
    ph_finish();
}
END_TEST

START_TEST(equal_depth_union_of_owners)
{
    static const char *const clients[] = {ACME, BETA, GAMMA, DELTA};
    /* beta.example: beta (config) and acme (Redis); shared.example: gamma and
     * delta (config) */
    static const int beta_ok[] = {1, 1, 0, 0}, shared_ok[] = {0, 0, 1, 1};

    for (int i = 0; i < 4; i++) {
        start(clients[i]);
        fake_owner("beta.example", "acme");
        if (beta_ok[i])
            allowed("<bob@beta.example>");
        else
            refused("<bob@beta.example>", other);
        if (shared_ok[i])
            allowed("<bob@shared.example>");
        else
            refused("<bob@shared.example>", other);
        ph_finish();
    }
}
END_TEST

START_TEST(own_domains_only)
{
    start(GAMMA);
    fake_owner("gamma-redis.example", "gamma");
    allowed("<bob@shared.example>");
    allowed("<bob@sub.shared.example>");
    allowed("<bob@gamma-redis.example>");
    refused("<bob@free.example>", unowned);
    ck_assert_str_eq(ph_r.text, "gamma may not send as free.example");
    assert_event(0, "gamma", "bob@free.example", unowned);
    refused("<bob@acme.example>", other);
    allowed("<>");
    ph_finish();

    start(ACME); /* without the flag a domain nobody owns is free */
    allowed("<bob@free.example>");
    ph_finish();

    start(ACME); /* the flag set by staff in Redis */
    fake_field("own_domains_only", "1");
    refused("<bob@free.example>", unowned);
    allowed("<bob@acme.example>");
    ph_finish();
}
END_TEST

START_TEST(null_sender_never_refused)
{
    static const char *const clients[] = {ACME, BETA, GAMMA, DELTA};

    for (int i = 0; i < 4; i++) {
        start(clients[i]);
        fake_owner("example", "nobody-else");
        allowed("<>");
        ck_assert_str_eq(fk.sender_domain, "");
        ph_rcpt("<postmaster@example.net>");
        ph_expect(POL_CONTINUE, NULL, NULL);
        ph_finish();
    }
}
END_TEST

START_TEST(idn_sender_domains)
{
    start(GAMMA); /* config entry written as an A-label */
    allowed("<bob@M\xc3\xbcnchen.example>");
    ck_assert_str_eq(fk.sender_domain, "xn--mnchen-3ya.example");
    allowed("<bob@mail.m\xc3\xbcnchen.example.>");
    ph_finish();

    start(ACME); /* config entry written in UTF-8 with capitals and a dot */
    refused("<bob@m\xc3\xbcnchen.example>", other);
    ck_assert_str_eq(ph_r.text, "acme may not send as xn--mnchen-3ya.example");
    allowed("<bob@XN--BCHER-KVA.example>");
    allowed("<bob@b\xc3\xbc"
            "cher.example>");
    ph_finish();

    start(BETA);
    refused("<bob@B\xc3\x9c"
            "CHER.example>",
            other);
    refused("<bob@xn--bcher-kva.example>", other);
    ph_finish();
}
END_TEST

START_TEST(sender_domain_not_a_name)
{
    start(GAMMA); /* nobody can own it, so own_domains_only refuses it */
    refused("<bob@bad..example>", unowned);
    refused("<postmaster>", unowned);
    ph_finish();

    start(ACME);
    allowed("<bob@bad..example>");
    ph_finish();
}
END_TEST

/* ---- blocked recipient domains ---- */

static void rcpt_refused(const char *rcpt, const char *domain)
{
    char want[128];

    ph_rcpt(rcpt);
    ph_expect(POL_REJECT, "550", "5.7.1");
    snprintf(want, sizeof(want), "relaying to %s is not allowed", domain);
    ck_assert_str_eq(ph_r.text, want);
}

static void rcpt_ok(const char *rcpt)
{
    ph_rcpt(rcpt);
    ck_assert_msg(ph_r.verdict == POL_CONTINUE, "%s: %s %s", rcpt, ph_r.rcode, ph_r.text);
}

START_TEST(blocked_recipients)
{
    start(ACME);
    fake_blocked("redis-blocked.example");
    ph_mail("<bob@acme.example>", NULL);
    ph_expect(POL_CONTINUE, NULL, NULL);
    rcpt_ok("<a@ok.example>");
    rcpt_refused("<b@spamtrap.example>", "spamtrap.example");
    rcpt_refused("<c@x.SPAMTRAP.example.>", "spamtrap.example");
    rcpt_ok("<d@notspamtrap.example>");
    rcpt_refused("<e@redis-blocked.example>", "redis-blocked.example");
    rcpt_refused("<f@deep.sub.redis-blocked.example>", "redis-blocked.example");
    /* refused recipients do not count toward max_recipients (3) */
    rcpt_ok("<g@ok.example>");
    ph_rcpt("<h@ok.example>");
    ph_expect(POL_TEMPFAIL, "452", "4.5.3");
    pol_data(ph_conn, "Q1", &ph_r);
    ph_expect(POL_CONTINUE, NULL, NULL);
    ck_assert_int_eq(fk.charged.nrcpt, 3);
    ck_assert_int_eq(pol_eom(ph_conn, "Q1"), 0);
    ck_assert_int_eq(fk.events, 0); /* the message went out */
    ph_finish();
}
END_TEST

START_TEST(all_blocked_one_event)
{
    start(ACME);
    fake_blocked("redis-blocked.example");
    ph_mail("<bob@acme.example>", NULL);
    rcpt_refused("<b@spamtrap.example>", "spamtrap.example");
    rcpt_refused("<c@redis-blocked.example>", "redis-blocked.example");
    ck_assert_int_eq(fk.events, 0);
    pol_abort(ph_conn); /* the MTA gives up: no recipient left */
    ck_assert_int_eq(fk.events, 1);
    assert_event(0, "acme", "bob@acme.example", "blocked_recipient_domain");
    ck_assert_ptr_nonnull(strstr(fk.event[0].recipients, "b@spamtrap.example"));
    ck_assert_ptr_nonnull(strstr(fk.event[0].recipients, "c@redis-blocked.example"));
    pol_abort(ph_conn);
    ck_assert_int_eq(fk.events, 1);
    /* a message with one good recipient left is no such event */
    ph_mail("<bob@acme.example>", NULL);
    rcpt_refused("<b@spamtrap.example>", "spamtrap.example");
    rcpt_ok("<a@ok.example>");
    pol_abort(ph_conn);
    ck_assert_int_eq(fk.events, 1);
    /* ended by the next MAIL or by a disconnect: recorded as well */
    ph_mail("<bob@acme.example>", NULL);
    rcpt_refused("<b@spamtrap.example>", "spamtrap.example");
    ph_mail("<bob@acme.example>", NULL);
    ck_assert_int_eq(fk.events, 2);
    rcpt_refused("<b@spamtrap.example>", "spamtrap.example");
    ph_finish();
    ck_assert_int_eq(fk.events, 3);
    ck_assert_str_eq(fk.event[2].reason, "blocked_recipient_domain");
}
END_TEST

/* ---- events ---- */

START_TEST(suspended_recorded)
{
    start(ACME);
    fake_field("suspended", "1");
    ph_mail("<bob@acme.example>", NULL);
    ph_expect(POL_REJECT, "550", "5.7.1");
    ck_assert_int_eq(fk.events, 1);
    assert_event(0, "acme", "bob@acme.example", "suspended");
    /* an events stream that cannot be written changes no decision */
    fk.fail_event = 1;
    ph_mail("<bob@acme.example>", NULL);
    ph_expect(POL_REJECT, "550", "5.7.1");
    ck_assert_int_eq(fk.events, 2);
    ph_finish();
}
END_TEST

static void over_quota_event(const char *action)
{
    start(ACME);
    fake_field("action", action);
    fake_refuse(fake_ckey('h', "acme"));
    fk.refuse_metric = 'm';
    fk.retry_ms = 60000;
    ph_mail("<Bob@Acme.Example>", NULL);
    rcpt_ok("<r1@example.net>");
    rcpt_ok("<R2@Example.NET>");
    pol_data(ph_conn, "QID7", &ph_r);
    ck_assert_int_eq(fk.charge_had_event, 1);
    ck_assert_str_eq(fk.charge_event.qid, "QID7");
    ck_assert_str_eq(fk.charge_event.customer, "acme");
    ck_assert_str_eq(fk.charge_event.sender, "bob@acme.example");
    ck_assert_str_eq(fk.charge_event.recipients, "r1@example.net,r2@example.net");
    ck_assert_str_eq(fk.charge_event.action, action);
    ck_assert_int_eq(fk.events, 0); /* recorded inside the charge: no extra call */
}

START_TEST(over_quota_event_in_charge)
{
    over_quota_event("tempfail");
    ph_expect(POL_TEMPFAIL, "451", "4.7.1");
    pol_abort(ph_conn);
    ph_finish();

    over_quota_event("reject");
    ph_expect(POL_REJECT, "550", "5.7.1");
    pol_abort(ph_conn);
    ph_finish();

    over_quota_event("hold");
    ph_expect(POL_CONTINUE, NULL, NULL);
    ck_assert_int_eq(pol_eom(ph_conn, "QID7"), 1);
    ph_finish();
}
END_TEST

/* ---- the local fallback and store errors ---- */

START_TEST(local_result_refunded_locally)
{
    start(ACME);
    fk.charge_local = 1;
    ph_mail("<bob@acme.example>", NULL);
    rcpt_ok("<r@example.net>");
    pol_data(ph_conn, "Q", &ph_r);
    ph_expect(POL_CONTINUE, NULL, NULL);
    pol_abort(ph_conn);
    ck_assert_int_eq(fk.refunds, 1);
    ck_assert_int_eq(fk.refunded.local, 1);
    ck_assert_int_eq(fk.refund_ms, PH_CLOCK_MS);
    /* a charge Redis made is refunded to Redis */
    fk.charge_local = 0;
    ph_mail("<bob@acme.example>", NULL);
    rcpt_ok("<r@example.net>");
    pol_data(ph_conn, "Q", &ph_r);
    pol_abort(ph_conn);
    ck_assert_int_eq(fk.refunds, 2);
    ck_assert_int_eq(fk.refunded.local, 0);
    /* a local refusal is a refusal like any other */
    fk.charge_local = 1;
    fake_refuse(fake_ckey('h', "acme"));
    fk.refuse_metric = 'm';
    fk.retry_ms = 1000;
    ph_mail("<bob@acme.example>", NULL);
    rcpt_ok("<r@example.net>");
    pol_data(ph_conn, "Q", &ph_r);
    ph_expect(POL_TEMPFAIL, "451", "4.7.1");
    pol_abort(ph_conn);
    ck_assert_int_eq(fk.refunds, 2);
    ph_finish();
}
END_TEST

START_TEST(on_store_error_local)
{
    start_mode("local", ACME);
    fk.fail_lookup = 1;
    ph_mail("<bob@acme.example>", NULL);
    ph_expect(POL_CONTINUE, NULL, NULL);
    rcpt_ok("<r@example.net>");
    pol_data(ph_conn, "Q", &ph_r);
    ph_expect(POL_CONTINUE, NULL, NULL);
    ck_assert_int_eq(fk.charges, 1);
    ck_assert_int_eq(ph_charged(fake_ckey('h', "acme"))->lim_msg, 1000);
    pol_eom(ph_conn, "Q");
    /* the fallback could not decide either */
    fk.fail_charge = 1;
    ph_mail("<bob@acme.example>", NULL);
    ph_expect(POL_CONTINUE, NULL, NULL);
    rcpt_ok("<r@example.net>");
    pol_data(ph_conn, "Q", &ph_r);
    ph_expect(POL_TEMPFAIL, "451", "4.3.0");
    pol_abort(ph_conn);
    ck_assert_int_eq(fk.refunds, 0);
    ph_finish();
}
END_TEST

START_TEST(config_protection_without_store)
{
    static const char *const modes[] = {"accept", "local"};

    for (int i = 0; i < 2; i++) {
        start_mode(modes[i], ACME);
        fk.fail_lookup = 1;
        refused("<bob@beta.example>", other);
        allowed("<bob@acme.example>");
        ph_finish();
    }
}
END_TEST

/* What Redis said about one transaction's sender domain must not decide the
 * next transaction's when the store cannot be asked: neither refuse a free
 * domain nor let another customer's through. */
START_TEST(store_failure_no_stale_refusal)
{
    start(ACME);
    fake_owner("redis-owned.example", "beta");
    refused("<bob@redis-owned.example>", other);
    fk.fail_lookup = 1;
    allowed("<bob@free.example>");
    ph_finish();
}
END_TEST

START_TEST(store_failure_no_stale_permission)
{
    start(ACME);
    fake_owner("long-redis-name.example", "acme");
    allowed("<bob@long-redis-name.example>");
    fk.fail_lookup = 1;
    refused("<bob@beta.example>", other);
    ph_finish();
}
END_TEST

static Suite *domains_suite(void)
{
    Suite *s = suite_create("policy_domains");
    TCase *own = tcase_create("sender");
    TCase *rcpt = tcase_create("recipient");
    TCase *ev = tcase_create("events");
    TCase *fb = tcase_create("fallback");

    tcase_add_test(own, owned_by_other_refused);
    tcase_add_test(own, owned_by_other_in_store);
    tcase_add_test(own, subdomains_covered);
    tcase_add_test(own, deeper_config_level_decides);
    tcase_add_test(own, config_deeper_than_store);
    tcase_add_test(own, store_deeper_than_config);
    tcase_add_test(own, equal_depth_union_of_owners);
    tcase_add_test(own, own_domains_only);
    tcase_add_test(own, null_sender_never_refused);
    tcase_add_test(own, idn_sender_domains);
    tcase_add_test(own, sender_domain_not_a_name);
    tcase_add_test(rcpt, blocked_recipients);
    tcase_add_test(rcpt, all_blocked_one_event);
    tcase_add_test(ev, suspended_recorded);
    tcase_add_test(ev, over_quota_event_in_charge);
    tcase_add_test(fb, local_result_refunded_locally);
    tcase_add_test(fb, on_store_error_local);
    tcase_add_test(fb, config_protection_without_store);
    tcase_add_test(fb, store_failure_no_stale_refusal);
    tcase_add_test(fb, store_failure_no_stale_permission);
    suite_add_tcase(s, own);
    suite_add_tcase(s, rcpt);
    suite_add_tcase(s, ev);
    suite_add_tcase(s, fb);
    return s;
}

int main(void)
{
    return tu_run(domains_suite());
}
