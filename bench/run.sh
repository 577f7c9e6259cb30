#!/usr/bin/env bash
# The ferry benchmark. See bench/README.md.
#
#   bench/run.sh [--keys N]        (default 1,000,000 keys per dataset)
#
# Uses the binaries in build/bin (runs `make build` when they are missing; FERRY_BUILD_DIR picks
# another build directory). Starts its own source and target redis-servers on free loopback ports,
# prints a Markdown report and writes it to bench/results/latest.md. Exits non-zero if any step
# fails, including a target that does not end up with exactly N keys.
set -euo pipefail
shopt -s inherit_errexit

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly ROOT
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

KEYS=1000000
while (($# > 0)); do
  case "$1" in
    --keys)
      KEYS=${2:?--keys needs a number}
      shift 2
      ;;
    -h | --help)
      sed -n '2,9p' "$0"
      exit 0
      ;;
    *) bench_die "unknown argument: $1 (usage: bench/run.sh [--keys N])" ;;
  esac
done
[[ "$KEYS" =~ ^[1-9][0-9]*$ ]] || bench_die "--keys must be a positive integer, got: $KEYS"
readonly KEYS

readonly BUILD_DIR=${FERRY_BUILD_DIR:-$ROOT/build}
readonly FERRY=$BUILD_DIR/bin/ferry
readonly PROXY=$BUILD_DIR/bin/ferry-delay-proxy
readonly RESTORE_DUMP=$BUILD_DIR/bin/ferry-restore-dump
# One way: 1, 10 and 40 ms round trips (another zone, another region, another continent).
readonly LATENCY_DELAYS_US="500 5000 20000"
# Every timed step runs RUNS times and reports its median: on a small shared machine one run can
# be 30% off either way.
readonly RUNS=${BENCH_RUNS:-3}
readonly RESULTS=$ROOT/bench/results/latest.md
readonly SAMPLE_KEYS=500 # keys of the mixed copies compared value by value

ensure_tools() {
  if [[ ! -x "$FERRY" || ! -x "$PROXY" || ! -x "$RESTORE_DUMP" ]]; then
    [[ -z "${FERRY_BUILD_DIR:-}" ]] || bench_die "missing $FERRY, $PROXY or $RESTORE_DUMP"
    echo "== build/bin is incomplete: running make build" >&2
    make -C "$ROOT" build >&2 || bench_die "make build failed"
  fi
  [[ -x "$FERRY" ]] || bench_die "missing $FERRY"
  [[ -x "$PROXY" ]] || bench_die "missing $PROXY"
  [[ -x "$RESTORE_DUMP" ]] || bench_die "missing $RESTORE_DUMP"
  local tool
  for tool in redis-server redis-cli python3 awk; do
    command -v "$tool" >/dev/null || bench_die "$tool is not installed"
  done
  [[ -x /usr/bin/time ]] || bench_die "/usr/bin/time (GNU time, Debian package 'time') is missing"
}

log() { echo "== $*" >&2; }

# rate COUNT SECONDS: COUNT / SECONDS, rounded.
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }'; }

# ratio A B: A / B with two decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }

dbsize() { redis-cli -p "$1" dbsize; }

flushall() { redis-cli -p "$1" flushall >/dev/null; }

# expect_keys PORT WHAT: fails unless the server on PORT holds exactly KEYS keys.
expect_keys() {
  local actual
  actual=$(dbsize "$1")
  [[ "$actual" == "$KEYS" ]] || bench_die "$2: DBSIZE is $actual, want $KEYS"
}

# generate DATASET FILE: writes the dataset's RESP commands (for redis-cli --pipe) to FILE.
generate() {
  local -a types
  case "$1" in
    strings) types=(--types string --value-size 100) ;;
    mixed) types=(--types mixed --ttl-fraction 0.25) ;;
  esac
  "$FERRY" gen --resp --keys "$KEYS" "${types[@]}" --seed 1 >"$2" ||
    bench_die "ferry gen failed for dataset $1"
}

# pipe_load PORT FILE: empties the server, loads FILE with redis-cli --pipe, checks that it holds
# KEYS keys and prints the wall-clock seconds the load took.
pipe_load() {
  local port=$1 file=$2 start end out
  flushall "$port"
  start=$(now)
  out=$(redis-cli -p "$port" --pipe <"$file" 2>&1) || bench_die "redis-cli --pipe failed: $out"
  end=$(now)
  grep -q '^errors: 0,' <<<"$out" || bench_die "redis-cli --pipe reported errors: $out"
  expect_keys "$port" "redis-cli --pipe into port $port"
  elapsed "$start" "$end"
}

