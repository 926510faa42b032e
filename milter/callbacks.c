/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * callbacks - libmilter callbacks over policy/; see callbacks.h.
 */
#include "callbacks.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "netmatch.h"
#include "policy.h"
#include "snapshot.h"

/* Per connection: the policy state plus what the MTA agreed to at negotiate. */
struct cb_conn {
    struct pol_conn *pol;
    int can_quarantine;
    int connect_noreply; /* SMFIP_NR_CONN agreed: the MTA awaits no reply */
};

static struct cb_conn *conn_of(SMFICTX *ctx)
{
    return smfi_getpriv(ctx);
}

/* The open-connections gauge; the counters hang off the snapshot in force. */
static void connections(int delta)
{
    struct snap *s = snap_acquire();
    if (s != NULL)
        metrics_connection(s->metrics, delta);
    snap_release(s);
}

static sfsistat answer(SMFICTX *ctx, const struct pol_reply *r)
{
    if (r->verdict == POL_CONTINUE)
        return SMFIS_CONTINUE;
    if (r->verdict == POL_ACCEPT) /* no more events for this message */
        return SMFIS_ACCEPT;
    if (smfi_setreply(ctx, (char *)r->rcode, (char *)r->xcode, (char *)r->text) !=
        MI_SUCCESS)
        msg_warn("cannot set the SMTP reply \"%s %s %s\"", r->rcode, r->xcode, r->text);
    return r->verdict == POL_REJECT ? SMFIS_REJECT : SMFIS_TEMPFAIL;
}

/* Ask only for what policy needs: no HELO, headers or body cross the socket,
 * and only the macros we read are sent. Hold needs quarantine; an MTA that
 * cannot quarantine gets a temporary failure instead (see cb_eom). */
static sfsistat cb_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1,
                             unsigned long f2, unsigned long f3, unsigned long *pf0,
                             unsigned long *pf1, unsigned long *pf2, unsigned long *pf3)
{
    const unsigned long skip =
        SMFIP_NOHELO | SMFIP_NOHDRS | SMFIP_NOEOH | SMFIP_NOBODY | SMFIP_NOUNKNOWN;
    struct cb_conn *cc = calloc(1, sizeof(*cc));

    (void)f2;
    (void)f3;
    if (cc == NULL)
        return SMFIS_TEMPFAIL;
    cc->can_quarantine = (f0 & SMFIF_QUARANTINE) != 0;
    smfi_setpriv(ctx, cc);
    connections(1);
    *pf0 = f0 & SMFIF_QUARANTINE;
    *pf1 = f1 & skip;
    /* cb_connect never refuses: the MTA need not wait for its reply */
    if (f1 & SMFIP_NR_CONN) {
        *pf1 |= SMFIP_NR_CONN;
        cc->connect_noreply = 1;
    }
    *pf2 = 0;
    *pf3 = 0;
    if (f0 & SMFIF_SETSYMLIST) {
        *pf0 |= SMFIF_SETSYMLIST;
        smfi_setsymlist(ctx, SMFIM_ENVFROM, "{auth_authen}");
        smfi_setsymlist(ctx, SMFIM_DATA, "i");
        smfi_setsymlist(ctx, SMFIM_EOM, "i");
    }
    if (!cc->can_quarantine)
        msg_warn("the MTA does not offer quarantine: action \"hold\" will tempfail");
    return SMFIS_CONTINUE;
}

static sfsistat cb_connect(SMFICTX *ctx, char *host, _SOCK_ADDR *sa)
{
    struct cb_conn *cc = conn_of(ctx);
    struct net_addr addr;
    int ip = net_from_sockaddr(sa, &addr) == 0;

    (void)host;
    if (cc == NULL) { /* an MTA that skipped negotiation */
        if ((cc = calloc(1, sizeof(*cc))) == NULL)
            return SMFIS_TEMPFAIL;
        smfi_setpriv(ctx, cc);
        connections(1);
    }
    /* A second CONNECT on one connection ends what the first began (its
     * charge refunded) rather than leaking it. */
    pol_conn_free(cc->pol);
    cc->pol = pol_conn_new(ip ? &addr : NULL);
    return cc->connect_noreply ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

static sfsistat cb_envfrom(SMFICTX *ctx, char **argv)
{
    struct cb_conn *cc = conn_of(ctx);
    struct pol_reply r;
    struct snap *snap;

    if (cc == NULL || cc->pol == NULL || (snap = snap_acquire()) == NULL)
        return SMFIS_TEMPFAIL;
    pol_mail(cc->pol, snap, argv ? argv[0] : NULL, smfi_getsymval(ctx, "{auth_authen}"),
             &r);
    return answer(ctx, &r);
}

static sfsistat cb_envrcpt(SMFICTX *ctx, char **argv)
{
    struct cb_conn *cc = conn_of(ctx);
    struct pol_reply r;

    if (cc == NULL || cc->pol == NULL)
        return SMFIS_TEMPFAIL;
    pol_rcpt(cc->pol, argv ? argv[0] : NULL, &r);
    return answer(ctx, &r);
}

static sfsistat cb_data(SMFICTX *ctx)
{
    struct cb_conn *cc = conn_of(ctx);
    struct pol_reply r;

    if (cc == NULL || cc->pol == NULL)
        return SMFIS_TEMPFAIL;
    pol_data(cc->pol, smfi_getsymval(ctx, "i"), &r);
    return answer(ctx, &r);
}

static sfsistat cb_eom(SMFICTX *ctx)
{
    struct cb_conn *cc = conn_of(ctx);

    if (cc == NULL || cc->pol == NULL)
        return SMFIS_TEMPFAIL;
    if (!pol_eom(cc->pol, smfi_getsymval(ctx, "i")))
        return SMFIS_CONTINUE;
    if (cc->can_quarantine &&
        smfi_quarantine(ctx, (char *)pol_hold_reason(cc->pol)) == MI_SUCCESS)
        return SMFIS_CONTINUE;
    smfi_setreply(ctx, "451", "4.7.1", "message held by policy, try again later");
    return SMFIS_TEMPFAIL;
}

static sfsistat cb_abort(SMFICTX *ctx)
{
    struct cb_conn *cc = conn_of(ctx);

    if (cc != NULL && cc->pol != NULL)
        pol_abort(cc->pol);
    return SMFIS_CONTINUE;
}

static sfsistat cb_close(SMFICTX *ctx)
{
    struct cb_conn *cc = conn_of(ctx);

    if (cc != NULL) {
        connections(-1);
        pol_conn_free(cc->pol);
        free(cc);
        smfi_setpriv(ctx, NULL);
    }
    return SMFIS_CONTINUE;
}

struct smfiDesc cb_filter = {
    .xxfi_name = "relaymilter",
    .xxfi_version = SMFI_VERSION,
    .xxfi_flags = SMFIF_QUARANTINE,
    .xxfi_connect = cb_connect,
    .xxfi_envfrom = cb_envfrom,
    .xxfi_envrcpt = cb_envrcpt,
    .xxfi_data = cb_data,
    .xxfi_eom = cb_eom,
    .xxfi_abort = cb_abort,
    .xxfi_close = cb_close,
    .xxfi_negotiate = cb_negotiate,
};
