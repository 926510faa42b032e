/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_config - relaymilter.conf loading: the sample file, defaults, every
 * kind of bad input with its "FILE:LINE: " position, and the lookups over a
 * loaded config (customers by SASL login and address, limit inheritance).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "testutil.h"

#define SAMPLE RM_SOURCE_DIR "/postfix-example/relaymilter.conf"

static char err[1024];

static struct rm_config *load_ok(const char *text)
{
    struct rm_config *cfg = tu_load(text, err, sizeof(err));
    ck_assert_msg(cfg != NULL, "config refused: %s", err);
    return cfg;
}

static void assert_limit(const struct lim_set *l, int id, long long v)
{
    ck_assert_msg(l->set[id], "%s not set", lim_field_name(id));
    ck_assert_msg(l->v[id] == v, "%s = %lld, expected %lld", lim_field_name(id), l->v[id],
                  v);
}

START_TEST(sample_loads)
{
    struct rm_config *cfg = cfg_load(SAMPLE, err, sizeof(err));

    ck_assert_msg(cfg != NULL, "sample refused: %s", err);
    ck_assert_str_eq(cfg->socket, "inet:8890@127.0.0.1");
    ck_assert_int_eq(cfg->timeout, 30);
    ck_assert_ptr_null(cfg->user);
    ck_assert_str_eq(cfg->redis_host, "127.0.0.1");
    ck_assert_int_eq(cfg->redis_port, 6379);
    ck_assert_ptr_null(cfg->redis_unix);
    ck_assert_uint_eq(cfg->sentinels.n, 0);
    ck_assert_int_eq(cfg->redis_db, 0);
    ck_assert_str_eq(cfg->prefix, "relay:");
    ck_assert_int_eq(cfg->connect_timeout_ms, 200);
    ck_assert_int_eq(cfg->command_timeout_ms, 100);
    ck_assert_int_eq(cfg->pool_size, 8);
    ck_assert_int_eq(cfg->on_store_error, CFG_SE_ACCEPT);
    ck_assert_int_eq(cfg->log_level, LOG_LVL_INFO);
    assert_limit(&cfg->limits, LIM_MSG_MINUTE, 60);
    assert_limit(&cfg->limits, LIM_MSG_HOUR, 1000);
    assert_limit(&cfg->limits, LIM_MSG_DAY, 10000);
    assert_limit(&cfg->limits, LIM_RCPT_MINUTE, 300);
    assert_limit(&cfg->limits, LIM_RCPT_HOUR, 5000);
    assert_limit(&cfg->limits, LIM_RCPT_DAY, 50000);
    assert_limit(&cfg->limits, LIM_SMSG_HOUR, 500);
    assert_limit(&cfg->limits, LIM_MAX_RCPT, 100);
    assert_limit(&cfg->limits, LIM_ACTION, LIM_ACT_TEMPFAIL);
    ck_assert_uint_eq(cfg->ncustomers, 1);
    const struct cfg_customer *acme = &cfg->customers[0];
    ck_assert_str_eq(acme->name, "acme");
    ck_assert_uint_eq(acme->sasl.n, 2);
    ck_assert_str_eq(acme->sasl.v[0], "acme");
    ck_assert_str_eq(acme->sasl.v[1], "acme-relay");
    ck_assert_uint_eq(acme->domains.n, 1);
    ck_assert_str_eq(acme->domains.v[0], "acme.example");
    ck_assert_uint_eq(cfg->nnetworks, 2);
    assert_limit(&acme->limits, LIM_MSG_HOUR, 5000);
    ck_assert_int_eq(acme->limits.set[LIM_MSG_DAY], 0);
    ck_assert_uint_eq(cfg->blocked_rcpt_domains.n, 1);
    ck_assert_str_eq(cfg->blocked_rcpt_domains.v[0], "spamtrap.example");
    ck_assert_str_eq(cfg->path, SAMPLE);
    cfg_free(cfg);
}
END_TEST