# pipe_seconds PORT FILE: prints the wall-clock seconds redis-cli --pipe takes to send FILE to
# the server on PORT and read every reply; fails on any error reply. Nothing is emptied first.
pipe_seconds() {
  local start end out
  start=$(now)
  out=$(redis-cli -p "$1" --pipe <"$2" 2>&1) || bench_die "redis-cli --pipe failed: $out"
  end=$(now)
  grep -q '^errors: 0,' <<<"$out" || bench_die "redis-cli --pipe reported errors: $out"
  elapsed "$start" "$end"
}

# read_commands PORT FILE: writes to FILE, as RESP, a PTTL and a DUMP of every key of the server
# on PORT: the least the source answers per key for a copy by DUMP (ferry also SCANs and sizes).
read_commands() {
  scan_keys "$1" | LC_ALL=C awk '{
    printf "*2\r\n$4\r\nPTTL\r\n$%d\r\n%s\r\n*2\r\n$4\r\nDUMP\r\n$%d\r\n%s\r\n",
      length($0), $0, length($0), $0 }' >"$2"
}

# scan_keys PORT: prints every key name, one a line, with SCAN ... COUNT 1000. redis-cli learned
# --count in 7.2; for an older redis-cli the same loop runs in Python over one connection.
scan_keys() {
  local help
  help=$(redis-cli --help 2>&1 || true)
  if [[ "$help" == *"--count"* ]]; then
    redis-cli -p "$1" --scan --count 1000
    return
  fi
  python3 - "$1" <<'PY'
import socket, sys
conn = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
reader, out, cursor = conn.makefile("rb", buffering=1 << 20), sys.stdout.buffer, b"0"
while True:
    conn.sendall(b"*4\r\n$4\r\nSCAN\r\n$%d\r\n%s\r\n$5\r\nCOUNT\r\n$4\r\n1000\r\n"
                 % (len(cursor), cursor))
    assert reader.readline() == b"*2\r\n"
    reader.readline()
    cursor = reader.readline()[:-2]
    for _ in range(int(reader.readline()[1:-2])):
        size = int(reader.readline()[1:-2])
        out.write(reader.read(size + 2)[:-2] + b"\n")
    if cursor == b"0":
        break
PY
}

# scan_seconds PORT: prints the seconds a SCAN of every key takes (keys streamed to wc).
scan_seconds() {
  local start end count
  start=$(now)
  count=$(scan_keys "$1" | wc -l)
  end=$(now)
  ((count >= KEYS)) || bench_die "SCAN returned $count keys, want >= $KEYS"
  elapsed "$start" "$end"
}

# migrate FROM_PORT TO_PORT LABEL [FERRY_ARGS...]: empties the target (always the real one,
# DST_PORT), runs ferry migrate with FERRY_ARGS under GNU time and checks the target. Sets M_WALL
# (s), M_RSS_MB, M_CPU (user + sys s) and M_MB_S.
migrate() {
  local from=$1 to=$2 label=$3 dir="$BENCH_TMP/migrate-$3" start end
  local -a extra=("${@:4}")
  mkdir -p "$dir"
  flushall "$DST_PORT"
  start=$(now)
  if ! /usr/bin/time -f '%e %M %U %S' -o "$dir/time" "$FERRY" migrate \
    --from "redis://127.0.0.1:$from" --to "redis://127.0.0.1:$to" \
    --progress none --output json "${extra[@]}" >"$dir/summary.json" 2>"$dir/stderr"; then
    tail -n 20 "$dir/stderr" >&2
    bench_die "ferry migrate ($label) failed"
  fi
  end=$(now)
  expect_keys "$DST_PORT" "target after ferry migrate ($label)"
  M_WALL=$(elapsed "$start" "$end")
  # GNU time's last line is the format; a line before it may report a signal.
  local rss_kb user sys
  read -r _ rss_kb user sys < <(tail -n 1 "$dir/time")
  M_RSS_MB=$(awk -v k="$rss_kb" 'BEGIN { printf "%.1f", k / 1024 }')
  M_CPU=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
  local bytes
  bytes=$(grep -oE '"bytes"[[:space:]]*:[[:space:]]*[0-9]+' "$dir/summary.json" |
    tail -n 1 | grep -oE '[0-9]+$' || true)
  if [[ -z "$bytes" ]]; then
    bytes=$(redis-cli -p "$DST_PORT" info memory | tr -d '\r' |
      awk -F: '$1 == "used_memory_dataset" { print $2 }')
    M_BYTES_FROM="target used_memory_dataset"
  else
    M_BYTES_FROM='"bytes" of the ferry summary'
  fi
  M_MB_S=$(awk -v b="$bytes" -v s="$M_WALL" 'BEGIN { printf "%.1f", (s > 0 ? b / 1e6 / s : 0) }')
}

