# The Debian package of ferry (CPack DEB): the three binaries in /usr/bin, the systemd units,
# the environment files in /etc/ferry (mode 0600, conffiles), copyright and changelog.
#
#   cmake --build build --target ferry ferry-agent ferry-controller
#   cd build && cpack -G DEB            # -> build/packages/ferry_<version>_<arch>.deb
#
# deploy/Makefile `package` does this for amd64 and, where a cross toolchain allows, arm64;
# tests/deploy/ checks the result with lintian and installs it into a scratch root.

include(GNUInstallDirs)

set(FERRY_DEBIAN_DIR ${PROJECT_SOURCE_DIR}/deploy/debian)

# The units and the configuration they read (the binaries' install() rules are beside them).
install(FILES ${PROJECT_SOURCE_DIR}/deploy/systemd/ferry-controller.service
              ${PROJECT_SOURCE_DIR}/deploy/systemd/ferry-agent.service
        DESTINATION /lib/systemd/system
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
install(FILES ${FERRY_DEBIAN_DIR}/controller.env ${FERRY_DEBIAN_DIR}/agent.env
        DESTINATION /etc/ferry
        PERMISSIONS OWNER_READ OWNER_WRITE)
# What the CloudFormation stacks' user data runs once the package is installed (deploy/aws/).
install(PROGRAMS ${PROJECT_SOURCE_DIR}/deploy/aws/ferry-aws-bootstrap DESTINATION lib/ferry)
# The environment files are 0600 on purpose (they may hold secrets): lintian is told so.
install(FILES ${FERRY_DEBIAN_DIR}/lintian-overrides RENAME ferry
        DESTINATION ${CMAKE_INSTALL_DATADIR}/lintian/overrides
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
install(FILES ${FERRY_DEBIAN_DIR}/copyright
        DESTINATION ${CMAKE_INSTALL_DOCDIR}
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
# Debian wants the changelog compressed, reproducibly (gzip -n: no name, no timestamp).
set(FERRY_CHANGELOG_GZ ${CMAKE_BINARY_DIR}/deb/changelog.gz)
add_custom_command(OUTPUT ${FERRY_CHANGELOG_GZ}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/deb
  COMMAND gzip -9nc ${FERRY_DEBIAN_DIR}/changelog > ${FERRY_CHANGELOG_GZ}
  DEPENDS ${FERRY_DEBIAN_DIR}/changelog VERBATIM)
add_custom_target(ferry_deb_changelog ALL DEPENDS ${FERRY_CHANGELOG_GZ})
install(FILES ${FERRY_CHANGELOG_GZ} DESTINATION ${CMAKE_INSTALL_DOCDIR}
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME ferry)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "the ferry authors")
set(CPACK_PACKAGE_CONTACT "the ferry authors <ferry-authors@users.noreply.github.com>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Redis and Valkey migration: controller, agents and CLI")
set(CPACK_PACKAGE_DESCRIPTION "ferry copies the data of one Redis or Valkey deployment into another
with SCAN, DUMP, PTTL and RESTORE, the commands managed services such as
Amazon ElastiCache allow, and verifies the result both ways. A controller
spreads a job over many agents and resumes after any crash.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_PACKAGE_DIRECTORY ${CMAKE_BINARY_DIR}/packages)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION database)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${FERRY_DEBIAN_DIR}/conffiles ${FERRY_DEBIAN_DIR}/postinst ${FERRY_DEBIAN_DIR}/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
