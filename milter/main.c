/*
 * main - command line, start-up, signals and reload of the relaymilter daemon.
 *
 *   relaymilter -c FILE        run in the foreground
 *   relaymilter -c FILE -t     check FILE and exit
 *   relaymilter -V | -h
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libmilter/mfapi.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "callbacks.h"
#include "config.h"
#include "httpd.h"
#include "log.h"
#include "metrics.h"
#include "snapshot.h"
#include "store_redis.h"

#ifndef RM_VERSION
#define RM_VERSION "unknown"
#endif

static void usage(FILE *out)
{
    fprintf(out, "usage: relaymilter -c FILE [-t]    run (or with -t: check FILE)\n"
                 "       relaymilter -V              print version\n"
                 "       relaymilter -h              this help\n");
}

/* What lives as long as the process: counters and the metrics endpoint. */
struct daemon {
    const char *path;
    int cfg_fd; /* the config opened before dropping root; -1 when not needed */
    struct metrics *metrics;
    struct httpd *httpd;
    char *metrics_listen;
};

static void metrics_endpoint(struct daemon *d, const struct rm_config *cfg)
{
    const char *want = cfg->metrics_listen;

    if ((want == NULL && d->metrics_listen == NULL) ||
        (want && d->metrics_listen && strcmp(want, d->metrics_listen) == 0))
        return;
    httpd_stop(d->httpd);
    free(d->metrics_listen);
    d->httpd = want ? httpd_start(want, d->metrics) : NULL;
    d->metrics_listen = want ? strdup(want) : NULL;
}

/* The store survives a reload when the redis{} settings did not change, so a
 * reload does not drop every Redis connection. */
static struct snap *build_snapshot(struct daemon *d, struct rm_config *cfg,
                                   struct snap *prev)
{
    struct snap *s;
    struct store *st;

    if (prev != NULL && store_redis_matches(prev->store, cfg))
        st = store_ref(prev->store);
    else
        st = store_redis_new(cfg);
    s = snap_new(cfg, st);
    s->metrics = d->metrics;
    return s;
}

/*
 * The config may be readable by root only while the daemon runs as
 * milter.user. Then the file opened at start, before root was dropped, is
 * read again from its beginning: that sees edits made in place. An editor
 * that replaced the file left us holding the old one (no links left): that is
 * an error, never a silent reload of stale text.
 */
static struct rm_config *reread(struct daemon *d, char *err, size_t errlen)
{
    struct stat st;
    FILE *fp = fopen(d->path, "r");

    if (fp == NULL && errno == EACCES && d->cfg_fd >= 0) {
        if (fstat(d->cfg_fd, &st) != 0 || st.st_nlink == 0) {
            snprintf(err, errlen,
                     "%s:0: replaced by a file this user cannot read; "
                     "restart relaymilter to apply it",
                     d->path);
            return NULL;
        }
        int fd = dup(d->cfg_fd);
        if (fd >= 0 && lseek(fd, 0, SEEK_SET) == 0)
            fp = fdopen(fd, "r");
        else if (fd >= 0)
            close(fd);
    }
    if (fp == NULL) {
        snprintf(err, errlen, "%s:0: cannot read the file: %s", d->path, strerror(errno));
        return NULL;
    }
    struct rm_config *cfg = cfg_load_fp(d->path, fp, err, errlen);
    fclose(fp);
    return cfg;
}

static void reload(struct daemon *d)
{
    char err[600];
    struct rm_config *cfg = reread(d, err, sizeof(err));

    if (cfg == NULL) {
        msg_error("reload failed, keeping the configuration in force: %s", err);
        metrics_reload(d->metrics, 0, 0);
        return;
    }
    struct snap *prev = snap_acquire();
    struct snap *next = build_snapshot(d, cfg, prev);
    snap_release(prev);
    log_set_level(cfg->log_level);
    metrics_endpoint(d, cfg);
    snap_publish(next);
    metrics_reload(d->metrics, 1, next->generation);
    msg_info("configuration reloaded from %s (generation %lu)", d->path,
             next->generation);
}

/* A unix socket gets the configured mode and group before anyone connects:
 * the MTA's user needs it, other local users must not reach the milter. */
