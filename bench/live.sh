#!/usr/bin/env bash
# The live sync benchmark: how fast the source may be written while ferry keeps the target
# within a second of it, and what a dirty set of a million keys costs. See bench/README.md.
#
#   bench/live.sh [--seconds S] [--rates "R1 R2 ..."] [--dirty-keys N]
#
# 1. Follow: a source with 100,000 keys, `ferry migrate --live --listen`; once the job is LIVE,
#    ferry-live-bench writes small strings at each rate for S seconds (default 15) while a probe
#    key carries the time of day from source to target: the lag of each probe value as the
#    target shows it, p50 / p99 / max. The highest rate whose p99 stays under 1 s is reported.
# 2. Dirty set: a snapshot slowed by --rate-limit while ferry-live-bench writes N (default
#    1,000,000) distinct new keys: every one is dirty until the snapshot ends; ferry's peak RSS.
# Each run ends with `ferry cutover` and a key count check. Prints a Markdown report and appends
# it to bench/results/live.md. Exits non-zero if a step fails.
set -euo pipefail
shopt -s inherit_errexit

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly ROOT
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

usage() { sed -n '2,14p' "$0"; }

SECONDS_PER_RATE=15
RATES="5000 10000 20000 30000 40000"
DIRTY_KEYS=1000000
while (($# > 0)); do
  case "$1" in
    --seconds) SECONDS_PER_RATE=${2:?--seconds needs a number}; shift 2 ;;
    --rates) RATES=${2:?--rates needs a list}; shift 2 ;;
    --dirty-keys) DIRTY_KEYS=${2:?--dirty-keys needs a number}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) bench_die "unknown argument: $1 (see bench/live.sh --help)" ;;
  esac
done

BIN=${FERRY_BIN_DIR:-$ROOT/build/bin}
FERRY=$BIN/ferry
LIVE_BENCH=$BIN/ferry-live-bench
for tool in "$FERRY" "$LIVE_BENCH"; do
  [[ -x "$tool" ]] || bench_die "$tool is missing: run make build first"
done
command -v redis-server >/dev/null || bench_die "redis-server is missing: run make deps"

bench_init_tmp
trap bench_cleanup EXIT
log() { echo "[live] $*" >&2; }

MIGRATE_PID=""
ADDRESS=""
JOB=""

# start_live SRC_PORT DST_PORT [FERRY_ARGS...]: ferry migrate --live --listen in the background;
# sets MIGRATE_PID, ADDRESS and JOB once the job is listed.
start_live() {
  local src=$1 dst=$2
  shift 2
  ADDRESS="127.0.0.1:$(free_port)"
  "$FERRY" migrate --live --listen "$ADDRESS" --from "redis://127.0.0.1:$src" \
    --to "redis://127.0.0.1:$dst" --progress log --state "$BENCH_TMP/state-$src.db" "$@" \
    >"$BENCH_TMP/migrate-$src.log" 2>&1 &
  MIGRATE_PID=$!
  BENCH_PIDS+=("$MIGRATE_PID")
  local i
  for ((i = 0; i < 600; i++)); do
    JOB=$("$FERRY" list --controller "$ADDRESS" --output json 2>/dev/null |
      grep -o '"id":"[^"]*"' | head -1 | cut -d'"' -f4 || true)
    [[ -n "$JOB" ]] && return 0
    kill -0 "$MIGRATE_PID" 2>/dev/null || bench_die "ferry migrate --live exited: $(tail -5 "$BENCH_TMP/migrate-$src.log")"
    sleep 0.1
  done
  bench_die "ferry migrate --live did not list its job"
}

# wait_state STATE: polls ferry status until the job is in STATE (JOB_STATE_...).
wait_state() {
  local i json
  for ((i = 0; i < 1200; i++)); do
    json=$("$FERRY" status "$JOB" --controller "$ADDRESS" --output json 2>/dev/null || true)
    if [[ "$json" == *"\"state\":\"$1\""* && ("$1" != JOB_STATE_LIVE || "$json" == *'],"in_sync":true'*) ]]; then
      return 0
    fi
    sleep 0.25
  done
  bench_die "job $JOB never reached $1: $json"
}

# cutover_and_check SRC DST: cuts over without a verification and checks the key counts.
cutover_and_check() {
  "$FERRY" cutover "$JOB" --controller "$ADDRESS" --verify-mode none >"$BENCH_TMP/cutover.log" 2>&1 ||
    bench_die "cutover failed: $(tail -5 "$BENCH_TMP/cutover.log")"
  wait "$MIGRATE_PID" || bench_die "ferry migrate --live exited with $?"
  local a b
  a=$(redis-cli -p "$1" dbsize)
  b=$(redis-cli -p "$2" dbsize)
  [[ "$a" == "$b" ]] || bench_die "after the cutover the source has $a keys, the target $b"
}