# verify FROM_PORT TO_PORT MODE: runs ferry verify --mode MODE under GNU time; fails unless it
# finds the two equal (exit 0). Sets V_WALL (s), V_RSS_MB and V_CPU.
verify() {
  local dir="$BENCH_TMP/verify-$3" start end rss_kb user sys
  mkdir -p "$dir"
  start=$(now)
  if ! /usr/bin/time -f '%e %M %U %S' -o "$dir/time" "$FERRY" verify \
    --from "redis://127.0.0.1:$1" --to "redis://127.0.0.1:$2" --mode "$3" \
    --progress none --output json >"$dir/summary.json" 2>"$dir/stderr"; then
    tail -n 20 "$dir/stderr" "$dir/summary.json" >&2
    bench_die "ferry verify --mode $3 did not find the copy equal"
  fi
  end=$(now)
  V_WALL=$(elapsed "$start" "$end")
  read -r _ rss_kb user sys < <(tail -n 1 "$dir/time")
  V_RSS_MB=$(awk -v k="$rss_kb" 'BEGIN { printf "%.1f", k / 1024 }')
  V_CPU=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
}

# verify_median FROM TO MODE: verify RUNS times; the median V_WALL and V_CPU, the largest RSS.
verify_median() {
  local walls=() rss=() cpus=() i
  for ((i = 0; i < RUNS; i++)); do
    verify "$@"
    walls+=("$V_WALL"); rss+=("$V_RSS_MB"); cpus+=("$V_CPU")
  done
  V_WALL=$(median "${walls[@]}")
  V_CPU=$(median "${cpus[@]}")
  V_RSS_MB=$(printf '%s\n' "${rss[@]}" | sort -g | tail -n 1)
}

# bench_verify NAME COPY_RATE: while the target holds ferry's copy of dataset NAME, verifies it
# quick and full. Appends to VERIFY_ROWS.
bench_verify() {
  local mode row="| $1 | $2"
  for mode in quick full; do
    log "$1: ferry verify --mode $mode"
    verify_median "$SRC_PORT" "$DST_PORT" "$mode"
    local verify_rate
    verify_rate=$(rate "$KEYS" "$V_WALL")
    row+=" | $verify_rate | $(ratio "$verify_rate" "$2")x"
  done
  VERIFY_ROWS+=("$row | $V_RSS_MB | $V_CPU |")
}

# median A B C...: the middle value.
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# pipe_median PORT FILE: pipe_load RUNS times; prints the median seconds.
pipe_median() {
  local times=() i
  for ((i = 0; i < RUNS; i++)); do times+=("$(pipe_load "$1" "$2")"); done
  median "${times[@]}"
}

# migrate_median FROM TO LABEL [FERRY_ARGS...]: migrate RUNS times; M_WALL and M_MB_S of the
# median run, the largest M_RSS_MB and the median M_CPU.
migrate_median() {
  local walls=() rss=() cpus=() mbs=() i
  for ((i = 0; i < RUNS; i++)); do
    migrate "$@"
    walls+=("$M_WALL"); rss+=("$M_RSS_MB"); cpus+=("$M_CPU"); mbs+=("$M_MB_S")
  done
  M_WALL=$(median "${walls[@]}")
  M_CPU=$(median "${cpus[@]}")
  M_MB_S=$(median "${mbs[@]}")
  M_RSS_MB=$(printf '%s\n' "${rss[@]}" | sort -g | tail -n 1)
}

