#!/usr/bin/env bash
# Runs ferry's fuzzers (fuzz/*_fuzz.cc), each for SECONDS, from a temp copy of its checked-in
# corpus (fuzz/corpus/<name>/), so the repo is never written. Fails on the first crash, leak,
# timeout or sanitizer report; the input that caused it is kept in ARTIFACTS.
#   fuzz/run.sh BIN_DIR SECONDS [name...]   (names default to every corpus directory)
set -euo pipefail
bin_dir=$1
seconds=$2
shift 2
here="$(cd "$(dirname "$0")" && pwd)"
artifacts="$bin_dir/artifacts"
mkdir -p "$artifacts"
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for dir in "$here"/corpus/*/; do names+=("$(basename "$dir")"); done
fi
work="$(mktemp -d "${TMPDIR:-/tmp}/ferry-fuzz.XXXXXX")"
trap 'rm -rf "$work"' EXIT
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export ASAN_SYMBOLIZER_PATH="${ASAN_SYMBOLIZER_PATH:-/usr/lib/llvm-14/bin/llvm-symbolizer}"
failed=()
for name in "${names[@]}"; do
  fuzzer="$bin_dir/${name}_fuzz"
  [ -x "$fuzzer" ] || { echo "fuzz: $fuzzer is missing (build target fuzzers)" >&2; exit 1; }
  mkdir -p "$work/$name"
  cp -r "$here/corpus/$name/." "$work/$name/"
  # fuzz/<name>.flags: libFuzzer flags of one fuzzer, one per line.
  flags=()
  [ -f "$here/$name.flags" ] && mapfile -t flags < <(grep -v '^#' "$here/$name.flags")
  echo "fuzz: $name for ${seconds}s from $(find "$here/corpus/$name" -type f | wc -l) seed inputs"
  if ! "$fuzzer" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2560 -max_len=4096 \
      "${flags[@]}" -print_final_stats=1 -artifact_prefix="$artifacts/$name-" "$work/$name" \
      >"$work/$name.log" 2>&1; then
    tail -n 60 "$work/$name.log" >&2
    echo "fuzz: $name FAILED; the input is in $artifacts/ (keep it in fuzz/corpus/$name/" \
      "once fixed)" >&2
    failed+=("$name")
  else
    grep -E '^stat::number_of_executed_units|^Done|cov:' "$work/$name.log" | tail -n 2
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: failed: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: all ${#names[@]} fuzzers ran ${seconds}s each without a finding"