START_TEST(every_key_lands)
{
    struct rm_config *cfg = load_ok(
        "milter = { socket = \"unix:/run/rm.sock\"; timeout = 45; user = \"rm\"; };\n"
        "redis = { unix = \"/run/redis.sock\"; port = 6380; host = \"10.1.1.1\";\n"
        "  sentinels = [ \"10.0.0.1:26379\", \"10.0.0.2:26379\" ]; master = \"mm\";\n"
        "  username = \"u\"; password = \"p\"; db = 3; prefix = \"rl:\";\n"
        "  connect_timeout_ms = 250; command_timeout_ms = 75; pool_size = 4; };\n"
        "on_store_error = \"tempfail\";\n"
        "log = { level = \"debug\"; };\n"
        "limits = { messages_per_minute = 1; sender_recipients_per_day = 7;\n"
        "  action = \"hold\"; suspended = 1; own_domains_only = true; };\n"
        "blocked_recipient_domains = [ \"a.example\", \"b.example\" ];\n");

    ck_assert_str_eq(cfg->socket, "unix:/run/rm.sock");
    ck_assert_int_eq(cfg->timeout, 45);
    ck_assert_str_eq(cfg->user, "rm");
    ck_assert_str_eq(cfg->redis_unix, "/run/redis.sock");
    ck_assert_str_eq(cfg->redis_host, "10.1.1.1");
    ck_assert_int_eq(cfg->redis_port, 6380);
    ck_assert_uint_eq(cfg->sentinels.n, 2);
    ck_assert_str_eq(cfg->sentinels.v[1], "10.0.0.2:26379");
    ck_assert_str_eq(cfg->redis_master, "mm");
    ck_assert_str_eq(cfg->redis_username, "u");
    ck_assert_str_eq(cfg->redis_password, "p");
    ck_assert_int_eq(cfg->redis_db, 3);
    ck_assert_str_eq(cfg->prefix, "rl:");
    ck_assert_int_eq(cfg->connect_timeout_ms, 250);
    ck_assert_int_eq(cfg->command_timeout_ms, 75);
    ck_assert_int_eq(cfg->pool_size, 4);
    ck_assert_int_eq(cfg->on_store_error, CFG_SE_TEMPFAIL);
    ck_assert_int_eq(cfg->log_level, LOG_LVL_DEBUG);
    assert_limit(&cfg->limits, LIM_MSG_MINUTE, 1);
    assert_limit(&cfg->limits, LIM_SRCPT_DAY, 7);
    assert_limit(&cfg->limits, LIM_ACTION, LIM_ACT_HOLD);
    assert_limit(&cfg->limits, LIM_SUSPENDED, 1);
    assert_limit(&cfg->limits, LIM_OWN_DOMAINS_ONLY, 1);
    assert_limit(&cfg->limits, LIM_MSG_HOUR, 1000); /* not named: built-in */
    ck_assert_uint_eq(cfg->blocked_rcpt_domains.n, 2);
    cfg_free(cfg);
}
END_TEST

START_TEST(defaults_when_absent)
{
    struct rm_config *cfg = load_ok("# nothing but a comment\n");
    struct lim_set builtin;

    ck_assert_str_eq(cfg->socket, "inet:8890@127.0.0.1");
    ck_assert_int_eq(cfg->timeout, 30);
    ck_assert_str_eq(cfg->redis_host, "127.0.0.1");
    ck_assert_int_eq(cfg->redis_port, 6379);
    ck_assert_int_eq(cfg->redis_db, 0);
    ck_assert_str_eq(cfg->prefix, "relay:");
    ck_assert_int_eq(cfg->connect_timeout_ms, 200);
    ck_assert_int_eq(cfg->command_timeout_ms, 100);
    ck_assert_int_eq(cfg->pool_size, 8);
    ck_assert_int_eq(cfg->on_store_error, CFG_SE_ACCEPT);
    ck_assert_int_eq(cfg->log_level, LOG_LVL_INFO);
    ck_assert_ptr_null(cfg->user);
    ck_assert_ptr_null(cfg->redis_master);
    ck_assert_ptr_null(cfg->redis_password);
    ck_assert_uint_eq(cfg->ncustomers, 0);
    ck_assert_uint_eq(cfg->nnetworks, 0);
    lim_builtin(&builtin);
    for (int i = 0; i < LIM_NFIELDS; i++)
        assert_limit(&cfg->limits, i, builtin.v[i]);
    cfg_free(cfg);

    /* A group naming some keys keeps the defaults of the others. */
    cfg = load_ok("redis = {\n  port = 7000;\n};\n");
    ck_assert_int_eq(cfg->redis_port, 7000);
    ck_assert_str_eq(cfg->redis_host, "127.0.0.1");
    ck_assert_int_eq(cfg->pool_size, 8);
    cfg_free(cfg);
}
END_TEST