# bench_dataset NAME: appends the dataset's row to THROUGHPUT_ROWS; for strings, also runs the
# latency comparison while the source still holds the data.
bench_dataset() {
  local name=$1 file="$BENCH_TMP/$1.resp"
  log "$name: generating $KEYS keys"
  generate "$name" "$file"
  log "$name: write limit (redis-cli --pipe into the target)"
  local limit_s scan_s
  limit_s=$(pipe_median "$DST_PORT" "$file")
  log "$name: loading the source"
  pipe_load "$SRC_PORT" "$file" >/dev/null
  rm -f "$file"
  local restore_rate="" read_rate="" both_rate=""
  if [[ "$name" == mixed ]]; then
    # What ferry writes: RESTORE of each key's DUMP payload, not the commands that built it.
    log "$name: RESTORE write limit (redis-cli --pipe of the source's DUMPs into the target)"
    local restores="$BENCH_TMP/$name.restores.resp"
    "$RESTORE_DUMP" "redis://127.0.0.1:$SRC_PORT" >"$restores" 2>"$BENCH_TMP/restore-dump.err" ||
      bench_die "ferry-restore-dump failed: $(cat "$BENCH_TMP/restore-dump.err")"
    restore_rate=$(rate "$KEYS" "$(pipe_median "$DST_PORT" "$restores")")
    # The other end: what the source answers at least, alone and while the target restores
    # (both servers share this machine's CPUs with each other, as they do during the copy).
    log "$name: source read limit (redis-cli --pipe of PTTL and DUMP of every key)"
    local reads="$BENCH_TMP/$name.reads.resp" times=() i both_start pid
    read_commands "$SRC_PORT" "$reads"
    for ((i = 0; i < RUNS; i++)); do times+=("$(pipe_seconds "$SRC_PORT" "$reads")"); done
    read_rate=$(rate "$KEYS" "$(median "${times[@]}")")
    log "$name: both at once (the reads into the source while the RESTOREs go into the target)"
    times=()
    for ((i = 0; i < RUNS; i++)); do
      flushall "$DST_PORT"
      both_start=$(now)
      pipe_seconds "$SRC_PORT" "$reads" >/dev/null &
      pid=$!
      pipe_seconds "$DST_PORT" "$restores" >/dev/null
      wait "$pid" || bench_die "the source reads failed while the target restored"
      times+=("$(elapsed "$both_start" "$(now)")")
    done
    both_rate=$(rate "$KEYS" "$(median "${times[@]}")")
    rm -f "$restores" "$reads"
  fi
  flushall "$DST_PORT"
  log "$name: SCAN of the source"
  scan_s=$(scan_seconds "$SRC_PORT")
  log "$name: ferry migrate"
  migrate_median "$SRC_PORT" "$DST_PORT" "$name"
  local limit_rate ferry_rate row
  limit_rate=$(rate "$KEYS" "$limit_s")
  ferry_rate=$(rate "$KEYS" "$M_WALL")
  row="| $name | $limit_rate | $(rate "$KEYS" "$scan_s") | $ferry_rate"
  row+=" | $(ratio "$ferry_rate" "$limit_rate")x | $M_MB_S | $M_RSS_MB | $M_CPU |"
  THROUGHPUT_ROWS+=("$row")
  if [[ -n "$restore_rate" ]]; then
    RESTORE_NOTE="$name: the RESTORE write limit (\`redis-cli --pipe\` of \`RESTORE key ttl payload"
    RESTORE_NOTE+=" REPLACE\` of the source's DUMPs) is $restore_rate keys/s; ferry/RESTORE limit"
    RESTORE_NOTE+=" $(ratio "$ferry_rate" "$restore_rate")x (target: >= 0.7x). The source's read"
    RESTORE_NOTE+=" limit (\`PTTL\` and \`DUMP\` of every key, piped) is $read_rate keys/s; both"
    RESTORE_NOTE+=" pipes at once, the source reading while the target restores, $both_rate keys/s:"
    RESTORE_NOTE+=" no copy through this machine's CPUs goes faster. ferry/both"
    RESTORE_NOTE+=" $(ratio "$ferry_rate" "$both_rate")x."
  fi
  if "$FERRY" --help 2>&1 | grep -q '^  verify '; then
    bench_verify "$name" "$ferry_rate"
  else
    VERIFY_ROWS+=("| $name | $ferry_rate | not measured: this ferry has no verify | | | | | |")
  fi
  MB_NOTE+="${MB_NOTE:+; }$name: $M_BYTES_FROM"
  if [[ "$name" == strings ]]; then bench_latency "$ferry_rate"; fi
  if [[ "$name" == mixed ]]; then bench_copy_paths "$ferry_rate"; fi
}

