#!/usr/bin/env bash
# cfn_test: every template of deploy/cloudformation/ passes deploy/test/cfn-check.js (the
# CloudFormation resource specification of @aws-cdk/aws-service-spec, pinned in
# deploy/package-lock.json), with the stack names deploy/Makefile deploys them under, so every
# !ImportValue must name an export one of them (or the account's infra stacks) makes. Then the
# checker must fail on broken copies: an unknown property, a missing required property, a Ref,
# a GetAtt and an import that point nowhere, a region written in, a bad short tag.
#
# Needs node and deploy/node_modules (npm ci --prefix deploy): missing, it fails under CI=true
# and is skipped (exit 77) elsewhere.
set -euo pipefail

SRC=${FERRY_SOURCE_DIR:?}
DEPLOY=$SRC/deploy
if ! command -v node >/dev/null || [ ! -d "$DEPLOY/node_modules/@aws-cdk/aws-service-spec" ]; then
  if [ "${CI:-}" = true ]; then echo "FAIL: node or deploy/node_modules missing (make deps; npm ci --prefix deploy)"; exit 1; fi
  echo "SKIP: node or deploy/node_modules missing (npm ci --prefix deploy)"; exit 77
fi
work=$(mktemp -d /tmp/ferry-cfn.XXXXXX)
trap 'rm -rf "$work"' EXIT

cd "$DEPLOY"
stack_args=()
while IFS= read -r pair; do stack_args+=(--stack "$pair"); done < <(make -s --no-print-directory stacks)
[ ${#stack_args[@]} -ge 10 ] || { echo "FAIL: deploy/Makefile lists no stacks"; exit 1; }
templates=(cloudformation/*.yaml)
[ ${#templates[@]} -ge 4 ] || { echo "FAIL: templates missing"; exit 1; }
for t in "${templates[@]}"; do
  grep -q "=$t\$" <(make -s --no-print-directory stacks) || { echo "FAIL: $t is no stack of deploy/Makefile"; exit 1; }
done
node test/cfn-check.js "${stack_args[@]}" "${templates[@]}"

# The checker fails where it should: each broken copy of ferry-fleet.yaml must be refused, with
# the expected message.
broken() { # broken NAME SED_EXPRESSION EXPECTED_MESSAGE
  local file=$work/$1.yaml
  sed "$2" cloudformation/ferry-fleet.yaml >"$file"
  cmp -s "$file" cloudformation/ferry-fleet.yaml && { echo "FAIL: $1: the edit changed nothing"; exit 1; }
  if node test/cfn-check.js --stack fleet="$file" "$file" >"$work/$1.out" 2>&1; then
    echo "FAIL: cfn-check accepted $1"; exit 1
  fi
  grep -q -- "$3" "$work/$1.out" || { echo "FAIL: $1: expected '$3' in:"; cat "$work/$1.out"; exit 1; }
  echo "refused as expected: $1"
}
broken unknown-property 's/VolumeType: gp3/VolumeKind: gp3/' "no property VolumeKind in AWS::EC2::Volume"
broken missing-required '/^      MaxSize: "1"$/d' "required property MaxSize is missing"
broken nested-property 's/HttpTokens: required/HttpToken: required/' "no property HttpToken"
broken dangling-ref 's/Resource: !Ref TokenSecret/Resource: !Ref TokenSecrett/' "Ref to TokenSecrett"
# shellcheck disable=SC2016 # the ${...} are CloudFormation's, not the shell's
broken dangling-sub 's/hostedzone\/${PrivateZone}/hostedzone\/${PrivateZon}/' "Ref to PrivateZon"
broken bad-attribute 's/!GetAtt LogGroup.Arn/!GetAtt LogGroup.Name/' "has no attribute Name"
# shellcheck disable=SC2016
broken missing-export 's/${InfraVpcStack}-sn-public-a/${InfraVpcStack}-sn-public-q/' "no stack exports infra-vpc-sn-public-q"
broken wrong-shape 's/MaxSize: "1"/MaxSize: ["1"]/' "wants a string, not a list"
broken region-written 's/Default: 7420/Default: 7420  # us-east-1/' "a region is written"
broken unknown-tag 's/!Equals \[!Ref AdminCidr/!Equal [!Ref AdminCidr/' "unknown tag !Equal"
broken missing-condition 's/Condition: HasAdminCidr/Condition: HasAdminCidrs/' "no condition HasAdminCidrs"
broken unknown-type 's/Type: AWS::EC2::Volume/Type: AWS::EC2::Volumes/' "no resource type AWS::EC2::Volumes"
echo "cfn_test: ${#templates[@]} templates valid; 12 broken copies refused"