# ---- 1. Follow.
SRC=$(free_port)
DST=$(free_port)
start_redis "$SRC"
start_redis "$DST"
redis-cli -p "$SRC" config set notify-keyspace-events KA >/dev/null
"$LIVE_BENCH" dirty --source "redis://127.0.0.1:$SRC" --keys 100000 >/dev/null
log "follow: source with $(redis-cli -p "$SRC" dbsize) keys"
start_live "$SRC" "$DST"
wait_state JOB_STATE_LIVE
ROWS=()
BEST=0
for rate in $RATES; do
  log "follow: $rate writes/s for ${SECONDS_PER_RATE}s"
  out=$("$LIVE_BENCH" follow --source "redis://127.0.0.1:$SRC" --target "redis://127.0.0.1:$DST" \
    --rate "$rate" --seconds "$SECONDS_PER_RATE" --keys 100000)
  achieved=$(grep -o '"achieved":[0-9.]*' <<<"$out" | cut -d: -f2)
  p50=$(grep -o '"p50_ms":[-0-9.]*' <<<"$out" | cut -d: -f2)
  p99=$(grep -o '"p99_ms":[-0-9.]*' <<<"$out" | cut -d: -f2)
  max=$(grep -o '"max_ms":[-0-9.]*' <<<"$out" | cut -d: -f2)
  samples=$(grep -o '"samples":[0-9]*' <<<"$out" | cut -d: -f2)
  ROWS+=("| $rate | $achieved | $samples | $p50 | $p99 | $max |")
  if awk -v p="$p99" 'BEGIN { exit !(p >= 0 && p < 1000) }'; then BEST=$achieved; fi
  wait_state JOB_STATE_LIVE  # Caught up again before the next rate.
done
RSS_FOLLOW=$(awk '/VmHWM/ { print int($2 / 1024) }' "/proc/$MIGRATE_PID/status")
cutover_and_check "$SRC" "$DST"

# ---- 2. Dirty set.
SRC2=$(free_port)
DST2=$(free_port)
start_redis "$SRC2"
start_redis "$DST2"
redis-cli -p "$SRC2" config set notify-keyspace-events KA >/dev/null
"$LIVE_BENCH" dirty --source "redis://127.0.0.1:$SRC2" --keys 300000 >/dev/null
log "dirty set: $DIRTY_KEYS distinct keys written during a slowed snapshot"
start_live "$SRC2" "$DST2" --rate-limit 10000
sleep 2
dirty_out=$("$LIVE_BENCH" dirty --source "redis://127.0.0.1:$SRC2" --keys "$DIRTY_KEYS")
DIRTY_PEAK=0
for ((i = 0; i < 2400; i++)); do
  json=$("$FERRY" status "$JOB" --controller "$ADDRESS" --output json 2>/dev/null || true)
  dirty=$(grep -o '"dirty_keys":"[0-9]*"' <<<"$json" | head -1 | cut -d'"' -f4 || true)
  [[ -n "$dirty" ]] && ((dirty > DIRTY_PEAK)) && DIRTY_PEAK=$dirty
  if [[ "$json" == *'"state":"JOB_STATE_LIVE"'* && "$json" == *'],"in_sync":true'* ]]; then break; fi
  sleep 0.25
done
RSS_DIRTY=$(awk '/VmHWM/ { print int($2 / 1024) }' "/proc/$MIGRATE_PID/status")
cutover_and_check "$SRC2" "$DST2"

REPORT=$(
  cat <<EOF
## Live sync, $(date -u +%Y-%m-%d) ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown))

Writes of small strings (SET of 100,000 keys) on the source while \`ferry migrate --live\` follows;
lag = how long a value written on the source took to show on the target (probe every 10 ms).

| asked writes/s | achieved | lag samples | p50 ms | p99 ms | max ms |
|---|---|---|---|---|---|
$(printf '%s\n' "${ROWS[@]}")

Highest achieved write rate with p99 lag under 1 s: **$BEST writes/s**. Peak RSS of the
\`ferry migrate\` process (controller and agent in one): $RSS_FOLLOW MB.

Dirty set: $DIRTY_KEYS distinct keys written during a snapshot slowed to 10,000 keys/s
($(grep -o '"seconds":[0-9.]*' <<<"$dirty_out" | cut -d: -f2) s of MSETs): largest dirty set reported
$DIRTY_PEAK keys; peak RSS $RSS_DIRTY MB.
EOF
)
echo "$REPORT"
mkdir -p "$ROOT/bench/results"
printf '%s\n\n' "$REPORT" >>"$ROOT/bench/results/live.md"
