/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * relaymilter-ctl - read a customer's usage and edit the staff keys of
 * relaymilter in Redis (relaymilter-ctl(1)), on the daemon's own policy
 * library: its config loader, limit table, key names, connection layer and
 * relay.lua.
 *
 * This file reads the options, loads the configuration (-c FILE, else
 * $RELAYMILTER_CONF, else /etc/relaymilter.conf, else the built-in defaults),
 * lets the flags override its redis settings, and runs one command.
 *
 * Exit status: 0 done, 1 Redis or connection error, 2 bad usage or a value
 * refused before anything was written.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "ctl.h"
#include "ctledit.h"
#include "ctlout.h"
#include "ctlredis.h"
#include "ctlshow.h"
#include "ctlusage.h"
#include "log.h"
#include "xalloc.h"

#define DEFAULT_CONF "/etc/relaymilter.conf"

/* The daemon's command_timeout_ms is meant for the mail path; a person or a
 * script waits longer for a SCAN or a large usage call. */
enum { MIN_CONNECT_MS = 1000, MIN_COMMAND_MS = 5000 };

static const char usage_text[] =
    "usage: relaymilter-ctl [OPTIONS] COMMAND [ARGS]\n"
    "\n"
    "Options (before the command; they override the redis { } settings of the\n"
    "config file):\n"
    "  -c FILE        relaymilter config to read (default $RELAYMILTER_CONF, else\n"
    "                 /etc/relaymilter.conf)\n"
    "  -h HOST        Redis host                -p PORT     Redis port\n"
    "  -s SOCKET      Redis unix socket         -n DB       database number\n"
    "  -P PREFIX      key prefix (default relay:)\n"
    "  -a PASSWORD    Redis password (better: the config file or REDISCLI_AUTH)\n"
    "  --user NAME    Redis ACL user name\n"
    "  --json         usage, limits CUSTOMER, fields, whois, events: one JSON\n"
    "                 document\n"
    "  -y, --yes      reset without asking\n"
    "\n"
    "Commands:\n"
    "  usage CUSTOMER                   the customer's usage in every window\n"
    "  limits CUSTOMER                  the limit overrides stored in Redis\n"
    "  limits CUSTOMER FIELD VALUE ...  set limit fields (one or more pairs)\n"
    "  limits CUSTOMER unset FIELD ...  remove overrides (inherit the config's)\n"
    "  fields                           the limit fields, their kinds, the value\n"
    "                                   that lifts each\n"
    "  suspend CUSTOMER                 refuse every message of CUSTOMER\n"
    "  resume CUSTOMER                  lift a suspension set in Redis\n"
    "  reset CUSTOMER [SENDER]          clear the counters of CUSTOMER (or of one\n"
    "                                   sender of it) in every window\n"
    "  own DOMAIN CUSTOMER              CUSTOMER owns sender domain DOMAIN\n"
    "  disown DOMAIN CUSTOMER           ... no longer\n"
    "  block DOMAIN                     nobody may relay to recipient domain DOMAIN\n"
    "  unblock DOMAIN                   ... again allowed\n"
    "  sasl LOGIN CUSTOMER              SASL login LOGIN belongs to CUSTOMER\n"
    "  unsasl LOGIN                     forget that mapping\n"
    "  whois LOGIN                      the customer LOGIN resolves to, and why\n"
    "  events [N]                       the last N (default 20) events, newest first\n"
    "  help                             this text\n"
    "\n"
    "Limit fields: messages_per_{minute,hour,day}, recipients_per_{minute,hour,day},\n"
    "sender_messages_per_{minute,hour,day}, sender_recipients_per_{minute,hour,day},\n"
    "max_recipients (whole numbers, -1 unlimited), action (tempfail, reject, hold,\n"
    "monitor), suspended and own_domains_only (0 or 1).\n";

struct opts {
    const char *conf, *host, *port, *sock, *db, *prefix, *user;
    char *pass; /* a copy: the argument itself is blanked */
    int json, yes;
};

static int cmd_limits(struct ctl *ctl, int argc, char **argv)
{
    return argc == 1 ? ctlshow_limits(ctl, argc, argv) : ctledit_limits(ctl, argc, argv);
}

/* max: the most arguments a command takes, ANY for no bound */
enum { ANY = -1 };

