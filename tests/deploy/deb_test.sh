#!/usr/bin/env bash
# deb_test: the Debian package (cmake/Packaging.cmake) is built, lintian finds no error in it,
# and unpacked into a scratch root it holds what an operator and the CloudFormation user data
# need, and its binaries run:
#
#   - `cpack -G DEB` in the build directory makes ferry_<version>_<arch>.deb;
#   - `lintian --fail-on error` passes;
#   - the control data: conffiles are exactly /etc/ferry/*.env, the postinst makes the ferry user,
#     the shared libraries are in Depends;
#   - the files: the three binaries in /usr/bin, the units, /etc/ferry/*.env of mode 0600, a
#     machine-readable MIT copyright, /usr/lib/ferry/ferry-aws-bootstrap;
#   - `dpkg-deb -x` into a scratch root, where ferry, ferry-controller and ferry-agent run --help;
#   - the units: hardened (User=ferry, ProtectSystem=strict, NoNewPrivileges, StateDirectory),
#     every flag of their ExecStart lines is one the binary's --help lists, and
#     `systemd-analyze verify` has nothing to say about them.
#
# Environment: FERRY_BIN_DIR (build/bin), FERRY_SOURCE_DIR. Needs cpack, dpkg-deb, lintian and
# systemd-analyze: a missing one fails under CI=true, else the test is skipped (exit 77).
set -euo pipefail

BUILD=$(dirname "${FERRY_BIN_DIR:?}")

for tool in cpack dpkg-deb lintian systemd-analyze; do
  if ! command -v "$tool" >/dev/null; then
    if [ "${CI:-}" = true ]; then echo "FAIL: $tool is missing (make deps)"; exit 1; fi
    echo "SKIP: $tool is missing"; exit 77
  fi
done

work=$(mktemp -d /tmp/ferry-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

cpack -G DEB --config "$BUILD/CPackConfig.cmake" -B "$work/pkg" >"$work/cpack.log" 2>&1 \
  || { cat "$work/cpack.log"; fail "cpack -G DEB"; }
deb=$(ls "$work"/pkg/ferry_*.deb)
echo "built $(basename "$deb")"

# lintian (as root it warns that it should not be root: that line is not a finding).
if ! lintian --fail-on error --tag-display-limit 0 "$deb" >"$work/lintian.log" 2>&1; then
  cat "$work/lintian.log"
  fail "lintian reports errors"
fi
grep -v "root privileges" "$work/lintian.log" || true

# Control data.
dpkg-deb -e "$deb" "$work/control"
[ "$(sort "$work/control/conffiles")" = "$(printf '/etc/ferry/agent.env\n/etc/ferry/controller.env')" ] \
  || fail "conffiles: $(cat "$work/control/conffiles")"
grep -q "adduser --system" "$work/control/postinst" || fail "the postinst does not make the ferry user"
depends=$(dpkg-deb -f "$deb" Depends)
for lib in libgrpc++ libhiredis libsqlite3 libssl3 adduser; do
  case $depends in *"$lib"*) ;; *) fail "Depends lacks $lib: $depends" ;; esac
done

# Files and modes.
dpkg-deb -c "$deb" >"$work/contents"
for f in ./usr/bin/ferry ./usr/bin/ferry-controller ./usr/bin/ferry-agent \
    ./lib/systemd/system/ferry-controller.service ./lib/systemd/system/ferry-agent.service \
    ./usr/share/doc/ferry/copyright ./usr/share/doc/ferry/changelog.gz \
    ./usr/lib/ferry/ferry-aws-bootstrap; do
  grep -q " $f\$" "$work/contents" || fail "the package lacks $f"
done
for f in ./etc/ferry/controller.env ./etc/ferry/agent.env; do
  grep -q "^-rw------- root/root .* $f\$" "$work/contents" || fail "$f is not root's, mode 0600"
done

root=$work/root
dpkg-deb -x "$deb" "$root"
head -n 1 "$root/usr/share/doc/ferry/copyright" \
  | grep -qx "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/" \
  || fail "copyright is not machine-readable"
grep -qx "License: MIT" "$root/usr/share/doc/ferry/copyright" || fail "copyright: no MIT license"

# The binaries run.
"$root/usr/bin/ferry" --help >"$work/ferry.help" 2>&1 || fail "ferry --help"
grep -q "^ferry: copy Redis data" "$work/ferry.help" || fail "ferry --help: $(head -n 1 "$work/ferry.help")"
"$root/usr/bin/ferry-controller" --help >"$work/ferry-controller.help" 2>&1 || fail "ferry-controller --help"
grep -q "^usage: ferry-controller" "$work/ferry-controller.help" || fail "ferry-controller --help"
"$root/usr/bin/ferry-agent" --help >"$work/ferry-agent.help" 2>&1 || fail "ferry-agent --help"
grep -q "^Usage: ferry-agent" "$work/ferry-agent.help" || fail "ferry-agent --help"

# The units.
for unit in ferry-controller ferry-agent; do
  file=$root/lib/systemd/system/$unit.service
  for line in "User=ferry" "ProtectSystem=strict" "NoNewPrivileges=yes" "ProtectHome=yes" \
      "PrivateTmp=yes" "EnvironmentFile=/etc/ferry/${unit#ferry-}.env" "LoadCredential=token:/etc/ferry/token"; do
    grep -qx "$line" "$file" || fail "$unit.service lacks $line"
  done
  exec_start=$(sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$file" | sed -n 's/^ExecStart=//p')
  binary=${exec_start%% *}
  [ "$binary" = "/usr/bin/$unit" ] || fail "$unit.service runs $binary"
  while read -r flag; do
    grep -q -- "$flag " "$work/$unit.help" || fail "$unit.service passes $flag, which $unit --help does not list"
  done < <(grep -o -- '--[a-z-]*' <<<"$exec_start")
  # systemd's own reading of the unit, with the binary where the scratch root has it.
  mkdir -p "$work/verify"
  sed "s#/usr/bin/#$root/usr/bin/#" "$file" >"$work/verify/$unit.service"
  if ! systemd-analyze verify "$work/verify/$unit.service" >"$work/verify.log" 2>&1 \
      || [ -s "$work/verify.log" ]; then
    cat "$work/verify.log"
    fail "systemd-analyze verify $unit.service"
  fi
done
grep -qx "StateDirectory=ferry" "$root/lib/systemd/system/ferry-controller.service" \
  || fail "the controller's state is not in StateDirectory=ferry"
echo "deb_test: $(basename "$deb") passes lintian, installs into a scratch root and runs"
