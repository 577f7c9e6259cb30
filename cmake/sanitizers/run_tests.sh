#!/usr/bin/env bash
# Runs the unit tests and the given integration tests of a sanitizer build (`make sanitize`;
# cmake/Sanitizers.cmake). Every process writes its sanitizer reports to one directory: the
# tests, and the ferry binaries they start from FERRY_BIN_DIR (the sanitized ones), whose exit
# codes a test may not look at. Any report there fails the run, as does any failed test.
#   cmake/sanitizers/run_tests.sh BUILD_DIR address|thread INTEGRATION_TEST...
set -euo pipefail
build_dir=$(cd "$1" && pwd)
kind=$2
shift 2
here="$(cd "$(dirname "$0")" && pwd)"
reports="$build_dir/sanitizer-reports"
rm -rf "$reports"
mkdir -p "$reports"
export ASAN_SYMBOLIZER_PATH=/usr/lib/llvm-14/bin/llvm-symbolizer
export TSAN_SYMBOLIZER_PATH=$ASAN_SYMBOLIZER_PATH
[ -x "$ASAN_SYMBOLIZER_PATH" ] || { echo "sanitize: llvm-symbolizer missing (llvm-14)" >&2; exit 1; }
case "$kind" in
  address)
    export ASAN_OPTIONS="log_path=$reports/asan:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1"
    export LSAN_OPTIONS="suppressions=$here/lsan.supp:print_suppressions=0"
    export UBSAN_OPTIONS="log_path=$reports/ubsan:print_stacktrace=1:halt_on_error=1"
    ;;
  thread)
    export TSAN_OPTIONS="log_path=$reports/tsan:suppressions=$here/tsan.supp:second_deadlock_stack=1:history_size=4:print_suppressions=0"
    ;;
  *) echo "sanitize: address or thread, not $kind" >&2; exit 2 ;;
esac
pattern="^($(IFS='|'; echo "$*"))\$"
status=0
cd "$build_dir"
ctest --output-on-failure --no-tests=error -j2 --timeout 900 -L unit || status=1
ctest --output-on-failure --no-tests=error -j2 --timeout 900 -R "$pattern" || status=1
shopt -s nullglob
found=("$reports"/*)
if [ ${#found[@]} -gt 0 ]; then
  echo "sanitize ($kind): ${#found[@]} report file(s) in $reports:" >&2
  for file in "${found[@]:0:4}"; do
    echo "==== $file" >&2
    head -n 60 "$file" >&2
  done
  status=1
fi
[ $status -eq 0 ] && echo "sanitize ($kind): unit tests and $# integration tests passed, no reports"
exit $status