START_TEST(unlimited_and_wide_values)
{
    struct rm_config *cfg = load_ok("limits = {\n  messages_per_hour = -1;\n"
                                    "  recipients_per_day = 5000000000L;\n"
                                    "  messages_per_day = 1000000000000L;\n};\n"
                                    "customers = ( { name = \"a\";\n"
                                    "  limits = { max_recipients = -1; }; } );\n");

    assert_limit(&cfg->limits, LIM_MSG_HOUR, LIM_UNLIMITED);
    assert_limit(&cfg->limits, LIM_RCPT_DAY, 5000000000LL);
    assert_limit(&cfg->limits, LIM_MSG_DAY, LIM_COUNT_MAX);
    assert_limit(&cfg->customers[0].limits, LIM_MAX_RCPT, LIM_UNLIMITED);
    cfg_free(cfg);
}
END_TEST

/* A whole number too wide for 32 bits, written without libconfig's L suffix:
 * it must be read exactly or refused, never wrapped to another value (a
 * wrapped 2^32 would be a limit of 0, a wrapped 10^20 would be -1, unlimited). */
START_TEST(wide_literal_not_wrapped)
{
    static const struct {
        const char *text;
        int field;      /* lim_field id, -1 for redis.port */
        long long want; /* -2: no value will do, only an error */
        int line;       /* the line an error must name */
    } cases[] = {
        {"limits = {\n  recipients_per_day = 5000000000;\n};\n", LIM_RCPT_DAY,
         5000000000LL, 2},
        {"limits = {\n  messages_per_day = 4294967296;\n};\n", LIM_MSG_DAY, 4294967296LL,
         2},
        {"limits = {\n  messages_per_day = 99999999999999999999;\n};\n", LIM_MSG_DAY, -2,
         2},
        {"redis = {\n  port = 4294973592;\n};\n", -1, -2, 2}, /* 2^32 + 6296 */
        /* the value on the line after its name */
        {"limits = {\n  messages_per_hour =\n  4294967295;\n};\n", LIM_MSG_HOUR, -2, 3},
        /* the name repeated in a comment before the key */
        {"limits = {\n  # messages_per_hour = 10\n  messages_per_hour = "
         "4294967295;\n};\n",
         LIM_MSG_HOUR, -2, 3},
        /* two keys on one line, a negative wrap, a hex wrap */
        {"limits = { messages_per_hour = 5; messages_per_day = -4294967297; };\n",
         LIM_MSG_DAY, -2, 1},
        {"limits = { messages_per_day = 0xffffffff; };\n", LIM_MSG_DAY, -2, 1},
    };
    char wrong[512] = "";

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct rm_config *cfg = tu_load(cases[i].text, err, sizeof(err));
        if (cfg == NULL) {
            char at[16];
            snprintf(at, sizeof(at), ":%d: ", cases[i].line);
            ck_assert_msg(strstr(err, at) != NULL, "case %zu: %s", i, err);
            continue;
        }
        long long got =
            cases[i].field < 0 ? cfg->redis_port : cfg->limits.v[cases[i].field];
        cfg_free(cfg);
        if (got != cases[i].want)
            snprintf(wrong + strlen(wrong), sizeof(wrong) - strlen(wrong),
                     " [case %zu read as %lld]", i, got);
    }
    ck_assert_msg(wrong[0] == '\0', "wide literals wrapped:%s", wrong);
}
END_TEST

/* ---- errors: each must name the file and the line of the culprit ---- */

struct bad_case {
    const char *what;
    const char *text;
    int line;
    const char *mention; /* a word the message must contain, or NULL */
};

