/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * main - command line, start-up, signals and reload of the relaymilter daemon.
 *
 *   relaymilter -c FILE        run in the foreground
 *   relaymilter -c FILE -t     check FILE and exit
 *   relaymilter -c FILE -p     print the effective configuration and exit
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
#include "xalloc.h"

#ifndef RM_VERSION
#define RM_VERSION "unknown"
#endif

static void usage(FILE *out)
{
    fprintf(out, "usage: relaymilter -c FILE         run in the foreground\n"
                 "       relaymilter -c FILE -t      check FILE\n"
                 "       relaymilter -c FILE -p      print the effective configuration\n"
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
    d->metrics_listen = xstrdup_or_null(want);
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

/*
 * Signals. libmilter starts its own signal thread inside smfi_main; it
 * sigwaits for SIGHUP, SIGTERM and SIGINT and stops the milter on any of
 * them, but SIGHUP must reload (relaymilter(8), SIGNALS). So every thread runs with those
 * signals blocked except this main thread, which has them unblocked with a
 * handler that only writes the signal number to a pipe. The kernel offers a
 * process-directed signal to the thread-group leader first, and this thread
 * wants it at every moment: also while a reload runs (in its own thread),
 * and also while the handler runs, which is why the handler is installed
 * with SA_NODEFER and an empty mask (a handler normally blocks its own
 * signal, and a SIGHUP arriving then went to libmilter). The handler is
 * reentrant: one write(2) and errno restored. The one exception is a burst
 * of two different signals before this thread runs at all: then the second
 * may reach libmilter, which stops the milter; with SIGTERM or SIGINT in the
 * burst a stop was asked for anyway.
 *
 * The pipe's write end is the only state a handler can reach; it is set once,
 * before any handler is installed.
 */
static int sig_pipe_w = -1;

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;

    if (write(sig_pipe_w, &b, 1) < 0) {
        /* The pipe is full: enough requests are queued already. */
    }
    errno = saved;
}

/* Byte written by the milter thread when smfi_main returns by itself. */
enum { SIG_MILTER_DONE = 0 };

/* Returns non-NULL when libmilter stopped with an error (the exit status). */
static void *milter_thread(void *arg)
{
    unsigned char done = SIG_MILTER_DONE;
    int failed = smfi_main() != MI_SUCCESS;

    if (failed)
        msg_error("the milter library stopped with an error");
    if (write(*(int *)arg, &done, 1) < 0)
        msg_error("cannot wake the main thread: %s", strerror(errno));
    return failed ? arg : NULL;
}

/*
 * Reloads run in their own thread, started with the signals blocked, so the
 * main thread never has to block them (that would open a window in which a
 * SIGHUP reaches libmilter) and a reload's system calls are never
 * interrupted. Requests that arrive during a reload are merged into one more.
 */
struct reloader {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int pending, quit;
    struct daemon *d;
};

static void *reload_thread(void *arg)
{
    struct reloader *r = arg;

    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (!r->pending && !r->quit)
            pthread_cond_wait(&r->cv, &r->mu);
        if (r->quit)
            break;
        r->pending = 0;
        pthread_mutex_unlock(&r->mu);
        reload(r->d);
        pthread_mutex_lock(&r->mu);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

static void reloader_post(struct reloader *r, int quit)
{
    pthread_mutex_lock(&r->mu);
    if (quit)
        r->quit = 1;
    else
        r->pending = 1;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/*
 * A stop is handed to libmilter's own signal thread rather than made with
 * smfi_stop(): that thread exists only once smfi_main has set up what
 * smfi_stop touches, and a SIGTERM raised while this thread blocks it stays
 * pending until libmilter waits for it. So a stop asked for during start-up
 * is neither lost nor racing libmilter's initialisation.
 */
static void stop_milter(const sigset_t *set)
{
    pthread_sigmask(SIG_BLOCK, set, NULL);
    kill(getpid(), SIGTERM);
}

/* A thread created with the signals of set blocked, whatever the calling
 * thread's mask is (pthread_attr_setsigmask_np: glibc 2.32). */
static void start_blocked(pthread_t *tid, const sigset_t *set, void *(*fn)(void *),
                          void *arg)
{
    pthread_attr_t attr;

    if (pthread_attr_init(&attr) != 0 || pthread_attr_setsigmask_np(&attr, set) != 0 ||
        pthread_create(tid, &attr, fn, arg) != 0)
        msg_fatal("cannot start a thread");
    pthread_attr_destroy(&attr);
}

static void install_handlers(const sigset_t *set, int pipe_r_w[2])
{
    struct sigaction sa;

    if (pipe(pipe_r_w) != 0)
        msg_fatal("pipe: %s", strerror(errno));
    fcntl(pipe_r_w[0], F_SETFD, FD_CLOEXEC);
    fcntl(pipe_r_w[1], F_SETFD, FD_CLOEXEC);
    fcntl(pipe_r_w[1], F_SETFL, O_NONBLOCK);
    sig_pipe_w = pipe_r_w[1];
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    /* No SA_RESTART: the read(2) in serve() must return EINTR, since some
     * runtimes (ThreadSanitizer) run the handler only when the thread next
     * enters a libc call, not inside a restarted read. Only this thread takes
     * these signals, and it makes no other interruptible call. */
    sa.sa_flags = SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    for (int sig = 1; sig < NSIG; sig++)
        if (sigismember(set, sig) == 1)
            sigaction(sig, &sa, NULL);
}

/* Defined by the leak checker when the binary is built with ASan. */
extern void __lsan_do_leak_check(void) __attribute__((weak));

/*
 * The end of a served process. libmilter's signal thread, which carried out
 * the stop, is never joined and may still be inside libmilter's stop code,
 * holding its mutexes; exit handlers that tear libmilter down would race it.
 * Everything of ours is released by now, so the process ends with _exit
 * (after the leak check when one is built in; valgrind checks at _exit too).
 */
_Noreturn static void end_process(int status)
{
    (void)fflush(NULL);
    if (__lsan_do_leak_check != NULL)
        __lsan_do_leak_check();
    _exit(status);
}

_Noreturn static void serve(const char *path, struct rm_config *cfg)
{
    struct daemon d = {path, -1, metrics_new(), NULL, NULL};
    struct reloader rl = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, &d};
    sigset_t set;
    pthread_t tid, rtid;
    int pipe_fds[2];
    unsigned char sig;

    /* Blocked first: every thread started from here on inherits the mask. */
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    install_handlers(&set, pipe_fds);

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
    /* Unblocked here before the milter thread exists: a signal that came
     * during start-up is pending, and is delivered to this thread now, before
     * libmilter's signal thread could sigwait for it. */
    start_blocked(&rtid, &set, reload_thread, &rl);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    start_blocked(&tid, &set, milter_thread, &pipe_fds[1]);
    for (;;) {
        ssize_t n = read(pipe_fds[0], &sig, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n != 1 || sig == SIG_MILTER_DONE)
            break;
        if (sig == SIGHUP) {
            reloader_post(&rl, 0);
            continue;
        }
        msg_info("stopping on signal %d", sig);
        stop_milter(&set);
        break;
    }
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    void *failed;
    pthread_join(tid, &failed);
    reloader_post(&rl, 1);
    pthread_join(rtid, NULL);
    httpd_stop(d.httpd);
    snap_shutdown();
    free(d.metrics_listen);
    metrics_free(d.metrics);
    end_process(failed ? 1 : 0); /* 1: for a supervisor to restart it */
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    int test = 0, print = 0, opt;
    char err[600];

    while ((opt = getopt(argc, argv, "c:tpVh")) != -1) {
        switch (opt) {
        case 'c':
            path = optarg;
            break;
        case 't':
            test = 1;
            break;
        case 'p':
            print = 1;
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
    if (test || print) {
        if (cfg == NULL) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        if (print)
            cfg_print(cfg, stdout);
        else
            printf("configuration OK\n");
        cfg_free(cfg);
        return 0;
    }
    /* Containers and test harnesses have no syslog: they ask for stderr. */
    log_open("relaymilter",
             isatty(STDERR_FILENO) || getenv("RELAYMILTER_LOG_STDERR") != NULL);
    if (cfg == NULL)
        msg_fatal("%s", err);
    serve(path, cfg);
}
