/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * noop_libmilter - a reference filter for the Postfix comparison: libmilter,
 * negotiating exactly what relaymilter negotiates (the same skipped stages,
 * no reply to CONNECT, the same macro lists), every callback answering
 * "continue" at once: no policy, no Redis.
 *
 *   noop_libmilter SOCKET       e.g. inet:9000@127.0.0.1 or unix:/tmp/x.sock
 *
 * What Postfix loses with it is the floor that any filter built on this
 * libmilter pays; relaymilter's own cost is the difference to it.
 */
#include <libmilter/mfapi.h>
#include <stdio.h>
#include <sys/stat.h>

static sfsistat nl_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1,
                             unsigned long f2, unsigned long f3, unsigned long *pf0,
                             unsigned long *pf1, unsigned long *pf2, unsigned long *pf3)
{
    const unsigned long skip =
        SMFIP_NOHELO | SMFIP_NOHDRS | SMFIP_NOEOH | SMFIP_NOBODY | SMFIP_NOUNKNOWN;

    (void)f2;
    (void)f3;
    *pf0 = f0 & SMFIF_QUARANTINE;
    *pf1 = (f1 & skip) | (f1 & SMFIP_NR_CONN);
    *pf2 = 0;
    *pf3 = 0;
    if (f0 & SMFIF_SETSYMLIST) {
        *pf0 |= SMFIF_SETSYMLIST;
        smfi_setsymlist(ctx, SMFIM_ENVFROM, "{auth_authen}");
        smfi_setsymlist(ctx, SMFIM_DATA, "i");
        smfi_setsymlist(ctx, SMFIM_EOM, "i");
    }
    return SMFIS_CONTINUE;
}

static sfsistat nl_connect(SMFICTX *ctx, char *host, _SOCK_ADDR *sa)
{
    (void)ctx;
    (void)host;
    (void)sa;
    return SMFIS_NOREPLY;
}

static sfsistat nl_args(SMFICTX *ctx, char **argv)
{
    (void)ctx;
    (void)argv;
    return SMFIS_CONTINUE;
}

static sfsistat nl_stage(SMFICTX *ctx)
{
    (void)ctx;
    return SMFIS_CONTINUE;
}

static struct smfiDesc nl_filter = {
    .xxfi_name = "noop_libmilter",
    .xxfi_version = SMFI_VERSION,
    .xxfi_flags = SMFIF_QUARANTINE,
    .xxfi_connect = nl_connect,
    .xxfi_envfrom = nl_args,
    .xxfi_envrcpt = nl_args,
    .xxfi_data = nl_stage,
    .xxfi_eom = nl_stage,
    .xxfi_abort = nl_stage,
    .xxfi_close = nl_stage,
    .xxfi_negotiate = nl_negotiate,
};

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: noop_libmilter SOCKET\n");
        return 2;
    }
    umask(0);
    if (smfi_setconn(argv[1]) != MI_SUCCESS || smfi_register(nl_filter) != MI_SUCCESS ||
        smfi_opensocket(1) != MI_SUCCESS) {
        fprintf(stderr, "noop_libmilter: cannot listen on %s\n", argv[1]);
        return 1;
    }
    return smfi_main() == MI_SUCCESS ? 0 : 1;
}
