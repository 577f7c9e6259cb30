#!/usr/bin/env bash
# The fleet-scale simulation: one real ferry-controller under N simulated agents
# (ferry-fleet-sim), at N = 100 and N = 1,000, 8 slots each, over two jobs of 65,536 and 32,768
# shards (98,304 in all) planned over a real source. See bench/README.md.
#
#   bench/fleet_sim.sh [--agents "100 1000"] [--slots 8] [--duration S] [--lease-seconds S]
#
# Each run starts a fresh state file, plans both jobs, lets the agents fill their slots, measures
# a window of S seconds (default 30), then kills the controller (SIGKILL) and restarts it on the
# same file. Prints a Markdown table and appends it to bench/results/fleet.md.
set -euo pipefail
shopt -s inherit_errexit

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly ROOT
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

usage() { sed -n '2,10p' "$0"; }

AGENTS="100 1000"
SLOTS=8
DURATION=30
LEASE_SECONDS=5
while (($# > 0)); do
  case "$1" in
    --agents) AGENTS=${2:?--agents needs a list}; shift 2 ;;
    --slots) SLOTS=${2:?--slots needs a number}; shift 2 ;;
    --duration) DURATION=${2:?--duration needs seconds}; shift 2 ;;
    --lease-seconds) LEASE_SECONDS=${2:?--lease-seconds needs seconds}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) bench_die "unknown argument: $1 (see bench/fleet_sim.sh --help)" ;;
  esac
done

BIN=${FERRY_BIN_DIR:-$ROOT/build/bin}
SIM=$BIN/ferry-fleet-sim
CONTROLLER=$BIN/ferry-controller
for tool in "$SIM" "$CONTROLLER"; do
  [[ -x "$tool" ]] || bench_die "$tool is missing: run make build first"
done
command -v redis-server >/dev/null || bench_die "redis-server is missing: run make deps"

bench_init_tmp
trap bench_cleanup EXIT
log() { echo "[fleet] $*" >&2; }

# The source: 200,000 small keys in each of db 0 and db 1; the target: empty.
SRC_PORT=$(free_port)
start_redis "$SRC_PORT"
DST_PORT=$(free_port)
start_redis "$DST_PORT"
for db in 0 1; do
  seq 1 200000 | awk -v db="$db" 'BEGIN { printf "*2\r\n$6\r\nSELECT\r\n$1\r\n%d\r\n", db }
    { k = "key:" $1; printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$3\r\nval\r\n", length(k), k }' |
    redis-cli -p "$SRC_PORT" --pipe >/dev/null
done
log "source: $(redis-cli -p "$SRC_PORT" info keyspace | grep '^db' | tr '\r\n' '  ')"

run_sim() {
  local agents=$1 out="$BENCH_TMP/sim-$1.out"
  log "$agents agents x $SLOTS slots, ${DURATION}s window, ${LEASE_SECONDS}s leases"
  "$SIM" --controller-bin "$CONTROLLER" --state "$BENCH_TMP/state-$agents.db" \
    --port "$(free_port)" --source "redis://127.0.0.1:$SRC_PORT" \
    --target "redis://127.0.0.1:$DST_PORT" --jobs 0:65536,1:32768 --agents "$agents" \
    --slots "$SLOTS" --duration "$DURATION" --lease-seconds "$LEASE_SECONDS" \
    --controller-log "$BENCH_TMP/controller-$agents.log" | tee "$out" >&2 ||
    bench_die "ferry-fleet-sim failed (controller log: $(tail -5 "$BENCH_TMP/controller-$agents.log"))"
  rm -f "$BENCH_TMP/state-$agents.db"*
}

# value FILE KEY: the figure the simulation printed under RESULT.
value() { awk -v k="$2" '$1 == k { print $2 }' "$1"; }

for n in $AGENTS; do run_sim "$n"; done

LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
{
  echo "## Fleet simulation, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load $LOAD"
  echo
  echo "Two jobs, 98,304 shards; ${LEASE_SECONDS}s leases, a checkpoint per lease per second;"
  echo "a ${DURATION}s window once every slot holds a lease. Recovery: SIGKILL, restart on the"
  echo "same state file, until every slot holds a lease again."
  echo
  echo "| agents x slots | fill s | grants/s | acks/s | ack p50 / p99 ms | grant p50 / p99 ms |" \
    "CPU % | RSS / peak MB | state MB | disk MB/s | recovery s |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  for n in $AGENTS; do
    f="$BENCH_TMP/sim-$n.out"
    printf '| %s x %s | %s | %s | %s | %s / %s | %s / %s | %s | %s / %s | %s | %s | %s |\n' \
      "$n" "$SLOTS" "$(value "$f" fill_s)" "$(value "$f" grants_per_s)" \
      "$(value "$f" acks_per_s)" "$(value "$f" ack_p50_ms)" "$(value "$f" ack_p99_ms)" \
      "$(value "$f" grant_p50_ms)" "$(value "$f" grant_p99_ms)" "$(value "$f" cpu_pct)" \
      "$(value "$f" rss_mb)" "$(value "$f" hwm_mb)" "$(value "$f" state_mb)" \
      "$(value "$f" disk_write_mb_per_s)" "$(value "$f" recovery_s)"
  done
  echo
} | tee -a "$ROOT/bench/results/fleet.md"
