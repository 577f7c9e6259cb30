#!/bin/bash
# A client in another language: Python stubs generated from proto/ferry/v1/ferry.proto with
# Debian's protoc and grpc_python_plugin (grpc_tools.protoc when those are missing) drive a real
# ferry-controller with one ferry-agent between two real redis-servers. The Python program
# submits a job, streams WatchJob until DONE, reads the job back, checks that the bearer token is
# enforced (UNAUTHENTICATED), that unknown ids are NOT_FOUND, that no answer carries a password,
# that grpc.health.v1.Health answers SERVING and that server reflection describes the API (what
# grpcurl needs). The shell then compares the key counts.
#
# Needs FERRY_BIN_DIR and FERRY_SOURCE_DIR (set by ctest). A missing tool fails the test; it
# never skips.
set -euo pipefail

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

[[ -n "${FERRY_BIN_DIR:-}" ]] || fail "FERRY_BIN_DIR is not set (run through ctest)"
[[ -n "${FERRY_SOURCE_DIR:-}" ]] || fail "FERRY_SOURCE_DIR is not set (run through ctest)"
PYTHON=/usr/bin/python3  # Debian's, with python3-grpcio (a pyenv python3 on PATH may lack it).
for binary in ferry-controller ferry-agent; do
  [[ -x "$FERRY_BIN_DIR/$binary" ]] || fail "$FERRY_BIN_DIR/$binary is missing (build it first)"
done
for tool in "$PYTHON" redis-server redis-cli; do
  command -v "$tool" >/dev/null || fail "$tool not found; install it (make deps)"
done
"$PYTHON" -c 'import grpc' || fail "python3-grpcio is not installed (make deps)"