static const struct bad_case bad_cases[] = {
    {"unknown top-level key", "# top\nfrobnicate = 1;\n", 2, "frobnicate"},
    {"unknown milter key",
     "milter = {\n  socket = \"unix:/x\";\n  sockett = \"y\";\n};\n", 3,
     "milter.sockett"},
    {"unknown redis key", "redis = {\n  host = \"h\";\n\n  hots = \"x\";\n};\n", 4,
     "redis.hots"},
    {"unknown log key", "log = { level = \"info\";\n  file = \"x\"; };\n", 2, "log.file"},
    {"unknown limits key", "limits = {\n  messages_per_hour = 5;\n  per_week = 9;\n};\n",
     3, "per_week"},
    {"unknown customers key",
     "customers = (\n  { name = \"a\";\n    netwroks = [ \"10.0.0.0/8\" ]; }\n);\n", 3,
     "netwroks"},
    {"unknown customers.limits key",
     "customers = (\n  { name = \"a\";\n    limits = {\n      max_rcpt = 5;\n    };\n  "
     "}\n);\n",
     4, "max_rcpt"},
    {"string for int", "redis = {\n  port = \"6379\";\n};\n", 2, "port"},
    {"int for string", "milter = {\n  socket = 8890;\n};\n", 2, "socket"},
    {"float for int", "\nmilter = { timeout = 30.5; };\n", 2, "timeout"},
    {"string for limit", "limits = {\n  messages_per_hour = \"100\";\n};\n", 2,
     "messages_per_hour"},
    {"list for int", "redis = {\n  db = [ 1 ];\n};\n", 2, "db"},
    {"empty string", "milter = {\n  socket = \"\";\n};\n", 2, "socket"},
    {"port 0", "redis = {\n  port = 0;\n};\n", 2, "port"},
    {"port 70000", "redis = {\n  host = \"h\";\n  port = 70000;\n};\n", 3, "port"},
    {"pool_size 0", "redis = {\n  pool_size = 0;\n};\n", 2, "pool_size"},
    {"negative milter timeout", "milter = {\n  timeout = -5;\n};\n", 2, "timeout"},
    {"negative connect timeout", "redis = {\n  connect_timeout_ms = -1;\n};\n", 2,
     "connect_timeout_ms"},
    {"negative command timeout", "redis = {\n\n  command_timeout_ms = -100;\n};\n", 3,
     "command_timeout_ms"},
    {"negative db", "redis = {\n  db = -1;\n};\n", 2, "db"},
    {"limit -2", "limits = {\n  messages_per_day = -2;\n};\n", 2, "messages_per_day"},
    {"customer limit -2",
     "customers = (\n  { name = \"a\";\n    limits = { recipients_per_hour = -2; }; "
     "}\n);\n",
     3, "recipients_per_hour"},
    {"limit above 10^12", "limits = {\n  messages_per_day = 1000000000001L;\n};\n", 2,
     "messages_per_day"},
    {"suspended 2", "limits = {\n  suspended = 2;\n};\n", 2, "suspended"},
    {"suspended -1", "limits = {\n  suspended = -1;\n};\n", 2, "suspended"},
    {"own_domains_only 3",
     "customers = (\n  { name = \"a\";\n    limits = { own_domains_only = 3; }; }\n);\n",
     3, "own_domains_only"},
    {"bad on_store_error", "\n\non_store_error = \"reject\";\n", 3, "on_store_error"},
    {"int for on_store_error", "on_store_error = 1;\n", 1, "on_store_error"},
    {"bad aborted_charge", "\naborted_charge = \"forget\";\n", 2, "aborted_charge"},
    {"bool for aborted_charge", "aborted_charge = false;\n", 1, "aborted_charge"},
    {"bad action", "limits = {\n  action = \"drop\";\n};\n", 2, "action"},
    {"int for action", "limits = {\n  action = 1;\n};\n", 2, "action"},
    {"bad customer action",
     "customers = (\n  { name = \"a\";\n    limits = { action = \"bounce\"; }; }\n);\n",
     3, "action"},
    {"bad log level", "log = {\n  level = \"verbose\";\n};\n", 2, "level"},
    {"syntax error", "redis = {\n  port = 6379;\n  host = ;\n};\n", 3, NULL},
    {"unclosed group", "milter = {\n  timeout = 30;\n\n", 4, NULL},
    {"customer without name",
     "customers = (\n  { name = \"a\"; },\n  { sasl = [ \"x\" ]; }\n);\n", 3, "name"},
    {"duplicate customer",
     "customers = (\n  { name = \"a\"; },\n  { name = \"b\"; },\n  { name = \"a\"; "
     "}\n);\n",
     4, "\"a\""},
    {"prefix length 33",
     "customers = (\n  { name = \"a\";\n    networks = [ \"10.0.0.0/8\",\n"
     "                 \"10.0.0.0/33\" ]; }\n);\n",
     4, "10.0.0.0/33"},
    {"prefix garbage",
     "customers = (\n  { name = \"a\";\n    networks = [ \"not-an-ip\" ]; }\n);\n", 3,
     "not-an-ip"},
    {"v6 prefix length 129",
     "customers = (\n  { name = \"a\";\n    networks = [ \"2001:db8::/129\" ]; }\n);\n",
     3, "2001:db8::/129"},
    {"sasl not a list", "customers = (\n  { name = \"a\";\n    sasl = \"a\"; }\n);\n", 3,
     "sasl"},
    {"sasl element not a string",
     "customers = (\n  { name = \"a\";\n    sasl = ( \"a\",\n             5 ); }\n);\n",
     4, "sasl"},
    {"customers not a list", "\ncustomers = 5;\n", 2, "customers"},
    {"limits not a group", "limits = 5;\n", 1, "limits"},
    {"milter not a group", "\nmilter = \"x\";\n", 2, "milter"},
    {"sentinels without master",
     "milter = { timeout = 30; };\nredis = {\n  sentinels = [ \"10.0.0.1:26379\" "
     "];\n};\n",
     2, "master"},
    {"master without sentinels", "redis = {\n  master = \"mymaster\";\n};\n", 1,
     "sentinels"},
    {"username without password", "redis = {\n  username = \"u\";\n};\n", 1, "password"},
    {"bad customer domain",
     "customers = (\n  { name = \"a\";\n    domains = [ \"ok.example\",\n"
     "                \"bad..example\" ]; }\n);\n",
     4, "bad..example"},
    {"local_share 0", "redis = {\n  local_share = 0;\n};\n", 2, "local_share"},
    {"local_share 0.0", "redis = {\n\n  local_share = 0.0;\n};\n", 3, "local_share"},
    {"local_share 1.5", "redis = {\n  local_share = 1.5;\n};\n", 2, "local_share"},
    {"local_share negative", "redis = {\n  local_share = -0.25;\n};\n", 2, "local_share"},
    {"local_share text", "redis = {\n  local_share = \"x\";\n};\n", 2, "local_share"},
    {"local_share wrapping to 1", "redis = {\n  local_share = 4294967297;\n};\n", 2,
     "4294967297L"},
    {"a login of two customers",
     "customers = (\n  { name = \"a\"; sasl = [ \"x\" ]; },\n"
     "  { name = \"b\";\n    sasl = [ \"y\", \"x\" ]; }\n);\n",
     4, "\"a\""},
    {"a network of two customers",
     "customers = (\n  { name = \"a\"; networks = [ \"10.1.0.0/16\" ]; },\n"
     "  { name = \"b\";\n    networks = [ \"10.2.0.0/16\",\n"
     "                 \"10.1.7.7/16\" ]; }\n);\n",
     5, "10.1.7.7/16"},
    {"@include", "# main\n@include \"other.conf\"\n", 2, "@include"},
    {"wide number after a long comment line",
     "limits = {\n# "
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
     "xxx"
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
     "xxx"
     "\n  messages_per_hour = 4294967295; /* 2^32 - 1 */\n};\n",
     3, "4294967295"},
    {"a number inside a string is no number",
     "milter = {\n  socket = \"inet:4294967295\";"
     "\n  timeout = 99999;\n};\n",
     3, "timeout"},
    {"local_max_entries 99", "redis = {\n  local_max_entries = 99;\n};\n", 2,
     "local_max_entries"},
    {"local_max_entries too big", "redis = {\n  local_max_entries = 10000001;\n};\n", 2,
     "local_max_entries"},
    {"events_maxlen -1", "redis = {\n  events_maxlen = -1;\n};\n", 2, "events_maxlen"},
    {"events_maxlen too big", "redis = {\n  events_maxlen = 10000001;\n};\n", 2,
     "events_maxlen"},
    {"sentinel without port",
     "redis = {\n  master = \"m\";\n  sentinels = [ \"10.0.0.1:26379\",\n"
     "                \"10.0.0.2\" ];\n};\n",
     4, "10.0.0.2"},
    {"sentinel port 0",
     "redis = {\n  master = \"m\";\n  sentinels = [ \"[::1]:0\" ];\n};\n", 3, "[::1]:0"},
    {"cluster node without port",
     "redis = {\n  cluster_nodes = [ \"10.0.0.1:7000\",\n    \"10.0.0.2\" ];\n};\n", 3,
     "10.0.0.2"},
    {"cluster nodes not a list", "redis = {\n\n  cluster_nodes = \"a:1\";\n};\n", 3,
     "cluster_nodes"},
    {"cluster with sentinels",
     "redis = {\n  cluster_nodes = [ \"10.0.0.1:7000\" ];\n  master = \"m\";\n"
     "  sentinels = [ \"10.0.0.1:26379\" ];\n};\n",
     4, "sentinels"},
    {"cluster with unix",
     "redis = {\n  cluster_nodes = [ \"10.0.0.1:7000\" ];\n\n  unix = \"/r.sock\";\n};\n",
     4, "unix"},
    {"cluster with db 3",
     "redis = {\n  db = 3;\n  cluster_nodes = [ \"10.0.0.1:7000\" ];\n};\n", 2, "db"},
    {"prefix with a brace", "redis = {\n\n  prefix = \"relay{x}:\";\n};\n", 3, "prefix"},
    {"blocked domain with @",
     "blocked_recipient_domains = [\n  \"ok.example\",\n  \"user@spamtrap.example\" ];\n",
     3, "user@spamtrap.example"},
    {"blocked domain with space",
     "\nblocked_recipient_domains = [ \"spam trap.example\" ];\n", 2,
     "spam trap.example"},
    {"blocked domain empty label", "blocked_recipient_domains = [ \"a..example\" ];\n", 1,
     "a..example"},
    {"customer domain not UTF-8",
     "customers = (\n  { name = \"a\";\n    domains = [ \"b\xfc"
     "cher.example\" ]; }\n);\n",
     3, "domains"},
    {"customer domain label of 64",
     "customers = (\n  { name = \"a\";\n    domains = [\n      \"ok.example\",\n      \""
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example\" ]; "
     "}\n);\n",
     5, "domains"},
    {"first error wins", "milter = {\n  timeout = 0;\n};\nbogus = 1;\n", 2, "timeout"},
    {"customer named ip:",
     "customers = (\n  { name = \"x\"; },\n  {\n    name = "
     "\"ip:192.0.2.1\"; }\n);\n",
     4, "reserved"},
    {"customer named sasl:", "customers = (\n  { name = \"sasl:bob\"; }\n);\n", 2,
     "reserved"},
    {"customer name with a brace", "customers = (\n\n  { name = \"a{b}\"; }\n);\n", 3,
     "'{'"},
    {"one login spelt twice in one customer",
     "sasl = { realm = \"Relay.Example\"; };\ncustomers = (\n  { name = \"a\";\n"
     "    sasl = [ \"bob\",\n             \"BOB@relay.example\" ]; }\n);\n",
     5, "bob@relay.example"},
    {"one login in two customers, case only",
     "customers = (\n  { name = \"a\"; sasl = [ \"Bob\" ]; },\n  { name = \"b\";\n"
     "    sasl = [ \"bOB\" ]; }\n);\n",
     4, "\"a\""},
    {"realm read after the customers",
     "customers = (\n  { name = \"a\"; sasl = [ \"bob@r.example\" ]; },\n"
     "  { name = \"b\";\n    sasl = [ \"bob\" ]; }\n);\nsasl = { realm = \"r.example\"; "
     "};\n",
     4, "bob@r.example"},
    {"realm with @", "sasl = {\n  realm = \"a@b\";\n};\n", 2, "sasl.realm"},
    {"realm with a blank", "sasl = {\n\n  realm = \"a b\";\n};\n", 3, "sasl.realm"},
    {"sasl.unknown not a choice", "sasl = {\n  unknown = \"maybe\";\n};\n", 2,
     "own | refuse | tempfail"},
    {"unknown key in sasl", "sasl = {\n  unknown = \"own\";\n  realms = \"x\";\n};\n", 3,
     "sasl.realms"},
};