# bench_copy_paths DUMP_RATE: while the source holds the mixed dataset (and the target the DUMP
# path's last copy), checks a sample of that copy, then runs the same copy type by type
# (--copy-path typed) and checks it the same way. Appends to COPY_PATH_ROWS.
bench_copy_paths() {
  local dump_row="| DUMP/RESTORE (default \`auto\`) | $1 | 1.00x | $M_MB_S | $M_RSS_MB | $M_CPU |"
  local typed_label="type by type (\`--copy-path typed\`)"
  log "mixed: checking $SAMPLE_KEYS sampled keys of the DUMP path's copy"
  sample_check "$SRC_PORT" "$DST_PORT" || bench_die "mixed: the DUMP path's copy differs"
  COPY_PATH_ROWS+=("$dump_row")
  if ! "$FERRY" migrate --help 2>&1 | grep -q -- '--copy-path'; then
    COPY_PATH_ROWS+=("| $typed_label | not measured: this ferry has no --copy-path | | | | |")
    return
  fi
  log "mixed: ferry migrate --copy-path typed"
  migrate_median "$SRC_PORT" "$DST_PORT" mixed-typed --copy-path typed
  log "mixed: checking $SAMPLE_KEYS sampled keys of the typed copy"
  sample_check "$SRC_PORT" "$DST_PORT" || bench_die "mixed: the typed copy differs"
  local typed_rate
  typed_rate=$(rate "$KEYS" "$M_WALL")
  COPY_PATH_ROWS+=("| $typed_label | $typed_rate | $(ratio "$typed_rate" "$1")x | $M_MB_S |\
 $M_RSS_MB | $M_CPU |")
}

# sample_check SRC_PORT DST_PORT: compares SAMPLE_KEYS random keys (RANDOMKEY on the source) with
# the target: type, whole value read back by type, stream consumer groups, and TTL (both none, or
# within 30 s of each other). Prints the first differences and fails if there is any.
sample_check() {
  python3 - "$1" "$2" "$SAMPLE_KEYS" <<'PY'
import socket, sys

class Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", int(port)))
        self.rd = self.sock.makefile("rb", buffering=1 << 20)
    def read(self):
        line = self.rd.readline()
        kind, rest = line[:1], line[1:-2]
        if kind in (b"+", b"-"):
            return kind + rest
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.rd.read(n + 2)[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        sys.exit("unexpected reply: %r" % line[:80])
    def call(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))
        return self.read()

def pairs(flat): return sorted(zip(flat[0::2], flat[1::2]))

READ = {
    b"+string": lambda c, k: c.call("GET", k),
    b"+hash": lambda c, k: pairs(c.call("HGETALL", k)),
    b"+list": lambda c, k: c.call("LRANGE", k, 0, -1),
    b"+set": lambda c, k: sorted(c.call("SMEMBERS", k)),
    b"+zset": lambda c, k: c.call("ZRANGE", k, 0, -1, "WITHSCORES"),
    b"+stream": lambda c, k: (c.call("XRANGE", k, "-", "+"), groups(c, k)),
}

def groups(c, key):
    """A stream's consumer groups: name, last delivered ID and pending count of each."""
    out = []
    for g in c.call("XINFO", "GROUPS", key):
        info = dict(zip(g[0::2], g[1::2]))
        out.append((info[b"name"], info[b"last-delivered-id"], info[b"pending"]))
    return sorted(out)

src, dst = Conn(sys.argv[1]), Conn(sys.argv[2])
diffs, n = [], int(sys.argv[3])
for _ in range(n):
    key = src.call("RANDOMKEY")
    kind, other = src.call("TYPE", key), dst.call("TYPE", key)
    if kind != other:
        diffs.append("%r: type %s on the source, %s on the target" % (key, kind, other))
        continue
    if READ[kind](src, key) != READ[kind](dst, key):
        diffs.append("%r (%s): values differ" % (key, kind.decode()))
    s, d = src.call("PTTL", key), dst.call("PTTL", key)
    if ((s < 0 or d < 0) and s != d) or abs(s - d) > 30000:
        diffs.append("%r: PTTL %d on the source, %d on the target" % (key, s, d))
for line in diffs[:5]:
    print("  " + line, file=sys.stderr)
if diffs:
    sys.exit("%d of %d sampled keys differ" % (len(diffs), n))
PY
}

