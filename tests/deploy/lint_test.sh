#!/usr/bin/env bash
# lint_test: yamllint --strict on deploy/cloudformation/ (rules in its .yamllint) and
# the shellcheck of the deployment's shell scripts (ferry-aws-bootstrap, the package's maintainer
# scripts, the test stubs and scripts). Then yamllint must fail on a broken copy of a template
# (a tab, a duplicate key) and shellcheck on a broken script.
#
# Needs yamllint and shellcheck: missing, it fails under CI=true and is skipped (exit 77) elsewhere.
set -euo pipefail

SRC=${FERRY_SOURCE_DIR:?}
for tool in yamllint shellcheck; do
  if ! command -v "$tool" >/dev/null; then
    if [ "${CI:-}" = true ]; then echo "FAIL: $tool is missing (make deps)"; exit 1; fi
    echo "SKIP: $tool is missing"; exit 77
  fi
done
work=$(mktemp -d /tmp/ferry-lint.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$SRC/deploy"

config=cloudformation/.yamllint
yamllint --strict -c "$config" cloudformation/
echo "yamllint: cloudformation/*.yaml clean"
shellcheck -x aws/ferry-aws-bootstrap debian/postinst debian/postrm \
  "$SRC"/tests/deploy/*.sh "$SRC"/tests/deploy/stubs/*
echo "shellcheck: scripts clean"

# Each check can fail.
sed 's/^  TokenSecret:$/  TokenSecret:\n  TokenSecret:/' cloudformation/ferry-fleet.yaml >"$work/dup.yaml"
if yamllint --strict -c "$config" "$work/dup.yaml" >/dev/null; then echo "FAIL: yamllint accepted a duplicate key"; exit 1; fi
sed 's/^Parameters:$/Parameters:  /' cloudformation/ferry-fleet.yaml >"$work/space.yaml"
if yamllint --strict -c "$config" "$work/space.yaml" >/dev/null; then echo "FAIL: yamllint accepted trailing spaces"; exit 1; fi
# shellcheck disable=SC2016 # the broken script's $1 is meant literally
printf '#!/bin/bash\nrm -rf $1/*\n' >"$work/bad.sh"
if shellcheck "$work/bad.sh" >/dev/null; then echo "FAIL: shellcheck accepted an unquoted variable"; exit 1; fi
echo "lint_test: clean; broken copies refused"