START_TEST(bad_input_names_line)
{
    const struct bad_case *bc = &bad_cases[_i];
    char path[512], want[600];

    struct rm_config *cfg = tu_load_path(bc->text, err, sizeof(err), path, sizeof(path));
    ck_assert_msg(cfg == NULL, "%s: accepted", bc->what);
    snprintf(want, sizeof(want), "%s:%d: ", path, bc->line);
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0,
                  "%s: got \"%s\", want prefix \"%s\"", bc->what, err, want);
    ck_assert_msg(strlen(err) > strlen(want), "%s: no explanation: \"%s\"", bc->what,
                  err);
    if (bc->mention != NULL)
        ck_assert_msg(strstr(err, bc->mention) != NULL, "%s: \"%s\" does not mention %s",
                      bc->what, err, bc->mention);
}
END_TEST

START_TEST(error_line_deep_in_sample)
{
    FILE *f = fopen(SAMPLE, "r");
    char *text = calloc(1, 65536), path[512], want[600];
    int lines = 0;

    ck_assert_ptr_nonnull(f);
    size_t n = fread(text, 1, 65000, f);
    fclose(f);
    for (size_t i = 0; i < n; i++)
        lines += text[i] == '\n';
    ck_assert_int_gt(lines, 20);
    strcat(text, "\nlog_level = \"debug\";\n");
    struct rm_config *cfg = tu_load_path(text, err, sizeof(err), path, sizeof(path));
    ck_assert_ptr_null(cfg);
    snprintf(want, sizeof(want), "%s:%d: ", path, lines + 2);
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "got \"%s\", want prefix \"%s\"",
                  err, want);
    ck_assert_ptr_nonnull(strstr(err, "log_level"));
    free(text);
}
END_TEST

