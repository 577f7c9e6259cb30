#!/usr/bin/env bash
# userdata_test: the user data of ferry-fleet.yaml's two launch templates, run for real on this
# machine against stubs of the AWS CLI, apt-get, curl (IMDSv2) and systemctl
# (tests/deploy/stubs/), each instance in its own scratch root (FERRY_ROOT). Then the systemd
# units' ExecStart lines run as processes (run_unit.py) from what the user data left there, and
# the agent must register with the controller over TLS with the token.
#
#   1. the .deb is built (cpack) and is what the stub S3 hands out;
#   2. the controller's user data: the package unpacked, the volume attached and formatted and in
#      fstab, a CA and certificate made and the CA published, the token fetched (mode 0600), the
#      DNS record set, controller.env written, the unit enabled and restarted;
#   3. the agent's user data: token and CA fetched, agent.env written, the unit started;
#   4. both units started from their ExecStart lines; `ferry agents` (the package's CLI, with
#      the agent's CA and token) lists the agent by its instance id; a wrong token is refused;
#   5. the token appears in no log.
#
# Environment: FERRY_BIN_DIR (build/bin), FERRY_SOURCE_DIR; FERRY_TEST_KEEP=1 keeps the scratch roots. Needs node (and deploy/node_modules:
# npm ci --prefix deploy), python3, openssl, cpack, dpkg-deb; missing ones fail under CI=true,
# else skip (exit 77).
set -euo pipefail

SRC=${FERRY_SOURCE_DIR:?}
BUILD=$(dirname "${FERRY_BIN_DIR:?}")
HERE=$SRC/tests/deploy

for tool in node python3 openssl cpack dpkg-deb; do
  if ! command -v "$tool" >/dev/null; then
    if [ "${CI:-}" = true ]; then echo "FAIL: $tool is missing (make deps)"; exit 1; fi
    echo "SKIP: $tool is missing"; exit 77
  fi
done
if [ ! -d "$SRC/deploy/node_modules/yaml" ]; then
  if [ "${CI:-}" = true ]; then echo "FAIL: deploy/node_modules is missing (npm ci --prefix deploy)"; exit 1; fi
  echo "SKIP: deploy/node_modules is missing (npm ci --prefix deploy)"; exit 77
fi

work=$(mktemp -d /tmp/ferry-userdata.XXXXXX)
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "${FERRY_TEST_KEEP:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  for f in "$work"/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -n 30 "$f"; }; done
  exit 1
}

# --- 1. the package ------------------------------------------------------------------------------
cpack -G DEB --config "$BUILD/CPackConfig.cmake" -B "$work/pkg" >"$work/cpack.log" 2>&1 || fail "cpack"
deb=$(ls "$work"/pkg/ferry_*.deb)

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$work/stub"
openssl rand -hex 24 >"$work/stub/token"
token=$(cat "$work/stub/token")
export STUB_DIR=$work/stub STUB_DEB=$deb STUB_REGION=zz-test-1 STUB_BUCKET=ferry-test-bucket \
  STUB_KEY=ferry/ferry_0.1.0_amd64.deb \
  STUB_SECRET=arn:aws:secretsmanager:zz-test-1:000000000000:secret:fleet/controller-token \
  STUB_CA_PARAMETER=/fleet/ferry/ca-certificate STUB_VOLUME=vol-0123456789abcdef0 \
  STUB_ZONE=Z0TESTZONE

render() { # render LAUNCH_TEMPLATE OUT: the launch template's user data with the test's values
  node "$SRC/deploy/test/render-userdata.js" "$SRC/deploy/cloudformation/ferry-fleet.yaml" "$1" \
    AWS::Region="$STUB_REGION" Bucket="$STUB_BUCKET" PackageKey="$STUB_KEY" \
    TokenSecret="$STUB_SECRET" CaCertificate="$STUB_CA_PARAMETER" ControllerHost=localhost \
    ControllerPort="$port" StateVolume="$STUB_VOLUME" PrivateZone="$STUB_ZONE" \
    LogGroup=/ferry/fleet AgentSlots=2 >"$2" || fail "render $1"
}
run_userdata() { # run_userdata SCRIPT ROOT INSTANCE_ID LOG: as cloud-init would, as root
  mkdir -p "$2"
  env -i PATH="$HERE/stubs:/usr/sbin:/usr/bin:/sbin:/bin" HOME="$work" TMPDIR="$work" \
    FERRY_ROOT="$2" STUB_INSTANCE_ID="$3" STUB_DIR="$STUB_DIR" STUB_DEB="$STUB_DEB" \
    STUB_REGION="$STUB_REGION" STUB_BUCKET="$STUB_BUCKET" STUB_KEY="$STUB_KEY" \
    STUB_SECRET="$STUB_SECRET" STUB_CA_PARAMETER="$STUB_CA_PARAMETER" STUB_VOLUME="$STUB_VOLUME" \
    STUB_ZONE="$STUB_ZONE" bash "$1" >"$4" 2>&1
}
mode() { stat -c %a "$1"; }

