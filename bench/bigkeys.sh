#!/usr/bin/env bash
# The big-key benchmark: how ferry copies a few very large keys. See bench/README.md.
#
#   bench/bigkeys.sh [--scale F] [--string-mb S] [--zset-members Z] [--hash-fields H]
#                    [--samples N] [-- FERRY_MIGRATE_ARGS...]
#
# Defaults: one 400 MB string, one zset of 3,000,000 members, one hash of 3,000,000 fields (about
# 1 GB of Redis memory on each side); --scale 0.1 shrinks all three. Arguments after -- go to
# `ferry migrate` (e.g. -- --big-key-bytes 8MB). Prints a Markdown report and appends it to
# bench/results/bigkeys.md. Exits non-zero if a step fails or the copy does not match the source.
set -euo pipefail
shopt -s inherit_errexit

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly ROOT
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

usage() { sed -n '2,10p' "$0"; }

SCALE=1
STRING_MB="" ZSET_MEMBERS="" HASH_FIELDS=""
SAMPLES=1000
FERRY_ARGS=()
while (($# > 0)); do
  case "$1" in
    --scale) SCALE=${2:?--scale needs a number}; shift 2 ;;
    --string-mb) STRING_MB=${2:?--string-mb needs a number}; shift 2 ;;
    --zset-members) ZSET_MEMBERS=${2:?--zset-members needs a number}; shift 2 ;;
    --hash-fields) HASH_FIELDS=${2:?--hash-fields needs a number}; shift 2 ;;
    --samples) SAMPLES=${2:?--samples needs a number}; shift 2 ;;
    --) shift; FERRY_ARGS=("$@"); break ;;
    -h | --help) usage; exit 0 ;;
    *) bench_die "unknown argument: $1 (see bench/bigkeys.sh --help)" ;;
  esac
done
if [[ ! "$SCALE" =~ ^([0-9]+\.?[0-9]*|\.[0-9]+)$ ]] ||
  ! awk -v f="$SCALE" 'BEGIN { exit !(f > 0) }'; then
  bench_die "--scale must be a positive number, got: $SCALE"
fi
# scaled DEFAULT: DEFAULT x SCALE, rounded, at least 1.
scaled() { awk -v d="$1" -v f="$SCALE" 'BEGIN { n = int(d * f + 0.5); print (n < 1 ? 1 : n) }'; }
STRING_MB=${STRING_MB:-$(scaled 400)}
ZSET_MEMBERS=${ZSET_MEMBERS:-$(scaled 3000000)}
HASH_FIELDS=${HASH_FIELDS:-$(scaled 3000000)}
for n in "$STRING_MB" "$ZSET_MEMBERS" "$HASH_FIELDS" "$SAMPLES"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || bench_die "sizes and --samples must be positive integers, got: $n"
done
# A Redis string holds at most 512 MB (proto-max-bulk-len).
((STRING_MB <= 512)) || bench_die "--string-mb is at most 512, got: $STRING_MB"
readonly SCALE STRING_MB ZSET_MEMBERS HASH_FIELDS SAMPLES FERRY_ARGS

readonly BUILD_DIR=${FERRY_BUILD_DIR:-$ROOT/build}
readonly FERRY=$BUILD_DIR/bin/ferry
readonly RESULTS=$ROOT/bench/results/bigkeys.md
readonly SLOW_US=1000        # slowlog-log-slower-than while ferry runs: 1 ms
readonly TARGET_RSS_MB=300   # the issue's targets
readonly TARGET_CMD_US=10000
readonly HASH_TTL_S=86400    # the hash carries a TTL, so the check sees that a TTL survives

log() { echo "== $*" >&2; }

ensure_tools() {
  if [[ ! -x "$FERRY" ]]; then
    [[ -z "${FERRY_BUILD_DIR:-}" ]] || bench_die "missing $FERRY"
    log "build/bin/ferry is missing: running make build"
    make -C "$ROOT" build >&2 || bench_die "make build failed"
  fi
  [[ -x "$FERRY" ]] || bench_die "missing $FERRY"
  local tool
  for tool in redis-server redis-cli python3 awk; do
    command -v "$tool" >/dev/null || bench_die "$tool is not installed"
  done
  [[ -x /usr/bin/time ]] || bench_die "/usr/bin/time (GNU time, Debian package 'time') is missing"
}