START_TEST(missing_file)
{
    const char *path = "/nonexistent/dir/relaymilter.conf";

    struct rm_config *cfg = cfg_load(path, err, sizeof(err));
    ck_assert_ptr_null(cfg);
    ck_assert_msg(strncmp(err, path, strlen(path)) == 0 && err[strlen(path)] == ':',
                  "got \"%s\"", err);
    /* FILE:LINE: even when there is no line to blame */
    const char *line = err + strlen(path) + 1;
    char *end;
    strtol(line, &end, 10);
    ck_assert_msg(end != line && end[0] == ':' && end[1] == ' ', "got \"%s\"", err);
}
END_TEST

START_TEST(error_fits_small_buffer)
{
    char small[16];
    char *p = tu_write_temp("bogus = 1;\n");

    memset(small, 'x', sizeof(small));
    ck_assert_ptr_null(cfg_load(p, small, sizeof(small)));
    ck_assert_ptr_nonnull(memchr(small, '\0', sizeof(small)));
    remove(p);
    free(p);
}
END_TEST

/* ---- lookups over a loaded config ---- */

static const char *lookup_conf =
    "limits = { messages_per_hour = 100; messages_per_day = 200; action = \"reject\"; "
    "};\n"
    "customers = (\n"
    "  { name = \"wide\"; sasl = [ \"wide-login\" ];\n"
    "    networks = [ \"10.0.0.0/8\", \"2001:db8::/32\" ];\n"
    "    limits = { messages_per_hour = 50; messages_per_day = -1; }; },\n"
    "  { name = \"narrow\"; sasl = [ \"n1\", \"n2\" ];\n"
    "    networks = [ \"10.1.0.0/16\", \"2001:db8:1::/48\" ];\n"
    "    limits = { action = \"hold\"; suspended = 1; }; },\n"
    "  { name = \"host\"; networks = [ \"10.1.2.3\" ]; }\n"
    ");\n";