# --- 2. the controller's user data ---------------------------------------------------------------
C=$work/controller
render ControllerLaunchTemplate "$work/controller-userdata.sh"
run_userdata "$work/controller-userdata.sh" "$C" i-0controllertest "$work/controller-userdata.log" \
  || fail "the controller's user data failed"
grep -q "ferry-aws-bootstrap: controller ready" "$work/controller-userdata.log" || fail "controller not ready"
[ -x "$C/usr/bin/ferry-controller" ] || fail "the package was not installed"
for f in token server.pem server.key controller.env agent.env; do
  [ "$(mode "$C/etc/ferry/$f")" = 600 ] || fail "/etc/ferry/$f is mode $(mode "$C/etc/ferry/$f"), not 600"
done
cmp -s "$C/etc/ferry/token" "$work/stub/token" || fail "the controller's token is not the secret's"
grep -qx "FERRY_LISTEN=0.0.0.0:$port" "$C/etc/ferry/controller.env" || fail "controller.env: no FERRY_LISTEN"
grep -q "^/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0 /var/lib/ferry ext4" \
  "$C/etc/fstab" || fail "the state volume is not in fstab"
grep -q "^mkfs.ext4 .*vol0123456789abcdef0" "$STUB_DIR/calls" || fail "the state volume was not formatted"
grep -q "^mount .*vol0123456789abcdef0 $C/var/lib/ferry" "$STUB_DIR/calls" || fail "the state volume was not mounted"
grep -q '"Value": "127.0.0.1"' "$STUB_DIR/dns.json" || fail "the DNS record does not point at the instance"
grep -q "^-----BEGIN CERTIFICATE-----" "$STUB_DIR/ca-parameter" || fail "the CA certificate was not published"
openssl verify -CAfile "$STUB_DIR/ca-parameter" "$C/etc/ferry/server.pem" >/dev/null \
  || fail "the controller's certificate is not signed by the published CA"
grep -q "^systemctl restart ferry-controller.service" "$STUB_DIR/calls" || fail "ferry-controller was not started"
grep -q "RequiresMountsFor=/var/lib/ferry" "$C/etc/systemd/system/ferry-controller.service.d/aws.conf" \
  || fail "the controller's drop-in does not wait for its volume"

# --- 3. the agent's user data --------------------------------------------------------------------
A=$work/agent
render AgentLaunchTemplate "$work/agent-userdata.sh"
run_userdata "$work/agent-userdata.sh" "$A" i-0agenttest "$work/agent-userdata.log" \
  || fail "the agent's user data failed"
grep -q "ferry-aws-bootstrap: agent ready" "$work/agent-userdata.log" || fail "agent not ready"
[ "$(mode "$A/etc/ferry/token")" = 600 ] || fail "the agent's token is not mode 600"
[ "$(mode "$A/etc/ferry/agent.env")" = 600 ] || fail "agent.env is not mode 600"
cmp -s "$A/etc/ferry/ca.pem" "$STUB_DIR/ca-parameter" || fail "the agent's CA is not the published one"
grep -qx "FERRY_CONTROLLER=localhost:$port" "$A/etc/ferry/agent.env" || fail "agent.env: no FERRY_CONTROLLER"
grep -qx "FERRY_SLOTS=2" "$A/etc/ferry/agent.env" || fail "agent.env: no FERRY_SLOTS"
grep -q "^systemctl restart ferry-agent.service" "$STUB_DIR/calls" || fail "ferry-agent was not started"

# --- 4. the units, for real ----------------------------------------------------------------------
python3 "$HERE/run_unit.py" "$C" ferry-controller.service >"$work/controller.log" 2>&1 &
pids+=($!)
python3 "$HERE/run_unit.py" "$A" ferry-agent.service >"$work/agent.log" 2>&1 &
pids+=($!)
agents() { # agents TOKEN_FILE: `ferry agents` against the controller, as an admin would
  "$C/usr/bin/ferry" agents --controller "localhost:$port" --tls-ca "$A/etc/ferry/ca.pem" \
    --token-file "$1" --output json --timeout 5
}
registered=""
for _ in $(seq 1 60); do
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null || fail "a unit's process exited"; done
  if agents "$A/etc/ferry/token" >"$work/agents.json" 2>"$work/agents.err" \
      && grep -q '"i-0agenttest"' "$work/agents.json"; then
    registered=yes
    break
  fi
  sleep 0.5
done
[ -n "$registered" ] || fail "the agent never registered with the controller"
echo "wrong-token" >"$work/wrong-token"
if agents "$work/wrong-token" >/dev/null 2>&1; then fail "the controller accepted a wrong token"; fi

# --- 5. no secret in any log ---------------------------------------------------------------------
if grep -rqF "$token" "$work"/*.log "$STUB_DIR/calls" "$work/agents.json"; then
  fail "the token appears in a log"
fi
echo "userdata_test: controller and agent configured by their user data; agent i-0agenttest registered"
