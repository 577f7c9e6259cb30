# shellcheck shell=bash
# Shell helpers shared by bench/run.sh and bench/delay_proxy_test.sh. Source it; it defines
# functions only. Every process started here is recorded in BENCH_PIDS so that the caller's EXIT
# trap can stop exactly those processes with `bench_cleanup`.

BENCH_PIDS=()
BENCH_TMP=""

bench_die() {
  echo "FAIL: $*" >&2
  exit 1
}

# Creates the scratch directory (removed by bench_cleanup) and prints nothing.
bench_init_tmp() {
  BENCH_TMP=$(mktemp -d "${TMPDIR:-/tmp}/ferry-bench.XXXXXX")
}

# Kills the processes this script started, by pid, and removes the scratch directory.
bench_cleanup() {
  local pid
  for pid in "${BENCH_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${BENCH_PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  BENCH_PIDS=()
  if [[ -n "$BENCH_TMP" ]]; then rm -rf "$BENCH_TMP"; fi
}

# Prints a loopback TCP port that was free a moment ago (the kernel's pick for port 0).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Seconds since the epoch with microseconds, for wall-clock timing.
now() { echo "$EPOCHREALTIME"; }

# elapsed START END: END - START in seconds.
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", b - a }'; }

# start_redis PORT: starts an empty, non-persistent redis-server and waits until it answers.
start_redis() {
  local port=$1 dir="$BENCH_TMP/redis-$1"
  mkdir -p "$dir"
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
    --dir "$dir" --logfile "$dir/redis.log" &
  BENCH_PIDS+=($!)
  local i
  for ((i = 0; i < 500; i++)); do
    if [[ "$(redis-cli -p "$port" ping 2>/dev/null)" == PONG ]]; then return 0; fi
    kill -0 "${BENCH_PIDS[-1]}" 2>/dev/null || bench_die "redis-server on port $port exited"
    sleep 0.01
  done
  bench_die "redis-server on port $port did not answer PING"
}

# start_proxy PROXY_BIN UPSTREAM_PORT DELAY_US: starts a ferry-delay-proxy on a free port in front
# of 127.0.0.1:UPSTREAM_PORT and sets PROXY_PORT to its port once it is listening.
start_proxy() {
  local bin=$1 upstream=$2 delay=$3
  local out="$BENCH_TMP/proxy-$upstream-$delay-$RANDOM.out"
  "$bin" --listen 0 --upstream "127.0.0.1:$upstream" --delay-us "$delay" >"$out" &
  BENCH_PIDS+=($!)
  local i
  for ((i = 0; i < 500; i++)); do
    if grep -q '^listening on ' "$out"; then
      # shellcheck disable=SC2034 # read by the caller
      PROXY_PORT=$(awk '/^listening on /{ print $3; exit }' "$out")
      return 0
    fi
    kill -0 "${BENCH_PIDS[-1]}" 2>/dev/null || bench_die "ferry-delay-proxy exited"
    sleep 0.01
  done
  bench_die "ferry-delay-proxy did not start listening"
}