# bench_latency DIRECT_RATE: ferry through a proxy pair at 0 us and at each of LATENCY_DELAYS_US
# one way, with default options.
bench_latency() {
  local delay src_proxy dst_proxy rate0=0 rate_d
  LATENCY_ROWS+=("| direct (no proxy) | 0 | $1 | |")
  # shellcheck disable=SC2086 # a list of numbers
  for delay in 0 $LATENCY_DELAYS_US; do
    log "strings: ferry migrate through proxies at $delay us one way"
    start_proxy "$PROXY" "$SRC_PORT" "$delay"
    src_proxy=$PROXY_PORT
    start_proxy "$PROXY" "$DST_PORT" "$delay"
    dst_proxy=$PROXY_PORT
    migrate_median "$src_proxy" "$dst_proxy" "proxy-$delay"
    rate_d=$(rate "$KEYS" "$M_WALL")
    if ((delay == 0)); then rate0=$rate_d; fi
    local rtt_ms
    rtt_ms=$(awk -v d="$delay" 'BEGIN { printf "%g", 2 * d / 1000 }')
    LATENCY_ROWS+=("| through proxies | $rtt_ms | $rate_d | $(ratio "$rate_d" "$rate0")x |")
  done
}

machine_report() {
  local cpu mem_gb git_rev
  cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
  mem_gb=$(awk '/^MemTotal:/ { printf "%.1f", $2 / 1024 / 1024 }' /proc/meminfo)
  git_rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "none")
  echo "# ferry benchmark"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ), ferry commit: $git_rev"
  echo "- machine: $(nproc) CPUs, ${cpu:-unknown CPU}, $mem_gb GiB memory"
  echo "- redis: $(redis-server --version | grep -oE 'v=[^ ]+' | cut -c3-)," \
    "source and target on this machine (loopback)"
  echo "- keys per dataset: $KEYS"
}

report() {
  machine_report
  echo
  echo "## Throughput"
  echo
  echo "| dataset | write limit keys/s | SCAN keys/s | ferry keys/s | ferry/limit |" \
    "MB/s | peak RSS MB | CPU s |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  printf '%s\n' "${THROUGHPUT_ROWS[@]}"
  echo
  echo "Each figure is the median of $RUNS runs. Write limit: \`redis-cli --pipe\` of the same data into the empty target." \
    "MB/s: $MB_NOTE."
  if [[ -n "${RESTORE_NOTE:-}" ]]; then
    echo
    echo "$RESTORE_NOTE"
  fi
  echo
  echo "## Verification"
  echo
  echo "| dataset | copy keys/s | quick keys/s | quick/copy | full keys/s | full/copy |" \
    "peak RSS MB (full) | CPU s (full) |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  printf '%s\n' "${VERIFY_ROWS[@]}"
  echo
  echo "\`ferry verify\` of ferry's copy, both directions (every source key on the target, every" \
    "target key on the source), median of $RUNS runs; keys/s are the dataset's keys over the" \
    "wall time. Each run must find the two equal. Target: quick >= 1x, full >= 0.5x the copy."
  echo
  echo "## Latency (strings)"
  echo
  echo "| path | added RTT ms | ferry keys/s | vs 0 ms proxy |"
  echo "|---|---:|---:|---:|"
  printf '%s\n' "${LATENCY_ROWS[@]}"
  echo
  echo "Default options. Target: at 10 ms >= 0.8x and at 40 ms >= 0.6x the 0 ms rate through" \
    "the same proxies."
  echo
  echo "## Copy paths (mixed)"
  echo
  echo "| path | ferry keys/s | vs DUMP path | MB/s | peak RSS MB | CPU s |"
  echo "|---|---:|---:|---:|---:|---:|"
  printf '%s\n' "${COPY_PATH_ROWS[@]}"
  echo
  echo "Same method as the throughput table (median of $RUNS runs, DBSIZE checked after each);" \
    "the last copy of each path is also compared with the source on $SAMPLE_KEYS random keys." \
    "Target: type by type >= 0.5x the DUMP path."
}

main() {
  ensure_tools
  trap bench_cleanup EXIT
  bench_init_tmp
  SRC_PORT=$(free_port)
  start_redis "$SRC_PORT"
  DST_PORT=$(free_port)
  start_redis "$DST_PORT"
  THROUGHPUT_ROWS=()
  LATENCY_ROWS=()
  COPY_PATH_ROWS=()
  VERIFY_ROWS=()
  MB_NOTE=""
  RESTORE_NOTE=""
  bench_dataset strings
  bench_dataset mixed
  mkdir -p "$(dirname "$RESULTS")"
  report | tee "$RESULTS"
  log "written to $RESULTS"
}

main