static int by_addr(const struct rm_config *cfg, const char *text)
{
    struct net_addr a;

    ck_assert_int_eq(net_parse_addr(text, &a), 0);
    return cfg_customer_by_addr(cfg, &a);
}

START_TEST(customer_lookups)
{
    struct rm_config *cfg = load_ok(lookup_conf);

    ck_assert_int_eq(cfg_customer_find(cfg, "wide"), 0);
    ck_assert_int_eq(cfg_customer_find(cfg, "narrow"), 1);
    ck_assert_int_eq(cfg_customer_find(cfg, "nobody"), -1);
    ck_assert_int_eq(cfg_customer_by_sasl(cfg, "wide-login"), 0);
    ck_assert_int_eq(cfg_customer_by_sasl(cfg, "n2"), 1);
    ck_assert_int_eq(cfg_customer_by_sasl(cfg, "N2"), -1);
    ck_assert_int_eq(cfg_customer_by_sasl(cfg, "wide"), -1);
    ck_assert_int_eq(cfg_customer_by_sasl(cfg, ""), -1);
    ck_assert_int_eq(by_addr(cfg, "10.9.9.9"), 0);
    ck_assert_int_eq(by_addr(cfg, "10.1.9.9"), 1);
    ck_assert_int_eq(by_addr(cfg, "10.1.2.3"), 2);
    ck_assert_int_eq(by_addr(cfg, "10.1.2.4"), 1);
    ck_assert_int_eq(by_addr(cfg, "::ffff:10.1.2.3"), 2);
    ck_assert_int_eq(by_addr(cfg, "11.0.0.1"), -1);
    ck_assert_int_eq(by_addr(cfg, "2001:db8:1:ffff::1"), 1);
    ck_assert_int_eq(by_addr(cfg, "2001:db8:2::1"), 0);
    ck_assert_int_eq(by_addr(cfg, "2001:db9::1"), -1);
    cfg_free(cfg);
}
END_TEST

/* customers[].sasl is kept in canonical form under sasl.realm, and lookups
 * take canonical logins. */