static const struct command {
    const char *name;
    int min, max;
    ctl_cmd_fn *fn;
} commands[] = {
    {"usage", 1, 1, ctlusage_cmd},      {"limits", 1, ANY, cmd_limits},
    {"suspend", 1, 1, ctledit_suspend}, {"resume", 1, 1, ctledit_resume},
    {"reset", 1, 2, ctledit_reset},     {"own", 2, 2, ctledit_own},
    {"disown", 2, 2, ctledit_disown},   {"block", 1, 1, ctledit_block},
    {"unblock", 1, 1, ctledit_unblock}, {"sasl", 2, 2, ctledit_sasl},
    {"unsasl", 1, 1, ctledit_unsasl},   {"whois", 1, 1, ctlshow_whois},
    {"events", 0, 1, ctlshow_events},   {"fields", 0, 0, ctlshow_fields},
};

/* Where the value of an option that takes one goes (not -a), or NULL. */
static const char **value_slot(struct opts *o, const char *opt)
{
    const char *const names[] = {"-c", "-h", "-p", "-s", "-n", "-P", "--user"};
    const char **slots[] = {&o->conf, &o->host,   &o->port, &o->sock,
                            &o->db,   &o->prefix, &o->user};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(opt, names[i]) == 0)
            return slots[i];
    return NULL;
}

/* Options up to the command; returns the index of the command, or -1 with
 * the exit status in *rc. */
static int parse_options(int argc, char **argv, struct opts *o, int *rc)
{
    int i = 1;

    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *opt = argv[i];
        int password = strcmp(opt, "-a") == 0;
        const char **slot = value_slot(o, opt);
        if (strcmp(opt, "--") == 0)
            return i + 1;
        if (strcmp(opt, "--json") == 0) {
            o->json = 1;
        } else if (strcmp(opt, "-y") == 0 || strcmp(opt, "--yes") == 0) {
            o->yes = 1;
        } else if (strcmp(opt, "--help") == 0) {
            fputs(usage_text, stdout);
            *rc = CTL_OK;
            return -1;
        } else if (slot == NULL && !password) {
            ctlout_err("unknown option %s (see relaymilter-ctl help)", ctlout_shown(opt));
            *rc = CTL_EUSAGE;
            return -1;
        } else if (i + 1 >= argc) {
            ctlout_err("option %s needs a value (see relaymilter-ctl help)", opt);
            *rc = CTL_EUSAGE;
            return -1;
        } else if (password) {
            /* out of the process list as soon as possible (ps shows argv) */
            free(o->pass);
            o->pass = xstrdup(argv[++i]);
            memset(argv[i], 'x', strlen(argv[i]));
        } else {
            *slot = argv[++i];
        }
    }
    return i;
}

/* A whole number in [min, max], or -1 after saying what is wrong. */
static int number(const char *what, const char *s, long min, long max)
{
    char *end;

    errno = 0;
    long v = strtol(s, &end, 10);
    if (*s < '0' || *s > '9' || *end != '\0' || errno != 0 || v < min || v > max) {
        ctlout_err("%s must be a whole number from %ld to %ld, not '%s'", what, min, max,
                   ctlout_shown(s));
        return -1;
    }
    return (int)v;
}

static void replace(char **field, const char *value)
{
    free(*field);
    *field = xstrdup_or_null(value);
}

/* Where to connect: a socket given on the command line; else a host or port
 * given on the command line; else the config's unix socket, sentinels or
 * host and port, in rpool's order. */
static int override_target(const struct opts *o, struct rm_config *cfg)
{
    if (o->sock == NULL && o->host == NULL && o->port == NULL)
        return CTL_OK;
    for (size_t i = 0; i < cfg->sentinels.n; i++)
        free(cfg->sentinels.v[i]);
    cfg->sentinels.n = 0;
    replace(&cfg->redis_unix, o->sock);
    if (o->host != NULL)
        replace(&cfg->redis_host, o->host);
    if (o->port != NULL && (cfg->redis_port = number("port", o->port, 1, 65535)) < 0)
        return CTL_EUSAGE;
    return CTL_OK;
}

