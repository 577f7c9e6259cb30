#!/usr/bin/env bash
# Cluster benchmark: ferry migrate from a 3-primary Redis Cluster into another 3-primary cluster,
# next to standalone -> standalone with the same data, in the same run.
#
#   bench/cluster.sh [--keys N]    (default 1,000,000 random 100-byte strings)
#
# Uses build/bin/ferry. Starts 8 redis-servers on free loopback ports (two standalone, two
# clusters of three primaries without replicas) and stops them on exit.
set -euo pipefail
shopt -s inherit_errexit

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
FERRY=${FERRY_BUILD_DIR:-$ROOT/build}/bin/ferry
KEYS=1000000
if [[ "${1:-}" == "--keys" ]]; then KEYS=${2:?--keys needs a number}; fi
[[ "$KEYS" =~ ^[1-9][0-9]*$ ]] || bench_die "--keys must be a positive integer"
[[ -x "$FERRY" ]] || bench_die "missing $FERRY (make build)"

bench_init_tmp
trap bench_cleanup EXIT

# start_cluster_node PORT: a cluster-enabled, non-persistent redis-server.
start_cluster_node() {
  local port=$1 dir="$BENCH_TMP/redis-$1"
  mkdir -p "$dir"
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
    --cluster-enabled yes --cluster-config-file "$dir/nodes.conf" --dir "$dir" \
    --logfile "$dir/redis.log" >/dev/null 2>&1 &
  BENCH_PIDS+=($!)
  local i
  for ((i = 0; i < 500; i++)); do
    [[ "$(redis-cli -p "$port" ping 2>/dev/null)" == PONG ]] && return 0
    sleep 0.01
  done
  bench_die "cluster node on port $port did not answer PING"
}

# make_cluster: starts three nodes (ports whose +10000 bus port is free), joins them, and sets
# CLUSTER_PORT to the first one. (Not run in $(...): the nodes must stay in BENCH_PIDS.)
make_cluster() {
  local ports=() port
  while ((${#ports[@]} < 3)); do
    port=$(free_port)
    ((port < 55535)) || continue
    ports+=("$port")
  done
  for port in "${ports[@]}"; do start_cluster_node "$port"; done
  redis-cli --cluster create "${ports[@]/#/127.0.0.1:}" --cluster-replicas 0 --cluster-yes \
    >"$BENCH_TMP/create-${ports[0]}.log" 2>&1 || bench_die "redis-cli --cluster create failed"
  local i
  for ((i = 0; i < 1000; i++)); do
    local ok=1
    for port in "${ports[@]}"; do
      redis-cli -p "$port" cluster info | grep -q 'cluster_state:ok' || ok=0
    done
    ((ok)) && break
    sleep 0.05
  done
  CLUSTER_PORT=${ports[0]}
}

cluster_keys() {
  local total=0 port
  for port in $(redis-cli -p "$1" cluster nodes | awk '/master/ { split($2, a, "[:@]"); print a[2] }'); do
    total=$((total + $(redis-cli -p "$port" dbsize)))
  done
  echo "$total"
}

# timed_migrate FROM TO: wall seconds of one ferry migrate.
timed_migrate() {
  local start end
  start=$(now)
  "$FERRY" migrate --from "redis://127.0.0.1:$1" --to "redis://127.0.0.1:$2" --progress none \
    >"$BENCH_TMP/migrate.out" 2>&1 || { cat "$BENCH_TMP/migrate.out" >&2; bench_die "ferry migrate failed"; }
  end=$(now)
  elapsed "$start" "$end"
}

echo "== starting servers" >&2
src=$(free_port); start_redis "$src"
dst=$(free_port); start_redis "$dst"
make_cluster
csrc=$CLUSTER_PORT
make_cluster
cdst=$CLUSTER_PORT

echo "== loading $KEYS keys" >&2
"$FERRY" gen --to "redis://127.0.0.1:$src" --keys "$KEYS" --types string --value-size 100 --seed 1 2>/dev/null
"$FERRY" migrate --from "redis://127.0.0.1:$src" --to "redis://127.0.0.1:$csrc" --progress none >/dev/null
[[ "$(cluster_keys "$csrc")" == "$KEYS" ]] || bench_die "source cluster holds $(cluster_keys "$csrc") keys"

echo "== standalone -> standalone" >&2
s=$(timed_migrate "$src" "$dst")
[[ "$(redis-cli -p "$dst" dbsize)" == "$KEYS" ]] || bench_die "standalone target incomplete"
echo "== cluster -> cluster" >&2
c=$(timed_migrate "$csrc" "$cdst")
[[ "$(cluster_keys "$cdst")" == "$KEYS" ]] || bench_die "cluster target holds $(cluster_keys "$cdst") keys"

echo "| copy | keys | seconds | keys/s |"
echo "|---|---:|---:|---:|"
awk -v n="$KEYS" -v s="$s" 'BEGIN { printf "| standalone -> standalone | %d | %.2f | %.0f |\n", n, s, n / s }'
awk -v n="$KEYS" -v s="$c" 'BEGIN { printf "| 3-primary cluster -> 3-primary cluster | %d | %.2f | %.0f |\n", n, s, n / s }'