START_TEST(sasl_group)
{
    struct rm_config *cfg = load_ok("sasl = { realm = \"Relay.EXAMPLE\"; unknown = "
                                    "\"tempfail\"; };\n"
                                    "customers = ( { name = \"a\"; sasl = [ \"Bob\", "
                                    "\"carol@Other.Example\" ]; } );\n");

    ck_assert_str_eq(cfg->sasl_realm, "relay.example");
    ck_assert_int_eq(cfg->sasl_unknown, CFG_SU_TEMPFAIL);
    ck_assert_str_eq(cfg->customers[0].sasl.v[0], "bob@relay.example");
    ck_assert_str_eq(cfg->customers[0].sasl.v[1], "carol@other.example");
    ck_assert_int_eq(cfg_customer_by_sasl(cfg, "bob@relay.example"), 0);
    ck_assert_int_eq(cfg_customer_by_sasl(cfg, "bob"), -1); /* callers canonicalise */
    cfg_free(cfg);
    cfg = load_ok("customers = ( { name = \"a\"; sasl = [ \"Bob\" ]; } );\n");
    ck_assert_ptr_null(cfg->sasl_realm);
    ck_assert_int_eq(cfg->sasl_unknown, CFG_SU_OWN);
    ck_assert_str_eq(cfg->customers[0].sasl.v[0], "bob");
    cfg_free(cfg);
}
END_TEST

START_TEST(effective_limits_inherit)
{
    struct rm_config *cfg = load_ok(lookup_conf);
    struct lim_set l;

    cfg_effective_limits(cfg, -1, &l); /* no customer entry: limits{} over built-in */
    assert_limit(&l, LIM_MSG_HOUR, 100);
    assert_limit(&l, LIM_MSG_DAY, 200);
    assert_limit(&l, LIM_MSG_MINUTE, 60);
    assert_limit(&l, LIM_ACTION, LIM_ACT_REJECT);
    assert_limit(&l, LIM_SUSPENDED, 0);

    cfg_effective_limits(cfg, 0, &l);
    assert_limit(&l, LIM_MSG_HOUR, 50);
    assert_limit(&l, LIM_MSG_DAY, LIM_UNLIMITED); /* -1 overrides the inherited 200 */
    assert_limit(&l, LIM_MSG_MINUTE, 60);
    assert_limit(&l, LIM_ACTION, LIM_ACT_REJECT);

    cfg_effective_limits(cfg, 1, &l);
    assert_limit(&l, LIM_MSG_HOUR, 100);
    assert_limit(&l, LIM_MSG_DAY, 200);
    assert_limit(&l, LIM_ACTION, LIM_ACT_HOLD);
    assert_limit(&l, LIM_SUSPENDED, 1);
    for (int i = 0; i < LIM_NFIELDS; i++)
        ck_assert_msg(l.set[i], "%s not set in effective limits", lim_field_name(i));
    cfg_free(cfg);
}
END_TEST

START_TEST(domains_stored_canonical)
{
    struct rm_config *cfg =
        load_ok("customers = ( { name = \"a\"; domains = [ \"Acme.EXAMPLE.\" ]; } );\n"
                "blocked_recipient_domains = [ \"SpamTrap.Example\" ];\n");

    ck_assert_str_eq(cfg->customers[0].domains.v[0], "acme.example");
    ck_assert_str_eq(cfg->blocked_rcpt_domains.v[0], "spamtrap.example");
    cfg_free(cfg);
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("load");
    TCase *bad = tcase_create("errors");
    TCase *look = tcase_create("lookups");

    tcase_add_test(tc, sample_loads);
    tcase_add_test(tc, every_key_lands);
    tcase_add_test(tc, defaults_when_absent);
    tcase_add_test(tc, unlimited_and_wide_values);
    tcase_add_test(tc, wide_literal_not_wrapped);
    tcase_add_test(tc, domains_stored_canonical);
    tcase_add_loop_test(bad, bad_input_names_line, 0,
                        (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
    tcase_add_test(bad, error_line_deep_in_sample);
    tcase_add_test(bad, missing_file);
    tcase_add_test(bad, error_fits_small_buffer);
    tcase_add_test(look, customer_lookups);
    tcase_add_test(look, effective_limits_inherit);
    tcase_add_test(look, sasl_group);
    suite_add_tcase(s, tc);
    suite_add_tcase(s, bad);
    suite_add_tcase(s, look);
    return s;
}

int main(void)
{
    return tu_run(config_suite());
}