static int override(const struct opts *o, struct rm_config *cfg)
{
    if (override_target(o, cfg) != CTL_OK)
        return CTL_EUSAGE;
    if (o->db != NULL && (cfg->redis_db = number("database number", o->db, 0, 1023)) < 0)
        return CTL_EUSAGE;
    if (o->prefix != NULL && *o->prefix == '\0') {
        ctlout_err("-P needs a prefix: every key relaymilter uses has one");
        return CTL_EUSAGE;
    }
    if (o->prefix != NULL)
        replace(&cfg->prefix, o->prefix);
    if (o->user != NULL)
        replace(&cfg->redis_username, o->user);
    /* -a, else the config, else redis-cli's variable */
    if (o->pass != NULL)
        replace(&cfg->redis_password, o->pass);
    else if (cfg->redis_password == NULL && getenv("REDISCLI_AUTH") != NULL)
        replace(&cfg->redis_password, getenv("REDISCLI_AUTH"));
    if (cfg->redis_username != NULL && cfg->redis_password == NULL) {
        ctlout_err(
            "a Redis user name needs a password (-a, the config or REDISCLI_AUTH)");
        return CTL_EUSAGE;
    }
    cfg->pool_size = 1;
    if (cfg->connect_timeout_ms < MIN_CONNECT_MS)
        cfg->connect_timeout_ms = MIN_CONNECT_MS;
    if (cfg->command_timeout_ms < MIN_COMMAND_MS)
        cfg->command_timeout_ms = MIN_COMMAND_MS;
    return CTL_OK;
}

/* The configuration: -c FILE must be read; the default file may be missing
 * (or unreadable), and then the built-in defaults apply. *conf is the file
 * read, NULL for none; *why says why none was. */
static struct rm_config *load(const char *path, const char **conf, char *why, size_t len)
{
    const char *def = getenv("RELAYMILTER_CONF");
    char err[1024];
    FILE *fp;

    *conf = path ? path : def && *def ? def : DEFAULT_CONF;
    if ((fp = fopen(*conf, "r")) == NULL) {
        if (path != NULL) {
            ctlout_err("cannot read config file %s: %s", path, strerror(errno));
            return NULL;
        }
        snprintf(why, len, "%s: %s", *conf, strerror(errno));
        *conf = NULL;
        fp = fopen("/dev/null", "r");
    }
    struct rm_config *cfg =
        fp ? cfg_load_fp(*conf ? *conf : "(built-in defaults)", fp, err, sizeof(err))
           : NULL;
    if (fp != NULL)
        fclose(fp);
    if (cfg == NULL)
        ctlout_err("%s", fp ? err : "cannot open /dev/null");
    return cfg;
}

static const struct command *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static int run(const struct opts *o, const struct command *c, int argc, char **argv)
{
    struct ctl ctl = {.json = o->json, .yes = o->yes};
    char why[1100] = "", where[600];
    int rc = CTL_EUSAGE;

    ctl.cfg = load(o->conf, &ctl.conf, why, sizeof(why));
    if (ctl.cfg == NULL || override(o, ctl.cfg) != CTL_OK) {
        cfg_free(ctl.cfg);
        return CTL_EUSAGE;
    }
    if (ctl.conf == NULL) {
        ctlredis_describe(ctl.cfg, where, sizeof(where));
        ctlout_err("no config file (%s): using Redis at %s, db %d, prefix \"%s\"", why,
                   where, ctl.cfg->redis_db, ctlout_shown(ctl.cfg->prefix));
    }
    ctl.redis = ctlredis_new(ctl.cfg);
    rc = c->fn(&ctl, argc, argv);
    ctlredis_free(ctl.redis);
    cfg_free(ctl.cfg);
    return rc;
}

int main(int argc, char **argv)
{
    struct opts o = {0};
    int rc = CTL_OK;

    /* the library's own log lines are for the daemon: only a fatal one
     * (out of memory) is shown, on stderr */
    log_open("relaymilter-ctl", 1);
    log_set_level(LOG_LVL_ERROR + 1);
    if (argc == 2 && strcmp(argv[1], "-h") == 0) {
        fputs(usage_text, stdout);
        return CTL_OK;
    }
    int i = parse_options(argc, argv, &o, &rc);
    if (i >= 0 && i >= argc) {
        fputs(usage_text, stderr);
        rc = CTL_EUSAGE;
    } else if (i >= 0 && strcmp(argv[i], "help") == 0) {
        fputs(usage_text, stdout);
    } else if (i >= 0) {
        const struct command *c = find_command(argv[i]);
        int n = argc - i - 1;
        if (c == NULL) {
            ctlout_err("unknown command '%s' (see relaymilter-ctl help)",
                       ctlout_shown(argv[i]));
            rc = CTL_EUSAGE;
        } else if (n < c->min || (c->max != ANY && n > c->max)) {
            ctlout_err("wrong number of arguments for '%s' (see relaymilter-ctl help)",
                       c->name);
            rc = CTL_EUSAGE;
        } else {
            rc = run(&o, c, n, argv + i + 1);
        }
    }
    free(o.pass);
    return rc;
}