static void secure_socket(const struct rm_config *cfg)
{
    const char *spec = cfg->socket, *path = NULL;
    gid_t gid = (gid_t)-1;
    uid_t uid = (uid_t)-1;

    if (strncmp(spec, "unix:", 5) == 0 || strncmp(spec, "local:", 6) == 0)
        path = strchr(spec, ':') + 1;
    else if (spec[0] == '/')
        path = spec;
    if (path == NULL)
        return;
    if (cfg->socket_group != NULL) {
        struct group *gr = getgrnam(cfg->socket_group);
        if (gr == NULL)
            msg_fatal("milter.socket_group: no such group \"%s\"", cfg->socket_group);
        gid = gr->gr_gid;
    }
    /* Owned by the user the daemon becomes, like a socket it made itself. */
    struct passwd *pw = cfg->user ? getpwnam(cfg->user) : NULL;
    if (pw != NULL)
        uid = pw->pw_uid;
    if (chmod(path, (mode_t)cfg->socket_mode_bits) != 0 || chown(path, uid, gid) != 0)
        msg_fatal("cannot set mode/group of %s: %s", path, strerror(errno));
}

static void drop_privileges(const char *user)
{
    struct passwd *pw = getpwnam(user);

    if (pw == NULL)
        msg_fatal("milter.user: no such user \"%s\"", user);
    if (initgroups(user, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 ||
        setuid(pw->pw_uid) != 0)
        msg_fatal("cannot switch to user %s: %s", user, strerror(errno));
}

static void *milter_thread(void *arg)
{
    (void)arg;
    if (smfi_main() != MI_SUCCESS)
        msg_error("the milter library stopped with an error");
    /* Wake the signal loop in main so the process exits. */
    kill(getpid(), SIGTERM);
    return NULL;
}

/*
 * Signals. libmilter's own signal thread (started inside smfi_main) treats
 * SIGHUP like SIGTERM and stops the milter; SPEC 3 wants SIGHUP to reload.
 * So smfi_main runs in a second thread and the main thread waits for the
 * signals with sigwait. Linux delivers a process-directed signal to the
 * thread-group leader (this thread) first when it is waiting for it, so
 * libmilter's thread never sees them; a stop goes through smfi_stop().
 */
static int serve(const char *path, struct rm_config *cfg)
{
    struct daemon d = {path, -1, metrics_new(), NULL, NULL};
    sigset_t set;
    pthread_t tid;
    int sig;

    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (smfi_setconn(cfg->socket) != MI_SUCCESS ||
        smfi_settimeout(cfg->timeout) != MI_SUCCESS)
        msg_fatal("%s: milter.socket \"%s\" is not usable", path, cfg->socket);
    if (smfi_register(cb_filter) != MI_SUCCESS)
        msg_fatal("smfi_register failed");
    if (smfi_opensocket(1) != MI_SUCCESS)
        msg_fatal("cannot listen on %s", cfg->socket);
    secure_socket(cfg);
    if (cfg->user != NULL) {
        d.cfg_fd = open(path, O_RDONLY | O_CLOEXEC);
        drop_privileges(cfg->user);
    }
    log_set_level(cfg->log_level);
    metrics_endpoint(&d, cfg);
    struct snap *first = build_snapshot(&d, cfg, NULL);
    snap_publish(first); /* generation 1, as metrics_new() assumes */
    msg_info("relaymilter %s listening on %s", RM_VERSION, cfg->socket);
    if (pthread_create(&tid, NULL, milter_thread, NULL) != 0)
        msg_fatal("cannot start the milter thread");
    for (;;) {
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            reload(&d);
            continue;
        }
        msg_info("stopping on signal %d", sig);
        smfi_stop();
        break;
    }
    pthread_join(tid, NULL);
    httpd_stop(d.httpd);
    snap_shutdown();
    free(d.metrics_listen);
    metrics_free(d.metrics);
    return 0;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    int test = 0, opt;
    char err[600];

    while ((opt = getopt(argc, argv, "c:tVh")) != -1) {
        switch (opt) {
        case 'c':
            path = optarg;
            break;
        case 't':
            test = 1;
            break;
        case 'V':
            printf("relaymilter %s\n", RM_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (path == NULL || optind != argc) {
        usage(stderr);
        return 2;
    }
    struct rm_config *cfg = cfg_load(path, err, sizeof(err));
    if (test) {
        if (cfg == NULL) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        printf("configuration OK\n");
        cfg_free(cfg);
        return 0;
    }
    /* Containers and test harnesses have no syslog: they ask for stderr. */
    log_open("relaymilter",
             isatty(STDERR_FILENO) || getenv("RELAYMILTER_LOG_STDERR") != NULL);
    if (cfg == NULL)
        msg_fatal("%s", err);
    return serve(path, cfg);
}