# write_helper FILE: the Python (stdlib only) that loads, reads the slowlog and checks the copy,
# each over one socket. The data is a function of the member index, so the check knows what every
# field and member must hold without reading the whole source.
write_helper() {
  cat >"$1" <<'PY'
import hashlib, random, re, socket, sys

STRING_KEY, ZSET_KEY, HASH_KEY = b"big:string", b"big:zset", b"big:hash"
PIECE = 1 << 20   # APPEND piece
PER_CMD = 1000    # members or fields per ZADD / HSET
WINDOW = 32       # commands in flight
SEED = 1

class Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", int(port)))
        self.rd = self.sock.makefile("rb", buffering=1 << 20)

    def send_raw(self, data):
        self.sock.sendall(data)

    def read(self):
        line = self.rd.readline()
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest
        if kind == b"-":
            sys.exit("redis error: " + rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.rd.read(n + 2)[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        sys.exit("unexpected reply: %r" % line[:80])

    def pipeline(self, cmds):
        """Sends each encoded command of the iterable, WINDOW at a time; returns the replies."""
        out, batch = [], []
        for cmd in cmds:
            batch.append(cmd)
            if len(batch) == WINDOW:
                self.send_raw(b"".join(batch))
                out.extend(self.read() for _ in batch)
                batch = []
        if batch:
            self.send_raw(b"".join(batch))
            out.extend(self.read() for _ in batch)
        return out

    def call(self, *args):
        self.send_raw(encode(args))
        return self.read()

def encode(args):
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(parts)

def member(i): return b"m:%09d" % i
def score(i): return ((i * 7919) % 1000003) + 0.25   # exact in binary, so ZSCORE round-trips
def field(i): return b"f:%09d" % i
def value(i): return b"%016x" % ((i * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF)
# Bytes of value data per member or field: member + 8-byte double; field + value.
ZSET_ENTRY_BYTES, HASH_ENTRY_BYTES = len(member(0)) + 8, len(field(0)) + len(value(0))

def pieces(total):
    """The string's APPEND pieces: a random 1 MB block rotated by a different offset each time,
    so no two windows of the string are alike and a misplaced chunk changes the digest."""
    block = random.Random(SEED).randbytes(PIECE)
    for i in range(total // PIECE):
        off = (i * 7919) % PIECE
        yield block[off:] + block[:off]

def load(port, string_mb, zset_n, hash_n, ttl):
    c = Conn(port)
    total = string_mb * PIECE
    c.pipeline(encode((b"APPEND", STRING_KEY, p)) for p in pieces(total))
    def zadds():
        for start in range(0, zset_n, PER_CMD):
            end = min(start + PER_CMD, zset_n)
            head = b"*%d\r\n$4\r\nZADD\r\n$%d\r\n%s\r\n" % (
                2 + 2 * (end - start), len(ZSET_KEY), ZSET_KEY)
            body = []
            for i in range(start, end):
                s = repr(score(i)).encode()
                body.append(b"$%d\r\n%s\r\n$11\r\n%s\r\n" % (len(s), s, member(i)))
            yield head + b"".join(body)
    c.pipeline(zadds())
    def hsets():
        for start in range(0, hash_n, PER_CMD):
            end = min(start + PER_CMD, hash_n)
            head = b"*%d\r\n$4\r\nHSET\r\n$%d\r\n%s\r\n" % (
                2 + 2 * (end - start), len(HASH_KEY), HASH_KEY)
            yield head + b"".join(b"$11\r\n%s\r\n$16\r\n%s\r\n" % (field(i), value(i))
                                  for i in range(start, end))
    c.pipeline(hsets())
    c.call(b"EXPIRE", HASH_KEY, ttl)
    got = (c.call(b"STRLEN", STRING_KEY), c.call(b"ZCARD", ZSET_KEY), c.call(b"HLEN", HASH_KEY))
    if got != (total, zset_n, hash_n):
        sys.exit("load: STRLEN/ZCARD/HLEN are %s, want %s" % (got, (total, zset_n, hash_n)))
    # Bytes of value data, the MB/s numerator.
    print(total + zset_n * ZSET_ENTRY_BYTES + hash_n * HASH_ENTRY_BYTES)

def shown(arg):
    """A slowlog argument as text: binary ones (DUMP payloads) by size, long ones cut."""
    cut = re.search(rb"\.\.\. \((\d+) more bytes\)$", arg)  # Redis keeps 128 bytes of an arg
    size = len(arg) if cut is None else cut.start() + int(cut.group(1))
    if not all(32 <= b < 127 for b in arg):
        return "<%d bytes>" % size
    text = arg.decode()
    return text if len(text) <= 24 else text[:21] + "..."

def slowlog(port):
    """Every slowlog entry as `MICROSECONDS<TAB>COMMAND ARGS`, longest first, arguments cut."""
    entries = Conn(port).call(b"SLOWLOG", b"GET", b"-1")
    rows = []
    for e in entries:
        args = [shown(a) for a in e[3]]
        text = " ".join(args[:6])
        if len(args) > 6:
            text += " ...(%d args)" % len(args)
        rows.append((e[2], text.replace("|", "/")))
    for us, text in sorted(rows, key=lambda r: -r[0]):
        print("%d\t%s" % (us, text))

def string_digest(c, length):
    h, step = hashlib.sha256(), 4 * PIECE
    cmds = (encode((b"GETRANGE", STRING_KEY, off, min(off + step, length) - 1))
            for off in range(0, length, step))
    for part in c.pipeline(cmds):
        h.update(part)
    return h.hexdigest()[:16]

def verify(src_port, dst_port, string_mb, zset_n, hash_n, samples, ttl):
    src, dst = Conn(src_port), Conn(dst_port)
    failures = []
    def check(what, ok, detail):
        print("%-34s %s  %s" % (what, "ok  " if ok else "FAIL", detail))
        if not ok:
            failures.append(what)
    both = lambda *cmd: (src.call(*cmd), dst.call(*cmd))
    s, d = both(b"DBSIZE")
    check("DBSIZE", s == d == 3, "source %s, target %s, want 3" % (s, d))
    for key, want in ((STRING_KEY, b"string"), (ZSET_KEY, b"zset"), (HASH_KEY, b"hash")):
        s, d = both(b"TYPE", key)
        check("TYPE " + key.decode(), s == d == want,
              "source %s, target %s" % (s.decode(), d.decode()))
    for cmd, key, want in ((b"STRLEN", STRING_KEY, string_mb * PIECE), (b"ZCARD", ZSET_KEY, zset_n),
                           (b"HLEN", HASH_KEY, hash_n)):
        s, d = both(cmd, key)
        check("%s %s" % (cmd.decode(), key.decode()), s == d == want,
              "source %s, target %s, want %s" % (s, d, want))
    length = string_mb * PIECE
    s, d = string_digest(src, length), string_digest(dst, length)
    check("string SHA-256 (every byte)", s == d, "source %s, target %s" % (s, d))
    rng = random.Random()
    idx = sorted({0, zset_n - 1} | {rng.randrange(zset_n) for _ in range(samples)})
    got = [dst.pipeline(encode((b"ZSCORE", ZSET_KEY, member(i))) for i in idx),
           src.pipeline(encode((b"ZSCORE", ZSET_KEY, member(i))) for i in idx)]
    bad = [i for i, t, f in zip(idx, *got)
           if t is None or f is None or float(t) != score(i) or t != f]
    check("ZSCORE of %d members" % len(idx), not bad, "mismatch at %s" % bad[:3] if bad else "")
    s, d = both(b"ZRANGE", ZSET_KEY, 0, 0, b"WITHSCORES")
    s2, d2 = both(b"ZRANGE", ZSET_KEY, -1, -1, b"WITHSCORES")
    check("ZRANGE first and last", s == d and s2 == d2,
          "source %s %s, target %s %s" % (s, s2, d, d2))
    idx = sorted({0, hash_n - 1} | {rng.randrange(hash_n) for _ in range(samples)})
    got = [dst.pipeline(encode((b"HGET", HASH_KEY, field(i))) for i in idx),
           src.pipeline(encode((b"HGET", HASH_KEY, field(i))) for i in idx)]
    bad = [i for i, t, f in zip(idx, *got) if t != value(i) or f != t]
    check("HGET of %d fields" % len(idx), not bad, "mismatch at %s" % bad[:3] if bad else "")
    ttls = [dst.call(b"PTTL", k) for k in (STRING_KEY, ZSET_KEY, HASH_KEY)]
    ok = ttls[0] == -1 and ttls[1] == -1 and 0 < ttls[2] <= ttl * 1000
    check("PTTL on the target", ok, "string %d, zset %d, hash %d ms (want -1, -1, 1..%d)"
          % (ttls[0], ttls[1], ttls[2], ttl * 1000))
    if failures:
        sys.exit("verification failed: " + ", ".join(failures))


if __name__ == "__main__":
    cmd, args = sys.argv[1], [int(a) for a in sys.argv[2:]]
    {"load": load, "slowlog": slowlog, "verify": verify}[cmd](*args)
PY
}

info_field() { # info_field PORT SECTION FIELD
  redis-cli -p "$1" info "$2" | tr -d '\r' | awk -F: -v f="$3" '$1 == f { print $2 }'
}

# json_number FILE FIELD: a top-level number of ferry's JSON summary, empty if absent.
json_number() {
  grep -oE "\"$2\"[[:space:]]*:[[:space:]]*-?[0-9.]+" "$1" | head -n 1 |
    grep -oE -- '-?[0-9.]+$' || true
}

# slow_max FILE: "MICROSECONDS (COMMAND)" of the longest entry, or "0 (none)".
slow_max() {
  if [[ -s "$1" ]]; then
    awk -F'\t' 'NR == 1 { split($2, w, " "); printf "%s (%s)", $1, w[1] }' "$1"
  else
    echo "0 (none over $((SLOW_US / 1000)) ms)"
  fi
}

# slow_top FILE SIDE: the three longest entries as Markdown list lines.
slow_top() {
  if [[ ! -s "$1" ]]; then
    echo "- $2: no command took over $((SLOW_US / 1000)) ms"
    return
  fi
  echo "- $2 ($(wc -l <"$1") commands over $((SLOW_US / 1000)) ms, $(awk -F'\t' \
    -v t="$TARGET_CMD_US" '$1 > t' "$1" | wc -l) over $((TARGET_CMD_US / 1000)) ms):"
  head -n 3 "$1" | awk -F'\t' '{ printf "  - %d us: `%s`\n", $1, $2 }'
  # Per command name: how many went over 1 ms and the longest, the most frequent first.
  awk -F'\t' '{ split($2, w, " "); n[w[1]]++; if ($1 > m[w[1]]) m[w[1]] = $1 }
    END { for (c in n) printf "%d\t%s x%d (max %.1f ms)\n", n[c], c, n[c], m[c] / 1000 }' "$1" |
    sort -rn | cut -f2 | paste -sd, - | sed 's/,/, /g; s/^/  - by command: /'
}

# met VALUE LIMIT: yes when VALUE <= LIMIT.
met() {
  if awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; then echo yes; else echo "**no**"; fi
}

main() {
  ensure_tools
  trap bench_cleanup EXIT
  bench_init_tmp
  local helper=$BENCH_TMP/bigkeys.py
  write_helper "$helper"
  local src dst
  src=$(free_port)
  start_redis "$src"
  dst=$(free_port)
  start_redis "$dst"

  log "loading the source: a $STRING_MB MB string, a zset of $ZSET_MEMBERS, a hash of $HASH_FIELDS"
  local start end value_bytes load_s
  start=$(now)
  value_bytes=$(python3 "$helper" load "$src" "$STRING_MB" "$ZSET_MEMBERS" "$HASH_FIELDS" \
    "$HASH_TTL_S") || bench_die "loading the source failed"
  end=$(now)
  load_s=$(elapsed "$start" "$end")
  local src_dataset dst_dataset_before
  src_dataset=$(info_field "$src" memory used_memory_dataset)
  dst_dataset_before=$(info_field "$dst" memory used_memory_dataset)
  local port
  for port in "$src" "$dst"; do
    redis-cli -p "$port" config set slowlog-log-slower-than "$SLOW_US" >/dev/null
    redis-cli -p "$port" config set slowlog-max-len 100000 >/dev/null # keep every entry
    redis-cli -p "$port" slowlog reset >/dev/null
  done

  log "ferry migrate ${FERRY_ARGS[*]}"
  local dir=$BENCH_TMP/migrate rc=0
  mkdir -p "$dir"
  start=$(now)
  /usr/bin/time -v -o "$dir/time" "$FERRY" migrate \
    --from "redis://127.0.0.1:$src" --to "redis://127.0.0.1:$dst" \
    --progress none --output json "${FERRY_ARGS[@]}" >"$dir/summary.json" 2>"$dir/stderr" || rc=$?
  end=$(now)
  if ((rc != 0)); then
    tail -n 20 "$dir/stderr" >&2
    cat "$dir/summary.json" >&2
    bench_die "ferry migrate exited with $rc"
  fi
  local wall rss_kb rss_mb
  wall=$(elapsed "$start" "$end")
  rss_kb=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$dir/time")
  rss_mb=$(awk -v k="$rss_kb" 'BEGIN { printf "%.1f", k / 1024 }')
  python3 "$helper" slowlog "$src" >"$dir/slow-src"
  python3 "$helper" slowlog "$dst" >"$dir/slow-dst"

  log "checking the copy"
  local verify_rc=0
  python3 "$helper" verify "$src" "$dst" "$STRING_MB" "$ZSET_MEMBERS" "$HASH_FIELDS" \
    "$SAMPLES" "$HASH_TTL_S" >"$dir/verify" 2>&1 || verify_rc=$?
  cat "$dir/verify" >&2

  local dst_dataset copied ferry_bytes src_max_us dst_max_us longest_us
  dst_dataset=$(info_field "$dst" memory used_memory_dataset)
  copied=$(json_number "$dir/summary.json" copied)
  ferry_bytes=$(json_number "$dir/summary.json" bytes)
  src_max_us=$(head -n 1 "$dir/slow-src" | cut -f1)
  dst_max_us=$(head -n 1 "$dir/slow-dst" | cut -f1)
  longest_us=$(( ${src_max_us:-0} > ${dst_max_us:-0} ? ${src_max_us:-0} : ${dst_max_us:-0} ))
  local chunked="no: this ferry has no --big-key-bytes, big keys go whole through DUMP/RESTORE"
  if "$FERRY" migrate --help 2>&1 | grep -q -- '--big-key-bytes'; then
    chunked="yes (--big-key-bytes in ferry migrate --help; default 1 MiB unless set above)"
  fi
  local verdict="passed"
  ((verify_rc == 0)) || verdict="**FAILED**"

  local cmd_line="ferry migrate --progress none --output json${FERRY_ARGS[*]:+ ${FERRY_ARGS[*]}}"
  mkdir -p "$(dirname "$RESULTS")"
  {
    echo "# ferry big-key benchmark"
    echo
    echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ), ferry commit:" \
      "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)" \
      "(binary built $(date -u -r "$FERRY" +%Y-%m-%dT%H:%MZ))"
    echo "- machine: $(nproc) CPUs, $(awk '/^MemTotal:/ { printf "%.1f", $2 / 1048576 }' \
      /proc/meminfo) GiB; redis $(redis-server --version | grep -oE 'v=[^ ]+' | cut -c3-)," \
      "source and target on this machine"
    echo "- data: \`big:string\` $STRING_MB MB, \`big:zset\` $ZSET_MEMBERS members," \
      "\`big:hash\` $HASH_FIELDS fields (scale $SCALE); loaded in $(printf '%.1f' "$load_s") s"
    echo "- command: \`$cmd_line\`;" \
      "chunked big-key copy in this binary: $chunked"
    echo
    echo "| measure | value |"
    echo "|---|---:|"
    echo "| wall s | $(printf '%.2f' "$wall") |"
    echo "| keys copied (ferry summary) | ${copied:-?} |"
    echo "| keys/s | $(awk -v n="${copied:-0}" -v s="$wall" 'BEGIN { printf "%.2f", n / s }') |"
    echo "| MB/s (value bytes) | $(awk -v b="$value_bytes" -v s="$wall" \
      'BEGIN { printf "%.1f", b / 1e6 / s }') |"
    echo "| MB/s (target used_memory_dataset delta) | $(awk -v a="$dst_dataset" \
      -v b="$dst_dataset_before" -v s="$wall" 'BEGIN { printf "%.1f", (a - b) / 1e6 / s }') |"
    echo "| value bytes MB / source dataset MB / ferry \"bytes\" MB | $(awk -v v="$value_bytes" \
      -v d="$src_dataset" -v f="${ferry_bytes:-0}" \
      'BEGIN { printf "%.1f / %.1f / %.1f", v / 1e6, d / 1e6, f / 1e6 }') |"
    echo "| ferry peak RSS MB | $rss_mb |"
    echo "| longest command on the source, us | $(slow_max "$dir/slow-src") |"
    echo "| longest command on the target, us | $(slow_max "$dir/slow-dst") |"
    echo "| copy verified | $verdict |"
    echo
    echo "Value bytes: the string's length, each zset member's length + 8 for its score," \
      "each hash field's and value's length." \
      "Slowlog: every command over $((SLOW_US / 1000)) ms during the run."
    echo
    echo "| target (issue) | limit | measured | met |"
    echo "|---|---:|---:|---|"
    echo "| ferry peak RSS | <= $TARGET_RSS_MB MB | $rss_mb MB |" \
      "$(met "$rss_mb" "$TARGET_RSS_MB") |"
    echo "| longest command, either side | <= $((TARGET_CMD_US / 1000)) ms |" \
      "$(awk -v u="$longest_us" 'BEGIN { printf "%.1f", u / 1000 }') ms |" \
      "$(met "$longest_us" "$TARGET_CMD_US") |"
    echo
    echo "Longest commands:"
    echo
    slow_top "$dir/slow-src" source
    slow_top "$dir/slow-dst" target
    echo
  } | tee -a "$RESULTS"
  log "appended to $RESULTS"
  ((verify_rc == 0)) || bench_die "the target does not match the source (see the checks above)"
}

main
