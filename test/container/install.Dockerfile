# SPDX-License-Identifier: BSD-2-Clause
# install.Dockerfile - a fresh Debian 12 with systemd as init and this source
# tree in /root/relaymilter (the top-level .dockerignore applies), on which
# test_install_doc.py runs the steps of INSTALL ("From source") as written.
#   run.sh build -f test/container/install.Dockerfile -t NAME .
FROM debian:12
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends systemd systemd-sysv \
 && rm -rf /var/lib/apt/lists/*
COPY . /root/relaymilter
STOPSIGNAL SIGRTMIN+3
CMD ["/sbin/init"]
