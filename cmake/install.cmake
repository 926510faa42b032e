# SPDX-License-Identifier: BSD-2-Clause
# install.cmake - what `cmake --install` puts beside the daemon.
#
#   bin/relaymilter-ctl                             the support tool
#   share/doc/relaymilter/examples/                 relaymilter.conf, Postfix
#                                                   and Sendmail snippets,
#                                                   Prometheus alert rules and
#                                                   a Grafana dashboard
#   share/man/man8/relaymilter.8                    the daemon
#   share/man/man5/relaymilter.conf.5               its configuration file
#   share/man/man1/relaymilter-ctl.1                the tool
#   RM_SYSTEMD_UNITDIR/relaymilter.service          the systemd unit
#
# Nothing is written to /etc: the sample configuration is an example, and an
# install must never replace the administrator's /etc/relaymilter.conf.
# Copy it there once: install -m 0640 -g relaymilter EXAMPLE /etc/relaymilter.conf
#
# The systemd unit goes to /lib/systemd/system for the prefix /usr (Debian 12's
# place for packaged units), else to PREFIX/lib/systemd/system (systemd also
# reads /usr/local/lib/systemd/system). -DRM_SYSTEMD_UNITDIR=DIR overrides it;
# -DRM_INSTALL_SYSTEMD=OFF leaves the unit out.

option(RM_INSTALL_SYSTEMD "install the systemd unit" ON)
set(RM_SYSTEMD_UNITDIR "" CACHE PATH
    "directory for relaymilter.service (empty: chosen from the install prefix)")

install(TARGETS relaymilter-ctl DESTINATION ${CMAKE_INSTALL_BINDIR})

install(FILES
          ${CMAKE_CURRENT_SOURCE_DIR}/postfix-example/relaymilter.conf
          ${CMAKE_CURRENT_SOURCE_DIR}/postfix-example/main.cf
          ${CMAKE_CURRENT_SOURCE_DIR}/postfix-example/master.cf
          ${CMAKE_CURRENT_SOURCE_DIR}/postfix-example/sendmail.mc
          ${CMAKE_CURRENT_SOURCE_DIR}/monitoring/relaymilter.rules.yml
          ${CMAKE_CURRENT_SOURCE_DIR}/monitoring/relaymilter-dashboard.json
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)

# The topic documents (README says which is which).
install(FILES
          ${CMAKE_CURRENT_SOURCE_DIR}/README
          ${CMAKE_CURRENT_SOURCE_DIR}/INSTALL
          ${CMAKE_CURRENT_SOURCE_DIR}/SECURITY
          ${CMAKE_CURRENT_SOURCE_DIR}/doc/OPERATIONS
          ${CMAKE_CURRENT_SOURCE_DIR}/doc/PERFORMANCE
          ${CMAKE_CURRENT_SOURCE_DIR}/doc/CLUSTER
          ${CMAKE_CURRENT_SOURCE_DIR}/doc/CI
          ${CMAKE_CURRENT_SOURCE_DIR}/doc/MONITORING
        DESTINATION ${CMAKE_INSTALL_DOCDIR})

install(FILES ${CMAKE_CURRENT_SOURCE_DIR}/man/relaymilter.8
        DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
install(FILES ${CMAKE_CURRENT_SOURCE_DIR}/man/relaymilter.conf.5
        DESTINATION ${CMAKE_INSTALL_MANDIR}/man5)
install(FILES ${CMAKE_CURRENT_SOURCE_DIR}/man/relaymilter-ctl.1
        DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)

# The unit names the daemon by its installed path: /usr/sbin/relaymilter in
# packaging/relaymilter.service, rewritten for another prefix. Both the path
# and the unit directory are worked out when installing, so that
# `cmake --install BUILD --prefix /usr` gets them right too.
if(RM_INSTALL_SYSTEMD)
  install(CODE "
    set(rm_unitdir \"${RM_SYSTEMD_UNITDIR}\")
    if(rm_unitdir STREQUAL \"\" AND CMAKE_INSTALL_PREFIX STREQUAL \"/usr\")
      set(rm_unitdir /lib/systemd/system)
    elseif(rm_unitdir STREQUAL \"\")
      set(rm_unitdir \"\${CMAKE_INSTALL_PREFIX}/lib/systemd/system\")
    endif()
    file(READ \"${CMAKE_CURRENT_SOURCE_DIR}/packaging/relaymilter.service\" rm_unit)
    string(REPLACE /usr/sbin/relaymilter
           \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_SBINDIR}/relaymilter\"
           rm_unit \"\${rm_unit}\")
    file(WRITE \"${CMAKE_CURRENT_BINARY_DIR}/packaging/relaymilter.service\" \"\${rm_unit}\")
    file(INSTALL \"${CMAKE_CURRENT_BINARY_DIR}/packaging/relaymilter.service\"
         DESTINATION \"\${rm_unitdir}\" FILE_PERMISSIONS OWNER_READ OWNER_WRITE
         GROUP_READ WORLD_READ)
  ")
endif()