work=$(mktemp -d "${TMPDIR:-/tmp}/ferry-python-client-XXXXXX")
pids=()
cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if ((status != 0)); then
    for log in "$work"/*.log; do
      [[ -f "$log" ]] || continue
      echo "--- $log" >&2
      tail -n 40 "$log" >&2
    done
  fi
  if [[ "${FERRY_KEEP_TEST_DIRS:-}" == 1 ]]; then
    echo "kept $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

free_port() {
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# Polls a command until it succeeds, up to $1 seconds.
wait_for() {
  local seconds=$1
  shift
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

# --- Stubs: ferry.v1 from the repository; grpc.health.v1 and the part of
# grpc.reflection.v1alpha that lists and describes services, from their standard definitions.
gen="$work/gen"
mkdir -p "$gen" "$work/proto/health/v1" "$work/proto/reflection/v1alpha"
cat >"$work/proto/health/v1/health.proto" <<'EOF'
// The standard gRPC health checking protocol (grpc/grpc doc/health-checking.md). Its file path
// differs from upstream's so that the generated module does not shadow the `grpc` package.
syntax = "proto3";

package grpc.health.v1;

message HealthCheckRequest {
  string service = 1;
}

message HealthCheckResponse {
  enum ServingStatus {
    UNKNOWN = 0;
    SERVING = 1;
    NOT_SERVING = 2;
    SERVICE_UNKNOWN = 3;
  }
  ServingStatus status = 1;
}

service Health {
  rpc Check(HealthCheckRequest) returns (HealthCheckResponse);
  rpc Watch(HealthCheckRequest) returns (stream HealthCheckResponse);
}
EOF

cat >"$work/proto/reflection/v1alpha/reflection.proto" <<'EOF'
// The fields of grpc/reflection/v1alpha/reflection.proto that grpcurl uses to list and
// describe services (the others are left out; the wire format does not mind).
syntax = "proto3";

package grpc.reflection.v1alpha;

message ServerReflectionRequest {
  string host = 1;
  oneof message_request {
    string file_by_filename = 3;
    string file_containing_symbol = 4;
    string list_services = 7;
  }
}

message FileDescriptorResponse {
  repeated bytes file_descriptor_proto = 1;
}

message ServiceResponse {
  string name = 1;
}

message ListServiceResponse {
  repeated ServiceResponse service = 1;
}

message ErrorResponse {
  int32 error_code = 1;
  string error_message = 2;
}

message ServerReflectionResponse {
  string valid_host = 1;
  ServerReflectionRequest original_request = 2;
  oneof message_response {
    FileDescriptorResponse file_descriptor_response = 4;
    ListServiceResponse list_services_response = 6;
    ErrorResponse error_response = 7;
  }
}

service ServerReflection {
  rpc ServerReflectionInfo(stream ServerReflectionRequest)
      returns (stream ServerReflectionResponse);
}
EOF

# Debian's protoc is 3.21 and knows proto3 `optional` (JobSpec.target_db); the protoc inside
# Debian's python3-grpc-tools (1.14, libprotoc 3.5) does not, so it is only the fallback.
generate() {  # generate INCLUDE_DIR FILE
  if command -v protoc >/dev/null && command -v grpc_python_plugin >/dev/null; then
    protoc -I"$1" --python_out="$gen" --grpc_out="$gen" \
      --plugin=protoc-gen-grpc="$(command -v grpc_python_plugin)" "$2"
  elif "$PYTHON" -c 'import grpc_tools' 2>/dev/null; then
    "$PYTHON" -m grpc_tools.protoc -I"$1" --python_out="$gen" --grpc_python_out="$gen" "$2"
  else
    fail "neither protoc with grpc_python_plugin nor grpc_tools is installed (make deps)"
  fi
}
generate "$FERRY_SOURCE_DIR/proto" ferry/v1/ferry.proto || fail "cannot generate the ferry stubs"
generate "$work/proto" health/v1/health.proto || fail "cannot generate the health stubs"
generate "$work/proto" reflection/v1alpha/reflection.proto ||
  fail "cannot generate the reflection stubs"
[[ -f "$gen/ferry/v1/ferry_pb2_grpc.py" ]] || fail "no ferry_pb2_grpc.py was generated"

# --- Redis: a source with a password and data in dbs 0 and 3, an empty target.
source_password="py-src-Pw-8e2d61"
source_port=$(free_port)
target_port=$(free_port)
start_redis() {  # start_redis NAME PORT [redis-server flags...]
  local name=$1 port=$2
  shift 2
  mkdir -p "$work/$name"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$work/$name" --save '' --appendonly no \
    "$@" >"$work/$name.log" 2>&1 &
  pids+=($!)
}
start_redis source "$source_port" --requirepass "$source_password"
start_redis target "$target_port"
src_cli() { REDISCLI_AUTH="$source_password" redis-cli -p "$source_port" "$@"; }
dst_cli() { redis-cli -p "$target_port" "$@"; }
wait_for 30 src_cli ping || fail "the source redis-server does not answer"
wait_for 30 dst_cli ping || fail "the target redis-server does not answer"

load='for i = 1, tonumber(ARGV[1]) do
  local k = ARGV[2] .. i
  redis.call("SET", k .. ":s", "value " .. i)
  redis.call("HSET", k .. ":h", "a", i, "b", "x")
  redis.call("RPUSH", k .. ":l", i, i + 1)
  if i % 10 == 0 then redis.call("PEXPIRE", k .. ":s", 300000) end
end
return redis.call("DBSIZE")'
src_cli -n 0 EVAL "$load" 0 2000 "py:0:" >/dev/null
src_cli -n 3 EVAL "$load" 0 300 "py:3:" >/dev/null
[[ "$(src_cli -n 0 DBSIZE)" == 6000 ]] || fail "could not load db 0"
[[ "$(src_cli -n 3 DBSIZE)" == 900 ]] || fail "could not load db 3"

# --- A controller that requires a token (allowed on loopback too) and one agent.
token="py-token-41c7a9"
printf '%s\n' "$token" >"$work/token"
chmod 600 "$work/token"
controller_port=$(free_port)
"$FERRY_BIN_DIR/ferry-controller" --listen "127.0.0.1:$controller_port" \
  --state "$work/state.db" --token-file "$work/token" >"$work/controller.log" 2>&1 &
pids+=($!)
"$FERRY_BIN_DIR/ferry-agent" --controller "127.0.0.1:$controller_port" \
  --token-file "$work/token" --slots 2 --name python-test-agent >"$work/agent.log" 2>&1 &
pids+=($!)

cat >"$work/client.py" <<'EOF'
"""Drives ferry-controller through stubs generated from the .proto files alone."""
import sys
import time

import grpc

sys.path.insert(0, sys.argv[1])
from ferry.v1 import ferry_pb2, ferry_pb2_grpc  # noqa: E402
from google.protobuf import descriptor_pb2  # noqa: E402
from health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from reflection.v1alpha import reflection_pb2, reflection_pb2_grpc  # noqa: E402

address, token, source_uri, target_uri, source_password = sys.argv[2:7]
CALL_TIMEOUT = 15


def check(condition, message):
    if not condition:
        print("FAIL: " + message, file=sys.stderr)
        sys.exit(1)


def no_password(message, what):
    check(source_password.encode() not in message.SerializeToString(),
          what + " carries the source password")
    check(source_password not in str(message), what + " shows the source password")


channel = grpc.insecure_channel(address)
grpc.channel_ready_future(channel).result(timeout=60)
auth = [("authorization", "Bearer " + token)]
controller = ferry_pb2_grpc.ControllerStub(channel)

# The health service, as any gRPC tool asks it.
health = health_pb2_grpc.HealthStub(channel).Check(
    health_pb2.HealthCheckRequest(service=""), metadata=auth, timeout=CALL_TIMEOUT)
check(health.status == health_pb2.HealthCheckResponse.SERVING,
      "health: %s" % health_pb2.HealthCheckResponse.ServingStatus.Name(health.status))

# Server reflection, as grpcurl asks it: the services, then the Controller's methods.
requests = [reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="ferry.v1.Controller")]
answers = list(reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
    iter(requests), metadata=auth, timeout=CALL_TIMEOUT))
check(len(answers) == 2, "reflection answered %d of 2 requests" % len(answers))
services = {s.name for s in answers[0].list_services_response.service}
for name in ("ferry.v1.Controller", "ferry.v1.AgentHub", "grpc.health.v1.Health"):
    check(name in services, "reflection does not list %s: %s" % (name, sorted(services)))
methods = set()
for blob in answers[1].file_descriptor_response.file_descriptor_proto:
    file = descriptor_pb2.FileDescriptorProto.FromString(blob)
    for service in file.service:
        if file.package + "." + service.name == "ferry.v1.Controller":
            methods = {m.name for m in service.method}
check({"SubmitJob", "GetJob", "WatchJob", "ListAgents"} <= methods,
      "reflection describes ferry.v1.Controller with %s" % sorted(methods))

# No token or a wrong one: UNAUTHENTICATED.
for metadata in ([], [("authorization", "Bearer wrong-token")]):
    try:
        controller.ListJobs(ferry_pb2.ListJobsRequest(), metadata=metadata, timeout=CALL_TIMEOUT)
        check(False, "ListJobs without the right token succeeded")
    except grpc.RpcError as error:
        check(error.code() == grpc.StatusCode.UNAUTHENTICATED,
              "ListJobs without the right token: %s" % error.code())

# Unknown ids: NOT_FOUND.
try:
    controller.GetJob(ferry_pb2.GetJobRequest(job_id="nonexistent-id"), metadata=auth,
                      timeout=CALL_TIMEOUT)
    check(False, "GetJob of an unknown id succeeded")
except grpc.RpcError as error:
    check(error.code() == grpc.StatusCode.NOT_FOUND, "GetJob of an unknown id: %s" % error.code())

# The agent registers.
deadline = time.time() + 60
while True:
    agents = controller.ListAgents(ferry_pb2.ListAgentsRequest(), metadata=auth,
                                   timeout=CALL_TIMEOUT).agents
    if len(agents) == 1:
        break
    check(time.time() < deadline, "the agent did not register")
    time.sleep(0.1)
check(agents[0].name == "python-test-agent" and agents[0].slots == 2, str(agents[0]))

spec = ferry_pb2.JobSpec(
    source=ferry_pb2.EndpointSpec(uri=source_uri, password=source_password),
    target=ferry_pb2.EndpointSpec(uri=target_uri),
    batch_keys=500,
    rate_limit=3000,  # About 2 s: the watch sees the job running.
    shards=2)
job_id = controller.SubmitJob(ferry_pb2.SubmitJobRequest(spec=spec), metadata=auth,
                              timeout=CALL_TIMEOUT).job_id
check(job_id != "", "SubmitJob returned no id")

updates = []
copied = []
for job in controller.WatchJob(ferry_pb2.WatchJobRequest(job_id=job_id, interval_ms=200),
                               metadata=auth, timeout=300):
    no_password(job, "a WatchJob update")
    check(job.id == job_id, "WatchJob sent job %r" % job.id)
    updates.append(job.state)
    copied.append(job.progress.counters.copied)
check(updates, "WatchJob sent nothing")
check(updates[-1] == ferry_pb2.JOB_STATE_DONE,
      "the watch ended in %s" % ferry_pb2.JobState.Name(updates[-1]))
check(ferry_pb2.JOB_STATE_RUNNING in updates, "the watch never saw the job running")
check(copied == sorted(copied) and len(set(copied)) >= 3,
      "progress did not stream: copied went %s" % copied)

job = controller.GetJob(ferry_pb2.GetJobRequest(job_id=job_id, include_shards=True),
                        metadata=auth, timeout=CALL_TIMEOUT)
no_password(job, "GetJob")
check(job.state == ferry_pb2.JOB_STATE_DONE, "GetJob: %s" % ferry_pb2.JobState.Name(job.state))
check(job.spec.source.uri == source_uri, "stored source uri %r" % job.spec.source.uri)
check(job.spec.source.password == "", "GetJob returned the source password field")
check(job.progress.estimated_keys == 6900, "estimated_keys %d" % job.progress.estimated_keys)
check(job.progress.counters.copied >= 6900, "copied %d" % job.progress.counters.copied)
check(job.progress.counters.failed == 0, "failed %d" % job.progress.counters.failed)
check(job.progress.shards_total == 4 and job.progress.shards_done == 4,
      "shards %d/%d" % (job.progress.shards_done, job.progress.shards_total))
check(len(job.shards) == 4, "%d shards returned" % len(job.shards))
check(all(s.state == ferry_pb2.SHARD_STATE_DONE for s in job.shards), "a shard is not done")
check(sorted({s.shard.source_db for s in job.shards}) == [0, 3], "shards of dbs %s" %
      sorted({s.shard.source_db for s in job.shards}))
check(job.HasField("create_time") and job.HasField("update_time"), "no timestamps")

jobs = controller.ListJobs(ferry_pb2.ListJobsRequest(), metadata=auth,
                           timeout=CALL_TIMEOUT).jobs
check([j.id for j in jobs] == [job_id], "ListJobs: %s" % [j.id for j in jobs])
for j in jobs:
    no_password(j, "ListJobs")
print("python client: job %s done after %d updates" % (job_id, len(updates)))
EOF

"$PYTHON" "$work/client.py" "$gen" "127.0.0.1:$controller_port" "$token" \
  "redis://127.0.0.1:$source_port" "redis://127.0.0.1:$target_port" "$source_password" ||
  fail "the Python client failed"

for db in 0 3; do
  want=$(src_cli -n "$db" DBSIZE)
  got=$(dst_cli -n "$db" DBSIZE)
  [[ "$got" == "$want" ]] || fail "target db $db has $got keys, the source $want"
done
# A sample of values and TTLs made it across.
[[ "$(dst_cli -n 0 GET py:0:1234:s)" == "value 1234" ]] || fail "py:0:1234:s differs"
[[ "$(dst_cli -n 3 LRANGE py:3:7:l 0 -1 | tr '\n' ' ')" == "7 8 " ]] || fail "py:3:7:l differs"
ttl=$(dst_cli -n 0 PTTL py:0:10:s)
((ttl > 0 && ttl <= 300000)) || fail "py:0:10:s has PTTL $ttl"

for log in controller agent; do
  if grep -qF -- "$source_password" "$work/$log.log"; then fail "$log log: the password"; fi
  if grep -qF -- "$token" "$work/$log.log"; then fail "$log log: the token"; fi
done
echo "PASS"
