#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# run.sh - podman with the settings the project's CI machines need (doc/CI).
#
#   run.sh base              make the image docker.io/library/debian:12 from
#                            Debian's packages (mmdebstrap), unless it exists
#   run.sh PODMAN-ARGS...    podman PODMAN-ARGS... with these settings
#
# Settings (only the CI machines need the first four; doc/CI says why):
#   --runtime runc                    crun fails on their hybrid cgroups
#   --ulimit nofile=1024:1024, nproc  the runtime may not raise a limit there
#   --network host                    builds and containers use the host's
#                                     network (loopback ports of the test),
#                                     unless the arguments name a --network
#   base                              no image registry is reachable
#   --format docker                   podman's default OCI format drops
#                                     HEALTHCHECK
# RM_PODMAN_STORE=DIR keeps every image and container under DIR, a store of
# their own: nothing made or removed there touches the machine's others.
set -eu
[ $# -ge 1 ] || { echo "usage: run.sh base | PODMAN-ARGS..." >&2; exit 2; }
store=${RM_PODMAN_STORE:-}
podman() {
    if [ -n "$store" ]; then
        command podman --runtime runc --root "$store/root" --runroot "$store/run" \
            --tmpdir "$store/tmp" "$@"
    else
        command podman --runtime runc "$@"
    fi
}
limits="--ulimit nofile=1024:1024 --ulimit nproc=1024:1024"
net="--network host"
case " $* " in *" --network"*) net="" ;; esac
cmd=$1
shift
case $cmd in
base)
    base=docker.io/library/debian:12
    podman image exists "$base" && exit 0
    tmp=$(mktemp -d /tmp/rm-base.XXXXXX)
    trap 'rm -rf "$tmp"' EXIT
    mmdebstrap --quiet --variant=minbase bookworm "$tmp/rootfs.tar"
    podman import --quiet "$tmp/rootfs.tar" "$base" >/dev/null
    ;;
build) podman build --format docker $net $limits "$@" ;;
run | create) podman "$cmd" $net $limits "$@" ;;
*) podman "$cmd" "$@" ;;
esac
