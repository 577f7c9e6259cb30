#!/usr/bin/env bash
# Integration test of ferry-delay-proxy (ctest label `integration`):
#   delay_proxy_test.sh PATH/TO/ferry-delay-proxy
# Puts the proxy at 2000 us one way (4 ms round trip) in front of a real redis-server and checks
# that round trips take >= 4 ms, that pipelined and concurrent traffic is not serialized by the
# delay, and that closing one side closes the other.
set -euo pipefail

readonly PROXY_BIN=${1:?usage: delay_proxy_test.sh PATH/TO/ferry-delay-proxy}
readonly DELAY_US=2000
readonly RTT_S=0.004
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v redis-server >/dev/null || bench_die "redis-server is not installed"
command -v redis-cli >/dev/null || bench_die "redis-cli is not installed"
[[ -x "$PROXY_BIN" ]] || bench_die "not executable: $PROXY_BIN"

trap bench_cleanup EXIT
bench_init_tmp
REDIS_PORT=$(free_port)
readonly REDIS_PORT
start_redis "$REDIS_PORT"
start_proxy "$PROXY_BIN" "$REDIS_PORT" "$DELAY_US"
readonly PORT=$PROXY_PORT

# at_least ACTUAL MIN: true when ACTUAL >= MIN (decimals).
at_least() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }'; }

test_round_trip_is_delayed() {
  local pings=20 start end took
  start=$(now)
  local replies
  replies=$(redis-cli -p "$PORT" -r "$pings" ping | grep -c '^PONG$')
  end=$(now)
  took=$(elapsed "$start" "$end")
  [[ "$replies" == "$pings" ]] || bench_die "round trip: $replies of $pings PONG replies"
  local min
  min=$(awk -v n="$pings" -v r="$RTT_S" 'BEGIN { print n * r }')
  at_least "$took" "$min" || bench_die "round trip: $pings pings took ${took}s < ${min}s"
  echo "ok: $pings sequential pings took ${took}s (>= ${min}s)"
}

test_pipeline_streams() {
  local sets=200000 file="$BENCH_TMP/sets.resp" start end took out
  awk -v n="$sets" 'BEGIN {
    for (i = 0; i < n; i++) {
      k = "key:" i; v = "value-" i
      printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(k), k, length(v), v
    }
  }' >"$file"
  redis-cli -p "$REDIS_PORT" flushall >/dev/null
  start=$(now)
  out=$(timeout 120 redis-cli -p "$PORT" --pipe <"$file") || bench_die "--pipe failed: $out"
  end=$(now)
  took=$(elapsed "$start" "$end")
  grep -q "errors: 0, replies: $sets" <<<"$out" || bench_die "--pipe: unexpected output: $out"
  local keys
  keys=$(redis-cli -p "$REDIS_PORT" dbsize)
  [[ "$keys" == "$sets" ]] || bench_die "--pipe: DBSIZE is $keys, want $sets"
  # One round trip per command would take 800 s; a streaming proxy costs one delay plus copying.
  at_least 20 "$took" || bench_die "--pipe of $sets SETs took ${took}s: the delay serializes"
  echo "ok: --pipe of $sets SETs through the proxy took ${took}s"
}

test_concurrent_clients() {
  local clients=100 incrs=20 start end took pids=() pid
  redis-cli -p "$REDIS_PORT" del counter >/dev/null
  start=$(now)
  for ((c = 0; c < clients; c++)); do
    redis-cli -p "$PORT" -r "$incrs" incr counter >/dev/null &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || bench_die "a concurrent client failed"; done
  end=$(now)
  took=$(elapsed "$start" "$end")
  local counter
  counter=$(redis-cli -p "$REDIS_PORT" get counter)
  [[ "$counter" == $((clients * incrs)) ]] || bench_die "concurrent: counter $counter"
  # Served one connection at a time, this would take clients * incrs * 4 ms = 8 s.
  at_least 4 "$took" || bench_die "concurrent: $clients clients took ${took}s: serialized"
  echo "ok: $clients concurrent clients x $incrs round trips took ${took}s"
}

# The number of client connections redis-server has, besides the one asking.
upstream_connections() {
  echo $(($(redis-cli -p "$REDIS_PORT" client list | wc -l) - 1))
}

test_close_propagates() {
  local i
  # A client that closes: the proxy must close its upstream connection too.
  for ((i = 0; i < 200; i++)); do
    [[ "$(upstream_connections)" == 0 ]] && break
    sleep 0.01
  done
  [[ "$(upstream_connections)" == 0 ]] ||
    bench_die "close: $(upstream_connections) upstream connections left after clients exited"
  # A server that closes: the client must see it. SUBSCRIBE blocks until the connection ends.
  redis-cli -p "$PORT" subscribe channel >/dev/null 2>&1 &
  local subscriber=$!
  BENCH_PIDS+=("$subscriber")
  for ((i = 0; i < 200; i++)); do
    [[ "$(upstream_connections)" == 1 ]] && break
    sleep 0.01
  done
  local killed
  killed=$(redis-cli -p "$REDIS_PORT" client kill type pubsub)
  [[ "$killed" == 1 ]] || bench_die "close: the subscriber never reached redis-server"
  for ((i = 0; i < 200; i++)); do
    kill -0 "$subscriber" 2>/dev/null || break
    sleep 0.01
  done
  if kill -0 "$subscriber" 2>/dev/null; then bench_die "close: client kept its connection"; fi
  echo "ok: closing either side closes the other"
}

test_round_trip_is_delayed
test_pipeline_streams
test_concurrent_clients
test_close_propagates
echo "PASS"
